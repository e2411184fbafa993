/*
 * ops.c - gpucached's operations, one handler per opcode in a table
 * indexed by opcode. Runs on the shard thread.
 *
 * Trust: everything in a message is checked before use. Before AUTH
 * succeeds only HELLO and AUTH are accepted, and anything else drops the
 * connection. Every descriptor of a PUT or GET is checked against this
 * connection's own registrations before any RMA; a block with a bad one
 * moves no byte. The tenant comes only from the authenticated connection
 * and is folded into every namespace, so tenants never alias.
 *
 * Data path (no payload copy on the server): PUT reserves the block's
 * place in the engine's write buffer and RMA-GETs the client's bytes
 * straight into it, then commits; GET has the engine read the block into
 * an aligned buffer (or hand out its write-buffer bytes in place) and
 * RMA-PUTs them into client memory, then flushes the endpoint before the
 * answer, so the bytes are there when the client sees it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/hash.h"
#include "common/log.h"
#include "gpucache/gpucache.h"
#include "net/auth.h"
#include "server.h"

typedef void (*op_fn)(struct srv_conn *c, const struct wire_hdr *h,
		      const uint8_t *body);

/*
 * The engine's namespace: the tenant's class (config index + 1) in the
 * top 16 bits, for quotas; a hash of tenant name and client namespace
 * below, so tenants never alias.
 */
static uint64_t
ns_of(const struct srv_conn *c, uint64_t client_ns)
{
	uint64_t h = XXH3_64bits_withSeed(&client_ns, sizeof(client_ns),
					  c->ns_seed);

	return ((uint64_t)(c->tenant + 1) << 48) | (h & ((1ull << 48) - 1));
}

static const struct srv_config *
tenants(const struct srv_conn *c)
{
	return atomic_load(&c->sh->srv->tenants);
}

static void
op_hello(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body)
{
	uint8_t resp[WIRE_NONCE_LEN + 8];
	const struct srv_config *cfg = tenants(c);

	if (c->state != CONN_NEW ||
	    wire_hello_decode(body, h->body_len, c->tenant_name) < 0 ||
	    auth_random(c->nonce, sizeof(c->nonce)) < 0) {
		srv_conn_drop(c);
		return;
	}
	c->tenant = -1;
	for (unsigned i = 0; i < cfg->ntenants; i++)
		if (strcmp(cfg->tenants[i].name, c->tenant_name) == 0)
			c->tenant = (int)i;
	memcpy(resp, c->nonce, WIRE_NONCE_LEN);
	put_le32(resp + WIRE_NONCE_LEN, c->sh->srv->nsh);
	put_le32(resp + WIRE_NONCE_LEN + 4, c->sh->idx);
	c->state = CONN_CHALLENGED; /* unknown tenants too: no probing */
	srv_reply(c, h, 0, 0, 0, resp, sizeof(resp));
}

/* A connection whose AUTH failed: its answer is on the way out, and any
 * message it sends meanwhile drops it (no state accepts one). */
#define CONN_CLOSING 3
_Static_assert(CONN_CLOSING != CONN_NEW && CONN_CLOSING != CONN_CHALLENGED &&
		       CONN_CLOSING != CONN_AUTHED,
	       "a state of its own");

static void
auth_fail_sent(void *arg, int rc)
{
	struct srv_conn *c = arg;

	(void)rc;
	c->sh->inflight--;
	c->inflight--;
	srv_conn_drop(c);
}

/*
 * Answer -GPC_EAUTH, then close once the answer is out: a forced close
 * right after the send can discard it, and the client would see a reset
 * instead of the reason. The hold on inflight keeps the connection (and a
 * shard drain) until the flush completes, whatever the peer does.
 */
static void
auth_fail(struct srv_conn *c, const struct wire_hdr *h)
{
	srv_reply(c, h, -GPC_EAUTH, 0, 0, NULL, 0);
	c->state = CONN_CLOSING;
	c->inflight++;
	c->sh->inflight++;
	if (net_flush_nb(c->ep, auth_fail_sent, c) < 0) {
		c->sh->inflight--;
		c->inflight--;
		srv_conn_drop(c);
	}
}

static void
op_auth(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body)
{
	const struct srv_config *cfg = tenants(c);
	uint8_t want[AUTH_MAC_LEN];
	const struct srv_tenant *t;

	if (c->state != CONN_CHALLENGED || h->body_len != AUTH_MAC_LEN) {
		srv_conn_drop(c);
		return;
	}
	/* by name, in this one table: a reload between HELLO and AUTH must
	 * not pair one tenant's secret with another's identity */
	c->tenant = -1;
	for (unsigned i = 0; i < cfg->ntenants; i++)
		if (strcmp(cfg->tenants[i].name, c->tenant_name) == 0)
			c->tenant = (int)i;
	t = c->tenant >= 0 ? &cfg->tenants[c->tenant] : NULL;
	if (t == NULL || auth_mac(t->secret, t->secret_len, c->nonce,
				  c->tenant_name, c->sh->idx, want) < 0 ||
	    !auth_mac_equal(want, body)) {
		srv_metrics_auth_fail(c->sh->m);
		log_warn("ops", "authentication failed for tenant '%s'",
			 c->tenant_name);
		auth_fail(c, h);
		return;
	}
	c->state = CONN_AUTHED;
	c->ns_seed = XXH3_64bits(c->tenant_name, strlen(c->tenant_name));
	srv_reply(c, h, 0, 0, c->sh->srv->nsh, NULL, 0);
}

static struct srv_region *
region_find(struct srv_conn *c, uint32_t id)
{
	for (unsigned i = 0; i < SRV_MAX_REGIONS; i++)
		if (c->regs[i].used && c->regs[i].id == id)
			return &c->regs[i];
	return NULL;
}

static void
op_reg(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body)
{
	struct wire_reg g;
	struct srv_region *r = NULL;
	uint8_t *pad;
	int rc;

	if (wire_reg_decode(body, h->body_len, &g) < 0) {
		srv_conn_drop(c);
		return;
	}
	for (unsigned i = 0; i < SRV_MAX_REGIONS && r == NULL; i++)
		if (!c->regs[i].used)
			r = &c->regs[i];
	if (region_find(c, g.region) != NULL || r == NULL) {
		srv_reply(c, h, region_find(c, g.region) ? -EEXIST : -ENOSPC, 0,
			  0, NULL, 0);
		return;
	}
	/* UCX parses the packed key without a length: give it zero padding */
	pad = calloc(1, 2 * WIRE_MAX_RKEY);
	if (pad == NULL) {
		srv_reply(c, h, -ENOMEM, 0, 0, NULL, 0);
		return;
	}
	memcpy(pad, g.rkey, g.rkey_len);
	rc = net_rkey_unpack(c->ep, pad, g.rkey_len, &r->rk);
	free(pad);
	if (rc == 0)
		*r = (struct srv_region){ .used = true, .id = g.region,
					  .addr = g.addr, .len = g.len,
					  .rk = r->rk };
	srv_reply(c, h, rc, 0, 0, NULL, 0);
}

static void
op_dereg(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body)
{
	struct srv_region *r;

	if (h->body_len != 4) {
		srv_conn_drop(c);
		return;
	}
	r = region_find(c, get_le32(body));
	if (r == NULL || c->inflight > 0) { /* regions stay while transfers run */
		srv_reply(c, h, r ? -GPC_EBUSY : -ENOENT, 0, 0, NULL, 0);
		return;
	}
	net_rkey_destroy(r->rk);
	memset(r, 0, sizeof(*r));
	srv_reply(c, h, 0, 0, 0, NULL, 0);
}

static int
desc_check(struct srv_conn *c, const struct wire_block *wb)
{
	for (uint32_t i = 0; i < wb->ndesc; i++) {
		const struct wire_desc *d = &wb->desc[i];
		struct srv_region *r = region_find(c, d->region);

		if (r == NULL || !wire_range_inside(d->addr, d->len, r->addr,
						    r->len))
			return -EINVAL;
	}
	return 0;
}

/*
 * Read buffers of GETs from flash, reused. A fresh posix_memalign per
 * block (2 MiB and up) cost the shard a page fault, a zeroed page and a
 * memcg charge per 4 KiB on every GET, and the unmap on free (perf:
 * clear_page, do_anonymous_page, unmap_page_range). Each shard thread
 * keeps up to RBUF_KEEP of them, RBUF_MAX_BYTES in all; a buffer is
 * reused for a block of at least half its size.
 */
#define RBUF_KEEP 64u
#define RBUF_MAX_BYTES (128ull << 20)

static _Thread_local struct {
	unsigned n;
	uint64_t bytes;
	uint8_t *p[RBUF_KEEP];
	size_t cap[RBUF_KEEP];
} rbufs;

static uint8_t *
rbuf_get(size_t need, size_t *cap)
{
	void *p;

	for (unsigned i = rbufs.n; i-- > 0;) {
		if (rbufs.cap[i] < need || rbufs.cap[i] / 2 > need)
			continue;
		p = rbufs.p[i];
		*cap = rbufs.cap[i];
		rbufs.bytes -= *cap;
		rbufs.n--;
		rbufs.p[i] = rbufs.p[rbufs.n];
		rbufs.cap[i] = rbufs.cap[rbufs.n];
		return p;
	}
	if (posix_memalign(&p, STORE_IO_ALIGN, need) != 0)
		return NULL;
	*cap = need;
	return p;
}

static void
rbuf_put(uint8_t *p, size_t cap)
{
	if (p == NULL)
		return;
	if (rbufs.n == RBUF_KEEP || rbufs.bytes + cap > RBUF_MAX_BYTES) {
		free(p);
		return;
	}
	rbufs.p[rbufs.n] = p;
	rbufs.cap[rbufs.n++] = cap;
	rbufs.bytes += cap;
}

void
srv_rbufs_free(void)
{
	while (rbufs.n > 0)
		free(rbufs.p[--rbufs.n]);
	rbufs.bytes = 0;
}

static void rma_done(struct srv_blk *b);

static void
rma_cb(void *arg, int rc)
{
	struct srv_blk *b = arg;

	if (rc < 0 && b->err == 0)
		b->err = rc;
	if (--b->rma == 0)
		rma_done(b);
}

/*
 * One RMA per overlap of the local pieces and the block's descriptors,
 * total bytes: get (client -> loc) for PUT, put (loc -> client) for GET.
 */
static void
rma_issue(struct srv_blk *b, bool put, const struct iovec *loc, unsigned nl,
	  size_t total)
{
	struct srv_req *r = b->r;
	const struct wire_block *wb = &r->blk[b->i];
	unsigned li = 0, di = 0;
	size_t lo = 0, doff = 0;

	b->rma = 1; /* held until every operation is issued */
	if (r->c->dead) /* no endpoint any more: nothing moves */
		b->err = -ECONNRESET;
	while (b->err == 0 && total > 0 && li < nl && di < wb->ndesc) {
		const struct wire_desc *d = &wb->desc[di];
		struct srv_region *reg = region_find(r->c, d->region);
		size_t n = loc[li].iov_len - lo;
		uint8_t *lp = (uint8_t *)loc[li].iov_base + lo;
		int rc;

		if (n > d->len - doff)
			n = d->len - doff;
		if (n > total)
			n = total;
		rc = put ? net_put_nb(r->c->ep, lp, n, d->addr + doff, reg->rk,
				      rma_cb, b)
			 : net_get_nb(r->c->ep, lp, n, d->addr + doff, reg->rk,
				      rma_cb, b);
		if (rc < 0) {
			b->err = rc;
			break;
		}
		b->rma++;
		total -= n;
		lo += n;
		doff += n;
		if (lo == loc[li].iov_len)
			li++, lo = 0;
		if (doff == d->len)
			di++, doff = 0;
	}
	if (b->err == 0 && total > 0)
		b->err = -EIO; /* pieces ran out: never report a partial move */
	rma_cb(b, 0);
}

/* A request's transfers may take this long; then its peer is dropped. */
#define SRV_REQ_DEADLINE_NS (30ull * 1000000000ull)

static void
req_link(struct srv_shard *sh, struct srv_req *r)
{
	r->aprev = NULL;
	r->anext = sh->all;
	if (sh->all)
		sh->all->aprev = r;
	sh->all = r;
}

static void
req_unlink(struct srv_shard *sh, struct srv_req *r)
{
	if (r->aprev)
		r->aprev->anext = r->anext;
	else if (sh->all == r)
		sh->all = r->anext;
	if (r->anext)
		r->anext->aprev = r->aprev;
	r->aprev = r->anext = NULL;
}

/*
 * A client that stops serving its side of RMA (or vanishes without its
 * transport noticing) must not hold write-buffer space forever: once a
 * request of it is older than the deadline, its connection is dropped,
 * the RMA fails and its reservations are abandoned. Run about once a
 * second from the shard loop.
 */
void
srv_sweep(struct srv_shard *sh)
{
	uint64_t now = clock_now_ns();

	if (now - sh->last_sweep < 1000000000ull)
		return;
	sh->last_sweep = now;
	for (struct srv_req *r = sh->all; r != NULL; r = r->anext) {
		if (r->c->dead || now - r->t0 < SRV_REQ_DEADLINE_NS)
			continue;
		log_warn("ops", "tenant '%s': request %llu stuck for 30 s: "
			 "connection dropped", r->c->tenant_name,
			 (unsigned long long)r->h.req_id);
		srv_conn_drop(r->c); /* r stays: its blocks unwind */
	}
}

static void
req_free(struct srv_req *r)
{
	free(r->body);
	free(r->blk);
	free(r->desc);
	free(r->status);
	free(r->b);
	free(r);
}

/* Answer the request and let go of it. */
static void
req_reply(struct srv_req *r)
{
	struct srv_conn *c = r->c;
	struct srv_shard *sh = c->sh;
	uint8_t *body = malloc((size_t)r->n * 4);
	int st = 0;

	for (unsigned i = 0; body != NULL && i < r->n; i++)
		put_le32(body + 4 * i, (uint32_t)r->status[i]);
	if (body == NULL)
		st = -ENOMEM;
	srv_reply(c, &r->h, st, r->n, 0, body, body ? (size_t)r->n * 4 : 0);
	srv_metrics_op(sh->m, r->h.opcode, st, clock_now_ns() - r->t0,
		       r->h.opcode == WIRE_OP_PUT ? r->bytes : 0,
		       r->h.opcode == WIRE_OP_GET ? r->bytes : 0);
	free(body);
	req_unlink(sh, r);
	req_free(r);
	sh->inflight--;
	if (--c->inflight == 0 && c->dead)
		srv_conn_drop(c);
}

static void
flush_cb(void *arg, int rc)
{
	(void)rc; /* a failed flush means the peer is gone: nothing to tell */
	req_reply(arg);
}

void
srv_req_done(struct srv_req *r)
{
	if (r->h.opcode == WIRE_OP_GET && !r->c->dead &&
	    net_flush_nb(r->c->ep, flush_cb, r) == 0)
		return; /* the bytes must land before the answer */
	req_reply(r);
}

static void
tenant_ev(struct srv_req *r, enum srv_tenant_ev ev, uint64_t bytes)
{
	if (r->c->tenant >= 0)
		srv_metrics_tenant(r->c->sh->m, (unsigned)r->c->tenant, ev, 1,
				   bytes);
}

/* A block is over: record its status; the last one ends the request. */
static void
blk_end(struct srv_blk *b, int status)
{
	struct srv_req *r = b->r;

	r->status[b->i] = status;
	if (r->h.opcode == WIRE_OP_PUT && status == 0) {
		r->bytes += b->resv.len;
		tenant_ev(r, SRV_TENANT_PUT, b->resv.len);
	} else if (r->h.opcode == WIRE_OP_GET) {
		if (status >= 0)
			r->bytes += (uint64_t)status;
		tenant_ev(r, status >= 0 ? SRV_TENANT_HIT : SRV_TENANT_MISS,
			  status >= 0 ? (uint64_t)status : 0);
	}
	if (--r->left == 0)
		srv_req_done(r);
}

static void
commit_cb(void *arg, int rc)
{
	blk_end(arg, rc);
}

/* RMA of a block finished (or failed): publish or give back. */
static void
rma_done(struct srv_blk *b)
{
	struct srv_req *r = b->r;
	struct store *st = r->c->sh->st;
	int rc = b->err;

	if (r->h.opcode == WIRE_OP_GET) {
		if (b->ce != NULL)
			rcache_unpin(r->c->sh->rc, b->ce);
		b->ce = NULL;
		store_get_zc_release(st, b->ref);
		b->ref = NULL;
		rbuf_put(b->rbuf, b->rcap);
		b->rbuf = NULL;
		blk_end(b, rc < 0 ? rc : (int)b->resv.len);
		return;
	}
	if (rc < 0) { /* the client went away or its memory failed */
		store_put_abort(st, &b->resv);
		blk_end(b, rc);
		return;
	}
	rcache_drop(r->c->sh->rc, r->ns, b->resv.key); /* stale from now */
	rc = store_put_commit(st, &b->resv, (r->h.flags & WIRE_F_DURABLE) ?
				      STORE_PUT_DURABLE : 0, commit_cb, b);
	if (rc < 0)
		blk_end(b, rc);
}

static void
get_data_cb(void *arg, int rc, const struct iovec *iov, unsigned n,
	    struct store_zc_ref *ref)
{
	struct srv_blk *b = arg;
	const struct wire_block *wb = &b->r->blk[b->i];

	if (rc < 0) {
		rbuf_put(b->rbuf, b->rcap);
		b->rbuf = NULL;
		blk_end(b, rc);
		return;
	}
	b->ref = ref;
	b->resv.len = (uint32_t)rc; /* the length, for rma_done */
	if ((uint64_t)rc > wb->total) {
		b->err = -ENOBUFS;
		b->rma = 1;
		rma_cb(b, 0);
		return;
	}
	rma_issue(b, true, iov, n, (size_t)rc);
}

/* Serve a GET block from the read cache, RMA straight from it. */
static bool
get_cached(struct srv_blk *b, const struct wire_block *wb)
{
	struct srv_req *r = b->r;
	const uint8_t *data;
	uint32_t len;
	struct iovec v;

	b->ce = rcache_get(r->c->sh->rc, r->ns, wb->key, &data, &len);
	if (b->ce == NULL)
		return false;
	b->resv.len = len;
	if (len > wb->total) {
		b->err = -ENOBUFS;
		b->rma = 1;
		rma_cb(b, 0);
		return true;
	}
	v = (struct iovec){ (void *)data, len };
	rma_issue(b, true, &v, 1, len);
	return true;
}

/* Start block i: 0, or -EAGAIN when the write buffer is full. */
static int
blk_start(struct srv_req *r, unsigned i)
{
	struct srv_blk *b = &r->b[i];
	const struct wire_block *wb = &r->blk[i];
	struct store *st = r->c->sh->st;
	size_t cap;
	int rc;

	*b = (struct srv_blk){ .r = r, .i = i };
	rc = desc_check(r->c, wb);
	if (rc < 0) {
		blk_end(b, rc);
		return 0;
	}
	if (r->h.opcode == WIRE_OP_PUT) {
		rc = store_put_reserve(st, r->ns, wb->key, (uint32_t)wb->total,
				       &b->resv);
		if (rc == -EAGAIN)
			return rc;
		if (rc < 0) {
			blk_end(b, rc);
			return 0;
		}
		rma_issue(b, false, b->resv.iov, b->resv.iovcnt, wb->total);
		return 0;
	}
	if (get_cached(b, wb))
		return 0;
	cap = (wb->total + STORE_IO_ALIGN - 1) & ~(size_t)(STORE_IO_ALIGN - 1);
	b->rbuf = rbuf_get(cap, &b->rcap);
	if (b->rbuf == NULL) {
		blk_end(b, -ENOMEM);
		return 0;
	}
	rc = store_get_zc_submit(st, r->ns, wb->key, b->rbuf, b->rcap,
				 get_data_cb, b);
	if (rc < 0) {
		rbuf_put(b->rbuf, b->rcap);
		b->rbuf = NULL;
		blk_end(b, rc);
	}
	return 0;
}

/* Start the blocks not yet started; 1 if some must wait for room. */
static int
req_run(struct srv_req *r)
{
	r->left++; /* hold: blocks finishing now must not end the request */
	while (r->next_blk < r->n) {
		if (blk_start(r, r->next_blk) == -EAGAIN)
			break;
		r->next_blk++;
	}
	if (r->next_blk < r->n) {
		r->left--;
		return 1;
	}
	if (--r->left == 0)
		srv_req_done(r);
	return 0;
}

void
srv_retry(struct srv_shard *sh)
{
	struct srv_req *list = sh->retry, *r;

	sh->retry = NULL;
	while ((r = list) != NULL) {
		list = r->link;
		if (req_run(r)) {
			r->link = sh->retry;
			sh->retry = r;
		}
	}
}

/* PUT and GET: decode, check limits, start what can start. */
static void
op_xfer(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body)
{
	struct srv_shard *sh = c->sh;
	const struct srv_config *cfg = &sh->srv->cfg;
	struct srv_req *r;
	/* each descriptor takes 24 body bytes: no more can be in it */
	size_t maxd = h->body_len / WIRE_DESC_SIZE + 1;

	if (c->inflight >= cfg->max_inflight_conn ||
	    sh->inflight >= cfg->max_inflight_shard || sh->draining) {
		srv_reply(c, h, -GPC_EBUSY, 0, 0, NULL, 0);
		srv_metrics_op(sh->m, h->opcode, -GPC_EBUSY, 0, 0, 0);
		return;
	}
	if (h->count == 0 || h->count > WIRE_MAX_BATCH) {
		srv_conn_drop(c);
		return;
	}
	r = calloc(1, sizeof(*r));
	if (r != NULL) {
		r->blk = calloc(h->count, sizeof(*r->blk));
		r->desc = calloc(maxd, sizeof(*r->desc));
		r->status = calloc(h->count, sizeof(*r->status));
		r->b = calloc(h->count, sizeof(*r->b));
		r->body = malloc(h->body_len ? h->body_len : 1);
	}
	if (r == NULL || !r->blk || !r->desc || !r->status || !r->b ||
	    !r->body) {
		if (r != NULL)
			req_free(r);
		srv_reply(c, h, -ENOMEM, 0, 0, NULL, 0);
		return;
	}
	memcpy(r->body, body, h->body_len);
	if (wire_batch_decode(r->body, h->body_len, h->count, &r->ns, r->blk,
			      r->desc, maxd) < 0) {
		req_free(r);
		srv_conn_drop(c);
		return;
	}
	r->c = c;
	r->h = *h;
	r->n = r->left = h->count;
	r->ns = ns_of(c, r->ns);
	r->t0 = clock_now_ns();
	c->inflight++;
	sh->inflight++;
	req_link(sh, r);
	if (req_run(r)) {
		r->link = sh->retry;
		sh->retry = r;
	}
}

struct pf {
	struct srv_shard *sh;
	struct rcache_ent *e;
};

static void
prefetch_cb(void *arg, int rc, const struct iovec *iov, unsigned n,
	    struct store_zc_ref *ref)
{
	struct pf *pf = arg;
	struct rcache *cache = pf->sh->rc;

	/* only a flash read lands in our buffer; anything else is dropped */
	if (rc >= 0 && n == 1 && iov[0].iov_base == rcache_buf(pf->e))
		rcache_ready(cache, pf->e, (uint32_t)rc);
	else
		rcache_fail(cache, pf->e);
	store_get_zc_release(pf->sh->st, ref);
	free(pf);
}

/* LOOKUP with PREFETCH: start reading the found prefix from flash into
 * the read cache, so the GET that follows finds it in DRAM. */
static void
prefetch(struct srv_shard *sh, uint64_t ns, const uint8_t *keys, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *k = keys + (size_t)i * WIRE_KEY_LEN;
		long room = store_block_room(sh->st, ns, k);
		struct pf *pf;

		if (room <= 0 || store_block_buffered(sh->st, ns, k))
			continue; /* gone, or in DRAM already */
		pf = malloc(sizeof(*pf));
		if (pf == NULL)
			return;
		pf->sh = sh;
		pf->e = rcache_load(sh->rc, ns, k, (uint32_t)room);
		if (pf->e == NULL) {
			free(pf);
			continue; /* cached or loading already, or no room */
		}
		if (store_get_zc_submit(sh->st, ns, k, rcache_buf(pf->e),
					(size_t)room, prefetch_cb, pf) < 0) {
			rcache_fail(sh->rc, pf->e);
			free(pf);
		}
	}
}

/* LOOKUP, DELETE, PIN, UNPIN: synchronous over a key list. */
static void
op_keys(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body)
{
	struct store *st = c->sh->st;
	const uint8_t *keys;
	uint64_t ns, t0 = clock_now_ns();
	uint8_t *resp;
	unsigned present = 0;

	if (wire_keys_decode(body, h->body_len, h->count, &ns, &keys) < 0) {
		srv_conn_drop(c);
		return;
	}
	ns = ns_of(c, ns);
	if (h->opcode == WIRE_OP_LOOKUP) {
		present = store_longest_prefix(st, ns, keys, h->count);
		if (h->flags & WIRE_F_PREFETCH)
			prefetch(c->sh, ns, keys, present);
		srv_reply(c, h, 0, h->count, present, NULL, 0);
		srv_metrics_op(c->sh->m, h->opcode, 0, clock_now_ns() - t0, 0, 0);
		return;
	}
	resp = malloc((size_t)h->count * 4);
	if (resp == NULL) {
		srv_reply(c, h, -ENOMEM, 0, 0, NULL, 0);
		return;
	}
	for (uint32_t i = 0; i < h->count; i++) {
		const uint8_t *k = keys + (size_t)i * WIRE_KEY_LEN;
		int rc;

		if (h->opcode == WIRE_OP_DELETE)
			rcache_drop(c->sh->rc, ns, k);
		rc = h->opcode == WIRE_OP_DELETE
			     ? store_delete(st, ns, k)
			     : store_pin(st, ns, k, h->opcode == WIRE_OP_PIN);

		put_le32(resp + 4 * i, (uint32_t)rc);
	}
	srv_reply(c, h, 0, h->count, 0, resp, (size_t)h->count * 4);
	srv_metrics_op(c->sh->m, h->opcode, 0, clock_now_ns() - t0, 0, 0);
	free(resp);
}

static void
op_stat(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body)
{
	struct store_stats s;
	uint64_t v[8];
	uint8_t resp[sizeof(v)];

	(void)body;
	store_get_stats(c->sh->st, &s);
	v[0] = s.puts;
	v[1] = s.gets;
	v[2] = s.hits;
	v[3] = s.misses;
	v[4] = s.index_blocks;
	v[5] = s.flash_bytes_written;
	v[6] = s.flash_bytes_read;
	v[7] = 0; /* payload bytes copied by the server: none on this path */
	for (unsigned i = 0; i < 8; i++)
		put_le64(resp + 8 * i, v[i]);
	srv_reply(c, h, 0, 8, 0, resp, sizeof(resp));
}

static const struct {
	op_fn fn;
	bool need_auth;
} op_table[WIRE_OP_MAX] = {
	[WIRE_OP_HELLO] = { op_hello, false },
	[WIRE_OP_AUTH] = { op_auth, false },
	[WIRE_OP_REG] = { op_reg, true },
	[WIRE_OP_DEREG] = { op_dereg, true },
	[WIRE_OP_PUT] = { op_xfer, true },
	[WIRE_OP_GET] = { op_xfer, true },
	[WIRE_OP_LOOKUP] = { op_keys, true },
	[WIRE_OP_DELETE] = { op_keys, true },
	[WIRE_OP_PIN] = { op_keys, true },
	[WIRE_OP_UNPIN] = { op_keys, true },
	[WIRE_OP_STAT] = { op_stat, true },
};
_Static_assert(sizeof(op_table) / sizeof(op_table[0]) == WIRE_OP_MAX,
	       "one entry per opcode");

void
srv_dispatch(struct srv_conn *c, const uint8_t *buf, size_t len)
{
	struct wire_hdr h;

	if (wire_msg_decode(buf, len, &h) < 0 || h.shard != c->sh->idx ||
	    h.opcode >= WIRE_OP_MAX || op_table[h.opcode].fn == NULL ||
	    (op_table[h.opcode].need_auth && c->state != CONN_AUTHED)) {
		log_info("ops", "protocol error from tenant '%s': dropped",
			 c->tenant_name);
		srv_conn_drop(c);
		return;
	}
	op_table[h.opcode].fn(c, &h, buf + WIRE_HDR_SIZE);
}
