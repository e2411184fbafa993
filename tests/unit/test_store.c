/*
 * test_store.c - the flash engine on in-memory devices: put/get from the
 * write buffer and from flash, direct and bounce reads, flush and reopen,
 * delete persistence, exists/longest_prefix, eviction with reinsertion,
 * degraded reads with devices missing, rebuild, and that nothing returned
 * is ever a wrong byte.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gpucache/gpucache.h"
#include "store/io_fault.h"
#include "store/store.h"
#include "test.h"

#define NS 7
#define DEVSZ (8u << 20)
#define CHUNK (64u << 10)

static struct store_memdisk *md;
/* Passes with the sealer thread (store_seal.c) and write-back. */
static struct store_opts topts;

static struct store *
reopen(void)
{
	struct store_io *io;
	struct store *st;

	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_open(io, &topts, &st) == 0);
	return st;
}

static void
mkstore(unsigned ndev, unsigned k, unsigned m)
{
	struct store_io *io;
	struct store_format_opts fo = { .k = k, .m = m, .chunk_size = CHUNK };

	store_memdisk_destroy(md);
	REQUIRE(store_memdisk_create(ndev, DEVSZ, &md) == 0);
	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_format(io, &fo) == 0);
	store_io_close(io);
}

/* Block i: present and bit-exact (1), absent (0), or wrong (-1). */
static int
verify(struct store *st, uint64_t i, size_t maxlen, int aligned)
{
	uint8_t key[32];
	size_t len = test_len(i, maxlen);
	uint8_t *want = malloc(len), *got;
	int rc, res;

	REQUIRE(posix_memalign((void **)&got, 4096, len + 8192) == 0);
	test_key(i, key);
	test_fill(i, want, len);
	memset(got, 0xee, len + 8192);
	rc = store_get(st, NS, key, got + (aligned ? 0 : 8), len + 4096);
	if (rc == -GPC_ENOTFOUND)
		res = 0;
	else if (rc == (int)len && memcmp(want, got + (aligned ? 0 : 8), len) == 0)
		res = 1;
	else
		res = -1;
	if (res < 0)
		fprintf(stderr, "block %llu: rc %d len %zu\n",
			(unsigned long long)i, rc, len);
	free(want);
	free(got);
	return res;
}

static int
put(struct store *st, uint64_t i, size_t maxlen, unsigned flags)
{
	uint8_t key[32];
	size_t len = test_len(i, maxlen);
	uint8_t *buf = malloc(len);
	int rc;

	test_key(i, key);
	test_fill(i, buf, len);
	rc = store_put(st, NS, key, buf, len, flags);
	free(buf);
	return rc;
}

static void
test_basic(void)
{
	struct store *st;
	struct store_stats s;
	uint8_t keys[5 * 32], key[32];
	int wrong = 0, present = 0;

	mkstore(6, 4, 2);
	st = reopen();
	for (uint64_t i = 0; i < 300; i++)
		CHECK_RC(put(st, i, 50000, 0), 0);
	for (uint64_t i = 0; i < 300; i++) /* some buffered, some on flash */
		CHECK_RC(verify(st, i, 50000, i % 2), 1);
	CHECK_RC(store_flush(st), 0);
	for (uint64_t i = 0; i < 300; i++)
		CHECK_RC(verify(st, i, 50000, i % 2), 1);
	for (int j = 0; j < 5; j++)
		test_key((uint64_t)(j < 3 ? j : 1000 + j), keys + j * 32);
	CHECK_RC(store_longest_prefix(st, NS, keys, 5), 3);
	CHECK_RC(store_exists(st, NS + 1, keys), 0);
	test_key(5, key);
	CHECK_RC(store_delete(st, NS, key), 0);
	CHECK_RC(store_delete(st, NS, key), -GPC_ENOTFOUND);
	CHECK_RC(verify(st, 5, 50000, 1), 0);
	{
		struct store_fsck_report fr;

		CHECK_RC(store_flush(st), 0);
		CHECK_RC(store_fsck(st, NULL, NULL, &fr), 0);
		CHECK(fr.segs > 1 && fr.chunks_bad == 0 && fr.blocks_bad == 0);
	}
	store_get_stats(st, &s);
	CHECK(s.index_blocks == 299);
	/* 300 blocks of 50,000 bytes checksummed as written and read back,
	 * and parity computed for 4+2: the cost counters saw it */
	CHECK(s.crc_cpu_ns > 0 && s.ec_cpu_ns > 0);
	store_close(st);
	st = reopen();
	for (uint64_t i = 0; i < 300; i++) {
		int r = verify(st, i, 50000, 1);
		wrong += r < 0;
		present += r > 0;
	}
	CHECK_RC(wrong, 0);
	CHECK_RC(present, 299);
	CHECK_RC(verify(st, 5, 50000, 1), 0);
	/* a too-small buffer is refused, not overrun */
	{
		uint8_t small[16];
		test_key(0, key);
		CHECK_RC(store_get(st, NS, key, small, sizeof(small)), -ENOBUFS);
	}
	store_close(st);
}

/*
 * A TTL of 1 s on the real clock, which counts whole seconds: a block put
 * in the last milliseconds of a second is still there just after the
 * second turns (it expired then: 1 s rounded down to a few ms, which
 * net_server's hints test met once in a fresh clone's make test).
 */
static void
test_ttl_whole_seconds(void)
{
	struct store *st;
	struct store_hint h = { .ttl_s = 1 };
	struct timespec ts;
	uint8_t key[32], buf[4096];
	time_t s;

	mkstore(6, 4, 2);
	st = reopen();
	test_key(4242, key);
	test_fill(4242, buf, sizeof(buf));
	do /* the last 5 ms of a second */
		clock_gettime(CLOCK_REALTIME, &ts);
	while (ts.tv_nsec < 995000000);
	CHECK_RC(store_put_hint(st, NS, key, buf, sizeof(buf), 0, &h), 0);
	do /* 5..10 ms into the next */
		clock_gettime(CLOCK_REALTIME, &ts);
	while (ts.tv_nsec < 5000000 || ts.tv_nsec > 10000000);
	CHECK_RC(store_get(st, NS, key, buf, sizeof(buf)), (int)sizeof(buf));
	s = ts.tv_sec;
	do { /* gone once the next second turns: within ttl_s + 1 */
		usleep(10000);
		clock_gettime(CLOCK_REALTIME, &ts);
	} while (ts.tv_sec < s + 1 || ts.tv_nsec < 20000000);
	CHECK_RC(store_get(st, NS, key, buf, sizeof(buf)), -GPC_ENOTFOUND);
	store_close(st);
}

static void
test_evict(void)
{
	struct store *st;
	struct store_stats s;
	int wrong = 0, present = 0;

	mkstore(3, 2, 1);
	st = reopen();
	/* ~1.6x the capacity; keep reading a hot set so it is reinserted */
	for (uint64_t i = 0; i < 2400; i++) {
		CHECK_RC(put(st, i, 12000, 0), 0);
		if (i % 50 == 0) /* a hot set spread over segments */
			for (uint64_t j = 0; j < 200 && j <= i; j += 20)
				wrong += verify(st, j, 12000, 1) < 0;
	}
	store_get_stats(st, &s);
	CHECK(s.segs_evicted > 0);
	CHECK(s.blocks_reinserted > 0);
	for (uint64_t i = 0; i < 2400; i++) {
		int r = verify(st, i, 12000, i % 2);
		wrong += r < 0;
		present += r > 0;
	}
	CHECK_RC(wrong, 0);
	CHECK(present > 100 && present < 2400);
	for (uint64_t j = 0; j < 200; j += 20)
		CHECK_RC(verify(st, j, 12000, 1), 1);
	store_close(st);
}

static void
test_degraded(void)
{
	struct store *st;
	int wrong = 0, present = 0;
	long n;

	mkstore(6, 4, 2);
	st = reopen();
	for (uint64_t i = 0; i < 200; i++)
		CHECK_RC(put(st, i, 40000, 0), 0);
	store_close(st);
	store_memdisk_set_missing(md, 1, true);
	store_memdisk_set_missing(md, 4, true);
	st = reopen();
	for (uint64_t i = 0; i < 200; i++)
		CHECK_RC(verify(st, i, 40000, i % 2), 1);
	/* writes go on, degraded */
	for (uint64_t i = 200; i < 260; i++)
		CHECK_RC(put(st, i, 40000, 0), 0);
	store_close(st);
	store_memdisk_set_missing(md, 2, true);
	st = reopen();
	for (uint64_t i = 0; i < 260; i++) {
		int r = verify(st, i, 40000, 1);
		wrong += r < 0;
		present += r > 0;
	}
	CHECK_RC(wrong, 0);
	CHECK(present < 260);
	store_close(st);
	/* device 2 comes back as it was; 1 and 4 are blank replacements */
	for (unsigned d = 1; d <= 4; d += 1)
		store_memdisk_set_missing(md, d, false);
	store_memdisk_wipe(md, 1);
	store_memdisk_wipe(md, 4);
	st = reopen();
	for (unsigned d = 1; d <= 4; d += 3) {
		n = store_rebuild(st, d);
		CHECK(n > 0);
	}
	store_close(st);
	st = reopen(); /* rebuilt superblocks make it whole again */
	for (unsigned d = 0; d < 6; d++)
		CHECK_RC(store_dev_health(st, d), STORE_DEV_HEALTHY);
	for (uint64_t i = 0; i < 260; i++)
		CHECK_RC(verify(st, i, 40000, i % 2), 1);
	store_close(st);
}

struct zc_res {
	int rc, done;
	struct store_zc_ref *ref;
	uint8_t *copy;
};

static void
zc_cb(void *arg, int rc, const struct iovec *iov, unsigned n,
      struct store_zc_ref *ref)
{
	struct zc_res *z = arg;
	size_t off = 0;

	z->rc = rc;
	z->done = 1;
	z->ref = ref;
	if (rc > 0) {
		z->copy = malloc((size_t)rc);
		for (unsigned i = 0; i < n; i++) {
			memcpy(z->copy + off, iov[i].iov_base, iov[i].iov_len);
			off += iov[i].iov_len;
		}
		CHECK_RC(off, rc);
	}
}

/* Zero-copy get of block i must give exactly its bytes. */
static void
check_zc(struct store *st, uint64_t i, size_t maxlen)
{
	struct zc_res z = { 0 };
	uint8_t key[32], *buf, *want;
	size_t len = test_len(i, maxlen);

	REQUIRE(posix_memalign((void **)&buf, 4096, 65536 + 4096) == 0);
	want = malloc(len);
	test_key(i, key);
	test_fill(i, want, len);
	CHECK_RC(store_get_zc_submit(st, NS, key, buf, 65536 + 4096, zc_cb, &z),
		 0);
	while (!z.done)
		store_poll(st, 1);
	CHECK_RC(z.rc, (int)len);
	CHECK(z.copy != NULL && memcmp(z.copy, want, len) == 0);
	store_get_zc_release(st, z.ref);
	free(z.copy);
	free(want);
	free(buf);
}

/*
 * st flushed: fsck finds every chunk and block checksum right; closed and
 * reopened, blocks 0..n-1 read back, but for those whose bit is set in
 * aborted, which are not there. Closes st.
 */
static void
check_clean_reopen(struct store *st, unsigned n, size_t maxlen,
		   uint32_t aborted)
{
	struct store_fsck_report fr;

	CHECK_RC(store_fsck(st, NULL, NULL, &fr), 0);
	CHECK(fr.segs > 0);
	CHECK_RC(fr.chunks_bad, 0);
	CHECK_RC(fr.blocks_bad, 0);
	store_close(st);
	st = reopen();
	for (unsigned i = 0; i < n; i++)
		CHECK_RC(verify(st, i, maxlen, 1), (aborted >> i) & 1 ? 0 : 1);
	store_close(st);
}

/* Reserve / commit / abort, the zero-copy put a server uses. */
static void
test_zero_copy(void)
{
	struct store *st;
	struct store_resv r[12];
	uint8_t key[32];

	mkstore(3, 2, 1);
	st = reopen();
	/* reservations open at once across segment boundaries (within what
	 * the 4 write buffers hold: sealing waits for them) */
	for (uint64_t i = 0; i < 12; i++) {
		size_t len = test_len(i, 30000), off = 0;
		uint8_t *data = malloc(len);

		test_key(i, key);
		test_fill(i, data, len);
		CHECK_RC(store_put_reserve(st, NS, key, (uint32_t)len, &r[i]), 0);
		for (unsigned j = 0; j < r[i].iovcnt; j++) {
			memcpy(r[i].iov[j].iov_base, data + off,
			       r[i].iov[j].iov_len);
			off += r[i].iov[j].iov_len;
		}
		CHECK_RC(off, len);
		free(data);
	}
	for (uint64_t i = 0; i < 12; i++) {
		if (i % 7 == 3)
			store_put_abort(st, &r[i]);
		else
			CHECK_RC(store_put_commit(st, &r[i], 0, NULL, NULL), 0);
	}
	for (uint64_t i = 0; i < 12; i++)
		CHECK_RC(verify(st, i, 30000, 1), i % 7 == 3 ? 0 : 1);
	check_zc(st, 1, 30000); /* in the write buffer */
	CHECK_RC(store_flush(st), 0);
	check_zc(st, 2, 30000); /* on flash */
	/* commits out of order and aborts: chunk checksums still hold
	 * (they are assembled from fragments, not recomputed) */
	check_clean_reopen(st, 12, 30000, 1u << 3 | 1u << 10);
}

/* Copy [off, off+n) of data into r's block, as a network piece lands. */
static void
land(struct store_resv *r, const uint8_t *data, uint32_t off, uint32_t n)
{
	uint32_t pos = 0;

	for (unsigned j = 0; j < r->iovcnt && pos < off + n; j++) {
		uint32_t len = (uint32_t)r->iov[j].iov_len;
		uint32_t a = off > pos ? off - pos : 0;
		uint32_t b = off + n < pos + len ? off + n - pos : len;

		if (a < b)
			memcpy((uint8_t *)r->iov[j].iov_base + a,
			       data + pos + a, b - a);
		pos += len;
	}
}

/*
 * Pieces checksummed as they land (store_put_landed), out of order and
 * across chunk boundaries: blocks whose pieces tile them, blocks with a
 * piece unreported, one reported twice (an overlap) or in more runs than
 * a reservation keeps (commit checksums the long way), blocks aborted
 * after pieces landed. Every block and chunk checksum holds, in the
 * write buffer, on flash and after a reopen.
 */
static void
test_landed_pieces(void)
{
	enum { N = 12, MAXLEN = 30000 };
	enum { TILE, GAP, OVERLAP, MANY } mode;
	struct store *st;
	struct store_resv r[N];
	uint8_t key[32];
	unsigned spanning_tiled = 0;

	mkstore(3, 2, 1);
	st = reopen();
	for (uint64_t i = 0; i < N; i++) {
		uint32_t len = (uint32_t)test_len(i, MAXLEN), np, piece;
		uint8_t *data = malloc(len);

		test_key(i, key);
		test_fill(i, data, len);
		CHECK_RC(store_put_reserve(st, NS, key, len, &r[i]), 0);
		CHECK_RC(store_put_landed(st, &r[i], len, 1), -EINVAL);
		CHECK_RC(store_put_landed(st, &r[i], 0, 0), -EINVAL);
		/* a block across a chunk boundary is tiled (its runs merge
		 * per chunk), the others go every way */
		mode = r[i].iovcnt > 1 ? TILE : (i % 4);
		spanning_tiled += r[i].iovcnt > 1 && i % 5 != 3;
		np = mode == MANY ? STORE_RESV_MAXLAND + 8 : 2 + i % 4;
		piece = (len + np - 1) / np;
		/* last piece first, then the rest backwards */
		for (uint32_t p = np; p-- > 0;) {
			uint32_t off = p * piece;
			uint32_t n = off + piece < len ? piece : len - off;

			if (off >= len)
				continue;
			land(&r[i], data, off, n);
			if (mode == GAP && p == 0)
				continue; /* not reported: commit's long way */
			CHECK_RC(store_put_landed(st, &r[i], off, n), 0);
		}
		if (mode == OVERLAP)
			CHECK_RC(store_put_landed(st, &r[i], 0, 1), 0);
		free(data);
	}
	REQUIRE(spanning_tiled > 0); /* else change the lengths */
	for (uint64_t i = 0; i < N; i++) {
		if (i % 5 == 3)
			store_put_abort(st, &r[i]);
		else
			CHECK_RC(store_put_commit(st, &r[i], 0, NULL, NULL), 0);
	}
	for (uint64_t i = 0; i < N; i++)
		CHECK_RC(verify(st, i, MAXLEN, 1), i % 5 == 3 ? 0 : 1);
	CHECK_RC(store_flush(st), 0);
	check_clean_reopen(st, N, MAXLEN, 1u << 3 | 1u << 8);
}

/* A put-if-absent of a key whose bytes are landing (an open reservation
 * of it at that length) writes nothing: two engines offloading the same
 * prefix at once store it once. Aborted, the key is absent again;
 * committed, the index has it. */
static void
test_resv_dedup(void)
{
	enum { N = 40, LEN = 100 };
	const unsigned ia = STORE_PUT_IF_ABSENT;
	struct store_resv r[N];
	bool done[N] = { false };
	uint8_t key[32], data[LEN];
	struct store_stats s0, s1;
	struct store *st;
	int bad = 0;

	mkstore(3, 2, 1);
	st = reopen();
	for (uint64_t i = 0; i < N; i++) {
		test_key(i, key);
		CHECK_RC(store_put_check(st, NS, key, test_len(i, LEN), ia), 0);
		CHECK_RC(store_put_reserve(st, NS, key,
					   (uint32_t)test_len(i, LEN), &r[i]),
			 0);
	}
	store_get_stats(st, &s0);
	/* finished from the last to the first, odd ones aborted; after
	 * each, every key asks again */
	for (uint64_t f = N + 1; f-- > 0;) {
		if (f < N) {
			if (f % 2) {
				store_put_abort(st, &r[f]);
			} else {
				test_fill(f, data, test_len(f, LEN));
				land(&r[f], data, 0,
				     (uint32_t)test_len(f, LEN));
				CHECK_RC(store_put_commit(st, &r[f], 0, NULL,
							  NULL), 0);
			}
			done[f] = true;
		}
		for (uint64_t i = 0; i < N; i++) {
			int want = done[i] && i % 2 ? 0 : STORE_PUT_DEDUP;
			size_t len = test_len(i, LEN);

			test_key(i, key);
			bad += store_put_check(st, NS, key, len, ia) != want;
			/* not put-if-absent, another length, another ns */
			bad += store_put_check(st, NS, key, len, 0) != 0;
			bad += store_put_check(st, NS, key, 5000, ia) != 0;
			bad += store_put_check(st, NS + 1, key, len, ia) != 0;
		}
	}
	CHECK_RC(bad, 0);
	store_get_stats(st, &s1);
	CHECK(s1.puts_deduped - s0.puts_deduped >= N);
	for (uint64_t i = 0; i < N; i++)
		CHECK_RC(verify(st, i, LEN, 1), i % 2 ? 0 : 1);
	/* a key held at one length and landing at another: the landing
	 * one dedupes a third put at its length (the held one's length
	 * dedupes as a touch) */
	test_key(0, key);
	CHECK_RC(store_put_check(st, NS, key, 5000, ia), 0);
	CHECK_RC(store_put_reserve(st, NS, key, 5000, &r[0]), 0);
	CHECK_RC(store_put_check(st, NS, key, 5000, ia), STORE_PUT_DEDUP);
	CHECK_RC(store_put_check(st, NS, key, test_len(0, LEN), ia),
		 STORE_PUT_DEDUP);
	store_put_abort(st, &r[0]);
	CHECK_RC(store_put_check(st, NS, key, 5000, ia), 0);
	CHECK_RC(verify(st, 0, LEN, 1), 1);
	store_close(st);
}

/* One class's flood never evicts another class below its quota. */
static void
test_quota(void)
{
	const uint64_t nsa = (1ull << 48) | 5, nsb = (2ull << 48) | 5;
	struct store *st;
	struct store_stats s;
	uint8_t key[32], *buf = malloc(16384), *got = malloc(16384);
	uint64_t cap;
	int lost = 0;

	mkstore(3, 2, 1);
	st = reopen();
	store_get_stats(st, &s);
	cap = s.nslots * s.seg_cap;
	CHECK_RC(store_set_quota(st, 1, cap * 3 / 10), 0);
	for (uint64_t i = 0; i < cap / 4 / 20480; i++) { /* A: ~25% */
		test_key(i, key);
		test_fill(i, buf, 16384);
		CHECK_RC(store_put(st, nsa, key, buf, 16384, 0), 0);
	}
	CHECK(store_class_usage(st, 1) > cap / 5);
	for (uint64_t i = 0; i < 3 * cap / 20480; i++) { /* B: 3x capacity */
		test_key(100000 + i, key);
		test_fill(100000 + i, buf, 16384);
		CHECK_RC(store_put(st, nsb, key, buf, 16384, 0), 0);
	}
	store_get_stats(st, &s);
	CHECK(s.segs_evicted > s.nslots); /* the store turned over */
	for (uint64_t i = 0; i < cap / 4 / 20480; i++) {
		test_key(i, key);
		test_fill(i, buf, 16384);
		lost += !(store_get(st, nsa, key, got, 16384) == 16384 &&
			  memcmp(buf, got, 16384) == 0);
	}
	CHECK_RC(lost, 0);
	CHECK(store_class_usage(st, 2) < cap);
	store_close(st);
	free(buf);
	free(got);
}

/* 8+3 over 11 devices: any three lost, every block still exact. */
static void
test_wide(void)
{
	struct store *st;
	int wrong = 0;

	mkstore(11, 8, 3);
	st = reopen();
	for (uint64_t i = 0; i < 150; i++)
		CHECK_RC(put(st, i, 90000, 0), 0);
	store_close(st);
	for (unsigned d = 2; d < 11; d += 4) /* devices 2, 6, 10 */
		store_memdisk_set_missing(md, d, true);
	st = reopen();
	for (uint64_t i = 0; i < 150; i++)
		wrong += verify(st, i, 90000, i % 2) != 1;
	CHECK_RC(wrong, 0);
	store_close(st);
	for (unsigned d = 2; d < 11; d += 4)
		store_memdisk_set_missing(md, d, false);
}

/*
 * Write-back: a working set overwritten over and over is not written to
 * flash segment after segment (closed segments with nothing live are
 * dropped), what is live reaches flash at a flush, a close or when its
 * buffer is needed, and a reopen finds the last version of every block.
 */
static void
test_writeback(void)
{
	struct store *st;
	struct store_stats s;
	struct store_opts saved = topts;
	int wrong = 0;

	topts.writeback_ms = 60000;
	topts.wbuf_segs = 8;
	mkstore(3, 2, 1);
	st = reopen();
	for (int round = 0; round < 40; round++)
		for (uint64_t i = 0; i < 4; i++) /* 4 x 30 KB, rewritten */
			CHECK_RC(put(st, i, 30000, 0), 0);
	for (uint64_t i = 0; i < 4; i++)
		wrong += verify(st, i, 30000, 1) != 1;
	store_get_stats(st, &s);
	CHECK(s.segs_dropped > 0);
	/* only what the write-back kept ahead went out, most of it dropped */
	CHECK(s.flash_bytes_written < s.put_bytes / 2);
	CHECK_RC(store_flush(st), 0);
	store_get_stats(st, &s);
	CHECK(s.segs_sealed > 0);
	store_close(st);
	st = reopen();
	for (uint64_t i = 0; i < 4; i++)
		wrong += verify(st, i, 30000, 1) != 1;
	/* blocks put and deleted, then the log wraps many times over: every
	 * slot is used again, most by dropped segments, which must not bring
	 * back what their slot held before */
	for (uint64_t b = 100; b < 1000; b += 30) {
		for (uint64_t i = b; i < b + 4; i++)
			CHECK_RC(put(st, i, 30000, 0), 0);
		CHECK_RC(store_flush(st), 0);
		for (uint64_t i = b; i < b + 4; i++) {
			uint8_t key[32];

			test_key(i, key);
			CHECK_RC(store_delete(st, NS, key), 0);
		}
		for (int round = 0; round < 40 + (int)(b % 7); round++) {
			CHECK_RC(put(st, (uint64_t)round % 4, 30000, 0), 0);
			if (round % 11 == 0)
				CHECK_RC(store_flush(st), 0);
		}
	}
	store_close(st);
	st = reopen();
	for (uint64_t i = 0; i < 4; i++)
		wrong += verify(st, i, 30000, 1) != 1;
	for (uint64_t b = 100; b < 1000; b += 30)
		for (uint64_t i = b; i < b + 4; i++)
			if (verify(st, i, 30000, 1) != 0) {
				fprintf(stderr, "deleted block %llu is back\n",
					(unsigned long long)i);
				wrong++;
			}
	store_get_stats(st, &s);
	CHECK_RC(s.index_blocks, 4);
	CHECK_RC(wrong, 0);
	store_close(st);
	topts = saved;
}

/*
 * A dropped segment's slot must not bring back what it held before: the
 * deletes of blocks whose segments were evicted live in a newer segment;
 * if that one's slot is written again while an older slot of those blocks
 * only ever took dropped segments, a reopen after a crash would find the
 * blocks but not their deletes. Small stores (12 slots), one record per
 * segment, flushes at random so that written and dropped segments mix;
 * many seeds so that the pattern arises.
 */
static void
test_drop_invalidates(void)
{
	struct store_opts saved = topts;
	int wrong = 0;

	topts.writeback_ms = 60000;
	topts.wbuf_segs = 4;
	for (unsigned seed = 1; seed < 60; seed++) {
		uint64_t rs = seed;
		struct store_format_opts fo = { .k = 1, .m = 0,
						.chunk_size = CHUNK };
		struct store_io *io;
		struct store *st;

		store_memdisk_destroy(md);
		REQUIRE(store_memdisk_create(1, STORE_DATA_OFF + 12 * CHUNK,
					     &md) == 0);
		REQUIRE(store_io_mem_open(md, &io) == 0);
		REQUIRE(store_format(io, &fo) == 0);
		store_io_close(io);
		st = reopen();
		for (uint64_t i = 100; i < 106; i++) {
			CHECK_RC(put(st, i, 30000, 0), 0);
			CHECK_RC(store_flush(st), 0);
		}
		for (uint64_t i = 100; i < 106; i++) {
			uint8_t key[32];

			test_key(i, key);
			CHECK_RC(store_delete(st, NS, key), 0);
		}
		CHECK_RC(store_flush(st), 0);
		for (unsigned n = 0; n < 60; n++) {
			CHECK_RC(put(st, test_rand(&rs) % 3, 30000, 0), 0);
			if (test_rand(&rs) % 4 == 0)
				CHECK_RC(store_flush(st), 0);
		}
		store_abandon(st); /* a crash */
		st = reopen();
		for (uint64_t i = 100; i < 106; i++)
			wrong += verify(st, i, 30000, 1) != 0;
		store_close(st);
	}
	CHECK_RC(wrong, 0);
	topts = saved;
}

/* Model test of reclaim: the blocks eviction keeps are read back and
 * rewritten asynchronously, while puts, gets and deletes go on. A get
 * must return the last version put or nothing, and a deleted block must
 * not come back (unless put again). */
#define RM_KEYS 40u

static void
rm_data(unsigned k, unsigned ver, uint8_t *buf, size_t len)
{
	test_fill((uint64_t)k << 20 | ver, buf, len);
}

static size_t
rm_len(unsigned k, unsigned ver)
{
	return 6000 + ((k * 131u + ver * 977u) % 6000u);
}

/* A fresh store of 16 segments on ndev memory devices, k + m, whose
 * completions are held back a few polls, as a device's take time. */
static struct store *
slow_store(unsigned ndev, unsigned k, unsigned m)
{
	struct store_format_opts fo = { .k = k, .m = m, .chunk_size = CHUNK };
	struct store_io *io, *fio;
	struct store *st;

	store_memdisk_destroy(md);
	REQUIRE(store_memdisk_create(ndev, STORE_DATA_OFF + 16 * CHUNK, &md) ==
		0);
	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_format(io, &fo) == 0);
	store_io_close(io);
	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_io_fault_open(io, 7, &fio) == 0);
	for (unsigned d = 0; d < ndev; d++)
		store_io_fault_delay_dev(fio, d, 3);
	REQUIRE(store_open(fio, &topts, &st) == 0);
	return st;
}

static void
test_reclaim_model(void)
{
	unsigned ver[RM_KEYS] = { 0 }, next_ver = 1;
	bool live[RM_KEYS] = { false };
	uint8_t *want = malloc(16384), *got;
	uint64_t rs = 12345;
	struct store_stats ss;
	struct store *st;
	int wrong = 0, eagain = 0;

	REQUIRE(posix_memalign((void **)&got, 4096, 16384) == 0);
	/* reads of kept blocks are in flight while other requests come */
	st = slow_store(3, 2, 1);
	for (unsigned step = 0; step < 6000; step++) {
		unsigned k = (unsigned)(test_rand(&rs) % RM_KEYS);
		unsigned what = (unsigned)(test_rand(&rs) % 10);
		uint8_t key[32];
		int rc;

		test_key(k, key);
		if (what < 4) {
			unsigned v = next_ver++;
			size_t len = rm_len(k, v);
			struct iovec iov = { want, len };

			rm_data(k, v, want, len);
			/* -EAGAIN: no room until reclaim's reads are done;
			 * as gpucached does, go on with other requests */
			rc = store_put_submit(st, NS, key, &iov, 1, 0, NULL,
					      NULL);
			if (rc == -EAGAIN) {
				/* now and then wait for what frees room (the
				 * sealer thread's work too) */
				if (++eagain % 8 == 0)
					REQUIRE(store_poll(st, 1) >= 0);
				continue;
			}
			CHECK_RC(rc, 0);
			ver[k] = v;
			live[k] = true;
		} else if (what < 8) {
			rc = store_get(st, NS, key, got, 16384);
			if (rc >= 0) {
				size_t len = rm_len(k, ver[k]);

				rm_data(k, ver[k], want, len);
				if (!live[k] || rc != (int)len ||
				    memcmp(want, got, len) != 0) {
					fprintf(stderr, "key %u: rc %d, live %d "
						"ver %u\n", k, rc, live[k],
						ver[k]);
					wrong++;
				}
			}
		} else if (what == 8) {
			rc = store_delete(st, NS, key);
			/* -EAGAIN: no room for its tombstone yet (rare) */
			CHECK(rc == 0 || rc == -GPC_ENOTFOUND || rc == -EAGAIN);
			if (rc != -EAGAIN)
				live[k] = false;
		} else {
			REQUIRE(store_poll(st, 0) >= 0);
		}
	}
	store_get_stats(st, &ss);
	CHECK(ss.segs_evicted > 0);
	CHECK(ss.blocks_reinserted > 0);
	CHECK(eagain > 0); /* requests did come while reclaim read */
	CHECK_RC(wrong, 0);
	store_close(st);
	free(want);
	free(got);
}

/* A put that may wait for reclaim (-EAGAIN), as gpucached retries it. */
static void
put_retry(struct store *st, uint64_t i, size_t len)
{
	uint8_t key[32], *buf = malloc(len);
	struct iovec iov = { buf, len };
	int rc;

	test_key(i, key);
	test_fill(i, buf, len);
	while ((rc = store_put_submit(st, NS, key, &iov, 1, 0, NULL,
				      NULL)) == -EAGAIN)
		REQUIRE(store_poll(st, 1) >= 0);
	CHECK_RC(rc, 0);
	free(buf);
}

static int clock_get_rc;
static void
clock_get_cb(void *arg, int rc)
{
	(void)arg;
	clock_get_rc = rc;
}

/*
 * CLOCK across an asynchronous reclaim: block H is read, so the first
 * reclaim of its segment keeps it (that read is spent). Read once more
 * while that reclaim's reads are in flight (so H is read where it still
 * is), H must be kept again at the next reclaim of its new segment;
 * without that read it must not. The rewrite used to drop the read.
 */
static bool
clock_run(bool read_in_window)
{
	struct store_stats ss;
	struct store *st;
	uint8_t key[32], *buf;
	uint64_t i = 1000, evicted;
	bool in_window = false, kept;

	REQUIRE(posix_memalign((void **)&buf, 4096, 16384) == 0);
	st = slow_store(1, 1, 0);
	put_retry(st, 1, 8000); /* H: the first block of the first segment */
	test_key(1, key);
	CHECK_RC(store_get(st, NS, key, buf, 16384), 8000);
	/* fill until the first segment's reclaim is under way */
	for (;;) {
		uint8_t k2[32], *fb = malloc(8000);
		struct iovec iov = { fb, 8000 };
		int rc;

		test_key(i, k2);
		test_fill(i, fb, 8000);
		rc = store_put_submit(st, NS, k2, &iov, 1, 0, NULL, NULL);
		free(fb);
		store_get_stats(st, &ss);
		if (ss.segs_evicted > 0) { /* its reads are in flight now */
			in_window = true;
			if (rc == 0)
				i++;
			break;
		}
		if (rc == -EAGAIN) { /* a write in flight: wait, again */
			REQUIRE(store_poll(st, 1) >= 0);
			continue;
		}
		CHECK_RC(rc, 0);
		i++;
	}
	CHECK(in_window);
	CHECK_RC(ss.segs_evicted, 1);
	if (read_in_window) {
		struct iovec v = { buf, 16384 };

		clock_get_rc = 1;
		CHECK_RC(store_get_submit(st, NS, key, &v, 1, clock_get_cb,
					  NULL), 0);
		while (clock_get_rc == 1)
			REQUIRE(store_poll(st, 1) >= 0);
		CHECK_RC(clock_get_rc, 8000);
	}

	/* a round of the log and a few segments more, H not read: its new
	 * segment (open at the first reclaim) is reclaimed once, its copy's
	 * not yet */
	store_get_stats(st, &ss);
	evicted = ss.segs_evicted;
	while (ss.segs_evicted < evicted + ss.nslots + 4) {
		put_retry(st, i++, 8000);
		store_get_stats(st, &ss);
	}
	kept = store_get(st, NS, key, buf, 16384) == 8000;
	store_close(st);
	free(buf);
	return kept;
}

static struct store_zc_ref *zc_held;
static int zc_rc = 1;
static void
zc_hold_cb(void *arg, int rc, const struct iovec *iov, unsigned n,
	   struct store_zc_ref *ref)
{
	(void)arg;
	(void)iov;
	(void)n;
	zc_rc = rc;
	zc_held = ref;
}

/* A zero-copy get (gpucached's) of a block still in its write buffer is
 * a reference too: the block is kept at its segment's reclaim. */
static bool
zc_dram_run(bool read)
{
	struct store_stats ss;
	struct store *st;
	uint8_t key[32];
	uint64_t i = 1000;
	bool kept;

	mkstore(1, 1, 0);
	st = reopen();
	put_retry(st, 1, 8000);
	test_key(1, key);
	if (read) {
		void *buf = aligned_alloc(4096, 16384);

		CHECK(store_block_buffered(st, NS, key));
		zc_rc = 1;
		CHECK_RC(store_get_zc_submit(st, NS, key, buf, 16384,
					     zc_hold_cb, NULL), 0);
		while (zc_rc == 1)
			REQUIRE(store_poll(st, 1) >= 0);
		CHECK_RC(zc_rc, 8000);
		store_get_zc_release(st, zc_held);
		free(buf);
	}
	store_get_stats(st, &ss); /* its segment reclaimed once */
	while (ss.segs_evicted < 1) {
		put_retry(st, i++, 8000);
		store_get_stats(st, &ss);
	}
	kept = store_exists(st, NS, key) == 1;
	store_close(st);
	return kept;
}

static void
test_clock_across_reclaim(void)
{
	CHECK(clock_run(true));
	CHECK(!clock_run(false));
	CHECK(zc_dram_run(true));
	CHECK(!zc_dram_run(false));
}

/* One write buffer: the open segment holds it when it fills, and must
 * be closed for its write to free it (no deadlock waiting for another). */
static void
test_one_wbuf(void)
{
	struct store_opts saved = topts;
	struct store *st;
	int wrong = 0;

	topts.wbuf_segs = 1;
	mkstore(3, 2, 1);
	st = reopen();
	for (uint64_t i = 0; i < 40; i++) {
		uint8_t key[32], buf[30000];
		struct iovec iov = { buf, test_len(i, 30000) };
		int rc, tries = 0;

		test_key(i, key);
		test_fill(i, buf, iov.iov_len);
		while ((rc = store_put_submit(st, NS, key, &iov, 1, 0, NULL,
					      NULL)) == -EAGAIN &&
		       ++tries < 100000)
			REQUIRE(store_poll(st, 1) >= 0);
		CHECK_RC(rc, 0);
	}
	CHECK_RC(store_flush(st), 0);
	for (uint64_t i = 0; i < 40; i++)
		wrong += verify(st, i, 30000, 1) != 1;
	CHECK_RC(wrong, 0);
	store_close(st);
	topts = saved;
}

/*
 * A clean close while a reclaim is under way: the evicted segment's slot
 * is free but not written over; a block evicted from it and then deleted
 * (a delete of an absent key writes no tombstone) must not come back at
 * the next open.
 */
static void
test_close_mid_reclaim(void)
{
	struct store_format_opts fo = { .k = 1, .m = 0, .chunk_size = CHUNK };
	struct store_io *io;
	struct store *st;
	struct store_stats s;
	uint8_t key[32], buf[8192];
	int rc = 0;

	store_memdisk_destroy(md);
	REQUIRE(store_memdisk_create(1, STORE_DATA_OFF + 16 * CHUNK, &md) == 0);
	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_format(io, &fo) == 0);
	store_io_close(io);
	st = reopen();
	for (uint64_t i = 500; i < 507; i++) /* the first segment */
		CHECK_RC(put(st, i, 8000, 0), 0);
	for (uint64_t i = 501; i < 507; i++) /* read: reclaim keeps them */
		CHECK_RC(verify(st, i, 8000, 1), 1);
	for (uint64_t i = 600; i < 2000 && rc == 0; i++) {
		struct iovec iov = { buf, test_len(i, 8000) };

		test_key(i, key);
		test_fill(i, buf, iov.iov_len);
		while ((rc = store_put_submit(st, NS, key, &iov, 1, 0, NULL,
					      NULL)) == -EAGAIN) {
			store_get_stats(st, &s);
			if (s.segs_evicted > 0)
				break; /* the first reclaim is reading */
			REQUIRE(store_poll(st, 1) >= 0);
		}
	}
	CHECK_RC(rc, -EAGAIN);
	test_key(500, key);
	CHECK_RC(store_delete(st, NS, key), -GPC_ENOTFOUND); /* evicted */
	store_close(st);
	st = reopen();
	CHECK_RC(verify(st, 500, 8000, 1), 0);
	store_close(st);
}

int
main(void)
{
	/* passes: the sealer thread (bit 0), write-back (bit 1) */
	for (int pass = 0; pass < 4; pass++) {
		topts.seal_thread = pass & 1;
		topts.writeback_ms = pass & 2 ? 60000 : 0;
		test_writeback();
		test_one_wbuf();
		test_close_mid_reclaim();
		test_drop_invalidates();
		test_reclaim_model();
		test_clock_across_reclaim();
		test_basic();
		if (pass == 0) /* the same for every pass; a second long */
			test_ttl_whole_seconds();
		test_evict();
		test_degraded();
		test_zero_copy();
		test_landed_pieces();
		test_resv_dedup();
		test_quota();
		test_wide();
	}
	store_memdisk_destroy(md);
	return test_summary("test_store");
}
