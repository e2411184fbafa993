/*
 * test_kill9.c - kill -9 of a real process writing through io_uring to
 * real files, cycle after cycle, on the same store.
 *
 * Each cycle the parent forks a child that opens the store (4+2 over 6
 * files, io_uring; psync only where io_uring_setup is refused, and then it
 * says so) and puts blocks as fast as it can: ids from where the last
 * child stopped, sizes 1 B .. 200 KiB, bytes a pure function of the id
 * (test.h), every 8th put STORE_PUT_DURABLE. Over a pipe it tells the
 * parent each id before it submits it, and each durable id once the
 * callback has said durable. 10-200 ms after the child says it is open,
 * the parent sends SIGKILL, reaps it, opens the store itself (read-only)
 * and checks: every id ever reported durable reads back bit-exact; every
 * id the child tried reads back bit-exact or is a miss; never a wrong
 * byte. Older non-durable ids are sampled each cycle and all swept at the
 * end and before a reformat.
 *
 * So that "durable" keeps meaning "present", the store never evicts: the
 * child stops putting when free slots run low, and the parent formats a
 * fresh store when half the slots are used (printed; rare).
 *
 * GPC_KILL9_CYCLES=n runs n cycles (default 20); GPC_KILL9_SEED=n picks
 * other kill times.
 */
#include <inttypes.h>
#include <poll.h>
#include <signal.h>

#include "func.h"

#define NDEV 6
#define K 4
#define M 2
#define DEVSZ (256ull << 20)
#define CHUNK (256u << 10)
#define MAXLEN (200u << 10)

/* pipe messages: a tag in the top bits, an id below */
#define MSG_READY (1ull << 62)
#define MSG_TRIED (2ull << 62)
#define MSG_DURABLE (3ull << 62)
#define MSG_ID(v) ((v) & ((1ull << 62) - 1))

static int child_fd = -1;

/* Length of block id: mostly small, every fourth up to 200 KiB. */
static size_t
blen(uint64_t id)
{
	return test_len(id, id % 4 == 0 ? MAXLEN : (16u << 10));
}

static bool
is_durable(uint64_t id)
{
	return id % 8 == 5;
}

static void
child_say(uint64_t v)
{
	while (write(child_fd, &v, sizeof(v)) < 0)
		if (errno != EINTR)
			_exit(3);
}

static void
child_put_cb(void *arg, int rc)
{
	uint64_t id = (uint64_t)(uintptr_t)arg;

	if (rc == 0 && is_durable(id))
		child_say(MSG_DURABLE | id);
}

/* The child: put blocks from id `next` on until killed. Never returns. */
static void
child(uint64_t next)
{
	uint8_t *buf = malloc(MAXLEN), key[32];
	struct store_stats s;
	struct store *st;
	struct store_io *io;

	if (buf == NULL || func_io_open(NDEV, &io) < 0 ||
	    store_open(io, NULL, &st) < 0)
		_exit(2);
	child_say(MSG_READY);
	for (;;) {
		struct iovec iov;
		int rc;

		store_get_stats(st, &s);
		if (s.slots_used + 8 >= s.nslots) { /* no eviction: idle */
			store_poll(st, 0);
			usleep(1000);
			continue;
		}
		iov = (struct iovec){ buf, blen(next) };
		test_key(next, key);
		test_fill(next, buf, iov.iov_len);
		child_say(MSG_TRIED | next);
		do {
			rc = store_put_submit(st, FUNC_NS, key, &iov, 1,
					      is_durable(next) ? STORE_PUT_DURABLE
							       : 0,
					      child_put_cb,
					      (void *)(uintptr_t)next);
			if (rc == -EAGAIN && store_poll(st, 1) < 0)
				_exit(4);
		} while (rc == -EAGAIN);
		if (rc < 0)
			_exit(5);
		next++;
		if (store_poll(st, 0) < 0)
			_exit(4);
	}
}

/* What the parent knows of every id since the store was formatted. */
static uint8_t *durable;   /* per id: reported durable */
static uint64_t epoch;     /* first id of this store */
static uint64_t next_id;   /* ids [epoch, next_id) were tried */
static uint64_t cap_ids;

static void
note_tried(uint64_t id)
{
	if (id >= cap_ids) {
		uint64_t n = cap_ids ? cap_ids * 2 : 4096;

		while (n <= id)
			n *= 2;
		durable = realloc(durable, n);
		REQUIRE(durable != NULL);
		memset(durable + cap_ids, 0, n - cap_ids);
		cap_ids = n;
	}
	if (id + 1 > next_id)
		next_id = id + 1;
}

/* Read one message, waiting up to ms; 1 got one, 0 timeout, -1 EOF. */
static int
recv_msg(int fd, int ms, uint64_t *v)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, ms) <= 0)
		return 0;
	n = read(fd, v, sizeof(*v));
	if (n == 0)
		return -1;
	REQUIRE(n == (ssize_t)sizeof(*v)); /* 8-byte writes are atomic */
	return 1;
}

/* Bookkeep one message; true for READY. */
static bool
take_msg(uint64_t v, unsigned *ndur)
{
	uint64_t id = MSG_ID(v);

	switch (v & (3ull << 62)) {
	case MSG_READY:
		return true;
	case MSG_TRIED:
		note_tried(id);
		break;
	case MSG_DURABLE:
		REQUIRE(id < next_id); /* tried before it was acknowledged */
		durable[id] = 1;
		(*ndur)++;
		break;
	default:
		REQUIRE(!"bad message");
	}
	return false;
}

struct tally {
	unsigned long exact, miss, wrong, dur_lost;
};

/* Check id: durable ones must be exact; none may be wrong. */
static void
check_id(struct store *st, uint64_t id, struct tally *t)
{
	uint8_t key[32], *got;
	size_t len = blen(id), cap = len + 4096;
	int rc;

	REQUIRE(posix_memalign((void **)&got, 4096, cap + 64) == 0);
	test_key(id, key);
	rc = store_get(st, FUNC_NS, key, got + (id % 3 == 0 ? 8 : 0), cap);
	if (rc == -GPC_ENOTFOUND) {
		t->miss++;
		if (durable[id]) {
			t->dur_lost++;
			fprintf(stderr, "LOST: durable block %" PRIu64 " (%zu "
				"bytes) is a miss\n", id, len);
		}
	} else {
		uint8_t *want = malloc(len);

		REQUIRE(want != NULL);
		test_fill(id, want, len);
		if (rc == (int)len &&
		    memcmp(want, got + (id % 3 == 0 ? 8 : 0), len) == 0) {
			t->exact++;
		} else {
			t->wrong++;
			fprintf(stderr, "WRONG: block %" PRIu64 ": rc %d (%s), "
				"len %zu\n", id, rc,
				rc < 0 ? gpc_strerror(rc) : "data", len);
		}
		free(want);
	}
	free(got);
}

static void
tally_check(const struct tally *t)
{
	CHECK_RC(t->wrong, 0);
	CHECK_RC(t->dur_lost, 0);
}

/* All ids since the store was formatted. */
static void
sweep(const char *why)
{
	struct store *st = func_open(NDEV, true);
	struct tally t = { 0 };

	for (uint64_t id = epoch; id < next_id; id++)
		check_id(st, id, &t);
	printf("sweep (%s): ids %" PRIu64 "..%" PRIu64 ": %lu exact, %lu "
	       "missed, %lu wrong, %lu durable lost\n", why, epoch, next_id,
	       t.exact, t.miss, t.wrong, t.dur_lost);
	tally_check(&t);
	store_abandon(st);
}

/* One cycle: fork, wait until the child is open, let it run, kill it. */
static void
cycle(unsigned c, uint64_t *rng, unsigned *ndur_total)
{
	uint64_t first = next_id, v;
	unsigned ndur = 0, delay_ms = 10 + (unsigned)(test_rand(rng) % 191);
	int fds[2], status, rc = 0;
	double t0, deadline;
	bool ready = false;
	pid_t pid;

	REQUIRE(pipe(fds) == 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		child_fd = fds[1];
		child(first);
	}
	close(fds[1]);
	t0 = func_now();
	while (!ready && func_now() - t0 < 30 &&
	       (rc = recv_msg(fds[0], 100, &v)) >= 0)
		if (rc > 0)
			ready = take_msg(v, &ndur);
	CHECK(ready);
	deadline = func_now() + delay_ms / 1000.0;
	while (ready && func_now() < deadline) {
		int ms = (int)((deadline - func_now()) * 1000) + 1;

		rc = recv_msg(fds[0], ms, &v);
		if (rc < 0)
			break;
		if (rc > 0)
			take_msg(v, &ndur);
	}
	CHECK_RC(kill(pid, SIGKILL), 0);
	REQUIRE(waitpid(pid, &status, 0) == pid);
	if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
		fprintf(stderr, "cycle %u: the child did not die of SIGKILL "
			"(status 0x%x: exit %d)\n", c, status,
			WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	while (recv_msg(fds[0], 1000, &v) > 0) /* the rest, to EOF */
		take_msg(v, &ndur);
	close(fds[0]);
	*ndur_total += ndur;

	/* reopen: durable ones exact, this child's exact or missing */
	{
		struct store *st = func_open(NDEV, true);
		struct tally t = { 0 };
		struct store_stats s;
		unsigned long durchk = 0;

		for (uint64_t id = epoch; id < first; id++) /* older durable */
			if (durable[id]) {
				check_id(st, id, &t);
				durchk++;
			}
		for (uint64_t id = first; id < next_id; id++)
			check_id(st, id, &t);
		for (unsigned i = 0; i < 32 && first > epoch; i++) /* sample */
			check_id(st, epoch + test_rand(rng) % (first - epoch),
				 &t);
		store_get_stats(st, &s);
		printf("cycle %2u: killed after %3u ms: ids %" PRIu64 "..%"
		       PRIu64 " tried, %u durable; %lu older durable checked;"
		       " %lu exact, %lu missed, %lu wrong; %" PRIu64 " torn, "
		       "%" PRIu64 "/%" PRIu64 " slots\n", c, delay_ms, first,
		       next_id, ndur, durchk, t.exact, t.miss, t.wrong,
		       s.torn_segs, s.slots_used, s.nslots);
		tally_check(&t);
		store_abandon(st);
		if (s.slots_used * 2 > s.nslots) {
			sweep("before a fresh store");
			func_format(NDEV, DEVSZ, K, M, CHUNK);
			epoch = next_id;
			printf("half the slots used: formatted a fresh store, "
			       "ids from %" PRIu64 "\n", epoch);
		}
	}
}

int
main(void)
{
	unsigned cycles = 20, ndur = 0;
	uint64_t rng = 9, seed = 9;
	double t0 = func_now();

	if (getenv("GPC_KILL9_CYCLES") != NULL)
		cycles = (unsigned)strtoul(getenv("GPC_KILL9_CYCLES"), NULL, 0);
	if (getenv("GPC_KILL9_SEED") != NULL)
		seed = strtoull(getenv("GPC_KILL9_SEED"), NULL, 0);
	rng = seed;
	signal(SIGPIPE, SIG_IGN);
	func_setup("kill9", NDEV);
	func_format(NDEV, DEVSZ, K, M, CHUNK);
	printf("%u cycles, seed %" PRIu64 " (GPC_KILL9_CYCLES, "
	       "GPC_KILL9_SEED)\n", cycles, seed);
	if (strcmp(func_backend, "uring") != 0)
		printf("NOTE: the child writes through psync, not io_uring\n");
	for (unsigned c = 0; c < cycles; c++)
		cycle(c, &rng, &ndur);
	sweep("end");
	printf("%u durable acknowledgements in all\n", ndur);
	CHECK(ndur > 0);
	printf("%.2f s\n", func_now() - t0);
	return test_summary("test_kill9");
}
