/*
 * test_devloss.c - device loss on real files: a 4+2 store over 6 device
 * files loses 2 of them under load (one truncated in place while gets are
 * in flight, one overwritten with garbage), then again across a reopen
 * (one deleted and recreated empty, one garbage): every block reads back
 * bit-exact and puts go on. A third device goes: blocks read back exact
 * or as misses (-GPC_ENOTFOUND), never wrong, and nothing crashes. The
 * third comes back as it was, the other two are replaced by blank files
 * and rebuilt (one through store_rebuild, one through `gpucache rebuild`),
 * and after a reopen every device is healthy and every block bit-exact;
 * store_fsck and `gpucache fsck` find nothing.
 *
 * Usage: test_devloss [path-to-gpucache]  (or GPC_GPUCACHE=path); without
 * it the CLI steps use the store API and say so.
 */
#include "func.h"

#define NDEV 6
#define K 4
#define M 2
#define DEVSZ (32ull << 20)
#define CHUNK (256u << 10)
#define MAXLEN (64u << 10)

/* ids [0, N1) before the loss, [N1, N2) after it, [N2, N3) after reopen */
#define N1 240u
#define N2 320u
#define N3 400u

static const char *cli;

static void
put_range(struct store *st, uint64_t lo, uint64_t hi)
{
	for (uint64_t id = lo; id < hi; id++)
		CHECK_RC(func_put(st, id, MAXLEN,
				  id % 20 == 0 ? STORE_PUT_DURABLE : 0), 0);
}

static void
no_eviction(struct store *st)
{
	struct store_stats s;

	store_get_stats(st, &s);
	REQUIRE(s.segs_evicted == 0); /* else "zero lost" would not hold */
}

static void
all_exact(struct store *st, uint64_t hi, const char *when)
{
	struct func_tally t = func_verify_range(st, 0, hi, MAXLEN);

	printf("%s: %lu exact, %lu missed, %lu wrong of %llu\n", when, t.exact,
	       t.miss, t.wrong, (unsigned long long)hi);
	CHECK_RC(t.wrong, 0);
	CHECK_RC(t.miss, 0);
	CHECK_RC(t.exact, hi);
}

struct getctx {
	uint64_t id;
	uint8_t *buf;
	struct iovec iov;
	int rc;
	bool done;
};

static void
get_cb(void *arg, int rc)
{
	struct getctx *g = arg;

	g->rc = rc;
	g->done = true;
}

static void
submit_gets(struct store *st, struct getctx *g, uint64_t lo, uint64_t hi)
{
	for (uint64_t id = lo; id < hi; id++) {
		uint8_t key[32];
		size_t cap = test_len(id, MAXLEN) + 8192;

		g[id].id = id;
		REQUIRE(posix_memalign((void **)&g[id].buf, 4096, cap + 64) == 0);
		/* every third one unaligned: the bounce-buffer path */
		g[id].iov = (struct iovec){ g[id].buf + (id % 3 == 0 ? 8 : 0),
					    cap };
		test_key(id, key);
		CHECK_RC(store_get_submit(st, FUNC_NS, key, &g[id].iov, 1,
					  get_cb, &g[id]), 0);
	}
}

/*
 * Phase 1: 2 devices fail under load. Device 1 is truncated to nothing
 * in place and device 4 overwritten with garbage while gets are in flight
 * (with io_uring the second batch reaches the kernel only after that).
 */
static void
loss_under_load(void)
{
	struct getctx *g = calloc(N1, sizeof(*g));
	struct store *st;
	unsigned exact = 0, miss = 0, wrong = 0;

	REQUIRE(g != NULL);
	st = func_open(NDEV, false);
	put_range(st, 0, N1);
	CHECK_RC(store_flush(st), 0);
	no_eviction(st);
	submit_gets(st, g, 0, N1 / 2);
	store_poll(st, 0);
	REQUIRE(truncate(func_paths[1], 0) == 0);
	func_file_garbage(func_paths[4], 4);
	submit_gets(st, g, N1 / 2, N1);
	while (store_pending(st) > 0)
		REQUIRE(store_poll(st, 1) >= 0);
	for (uint64_t id = 0; id < N1; id++) {
		int r;

		CHECK(g[id].done);
		r = func_verify_rc(id, MAXLEN, g[id].rc, g[id].iov.iov_base);
		exact += r > 0;
		miss += r == 0;
		wrong += r < 0;
		free(g[id].buf);
	}
	free(g);
	printf("gets in flight while devices 1 and 4 went: %u exact, %u "
	       "missed, %u wrong\n", exact, miss, wrong);
	if (miss > 0)
		fprintf(stderr, "ENGINE BUG (store_read.c:store_read_range): "
			"with device 1 failed and device 4 returning garbage, "
			"blocks on device 1 are reconstructed from the garbage "
			"chunk and read as misses; 4+2 tolerates both\n");
	CHECK_RC(wrong, 0);
	CHECK_RC(miss, 0);
	all_exact(st, N1, "after the loss, open");
	CHECK_RC(store_dev_health(st, 1), STORE_DEV_FAILED);
	/* puts keep working, durable ones too */
	put_range(st, N1, N2);
	CHECK_RC(store_flush(st), 0);
	all_exact(st, N2, "after more puts, degraded");
	no_eviction(st);
	store_close(st);
}

/* Phase 2: the same 2 devices are lost across a reopen. */
static void
loss_across_reopen(void)
{
	struct store *st;
	int fd;

	REQUIRE(unlink(func_paths[1]) == 0); /* deleted, recreated empty */
	fd = open(func_paths[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	close(fd);
	func_file_garbage(func_paths[4], 44);
	st = func_open(NDEV, false);
	for (unsigned d = 0; d < NDEV; d++)
		CHECK_RC(store_dev_health(st, d), d == 1 || d == 4
				? STORE_DEV_FAILED : STORE_DEV_HEALTHY);
	all_exact(st, N2, "reopened without devices 1 and 4");
	put_range(st, N2, N3);
	CHECK_RC(store_flush(st), 0);
	all_exact(st, N3, "after degraded puts");
	no_eviction(st);
	store_close(st);
	st = func_open(NDEV, false);
	all_exact(st, N3, "reopened again, degraded");
	store_close(st);
}

/*
 * Phase 3: a third device (2) goes: more losses than m. First in place
 * while the store is open (truncated: reads fail with EIO), then missing
 * across a reopen. Blocks read back exact or as misses, never wrong; a put
 * has no stripe to go to and is refused; nothing crashes.
 */
static void
third_loss(const char *backup)
{
	struct store *st;
	struct func_tally t, t2;
	int rc;

	func_file_copy(func_paths[2], backup);
	st = func_open(NDEV, false);
	REQUIRE(truncate(func_paths[2], 0) == 0);
	t = func_verify_range(st, 0, N3, MAXLEN);
	printf("devices 1, 4 lost, 2 truncated while open: %lu exact, %lu "
	       "missed, %lu wrong\n", t.exact, t.miss, t.wrong);
	CHECK_RC(t.wrong, 0);
	CHECK(t.miss > 0);
	CHECK_RC(store_dev_health(st, 2), STORE_DEV_FAILED);
	/* no stripe can take a write: refused, and what was readable stays */
	rc = func_put(st, N3, MAXLEN, STORE_PUT_DURABLE);
	printf("a put with 3 of 6 devices lost: %s\n", gpc_strerror(rc));
	CHECK(rc < 0);
	t2 = func_verify_range(st, 0, N3, MAXLEN);
	printf("after that put: %lu exact, %lu missed, %lu wrong\n", t2.exact,
	       t2.miss, t2.wrong);
	CHECK_RC(t2.wrong, 0);
	if (t2.exact != t.exact)
		fprintf(stderr, "ENGINE BUG (store_write.c:alloc_slot): a put "
			"that no stripe can take evicted every segment, so "
			"readable blocks became misses: %lu exact before, %lu "
			"after\n", t.exact, t2.exact);
	CHECK_RC(t2.exact, t.exact);
	store_close(st);

	REQUIRE(unlink(func_paths[2]) == 0);
	st = func_open(NDEV, false);
	CHECK_RC(store_dev_health(st, 2), STORE_DEV_FAILED);
	t = func_verify_range(st, 0, N3, MAXLEN);
	printf("reopened without devices 1, 2 and 4: %lu exact, %lu missed, "
	       "%lu wrong\n", t.exact, t.miss, t.wrong);
	CHECK_RC(t.wrong, 0);
	CHECK(t.miss > 0);
	CHECK(func_put(st, N3, MAXLEN, 0) < 0);
	store_close(st);
}

/* Phase 4: device 2 back as it was, 1 and 4 blank replacements, rebuilt. */
static void
restore_and_rebuild(const char *backup)
{
	struct store_fsck_report r;
	struct store *st;
	long n;

	func_file_copy(backup, func_paths[2]);
	func_file_blank(func_paths[1], DEVSZ);
	func_file_blank(func_paths[4], DEVSZ);
	st = func_open(NDEV, false);
	CHECK_RC(store_dev_health(st, 2), STORE_DEV_HEALTHY);
	CHECK_RC(store_dev_health(st, 1), STORE_DEV_FAILED);
	CHECK_RC(store_dev_health(st, 4), STORE_DEV_FAILED);
	n = store_rebuild(st, 1);
	printf("store_rebuild(1): %ld chunks\n", n);
	CHECK(n > 0);
	if (cli == NULL) {
		printf("gpucache CLI not given (argv[1] or GPC_GPUCACHE): "
		       "rebuilding device 4 through the store API\n");
		n = store_rebuild(st, 4);
		CHECK(n > 0);
	}
	store_close(st);
	if (cli != NULL)
		CHECK_RC(func_cli(cli, "rebuild", 4, NDEV), 0);
	st = func_open(NDEV, false);
	for (unsigned d = 0; d < NDEV; d++)
		CHECK_RC(store_dev_health(st, d), STORE_DEV_HEALTHY);
	all_exact(st, N3, "rebuilt and reopened");
	CHECK_RC(store_fsck(st, NULL, NULL, &r), 0);
	printf("fsck: %llu segments, %llu bad chunks, %llu blocks, %llu "
	       "damaged\n", (unsigned long long)r.segs,
	       (unsigned long long)r.chunks_bad, (unsigned long long)r.blocks,
	       (unsigned long long)r.blocks_bad);
	CHECK_RC(r.segs_bad, 0);
	CHECK_RC(r.chunks_bad, 0);
	CHECK_RC(r.blocks_bad, 0);
	CHECK(r.blocks >= N3);
	store_close(st);
	if (cli != NULL)
		CHECK_RC(func_cli(cli, "fsck", -1, NDEV), 0);
}

int
main(int argc, char **argv)
{
	char backup[320];
	double t0 = func_now();

	cli = argc > 1 ? argv[1] : getenv("GPC_GPUCACHE");
	if (cli != NULL && access(cli, X_OK) != 0) {
		printf("gpucache CLI %s not executable: using the API\n", cli);
		cli = NULL;
	}
	func_setup("devloss", NDEV);
	snprintf(backup, sizeof(backup), "%s/dev2.saved", func_dir);
	func_format(NDEV, DEVSZ, K, M, CHUNK);
	loss_under_load();
	loss_across_reopen();
	third_loss(backup);
	restore_and_rebuild(backup);
	printf("%.2f s\n", func_now() - t0);
	return test_summary("test_devloss");
}
