/*
 * test_writeback.c - what write-back must keep true across a crash
 * (found by review; each failed before its fix):
 *   A  a flush issued while a closed segment still waits on a
 *      reservation completes without waiting writeback_ms;
 *   B  a segment a flush covers is written even if everything in it was
 *      superseded meanwhile by puts that are not durable: after a crash
 *      the flushed version (or a newer) is there, never an older one;
 *   C  a deleted and flushed block stays deleted after a crash although
 *      segments dropped unwritten reused the slots that held it and its
 *      tombstone (the zeroed headers of a dropped segment are flushed
 *      before its slot is reused).
 */
#include <unistd.h>
#include "common/log.h"
/* crashlib.h's helpers this test does not use */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "crashlib.h"

static void
flag_cb(void *arg, int rc)
{
	int *p = arg;
	*p = rc == 0 ? 1 : rc;
}

static void
putb(struct store *st, unsigned id, char c, size_t len)
{
	uint8_t key[32], *buf = malloc(len);
	int rc;

	test_key(id, key);
	memset(buf, c, len);
	do {
		rc = store_put(st, CL_NS, key, buf, len, 0);
	} while (rc == -EAGAIN);
	CHECK_RC(rc, 0);
	free(buf);
}

static char
getb(struct store *st, unsigned id, size_t len)
{
	uint8_t key[32], *buf = malloc(len + 64);
	int rc;
	char c;

	test_key(id, key);
	rc = store_get(st, CL_NS, key, buf, len + 64);
	c = rc == (int)len ? (char)buf[0] : (rc == -GPC_ENOTFOUND ? '-' : '?');
	free(buf);
	return c;
}

/* A: a flush issued while a closed segment waits on a reservation waits
 * for writeback_ms after the reservation completes. */
static void
test_flush_deferred(void)
{
	struct store_format_opts fo = { .k = 1, .m = 0, .chunk_size = 64u << 10 };
	struct store_opts o = { .wbuf_segs = 4, .writeback_ms = 60000 };
	struct store_memdisk *md;
	struct store_io *io;
	struct store *st;
	struct store_resv r;
	uint8_t key[32];
	int fl = 0;

	REQUIRE(store_memdisk_create(1, 8u << 20, &md) == 0);
	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_format(io, &fo) == 0);
	store_io_close(io);
	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_open(io, &o, &st) == 0);
	test_key(900, key);
	REQUIRE(store_put_reserve(st, CL_NS, key, 4096, &r) == 0);
	memset(r.iov[0].iov_base, 'R', r.iov[0].iov_len);
	for (unsigned i = 0; i < 12; i++) /* closes the reservation's segment */
		putb(st, i, 'x', 16000);
	REQUIRE(store_flush_submit(st, flag_cb, &fl) == 0);
	for (int i = 0; i < 50; i++)
		store_poll(st, 0);
	CHECK(fl == 0); /* the reservation's segment is not written yet */
	REQUIRE(store_put_commit(st, &r, 0, NULL, NULL) == 0);
	for (int i = 0; i < 200 && fl == 0; i++) {
		store_poll(st, 0);
		usleep(1000);
	}
	fprintf(stderr, "A: flush after the reservation committed: %s\n",
		fl == 1 ? "done" : "STILL WAITING (writeback_ms)");
	CHECK(fl == 1);
	store_close(st);
	store_memdisk_destroy(md);
}

/* B: a flush returns 0, yet a put made before it is lost after a crash
 * and an older version comes back: its segment was dropped because a
 * newer, non-durable put superseded it. */
static void
test_drop_after_flush(void)
{
	struct store_format_opts fo = { .k = 1, .m = 0, .chunk_size = 64u << 10 };
	struct store_opts o = { .wbuf_segs = 4, .writeback_ms = 20 };
	struct store_memdisk *md;
	struct store_io *io, *fio;
	struct store *st;
	struct store_resv r;
	uint8_t key[32];
	int fl = 0;
	char c;

	REQUIRE(store_memdisk_create(1, 8u << 20, &md) == 0);
	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_format(io, &fo) == 0);
	store_io_close(io);
	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_io_fault_open(io, 1, &fio) == 0);
	store_io_fault_crash_mode(fio, true);
	REQUIRE(store_open(fio, &o, &st) == 0);
	putb(st, 1, 'A', 8000);             /* K v0 */
	CHECK_RC(store_flush(st), 0);        /* durable */
	test_key(900, key);
	REQUIRE(store_put_reserve(st, CL_NS, key, 4096, &r) == 0); /* S1 */
	putb(st, 1, 'B', 8000);              /* K v1, S1 */
	for (unsigned i = 10; i < 14; i++)   /* fill S1 (10..12), close it,
					      * open S2 (13) */
		putb(st, i, 'x', 8000);
	REQUIRE(store_flush_submit(st, flag_cb, &fl) == 0); /* covers K v1 */
	for (int i = 0; i < 20; i++)
		store_poll(st, 0);
	putb(st, 1, 'C', 8000);              /* K v2: not durable */
	for (unsigned i = 10; i < 13; i++)   /* supersede S1's fillers */
		putb(st, i, 'y', 8000);
	store_put_abort(st, &r);             /* S1: nothing live -> held */
	for (int i = 0; i < 500 && fl == 0; i++) {
		usleep(1000);
		store_poll(st, 0);           /* age: S1 dropped */
	}
	{
		struct store_stats ss;
		store_get_stats(st, &ss);
		fprintf(stderr, "B: flush rc flag %d, segs sealed %llu dropped %llu\n",
			fl, (unsigned long long)ss.segs_sealed,
			(unsigned long long)ss.segs_dropped);
	}
	REQUIRE(fl == 1);
	store_io_fault_crash(fio);
	store_abandon(st);
	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_open(io, NULL, &st) == 0);
	c = getb(st, 1, 8000);
	fprintf(stderr, "B: after the crash K reads '%c' (allowed: B or C)\n", c);
	CHECK(c == 'B' || c == 'C');
	store_abandon(st);
	store_memdisk_destroy(md);
}


/* C: a deleted (and flushed) block comes back after a crash: dropped
 * segments' zeroed headers are never flushed, so the evicted segment that
 * held the block can return while the one that held its tombstone is
 * gone. */
static unsigned
test_drop_unflushed(uint64_t seed, unsigned ndrop)
{
	struct store_format_opts fo = { .k = 1, .m = 0, .chunk_size = 64u << 10 };
	struct store_opts o = { .wbuf_segs = 4, .writeback_ms = 600000 };
	struct store_memdisk *md;
	struct store_io *io, *fio;
	struct store *st;
	struct store_stats ss;
	uint8_t key[32];
	unsigned id = 100, bad = 0;
	char c;

	REQUIRE(store_memdisk_create(1, 2u << 20, &md) == 0);
	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_format(io, &fo) == 0);
	store_io_close(io);
	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_io_fault_open(io, seed, &fio) == 0);
	store_io_fault_crash_mode(fio, true);
	REQUIRE(store_open(fio, &o, &st) == 0);
	putb(st, 1, 'A', 8000);                 /* K, in S_old */
	for (unsigned i = 0; i < 4; i++)        /* fill S_old, open S_t */
		putb(st, id++, 'f', 8000);
	test_key(1, key);
	CHECK_RC(store_delete(st, CL_NS, key), 0); /* tombstone in S_t */
	CHECK_RC(store_flush(st), 0);           /* the delete is durable */
	for (;;) {                              /* the log full: no free slot */
		store_get_stats(st, &ss);
		if (ss.slots_used >= ss.nslots || ss.segs_evicted > 0)
			break;
		putb(st, id++, 'f', 8000);
	}
	CHECK_RC(ss.segs_evicted, 0);
	CHECK_RC(store_flush(st), 0);
	for (unsigned i = 0; i < 60; i++) {     /* overwrites only: dropped */
		putb(st, 5000 + i % 2, 'o', 20000);
		store_get_stats(st, &ss);
		if (ss.segs_dropped >= ndrop)
			break;
	}
	if (seed <= 2)
		fprintf(stderr, "C: held writes %llu\n",
			(unsigned long long)store_io_fault_held(fio));
	store_get_stats(st, &ss);
	if (seed == 1)
		fprintf(stderr, "C: nslots %llu evicted %llu dropped %llu sealed %llu\n",
			(unsigned long long)ss.nslots,
			(unsigned long long)ss.segs_evicted,
			(unsigned long long)ss.segs_dropped,
			(unsigned long long)ss.segs_sealed);
	c = getb(st, 1, 8000);
	CHECK(c == '-');
	store_io_fault_crash(fio);
	store_abandon(st);
	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_open(io, NULL, &st) == 0);
	c = getb(st, 1, 8000);
	if (c != '-') {
		fprintf(stderr, "C: seed %llu: deleted+flushed K reads '%c' after the crash\n",
			(unsigned long long)seed, c);
		bad++;
	}
	store_abandon(st);
	store_memdisk_destroy(md);
	return bad;
}

int
main(void)
{
	log_set_level(LOG_ERR);
	test_flush_deferred();
	test_drop_after_flush();
	{
		unsigned bad = 0;
		for (uint64_t sd = 1; sd <= 40; sd++)
			bad += test_drop_unflushed(sd, 1 + (unsigned)(sd % 4));
		fprintf(stderr, "C: %u of 40 seeds resurrected\n", bad);
		CHECK(bad == 0);
	}
	return test_summary("test_writeback");
}
