/*
 * test_index.c - the DRAM index against a plain reference (a dense array
 * indexed by key number) under random upserts, removes, conditional
 * removes and flag changes, across growth; and the DRAM cost per block.
 * The TTL table (ttl.h) the same way.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gpucache/gpucache.h"
#include "store/index.h"
#include "store/ttl.h"
#include "test.h"

#define NKEYS 300000u

struct ref {
	uint8_t present;
	struct index_loc loc;
};

static struct index_hkey
hk_of(uint32_t i)
{
	uint8_t key[32];

	test_key(i, key);
	return index_hash(3, key);
}

/* The TTL table against a dense array: sets, replaces and deletes of
 * random keys, across growth (backward-shift deletion keeps every
 * survivor findable). */
static void
test_ttl_table(void)
{
	enum { N = 50000 };
	uint32_t *ref = calloc(N, sizeof(*ref));
	struct store_ttl *t;
	uint64_t seed = 7;
	size_t count = 0, mism = 0;

	REQUIRE(ref != NULL && ttl_create(&t) == 0);
	for (unsigned op = 0; op < 400000; op++) {
		uint32_t i = (uint32_t)(test_rand(&seed) % N);
		uint32_t e = 1 + (uint32_t)(test_rand(&seed) % 1000000);

		if (test_rand(&seed) % 3) {
			CHECK_RC(ttl_set(t, hk_of(i).tag, e), 0);
			count += ref[i] == 0;
			ref[i] = e;
		} else {
			ttl_del(t, hk_of(i).tag);
			count -= ref[i] != 0;
			ref[i] = 0;
		}
	}
	CHECK_RC(ttl_count(t), count);
	for (uint32_t i = 0; i < N; i++)
		mism += ttl_get(t, hk_of(i).tag) != ref[i];
	CHECK_RC(mism, 0);
	CHECK_RC(ttl_get(t, hk_of(N + 1).tag), 0);
	CHECK(ttl_bytes(t) <= 64 * count);
	ttl_destroy(t);
	free(ref);
}

/* index_has_hi32 finds every present tag by its high 32 bits, also in
 * runs that wrap around the table's end, and nothing once it is gone. */
static void
test_has_hi32(void)
{
	struct store_index *ix;
	struct index_loc l = { .slot = 1, .len4k = 1 };
	uint64_t seed = 7, tags[3000];
	size_t miss = 0, wrong = 0;

	REQUIRE(index_create(4000, &ix) == 0);
	for (unsigned i = 0; i < 3000; i++) {
		tags[i] = test_rand(&seed) | 1;
		if (i % 100 == 0) /* crowd the table's end: runs wrap */
			tags[i] |= 0xfff0000000000000ull;
		if (i % 2 == 0)
			CHECK_RC(index_upsert(ix, (struct index_hkey){ tags[i] },
					      &l), 0);
	}
	for (unsigned i = 0; i < 3000; i++) {
		bool yes = index_has_hi32(ix, (uint32_t)(tags[i] >> 32));

		if (i % 2 == 0)
			miss += !yes;
		else
			wrong += yes; /* absent: a false yes needs equal high
				       * bits, about 1 in 2^32 here */
	}
	CHECK_RC(miss, 0);
	CHECK_RC(wrong, 0);
	CHECK(!index_has_hi32(ix, 0));
	/* all tags with the same high bits, at the lowest and highest low
	 * bits: both homes; the lower one removed leaves the higher found */
	{
		uint64_t lo = 0x1234567800000001ull, hi = 0x12345678ffffffffull;

		CHECK_RC(index_upsert(ix, (struct index_hkey){ hi }, &l), 0);
		CHECK(index_has_hi32(ix, 0x12345678u));
		CHECK_RC(index_upsert(ix, (struct index_hkey){ lo }, &l), 0);
		CHECK_RC(index_remove(ix, (struct index_hkey){ lo }), 0);
		CHECK(index_has_hi32(ix, 0x12345678u));
		CHECK_RC(index_remove(ix, (struct index_hkey){ hi }), 0);
		CHECK(!index_has_hi32(ix, 0x12345678u));
	}
	index_destroy(ix);
}

int
main(void)
{
	struct store_index *ix;
	struct ref *ref = calloc(NKEYS, sizeof(*ref));
	uint64_t seed = 42;
	size_t count = 0, mism = 0;

	REQUIRE(ref != NULL && index_create(0, &ix) == 0);
	for (unsigned op = 0; op < 1500000; op++) {
		uint32_t i = (uint32_t)(test_rand(&seed) % NKEYS);
		unsigned what = (unsigned)(test_rand(&seed) % 10);
		struct index_hkey hk = hk_of(i);
		struct index_loc l = { .slot = (uint32_t)(test_rand(&seed) & 0xffffff),
				       .off4k = (uint32_t)(test_rand(&seed) & 0x3ffff),
				       .len4k = 1 + (uint32_t)(test_rand(&seed) % 16384) };

		if (what < 6) {
			CHECK_RC(index_upsert(ix, hk, &l), 0);
			count += !ref[i].present;
			ref[i].present = 1;
			ref[i].loc = l;
		} else if (what < 8) {
			CHECK_RC(index_remove(ix, hk),
				 ref[i].present ? 0 : -GPC_ENOTFOUND);
			count -= ref[i].present;
			ref[i].present = 0;
		} else if (what < 9 && ref[i].present) {
			/* conditional remove at a wrong place keeps it */
			CHECK_RC(index_remove_at(ix, hk, ref[i].loc.slot,
						 ref[i].loc.off4k ^ 1),
				 -GPC_ENOTFOUND);
		} else if (ref[i].present) {
			CHECK_RC(index_set_flags(ix, hk, INDEX_F_REF, 0), 0);
			ref[i].loc.flags |= INDEX_F_REF;
		}
	}
	CHECK_RC(index_count(ix), count);
	for (uint32_t i = 0; i < NKEYS; i++) {
		struct index_loc l;
		int rc = index_lookup(ix, hk_of(i), &l);

		if (!ref[i].present) {
			mism += rc != -GPC_ENOTFOUND;
			continue;
		}
		mism += rc != 0 || l.slot != ref[i].loc.slot ||
			l.off4k != ref[i].loc.off4k ||
			l.len4k != ref[i].loc.len4k ||
			l.flags != ref[i].loc.flags;
	}
	CHECK_RC(mism, 0);
	printf("index: %zu blocks, %zu bytes, %.1f bytes per block\n",
	       index_count(ix), index_bytes(ix),
	       (double)index_bytes(ix) / (double)index_count(ix));
	CHECK((double)index_bytes(ix) / (double)index_count(ix) <= 32.0);
	/* out-of-range locations are refused */
	{
		struct index_loc bad = { .slot = 1u << 24, .len4k = 1 };
		CHECK_RC(index_upsert(ix, hk_of(1), &bad), -EINVAL);
		bad = (struct index_loc){ .len4k = 0 };
		CHECK_RC(index_upsert(ix, hk_of(1), &bad), -EINVAL);
	}
	index_destroy(ix);
	free(ref);
	test_ttl_table();
	test_has_hi32();
	{ /* the fingerprint is on flash (a summary entry's parent, format.md):
	   * golden values, the same on every host */
		uint8_t k[32];

		for (unsigned i = 0; i < 32; i++)
			k[i] = (uint8_t)i;
		CHECK(index_key_hash(k) == 0x3523581fe96e4c05ull);
		CHECK(index_hash(7, k).tag == 0x86e6e6de6cf98786ull);
		CHECK(index_hash_kh(7, index_key_hash(k)).tag ==
		      index_hash(7, k).tag);
	}
	return test_summary("test_index");
}
