/*
 * index.c - open-addressing hash table with linear probing and
 * backward-shift deletion (no tombstones, so lookups never slow down with
 * churn). Capacity is any integer, not a power of two: the home slot is
 * the high half of tag * cap (the tag is a uniform hash), which lets the table grow by 1.5x and keep
 * its load between 0.53 and 0.80, the band that holds DRAM per block at
 * or under 32 bytes.
 *
 * Entry (16 bytes): tag (64-bit fingerprint, 0 = empty), then slot (24
 * bits) | flags (8 bits), then off4k (18 bits) | len4k - 1 (14 bits).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/hash.h"
#include "gpucache/gpucache.h"
#include "index.h"

struct ent {
	uint64_t tag;
	uint32_t slotf;
	uint32_t offlen;
};
_Static_assert(sizeof(struct ent) == 16, "index entry is 16 bytes");

struct store_index {
	struct ent *tab;
	size_t cap;
	size_t count;
};

#define INDEX_MIN_CAP 1024u
#define INDEX_GROW_NUM 4u /* grow past 4/5 full */
#define INDEX_GROW_DEN 5u

static size_t
home(const struct store_index *ix, uint64_t tag)
{
	return (size_t)(((unsigned __int128)tag * ix->cap) >> 64);
}

int
index_create(size_t expect, struct store_index **out)
{
	struct store_index *ix;
	size_t cap = expect + expect / 2;

	if (cap < INDEX_MIN_CAP)
		cap = INDEX_MIN_CAP;
	ix = calloc(1, sizeof(*ix));
	if (ix == NULL)
		return -ENOMEM;
	ix->tab = calloc(cap, sizeof(*ix->tab));
	if (ix->tab == NULL) {
		free(ix);
		return -ENOMEM;
	}
	ix->cap = cap;
	*out = ix;
	return 0;
}

void
index_destroy(struct store_index *ix)
{
	if (ix == NULL)
		return;
	free(ix->tab);
	free(ix);
}

uint64_t
index_key_hash(const uint8_t *key)
{
	return XXH3_64bits(key, 32);
}

struct index_hkey
index_hash_kh(uint64_t ns, uint64_t kh)
{
	uint8_t b[8]; /* little-endian whatever the host: it is on flash */
	uint64_t t;

	put_le64(b, kh);
	t = XXH3_64bits_withSeed(b, sizeof(b), ns ^ 0x9e3779b97f4a7c15ull);
	struct index_hkey hk = { .tag = t ? t : 1 };

	return hk;
}

struct index_hkey
index_hash(uint64_t ns, const uint8_t *key)
{
	return index_hash_kh(ns, index_key_hash(key));
}

/* Position of tag, or of the empty entry ending its probe run. */
static size_t
probe(const struct store_index *ix, struct index_hkey hk)
{
	size_t i = home(ix, hk.tag);

	while (ix->tab[i].tag != 0 && ix->tab[i].tag != hk.tag)
		i = (i + 1 == ix->cap) ? 0 : i + 1;
	return i;
}

static void
ent_to_loc(const struct ent *e, struct index_loc *l)
{
	l->slot = e->slotf & 0xffffffu;
	l->flags = (uint8_t)(e->slotf >> 24);
	l->off4k = e->offlen >> 14;
	l->len4k = (e->offlen & 0x3fffu) + 1;
}

int
index_lookup(const struct store_index *ix, struct index_hkey hk,
	     struct index_loc *out)
{
	size_t i = probe(ix, hk);

	if (ix->tab[i].tag == 0)
		return -GPC_ENOTFOUND;
	ent_to_loc(&ix->tab[i], out);
	return 0;
}

bool
index_has_hi32(const struct store_index *ix, uint32_t hi)
{
	uint64_t lo = (uint64_t)hi << 32, top = lo | 0xffffffffu;
	/* every tag with these high bits has its home in [first, last]
	 * (one or two entries while cap <= 2^32) and sits in the run of
	 * full entries from its home on */
	size_t first = home(ix, lo), last = home(ix, top), i = first;
	size_t span = last - first; /* home is monotonic in the tag */

	if (hi == 0)
		return false;
	for (size_t n = 0; n < ix->cap; n++) {
		if (ix->tab[i].tag == 0) {
			if (n >= span)
				return false; /* past every home it could have */
		} else if ((ix->tab[i].tag >> 32) == hi) {
			return true;
		}
		i = (i + 1 == ix->cap) ? 0 : i + 1;
	}
	return false;
}

/* Rehash into a table of new_cap entries; the old table is freed. */
static int
grow(struct store_index *ix, size_t new_cap)
{
	struct store_index nx = { .cap = new_cap };

	nx.tab = calloc(new_cap, sizeof(*nx.tab));
	if (nx.tab == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < ix->cap; i++) {
		const struct ent *e = &ix->tab[i];
		struct index_hkey hk = { .tag = e->tag };
		size_t j;

		if (e->tag == 0)
			continue;
		j = probe(&nx, hk);
		nx.tab[j] = *e;
	}
	free(ix->tab);
	ix->tab = nx.tab;
	ix->cap = new_cap;
	return 0;
}

int
index_upsert(struct store_index *ix, struct index_hkey hk,
	     const struct index_loc *loc)
{
	int rc = index_swap(ix, hk, loc, NULL);

	return rc < 0 ? rc : 0;
}

int
index_swap(struct store_index *ix, struct index_hkey hk,
	   const struct index_loc *loc, struct index_loc *old)
{
	size_t i;
	int rc, had;

	if (loc->slot > INDEX_MAX_SLOT || loc->off4k > INDEX_MAX_OFF4K ||
	    loc->len4k < 1 || loc->len4k > INDEX_MAX_LEN4K)
		return -EINVAL;
	if ((ix->count + 1) * INDEX_GROW_DEN > ix->cap * INDEX_GROW_NUM) {
		rc = grow(ix, ix->cap + ix->cap / 2);
		if (rc < 0)
			return rc;
	}
	i = probe(ix, hk);
	had = ix->tab[i].tag != 0;
	if (!had)
		ix->count++;
	else if (old != NULL)
		ent_to_loc(&ix->tab[i], old);
	ix->tab[i].tag = hk.tag;
	ix->tab[i].slotf = loc->slot | ((uint32_t)loc->flags << 24);
	ix->tab[i].offlen = (loc->off4k << 14) | (loc->len4k - 1);
	return had;
}

/* Backward-shift deletion of the entry at i. */
static void
erase(struct store_index *ix, size_t i)
{
	size_t j = i;

	for (;;) {
		size_t h;

		j = (j + 1 == ix->cap) ? 0 : j + 1;
		if (ix->tab[j].tag == 0)
			break;
		h = home(ix, ix->tab[j].tag);
		/* move j back to i unless its home lies cyclically in (i, j] */
		if ((i < j) ? (h > i && h <= j) : (h > i || h <= j))
			continue;
		ix->tab[i] = ix->tab[j];
		i = j;
	}
	ix->tab[i].tag = 0;
	ix->count--;
}

int
index_remove(struct store_index *ix, struct index_hkey hk)
{
	size_t i = probe(ix, hk);

	if (ix->tab[i].tag == 0)
		return -GPC_ENOTFOUND;
	erase(ix, i);
	return 0;
}

int
index_remove_at(struct store_index *ix, struct index_hkey hk, uint32_t slot,
		uint32_t off4k)
{
	size_t i = probe(ix, hk);
	struct index_loc l;

	if (ix->tab[i].tag == 0)
		return -GPC_ENOTFOUND;
	ent_to_loc(&ix->tab[i], &l);
	if (l.slot != slot || l.off4k != off4k)
		return -GPC_ENOTFOUND;
	erase(ix, i);
	return 0;
}

int
index_set_flags(struct store_index *ix, struct index_hkey hk, uint8_t set,
		uint8_t clear)
{
	size_t i = probe(ix, hk);
	uint32_t f;

	if (ix->tab[i].tag == 0)
		return -GPC_ENOTFOUND;
	f = ix->tab[i].slotf >> 24;
	f = (f | set) & ~(uint32_t)clear;
	ix->tab[i].slotf = (ix->tab[i].slotf & 0xffffffu) | (f << 24);
	return 0;
}

size_t
index_count(const struct store_index *ix)
{
	return ix->count;
}

size_t
index_bytes(const struct store_index *ix)
{
	return sizeof(*ix) + ix->cap * sizeof(struct ent);
}
