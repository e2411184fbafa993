/*
 * rcache.c - the shard's read cache (rcache.h): a chained hash table of
 * entries keyed by (ns, key), an LRU list of unpinned READY entries, and a
 * byte budget. Single-threaded (the shard's).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "rcache.h"

#define RC_BUCKETS 4096u

enum { RC_LOADING = 0, RC_READY = 1, RC_DEAD = 2 };

struct rcache_ent {
	struct rcache_ent *hnext;        /* bucket chain */
	struct rcache_ent *prev, *next;  /* LRU, READY and unpinned only */
	uint64_t ns;
	uint8_t key[32];
	uint8_t *buf;
	uint32_t room, len;
	unsigned pins;
	uint8_t state;
};

struct rcache {
	struct rcache_ent *b[RC_BUCKETS];
	struct rcache_ent lru; /* sentinel: next = oldest */
	uint64_t bytes, max, hits, loads;
};

static unsigned
bucket(uint64_t ns, const uint8_t *key)
{
	return (unsigned)(XXH3_64bits_withSeed(key, 32, ns) % RC_BUCKETS);
}

int
rcache_create(uint64_t max_bytes, struct rcache **out)
{
	struct rcache *rc = calloc(1, sizeof(*rc));

	if (rc == NULL)
		return -ENOMEM;
	rc->max = max_bytes;
	rc->lru.next = rc->lru.prev = &rc->lru;
	*out = rc;
	return 0;
}

static void
lru_del(struct rcache_ent *e)
{
	if (e->next != NULL) {
		e->prev->next = e->next;
		e->next->prev = e->prev;
		e->next = e->prev = NULL;
	}
}

static void
lru_add(struct rcache *rc, struct rcache_ent *e)
{
	e->prev = rc->lru.prev;
	e->next = &rc->lru;
	rc->lru.prev->next = e;
	rc->lru.prev = e;
}

/* Unlink e from its bucket. */
static void
unhash(struct rcache *rc, struct rcache_ent *e)
{
	struct rcache_ent **pp = &rc->b[bucket(e->ns, e->key)];

	while (*pp != NULL && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp == e)
		*pp = e->hnext;
}

static void
ent_free(struct rcache *rc, struct rcache_ent *e)
{
	rc->bytes -= e->room;
	free(e->buf);
	free(e);
}

/* Drop e from the table; free it now unless someone still uses it. */
static void
kill_ent(struct rcache *rc, struct rcache_ent *e)
{
	unhash(rc, e);
	lru_del(e);
	if (e->pins == 0 && e->state != RC_LOADING)
		ent_free(rc, e);
	else
		e->state = RC_DEAD;
}

void
rcache_destroy(struct rcache *rc)
{
	if (rc == NULL)
		return;
	for (unsigned i = 0; i < RC_BUCKETS; i++)
		while (rc->b[i] != NULL) {
			struct rcache_ent *e = rc->b[i];

			rc->b[i] = e->hnext;
			free(e->buf);
			free(e);
		}
	free(rc);
}

static struct rcache_ent *
find(struct rcache *rc, uint64_t ns, const uint8_t *key)
{
	for (struct rcache_ent *e = rc->b[bucket(ns, key)]; e; e = e->hnext)
		if (e->ns == ns && memcmp(e->key, key, 32) == 0)
			return e;
	return NULL;
}

struct rcache_ent *
rcache_load(struct rcache *rc, uint64_t ns, const uint8_t *key,
	    uint32_t room)
{
	struct rcache_ent *e;
	unsigned h;

	if (find(rc, ns, key) != NULL || room > rc->max)
		return NULL;
	while (rc->bytes + room > rc->max && rc->lru.next != &rc->lru)
		kill_ent(rc, rc->lru.next); /* least recently used first */
	if (rc->bytes + room > rc->max)
		return NULL;
	e = calloc(1, sizeof(*e));
	if (e == NULL || posix_memalign((void **)&e->buf, 4096, room) != 0) {
		free(e);
		return NULL;
	}
	e->ns = ns;
	memcpy(e->key, key, 32);
	e->room = room;
	rc->bytes += room;
	h = bucket(ns, key);
	e->hnext = rc->b[h];
	rc->b[h] = e;
	return e;
}

uint8_t *
rcache_buf(struct rcache_ent *e)
{
	return e->buf;
}

bool
rcache_ready(struct rcache *rc, struct rcache_ent *e, uint32_t len)
{
	if (e->state == RC_DEAD) { /* dropped while loading */
		ent_free(rc, e);
		return false;
	}
	e->state = RC_READY;
	e->len = len;
	rc->loads++;
	lru_add(rc, e);
	return true;
}

void
rcache_pin(struct rcache *rc, struct rcache_ent *e, const uint8_t **data,
	   uint32_t *len)
{
	(void)rc;
	lru_del(e);
	e->pins++;
	*data = e->buf;
	*len = e->len;
}

void
rcache_fail(struct rcache *rc, struct rcache_ent *e)
{
	if (e->state != RC_DEAD)
		unhash(rc, e);
	ent_free(rc, e);
}

struct rcache_ent *
rcache_get(struct rcache *rc, uint64_t ns, const uint8_t *key,
	   const uint8_t **data, uint32_t *len)
{
	struct rcache_ent *e = find(rc, ns, key);

	if (e == NULL || e->state != RC_READY)
		return NULL;
	lru_del(e);
	e->pins++;
	rc->hits++;
	*data = e->buf;
	*len = e->len;
	return e;
}

void
rcache_unpin(struct rcache *rc, struct rcache_ent *e)
{
	if (--e->pins > 0)
		return;
	if (e->state == RC_DEAD)
		ent_free(rc, e);
	else
		lru_add(rc, e); /* most recently used */
}

void
rcache_drop(struct rcache *rc, uint64_t ns, const uint8_t *key)
{
	struct rcache_ent *e = find(rc, ns, key);

	if (e != NULL)
		kill_ent(rc, e);
}

uint64_t
rcache_bytes(const struct rcache *rc)
{
	return rc->bytes;
}

uint64_t
rcache_hits(const struct rcache *rc)
{
	return rc->hits;
}

uint64_t
rcache_loads(const struct rcache *rc)
{
	return rc->loads;
}

uint64_t
rcache_max(const struct rcache *rc)
{
	return rc->max;
}
