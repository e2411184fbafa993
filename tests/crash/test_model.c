/*
 * test_model.c - a model check of the store with everything on at once:
 * eviction with asynchronous reclaim and reinsertion, write-back and
 * dropped segments, the sealer thread (every other round), zero-copy gets
 * held across polls, pins, durable puts, flushes; a clean close and
 * reopen between rounds. Bytes encode the version: a get returns the
 * last version put or nothing, a deleted block stays deleted across
 * reopens, and a pinned block is always there, also after a reopen.
 * Argument: the random seed (default 1).
 */
#include <unistd.h>
#include "common/log.h"
/* crashlib.h's helpers this test does not use */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "crashlib.h"

#define N 40u
#define NFIX 4u /* ids N..N+NFIX-1: put and pinned once, never touched */
static uint32_t ver[N + NFIX]; /* latest version put (0: never) */
static uint8_t deleted[N + NFIX]; /* deleted (store said 0) since last put */
static uint8_t pinned[N + NFIX];  /* pinned (store said 0) since last put */
static unsigned bad;

static size_t blen(unsigned id) { return 3000 + (id * 7919u) % 20000; }

static void
fill(unsigned id, uint32_t v, uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(id * 31 + v * 17 + i / 512);
	memcpy(b, &v, 4);
}

static void
check(struct store *st, unsigned id, const char *when)
{
	uint8_t key[32], *got, *want;
	size_t len = blen(id);
	int rc;

	if (ver[id] == 0)
		return;
	got = malloc(len + 8192);
	want = malloc(len);
	test_key(id, key);
	fill(id, ver[id], want, len);
	rc = store_get(st, CL_NS, key, got, len + 8192);
	if (rc == -GPC_ENOTFOUND && pinned[id]) {
		fprintf(stderr, "%s: id %u pinned, missing\n", when, id);
		bad++;
	}
	if (rc == -GPC_ENOTFOUND)
		goto out;
	if (deleted[id] || rc != (int)len || memcmp(got, want, len) != 0) {
		uint32_t gv = 0;
		if (rc >= 4)
			memcpy(&gv, got, 4);
		fprintf(stderr, "%s: id %u rc %d ver got %u want %u deleted %d\n",
			when, id, rc, gv, ver[id], deleted[id]);
		bad++;
	}
out:
	free(got);
	free(want);
}

static struct store_zc_ref *zref[8];
static int zn;
static void
zc_cb(void *arg, int rc, const struct iovec *iov, unsigned n,
      struct store_zc_ref *ref)
{
	(void)arg; (void)rc; (void)iov; (void)n;
	if (ref != NULL && zn < 8)
		zref[zn++] = ref;
}

int
main(int argc, char **argv)
{
	struct store_format_opts fo = { .k = 2, .m = 1, .chunk_size = 64u << 10 };
	struct store_opts o = { .wbuf_segs = 4, .writeback_ms = 5 };
	struct store_memdisk *md;
	struct store_io *io;
	struct store *st;
	uint64_t rs = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
	uint8_t key[32], *buf = malloc(40000), *zbuf = aligned_alloc(4096, 32768);
	struct store_stats ss;

	log_set_level(LOG_ERR);
	REQUIRE(store_memdisk_create(3, 3u << 20, &md) == 0);
	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_format(io, &fo) == 0);
	store_io_close(io);
	uint64_t pinned_bytes = 0;

	for (int round = 0; round < 6; round++) {
		REQUIRE(store_io_mem_open(md, &io) == 0);
		o.seal_thread = round & 1;
		REQUIRE(store_open(io, &o, &st) == 0);
		if (round > 0 &&
		    store_class_pinned(st, store_ns_class(CL_NS)) != pinned_bytes) {
			fprintf(stderr, "pinned %llu bytes after reopen, %llu "
				"before\n", (unsigned long long)
				store_class_pinned(st, store_ns_class(CL_NS)),
				(unsigned long long)pinned_bytes);
			bad++;
		}
		for (unsigned id = 0; id < N + NFIX; id++)
			check(st, id, "after reopen");
		for (unsigned id = N; round == 0 && id < N + NFIX; id++) {
			size_t len = blen(id);
			struct iovec iov = { buf, len };

			test_key(id, key);
			fill(id, 1, buf, len);
			REQUIRE(store_put_submit(st, CL_NS, key, &iov, 1,
						 STORE_PUT_DURABLE, NULL, NULL) == 0);
			while (store_pending(st) > 0)
				store_poll(st, 1);
			ver[id] = 1;
			REQUIRE(store_pin(st, CL_NS, key, true) == 0);
			pinned[id] = 1;
		}
		for (unsigned step = 0; step < 4000; step++) {
			unsigned what = (unsigned)(test_rand(&rs) % 100);
			unsigned id = (unsigned)(test_rand(&rs) % N);
			int rc;

			test_key(id, key);
			if (what < 45) {
				size_t len = blen(id);
				struct iovec iov = { buf, len };
				fill(id, ver[id] + 1, buf, len);
				do {
					rc = store_put_submit(st, CL_NS, key, &iov, 1,
						what < 3 ? STORE_PUT_DURABLE : 0, NULL, NULL);
					if (rc == -EAGAIN) {
						while (zn > 0) /* readers pin buffers */
							store_get_zc_release(st, zref[--zn]);
						store_poll(st, 1);
					}
				} while (rc == -EAGAIN);
				if (rc == 0) {
					ver[id]++;
					deleted[id] = 0;
					pinned[id] = 0;
				} else {
					fprintf(stderr, "put rc %d\n", rc);
				}
			} else if (what < 75) {
				check(st, id, "get");
			} else if (what < 82) {
				do {
					rc = store_delete(st, CL_NS, key);
					if (rc == -EAGAIN) {
						while (zn > 0)
							store_get_zc_release(st, zref[--zn]);
						store_poll(st, 1);
					}
				} while (rc == -EAGAIN);
				if (rc == 0) {
					deleted[id] = 1;
					pinned[id] = 0;
				}
			} else if (what < 86) {
				if (zn < 8)
					store_get_zc_submit(st, CL_NS, key, zbuf, 32768,
							    zc_cb, NULL);
			} else if (what < 90) {
				if (zn > 0)
					store_get_zc_release(st, zref[--zn]);
			} else if (what < 91) {
				store_flush(st);
			} else if (what < 93) {
				usleep(2000);
				store_poll(st, 0);
			} else if (what < 95) {
				do {
					rc = store_pin(st, CL_NS, key, what & 1);
					if (rc == -EAGAIN)
						store_poll(st, 1);
				} while (rc == -EAGAIN);
				if (rc == 0)
					pinned[id] = what & 1;
			} else {
				store_poll(st, 0);
			}
		}
		while (zn > 0)
			store_get_zc_release(st, zref[--zn]);
		for (int i = 0; i < 20; i++)
			store_poll(st, 0);
		store_get_stats(st, &ss);
		fprintf(stderr, "round %d: evicted %llu dropped %llu sealed %llu reinserted %llu\n",
			round, (unsigned long long)ss.segs_evicted,
			(unsigned long long)ss.segs_dropped,
			(unsigned long long)ss.segs_sealed,
			(unsigned long long)ss.blocks_reinserted);
		for (unsigned id = 0; id < N + NFIX; id++)
			check(st, id, "before close");
		pinned_bytes = store_class_pinned(st, store_ns_class(CL_NS));
		store_close(st);
	}
	fprintf(stderr, "bad %u\n", bad);
	CHECK(bad == 0);
	store_memdisk_destroy(md);
	free(buf);
	free(zbuf);
	return test_summary("test_model");
}
