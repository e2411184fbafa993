/*
 * test_io.c - unit tests of the store I/O backends (src/store/io*.c): the
 * io_uring and psync backends over temporary files, and the fault wrapper
 * around each of them.
 *
 * Every test gets fresh files in a directory made with mkdtemp under
 * $TMPDIR (or /tmp) and removed at the end. Checks count failures and let
 * the test go on; waits are bounded, so a lost callback fails, never hangs.
 *
 * Exit: 0 all passed, 1 a test failed, 77 skipped: io_uring is absent
 * (io_uring_setup ENOSYS under qemu-user, or disabled) or the directory
 * refuses O_DIRECT; the psync and fault tests still run then, and a
 * failure among them still exits 1.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "store/io.h"
#include "store/io_fault.h"

#define DEV_SIZE (1u << 20)
#define SECT STORE_IO_ALIGN
#define WAIT_ROUNDS 100000

struct tenv {
	const char *kind; /* "psync" or "uring" */
	int (*open)(const struct store_io_cfg *cfg, struct store_io **out);
	const char *dir;
	unsigned nfile;   /* names handed out */
};

struct tcase {
	const char *name;
	void (*fn)(struct tenv *e);
};

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

static int t_fail; /* failed checks in the running test */

static bool
check(bool ok, const char *what, const char *file, int line)
{
	if (!ok) {
		fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
		t_fail++;
	}
	return ok;
}

#define CHECK(c) check((c), #c, __FILE__, __LINE__)

/* A request with its own iovecs and a record of its callback. */
struct treq {
	struct store_io_req req;
	struct iovec iov[4];
	int ncb;
	int res;
	int *pending; /* decremented by the callback, if set */
};

static void
treq_cb(struct store_io_req *r)
{
	struct treq *t = r->arg;

	t->ncb++;
	t->res = r->res;
	if (t->pending != NULL)
		(*t->pending)--;
}

static void
treq_set(struct treq *t, uint8_t op, unsigned dev, uint64_t off, void *buf,
	 size_t len)
{
	memset(t, 0, sizeof(*t));
	t->iov[0].iov_base = buf;
	t->iov[0].iov_len = len;
	t->req.op = op;
	t->req.dev = (uint16_t)dev;
	t->req.buf_index = -1;
	t->req.off = off;
	t->req.iov = t->iov;
	t->req.iovcnt = op == STORE_IO_FLUSH ? 0 : 1;
	t->req.cb = treq_cb;
	t->req.arg = t;
}

/* Poll until *pending reaches 0 or nothing is left in flight. */
static void
wait_pending(struct store_io *io, int *pending)
{
	int i, rc;

	for (i = 0; i < WAIT_ROUNDS && *pending > 0; i++) {
		rc = store_io_poll(io, 1);
		if (!CHECK(rc >= 0))
			return;
		if (rc == 0 && io->inflight == 0)
			break;
	}
	CHECK(*pending == 0);
}

/* Submit one request and wait for it: its res, or the submit error. */
static int
do_io(struct store_io *io, uint8_t op, unsigned dev, uint64_t off, void *buf,
      size_t len)
{
	struct treq t;
	int pending = 1, rc;

	treq_set(&t, op, dev, off, buf, len);
	t.pending = &pending;
	rc = store_io_submit(io, &t.req);
	if (rc < 0)
		return rc;
	CHECK(t.ncb == 0); /* never inside submit */
	wait_pending(io, &pending);
	CHECK(t.ncb == 1);
	return t.ncb == 1 ? t.res : -ETIMEDOUT;
}

static void *
buf_new(size_t len)
{
	void *p = aligned_alloc(SECT, len);

	if (p == NULL) {
		fprintf(stderr, "test_io: out of memory\n");
		exit(1);
	}
	memset(p, 0, len);
	return p;
}

/* Bytes that differ with seed and position (and from zero, mostly). */
static void
fill(void *buf, size_t len, unsigned seed)
{
	uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 12) + 1u);
}

static bool
is_zero(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] != 0)
			return false;
	}
	return true;
}

static void
path_new(struct tenv *e, char *path, size_t size)
{
	snprintf(path, size, "%s/%s-%u", e->dir, e->kind, e->nfile++);
}

/* Read a device file directly, behind the backend's back. */
static void
file_read(const char *path, uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(pread(fd, buf, len, (off_t)off) == (ssize_t)len);
	close(fd);
}

/* Open ndev fresh files of DEV_SIZE with the backend under test. */
static int
env_open(struct tenv *e, unsigned ndev, unsigned qd, char paths[][128],
	 struct store_io **io)
{
	const char *pp[4];
	struct store_io_cfg cfg = {
		.ndev = ndev, .paths = pp, .queue_depth = qd,
		.create = true, .create_size = DEV_SIZE,
	};
	unsigned i;
	int rc;

	for (i = 0; i < ndev; i++) {
		path_new(e, paths[i], 128);
		pp[i] = paths[i];
	}
	rc = e->open(&cfg, io);
	CHECK(rc == 0);
	return rc;
}

/* The fault wrapper around the backend under test. */
static int
fault_env_open(struct tenv *e, unsigned ndev, uint64_t seed,
	       char paths[][128], struct store_io **io)
{
	struct store_io *inner;
	int rc;

	rc = env_open(e, ndev, 0, paths, &inner);
	if (rc < 0)
		return rc;
	rc = store_io_fault_open(inner, seed, io);
	CHECK(rc == 0);
	if (rc < 0)
		store_io_close(inner);
	return rc;
}

/* ---- backends ---------------------------------------------------------- */

static void
t_create_size(struct tenv *e)
{
	char paths[1][128];
	struct store_dev_info di;
	struct store_io *io;
	struct stat st;

	if (env_open(e, 1, 0, paths, &io) < 0)
		return;
	CHECK(io->ops->dev_info(io, 0, &di) == 0);
	CHECK(di.size == DEV_SIZE && di.state == STORE_DEV_OK);
	CHECK(strcmp(di.path, paths[0]) == 0);
	CHECK(stat(paths[0], &st) == 0 && st.st_size == DEV_SIZE);
	CHECK(io->ops->dev_info(io, 1, &di) == -EINVAL);
	store_io_close(io);
}

static void
t_rw_iov(struct tenv *e)
{
	char paths[1][128];
	uint8_t *src = buf_new(4 * SECT), *dst = buf_new(4 * SECT);
	uint8_t *file = buf_new(4 * SECT);
	struct store_io *io;
	struct treq t;
	int pending;

	fill(src, 4 * SECT, 1);
	if (env_open(e, 1, 0, paths, &io) < 0)
		goto out;
	treq_set(&t, STORE_IO_WRITE, 0, 16 * SECT, src, SECT);
	t.iov[1] = (struct iovec){ src + SECT, 2 * SECT };
	t.iov[2] = (struct iovec){ src + 3 * SECT, SECT };
	t.req.iovcnt = 3;
	pending = 1;
	t.pending = &pending;
	CHECK(store_io_submit(io, &t.req) == 0);
	CHECK(io->inflight == 1 && t.ncb == 0);
	wait_pending(io, &pending);
	CHECK(t.ncb == 1 && t.res == (int)(4 * SECT));
	CHECK(io->inflight == 0);

	treq_set(&t, STORE_IO_READ, 0, 16 * SECT, dst + 3 * SECT, SECT);
	t.iov[1] = (struct iovec){ dst, 3 * SECT };
	t.req.iovcnt = 2;
	pending = 1;
	t.pending = &pending;
	CHECK(store_io_submit(io, &t.req) == 0);
	wait_pending(io, &pending);
	CHECK(t.res == (int)(4 * SECT));
	CHECK(memcmp(dst + 3 * SECT, src, SECT) == 0);
	CHECK(memcmp(dst, src + SECT, 3 * SECT) == 0);
	file_read(paths[0], 16 * SECT, file, 4 * SECT);
	CHECK(memcmp(file, src, 4 * SECT) == 0);
	store_io_close(io);
out:
	free(src);
	free(dst);
	free(file);
}

static void
t_rw_fixed(struct tenv *e)
{
	char paths[1][128];
	uint8_t *b0 = buf_new(16 * SECT), *b1 = buf_new(16 * SECT);
	struct iovec bufs[2] = { { b0, 16 * SECT }, { b1, 16 * SECT } };
	struct store_io *io;
	struct treq t;

	fill(b1, 16 * SECT, 2);
	if (env_open(e, 1, 0, paths, &io) < 0)
		goto out;
	CHECK(io->ops->register_bufs(io, bufs, 2) == 0);
	treq_set(&t, STORE_IO_WRITE, 0, 0, b1 + 2 * SECT, 4 * SECT);
	t.req.buf_index = 1;
	CHECK(store_io_submit(io, &t.req) == 0);
	CHECK(io->ops->register_bufs(io, bufs, 1) == -EBUSY);
	CHECK(store_io_poll(io, 1) == 1 && t.res == (int)(4 * SECT));
	treq_set(&t, STORE_IO_READ, 0, 0, b0 + SECT, 4 * SECT);
	t.req.buf_index = 0;
	CHECK(store_io_submit(io, &t.req) == 0);
	CHECK(store_io_poll(io, 1) == 1 && t.res == (int)(4 * SECT));
	CHECK(memcmp(b0 + SECT, b1 + 2 * SECT, 4 * SECT) == 0);

	/* A buffer index out of the table, or an iovec outside the buffer. */
	t.req.buf_index = 2;
	CHECK(store_io_submit(io, &t.req) == -EINVAL);
	t.req.buf_index = 0;
	t.iov[0].iov_base = b0 + 14 * SECT;
	CHECK(store_io_submit(io, &t.req) == -EINVAL);
	t.iov[0].iov_base = b1;
	CHECK(store_io_submit(io, &t.req) == -EINVAL);
	/* Replaced, then dropped. */
	CHECK(io->ops->register_bufs(io, &bufs[1], 1) == 0);
	CHECK(store_io_submit(io, &t.req) == 0);
	CHECK(store_io_poll(io, 1) == 1 && t.res == (int)(4 * SECT));
	CHECK(io->ops->register_bufs(io, NULL, 0) == 0);
	CHECK(store_io_submit(io, &t.req) == -EINVAL);
	CHECK(store_io_poll(io, 0) == 0 && t.ncb == 2);
	store_io_close(io);
out:
	free(b0);
	free(b1);
}

/* 64 writes, then 64 reads, all in flight at once in a ring of 8. */
static void
t_many(struct tenv *e)
{
	enum { N = 64 };
	char paths[1][128];
	uint8_t *src = buf_new(N * SECT), *dst = buf_new(N * SECT);
	struct treq *t = calloc(N, sizeof(*t));
	struct store_io *io;
	int pending, i, pass;

	fill(src, N * SECT, 3);
	if (t == NULL || env_open(e, 1, 8, paths, &io) < 0)
		goto out;
	for (pass = 0; pass < 2; pass++) {
		uint8_t op = pass == 0 ? STORE_IO_WRITE : STORE_IO_READ;
		uint8_t *base = pass == 0 ? src : dst;

		pending = N;
		for (i = 0; i < N; i++) {
			treq_set(&t[i], op, 0, (uint64_t)(N - 1 - i) * 2 * SECT,
				 base + (size_t)i * SECT, SECT);
			t[i].pending = &pending;
			CHECK(store_io_submit(io, &t[i].req) == 0);
		}
		CHECK(io->inflight == N);
		wait_pending(io, &pending);
		CHECK(io->inflight == 0);
		for (i = 0; i < N; i++)
			CHECK(t[i].ncb == 1 && t[i].res == (int)SECT);
	}
	CHECK(memcmp(src, dst, N * SECT) == 0);
	store_io_close(io);
out:
	free(t);
	free(src);
	free(dst);
}

static void
t_flush(struct tenv *e)
{
	char paths[2][128];
	uint8_t *src = buf_new(SECT), *file = buf_new(SECT);
	struct store_io *io;

	fill(src, SECT, 4);
	if (env_open(e, 2, 0, paths, &io) < 0)
		goto out;
	CHECK(do_io(io, STORE_IO_WRITE, 1, 5 * SECT, src, SECT) == (int)SECT);
	CHECK(do_io(io, STORE_IO_FLUSH, 1, 0, NULL, 0) == 0);
	CHECK(do_io(io, STORE_IO_FLUSH, 0, 0, NULL, 0) == 0);
	file_read(paths[1], 5 * SECT, file, SECT);
	CHECK(memcmp(file, src, SECT) == 0);
	store_io_close(io);
out:
	free(src);
	free(file);
}

/*
 * The event fd: io_uring's becomes readable when a request completes (its
 * owner sleeps on it), psync has none (its completions happen in poll).
 */
static void
t_event_fd(struct tenv *e)
{
	char paths[1][128];
	uint8_t *src = buf_new(SECT);
	struct store_io *io;
	struct treq t;
	int pending = 1, efd;

	fill(src, SECT, 9);
	if (env_open(e, 1, 0, paths, &io) < 0)
		goto out;
	efd = io->ops->event_fd != NULL ? io->ops->event_fd(io) : -1;
	if (strcmp(e->kind, "psync") == 0) {
		CHECK(efd < 0);
	} else if (CHECK(efd >= 0)) {
		struct pollfd pfd = { .fd = efd, .events = POLLIN };
		uint64_t v;

		/* nothing completed yet: not readable */
		CHECK(poll(&pfd, 1, 0) == 0);
		treq_set(&t, STORE_IO_WRITE, 0, 3 * SECT, src, SECT);
		t.pending = &pending;
		CHECK(store_io_submit(io, &t.req) == 0);
		/* poll(0) hands it to the kernel (submissions are batched);
		 * its completion then wakes a sleeper, reaped or not */
		CHECK(store_io_poll(io, 0) >= 0);
		CHECK(poll(&pfd, 1, 5000) == 1);
		CHECK(read(efd, &v, sizeof(v)) == (ssize_t)sizeof(v) && v >= 1);
		wait_pending(io, &pending);
		CHECK(t.ncb == 1 && t.res == (int)SECT);
	}
	store_io_close(io);
out:
	free(src);
}

static void
t_missing(struct tenv *e)
{
	char good[128], bad[160];
	const char *pp[2] = { good, bad };
	struct store_io_cfg cfg = {
		.ndev = 2, .paths = pp, .create = true, .create_size = DEV_SIZE,
	};
	uint8_t *buf = buf_new(SECT);
	struct store_dev_info di;
	struct store_io *io;
	struct treq t;

	path_new(e, good, sizeof(good));
	snprintf(bad, sizeof(bad), "%s/no-such-dir/dev", e->dir);
	if (!CHECK(e->open(&cfg, &io) == 0))
		goto out;
	CHECK(io->ops->dev_info(io, 1, &di) == 0);
	CHECK(di.state == STORE_DEV_MISSING && di.open_err == -ENOENT);
	CHECK(di.size == 0 && strcmp(di.path, bad) == 0);
	treq_set(&t, STORE_IO_READ, 1, 0, buf, SECT);
	CHECK(store_io_submit(io, &t.req) == 0);
	CHECK(t.ncb == 0 && io->inflight == 1);
	CHECK(store_io_poll(io, 1) == 1);
	CHECK(t.ncb == 1 && t.res == -ENODEV);
	CHECK(do_io(io, STORE_IO_FLUSH, 1, 0, NULL, 0) == -ENODEV);
	/* Even an offset far out of range: the device is gone, not small. */
	CHECK(do_io(io, STORE_IO_WRITE, 1, 1ull << 40, buf, SECT) == -ENODEV);
	CHECK(do_io(io, STORE_IO_WRITE, 0, 0, buf, SECT) == (int)SECT);
	store_io_close(io);
out:
	free(buf);
}

static void
t_invalid(struct tenv *e)
{
	char paths[1][128];
	uint8_t *buf = buf_new(4 * SECT);
	struct store_io *io;
	struct treq t;

	if (env_open(e, 1, 0, paths, &io) < 0)
		goto out;
	treq_set(&t, STORE_IO_READ, 0, 512, buf, SECT);
	CHECK(store_io_submit(io, &t.req) == -EINVAL);
	treq_set(&t, STORE_IO_WRITE, 0, 0, buf + 512, SECT);
	CHECK(store_io_submit(io, &t.req) == -EINVAL);
	treq_set(&t, STORE_IO_WRITE, 0, 0, buf, 1000);
	CHECK(store_io_submit(io, &t.req) == -EINVAL);
	treq_set(&t, STORE_IO_WRITE, 0, 0, buf, 0);
	CHECK(store_io_submit(io, &t.req) == -EINVAL);
	treq_set(&t, STORE_IO_READ, 1, 0, buf, SECT);
	CHECK(store_io_submit(io, &t.req) == -EINVAL);
	treq_set(&t, STORE_IO_READ, 0, 0, buf, SECT);
	t.req.cb = NULL;
	CHECK(store_io_submit(io, &t.req) == -EINVAL);
	treq_set(&t, 7, 0, 0, buf, SECT);
	CHECK(store_io_submit(io, &t.req) == -EINVAL);
	treq_set(&t, STORE_IO_READ, 0, DEV_SIZE, buf, SECT);
	CHECK(store_io_submit(io, &t.req) == -ERANGE);
	treq_set(&t, STORE_IO_WRITE, 0, DEV_SIZE - SECT, buf, 2 * SECT);
	CHECK(store_io_submit(io, &t.req) == -ERANGE);
	treq_set(&t, STORE_IO_WRITE, 0, UINT64_MAX - SECT + 1, buf, SECT);
	CHECK(store_io_submit(io, &t.req) == -ERANGE);
	CHECK(store_io_poll(io, 0) == 0 && t.ncb == 0 && io->inflight == 0);
	/* The last sector is in range. */
	CHECK(do_io(io, STORE_IO_WRITE, 0, DEV_SIZE - SECT, buf, SECT) ==
	      (int)SECT);
	store_io_close(io);
out:
	free(buf);
}

/* A file shrunk behind the backend's back: short reads end in -EIO. */
static void
t_short(struct tenv *e)
{
	char paths[1][128];
	uint8_t *buf = buf_new(4 * SECT);
	struct store_io *io;

	fill(buf, 4 * SECT, 12);
	if (env_open(e, 1, 0, paths, &io) < 0)
		goto out;
	CHECK(do_io(io, STORE_IO_WRITE, 0, 0, buf, 4 * SECT) ==
	      (int)(4 * SECT));
	CHECK(truncate(paths[0], 2 * SECT) == 0);
	CHECK(do_io(io, STORE_IO_READ, 0, 0, buf, 4 * SECT) == -EIO);
	CHECK(truncate(paths[0], 2 * SECT + 100) == 0);
	CHECK(do_io(io, STORE_IO_READ, 0, 0, buf, 4 * SECT) == -EIO);
	CHECK(do_io(io, STORE_IO_READ, 0, 0, buf, 2 * SECT) ==
	      (int)(2 * SECT));
	store_io_close(io);
out:
	free(buf);
}

/* A callback that submits the next write of a chain. */
struct chain {
	struct treq t;
	struct store_io *io;
	int left;
	int ran;
	uint8_t *buf;
};

static void
chain_cb(struct store_io_req *r)
{
	struct chain *c = r->arg;

	c->ran++;
	CHECK(r->res == (int)SECT);
	if (c->left-- <= 0)
		return;
	r->off += SECT;
	r->iov = c->t.iov;
	c->t.iov[0].iov_base = c->buf + (r->off % (8 * SECT));
	CHECK(store_io_submit(c->io, r) == 0);
}

static void
t_chain(struct tenv *e)
{
	char paths[1][128];
	uint8_t *buf = buf_new(8 * SECT), *file = buf_new(20 * SECT);
	struct store_io *io;
	struct chain c;
	int i;

	fill(buf, 8 * SECT, 5);
	if (env_open(e, 1, 0, paths, &io) < 0)
		goto out;
	memset(&c, 0, sizeof(c));
	treq_set(&c.t, STORE_IO_WRITE, 0, 0, buf, SECT);
	c.t.req.cb = chain_cb;
	c.t.req.arg = &c;
	c.io = io;
	c.left = 19;
	c.buf = buf;
	CHECK(store_io_submit(io, &c.t.req) == 0);
	for (i = 0; i < WAIT_ROUNDS && io->inflight > 0; i++)
		CHECK(store_io_poll(io, 1) >= 0);
	CHECK(c.ran == 20 && io->inflight == 0);
	file_read(paths[0], 0, file, 20 * SECT);
	for (i = 0; i < 20; i++)
		CHECK(memcmp(file + (size_t)i * SECT, buf + (i % 8) * SECT,
			     SECT) == 0);
	store_io_close(io);
out:
	free(buf);
	free(file);
}

/* ---- fault wrapper ------------------------------------------------------ */

static void
t_fault_nth(struct tenv *e)
{
	char paths[1][128];
	uint8_t *buf = buf_new(SECT), *file = buf_new(SECT);
	struct store_io *io;
	uint64_t n0;

	fill(buf, SECT, 6);
	if (fault_env_open(e, 1, 1, paths, &io) < 0)
		goto out;
	n0 = store_io_fault_count(io);
	store_io_fault_fail_nth(io, 2, -ENOSPC);
	CHECK(do_io(io, STORE_IO_WRITE, 0, 0, buf, SECT) == (int)SECT);
	CHECK(do_io(io, STORE_IO_WRITE, 0, SECT, buf, SECT) == -ENOSPC);
	CHECK(do_io(io, STORE_IO_WRITE, 0, 2 * SECT, buf, SECT) == (int)SECT);
	CHECK(store_io_fault_count(io) == n0 + 3);
	file_read(paths[0], SECT, file, SECT);
	CHECK(is_zero(file, SECT)); /* the failed write never went down */
	file_read(paths[0], 2 * SECT, file, SECT);
	CHECK(memcmp(file, buf, SECT) == 0);
	/* Rejected requests take no number; a positive errno is negated. */
	CHECK(do_io(io, STORE_IO_READ, 0, 100, buf, SECT) == -EINVAL);
	CHECK(store_io_fault_count(io) == n0 + 3);
	store_io_fault_fail_nth(io, 1, EIO);
	CHECK(do_io(io, STORE_IO_FLUSH, 0, 0, NULL, 0) == -EIO);
	CHECK(do_io(io, STORE_IO_FLUSH, 0, 0, NULL, 0) == 0);
	store_io_close(io);
out:
	free(buf);
	free(file);
}

static void
t_fault_dev(struct tenv *e)
{
	char paths[2][128];
	uint8_t *buf = buf_new(SECT);
	struct store_io *io;

	if (fault_env_open(e, 2, 2, paths, &io) < 0)
		goto out;
	store_io_fault_fail_dev(io, 1, true);
	CHECK(do_io(io, STORE_IO_READ, 1, 0, buf, SECT) == -EIO);
	CHECK(do_io(io, STORE_IO_FLUSH, 1, 0, NULL, 0) == -EIO);
	CHECK(do_io(io, STORE_IO_READ, 0, 0, buf, SECT) == (int)SECT);
	store_io_fault_fail_dev(io, 1, false);
	CHECK(do_io(io, STORE_IO_READ, 1, 0, buf, SECT) == (int)SECT);
	store_io_close(io);
out:
	free(buf);
}

static void
t_fault_delay(struct tenv *e)
{
	char paths[2][128];
	uint8_t *buf = buf_new(2 * SECT);
	struct store_io *io;
	struct treq a, b;
	int polls, pending = 2;

	if (fault_env_open(e, 2, 3, paths, &io) < 0)
		goto out;
	store_io_fault_delay_dev(io, 0, 3);
	treq_set(&a, STORE_IO_READ, 0, 0, buf, SECT);
	treq_set(&b, STORE_IO_READ, 1, 0, buf + SECT, SECT);
	a.pending = b.pending = &pending;
	CHECK(store_io_submit(io, &a.req) == 0);
	CHECK(store_io_submit(io, &b.req) == 0);
	for (polls = 0; polls < 1000 && b.ncb == 0; polls++)
		CHECK(store_io_poll(io, 0) >= 0);
	CHECK(b.ncb == 1 && a.ncb == 0);
	for (polls = 0; polls < 1000 && a.ncb == 0; polls++)
		CHECK(store_io_poll(io, 0) >= 0);
	CHECK(a.ncb == 1 && a.res == (int)SECT && polls >= 2);
	/* A waiting poll does not give up on a delayed request. */
	CHECK(do_io(io, STORE_IO_READ, 0, 0, buf, SECT) == (int)SECT);
	store_io_fault_delay_dev(io, 0, 0);
	CHECK(io->inflight == 0);
	store_io_close(io);
out:
	free(buf);
}

static unsigned
bits_differ(const uint8_t *a, const uint8_t *b, size_t len)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; i < len; i++)
		n += (unsigned)__builtin_popcount(a[i] ^ b[i]);
	return n;
}

static void
t_fault_flip(struct tenv *e)
{
	char paths[1][128];
	uint8_t *src = buf_new(4 * SECT), *dst = buf_new(4 * SECT);
	struct store_io *io;

	fill(src, 4 * SECT, 7);
	if (fault_env_open(e, 1, 4, paths, &io) < 0)
		goto out;
	CHECK(do_io(io, STORE_IO_WRITE, 0, 0, src, 4 * SECT) ==
	      (int)(4 * SECT));
	store_io_fault_flip_reads(io, 0, 2, 1);
	CHECK(do_io(io, STORE_IO_READ, 0, 0, dst, 4 * SECT) ==
	      (int)(4 * SECT));
	CHECK(bits_differ(src, dst, 4 * SECT) == 1);
	CHECK(do_io(io, STORE_IO_READ, 0, 0, dst, 4 * SECT) ==
	      (int)(4 * SECT));
	CHECK(bits_differ(src, dst, 4 * SECT) == 1);
	CHECK(do_io(io, STORE_IO_READ, 0, 0, dst, 4 * SECT) ==
	      (int)(4 * SECT));
	CHECK(memcmp(src, dst, 4 * SECT) == 0);
	store_io_fault_flip_reads(io, 0, 1, 5);
	CHECK(do_io(io, STORE_IO_READ, 0, 0, dst, 4 * SECT) ==
	      (int)(4 * SECT));
	CHECK(bits_differ(src, dst, 4 * SECT) == 5);
	store_io_close(io);
out:
	free(src);
	free(dst);
}

static void
t_fault_misdirect(struct tenv *e)
{
	char paths[1][128];
	uint8_t *src = buf_new(SECT), *file = buf_new(3 * SECT);
	struct store_io *io;

	fill(src, SECT, 8);
	if (fault_env_open(e, 1, 5, paths, &io) < 0)
		goto out;
	store_io_fault_misdirect_next(io, 0, 2 * SECT);
	CHECK(do_io(io, STORE_IO_WRITE, 0, 0, src, SECT) == (int)SECT);
	file_read(paths[0], 0, file, 3 * SECT);
	CHECK(is_zero(file, 2 * SECT));
	CHECK(memcmp(file + 2 * SECT, src, SECT) == 0);
	CHECK(do_io(io, STORE_IO_WRITE, 0, 0, src, SECT) == (int)SECT);
	file_read(paths[0], 0, file, SECT);
	CHECK(memcmp(file, src, SECT) == 0);
	/* Off either end of the device: the write fails. */
	store_io_fault_misdirect_next(io, 0, (int64_t)DEV_SIZE);
	CHECK(do_io(io, STORE_IO_WRITE, 0, 0, src, SECT) == -EIO);
	store_io_fault_misdirect_next(io, 0, -(int64_t)SECT);
	CHECK(do_io(io, STORE_IO_WRITE, 0, 0, src, SECT) == -EIO);
	store_io_close(io);
out:
	free(src);
	free(file);
}

/*
 * Held writes are seen by reads, in order; a flush of a device makes its
 * held writes durable and leaves the other devices' held.
 */
static void
t_fault_held(struct tenv *e)
{
	char paths[2][128];
	uint8_t *a = buf_new(2 * SECT), *b = buf_new(2 * SECT);
	uint8_t *dst = buf_new(4 * SECT), *file = buf_new(4 * SECT);
	struct store_io *io;

	fill(a, 2 * SECT, 9);
	fill(b, 2 * SECT, 10);
	if (fault_env_open(e, 2, 6, paths, &io) < 0)
		goto out;
	store_io_fault_crash_mode(io, true);
	CHECK(do_io(io, STORE_IO_WRITE, 0, SECT, a, 2 * SECT) ==
	      (int)(2 * SECT));
	CHECK(do_io(io, STORE_IO_WRITE, 1, 0, b, 2 * SECT) ==
	      (int)(2 * SECT));
	CHECK(do_io(io, STORE_IO_WRITE, 0, 2 * SECT, b, 2 * SECT) ==
	      (int)(2 * SECT));
	CHECK(store_io_fault_held(io) == 3);
	file_read(paths[0], 0, file, 4 * SECT);
	CHECK(is_zero(file, 4 * SECT));
	CHECK(do_io(io, STORE_IO_READ, 0, 0, dst, 4 * SECT) ==
	      (int)(4 * SECT));
	CHECK(is_zero(dst, SECT));
	CHECK(memcmp(dst + SECT, a, SECT) == 0);
	CHECK(memcmp(dst + 2 * SECT, b, 2 * SECT) == 0);
	store_io_fault_flip_reads(io, 0, 1, 3);
	CHECK(do_io(io, STORE_IO_READ, 0, 0, file, 4 * SECT) ==
	      (int)(4 * SECT));
	CHECK(bits_differ(file, dst, 4 * SECT) == 3);

	CHECK(do_io(io, STORE_IO_FLUSH, 0, 0, NULL, 0) == 0);
	CHECK(store_io_fault_held(io) == 1);
	file_read(paths[0], 0, file, 4 * SECT);
	CHECK(memcmp(file, dst, 4 * SECT) == 0);
	file_read(paths[1], 0, file, 2 * SECT);
	CHECK(is_zero(file, 2 * SECT));
	CHECK(do_io(io, STORE_IO_WRITE, 0, 0, a, SECT) == (int)SECT);
	CHECK(do_io(io, STORE_IO_FLUSH, 1, 0, NULL, 0) == 0);
	CHECK(store_io_fault_held(io) == 1);
	file_read(paths[1], 0, file, 2 * SECT);
	CHECK(memcmp(file, b, 2 * SECT) == 0);
	file_read(paths[0], 0, file, SECT);
	CHECK(is_zero(file, SECT));
	/* Crash mode off: what is held goes down (no flush). */
	store_io_fault_crash_mode(io, false);
	CHECK(store_io_fault_held(io) == 0);
	file_read(paths[0], 0, file, SECT);
	CHECK(memcmp(file, a, SECT) == 0);
	store_io_close(io);
out:
	free(a);
	free(b);
	free(dst);
	free(file);
}

/* Registered buffers through the wrapper, held and passed down. */
static void
t_fault_fixed(struct tenv *e)
{
	char paths[1][128];
	uint8_t *b0 = buf_new(8 * SECT), *file = buf_new(2 * SECT);
	struct iovec bufs[1] = { { b0, 8 * SECT } };
	struct store_io *io;
	struct treq t;

	fill(b0, 4 * SECT, 13);
	if (fault_env_open(e, 1, 8, paths, &io) < 0)
		goto out;
	CHECK(io->ops->register_bufs(io, bufs, 1) == 0);
	store_io_fault_crash_mode(io, true);
	treq_set(&t, STORE_IO_WRITE, 0, 0, b0, 2 * SECT);
	t.req.buf_index = 0;
	CHECK(store_io_submit(io, &t.req) == 0);
	CHECK(io->ops->register_bufs(io, bufs, 1) == -EBUSY);
	CHECK(store_io_poll(io, 1) == 1 && t.res == (int)(2 * SECT));
	treq_set(&t, STORE_IO_READ, 0, 0, b0 + 4 * SECT, 2 * SECT);
	t.req.buf_index = 0;
	CHECK(store_io_submit(io, &t.req) == 0);
	CHECK(store_io_poll(io, 1) == 1 && t.res == (int)(2 * SECT));
	CHECK(memcmp(b0, b0 + 4 * SECT, 2 * SECT) == 0);
	t.iov[0].iov_base = b0 + 7 * SECT;
	CHECK(store_io_submit(io, &t.req) == -EINVAL);
	CHECK(do_io(io, STORE_IO_FLUSH, 0, 0, NULL, 0) == 0);
	file_read(paths[0], 0, file, 2 * SECT);
	CHECK(memcmp(file, b0, 2 * SECT) == 0);
	store_io_fault_crash_mode(io, false);
	memset(b0 + 4 * SECT, 0, 2 * SECT);
	t.iov[0].iov_base = b0 + 4 * SECT;
	CHECK(store_io_submit(io, &t.req) == 0);
	CHECK(store_io_poll(io, 1) == 1 && t.res == (int)(2 * SECT));
	CHECK(memcmp(b0, b0 + 4 * SECT, 2 * SECT) == 0);
	store_io_close(io);
out:
	free(b0);
	free(file);
}

/* A device the inner backend could not open: -ENODEV, held or not. */
static void
t_fault_missing(struct tenv *e)
{
	char good[128], bad[160];
	const char *pp[2] = { good, bad };
	struct store_io_cfg cfg = {
		.ndev = 2, .paths = pp, .create = true, .create_size = DEV_SIZE,
	};
	uint8_t *buf = buf_new(SECT);
	struct store_io *inner, *io;

	path_new(e, good, sizeof(good));
	snprintf(bad, sizeof(bad), "%s/no-such-dir/dev", e->dir);
	if (!CHECK(e->open(&cfg, &inner) == 0))
		goto out;
	if (!CHECK(store_io_fault_open(inner, 9, &io) == 0)) {
		store_io_close(inner);
		goto out;
	}
	CHECK(do_io(io, STORE_IO_READ, 1, 0, buf, SECT) == -ENODEV);
	store_io_fault_crash_mode(io, true);
	CHECK(do_io(io, STORE_IO_WRITE, 1, 0, buf, SECT) == -ENODEV);
	CHECK(do_io(io, STORE_IO_FLUSH, 1, 0, NULL, 0) == -ENODEV);
	CHECK(store_io_fault_held(io) == 0);
	CHECK(do_io(io, STORE_IO_WRITE, 0, 0, buf, SECT) == (int)SECT);
	store_io_close(io);
out:
	free(buf);
}

enum { CR_N = 16, CR_LEN = 2 * SECT, CR_BASE = 64 * SECT };

/* How one unflushed write ended up on the file: 0 old, 1 new, 2 torn. */
static int
crash_classify(const uint8_t *file, const uint8_t *src, uint64_t off,
	       const struct store_io_fault_crash_info *ci)
{
	uint64_t newlen;

	if (memcmp(file, src, CR_LEN) == 0)
		return 1;
	if (is_zero(file, CR_LEN))
		return 0;
	if (!ci->torn || ci->torn_dev != 0 || ci->torn_off != off ||
	    ci->torn_len != CR_LEN || ci->torn_bytes < 1 ||
	    ci->torn_bytes >= SECT)
		return -1;
	newlen = ci->torn_at - off + ci->torn_bytes;
	if (memcmp(file, src, newlen) != 0 ||
	    !is_zero(file + newlen, CR_LEN - newlen))
		return -1;
	return 2;
}

static void
crash_one(struct tenv *e, uint64_t seed, unsigned *seen)
{
	char paths[1][128];
	uint8_t *src = buf_new(CR_N * CR_LEN), *file = buf_new(CR_N * CR_LEN);
	struct store_io_fault_crash_info ci;
	unsigned i, count[3] = { 0 };
	struct store_io *io;
	int k;

	fill(src, CR_N * CR_LEN, 11 + (unsigned)seed);
	if (fault_env_open(e, 1, seed, paths, &io) < 0)
		goto out;
	store_io_fault_crash_mode(io, true);
	CHECK(do_io(io, STORE_IO_WRITE, 0, 0, src, SECT) == (int)SECT);
	CHECK(do_io(io, STORE_IO_FLUSH, 0, 0, NULL, 0) == 0);
	for (i = 0; i < CR_N; i++)
		CHECK(do_io(io, STORE_IO_WRITE, 0, CR_BASE + i * CR_LEN,
			    src + i * CR_LEN, CR_LEN) == (int)CR_LEN);
	CHECK(store_io_fault_held(io) == CR_N);
	store_io_fault_crash(io);
	store_io_fault_crash_info(io, &ci);
	CHECK(ci.held == CR_N && ci.torn);
	CHECK(ci.applied + ci.dropped + 1 == CR_N);
	file_read(paths[0], 0, file, SECT);
	CHECK(memcmp(file, src, SECT) == 0); /* flushed: always there */
	file_read(paths[0], CR_BASE, file, CR_N * CR_LEN);
	for (i = 0; i < CR_N; i++) {
		k = crash_classify(file + i * CR_LEN, src + i * CR_LEN,
				   CR_BASE + i * CR_LEN, &ci);
		if (CHECK(k >= 0))
			count[k]++;
	}
	CHECK(count[0] == ci.dropped && count[1] == ci.applied);
	CHECK(count[2] == 1);
	seen[0] += count[0];
	seen[1] += count[1];
	/* The machine is off: everything fails, through the callback. */
	CHECK(do_io(io, STORE_IO_READ, 0, 0, file, SECT) == -EIO);
	CHECK(do_io(io, STORE_IO_WRITE, 0, 0, file, SECT) == -EIO);
	CHECK(do_io(io, STORE_IO_FLUSH, 0, 0, NULL, 0) == -EIO);
	store_io_close(io);
out:
	free(src);
	free(file);
}

static void
t_fault_crash(struct tenv *e)
{
	unsigned seen[2] = { 0 };
	uint64_t seed;

	for (seed = 1; seed <= 6; seed++)
		crash_one(e, seed, seen);
	CHECK(seen[0] > 0 && seen[1] > 0); /* some dropped, some applied */
}

/* Close with requests held, delayed and in the inner backend: no
 * callback runs, nothing leaks (ASan checks that). */
static void
t_fault_close(struct tenv *e)
{
	char paths[2][128];
	uint8_t *buf = buf_new(2 * SECT);
	struct store_io *io;
	struct treq t[4];

	if (fault_env_open(e, 2, 7, paths, &io) < 0)
		goto out;
	store_io_fault_delay_dev(io, 1, 5);
	treq_set(&t[0], STORE_IO_READ, 0, 0, buf, SECT);
	treq_set(&t[1], STORE_IO_READ, 1, 0, buf + SECT, SECT);
	CHECK(store_io_submit(io, &t[0].req) == 0);
	CHECK(store_io_submit(io, &t[1].req) == 0);
	store_io_fault_crash_mode(io, true);
	treq_set(&t[2], STORE_IO_WRITE, 0, 0, buf, SECT);
	treq_set(&t[3], STORE_IO_WRITE, 1, 0, buf, 2 * SECT);
	CHECK(store_io_submit(io, &t[2].req) == 0);
	CHECK(store_io_submit(io, &t[3].req) == 0);
	CHECK(io->inflight == 4 && store_io_fault_held(io) == 2);
	store_io_close(io);
	CHECK(t[0].ncb + t[1].ncb + t[2].ncb + t[3].ncb == 0);
out:
	free(buf);
}

static const struct tcase backend_tests[] = {
	{ "create_size", t_create_size },
	{ "rw_iov", t_rw_iov },
	{ "rw_fixed", t_rw_fixed },
	{ "many_in_flight", t_many },
	{ "flush", t_flush },
	{ "event_fd", t_event_fd },
	{ "missing_dev", t_missing },
	{ "invalid", t_invalid },
	{ "short_read", t_short },
	{ "callback_submits", t_chain },
};

static const struct tcase fault_tests[] = {
	{ "fault_nth", t_fault_nth },
	{ "fault_dev", t_fault_dev },
	{ "fault_delay", t_fault_delay },
	{ "fault_flip", t_fault_flip },
	{ "fault_misdirect", t_fault_misdirect },
	{ "fault_held", t_fault_held },
	{ "fault_fixed", t_fault_fixed },
	{ "fault_missing", t_fault_missing },
	{ "fault_crash", t_fault_crash },
	{ "fault_close", t_fault_close },
};

static void
run(struct tenv *e, const struct tcase *tc, size_t n, unsigned *passed,
    unsigned *failed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		t_fail = 0;
		tc[i].fn(e);
		if (t_fail == 0) {
			(*passed)++;
		} else {
			(*failed)++;
			fprintf(stderr, "FAIL %s/%s\n", e->kind, tc[i].name);
		}
	}
}

/* Why io_uring cannot be tested here, or NULL if it can. */
static const char *
uring_absent(struct tenv *e)
{
	char path[128];
	const char *pp[1] = { path };
	struct store_io_cfg cfg = { .ndev = 1, .paths = pp, .create = true };
	struct store_io *io;
	int fd, rc;

	path_new(e, path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT | O_DIRECT, 0600);
	if (fd < 0)
		return errno == EINVAL ? "the test directory refuses O_DIRECT"
				       : "cannot create a test file";
	close(fd);
	rc = store_io_uring_open(&cfg, &io);
	if (rc == -ENOSYS)
		return "io_uring_setup: ENOSYS";
	if (rc == -EPERM)
		return "io_uring is disabled (EPERM)";
	if (rc == 0)
		store_io_close(io);
	return NULL; /* other errors: run the tests, which will say so */
}

static void
dir_remove(const char *dir)
{
	char path[512];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	char dir[256];
	struct tenv psync = { .kind = "psync", .open = store_io_psync_open };
	struct tenv uring = { .kind = "uring", .open = store_io_uring_open };
	const char *skip;
	unsigned passed = 0, failed = 0;

	log_set_level(LOG_ERR);
	snprintf(dir, sizeof(dir), "%s/test_io.XXXXXX",
		 tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "test_io: mkdtemp %s: %s\n", dir,
			strerror(errno));
		return 1;
	}
	psync.dir = uring.dir = dir;
	run(&psync, backend_tests, NCASES(backend_tests), &passed, &failed);
	run(&psync, fault_tests, NCASES(fault_tests), &passed, &failed);
	skip = uring_absent(&uring);
	if (skip == NULL) {
		run(&uring, backend_tests, NCASES(backend_tests), &passed,
		    &failed);
		run(&uring, fault_tests, NCASES(fault_tests), &passed, &failed);
	}
	dir_remove(dir);
	printf("test_io: %u passed, %u failed\n", passed, failed);
	if (failed > 0)
		return 1;
	if (skip != NULL) {
		printf("test_io: SKIP io_uring tests: %s\n", skip);
		return 77;
	}
	return 0;
}
