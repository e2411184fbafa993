/*
 * io_uring.c - the store_io backend on io_uring (liburing 2.3), over files
 * and block devices opened O_DIRECT.
 *
 * Design: submit() checks a request, prepares an SQE for it and returns;
 * the SQEs go to the kernel in one io_uring_enter at the next poll() (or
 * earlier, when the SQ ring is full). So a burst of submits costs one
 * syscall, and I/O starts when the owner polls. The devices are
 * registered as fixed files (one slot per device, -1 for missing ones)
 * and registered buffers back buf_index requests (READ/WRITE_FIXED).
 *
 * Invariants:
 *  - A request in flight is in exactly one place: the wait list (no SQE
 *    yet: the SQ was full or the kernel holds kmax requests), the kernel
 *    (nkernel counts those, SQEs prepared included), or the done list
 *    (finished without the kernel: -ENODEV for a missing device).
 *  - nkernel <= kmax = CQ ring size, so the CQ ring never overflows and
 *    submit() never fails because the ring is full.
 *  - req->bk is 0, or points to the uring_rem of a request whose transfer
 *    came back short and was resubmitted for the remainder (-EAGAIN and
 *    -EINTR are resubmitted as they were). No progress, or progress that
 *    ends inside a sector (O_DIRECT could not go on from there), is -EIO.
 *    Completions carry the full length or an error, as io.h requires.
 *
 * Threads: one, the owner; callbacks run in poll() only.
 */
#include <assert.h>
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "store/io.h"

#define URING_DEFAULT_QD 256u
#define URING_MAX_QD 32768u
#define URING_REAP_BATCH 32u

/* Progress of a request resubmitted after a short transfer. */
struct uring_rem {
	uint64_t done;        /* bytes transferred so far */
	unsigned cnt;         /* iovecs left, in iov[] */
	struct iovec iov[];   /* the untransferred part of req->iov */
};

struct uring_list {
	struct store_io_req *head, *tail;
};

struct uring_ctx {
	struct store_io io; /* first: the vtable's view */
	struct io_uring ring;
	struct store_io_dev *devs;
	struct iovec *bufs; /* copy of the registered table */
	unsigned nbufs;
	bool fixed_files;
	unsigned nkernel;   /* prepared or submitted, CQE not reaped */
	unsigned kmax;      /* most requests given to the kernel at once */
	struct uring_list wait; /* no SQE yet */
	struct uring_list done; /* finished without the kernel */
	int efd;            /* signalled on every CQE, or -1 */
};

static const struct store_io_ops uring_ops;

static struct uring_ctx *
uring_of(struct store_io *io)
{
	return (struct uring_ctx *)io;
}

static void
uring_push(struct uring_list *l, struct store_io_req *req)
{
	req->next = NULL;
	if (l->tail != NULL)
		l->tail->next = req;
	else
		l->head = req;
	l->tail = req;
}

static struct store_io_req *
uring_pop(struct uring_list *l)
{
	struct store_io_req *req = l->head;

	if (req != NULL) {
		l->head = req->next;
		if (l->head == NULL)
			l->tail = NULL;
		req->next = NULL;
	}
	return req;
}

static struct uring_rem *
uring_rem_of(const struct store_io_req *req)
{
	return (struct uring_rem *)(uintptr_t)req->bk;
}

static uint64_t
uring_len(const struct store_io_req *req)
{
	uint64_t len = 0;
	unsigned i;

	for (i = 0; i < req->iovcnt; i++)
		len += req->iov[i].iov_len;
	return len;
}

/* Fill an SQE for req, from where its transfer stands. */
static void
uring_prep(struct uring_ctx *u, struct store_io_req *req,
	   struct io_uring_sqe *sqe)
{
	struct uring_rem *rem = uring_rem_of(req);
	uint64_t done = rem != NULL ? rem->done : 0;
	int fd = u->fixed_files ? (int)req->dev : u->devs[req->dev].fd;
	bool rd = req->op == STORE_IO_READ;

	if (req->op == STORE_IO_FLUSH) {
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	} else if (req->buf_index >= 0) {
		char *p = (char *)req->iov[0].iov_base + done;
		unsigned n = (unsigned)(req->iov[0].iov_len - done);

		if (rd)
			io_uring_prep_read_fixed(sqe, fd, p, n, req->off + done,
						 req->buf_index);
		else
			io_uring_prep_write_fixed(sqe, fd, p, n,
						  req->off + done,
						  req->buf_index);
	} else {
		const struct iovec *iov = rem != NULL ? rem->iov : req->iov;
		unsigned cnt = rem != NULL ? rem->cnt : req->iovcnt;

		if (rd)
			io_uring_prep_readv(sqe, fd, iov, cnt, req->off + done);
		else
			io_uring_prep_writev(sqe, fd, iov, cnt,
					     req->off + done);
	}
	if (u->fixed_files)
		io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
	io_uring_sqe_set_data(sqe, req);
}

/* Give req an SQE, or -EBUSY if the ring has no room now. */
static int
uring_issue(struct uring_ctx *u, struct store_io_req *req)
{
	struct io_uring_sqe *sqe;

	if (u->nkernel >= u->kmax)
		return -EBUSY;
	sqe = io_uring_get_sqe(&u->ring);
	if (sqe == NULL) {
		/* Errors leave the SQEs queued; poll() submits them again. */
		(void)io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
		if (sqe == NULL)
			return -EBUSY;
	}
	uring_prep(u, req, sqe);
	u->nkernel++;
	return 0;
}

/* Move waiting requests into the ring while it has room. */
static void
uring_refill(struct uring_ctx *u)
{
	while (u->wait.head != NULL && uring_issue(u, u->wait.head) == 0)
		(void)uring_pop(&u->wait);
}

/* Record that `done` bytes of req have moved; build the rest's iovecs. */
static int
uring_advance(struct store_io_req *req, uint64_t done)
{
	struct uring_rem *rem = uring_rem_of(req);
	uint64_t pos = 0;
	unsigned i;

	if (rem == NULL) {
		rem = malloc(sizeof(*rem) + req->iovcnt * sizeof(rem->iov[0]));
		if (rem == NULL)
			return -ENOMEM;
		req->bk = (uintptr_t)rem;
	}
	rem->done = done;
	rem->cnt = 0;
	for (i = 0; i < req->iovcnt; i++) {
		uint64_t len = req->iov[i].iov_len;
		uint64_t skip = done > pos ? done - pos : 0;

		if (skip < len) {
			rem->iov[rem->cnt].iov_base =
				(char *)req->iov[i].iov_base + skip;
			rem->iov[rem->cnt].iov_len = (size_t)(len - skip);
			rem->cnt++;
		}
		pos += len;
	}
	return 0;
}

static int
uring_finish(struct uring_ctx *u, struct store_io_req *req, int res)
{
	free(uring_rem_of(req));
	req->bk = 0;
	req->res = res;
	u->io.inflight--;
	req->cb(req);
	return 1;
}

/* Handle one CQE: 1 if the request's callback ran, 0 if resubmitted. */
static int
uring_complete(struct uring_ctx *u, struct store_io_req *req, int res)
{
	struct uring_rem *rem = uring_rem_of(req);
	uint64_t len, done;
	int rc;

	u->nkernel--;
	if (res == -EAGAIN || res == -EINTR) {
		uring_push(&u->wait, req);
		return 0;
	}
	if (res < 0 || req->op == STORE_IO_FLUSH)
		return uring_finish(u, req, res < 0 ? res : 0);
	if (res == 0)
		return uring_finish(u, req, -EIO);
	len = uring_len(req);
	done = (rem != NULL ? rem->done : 0) + (uint64_t)res;
	if (done >= len)
		return uring_finish(u, req, (int)len);
	if (done % STORE_IO_ALIGN != 0) /* end of a shrunk file */
		return uring_finish(u, req, -EIO);
	rc = uring_advance(req, done);
	if (rc < 0)
		return uring_finish(u, req, rc);
	uring_push(&u->wait, req);
	return 0;
}

/*
 * Run the callbacks of finished requests: those finished without the
 * kernel, then CQEs, at most one ring's worth so that callbacks that keep
 * submitting cannot hold poll() forever.
 */
static int
uring_reap(struct uring_ctx *u)
{
	struct io_uring_cqe *cqes[URING_REAP_BATCH];
	struct store_io_req *reqs[URING_REAP_BATCH];
	int res[URING_REAP_BATCH];
	struct store_io_req *req, *list = u->done.head;
	unsigned n, i, seen = 0;
	int count = 0;

	u->done.head = u->done.tail = NULL;
	for (; list != NULL; list = req) {
		req = list->next;
		count += uring_finish(u, list, list->res);
	}
	while (seen < u->kmax) {
		n = io_uring_peek_batch_cqe(&u->ring, cqes, URING_REAP_BATCH);
		if (n == 0)
			break;
		for (i = 0; i < n; i++) {
			reqs[i] = io_uring_cqe_get_data(cqes[i]);
			res[i] = cqes[i]->res;
		}
		io_uring_cq_advance(&u->ring, n);
		for (i = 0; i < n; i++)
			count += uring_complete(u, reqs[i], res[i]);
		seen += n;
	}
	return count;
}

/* Submit what is queued and wait for up to `want` CQEs. */
static int
uring_wait(struct uring_ctx *u, unsigned want)
{
	int rc;

	assert(u->nkernel > 0);
	if (want > u->nkernel)
		want = u->nkernel;
	do {
		rc = io_uring_submit_and_wait(&u->ring, want);
	} while (rc == -EINTR);
	if (rc == -EAGAIN || rc == -EBUSY)
		return 0; /* the kernel is short of room: reap, then retry */
	return rc < 0 ? rc : 0;
}

static int
uring_poll(struct store_io *io, unsigned min_complete)
{
	struct uring_ctx *u = uring_of(io);
	int count = 0, rc;

	for (;;) {
		count += uring_reap(u);
		uring_refill(u);
		if ((unsigned)count >= min_complete || io->inflight == 0)
			break;
		if (u->done.head != NULL)
			continue;
		rc = uring_wait(u, min_complete - (unsigned)count);
		if (rc < 0) {
			if (count == 0)
				return rc;
			break;
		}
	}
	/* Start what callbacks added; errors leave it for the next poll. */
	if (io_uring_sq_ready(&u->ring) > 0)
		(void)io_uring_submit(&u->ring);
	return count;
}

static int
uring_submit(struct store_io *io, struct store_io_req *req)
{
	struct uring_ctx *u = uring_of(io);
	struct store_io_dev *d;
	uint64_t len;
	int rc;

	rc = store_io_req_check(req, io->ndev, u->bufs, u->nbufs, &len);
	if (rc < 0)
		return rc;
	d = &u->devs[req->dev];
	req->bk = 0;
	io->inflight++;
	if (d->fd < 0) {
		req->res = -ENODEV;
		uring_push(&u->done, req);
		return 0;
	}
	if (req->op != STORE_IO_FLUSH &&
	    !store_io_in_range(req->off, len, d->size)) {
		io->inflight--;
		return -ERANGE;
	}
	if (u->wait.head != NULL || uring_issue(u, req) < 0)
		uring_push(&u->wait, req);
	return 0;
}

/*
 * Replaces the registered table (on failure none is left). Not while
 * requests are in flight: -EBUSY.
 */
static int
uring_register_bufs(struct store_io *io, const struct iovec *bufs,
		    unsigned n)
{
	struct uring_ctx *u = uring_of(io);
	struct iovec *copy = NULL;
	int rc;

	if (io->inflight > 0)
		return -EBUSY;
	if (n > 0 && bufs == NULL)
		return -EINVAL;
	if (n > 0) {
		copy = malloc(n * sizeof(*copy));
		if (copy == NULL)
			return -ENOMEM;
		memcpy(copy, bufs, n * sizeof(*copy));
	}
	if (u->nbufs > 0)
		(void)io_uring_unregister_buffers(&u->ring);
	free(u->bufs);
	u->bufs = NULL;
	u->nbufs = 0;
	if (n == 0)
		return 0;
	rc = io_uring_register_buffers(&u->ring, copy, n);
	if (rc < 0) {
		free(copy);
		return rc;
	}
	u->bufs = copy;
	u->nbufs = n;
	return 0;
}

static int
uring_dev_info(struct store_io *io, unsigned dev, struct store_dev_info *out)
{
	return store_io_devs_info(uring_of(io)->devs, io->ndev, dev, out);
}

/*
 * Wait for every request the kernel holds, without running callbacks, so
 * that no DMA lands in caller memory after close.
 */
static void
uring_drain(struct uring_ctx *u)
{
	struct io_uring_cqe *cqe;
	struct store_io_req *req;
	int rc;

	while (u->nkernel > 0) {
		rc = io_uring_submit_and_wait(&u->ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			log_err("store", "uring: drain at close: %s",
				strerror(-rc));
			return;
		}
		while (u->nkernel > 0 &&
		       io_uring_peek_cqe(&u->ring, &cqe) == 0) {
			req = io_uring_cqe_get_data(cqe);
			free(uring_rem_of(req));
			req->bk = 0;
			io_uring_cqe_seen(&u->ring, cqe);
			u->nkernel--;
		}
	}
}

/*
 * Callbacks of requests still in flight are not run: closing with I/O in
 * flight is the caller's bug. I/O the kernel holds is waited for.
 */
static void
uring_close(struct store_io *io)
{
	struct uring_ctx *u = uring_of(io);
	struct store_io_req *req;

	while ((req = uring_pop(&u->wait)) != NULL) {
		free(uring_rem_of(req));
		req->bk = 0;
	}
	uring_drain(u);
	io_uring_queue_exit(&u->ring);
	if (u->efd >= 0)
		close(u->efd);
	store_io_devs_close(u->devs, u->io.ndev);
	free(u->bufs);
	free(u);
}

/* Fixed files save a file lookup per I/O; without them, plain fds. */
static void
uring_files_register(struct uring_ctx *u)
{
	int *fds;
	unsigned i;
	int rc;

	fds = malloc(u->io.ndev * sizeof(*fds));
	if (fds == NULL)
		return;
	for (i = 0; i < u->io.ndev; i++)
		fds[i] = u->devs[i].fd;
	rc = io_uring_register_files(&u->ring, fds, u->io.ndev);
	free(fds);
	if (rc < 0) {
		log_warn("store", "uring: fixed files refused: %s",
			 strerror(-rc));
		return;
	}
	u->fixed_files = true;
}

/* -ENOSYS (qemu-user) or -EPERM (io_uring disabled): use psync instead. */
int
store_io_uring_open(const struct store_io_cfg *cfg, struct store_io **out)
{
	struct uring_ctx *u;
	unsigned qd;
	int rc;

	if (cfg == NULL || cfg->ndev == 0 || cfg->ndev > UINT16_MAX + 1u ||
	    cfg->paths == NULL)
		return -EINVAL;
	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return -ENOMEM;
	u->io.ops = &uring_ops;
	u->io.ndev = cfg->ndev;
	qd = cfg->queue_depth != 0 ? cfg->queue_depth : URING_DEFAULT_QD;
	if (qd > URING_MAX_QD)
		qd = URING_MAX_QD;
	rc = io_uring_queue_init(qd, &u->ring, 0);
	if (rc < 0)
		goto err_free;
	u->kmax = u->ring.cq.ring_entries;
	/* completions wake the owner's sleep (uring_event_fd); without it
	 * the owner polls */
	u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (u->efd >= 0 && io_uring_register_eventfd(&u->ring, u->efd) < 0) {
		close(u->efd);
		u->efd = -1;
	}
	rc = store_io_devs_open(cfg, false, "uring", &u->devs);
	if (rc < 0)
		goto err_exit_ring;
	uring_files_register(u);
	*out = &u->io;
	return 0;

err_exit_ring:
	io_uring_queue_exit(&u->ring);
	if (u->efd >= 0)
		close(u->efd);
err_free:
	free(u);
	return rc;
}

static int
uring_event_fd(struct store_io *io)
{
	return uring_of(io)->efd;
}

static const struct store_io_ops uring_ops = {
	.name = "uring",
	.close = uring_close,
	.register_bufs = uring_register_bufs,
	.submit = uring_submit,
	.poll = uring_poll,
	.dev_info = uring_dev_info,
	.event_fd = uring_event_fd,
};
