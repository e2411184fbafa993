/*
 * test_policy.c - the cache policy (src/store/policy.c) on hand-made
 * reference streams with known right answers, then the store that runs
 * it: a one-hit-wonder scan does not flush a hot set, a pinned block
 * survives any pressure and pins stay within the quota or the pool, a re-put of a held key is a touch (no write,
 * the first bytes stay), a refused block reads as a miss, a durable put
 * is always written.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "gpucache/gpucache.h"
#include "store/index.h"
#include "store/policy.h"
#include "store/store.h"
#include "test.h"

#define NS 11
#define BLK 4096u

static uint64_t
fp_of(uint64_t i)
{
	uint64_t s = i + 1;

	return test_rand(&s) | 1; /* never 0 */
}

static void
test_sketch(void)
{
	struct policy_opts o = { .capacity = 1000 };
	struct policy_stats s;
	struct policy *p;

	REQUIRE(policy_create(&o, &p) == 0);
	CHECK_RC(policy_freq(p, fp_of(1)), 0);
	for (int i = 0; i < 3; i++)
		policy_ref(p, fp_of(1));
	CHECK_RC(policy_freq(p, fp_of(1)), 3);
	for (int i = 0; i < 40; i++)
		policy_ref(p, fp_of(2));
	CHECK_RC(policy_freq(p, fp_of(2)), 3); /* saturates */
	/* a window of 8 x capacity references (43 so far) halves every
	 * count: 3 becomes 1 */
	for (uint64_t i = 0; i < 8000 - 43; i++)
		policy_ref(p, fp_of(100000 + i % 500));
	policy_get_stats(p, &s);
	CHECK_RC(s.resets, 1);
	CHECK_RC(policy_freq(p, fp_of(2)), 1);
	CHECK_RC(policy_freq(p, fp_of(1)), 1);
	CHECK_RC(policy_freq(p, fp_of(100000)), 1);
	/* a scan of new keys, more than the table holds, ages it sooner */
	for (uint64_t i = 0; i < 20000; i++)
		policy_ref(p, fp_of(200000 + i));
	policy_get_stats(p, &s);
	CHECK(s.resets > 2);
	CHECK_RC(policy_freq(p, fp_of(2)), 0);
	/* never seen: the table's false matches are rare (8 in 16384) */
	{
		unsigned fm = 0;

		for (uint64_t i = 0; i < 10000; i++)
			fm += policy_freq(p, fp_of(1u << 28 | i)) != 0;
		CHECK(fm < 50);
	}
	policy_destroy(p);
	CHECK_RC(policy_create(&(struct policy_opts){ 0 }, &p), -EINVAL);
}

/* A hot set referenced over and over, interleaved with a stream of keys
 * never seen again, more than the cache holds: refusing the stream is
 * right, and the minis must find that out. */
static void
test_auto_refuses_scan(void)
{
	struct policy_opts o = { .capacity = 4096, .sample_shift = 2 };
	struct policy_stats s;
	struct policy *p;
	uint64_t uniq = 1u << 30;
	unsigned cold = 0, hot = 0;

	REQUIRE(policy_create(&o, &p) == 0);
	for (int round = 0; round < 60; round++)
		for (uint64_t h = 0; h < 1500; h++) {
			policy_ref(p, fp_of(h));
			for (int j = 0; j < 5; j++)
				policy_ref(p, fp_of(uniq++));
		}
	policy_get_stats(p, &s);
	CHECK_RC(s.mode, POLICY_ADMIT_SEEN);
	CHECK(s.mini_hits[1] > s.mini_hits[0]);
	/* never-seen keys are refused, the hot set admitted */
	for (uint64_t i = 0; i < 1000; i++)
		cold += policy_admit(p, fp_of(uniq + 10 + i), false);
	for (uint64_t h = 0; h < 1500; h++)
		hot += policy_admit(p, fp_of(h), false);
	CHECK(cold <= 5);
	CHECK(hot >= 1425);
	policy_destroy(p);
}

/* Chains of three hot keys and a tail never seen again: the hot blocks
 * fit the capacity, with the tails they do not. The minis choose
 * `notail`: it refuses the unseen tails and admits the rest, where `all`
 * thrashes and `seen` loses the hot blocks' first round. */
static void
test_auto_refuses_tails(void)
{
	struct policy_opts o = { .capacity = 2048 }; /* every chain sampled */
	struct policy_stats s;
	struct policy *p;
	uint64_t uniq = 1u << 30;

	REQUIRE(policy_create(&o, &p) == 0);
	for (int round = 0; round < 20; round++)
		for (uint64_t h = 0; h < 600; h++) {
			uint64_t fps[4] = { fp_of(3 * h), fp_of(3 * h + 1),
					    fp_of(3 * h + 2), fp_of(uniq++) };

			policy_ref_chain(p, fps, NULL, 4, true, NULL);
		}
	policy_get_stats(p, &s);
	CHECK_RC(s.mode, POLICY_ADMIT_NOTAIL);
	CHECK(s.mini_hits[2] > 2 * s.mini_hits[0]);
	CHECK(!policy_admit(p, fp_of(uniq + 10), true));  /* an unseen tail */
	CHECK(policy_admit(p, fp_of(uniq + 11), false));  /* unseen, not one */
	CHECK(policy_admit(p, fp_of(2), true));           /* a seen tail */
	/* a chain that ends in the middle of a piece of a longer one: only
	 * the last piece's last key is a tail */
	{
		uint64_t kh[3] = { 71, 72, 73 };

		policy_link_chain(p, 5, 0, kh, 3, false);
		CHECK(!policy_tail(p, 5, 73));
		policy_link_chain(p, 5, 0, kh, 3, true);
		CHECK(policy_tail(p, 5, 73) && !policy_tail(p, 5, 72));
		CHECK_RC(policy_parent(p, 5, 73), 72);
		CHECK(!policy_tail(p, 6, 73)); /* another scope */
		kh[0] = 73; /* the chain goes on past 73: no longer a tail */
		policy_link_chain(p, 5, 72, kh, 1, false);
		CHECK(!policy_tail(p, 5, 73));
		CHECK_RC(policy_parent(p, 5, 73), 72);
		/* a chain of one key: its tail; its parent, known from a
		 * longer chain, stays */
		policy_link_chain(p, 5, 0, kh, 1, true);
		CHECK(policy_tail(p, 5, 73));
		CHECK_RC(policy_parent(p, 5, 73), 72);
		/* a root that was a chain of one, then the first key of a
		 * longer chain: no longer a tail */
		kh[0] = 90;
		kh[1] = 91;
		policy_link_chain(p, 5, 0, kh, 1, true);
		CHECK(policy_tail(p, 5, 90));
		policy_link_chain(p, 5, 0, kh, 2, true);
		CHECK(!policy_tail(p, 5, 90) && policy_tail(p, 5, 91));
		CHECK_RC(policy_parent(p, 5, 90), 0);
	}
	policy_destroy(p);
}

/* A loop over half the capacity: everything comes back, so every block
 * must be admitted. */
static void
test_auto_admits_loop(void)
{
	struct policy_opts o = { .capacity = 4096, .sample_shift = 2 };
	struct policy_stats s;
	struct policy *p;

	REQUIRE(policy_create(&o, &p) == 0);
	for (int round = 0; round < 50; round++)
		for (uint64_t h = 0; h < 2048; h++)
			policy_ref(p, fp_of(h));
	policy_get_stats(p, &s);
	CHECK_RC(s.mode, POLICY_ADMIT_ALL);
	CHECK(policy_admit(p, fp_of(1u << 30), false));
	policy_destroy(p);
}

/*
 * Chains that all start at one root (a service's system prompt): the
 * minis sample keys, so they see about 1 in 2^shift of every chain's
 * keys whatever the root. Sampled by their first key, as before, every
 * chain was in or none was: with this root, none, and the minis never
 * learned anything (mini_refs 0).
 */
static void
test_minis_sample_keys(void)
{
	struct policy_opts o = { .capacity = 4096, .sample_shift = 2 };
	uint64_t chain[33], root = 0;
	struct policy_stats s;
	struct policy *p;

	/* a root the old sample left out: its fingerprint's top 2 bits of
	 * mix64 are not 0 (3 roots in 4 are such) */
	while (policy_sampled(fp_of(root), 2))
		root++;
	REQUIRE(policy_create(&o, &p) == 0);
	for (uint64_t c = 0; c < 200; c++) {
		chain[0] = fp_of(root);
		for (unsigned j = 1; j < 33; j++)
			chain[j] = fp_of(1000000 + c * 100 + j);
		policy_ref_chain(p, chain, NULL, 33, true, NULL);
	}
	policy_get_stats(p, &s);
	printf("minis: %" PRIu64 " of %" PRIu64 " references sampled\n",
	       s.mini_refs, s.refs);
	CHECK(s.mini_refs * 8 > s.refs);     /* about a quarter */
	CHECK(s.mini_refs * 8 < s.refs * 3);
	policy_destroy(p);
	/* a whole piece of a chain (1024 keys) at 1 in 2: every sampled key
	 * goes through the minis (they stopped at 256) */
	{
		struct policy_opts o1 = { .capacity = 4096, .sample_shift = 1 };
		static uint64_t ch[1024];
		uint64_t want = 0;

		REQUIRE(policy_create(&o1, &p) == 0);
		for (unsigned j = 0; j < 1024; j++) {
			ch[j] = fp_of(5000000 + j);
			want += policy_sampled(ch[j], 1);
		}
		policy_ref_chain(p, ch, NULL, 1024, true, NULL);
		policy_get_stats(p, &s);
		CHECK_RC(s.mini_refs, want);
		policy_destroy(p);
	}
}

/* A loop over 100 keys: every reuse is 100 references later; each
 * caller's share (policy_ref_chain's out) is its keys' reuses. */
static void
test_reuse_histogram(void)
{
	struct policy_opts o = { .capacity = 1000 };
	struct policy_stats s;
	struct policy *p;

	struct policy_reuse odd = { 0 }, even = { 0 };

	REQUIRE(policy_create(&o, &p) == 0);
	for (int round = 0; round < 10; round++)
		for (uint64_t h = 0; h < 100; h++) {
			uint64_t fp = fp_of(h);

			/* a caller's share: the keys it looked up, only */
			policy_ref_chain(p, &fp, NULL, 1, false,
					 h % 2 ? &odd : &even);
		}
	policy_get_stats(p, &s);
	CHECK_RC(s.reuse_far, 100);  /* the first round */
	CHECK_RC(s.reuse[6], 900);   /* [64, 128) */
	CHECK_RC(s.reuse_sum, 90000);
	CHECK_RC(odd.far, 50);
	CHECK_RC(odd.n[6], 450);
	CHECK_RC(odd.n[5] + odd.n[7], 0);
	CHECK_RC(odd.sum, 45000);
	CHECK_RC(even.far + even.n[6], 50 + 450);
	policy_ref(p, fp_of(0)); /* no out: the caller's shares stay */
	CHECK_RC(odd.n[6] + even.n[6], 900);
	policy_destroy(p);
}

/* ---- the store that runs it ---- */

static struct store_memdisk *md;

/* write_amp_max of the stores mkstore opens (0: the default) */
static double mk_write_amp;
/* and reinsert_pct (0: the default, 90): the tests that count what a
 * budget keeps per segment set 50, the share they were written for */
static unsigned mk_reinsert_pct;
/* and keep_orphans */
static bool mk_keep_orphans;
/* the clock their TTLs run by */
static uint64_t fake_now = 1700000000;

static uint64_t
fake_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

/* A store of segs segments of 31 blocks. */
static struct store *
mkstore_segs(enum policy_mode mode, unsigned segs)
{
	struct store_format_opts fo = { .k = 1, .m = 0,
					.chunk_size = 64 * BLK + BLK };
	struct store_opts so = { .policy = mode, .wbuf_segs = 2,
				 .write_amp_max = mk_write_amp,
				 .reinsert_pct = mk_reinsert_pct,
				 .keep_orphans = mk_keep_orphans,
				 .clock = fake_clock };
	struct store_io *io;
	struct store *st;

	store_memdisk_destroy(md);
	REQUIRE(store_memdisk_create(1, segs * (64 * BLK + BLK) + (1u << 20),
				     &md) == 0);
	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_format(io, &fo) == 0);
	store_io_close(io);
	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_open(io, &so, &st) == 0);
	return st;
}

static struct store *
mkstore(enum policy_mode mode)
{
	return mkstore_segs(mode, 40);
}

/* One whose reclaim rewrites at most pct% of a segment. */
static struct store *
mkstore_pct(enum policy_mode mode, unsigned pct)
{
	struct store *st;

	mk_reinsert_pct = pct;
	st = mkstore(mode);
	mk_reinsert_pct = 0;
	return st;
}

/* Block i (its bytes test_fill(i)) into namespace ns. */
static int
put_to(struct store *st, uint64_t ns, uint64_t i, unsigned flags)
{
	uint8_t key[32], buf[BLK];

	test_key(i, key);
	test_fill(i, buf, BLK);
	return store_put(st, ns, key, buf, BLK, flags);
}

static int
put(struct store *st, uint64_t i, unsigned flags)
{
	return put_to(st, NS, i, flags);
}

/* Block i of ns: 1 present with the bytes test_fill(want_fill); 0 miss;
 * -1 wrong bytes or an error. */
static int
get_from(struct store *st, uint64_t ns, uint64_t i, uint64_t want_fill)
{
	static uint8_t got[BLK] __attribute__((aligned(4096)));
	uint8_t key[32], want[BLK];
	int rc;

	test_key(i, key);
	test_fill(want_fill, want, BLK);
	rc = store_get(st, ns, key, got, BLK);
	if (rc == -GPC_ENOTFOUND)
		return 0;
	return rc == (int)BLK && memcmp(got, want, BLK) == 0 ? 1 : -1;
}

static int
get(struct store *st, uint64_t i, uint64_t want_fill)
{
	return get_from(st, NS, i, want_fill);
}

/* An engine's request: LOOKUP the key, GET it on a hit, PUT on a miss. */
static int
request(struct store *st, uint64_t i)
{
	uint8_t key[32];

	test_key(i, key);
	if (store_longest_prefix(st, NS, key, 1) == 1)
		return get(st, i, i);
	REQUIRE(put(st, i, 0) == 0);
	return 0;
}

/* Returns the last round's hot hits. */
static unsigned
scan_run(enum policy_mode mode, struct store_stats *out)
{
	struct store *st = mkstore(mode);
	uint64_t uniq = 1000000;
	unsigned hits = 0, wrong = 0;

	/* capacity 1,280 blocks, hot set 500, 6 scan blocks per hot one: each
	 * round scans 2.3 x the capacity */
	for (int round = 0; round < 12; round++) {
		hits = 0;
		for (uint64_t h = 0; h < 500; h++) {
			int rc = request(st, h);

			hits += rc == 1;
			wrong += rc < 0;
			for (int j = 0; j < 6; j++)
				wrong += request(st, uniq++) < 0;
		}
	}
	store_get_stats(st, out);
	CHECK_RC(wrong, 0);
	store_close(st);
	return hits;
}

static void
test_scan_keeps_hot_set(void)
{
	struct store_stats s;
	unsigned hits = scan_run(POLICY_AUTO, &s);

	printf("scan: last round %u/500 hot hits; %" PRIu64 " refused, %"
	       PRIu64 " written, %" PRIu64 " reinserted, %" PRIu64
	       " evicted, capacity %" PRIu64 " blocks, mode %s\n", hits,
	       s.puts_refused, s.puts, s.blocks_reinserted, s.blocks_evicted,
	       s.capacity_bytes / (2 * BLK), policy_mode_name(s.pol.mode));
	CHECK(hits >= 450); /* the last round found the hot set */
	CHECK(s.puts_refused > 0);
	/* a rule that refuses unseen blocks: with chains of one key each,
	 * seen and notail are the same rule */
	CHECK(s.pol.mode == POLICY_ADMIT_SEEN ||
	      s.pol.mode == POLICY_ADMIT_NOTAIL);
	/* and it is the admission that keeps it: admitting every block,
	 * the scan flushes it */
	hits = scan_run(POLICY_ADMIT_ALL, &s);
	printf("scan, admitting all: last round %u/500 hot hits\n", hits);
	CHECK(hits < 250);
}

static uint64_t ev_stored, ev_removed;

static void
ev_count(void *arg, int ev, uint64_t ns, const uint8_t *key)
{
	(void)arg;
	(void)key;
	CHECK_RC(ns, NS);
	if (ev == STORE_EV_STORED)
		ev_stored++;
	else if (ev == STORE_EV_REMOVED)
		ev_removed++;
}

/* KV events: one per new block, one per block evicted or deleted. */
static void
test_events(void)
{
	struct store *st = mkstore(POLICY_ADMIT_ALL);
	struct store_stats s;
	uint8_t key[32];

	store_set_event_cb(st, ev_count, NULL);
	for (uint64_t i = 0; i < 5000; i++) /* ~4x the capacity */
		REQUIRE(put(st, i, 0) == 0);
	test_key(4999, key);
	REQUIRE(put(st, 4999, STORE_PUT_IF_ABSENT) == 0); /* a touch */
	CHECK_RC(store_delete(st, NS, key), 0);
	store_get_stats(st, &s);
	CHECK_RC(ev_stored, 5000);
	CHECK(s.blocks_evicted > 3000);
	CHECK_RC(ev_removed, s.blocks_evicted + 1);
	store_close(st);
}

static void
test_pin_survives(void)
{
	struct store *st = mkstore(POLICY_ADMIT_ALL);
	uint8_t key[32];

	REQUIRE(put(st, 7, 0) == 0);
	test_key(7, key);
	REQUIRE(store_pin(st, NS, key, true) == 0);
	for (uint64_t i = 100; i < 20000; i++) /* ~8x the capacity */
		REQUIRE(put(st, i, 0) == 0);
	CHECK_RC(get(st, 7, 7), 1);
	CHECK_RC(get(st, 100, 100), 0); /* the pressure was real */
	store_close(st);
}

static int
put_ns(struct store *st, uint64_t ns, uint64_t i)
{
	return put_to(st, ns, i, 0);
}

static int
get_ns(struct store *st, uint64_t ns, uint64_t i)
{
	return get_from(st, ns, i, i);
}

static int
pin_ns(struct store *st, uint64_t ns, uint64_t i, bool pin)
{
	uint8_t key[32];

	test_key(i, key);
	return store_pin(st, ns, key, pin);
}

/*
 * Pins without a quota share a pool of 25% of the flash: pin until the
 * pool is full (whole segments of nothing but pinned blocks), refused
 * past it, then 8 x the capacity of pressure: every pinned block is
 * still there, exact, with no reinsertion budget left to the policy
 * (reclaim used to keep pins within 90% of a segment, then the budget).
 * Unpin, delete and a re-put give the room back.
 */
static void
test_pins_fill_pool(void)
{
	const uint64_t foot = 2 * BLK; /* header sector + data */
	struct store_stats s;
	uint64_t pool, npin = 0, lost = 0;
	uint8_t key[32];
	struct store *st;
	int rc = 0;

	mk_write_amp = 1.001; /* no reinsertion budget: pins alone */
	st = mkstore(POLICY_ADMIT_ALL);
	mk_write_amp = 0;

	store_get_stats(st, &s);
	pool = s.capacity_bytes * STORE_PIN_SHARED_PCT / 100;
	while (rc == 0) {
		REQUIRE(put_ns(st, NS, npin) == 0);
		rc = pin_ns(st, NS, npin, true);
		npin += rc == 0;
	}
	CHECK_RC(rc, -GPC_EQUOTA);
	CHECK_RC(npin, pool / foot);
	CHECK_RC(store_class_pinned(st, 0), npin * foot);
	CHECK_RC(pin_ns(st, NS, 0, true), 0); /* pinned already: no change */
	CHECK_RC(store_class_pinned(st, 0), npin * foot);
	CHECK_RC(pin_ns(st, NS, 1u << 30, true), -GPC_ENOTFOUND);
	for (uint64_t i = 100000; i < 100000 + 8 * s.capacity_bytes / foot;
	     i++)
		REQUIRE(put_ns(st, NS, i) == 0);
	store_get_stats(st, &s);
	CHECK(s.segs_evicted > 8 * s.nslots);
	for (uint64_t i = 0; i < npin; i++)
		lost += get_ns(st, NS, i) != 1;
	CHECK_RC(lost, 0);
	CHECK_RC(get_ns(st, NS, npin), 0); /* refused a pin: evicted */
	CHECK_RC(store_class_pinned(st, 0), npin * foot);
	/* room comes back: an unpin, a delete, a re-put of the key */
	CHECK_RC(pin_ns(st, NS, 0, false), 0);
	CHECK_RC(pin_ns(st, NS, 0, false), 0);
	test_key(1, key);
	CHECK_RC(store_delete(st, NS, key), 0);
	REQUIRE(put_ns(st, NS, 2) == 0);
	CHECK_RC(store_class_pinned(st, 0), (npin - 3) * foot);
	for (uint64_t i = 0; i < 3; i++) {
		REQUIRE(put_ns(st, NS, 500000 + i) == 0);
		CHECK_RC(pin_ns(st, NS, 500000 + i, true), 0);
	}
	REQUIRE(put_ns(st, NS, 500003) == 0);
	CHECK_RC(pin_ns(st, NS, 500003, true), -GPC_EQUOTA);
	store_close(st);
}

/*
 * A class with a quota pins within it, not in the pool; another class's
 * flood of 8 x the capacity takes neither its pinned blocks nor, while
 * it stays under its quota, the others.
 */
static void
test_pins_count_against_quota(void)
{
	struct store *st = mkstore(POLICY_ADMIT_ALL);
	const uint64_t nsa = (1ull << 48) | NS, nsb = (2ull << 48) | NS;
	const uint64_t foot = 2 * BLK;
	struct store_stats s;
	unsigned lost = 0;

	store_get_stats(st, &s);
	CHECK_RC(store_set_quota(st, 1, 60 * foot), 0);
	for (uint64_t i = 0; i < 60; i++) {
		REQUIRE(put_ns(st, nsa, i) == 0);
		CHECK_RC(pin_ns(st, nsa, i, i < 40), 0);
	}
	REQUIRE(put_ns(st, nsa, 60) == 0); /* 61 blocks: over the quota */
	CHECK_RC(pin_ns(st, nsa, 40, true), 0); /* pins: 41 of 60 */
	for (uint64_t i = 41; i < 60; i++)
		CHECK_RC(pin_ns(st, nsa, i, true), 0);
	CHECK_RC(pin_ns(st, nsa, 60, true), -GPC_EQUOTA);
	CHECK_RC(store_class_pinned(st, 1), 60 * foot);
	CHECK_RC(store_class_pinned(st, 0), 0);
	/* the pool is untouched by class 1's pins: class 2 pins in it */
	REQUIRE(put_ns(st, nsb, 7) == 0);
	CHECK_RC(pin_ns(st, nsb, 7, true), 0);
	for (uint64_t i = 1000; i < 1000 + 8 * s.capacity_bytes / foot; i++)
		REQUIRE(put_ns(st, nsb, i) == 0);
	for (uint64_t i = 0; i < 60; i++)
		lost += get_ns(st, nsa, i) != 1;
	CHECK_RC(lost, 0);
	CHECK_RC(get_ns(st, nsb, 7), 1);
	CHECK(store_class_usage(st, 1) <= 61 * foot);
	/* a quota lowered under what is pinned keeps the pins, refuses
	 * new ones */
	CHECK_RC(store_set_quota(st, 1, 10 * foot), 0);
	CHECK_RC(pin_ns(st, nsa, 0, false), 0);
	CHECK_RC(pin_ns(st, nsa, 0, true), -GPC_EQUOTA);
	CHECK_RC(get_ns(st, nsa, 59), 1);
	store_close(st);
}

static int
put_hint(struct store *st, uint64_t i, uint64_t fill, uint32_t ttl_s,
	 uint8_t prio, unsigned flags)
{
	struct store_hint h = { .ttl_s = ttl_s, .prio = prio };
	uint8_t key[32], buf[BLK];

	test_key(i, key);
	test_fill(fill, buf, BLK);
	return store_put_hint(st, NS, key, buf, BLK, flags, &h);
}

static unsigned
lookup3(struct store *st, uint64_t a, uint64_t b, uint64_t c)
{
	uint8_t keys[3 * 32];

	test_key(a, keys);
	test_key(b, keys + 32);
	test_key(c, keys + 64);
	return store_longest_prefix(st, NS, keys, 3);
}

/* Reopen the store on the same devices (recovery from the summaries),
 * after a clean close, or after a crash (nothing sealed or flushed at
 * the end). */
static struct store *
reopen_after(struct store *st, bool crash)
{
	struct store_opts so = { .policy = POLICY_ADMIT_ALL, .wbuf_segs = 2,
				 .clock = fake_clock };
	struct store_io *io;

	if (crash) {
		store_abandon(st);
	} else {
		REQUIRE(store_flush(st) == 0);
		store_close(st);
	}
	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_open(io, &so, &st) == 0);
	return st;
}

static struct store *
reopen(struct store *st)
{
	return reopen_after(st, false);
}

/*
 * Pins survive a restart: a pin is a marker in the log, and a pinned
 * block that reclaim rewrites is written pinned. Block 1 is pinned in
 * the segment it sits in, block 2 pinned later (its marker in a newer
 * segment), block 3 pinned then unpinned, block 4 never; after a
 * restart, 8 x the capacity of pressure (every segment reclaimed, the
 * pinned blocks rewritten many times), and another restart, 1 and 2 are
 * there and pinned (their room counted: a pin past the pool is
 * refused), 3 and 4 are gone. A crash after a clean close is a restart.
 */
static void
test_pins_survive_restart(void)
{
	struct store *st = mkstore(POLICY_ADMIT_ALL);
	struct store_stats s;
	uint64_t pinned;
	uint8_t key[32];

	for (uint64_t i = 1; i <= 4; i++)
		REQUIRE(put(st, i, 0) == 0);
	test_key(1, key);
	CHECK_RC(store_pin(st, NS, key, true), 0);
	for (uint64_t i = 100; i < 200; i++) /* a few segments on */
		REQUIRE(put(st, i, 0) == 0);
	test_key(2, key);
	CHECK_RC(store_pin(st, NS, key, true), 0);
	test_key(3, key);
	CHECK_RC(store_pin(st, NS, key, true), 0);
	CHECK_RC(store_pin(st, NS, key, false), 0);
	pinned = store_class_pinned(st, 0);
	CHECK_RC(pinned, 2 * 2 * BLK);
	{ /* markers are not blocks: fsck finds nothing wrong */
		struct store_fsck_report fr;

		CHECK_RC(store_flush(st), 0);
		CHECK_RC(store_fsck(st, NULL, NULL, &fr), 0);
		CHECK(fr.segs > 1);
		CHECK_RC(fr.blocks_bad, 0);
		CHECK_RC(fr.blocks, 104);
	}
	st = reopen(st);
	CHECK_RC(store_class_pinned(st, 0), pinned);
	store_get_stats(st, &s);
	for (uint64_t i = 100000; i < 100000 + 8 * s.capacity_bytes / (2 * BLK);
	     i++)
		REQUIRE(put(st, i, 0) == 0);
	st = reopen(st);
	CHECK_RC(store_class_pinned(st, 0), pinned);
	CHECK_RC(get(st, 1, 1), 1);
	CHECK_RC(get(st, 2, 2), 1);
	CHECK_RC(get(st, 3, 3), 0);
	CHECK_RC(get(st, 4, 4), 0);
	/* unpinned after the restart, it goes at the next round */
	test_key(1, key);
	CHECK_RC(store_pin(st, NS, key, false), 0);
	st = reopen(st);
	CHECK_RC(store_class_pinned(st, 0), 2 * BLK);
	for (uint64_t i = 200000; i < 200000 + 8 * s.capacity_bytes / (2 * BLK);
	     i++)
		REQUIRE(put(st, i, 0) == 0);
	CHECK_RC(get(st, 1, 1), 0);
	CHECK_RC(get(st, 2, 2), 1);
	store_close(st);
}

/* Pinned bytes of class 0, as the store counts them. */
static uint64_t
pinned_now(struct store *st)
{
	return store_class_pinned(st, 0);
}

/*
 * A pin marker names the record it pins: a put of the key reserved
 * before the pin (in an older segment) and committed after it replaces
 * the pinned block, and a restart must not pin the new one (the marker
 * is later in the log than the new record's segment). (The review's
 * case.)
 */
static void
test_pin_marker_vs_late_commit(void)
{
	struct store *st = mkstore(POLICY_ADMIT_ALL);
	struct store_resv r;
	uint8_t key[32], buf[BLK];
	size_t o = 0;

	REQUIRE(put(st, 1, 0) == 0);
	REQUIRE(store_flush(st) == 0);
	test_key(1, key);
	REQUIRE(store_put_reserve(st, NS, key, BLK, &r) == 0); /* v2 in A */
	test_fill(2, buf, BLK);
	for (unsigned i = 0; i < r.iovcnt; o += r.iov[i++].iov_len)
		memcpy(r.iov[i].iov_base, buf + o, r.iov[i].iov_len);
	for (uint64_t i = 100; i < 140; i++) /* B opens */
		REQUIRE(put(st, i, 0) == 0);
	CHECK_RC(store_pin(st, NS, key, true), 0); /* marker in B, for v1 */
	CHECK_RC(store_put_commit(st, &r, 0, NULL, NULL), 0);
	while (store_pending(st) > 0)
		store_poll(st, 0);
	CHECK_RC(pinned_now(st), 0);
	st = reopen(st);
	CHECK_RC(get(st, 1, 2), 1);
	CHECK_RC(pinned_now(st), 0);
	store_close(st);
}

/*
 * A pin is as durable as a delete: flushed, it survives a crash (block 1,
 * then 8 x the capacity of pressure); not flushed, it may be lost with
 * the open segment, but the block and its bytes are what they were.
 */
static void
test_pins_survive_crash(void)
{
	struct store *st = mkstore(POLICY_ADMIT_ALL);
	struct store_stats s;
	uint8_t key[32];

	for (uint64_t i = 1; i <= 2; i++)
		REQUIRE(put(st, i, 0) == 0);
	REQUIRE(store_flush(st) == 0);
	test_key(1, key);
	CHECK_RC(store_pin(st, NS, key, true), 0);
	REQUIRE(store_flush(st) == 0);
	test_key(2, key);
	CHECK_RC(store_pin(st, NS, key, true), 0); /* not flushed */
	st = reopen_after(st, true);
	CHECK_RC(get(st, 1, 1), 1);
	CHECK_RC(get(st, 2, 2), 1);
	CHECK(store_class_pinned(st, 0) >= 2 * BLK);
	store_get_stats(st, &s);
	for (uint64_t i = 100000; i < 100000 + 8 * s.capacity_bytes / (2 * BLK);
	     i++)
		REQUIRE(put(st, i, 0) == 0);
	CHECK_RC(get(st, 1, 1), 1);
	CHECK(get(st, 2, 2) >= 0); /* there or not, never wrong bytes */
	store_close(st);
}

/*
 * TTL: a block is a hit until its expiry, a miss from then on; a LOOKUP
 * stops at it; it cannot be pinned or deduped; after a restart the same
 * (its expiry is in the summary), and an expired replacement does not
 * bring back the block it replaced. Bad hints are refused.
 */
static void
test_ttl(void)
{
	struct store *st = mkstore(POLICY_ADMIT_ALL);
	struct store_hint bad = { .ttl_s = STORE_MAX_TTL + 1 };
	struct store_stats s;
	uint8_t key[32], buf[BLK];

	REQUIRE(put(st, 1, 0) == 0);                     /* no TTL */
	REQUIRE(put_hint(st, 2, 2, 10, 0, 0) == 0);      /* 10 s */
	REQUIRE(put_hint(st, 3, 3, 100, 0, 0) == 0);     /* 100 s */
	fake_now += 9;
	CHECK_RC(get(st, 2, 2), 1);
	CHECK_RC(lookup3(st, 1, 2, 3), 3);
	fake_now += 1; /* 10 s: 2 has expired */
	CHECK_RC(lookup3(st, 1, 2, 3), 1);
	CHECK_RC(get(st, 2, 2), 0);
	CHECK_RC(get(st, 3, 3), 1);
	test_key(2, key);
	CHECK_RC(store_exists(st, NS, key), 0);
	CHECK_RC(store_pin(st, NS, key, true), -GPC_ENOTFOUND);
	CHECK_RC(store_delete(st, NS, key), -GPC_ENOTFOUND);
	store_get_stats(st, &s);
	CHECK_RC(s.blocks_expired, 1);
	CHECK_RC(s.ttl_blocks, 1); /* 3's */
	/* an expired key is not held: put-if-absent writes the new bytes */
	REQUIRE(put_hint(st, 2, 22, 0, 0, STORE_PUT_IF_ABSENT) == 0);
	CHECK_RC(get(st, 2, 22), 1);
	/* a held key with a TTL: the touch keeps its expiry */
	REQUIRE(put_hint(st, 3, 3, 5000, 0, STORE_PUT_IF_ABSENT) == 0);
	/* bad hints */
	test_key(9, key);
	test_fill(9, buf, BLK);
	CHECK_RC(store_put_hint(st, NS, key, buf, BLK, 0, &bad), -EINVAL);
	bad = (struct store_hint){ .prio = 3 };
	CHECK_RC(store_put_hint(st, NS, key, buf, BLK, 0, &bad), -EINVAL);
	CHECK_RC(get(st, 9, 9), 0);
	/* 4: no TTL, then replaced by a put with one */
	REQUIRE(put(st, 4, 4) == 0);
	REQUIRE(store_flush(st) == 0);
	REQUIRE(put_hint(st, 4, 44, 50, 0, 0) == 0);
	st = reopen(st);
	CHECK_RC(get(st, 1, 1), 1);
	CHECK_RC(get(st, 2, 22), 1);
	CHECK_RC(get(st, 3, 3), 1);
	CHECK_RC(get(st, 4, 44), 1);
	store_get_stats(st, &s);
	CHECK_RC(s.ttl_blocks, 2);
	fake_now += 90; /* 3 (at 100 s) and 4 (at 50 s) have expired */
	CHECK_RC(get(st, 3, 3), 0);
	st = reopen(st);
	CHECK_RC(get(st, 1, 1), 1);
	CHECK_RC(get(st, 3, 3), 0);
	CHECK_RC(get(st, 4, 4), 0); /* not the block 4 replaced */
	CHECK_RC(get(st, 4, 44), 0);
	store_get_stats(st, &s);
	CHECK_RC(s.ttl_blocks, 0);
	store_close(st);
}

/* An expired block is not rewritten at reclaim, even pinned (nothing
 * looks it up: reclaim itself finds it expired). */
static void
test_ttl_not_reinserted(void)
{
	struct store *st = mkstore(POLICY_ADMIT_ALL);
	struct store_stats s;
	uint8_t key[32];

	REQUIRE(put_hint(st, 5, 5, 60, 0, 0) == 0);
	REQUIRE(put_hint(st, 6, 6, 6000, 0, 0) == 0);
	test_key(5, key);
	CHECK_RC(store_pin(st, NS, key, true), 0);
	test_key(6, key);
	CHECK_RC(store_pin(st, NS, key, true), 0);
	fake_now += 61;
	for (uint64_t i = 100; i < 3000; i++) /* > the capacity */
		REQUIRE(put(st, i, 0) == 0);
	store_get_stats(st, &s);
	CHECK_RC(s.blocks_expired, 1);
	CHECK_RC(store_class_pinned(st, 0), 2 * BLK); /* 6's */
	CHECK_RC(get(st, 5, 5), 0);
	CHECK_RC(get(st, 6, 6), 1);
	store_close(st);
}

/*
 * The expiry sweep: expired blocks leave the index, their tenant's usage
 * and the TTL table within a second or so, with a REMOVED event each,
 * though nothing looks them up and no reclaim reaches them; blocks that
 * have not expired, and blocks without a TTL, stay. A block in the open
 * segment is swept once its segment is sealed; after a restart the
 * bounds come back from the summaries.
 */
static void
test_ttl_sweep(void)
{
	struct store *st = mkstore(POLICY_ADMIT_ALL);
	uint64_t foot = 2 * BLK; /* the record header and the block */
	struct store_stats s;

	ev_stored = ev_removed = 0;
	store_set_event_cb(st, ev_count, NULL);
	for (uint64_t i = 0; i < 100; i++) {
		REQUIRE(put_hint(st, 1000 + i, 1000 + i, 10, 0, 0) == 0);
		REQUIRE(put_hint(st, 2000 + i, 2000 + i, 1000, 0, 0) == 0);
		REQUIRE(put(st, 3000 + i, 0) == 0);
	}
	REQUIRE(store_flush(st) == 0);
	REQUIRE(put_hint(st, 4000, 4000, 10, 0, 0) == 0); /* left open */
	CHECK_RC(store_class_usage(st, 0), 301 * foot);
	store_poll(st, 0); /* nothing has expired */
	CHECK_RC(ev_removed, 0);
	fake_now += 10;
	store_poll(st, 0);
	store_get_stats(st, &s);
	CHECK_RC(s.blocks_expired, 100);
	CHECK_RC(ev_removed, 100);
	CHECK_RC(s.ttl_blocks, 101);
	CHECK_RC(store_class_usage(st, 0), 201 * foot);
	store_poll(st, 0); /* within the second: no other sweep, nothing new */
	REQUIRE(store_flush(st) == 0); /* 4000's segment is sealed now */
	fake_now += 1;
	store_poll(st, 0);
	CHECK_RC(ev_removed, 101);
	CHECK_RC(store_class_usage(st, 0), 200 * foot);
	CHECK_RC(get(st, 2050, 2050), 1);
	CHECK_RC(get(st, 3050, 3050), 1);
	CHECK_RC(get(st, 1050, 1050), 0);
	/* after a restart, from the summaries */
	st = reopen(st);
	store_set_event_cb(st, ev_count, NULL);
	CHECK_RC(store_class_usage(st, 0), 200 * foot);
	fake_now += 1000;
	store_poll(st, 0);
	store_get_stats(st, &s);
	CHECK_RC(s.ttl_blocks, 0);
	CHECK_RC(ev_removed, 201);
	CHECK_RC(store_class_usage(st, 0), 100 * foot);
	for (uint64_t i = 0; i < 100; i++) {
		CHECK_RC(get(st, 2000 + i, 2000 + i), 0);
		CHECK_RC(get(st, 3000 + i, 3000 + i), 1);
	}
	store_close(st);
	ev_stored = ev_removed = 0;
}

/* The n-th namespace of class cls for the weight table's tests. */
static uint64_t
wns(uint64_t cls, uint64_t n)
{
	return cls << 48 | (((n + 1) * 0x9e3779b97f4a7c15ull) >> 16);
}

/* How many of blocks first..first+n-1 of ns are present: read (right
 * bytes), or without a read (a read is what the CLOCK bit counts). */
static unsigned
present_in(struct store *st, uint64_t ns, uint64_t first, unsigned n,
	   bool read)
{
	unsigned k = 0;

	for (uint64_t i = first; i < first + n; i++) {
		uint8_t key[32];
		int rc;

		test_key(i, key);
		rc = read ? get_from(st, ns, i, i) : store_exists(st, ns, key);
		CHECK(rc >= 0);
		k += rc == 1;
	}
	return k;
}

/*
 * The sweep is fair: 34 sealed segments, each with 24 blocks expiring a
 * second apart, so every second all 34 have something newly expired,
 * more than a sweep reads (32). Each sweep starts where the last one
 * stopped, so no segment waits more than a second or two: at most a few
 * expired blocks are still indexed at any time (a sweep from slot 0
 * each time left two segments' blocks for the whole run).
 */
static void
test_ttl_sweep_fair(void)
{
	struct store *st = mkstore_segs(POLICY_ADMIT_ALL, 120);
	const unsigned segs = 34, per = 24;
	uint64_t t0 = fake_now, worst = 0;
	struct store_stats s;

	for (unsigned g = 0; g < segs; g++) {
		for (unsigned j = 0; j < per; j++)
			REQUIRE(put_hint(st, 50000 + g * 100 + j, 1, 10 + j, 0,
					 0) == 0);
		REQUIRE(store_flush(st) == 0);
	}
	for (unsigned k = 0; k < 20; k++) {
		uint64_t left = (uint64_t)segs * (per - k - 1);

		fake_now = t0 + 10 + k; /* blocks j <= k have expired */
		store_poll(st, 0);
		store_get_stats(st, &s);
		CHECK(s.ttl_blocks >= left);
		if (s.ttl_blocks - left > worst)
			worst = s.ttl_blocks - left;
	}
	printf("sweep: at most %" PRIu64 " expired blocks still indexed\n",
	       worst);
	CHECK(worst <= 8);
	store_close(st);
	fake_now = t0 + 1000;
}

/* Store and `notail`: a LOOKUP chain's last key is its tail, refused
 * while unseen; once a longer chain goes through it, it is put like any
 * other key, and the new tail is refused. */
static void
test_store_refuses_tails(void)
{
	struct store *st = mkstore(POLICY_ADMIT_NOTAIL);
	uint8_t keys[4 * 32], key2[32];
	struct store_stats s;

	for (unsigned i = 0; i < 4; i++)
		test_key(800 + i, keys + 32 * i);
	CHECK_RC(store_longest_prefix(st, NS, keys, 3), 0);
	for (unsigned i = 0; i < 3; i++)
		REQUIRE(put(st, 800 + i, 0) == 0);
	CHECK_RC(store_exists(st, NS, keys), 1);
	CHECK_RC(store_exists(st, NS, keys + 32), 1);
	CHECK_RC(store_exists(st, NS, keys + 64), 0); /* the tail */
	CHECK_RC(store_longest_prefix(st, NS, keys, 4), 2);
	REQUIRE(put(st, 802, 0) == 0);
	REQUIRE(put(st, 803, 0) == 0);
	CHECK_RC(store_exists(st, NS, keys + 64), 1); /* not the tail now */
	/* 803, the new tail, looked up once: refused */
	CHECK_RC(store_exists(st, NS, keys + 96), 0);
	store_get_stats(st, &s);
	CHECK_RC(s.puts_refused, 2);
	REQUIRE(put(st, 803, STORE_PUT_DURABLE) == 0); /* always written */
	CHECK_RC(store_exists(st, NS, keys + 96), 1);
	/* a chain over two shards (or messages): each gets its part, and
	 * only the part with the chain's last key ends it */
	for (unsigned i = 0; i < 4; i++)
		test_key(810 + i, keys + 32 * i);
	memcpy(key2, keys + 32, 32); /* parts: 810 812 and 811 813 */
	memcpy(keys + 32, keys + 64, 32);
	memcpy(keys + 64, key2, 32);
	CHECK_RC(store_lookup_part(st, NS, keys, 2, false, NULL), 0);
	CHECK_RC(store_lookup_part(st, NS, keys + 64, 2, true, NULL), 0);
	for (unsigned i = 0; i < 4; i++)
		REQUIRE(put(st, 810 + i, 0) == 0);
	for (unsigned i = 0; i < 3; i++) {
		test_key(810 + i, key2);
		CHECK_RC(store_exists(st, NS, key2), 1);
	}
	test_key(813, key2);
	CHECK_RC(store_exists(st, NS, key2), 0); /* the tail alone */
	/* a key looked up as a chain of one, then as the root of a longer
	 * chain, is put in another namespace of the tenant (another layer,
	 * never looked up there): not a tail any more */
	test_key(820, keys);
	test_key(821, keys + 32);
	store_longest_prefix(st, NS, keys, 1);
	store_longest_prefix(st, NS, keys, 2);
	REQUIRE(put_to(st, NS + 1, 820, 0) == 0);
	CHECK_RC(store_exists(st, NS + 1, keys), 1);
	store_close(st);
}

/*
 * What a LOOKUP says counts for every namespace of the tenant: an engine
 * that keeps a namespace per layer looks a chain up in the first layer's
 * and puts it in every layer's. Under `seen`, a chain looked up twice in
 * NS is admitted in NS + 1 too (another layer); in another tenant's class
 * it is not seen.
 */
static void
test_seen_across_namespaces(void)
{
	const uint64_t other = (1ull << 48) | NS; /* another class */
	struct store *st = mkstore(POLICY_ADMIT_SEEN);
	uint8_t keys[3 * 32];

	for (unsigned i = 0; i < 3; i++)
		test_key(850 + i, keys + 32 * i);
	store_longest_prefix(st, NS, keys, 3);
	store_longest_prefix(st, NS, keys, 3);
	for (unsigned i = 0; i < 3; i++) {
		REQUIRE(put_to(st, NS, 850 + i, 0) == 0);
		REQUIRE(put_to(st, NS + 1, 850 + i, 0) == 0);
		REQUIRE(put_to(st, other, 850 + i, 0) == 0);
		CHECK_RC(store_exists(st, NS, keys + 32 * i), 1);
		CHECK_RC(store_exists(st, NS + 1, keys + 32 * i), 1);
		CHECK_RC(store_exists(st, other, keys + 32 * i), 0);
	}
	store_close(st);
}

/*
 * A namespace's weight: with weight 3, blocks never read are rewritten
 * at two reclaims and leave at the third; a read starts the count again;
 * with weight 0, blocks leave at the first reclaim though read; the
 * default namespace's unread blocks leave at the first. Each "cycle" is
 * a capacity's worth of unread puts of another namespace, so the segment
 * that holds the blocks (or their copies) is reclaimed once per cycle.
 */
static void
test_ns_weight(void)
{
	const uint64_t nsw = NS + 1, ns0 = NS + 2, filler = NS + 3;
	struct store *st = mkstore(POLICY_ADMIT_ALL);
	struct store_stats s;
	uint64_t f = 1000000, cap;

	CHECK_RC(store_set_ns_weight(st, nsw, STORE_MAX_WEIGHT + 1), -EINVAL);
	CHECK_RC(store_set_ns_weight(st, nsw, 3), 0);
	CHECK_RC(store_set_ns_weight(st, ns0, 0), 0);
	CHECK_RC(store_ns_weight(st, nsw), 3);
	CHECK_RC(store_ns_weight(st, ns0), 0);
	CHECK_RC(store_ns_weight(st, NS), 1);
	for (uint64_t i = 0; i < 8; i++) {
		REQUIRE(put_to(st, NS, i, 0) == 0);
		REQUIRE(put_to(st, nsw, 100 + i, 0) == 0);
		REQUIRE(put_to(st, ns0, 200 + i, 0) == 0);
	}
	/* read: ns0's blocks, and nothing else */
	CHECK_RC(present_in(st, ns0, 200, 8, true), 8);
	store_get_stats(st, &s);
	cap = s.capacity_bytes / (2 * BLK);
	for (uint64_t i = 0; i < cap * 3 / 2; i++)
		REQUIRE(put_to(st, filler, f++, 0) == 0);
	CHECK_RC(present_in(st, NS, 0, 8, false), 0);
	CHECK_RC(present_in(st, ns0, 200, 8, false), 0);
	CHECK_RC(present_in(st, nsw, 104, 4, false), 4);
	CHECK_RC(present_in(st, nsw, 100, 4, true), 4); /* read */
	for (uint64_t i = 0; i < cap; i++)
		REQUIRE(put_to(st, filler, f++, 0) == 0);
	/* rewritten unread, twice */
	CHECK_RC(present_in(st, nsw, 104, 4, false), 4);
	for (uint64_t i = 0; i < cap; i++)
		REQUIRE(put_to(st, filler, f++, 0) == 0);
	CHECK_RC(present_in(st, nsw, 104, 4, false), 0); /* not a third */
	/* read once: counted afresh */
	CHECK_RC(present_in(st, nsw, 100, 4, true), 4);
	/* the table: 1 removes; each class (tenant) holds STORE_MAX_WEIGHTED,
	 * whatever the others hold */
	CHECK_RC(store_set_ns_weight(st, ns0, 1), 0);
	CHECK_RC(store_ns_weight(st, ns0), 1);
	CHECK_RC(store_set_ns_weight(st, nsw, 1), 0); /* class 0: none */
	for (uint64_t n = 0; n < STORE_MAX_WEIGHTED; n++)
		REQUIRE(store_set_ns_weight(st, wns(0, n), 2) == 0);
	CHECK_RC(store_set_ns_weight(st, 5, 2), -ENOSPC);
	CHECK_RC(store_set_ns_weight(st, wns(0, 7), 4), 0); /* a change fits */
	CHECK_RC(store_ns_weight(st, wns(0, 7)), 4);
	CHECK_RC(store_set_ns_weight(st, wns(1, 7), 3), 0); /* another class */
	CHECK_RC(store_set_ns_weight(st, wns(0, 7), 1), 0); /* frees one */
	CHECK_RC(store_set_ns_weight(st, 5, 2), 0);
	CHECK_RC(store_ns_weight(st, 5), 2);
	CHECK_RC(store_ns_weight(st, wns(0, 9)), 2);
	CHECK_RC(store_ns_weight(st, wns(1, 7)), 3);
	CHECK_RC(store_ns_weight(st, wns(0, 7)), 1);
	store_close(st);
}

/* Of blocks all read since written, low priority ones leave at the
 * first reclaim and normal ones are rewritten; of blocks never read,
 * high priority ones are rewritten, even behind normal ones that fill
 * the budget, and normal ones leave. */
static void
test_priority_at(unsigned pct, unsigned want_high)
{
	struct store *st = mkstore_pct(POLICY_ADMIT_ALL, pct);
	unsigned low = 0, normal = 0, high = 0, unread = 0;
	struct store_stats s;

	/* 6 whole segments (31 records each) */
	for (uint64_t i = 0; i < 31 * 6; i++) {
		REQUIRE(put_hint(st, i, i, 0, i % 4 ? STORE_PRIO_LOW
						   : STORE_PRIO_NORMAL, 0) == 0);
		CHECK_RC(get(st, i, i), 1);
	}
	/* per segment: 20 normal read, then 8 high unread, 3 normal
	 * unread; at 50% the normal ones would take the whole budget (16
	 * records), but they leave high ones a quarter of it */
	for (uint64_t i = 1000; i < 1000 + 31 * 6; i++) {
		unsigned j = (unsigned)(i - 1000) % 31;

		REQUIRE(put_hint(st, i, i, 0, j >= 20 && j < 28
					     ? STORE_PRIO_HIGH : 0, 0) == 0);
		if (j < 20)
			CHECK_RC(get(st, i, i), 1);
	}
	store_get_stats(st, &s);
	/* about 1.2 x the capacity: every segment above is reclaimed
	 * once, what was rewritten is not yet */
	for (uint64_t i = 100000; i < 100000 + s.capacity_bytes * 6 / 5 /
						    (2 * BLK); i++)
		REQUIRE(put(st, i, 0) == 0);
	for (uint64_t i = 0; i < 31 * 6; i++) {
		if (i % 4)
			low += get(st, i, i) == 1;
		else
			normal += get(st, i, i) == 1;
	}
	for (uint64_t i = 1000; i < 1000 + 31 * 6; i++) {
		unsigned j = (unsigned)(i - 1000) % 31;

		if (j >= 20 && j < 28)
			high += get(st, i, i) == 1;
		else if (j >= 28)
			unread += get(st, i, i) == 1;
	}
	printf("priority (reinsert_pct %u): %u/139 low, %u/47 normal (read), "
	       "%u/48 high (unread), %u/18 normal unread kept\n",
	       pct ? pct : 90, low, normal, high, unread);
	CHECK_RC(low, 0);
	CHECK_RC(normal, 47);
	CHECK_RC(high, want_high);
	CHECK_RC(unread, 0);
	store_close(st);
}

/* With half a segment per reclaim the budget is short and normal blocks
 * leave high ones a quarter of it: 4 of each segment's 8. With the
 * default (90%) it is not: all 48. Low and unread normal ones leave,
 * read normal ones stay, either way. */
static void
test_priority(void)
{
	test_priority_at(50, 6 * 4);
	test_priority_at(0, 6 * 8);
}

/* Without high priority blocks in the store, normal ones have the whole
 * budget, as before there were hints: with reinsert_pct 50, 16 of each
 * segment's 31 read blocks are rewritten (12 if they left a quarter to
 * nobody). */
static void
test_no_hints_full_budget(void)
{
	struct store *st = mkstore_pct(POLICY_ADMIT_ALL, 50);
	struct store_stats s;
	unsigned kept = 0;

	for (uint64_t i = 0; i < 31 * 6; i++) {
		REQUIRE(put(st, i, 0) == 0);
		CHECK_RC(get(st, i, i), 1);
	}
	store_get_stats(st, &s);
	for (uint64_t i = 100000; i < 100000 + s.capacity_bytes * 6 / 5 /
						    (2 * BLK); i++)
		REQUIRE(put(st, i, 0) == 0);
	for (uint64_t i = 0; i < 31 * 6; i++)
		kept += get(st, i, i) == 1;
	CHECK_RC(kept, 6 * 16);
	store_close(st);
}

/*
 * A workload that mostly hits (a chat's conversations, an agent's
 * context): a hot set of 65% of the store, every block of it asked for
 * every round, and a trickle of new blocks. Keeping the hot set means
 * rewriting up to 65% of each reclaimed segment, several times the
 * puts' bytes: a budget of puts alone (write_amp_max - 1 = 0.5 x them),
 * or half a segment at most per reclaim, lets some of it go every
 * round (95-96% hits in the last rounds, against all of them now).
 * Hits earn rewrites too, and a reclaim may rewrite 90% of a segment.
 * GETs run as gpucached runs them: store_touch, then the read.
 */
static void
test_hot_set_kept(void)
{
	struct store *st = mkstore(POLICY_ADMIT_ALL);
	struct store_stats s;
	uint64_t hot, cold = 1000000, hits = 0, asked = 0;
	enum { ROUNDS = 60, LAST = 10, NEW = 40 };
	uint8_t key[32];

	store_get_stats(st, &s);
	hot = s.capacity_bytes * 65 / 100 / (2 * BLK);
	for (unsigned r = 0; r < ROUNDS; r++) {
		for (uint64_t i = 0; i < hot; i++) {
			int got = 0;

			test_key(i, key);
			if (store_longest_prefix(st, NS, key, 1) == 1) {
				CHECK(store_touch(st, NS, key, NULL));
				got = get(st, i, i);
				CHECK(got >= 0);
			}
			if (got != 1)
				REQUIRE(put(st, i, 0) == 0);
			if (r >= ROUNDS - LAST) {
				asked++;
				hits += got == 1;
			}
		}
		for (unsigned j = 0; j < NEW; j++)
			REQUIRE(put(st, cold++, 0) == 0);
	}
	store_get_stats(st, &s);
	printf("hot set: %" PRIu64 " blocks (65%% of the store), %" PRIu64
	       "/%" PRIu64 " hits in the last %u rounds, %" PRIu64
	       " reinserted, write amp %.2f of the puts\n", hot, hits, asked,
	       LAST, s.blocks_reinserted,
	       (double)s.flash_bytes_written / (double)s.put_bytes_offered);
	CHECK(hits * 100 >= asked * 99); /* before: 95 (pct 50), 96 (puts only) */
	store_close(st);
}

/*
 * A put of a block bigger than what a reclaim leaves free (a reclaim may
 * rewrite 90% of a segment) while every held block is read between its
 * tries, as the shard serves GETs while a PUT waits for room: reclaim
 * rewrote a whole segment's worth of hot blocks into each fresh segment,
 * and the put waited for ever. Segments of 2 such blocks; the hot blocks
 * are read between every try. Each put must find room in a few tries.
 */
static void
test_big_put_finds_room(void)
{
	enum { N = 200, LEN = 108 * 1024, MAX_TRIES = 10 };
	static uint8_t buf[LEN];
	struct store *st = mkstore_segs(POLICY_ADMIT_ALL, 4);
	unsigned worst = 0, done = 0;

	for (uint64_t i = 0; i < N; i++) {
		struct store_resv r;
		uint8_t key[32];
		unsigned tries;
		uint32_t off = 0;
		int rc = -EAGAIN;

		test_key(i, key);
		test_fill(i, buf, LEN);
		for (tries = 0; tries < MAX_TRIES; tries++) {
			rc = store_put_reserve(st, NS, key, LEN, &r);
			if (rc != -EAGAIN)
				break;
			for (uint64_t j = 0; j < i; j++) { /* GETs meanwhile */
				uint8_t k[32];

				test_key(j, k);
				(void)store_touch(st, NS, k, NULL);
			}
			store_poll(st, 0);
		}
		worst = tries > worst ? tries : worst;
		if (rc < 0)
			break;
		for (unsigned v = 0; v < r.iovcnt; v++) {
			memcpy(r.iov[v].iov_base, buf + off, r.iov[v].iov_len);
			off += (uint32_t)r.iov[v].iov_len;
		}
		REQUIRE(store_put_commit(st, &r, 0, NULL, NULL) == 0);
		done++;
	}
	printf("big puts: %u/%u placed, at most %u tries\n", done, N, worst);
	CHECK_RC(done, N);
	store_close(st);
}

/* ---- prefix chains: a block whose parent is gone can never hit ---- */

#define CHAIN 5

/* Chain c: keys c * 100 + 0 .. CHAIN - 1, root first. */
static void
chain_lookup(struct store *st, uint64_t c)
{
	uint8_t keys[CHAIN * 32];

	for (unsigned j = 0; j < CHAIN; j++)
		test_key(c * 100 + j, keys + 32 * j);
	store_longest_prefix(st, NS, keys, CHAIN);
}

/* Read every block of chain c (setting their CLOCK bits); returns the
 * blocks present, the leading run. */
static unsigned
chain_read(struct store *st, uint64_t c)
{
	unsigned n = 0;

	for (unsigned j = 0; j < CHAIN; j++) {
		int rc = get(st, c * 100 + j, c * 100 + j);

		CHECK(rc >= 0);
		if (rc != 1)
			break;
		n++;
	}
	return n;
}

static void
chain_drop_root(struct store *st, uint64_t c)
{
	uint8_t key[32];

	test_key(c * 100, key);
	REQUIRE(store_delete(st, NS, key) == 0);
}

/* About 1.2 x the capacity of new blocks: every segment there was is
 * reclaimed once. */
static void
pressure(struct store *st, uint64_t *next)
{
	struct store_stats s;
	uint64_t end;

	store_get_stats(st, &s);
	end = *next + s.capacity_bytes * 6 / 5 / (2 * BLK);
	for (; *next < end; (*next)++)
		REQUIRE(put(st, *next, 0) == 0);
}

/*
 * Six chains of 5, looked up then put (one segment of 31 records), the
 * roots of the first three deleted: their 12 leaves are orphans. All 27
 * blocks are read, but a reclaim rewrites 16 records at most. Orphans
 * dropped, the 15 blocks of the whole chains all fit and survive; kept
 * like any block, the orphans come first in the segment and take the
 * budget. The parents are in the summaries: after a restart (the LOOKUP
 * memory gone) and a rewrite, a chain whose root goes next loses its
 * leaves at the next reclaim, and the others stay.
 */
static unsigned
orphan_run(bool keep, struct store_stats *out)
{
	struct store *st;
	uint64_t next = 100000;
	unsigned whole = 0, orphans = 0;

	mk_keep_orphans = keep;
	st = mkstore_pct(POLICY_ADMIT_ALL, 50);
	mk_keep_orphans = false;
	for (uint64_t c = 0; c < 6; c++) {
		chain_lookup(st, c);
		for (unsigned j = 0; j < CHAIN; j++)
			REQUIRE(put(st, c * 100 + j, 0) == 0);
	}
	if (!keep)
		st = reopen(st); /* parents from the summaries from here on */
	for (uint64_t c = 0; c < 3; c++)
		chain_drop_root(st, c);
	for (uint64_t c = 0; c < 6; c++) {
		CHECK_RC(chain_read(st, c), c < 3 ? 0 : CHAIN);
		for (unsigned j = 1; j < CHAIN && c < 3; j++)
			CHECK_RC(get(st, c * 100 + j, c * 100 + j), 1);
	}
	pressure(st, &next);
	for (uint64_t c = 0; c < 3; c++)
		for (unsigned j = 1; j < CHAIN; j++)
			orphans += get(st, c * 100 + j, c * 100 + j) == 1;
	for (uint64_t c = 3; c < 6; c++)
		whole += chain_read(st, c);
	if (!keep) {
		CHECK_RC(orphans, 0);
		CHECK_RC(whole, 3 * CHAIN);
		/* rewritten, they kept their parents: chain 3's root goes,
		 * its leaves follow at the next reclaim */
		chain_drop_root(st, 3);
		for (uint64_t c = 3; c < 6; c++)
			(void)chain_read(st, c);
		for (unsigned j = 1; j < CHAIN; j++)
			CHECK_RC(get(st, 300 + j, 300 + j), 1);
		pressure(st, &next);
		for (unsigned j = 1; j < CHAIN; j++)
			CHECK_RC(get(st, 300 + j, 300 + j), 0);
		CHECK_RC(chain_read(st, 4) + chain_read(st, 5), 2 * CHAIN);
	}
	store_get_stats(st, out);
	store_close(st);
	printf("orphans %s: %u/12 orphans left, %u/15 blocks of whole "
	       "chains, %" PRIu64 " orphans dropped\n",
	       keep ? "kept" : "dropped", orphans, whole, out->blocks_orphaned);
	return whole;
}

/*
 * Links are a key's, within its tenant's class: chains looked up in NS
 * only and put in NS + 1 (another layer, say) are linked there too, so
 * a root deleted there orphans its leaves there. In another class's
 * namespace the same keys are not linked (no LOOKUP of its own), so
 * they are roots and stay.
 */
static void
test_orphans_across_namespaces(void)
{
	const uint64_t other = (1ull << 48) | NS; /* another class */
	struct store *st = mkstore(POLICY_ADMIT_ALL);
	uint64_t next = 100000;
	unsigned left[2][2] = { { 0 } };
	uint8_t key[32];

	for (uint64_t c = 0; c < 2; c++) {
		chain_lookup(st, c);
		for (unsigned j = 0; j < CHAIN; j++) {
			REQUIRE(put_to(st, NS + 1, c * 100 + j, 0) == 0);
			REQUIRE(put_to(st, other, c * 100 + j, 0) == 0);
		}
	}
	test_key(0, key);
	REQUIRE(store_delete(st, NS + 1, key) == 0);
	REQUIRE(store_delete(st, other, key) == 0);
	for (uint64_t c = 0; c < 2; c++) /* all read: roots 100 too */
		for (unsigned j = 0; j < CHAIN; j++) {
			int want = c + j > 0;

			CHECK_RC(get_from(st, NS + 1, c * 100 + j, c * 100 + j),
				 want);
			CHECK_RC(get_from(st, other, c * 100 + j, c * 100 + j),
				 want);
		}
	pressure(st, &next);
	for (uint64_t c = 0; c < 2; c++)
		for (unsigned j = 1; j < CHAIN; j++) {
			left[0][c] += get_from(st, NS + 1, c * 100 + j,
					       c * 100 + j) == 1;
			left[1][c] += get_from(st, other, c * 100 + j,
					       c * 100 + j) == 1;
		}
	CHECK_RC(left[0][0], 0);         /* orphans in the same class */
	CHECK_RC(left[0][1], CHAIN - 1); /* their root is there */
	CHECK_RC(left[1][0], CHAIN - 1); /* not linked in another class */
	CHECK_RC(left[1][1], CHAIN - 1);
	store_close(st);
}

/*
 * A namespace's weight counts only the rewrites it granted: a block of
 * a weight-2 namespace pinned through two reclaims (rewritten unread for
 * its pin) still gets its one unread rewrite once unpinned, and leaves
 * at the reclaim after.
 */
static void
test_weight_counts_its_own(void)
{
	const uint64_t nsw = NS + 4, filler = NS + 3;
	struct store *st = mkstore(POLICY_ADMIT_ALL);
	uint64_t f = 2000000, cap;
	struct store_stats s;
	uint8_t key[32];

	CHECK_RC(store_set_ns_weight(st, nsw, 2), 0);
	REQUIRE(put_to(st, nsw, 600, 0) == 0);
	test_key(600, key);
	CHECK_RC(store_pin(st, nsw, key, true), 0);
	store_get_stats(st, &s);
	cap = s.capacity_bytes / (2 * BLK);
	for (uint64_t i = 0; i < cap * 5 / 2; i++) /* two reclaims, pinned */
		REQUIRE(put_to(st, filler, f++, 0) == 0);
	CHECK_RC(store_pin(st, nsw, key, false), 0);
	for (uint64_t i = 0; i < cap; i++)
		REQUIRE(put_to(st, filler, f++, 0) == 0);
	CHECK_RC(store_exists(st, nsw, key), 1); /* its weight's rewrite */
	for (uint64_t i = 0; i < cap; i++)
		REQUIRE(put_to(st, filler, f++, 0) == 0);
	CHECK_RC(store_exists(st, nsw, key), 0);
	store_close(st);
}

/*
 * A read served from the server's DRAM read cache (store_touch) counts as
 * a read: of blocks never read through the store, those touched are
 * rewritten at reclaim, the others leave; and the first touch says the
 * block was not read before, the second that it was.
 */
static void
test_touch_counts_as_read(void)
{
	struct store *st = mkstore(POLICY_ADMIT_ALL);
	uint64_t next = 100000;
	unsigned kept = 0, other = 0;
	uint8_t key[32];
	bool was = true;

	for (uint64_t i = 0; i < 8; i++)
		REQUIRE(put(st, 500 + i, 0) == 0);
	test_key(500, key);
	CHECK(store_touch(st, NS, key, &was) && !was);
	CHECK(store_touch(st, NS, key, &was) && was);
	for (uint64_t i = 1; i < 4; i++) {
		test_key(500 + i, key);
		CHECK(store_touch(st, NS, key, NULL));
	}
	test_key(999, key);
	CHECK(!store_touch(st, NS, key, &was)); /* never put */
	pressure(st, &next);
	for (uint64_t i = 0; i < 8; i++) {
		test_key(500 + i, key);
		if (i < 4)
			kept += store_exists(st, NS, key);
		else
			other += store_exists(st, NS, key);
	}
	CHECK_RC(kept, 4);
	CHECK_RC(other, 0);
	CHECK_RC(get(st, 501, 501), 1);
	store_close(st);
}

/*
 * A chain committed leaf first (puts that waited for room and were
 * retried, or reinsertions completing out of order, do it in gpucached):
 * its leaves, all read, and its root, unread, share one segment, the
 * leaves first in its summary. Reclaim decides the root first all the
 * same: the root leaves, and its leaves with it, as orphans, rather
 * than being rewritten because their parent was still there when they
 * were decided.
 */
static void
test_orphans_child_first(void)
{
	struct store *st = mkstore(POLICY_ADMIT_ALL);
	uint64_t next = 100000;
	struct store_stats s;
	unsigned left = 0;

	chain_lookup(st, 7);
	for (unsigned j = CHAIN; j-- > 0;)
		REQUIRE(put(st, 700 + j, 0) == 0);
	for (unsigned j = 1; j < CHAIN; j++)
		CHECK_RC(get(st, 700 + j, 700 + j), 1);
	pressure(st, &next);
	for (unsigned j = 0; j < CHAIN; j++)
		left += get(st, 700 + j, 700 + j) == 1;
	store_get_stats(st, &s);
	CHECK_RC(left, 0);
	CHECK(s.blocks_orphaned >= CHAIN - 1);
	store_close(st);
}

static void
test_orphans_leave_first(void)
{
	struct store_stats s;

	CHECK(orphan_run(true, &s) < 3 * CHAIN); /* the budget went to them */
	CHECK_RC(s.blocks_orphaned, 0);
	CHECK_RC(orphan_run(false, &s), 3 * CHAIN);
	CHECK(s.blocks_orphaned >= 12 + CHAIN - 1);
}

static void
test_dedupe_and_refusal(void)
{
	struct store *st = mkstore(POLICY_ADMIT_SEEN);
	struct store_stats s0, s1;
	uint8_t key[32], buf[BLK];

	/* never referenced: refused, a miss, no error */
	CHECK_RC(put(st, 1, 0), 0);
	CHECK_RC(get(st, 1, 1), 0);
	/* referenced before (a LOOKUP twice): admitted */
	test_key(2, key);
	store_longest_prefix(st, NS, key, 1);
	store_longest_prefix(st, NS, key, 1);
	CHECK_RC(put(st, 2, 0), 0);
	CHECK_RC(get(st, 2, 2), 1);
	/* the same key again, other bytes: a touch, the first bytes stay */
	store_get_stats(st, &s0);
	test_fill(99, buf, BLK);
	CHECK_RC(store_put(st, NS, key, buf, BLK, STORE_PUT_IF_ABSENT), 0);
	store_get_stats(st, &s1);
	CHECK_RC(s1.puts_deduped - s0.puts_deduped, 1);
	CHECK_RC(s1.puts, s0.puts);
	CHECK_RC(get(st, 2, 2), 1);
	/* durable puts are always written, even never seen */
	CHECK_RC(put(st, 3, STORE_PUT_DURABLE), 0);
	CHECK_RC(get(st, 3, 3), 1);
	store_get_stats(st, &s1);
	CHECK_RC(s1.puts_refused, 1);
	store_close(st);
}

/* The capacity the policy sizes itself by is whole records per segment:
 * mkstore's segments have 256 KiB of room, which 32 records of a 4 KiB
 * block (8 KiB each, header included) fill, leaving none for their
 * summary, so a segment holds 31 of them, and the store found so. */
static void
test_capacity_whole_records(void)
{
	struct store *st = mkstore(POLICY_ADMIT_ALL);
	struct store_stats ss;
	uint64_t i;

	for (i = 0; i < 256; i++)
		REQUIRE(put(st, i, 0) == 0);
	store_get_stats(st, &ss);
	CHECK_RC(ss.pol.capacity, ss.nslots * 31);
	/* fill the log: what it holds is what the policy was told */
	for (; i < 8 * 40 * 31; i++)
		REQUIRE(put(st, i, 0) == 0);
	store_get_stats(st, &ss);
	CHECK(ss.index_blocks <= ss.pol.capacity + 31 &&
	      ss.pol.capacity <= ss.index_blocks + 31);
	store_close(st);
}

int
main(void)
{
	test_sketch();
	test_auto_refuses_scan();
	test_auto_admits_loop();
	test_minis_sample_keys();
	test_auto_refuses_tails();
	test_reuse_histogram();
	test_capacity_whole_records();
	test_scan_keeps_hot_set();
	test_pin_survives();
	test_pins_fill_pool();
	test_pins_count_against_quota();
	test_pins_survive_restart();
	test_pins_survive_crash();
	test_pin_marker_vs_late_commit();
	test_ttl();
	test_ttl_not_reinserted();
	test_ttl_sweep();
	test_ttl_sweep_fair();
	test_ns_weight();
	test_store_refuses_tails();
	test_seen_across_namespaces();
	test_touch_counts_as_read();
	test_weight_counts_its_own();
	test_priority();
	test_no_hints_full_budget();
	test_hot_set_kept();
	test_big_put_finds_room();
	test_orphans_leave_first();
	test_orphans_child_first();
	test_orphans_across_namespaces();
	test_events();
	test_dedupe_and_refusal();
	store_memdisk_destroy(md);
	return test_summary("policy");
}
