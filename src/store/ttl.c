/*
 * ttl.c - the expiry table (ttl.h): open addressing, linear probing,
 * backward-shift deletion, a power-of-two table kept under 3/4 full.
 * Tags are uniform hashes (index_hash), so the low bits place them.
 * A table that cannot grow (no memory) keeps working up to 15/16 full,
 * then refuses new entries with -ENOMEM, and the put that wanted one
 * fails (store_ix_put).
 */
#include <errno.h>
#include <stdlib.h>

#include "ttl.h"

struct ttl_ent {
	uint64_t tag; /* 0: empty */
	uint32_t expire;
	uint32_t pad;
};

struct store_ttl {
	struct ttl_ent *tab;
	size_t mask; /* capacity - 1 */
	size_t count;
};

#define TTL_MIN_CAP 64u

int
ttl_create(struct store_ttl **out)
{
	struct store_ttl *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	t->tab = calloc(TTL_MIN_CAP, sizeof(*t->tab));
	if (t->tab == NULL) {
		free(t);
		return -ENOMEM;
	}
	t->mask = TTL_MIN_CAP - 1;
	*out = t;
	return 0;
}

void
ttl_destroy(struct store_ttl *t)
{
	if (t == NULL)
		return;
	free(t->tab);
	free(t);
}

/* Position of tag, or of the empty entry ending its probe run. */
static size_t
probe(const struct store_ttl *t, uint64_t tag)
{
	size_t i = (size_t)tag & t->mask;

	while (t->tab[i].tag != 0 && t->tab[i].tag != tag)
		i = (i + 1) & t->mask;
	return i;
}

static int
grow(struct store_ttl *t)
{
	struct store_ttl n = { .mask = 2 * t->mask + 1 };

	n.tab = calloc(n.mask + 1, sizeof(*n.tab));
	if (n.tab == NULL)
		return -ENOMEM;
	for (size_t i = 0; i <= t->mask; i++)
		if (t->tab[i].tag != 0)
			n.tab[probe(&n, t->tab[i].tag)] = t->tab[i];
	free(t->tab);
	t->tab = n.tab;
	t->mask = n.mask;
	return 0;
}

int
ttl_set(struct store_ttl *t, uint64_t tag, uint32_t expire)
{
	size_t i = probe(t, tag);

	if (t->tab[i].tag == 0) {
		size_t cap = t->mask + 1;

		if ((t->count + 1) * 4 > cap * 3 && grow(t) < 0 &&
		    (t->count + 1) * 16 > cap * 15)
			return -ENOMEM;
		i = probe(t, tag);
		t->count++;
	}
	t->tab[i] = (struct ttl_ent){ .tag = tag, .expire = expire };
	return 0;
}

uint32_t
ttl_get(const struct store_ttl *t, uint64_t tag)
{
	const struct ttl_ent *e = &t->tab[probe(t, tag)];

	return e->tag != 0 ? e->expire : 0;
}

void
ttl_del(struct store_ttl *t, uint64_t tag)
{
	size_t i = probe(t, tag), j = i;

	if (t->tab[i].tag == 0)
		return;
	t->count--;
	for (;;) { /* shift back what the hole would cut off */
		size_t home;

		j = (j + 1) & t->mask;
		if (t->tab[j].tag == 0)
			break;
		home = (size_t)t->tab[j].tag & t->mask;
		/* move j to i unless its home lies cyclically in (i, j] */
		if (((j - home) & t->mask) >= ((j - i) & t->mask)) {
			t->tab[i] = t->tab[j];
			i = j;
		}
	}
	t->tab[i] = (struct ttl_ent){ 0 };
}

size_t
ttl_count(const struct store_ttl *t)
{
	return t->count;
}

size_t
ttl_bytes(const struct store_ttl *t)
{
	return sizeof(*t) + (t->mask + 1) * sizeof(*t->tab);
}
