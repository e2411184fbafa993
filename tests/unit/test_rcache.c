/*
 * test_rcache.c - the shard read cache: load/ready/get, LRU eviction
 * within the byte budget (never of a pinned entry), drop while pinned or
 * while loading (freed when let go, never served again), failed loads.
 * Run under ASan for the lifetimes.
 */
#include <string.h>

#include "server/rcache.h"
#include "test.h"

static struct rcache_ent *
load(struct rcache *rc, uint64_t i, uint32_t room)
{
	uint8_t key[32];
	struct rcache_ent *e;

	test_key(i, key);
	e = rcache_load(rc, 1, key, room);
	if (e != NULL)
		memset(rcache_buf(e), (int)i, room);
	return e;
}

static struct rcache_ent *
get(struct rcache *rc, uint64_t i, const uint8_t **d, uint32_t *len)
{
	uint8_t key[32];

	test_key(i, key);
	return rcache_get(rc, 1, key, d, len);
}

int
main(void)
{
	struct rcache *rc;
	struct rcache_ent *e, *p;
	const uint8_t *d;
	uint32_t len;
	uint8_t key[32];

	REQUIRE(rcache_create(4 * 8192, &rc) == 0);
	e = load(rc, 1, 8192);
	CHECK(e != NULL);
	CHECK(load(rc, 1, 8192) == NULL);      /* loading already */
	CHECK(get(rc, 1, &d, &len) == NULL);   /* not ready yet */
	rcache_ready(rc, e, 5000);
	p = get(rc, 1, &d, &len);
	CHECK(p != NULL && len == 5000 && d[0] == 1 && d[4999] == 1);
	/* fill the budget: the pinned entry 1 must survive */
	for (uint64_t i = 2; i < 10; i++) {
		e = load(rc, i, 8192);
		if (e != NULL)
			rcache_ready(rc, e, 8192);
	}
	CHECK(rcache_bytes(rc) <= 4 * 8192);
	CHECK(get(rc, 9, &d, &len) != NULL && d[0] == 9);
	CHECK(get(rc, 2, &d, &len) == NULL);   /* evicted, oldest */
	/* drop while pinned: not served again, freed on unpin */
	test_key(1, key);
	rcache_drop(rc, 1, key);
	CHECK(get(rc, 1, &d, &len) == NULL);
	rcache_unpin(rc, p);
	/* drop while loading */
	e = load(rc, 20, 8192);
	REQUIRE(e != NULL);
	test_key(20, key);
	rcache_drop(rc, 1, key);
	CHECK(!rcache_ready(rc, e, 8192)); /* freed */
	CHECK(get(rc, 20, &d, &len) == NULL);
	/* loaded for a GET (a promotion): pinned for it, not a hit; then
	 * served to the next GETs, and evictable once unpinned */
	e = load(rc, 30, 8192);
	REQUIRE(e != NULL);
	{
		uint64_t hits = rcache_hits(rc), loads = rcache_loads(rc);

		CHECK(rcache_ready(rc, e, 6000));
		rcache_pin(rc, e, &d, &len);
		CHECK(len == 6000 && d[0] == 30);
		CHECK_RC(rcache_hits(rc), hits);
		CHECK_RC(rcache_loads(rc), loads + 1);
		p = get(rc, 30, &d, &len);
		CHECK(p == e && rcache_hits(rc) == hits + 1);
		rcache_unpin(rc, p);
		rcache_unpin(rc, e);
		for (uint64_t i = 40; i < 48; i++) { /* pushes 30 out */
			struct rcache_ent *x = load(rc, i, 8192);

			if (x != NULL)
				rcache_ready(rc, x, 8192);
		}
		CHECK(get(rc, 30, &d, &len) == NULL);
	}
	/* failed load */
	e = load(rc, 21, 8192);
	REQUIRE(e != NULL);
	rcache_fail(rc, e);
	CHECK(get(rc, 21, &d, &len) == NULL);
	CHECK(load(rc, 22, 1u << 30) == NULL); /* larger than the budget */
	rcache_destroy(rc);
	return test_summary("test_rcache");
}
