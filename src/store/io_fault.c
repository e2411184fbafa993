/*
 * io_fault.c - a store_io backend that wraps another (io_fault.h) and
 * injects faults for tests: fail the Nth request, fail, delay or corrupt a
 * device, misdirect a write, and simulate power loss.
 *
 * Design: the wrapper never hands the caller's request to the inner
 * backend, because both would own req->next and req->bk. A request that
 * goes down gets a struct fault_req carrying the inner request; its inner
 * callback only files the caller's request on the ready list. Requests the
 * wrapper answers itself (injected errors, held writes) go on the ready
 * list at submit. Caller callbacks run only from fault_poll(), after the
 * inner poll has returned, so they may submit (even a crash-mode read or
 * flush, which polls the inner backend synchronously) without re-entering
 * it.
 *
 * Ready list: caller requests with res set, linked through req->next;
 * req->bk counts the polls a delayed completion still waits. Each poll
 * call (each round of a waiting poll) counts one down.
 *
 * Crash mode: writes are copied into fault_write records (in submit order)
 * and complete at once. Reads are done synchronously on the inner backend
 * and the held writes of their device laid over the result in order, so a
 * read sees exactly the writes held when it was submitted. A FLUSH first
 * writes its device's held writes to the inner backend, in order and
 * synchronously, then goes down itself. store_io_fault_crash() decides the
 * fate of every held write with the seeded PRNG.
 *
 * Ownership: the wrapper owns the inner context, every fault_req (on the
 * live list) and every held write; close frees all of them. Callbacks of
 * requests in flight at close are not run (closing with I/O in flight is
 * the caller's bug). One thread: the owner.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "store/io_fault.h"

struct fault_dev {
	bool failed;
	unsigned delay;      /* polls to hold completions */
	unsigned flip_count; /* reads still to corrupt */
	unsigned flip_bits;
	bool misdirect;      /* next write lands at off + delta */
	int64_t delta;
};

/* A write held in crash mode: a private, aligned copy of its data. */
struct fault_write {
	struct fault_write *next;
	uint16_t dev;
	uint64_t off;
	uint64_t len;
	uint8_t *data;
};

struct fault_ctx;

/* A caller's request passed to the inner backend. */
struct fault_req {
	struct store_io_req inner;
	struct store_io_req *req; /* the caller's */
	struct fault_ctx *f;
	struct fault_req *prev, *next; /* the live list */
	unsigned delay;
	unsigned flip_bits;
};

struct fault_ctx {
	struct store_io io; /* first: the vtable's view */
	struct store_io *inner;
	uint64_t rng;
	uint64_t nreq;      /* sequence numbers given out */
	uint64_t fail_seq;  /* 0: none armed */
	int fail_err;
	bool crash_mode;
	bool crashed;
	struct fault_dev *devs;
	struct iovec *bufs; /* copy of the registered table, for checks */
	unsigned nbufs;
	struct fault_write *held_head, *held_tail;
	uint64_t nheld;
	struct fault_req *live;
	struct store_io_req *ready_head, *ready_tail;
	struct store_io_fault_crash_info info;
};

static const struct store_io_ops fault_ops;

static struct fault_ctx *
fault_of(struct store_io *io)
{
	assert(io != NULL && io->ops == &fault_ops);
	return (struct fault_ctx *)io;
}

/* splitmix64: small, seedable with anything, good enough for tests. */
static uint64_t
fault_rand(struct fault_ctx *f)
{
	uint64_t z = (f->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Copy n bytes between buf and the iovecs' bytes from position pos. */
static void
fault_iov_copy(const struct iovec *iov, unsigned cnt, uint64_t pos,
	       uint8_t *buf, uint64_t n, bool to_iov)
{
	unsigned i;

	for (i = 0; i < cnt && n > 0; i++) {
		uint64_t l = iov[i].iov_len, k;
		uint8_t *p;

		if (pos >= l) {
			pos -= l;
			continue;
		}
		k = l - pos < n ? l - pos : n;
		p = (uint8_t *)iov[i].iov_base + pos;
		if (to_iov)
			memcpy(p, buf, k);
		else
			memcpy(buf, p, k);
		buf += k;
		n -= k;
		pos = 0;
	}
}

static void
fault_ready(struct fault_ctx *f, struct store_io_req *req, int res,
	    unsigned delay)
{
	req->res = res;
	req->bk = delay;
	req->next = NULL;
	if (f->ready_tail != NULL)
		f->ready_tail->next = req;
	else
		f->ready_head = req;
	f->ready_tail = req;
}

static bool
fault_ready_now(const struct fault_ctx *f)
{
	const struct store_io_req *req;

	for (req = f->ready_head; req != NULL; req = req->next) {
		if (req->bk == 0)
			return true;
	}
	return false;
}

/*
 * One tick: run the callbacks of the ready requests that wait no more,
 * count the others down. Requests that callbacks submit wait for the next
 * tick. After a crash everything completes -EIO.
 */
static unsigned
fault_deliver(struct fault_ctx *f)
{
	struct store_io_req *req = f->ready_head, *next;
	unsigned count = 0;

	f->ready_head = f->ready_tail = NULL;
	for (; req != NULL; req = next) {
		next = req->next;
		if (req->bk > 0) {
			fault_ready(f, req, req->res, (unsigned)req->bk - 1);
			continue;
		}
		req->next = NULL;
		if (f->crashed)
			req->res = -EIO;
		f->io.inflight--;
		count++;
		req->cb(req);
	}
	return count;
}

static int
fault_poll(struct store_io *io, unsigned min_complete)
{
	struct fault_ctx *f = fault_of(io);
	unsigned count = 0, ran, want;
	int rc;

	for (;;) {
		want = count < min_complete && !fault_ready_now(f) &&
		       f->inner->inflight > 0;
		rc = store_io_poll(f->inner, want);
		if (rc < 0)
			return count > 0 ? (int)count : rc;
		ran = fault_deliver(f);
		count += ran;
		if (count >= min_complete || io->inflight == 0)
			break;
		/* Nothing can come any more (an inner backend's bug). */
		if (rc == 0 && ran == 0 && f->ready_head == NULL &&
		    f->inner->inflight == 0)
			break;
	}
	return (int)count;
}

/* Flip `bits` distinct random bits in the first len bytes of req's data. */
static void
fault_flip(struct fault_ctx *f, const struct store_io_req *req, uint64_t len,
	   unsigned bits)
{
	uint64_t nbits = len * 8, width, pos;
	unsigned i;
	uint8_t b = 0;

	if (bits > nbits)
		bits = (unsigned)nbits;
	if (bits == 0)
		return;
	width = nbits / bits; /* one bit in each stripe: never the same */
	for (i = 0; i < bits; i++) {
		pos = i * width + fault_rand(f) % width;
		fault_iov_copy(req->iov, req->iovcnt, pos / 8, &b, 1, false);
		b ^= (uint8_t)(1u << (pos % 8));
		fault_iov_copy(req->iov, req->iovcnt, pos / 8, &b, 1, true);
	}
}

static unsigned
fault_take_flip(struct fault_ctx *f, const struct store_io_req *req)
{
	struct fault_dev *d = &f->devs[req->dev];

	if (req->op != STORE_IO_READ || d->flip_count == 0)
		return 0;
	d->flip_count--;
	return d->flip_bits;
}

static void
fault_inner_cb(struct store_io_req *ireq)
{
	struct fault_req *fr = ireq->arg;
	struct fault_ctx *f = fr->f;

	if (ireq->res > 0 && fr->flip_bits > 0)
		fault_flip(f, fr->req, (uint64_t)ireq->res, fr->flip_bits);
	if (fr->prev != NULL)
		fr->prev->next = fr->next;
	else
		f->live = fr->next;
	if (fr->next != NULL)
		fr->next->prev = fr->prev;
	fault_ready(f, fr->req, ireq->res, fr->delay);
	free(fr);
}

/* Send req down to the inner backend, to land at off. */
static int
fault_pass(struct fault_ctx *f, struct store_io_req *req, uint64_t off)
{
	struct fault_req *fr;
	int rc;

	fr = calloc(1, sizeof(*fr));
	if (fr == NULL)
		return -ENOMEM;
	fr->inner.op = req->op;
	fr->inner.dev = req->dev;
	fr->inner.buf_index = req->buf_index;
	fr->inner.off = off;
	fr->inner.iov = req->iov;
	fr->inner.iovcnt = req->iovcnt;
	fr->inner.cb = fault_inner_cb;
	fr->inner.arg = fr;
	fr->req = req;
	fr->f = f;
	fr->delay = f->devs[req->dev].delay;
	fr->flip_bits = fault_take_flip(f, req);
	rc = store_io_submit(f->inner, &fr->inner);
	if (rc < 0) {
		free(fr);
		return rc;
	}
	fr->next = f->live;
	if (f->live != NULL)
		f->live->prev = fr;
	f->live = fr;
	return 0;
}

static void
fault_sync_cb(struct store_io_req *ireq)
{
	*(bool *)ireq->arg = true;
}

/*
 * Run one request on the inner backend to completion. Callbacks the inner
 * poll runs meanwhile are fault_inner_cb, which only queue. An inner poll
 * error would leave ireq (on our stack) in flight: abort rather.
 */
static int
fault_inner_sync(struct fault_ctx *f, struct store_io_req *ireq)
{
	bool done = false;
	int rc;

	ireq->cb = fault_sync_cb;
	ireq->arg = &done;
	rc = store_io_submit(f->inner, ireq);
	if (rc < 0)
		return rc;
	while (!done) {
		rc = store_io_poll(f->inner, 1);
		if (rc < 0) {
			log_err("store", "fault: inner poll failed: %s",
				strerror(-rc));
			abort();
		}
	}
	return ireq->res;
}

static int
fault_rw_sync(struct fault_ctx *f, uint8_t op, uint16_t dev, uint64_t off,
	      void *buf, uint64_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = (size_t)len };
	struct store_io_req ireq = {
		.op = op, .dev = dev, .buf_index = -1, .off = off,
		.iov = &iov, .iovcnt = 1,
	};

	return fault_inner_sync(f, &ireq);
}

static void
fault_write_free(struct fault_write *w)
{
	free(w->data);
	free(w);
}

/*
 * Write the held writes of dev (every device when dev < 0) to the inner
 * backend in order. On an error the write that failed and those after it
 * stay held.
 */
static int
fault_apply(struct fault_ctx *f, int dev)
{
	struct fault_write **pp = &f->held_head, *w, *prev = NULL;
	int rc;

	while ((w = *pp) != NULL) {
		if (dev >= 0 && w->dev != (unsigned)dev) {
			prev = w;
			pp = &w->next;
			continue;
		}
		rc = fault_rw_sync(f, STORE_IO_WRITE, w->dev, w->off, w->data,
				   w->len);
		if (rc < 0)
			return rc;
		*pp = w->next;
		if (f->held_tail == w)
			f->held_tail = prev;
		f->nheld--;
		fault_write_free(w);
	}
	return 0;
}

/* Lay the held writes of req's device over the data a read returned. */
static void
fault_overlay(struct fault_ctx *f, const struct store_io_req *req,
	      uint64_t len)
{
	const struct fault_write *w;
	uint64_t lo, hi;

	for (w = f->held_head; w != NULL; w = w->next) {
		if (w->dev != req->dev)
			continue;
		lo = w->off > req->off ? w->off : req->off;
		hi = w->off + w->len < req->off + len ? w->off + w->len
						       : req->off + len;
		if (lo >= hi)
			continue;
		fault_iov_copy(req->iov, req->iovcnt, lo - req->off,
			       w->data + (lo - w->off), hi - lo, true);
	}
}

static int
fault_hold(struct fault_ctx *f, struct store_io_req *req, uint64_t len,
	   uint64_t off)
{
	struct fault_write *w;

	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	w->data = aligned_alloc(STORE_IO_ALIGN, len);
	if (w->data == NULL) {
		free(w);
		return -ENOMEM;
	}
	fault_iov_copy(req->iov, req->iovcnt, 0, w->data, len, false);
	w->dev = req->dev;
	w->off = off;
	w->len = len;
	if (f->held_tail != NULL)
		f->held_tail->next = w;
	else
		f->held_head = w;
	f->held_tail = w;
	f->nheld++;
	fault_ready(f, req, (int)len, f->devs[req->dev].delay);
	return 0;
}

/* A read while writes may be held: synchronous, then overlaid. */
static int
fault_read_held(struct fault_ctx *f, struct store_io_req *req, uint64_t len)
{
	struct store_io_req ireq = {
		.op = STORE_IO_READ, .dev = req->dev,
		.buf_index = req->buf_index, .off = req->off,
		.iov = req->iov, .iovcnt = req->iovcnt,
	};
	unsigned bits = fault_take_flip(f, req);
	int res;

	res = fault_inner_sync(f, &ireq);
	if (res > 0) {
		fault_overlay(f, req, len);
		if (bits > 0)
			fault_flip(f, req, len, bits);
	}
	fault_ready(f, req, res, f->devs[req->dev].delay);
	return 0;
}

/* The injected outcome of a request, or 0 to carry it out. */
static int
fault_verdict(struct fault_ctx *f, const struct store_io_req *req,
	      const struct store_dev_info *di)
{
	if (f->crashed)
		return -EIO;
	if (f->fail_seq != 0 && f->nreq == f->fail_seq) {
		f->fail_seq = 0;
		return f->fail_err;
	}
	if (f->devs[req->dev].failed)
		return -EIO;
	if (di->state != STORE_DEV_OK)
		return -ENODEV;
	return 0;
}

/* Where a write lands: consumes a misdirect; false if that is off-device. */
static bool
fault_target(struct fault_ctx *f, const struct store_io_req *req,
	     uint64_t len, uint64_t size, uint64_t *off)
{
	struct fault_dev *d = &f->devs[req->dev];

	*off = req->off;
	if (req->op != STORE_IO_WRITE || !d->misdirect)
		return true;
	d->misdirect = false;
	if (d->delta < 0 && (uint64_t)-d->delta > req->off)
		return false;
	*off = req->off + (uint64_t)d->delta;
	return store_io_in_range(*off, len, size);
}

/* Carry out an accepted request; < 0 only when it was not accepted. */
static int
fault_route(struct fault_ctx *f, struct store_io_req *req, uint64_t len,
	    uint64_t off)
{
	bool holding = f->crash_mode || f->held_head != NULL;
	int rc;

	if (req->op == STORE_IO_WRITE && f->crash_mode)
		return fault_hold(f, req, len, off);
	if (req->op == STORE_IO_READ && holding)
		return fault_read_held(f, req, len);
	if (req->op == STORE_IO_FLUSH && holding) {
		rc = fault_apply(f, req->dev);
		if (rc < 0) {
			fault_ready(f, req, rc, f->devs[req->dev].delay);
			return 0;
		}
	}
	return fault_pass(f, req, off);
}

static int
fault_submit(struct store_io *io, struct store_io_req *req)
{
	struct fault_ctx *f = fault_of(io);
	struct store_dev_info di;
	uint64_t len, off = req->off;
	int rc;

	rc = store_io_req_check(req, io->ndev, f->bufs, f->nbufs, &len);
	if (rc < 0)
		return rc;
	rc = f->inner->ops->dev_info(f->inner, req->dev, &di);
	if (rc < 0)
		return rc;
	if (di.state == STORE_DEV_OK && req->op != STORE_IO_FLUSH &&
	    !store_io_in_range(req->off, len, di.size))
		return -ERANGE;
	f->nreq++;
	rc = fault_verdict(f, req, &di);
	if (rc == 0 && !fault_target(f, req, len, di.size, &off))
		rc = -EIO;
	io->inflight++;
	if (rc < 0) {
		fault_ready(f, req, rc, f->devs[req->dev].delay);
		return 0;
	}
	rc = fault_route(f, req, len, off);
	if (rc < 0)
		io->inflight--;
	return rc;
}

static int
fault_register_bufs(struct store_io *io, const struct iovec *bufs,
		    unsigned n)
{
	struct fault_ctx *f = fault_of(io);
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
	rc = f->inner->ops->register_bufs(f->inner, bufs, n);
	if (rc < 0) {
		free(copy);
		return rc;
	}
	free(f->bufs);
	f->bufs = copy;
	f->nbufs = n;
	return 0;
}

static int
fault_dev_info(struct store_io *io, unsigned dev, struct store_dev_info *out)
{
	struct fault_ctx *f = fault_of(io);

	return f->inner->ops->dev_info(f->inner, dev, out);
}

/* Closes the inner context first: no inner callback runs after that. */
static void
fault_close(struct store_io *io)
{
	struct fault_ctx *f = fault_of(io);
	struct fault_req *fr, *fnext;
	struct fault_write *w, *wnext;

	store_io_close(f->inner);
	for (fr = f->live; fr != NULL; fr = fnext) {
		fnext = fr->next;
		free(fr);
	}
	for (w = f->held_head; w != NULL; w = wnext) {
		wnext = w->next;
		fault_write_free(w);
	}
	free(f->devs);
	free(f->bufs);
	free(f);
}

/* On failure the caller still owns inner. */
int
store_io_fault_open(struct store_io *inner, uint64_t seed,
		    struct store_io **out)
{
	struct fault_ctx *f;

	if (inner == NULL || inner->ndev == 0)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	f->devs = calloc(inner->ndev, sizeof(*f->devs));
	if (f->devs == NULL) {
		free(f);
		return -ENOMEM;
	}
	f->io.ops = &fault_ops;
	f->io.ndev = inner->ndev;
	f->inner = inner;
	f->rng = seed;
	*out = &f->io;
	return 0;
}

void
store_io_fault_fail_nth(struct store_io *io, uint64_t n, int err)
{
	struct fault_ctx *f = fault_of(io);

	f->fail_seq = n == 0 ? 0 : f->nreq + n;
	if (err > 0)
		err = -err;
	f->fail_err = err != 0 ? err : -EIO;
}

uint64_t
store_io_fault_count(struct store_io *io)
{
	return fault_of(io)->nreq;
}

void
store_io_fault_fail_dev(struct store_io *io, unsigned dev, bool failed)
{
	struct fault_ctx *f = fault_of(io);

	assert(dev < io->ndev);
	f->devs[dev].failed = failed;
}

void
store_io_fault_delay_dev(struct store_io *io, unsigned dev, unsigned polls)
{
	struct fault_ctx *f = fault_of(io);

	assert(dev < io->ndev);
	f->devs[dev].delay = polls;
}

void
store_io_fault_flip_reads(struct store_io *io, unsigned dev, unsigned count,
			  unsigned bits)
{
	struct fault_ctx *f = fault_of(io);

	assert(dev < io->ndev);
	f->devs[dev].flip_count = count;
	f->devs[dev].flip_bits = bits;
}

void
store_io_fault_misdirect_next(struct store_io *io, unsigned dev,
			      int64_t delta)
{
	struct fault_ctx *f = fault_of(io);

	assert(dev < io->ndev);
	f->devs[dev].misdirect = delta != 0;
	f->devs[dev].delta = delta;
}

/* Turning it off writes what is held to the inner backend (no flush). */
void
store_io_fault_crash_mode(struct store_io *io, bool on)
{
	struct fault_ctx *f = fault_of(io);
	int rc;

	f->crash_mode = on;
	if (on || f->crashed)
		return;
	rc = fault_apply(f, -1);
	if (rc < 0)
		log_warn("store", "fault: writing held writes: %s",
			 strerror(-rc));
}

/* Apply the first sectors of w, tear the next, leave the rest old. */
static void
fault_tear(struct fault_ctx *f, const struct fault_write *w)
{
	uint64_t k = fault_rand(f) % (w->len / STORE_IO_ALIGN);
	uint64_t at = w->off + k * STORE_IO_ALIGN;
	unsigned t = 1 + (unsigned)(fault_rand(f) % (STORE_IO_ALIGN - 1));
	uint8_t *old;

	if (k > 0)
		(void)fault_rw_sync(f, STORE_IO_WRITE, w->dev, w->off, w->data,
				    k * STORE_IO_ALIGN);
	old = aligned_alloc(STORE_IO_ALIGN, STORE_IO_ALIGN);
	if (old != NULL && fault_rw_sync(f, STORE_IO_READ, w->dev, at, old,
					 STORE_IO_ALIGN) >= 0) {
		memcpy(old, w->data + k * STORE_IO_ALIGN, t);
		(void)fault_rw_sync(f, STORE_IO_WRITE, w->dev, at, old,
				    STORE_IO_ALIGN);
	}
	free(old);
	f->info.torn = true;
	f->info.torn_dev = w->dev;
	f->info.torn_off = w->off;
	f->info.torn_len = w->len;
	f->info.torn_at = at;
	f->info.torn_bytes = t;
}

/* Errors writing to the inner backend are ignored: the power is going. */
void
store_io_fault_crash(struct store_io *io)
{
	struct fault_ctx *f = fault_of(io);
	struct fault_write *w;
	uint64_t i, torn;

	if (f->crashed)
		return;
	memset(&f->info, 0, sizeof(f->info));
	f->info.held = f->nheld;
	torn = f->nheld > 0 ? fault_rand(f) % f->nheld : UINT64_MAX;
	for (i = 0; (w = f->held_head) != NULL; i++) {
		f->held_head = w->next;
		if (i == torn) {
			fault_tear(f, w);
		} else if (fault_rand(f) & 1) {
			(void)fault_rw_sync(f, STORE_IO_WRITE, w->dev, w->off,
					    w->data, w->len);
			f->info.applied++;
		} else {
			f->info.dropped++;
		}
		fault_write_free(w);
	}
	f->held_tail = NULL;
	f->nheld = 0;
	f->crashed = true;
}

uint64_t
store_io_fault_held(struct store_io *io)
{
	return fault_of(io)->nheld;
}

void
store_io_fault_crash_info(struct store_io *io,
			  struct store_io_fault_crash_info *out)
{
	*out = fault_of(io)->info;
}

static const struct store_io_ops fault_ops = {
	.name = "fault",
	.close = fault_close,
	.register_bufs = fault_register_bufs,
	.submit = fault_submit,
	.poll = fault_poll,
	.dev_info = fault_dev_info,
};
