/*
 * store_read.c - the read side of the flash engine.
 *
 * A get finds the record through the index, then either copies it out of
 * the write buffer (segment not yet on flash) or reads the header sector
 * and the data straight into the caller's buffers (a bounce buffer when
 * those are not 4096-aligned), one read per chunk the record spans. The
 * header's key, namespace and segment number and the data CRC are checked
 * before the callback sees a hit.
 *
 * Anything unusual (a chunk on a failed device, an I/O error, a failed
 * check) moves the get to the degraded queue, which store_poll drains
 * synchronously outside I/O callbacks: the record is read again with the
 * lost chunks reconstructed from the others (store_read_range), trying
 * each touched chunk as the culprit when the checks still fail. What
 * cannot be verified is a miss, never bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/crc.h"
#include "common/log.h"
#include "gpucache/gpucache.h"
#include "store_int.h"

struct store_get_op {
	struct store_get_op *next;
	struct store *st;
	store_cb cb;
	void *arg;
	uint64_t ns;
	uint8_t key[STORE_KEY_LEN];
	const struct iovec *uiov;
	unsigned uiovcnt;
	size_t ucap;
	struct index_loc loc;
	uint64_t seq;
	uint8_t *hdr;      /* 4096-byte header sector */
	uint8_t *bounce;   /* len4k * 4096 bytes, or NULL: direct */
	unsigned pending;
	int err;
	struct store_io_req *reqs;
	struct iovec *iovs;
	bool internal;     /* the store's own read: no get counters, no REF */
	struct iovec own;  /* the buffer of an internal read */
};

/* Copy len bytes at logical loff of a buffered segment into dst. */
static void
wbuf_read(const struct store *st, const struct wbuf *w, uint32_t loff,
	  uint8_t *dst, uint32_t len)
{
	while (len > 0) {
		uint32_t room;
		const uint8_t *p = store_wbuf_ptr(st, w, loff, &room);
		uint32_t n = len < room ? len : room;

		memcpy(dst, p, n);
		dst += n;
		loff += n;
		len -= n;
	}
}

/* Scatter len bytes from src (a flat buffer) into iov. */
static void
scatter(const struct iovec *iov, unsigned iovcnt, const uint8_t *src,
	size_t len)
{
	for (unsigned i = 0; i < iovcnt && len > 0; i++) {
		size_t n = iov[i].iov_len < len ? iov[i].iov_len : len;

		memcpy(iov[i].iov_base, src, n);
		src += n;
		len -= n;
	}
}

/* CRC32C of the first len bytes held by iov. */
static uint32_t
crc_iov(const struct iovec *iov, unsigned iovcnt, size_t len)
{
	uint32_t crc = 0;

	for (unsigned i = 0; i < iovcnt && len > 0; i++) {
		size_t n = iov[i].iov_len < len ? iov[i].iov_len : len;

		crc = crc32c_extend(crc, iov[i].iov_base, n);
		len -= n;
	}
	return crc;
}

int
store_rec_check(const struct store *st, const uint8_t *hdr, uint64_t ns,
		const uint8_t *key, uint64_t seq, uint32_t len4k,
		struct rec_disk *out)
{
	struct rec_disk r;

	(void)st;
	if (rec_decode(hdr, &r) < 0 || r.seg_seq != seq || r.len == 0 ||
	    (r.len + STORE_SECTOR - 1) / STORE_SECTOR != len4k)
		return -GPC_ECORRUPT;
	if (r.ns != ns || memcmp(r.key, key, STORE_KEY_LEN) != 0)
		return -GPC_ENOTFOUND; /* a fingerprint collision */
	*out = r;
	return 0;
}

struct rec_verify {
	const struct store *st;
	uint64_t ns, seq;
	const uint8_t *key;
	uint32_t len4k;
	uint32_t len; /* out */
};

static int
rec_verify(void *ctx, const uint8_t *buf)
{
	struct rec_verify *v = ctx;
	struct rec_disk r;
	int rc;

	rc = store_rec_check(v->st, buf, v->ns, v->key, v->seq, v->len4k, &r);
	if (rc < 0)
		return rc;
	if (crc32c(buf + STORE_SECTOR, r.len) != r.data_crc)
		return -GPC_ECORRUPT;
	v->len = r.len;
	return 0;
}

/* Chunks of slot s that must not be read: stale or on failed devices. */
uint64_t
store_bad_chunks(const struct store *st, uint32_t s)
{
	uint64_t mask = st->slots[s].badmask, off;

	for (unsigned i = 0; i < st->g.w; i++)
		if (st->dev_failed[store_slot_dev(st, s, i, &off)])
			mask |= 1ull << i;
	return mask;
}

/* Read [coff, coff+len) of chunk c of slot s into dst, synchronously. */
int
store_read_chunk(struct store *st, uint32_t s, unsigned c, uint32_t coff,
	   uint32_t len, uint8_t *dst)
{
	struct iovec iov = { dst, len };
	uint64_t off;
	struct store_io_req r = { .op = STORE_IO_READ, .buf_index = -1,
				  .iov = &iov, .iovcnt = 1 };

	r.dev = (uint16_t)store_slot_dev(st, s, c, &off);
	r.off = off + coff;
	store_sync_io(st, &r, 1);
	if (r.res < 0 && r.res != -ENODEV)
		store_fail_dev_io(st, r.dev, r.res);
	if (r.res >= 0)
		st->s.flash_bytes_read += len;
	return r.res < 0 ? r.res : 0;
}

/*
 * Reconstruct [coff, coff+len) of chunk c of slot s from k other chunks
 * not in *bad; a chunk that fails to read joins *bad and another is
 * tried. -GPC_EDEGRADED when fewer than k readable chunks remain.
 */
int
store_reconstruct(struct store *st, uint32_t s, unsigned c, uint32_t coff,
	    uint32_t len, uint8_t *dst, uint64_t *bad)
{
	unsigned w = st->g.w, k = st->g.k;
	uint8_t *frag[CODER_MAX_K + CODER_MAX_M] = { NULL };
	uint8_t *tmp = store_zalloc((size_t)w * len);
	int rc = -GPC_EDEGRADED;

	if (tmp == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < w; i++)
		frag[i] = tmp + (size_t)i * len;
	for (;;) {
		unsigned lost[CODER_MAX_K + CODER_MAX_M], nl = 0, got = 0;
		bool failed = false;

		for (unsigned i = 0; i < w && !failed; i++) {
			if (i == c || (*bad & (1ull << i)) || got == k) {
				lost[nl++] = i;
				continue;
			}
			if (store_read_chunk(st, s, i, coff, len, frag[i]) < 0) {
				*bad |= 1ull << i;
				failed = true;
			}
			got++;
		}
		if (failed)
			continue;
		if (got < k)
			break;
		uint64_t t0 = clock_thread_cpu_ns();
		rc = coder_decode(st->coder, len, frag, lost, nl);
		st->s.ec_cpu_ns += clock_thread_cpu_ns() - t0;
		if (rc == 0)
			memcpy(dst, frag[c], len);
		break;
	}
	free(tmp);
	return rc;
}

/* One attempt at reading the logical range with the chunks in bad
 * reconstructed. */
static int
read_attempt(struct store *st, uint32_t s, uint32_t off, uint32_t len,
	     uint8_t *buf, uint64_t bad)
{
	uint32_t P = st->g.payload;

	while (len > 0) {
		unsigned c = off / P;
		uint32_t coff = STORE_SECTOR + off % P;
		uint32_t n = P - off % P < len ? P - off % P : len;
		int rc = -1;

		bad |= store_bad_chunks(st, s);
		if (!(bad & (1ull << c)))
			rc = store_read_chunk(st, s, c, coff, n, buf);
		if (rc < 0) {
			bad |= 1ull << c;
			st->s.degraded_reads++;
			rc = store_reconstruct(st, s, c, coff, n, buf, &bad);
		}
		if (rc < 0)
			return rc;
		off += n;
		buf += n;
		len -= n;
	}
	return 0;
}

/* Try reading with the chunks of extra also treated as lost. */
static bool
try_without(struct store *st, uint32_t s, uint32_t off, uint32_t len,
	    uint8_t *buf, uint64_t extra,
	    int (*verify)(void *ctx, const uint8_t *buf), void *ctx)
{
	uint64_t b = store_bad_chunks(st, s) | extra;

	if ((unsigned)__builtin_popcountll(b) > st->g.m)
		return false;
	return read_attempt(st, s, off, len, buf, b) == 0 &&
	       verify(ctx, buf) == 0;
}

/*
 * Some chunk returned wrong bytes without an I/O error: find it by leaving
 * out each readable chunk in turn (data or parity: a bad parity chunk
 * spoils reconstruction), then each pair when m allows two.
 */
static bool
find_culprit(struct store *st, uint32_t s, uint32_t off, uint32_t len,
	     uint8_t *buf, int (*verify)(void *ctx, const uint8_t *buf),
	     void *ctx)
{
	unsigned w = st->g.w;

	for (unsigned a = 0; a < w; a++)
		if (try_without(st, s, off, len, buf, 1ull << a, verify, ctx))
			return true;
	for (unsigned a = 0; a < w && w <= 16; a++)
		for (unsigned b = a + 1; b < w; b++)
			if (try_without(st, s, off, len, buf,
					(1ull << a) | (1ull << b), verify, ctx))
				return true;
	return false;
}

int
store_read_range(struct store *st, uint32_t s, uint32_t off, uint32_t len,
		 uint8_t *buf, int (*verify)(void *ctx, const uint8_t *buf),
		 void *ctx)
{
	struct slot *sl = &st->slots[s];
	int rc;

	if (sl->wbuf >= 0) {
		wbuf_read(st, &st->wb[sl->wbuf], off, buf, len);
		return verify ? verify(ctx, buf) : 0;
	}
	rc = read_attempt(st, s, off, len, buf, store_bad_chunks(st, s));
	if (rc == 0 && (verify == NULL || (rc = verify(ctx, buf)) == 0))
		return 0;
	if (rc == -GPC_ENOTFOUND)
		return rc; /* consistent bytes, another key: no repair */
	if (verify != NULL && st->g.m > 0 &&
	    find_culprit(st, s, off, len, buf, verify, ctx)) {
		st->s.repaired_reads++;
		return 0;
	}
	st->s.check_failures++;
	return rc < 0 ? rc : -GPC_ECORRUPT;
}

int
store_read_record(struct store *st, uint32_t s, uint32_t off4k, uint32_t len,
		  uint64_t ns, const uint8_t *key, uint8_t *buf)
{
	struct rec_verify v = { .st = st, .ns = ns, .key = key,
				.seq = st->slots[s].seq };
	int rc;

	v.len4k = (len + STORE_SECTOR - 1) / STORE_SECTOR;
	rc = store_read_range(st, s, off4k * STORE_SECTOR,
			      store_rec_size(len), buf, rec_verify, &v);
	if (rc == 0 && v.len != len)
		rc = -GPC_ECORRUPT;
	return rc;
}

static void
op_free(struct store_get_op *op)
{
	free(op->hdr);
	free(op->bounce);
	free(op->reqs);
	free(op);
}

/* A get of an indexed block: the policy's reference (the CLOCK bit),
 * set when the get is asked for, where the block is then; reclaim
 * carries it to the block's copy (store_write.c, recl_owns). */
static void
get_ref(struct store *st, uint64_t ns, const uint8_t *key)
{
	index_set_flags(st->ix, index_hash(ns, key), INDEX_F_REF, 0);
}

/* Finish a get: stats, callback. */
static void
op_done(struct store *st, struct store_get_op *op, int rc)
{
	if (op->internal) {
		/* reclaim's read: the block is not being used */
	} else if (rc >= 0) {
		st->s.hits++;
	} else {
		st->s.misses++;
	}
	store_complete(st, op->cb, op->arg, rc);
	op_free(op);
}

static bool
slot_moved(const struct store *st, const struct store_get_op *op)
{
	const struct slot *sl = &st->slots[op->loc.slot];

	return sl->seq != op->seq || sl->state == SLOT_FREE;
}

/* Check a completed flash read and deliver it; 1 if it needs repair. */
static int
op_verify(struct store *st, struct store_get_op *op)
{
	struct rec_disk r;
	uint32_t crc;
	int rc;

	if (slot_moved(st, op)) {
		op_done(st, op, -GPC_ENOTFOUND);
		return 0;
	}
	rc = store_rec_check(st, op->hdr, op->ns, op->key, op->seq,
			     op->loc.len4k, &r);
	if (rc == -GPC_ENOTFOUND) {
		op_done(st, op, rc);
		return 0;
	}
	if (rc < 0)
		return 1;
	if (r.len > op->ucap) {
		op_done(st, op, -ENOBUFS);
		return 0;
	}
	uint64_t t0 = clock_cost_ns();
	if (op->bounce)
		crc = crc32c(op->bounce, r.len);
	else
		crc = crc_iov(op->uiov, op->uiovcnt, r.len);
	st->s.crc_cpu_ns += clock_cost_ns() - t0;
	if (crc != r.data_crc)
		return 1;
	if (op->bounce) {
		scatter(op->uiov, op->uiovcnt, op->bounce, r.len);
		st->s.copy_bytes += r.len;
	}
	op_done(st, op, (int)r.len);
	return 0;
}

static void
degq_push(struct store *st, struct store_get_op *op)
{
	op->next = st->degq;
	st->degq = op;
}

static void
get_io_cb(struct store_io_req *r)
{
	struct store_get_op *op = r->arg;
	struct store *st = op->st;

	if (r->res < 0) {
		store_fail_dev_io(st, store_req_sdev(st, r), r->res);
		op->err = r->res;
	} else {
		st->s.flash_bytes_read += (uint64_t)r->res;
	}
	if (--op->pending > 0)
		return;
	if (op->err < 0 || op_verify(st, op) == 1)
		degq_push(st, op);
}

/* Repair path for one get, run from store_poll (never in a callback). */
static void
degraded_one(struct store *st, struct store_get_op *op)
{
	uint32_t rs = STORE_SECTOR + op->loc.len4k * STORE_SECTOR;
	struct rec_verify v = { .st = st, .ns = op->ns, .key = op->key,
				.seq = op->seq, .len4k = op->loc.len4k };
	uint8_t *buf;
	int rc;

	if (slot_moved(st, op)) {
		op_done(st, op, -GPC_ENOTFOUND);
		return;
	}
	buf = store_zalloc(rs);
	if (buf == NULL) {
		op_done(st, op, -ENOMEM);
		return;
	}
	rc = store_read_range(st, op->loc.slot, op->loc.off4k * STORE_SECTOR,
			      rs, buf, rec_verify, &v);
	if (rc == 0 && v.len > op->ucap)
		rc = -ENOBUFS;
	if (rc == 0) {
		scatter(op->uiov, op->uiovcnt, buf + STORE_SECTOR, v.len);
		st->s.copy_bytes += v.len;
		rc = (int)v.len;
	} else if (rc != -ENOBUFS && rc != -ENOMEM) {
		rc = -GPC_ENOTFOUND; /* could not be verified: a miss */
	}
	free(buf);
	op_done(st, op, rc);
}

void
store_degraded_run(struct store *st)
{
	struct store_get_op *op;

	while ((op = st->degq) != NULL) {
		st->degq = op->next;
		degraded_one(st, op);
	}
}

void
store_read_fini(struct store *st)
{
	struct store_get_op *op;

	while ((op = st->degq) != NULL) {
		st->degq = op->next;
		op_free(op);
	}
}

/* Serve a get from a segment still in the write buffer. */
static int
get_buffered(struct store *st, struct store_get_op *op)
{
	const struct wbuf *w = &st->wb[st->slots[op->loc.slot].wbuf];
	uint32_t off = op->loc.off4k * STORE_SECTOR + STORE_SECTOR;
	struct rec_disk r;
	size_t left;
	int rc;

	wbuf_read(st, w, op->loc.off4k * STORE_SECTOR, op->hdr, STORE_SECTOR);
	rc = store_rec_check(st, op->hdr, op->ns, op->key, op->seq,
			     op->loc.len4k, &r);
	if (rc == 0 && r.len > op->ucap)
		rc = -ENOBUFS;
	if (rc < 0)
		return rc == -GPC_ECORRUPT ? -GPC_ENOTFOUND : rc;
	left = r.len;
	for (unsigned i = 0; i < op->uiovcnt && left > 0; i++) {
		uint32_t n = (uint32_t)(op->uiov[i].iov_len < left
						? op->uiov[i].iov_len : left);

		wbuf_read(st, w, off, op->uiov[i].iov_base, n);
		off += n;
		left -= n;
	}
	st->s.copy_bytes += r.len;
	return (int)r.len;
}

/* Can the data be read straight into the caller's buffers? */
static bool
direct_ok(const struct iovec *iov, unsigned iovcnt, size_t need)
{
	size_t have = 0;

	for (unsigned i = 0; i < iovcnt && have < need; i++) {
		if ((uintptr_t)iov[i].iov_base % STORE_IO_ALIGN ||
		    iov[i].iov_len % STORE_IO_ALIGN)
			return false;
		have += iov[i].iov_len;
	}
	return have >= need;
}

/*
 * Destination of record byte x (0 = first header byte): the header
 * sector, then the data buffers. Fills iov with the pieces covering
 * [x, x+len) and returns their count.
 */
static unsigned
dest_iov(const struct store_get_op *op, uint32_t x, uint32_t len,
	 struct iovec *iov)
{
	struct iovec bounce = { op->bounce, op->loc.len4k * STORE_SECTOR };
	const struct iovec *src = op->bounce ? &bounce : op->uiov;
	unsigned nsrc = op->bounce ? 1 : op->uiovcnt, n = 0;

	if (x < STORE_SECTOR) {
		iov[n++] = (struct iovec){ op->hdr + x, STORE_SECTOR - x };
		len -= STORE_SECTOR - x;
		x = 0;
	} else {
		x -= STORE_SECTOR;
	}
	for (unsigned i = 0; i < nsrc && len > 0; i++) {
		size_t l = src[i].iov_len, take;

		if (x >= l) {
			x -= (uint32_t)l;
			continue;
		}
		take = l - x < len ? l - x : len;
		iov[n++] = (struct iovec){ (uint8_t *)src[i].iov_base + x, take };
		len -= (uint32_t)take;
		x = 0;
	}
	return n;
}

/* Issue one read per chunk the record spans; 1 if it needs repair. */
static int
get_submit_reads(struct store *st, struct store_get_op *op)
{
	uint32_t P = st->g.payload, off = op->loc.off4k * STORE_SECTOR;
	uint32_t len = STORE_SECTOR + op->loc.len4k * STORE_SECTOR, x = 0;
	uint64_t bad = store_bad_chunks(st, op->loc.slot);
	unsigned niov = 0, nreq = 0;

	op->pending = 1;
	while (len > 0) {
		unsigned c = off / P;
		uint32_t n = P - off % P < len ? P - off % P : len;
		struct store_io_req *r = &op->reqs[nreq];
		uint64_t doff;

		if (bad & (1ull << c)) {
			op->err = -ENODEV;
			break;
		}
		*r = (struct store_io_req){ .op = STORE_IO_READ,
			.buf_index = -1, .iov = &op->iovs[niov],
			.cb = get_io_cb, .arg = op };
		r->dev = (uint16_t)store_slot_dev(st, op->loc.slot, c, &doff);
		r->off = doff + STORE_SECTOR + off % P;
		r->iovcnt = dest_iov(op, x, n, &op->iovs[niov]);
		niov += r->iovcnt;
		if (store_submit(st, r) < 0) {
			op->err = -EIO;
			break;
		}
		op->pending++;
		nreq++;
		off += n;
		x += n;
		len -= n;
	}
	return --op->pending == 0 ? 1 : 0;
}

static int get_start(struct store *st, struct store_get_op *op);

int
store_get_submit(struct store *st, uint64_t ns, const uint8_t *key,
		 const struct iovec *iov, unsigned iovcnt, store_cb cb,
		 void *arg)
{
	struct store_get_op *op;
	int rc;

	op = calloc(1, sizeof(*op));
	if (op == NULL)
		return -ENOMEM;
	*op = (struct store_get_op){ .st = st, .cb = cb, .arg = arg, .ns = ns,
				     .uiov = iov, .uiovcnt = iovcnt };
	memcpy(op->key, key, STORE_KEY_LEN);
	for (unsigned i = 0; i < iovcnt; i++)
		op->ucap += iov[i].iov_len;
	st->s.gets++;
	st->pending++;
	if (store_ix_find(st, ns, key, index_hash(ns, key), &op->loc) < 0) {
		op_done(st, op, -GPC_ENOTFOUND);
		return 0;
	}
	get_ref(st, ns, key);
	rc = get_start(st, op);
	if (rc < 0)
		st->s.gets--;
	return rc;
}

int
store_read_loc_submit(struct store *st, uint64_t ns, const uint8_t *key,
		      uint32_t slot, uint32_t off4k, uint32_t len, void *buf,
		      store_cb cb, void *arg)
{
	struct store_get_op *op = calloc(1, sizeof(*op));

	if (op == NULL)
		return -ENOMEM;
	*op = (struct store_get_op){ .st = st, .cb = cb, .arg = arg, .ns = ns,
				     .internal = true,
				     .own = { buf, store_rec_size(len) -
						   STORE_SECTOR },
				     .loc = { .slot = slot, .off4k = off4k,
					      .len4k = (len + STORE_SECTOR - 1) /
						       STORE_SECTOR } };
	memcpy(op->key, key, STORE_KEY_LEN);
	op->uiov = &op->own;
	op->uiovcnt = 1;
	op->ucap = op->own.iov_len;
	st->pending++;
	return get_start(st, op);
}

/* A get whose location is known: from DRAM, or reads from flash. */
static int
get_start(struct store *st, struct store_get_op *op)
{
	const struct iovec *iov = op->uiov;
	unsigned maxpieces, iovcnt = op->uiovcnt;

	op->seq = st->slots[op->loc.slot].seq;
	maxpieces = (STORE_SECTOR + op->loc.len4k * STORE_SECTOR) /
			    st->g.payload + 2;
	op->hdr = store_zalloc(STORE_SECTOR);
	op->reqs = calloc(maxpieces, sizeof(*op->reqs) +
			  (iovcnt + 2) * sizeof(struct iovec));
	if (op->hdr == NULL || op->reqs == NULL)
		goto nomem;
	op->iovs = (struct iovec *)(op->reqs + maxpieces);
	if (st->slots[op->loc.slot].wbuf >= 0) {
		op_done(st, op, get_buffered(st, op));
		return 0;
	}
	if (op->ucap < (op->loc.len4k - 1) * STORE_SECTOR + 1) {
		op_done(st, op, -ENOBUFS);
		return 0;
	}
	if (!direct_ok(iov, iovcnt, op->loc.len4k * STORE_SECTOR)) {
		op->bounce = store_zalloc(op->loc.len4k * STORE_SECTOR);
		if (op->bounce == NULL)
			goto nomem;
	}
	if (get_submit_reads(st, op) == 1)
		degq_push(st, op);
	return 0;
nomem:
	st->pending--;
	op_free(op);
	return -ENOMEM;
}

struct store_zc_ref {
	struct store *st;
	store_zc_cb cb;
	void *arg;
	int wb;            /* pinned write buffer, or -1 */
	struct iovec ubuf; /* the caller's buffer (flash path) */
	struct iovec iov[STORE_RESV_MAXIOV];
	unsigned iovcnt;
};

static void
zc_done(void *arg, int rc)
{
	struct store_zc_ref *ref = arg;

	if (rc < 0) {
		if (ref->wb >= 0)
			store_wbuf_unpin(ref->st, ref->wb);
		ref->cb(ref->arg, rc, NULL, 0, NULL);
		free(ref);
		return;
	}
	if (ref->wb < 0) {
		ref->iov[0] = (struct iovec){ ref->ubuf.iov_base, (size_t)rc };
		ref->iovcnt = 1;
	}
	ref->cb(ref->arg, rc, ref->iov, ref->iovcnt, ref);
}

/* A block in the write buffer: hand out its bytes in place, pinned. */
static int
zc_buffered(struct store *st, struct store_zc_ref *ref, uint64_t ns,
	    const uint8_t *key, const struct index_loc *loc)
{
	const struct slot *sl = &st->slots[loc->slot];
	const struct wbuf *w = &st->wb[sl->wbuf];
	uint8_t hdr[STORE_SECTOR];
	struct rec_disk r;
	int rc;

	wbuf_read(st, w, loc->off4k * STORE_SECTOR, hdr, STORE_SECTOR);
	rc = store_rec_check(st, hdr, ns, key, sl->seq, loc->len4k, &r);
	if (rc < 0)
		return -GPC_ENOTFOUND;
	ref->wb = sl->wbuf;
	store_wbuf_pin(st, ref->wb);
	ref->iovcnt = store_wbuf_pieces(st, w, loc->off4k * STORE_SECTOR +
					STORE_SECTOR, r.len, ref->iov,
					STORE_RESV_MAXIOV);
	st->s.hits++;
	return (int)r.len;
}

int
store_get_zc_submit(struct store *st, uint64_t ns, const uint8_t *key,
		    void *buf, size_t cap, store_zc_cb cb, void *arg)
{
	struct store_zc_ref *ref = calloc(1, sizeof(*ref));
	struct index_loc loc;
	int rc;

	if (ref == NULL)
		return -ENOMEM;
	*ref = (struct store_zc_ref){ .st = st, .cb = cb, .arg = arg, .wb = -1,
				      .ubuf = { buf, cap } };
	if (store_ix_find(st, ns, key, index_hash(ns, key), &loc) == 0 &&
	    st->slots[loc.slot].wbuf >= 0) {
		st->s.gets++;
		st->pending++;
		get_ref(st, ns, key);
		rc = zc_buffered(st, ref, ns, key, &loc);
		if (rc < 0)
			st->s.misses++;
		store_complete(st, zc_done, ref, rc);
		return 0;
	}
	rc = store_get_submit(st, ns, key, &ref->ubuf, 1, zc_done, ref);
	if (rc < 0)
		free(ref);
	return rc;
}

void
store_get_zc_release(struct store *st, struct store_zc_ref *ref)
{
	if (ref == NULL)
		return;
	if (ref->wb >= 0)
		store_wbuf_unpin(st, ref->wb);
	free(ref);
}

long
store_block_room(struct store *st, uint64_t ns, const uint8_t *key)
{
	struct index_loc loc;

	if (store_ix_find(st, ns, key, index_hash(ns, key), &loc) < 0)
		return -GPC_ENOTFOUND;
	return (long)loc.len4k * STORE_SECTOR;
}

bool
store_touch(struct store *st, uint64_t ns, const uint8_t *key, bool *was_read)
{
	struct index_hkey hk = index_hash(ns, key);
	struct index_loc loc;

	if (store_ix_find(st, ns, key, hk, &loc) < 0)
		return false;
	if (was_read != NULL)
		*was_read = (loc.flags & INDEX_F_REF) != 0;
	/* every read earns reinsertion budget (reinsert_budget); counting
	 * a block's first read per stay only gave chat and agent traces 3-5
	 * points less (docs/cache-policy.md) */
	st->hit_rec_bytes += store_foot(loc.len4k);
	index_set_flags(st->ix, hk, INDEX_F_REF, 0);
	return true;
}

bool
store_block_buffered(struct store *st, uint64_t ns, const uint8_t *key)
{
	struct index_loc loc;

	return store_ix_find(st, ns, key, index_hash(ns, key), &loc) == 0 &&
	       st->slots[loc.slot].wbuf >= 0;
}
