/*
 * ops.c - gpucached's operations, one handler per opcode in a table
 * indexed by opcode. Runs on the shard thread.
 *
 * Trust: everything in a message is checked before use. Before AUTH
 * succeeds only HELLO and AUTH are accepted, and anything else drops the
 * connection. Client memory is never named on the wire: a PUT's bytes
 * come as its message's data part, and only a PUT may have one. The
 * tenant comes only from the authenticated connection and is folded into
 * every namespace, so tenants never alias.
 *
 * Data path (no payload copy on the server): PUT reserves the block's
 * place in the engine's write buffer and has UCX receive the data part
 * straight into it (by rendezvous: RDMA-read from client memory where the
 * transport can), then commits and answers; GET has the engine read the
 * block into an aligned buffer (or hand out its write-buffer bytes in
 * place) and sends them as the answer's data part from there.
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
		      const uint8_t *body, struct net_data *d);

/*
 * The engine's namespace: the tenant's class (srv_tenant_classes) in the
 * top 16 bits, for quotas; a hash of tenant name and client namespace
 * below, so tenants never alias.
 */
static uint64_t
ns_of(const struct srv_conn *c, uint64_t client_ns)
{
	uint64_t h = XXH3_64bits_withSeed(&client_ns, sizeof(client_ns),
					  c->ns_seed);

	return ((uint64_t)c->cls << 48) | (h & ((1ull << 48) - 1));
}

static const struct srv_config *
tenants(const struct srv_conn *c)
{
	return atomic_load(&c->sh->srv->tenants);
}

static void
op_hello(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body,
	 struct net_data *d)
{
	uint8_t resp[WIRE_NONCE_LEN + 16];
	const struct srv_config *cfg = tenants(c);

	(void)d; /* none: srv_dispatch refuses data parts here */
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
	put_le32(resp + WIRE_NONCE_LEN + 8,
		 WIRE_FEAT_GET_BATCH | WIRE_FEAT_PUT_BATCH);
	/* the daemon's own setting: a reload (SIGHUP) renews only the
	 * tenants of cfg */
	put_le32(resp + WIRE_NONCE_LEN + 12, c->sh->srv->cfg.put_piece);
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
op_auth(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body,
	 struct net_data *d)
{
	const struct srv_config *cfg = tenants(c);
	uint8_t want[AUTH_MAC_LEN];
	const struct srv_tenant *t;

	(void)d; /* none: srv_dispatch refuses data parts here */
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
	{
		uint16_t cls[SRV_MAX_TENANTS];

		srv_tenant_classes(cfg, cls);
		c->cls = cls[c->tenant]; /* fixed for the connection's life */
	}
	srv_reply(c, h, 0, 0, c->sh->srv->nsh, NULL, 0);
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

/* A connection has at most this long to authenticate
 * (server.client_timeout if shorter). */
#define SRV_AUTH_DEADLINE_NS (10ull * 1000000000ull)

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
 * A client that stops serving its side of a transfer (or vanishes
 * without its transport noticing) must not hold write-buffer space
 * forever: once a request has waited on its client (a PUT for its DATA,
 * a GET for its pieces to land) longer than server.client_timeout, the
 * connection is dropped, the transfer fails and its reservation is
 * abandoned. Waits on the daemon itself (room in the write buffer, flash)
 * do not count. A connection that has not authenticated in time goes
 * too. Run about once a second from the shard loop (now: its clock, read
 * once per round). Connections are marked first and dropped after the
 * walk: a drop ends requests, which would pull them out from under it.
 */
void
srv_sweep(struct srv_shard *sh, uint64_t now)
{
	uint64_t wait = (uint64_t)sh->srv->cfg.client_timeout_s * 1000000000ull;
	uint64_t auth = wait < SRV_AUTH_DEADLINE_NS ? wait
						    : SRV_AUTH_DEADLINE_NS;
	struct srv_conn *c, *next;
	bool any = false;

	if (now - sh->last_sweep < 1000000000ull)
		return;
	sh->last_sweep = now;
	for (struct srv_req *r = sh->all; r != NULL; r = r->anext) {
		if (r->c->dead || r->t_wait == 0 ||
		    now - r->t_wait < wait || r->c->doomed)
			continue;
		log_warn("ops", "tenant '%s': request %llu waited %u s on its "
			 "client: connection dropped", r->c->tenant_name,
			 (unsigned long long)r->h.req_id,
			 sh->srv->cfg.client_timeout_s);
		r->c->doomed = any = true;
	}
	for (c = sh->conns; c != NULL; c = c->next)
		if (!c->dead && c->state != CONN_AUTHED &&
		    now - c->t_open >= auth)
			c->doomed = any = true;
	for (c = any ? sh->conns : NULL; c != NULL; c = next) {
		next = c->next; /* the drop may free c */
		if (c->doomed && !c->dead)
			srv_conn_drop(c); /* its requests unwind */
	}
}

static void
tenant_ev(struct srv_req *r, enum srv_tenant_ev ev, uint64_t bytes)
{
	if (r->c->tenant >= 0)
		srv_metrics_tenant(r->c->sh->m, (unsigned)r->c->tenant, r->cns,
				   ev, 1, bytes);
}

/* Take r off its connection's list of PUTs taking DATA. */
static void
put_unlist(struct srv_req *r)
{
	struct srv_req **pp = &r->c->puts;

	while (*pp != NULL && *pp != r)
		pp = &(*pp)->cnext;
	if (*pp == r)
		*pp = r->cnext;
	r->cnext = NULL;
}

/* Let go of DATA pieces kept while a PUT waited for room. */
static void
pend_drop(struct srv_req *r)
{
	while (r->npend > 0)
		net_data_drop(r->pend[--r->npend]);
}

/*
 * A GET of several blocks (docs/protocol.md, GET batches): one request
 * per block, each found as a plain GET is; once every one is found (or
 * failed), their bytes go out together, and the blocks' requests end
 * when they have landed.
 */
struct srv_getv {
	struct srv_conn *c;
	struct wire_hdr h;
	uint32_t n, left;       /* blocks; those not yet found */
	unsigned tx;            /* pieces going out (+1 while sending) */
	int err;                /* a piece failed */
	uint8_t *st;            /* n x i32: each block's length or -errno */
	struct srv_req *r[];
};

static void getv_found(struct srv_req *r, int status);

/* A PUT of several blocks: one request per block, each one a plain PUT
 * (its DATA at its base in the batch's); the answer, every block's
 * status, goes once the last has ended. */
struct srv_putv {
	struct wire_hdr h;
	uint32_t n, left;
	uint64_t total;         /* bytes of all its blocks' DATA */
	uint8_t st[];           /* n x i32 */
};

/* Block r of its PUT batch is over with status; the last one answers. */
static void
putv_done(struct srv_req *r, int status)
{
	struct srv_putv *b = r->pv;

	put_le32(b->st + 4 * r->gi, (uint32_t)status);
	if (--b->left > 0)
		return;
	srv_reply(r->c, &b->h, 0, b->n, 0, b->st, 4 * b->n);
	free(b);
}

/*
 * The request is over with status (PUT: 0 or -errno; GET: the block's
 * length or -errno): give back what it holds, answer, count, let go.
 */
static void
req_end(struct srv_req *r, int status)
{
	struct srv_conn *c = r->c;
	struct srv_shard *sh = c->sh;
	bool put = r->h.opcode == WIRE_OP_PUT;
	uint64_t bytes = status > 0 ? (uint64_t)status : 0;

	if (r->gv != NULL && !r->gv_over) { /* its batch goes on */
		getv_found(r, status);
		return;
	}
	if (put) {
		put_unlist(r);
		pend_drop(r);
	}
	if (r->ce != NULL)
		rcache_unpin(sh->rc, r->ce);
	store_get_zc_release(sh->st, r->ref);
	rbuf_put(r->rbuf, r->rcap);
	if (put && status == 0)
		bytes = r->blk.len;
	if (r->pv != NULL)
		putv_done(r, status);
	else if (r->gv == NULL && !(r->answered && status >= 0))
		srv_reply(c, &r->h, status, 1, 0, NULL, 0); /* a failure after
							      * all is told */
	srv_metrics_op(sh->m, r->h.opcode, status < 0 ? status : 0,
		       clock_now_ns() - r->t0, put ? bytes : 0, put ? 0 : bytes);
	if (put && status == 0)
		tenant_ev(r, SRV_TENANT_PUT, bytes);
	else if (!put)
		tenant_ev(r, status >= 0 ? SRV_TENANT_HIT : SRV_TENANT_MISS,
			  bytes);
	req_unlink(sh, r);
	free(r);
	sh->inflight--;
	if (--c->inflight == 0 && c->dead)
		srv_conn_drop(c);
}

static void
commit_cb(void *arg, int rc)
{
	req_end(arg, rc);
}

/*
 * A reserved PUT goes on once nothing is landing: failed, it gives the
 * space back; with every byte in, it publishes the block.
 */
static void
put_check(struct srv_req *r)
{
	struct store *st = r->c->sh->st;
	int rc;

	if (r->state != PUT_RESERVED || r->rx > 0)
		return;
	if (r->err == 0 && r->announced < r->blk.len)
		return; /* more DATA to come */
	r->state = PUT_DONE;
	r->t_wait = 0; /* the engine's turn */
	put_unlist(r); /* late DATA for it is dropped */
	if (r->err < 0) { /* the client went away mid-transfer */
		store_put_abort(st, &r->resv);
		req_end(r, r->err);
		return;
	}
	rcache_drop(r->c->sh->rc, r->blk.ns, r->blk.key); /* stale from now */
	rc = store_put_commit(st, &r->resv, (r->h.flags & WIRE_F_DURABLE) ?
				      STORE_PUT_DURABLE : 0, commit_cb, r);
	if (rc < 0)
		req_end(r, rc);
}

/*
 * A DATA piece has landed (or failed). Its bytes are checksummed now,
 * while they are still in this CPU's caches, not at commit from memory
 * (docs/benchmarks.md, "Checksums as pieces land").
 */
static void
put_rx_cb(void *arg, int rc)
{
	struct srv_land *l = arg;
	struct srv_req *r = l->r;

	if (l - r->land < SRV_LAND)
		r->land_busy &= (uint16_t)~(1u << (l - r->land));
	r->rx--;
	if (rc < 0 && r->err == 0)
		r->err = rc;
	if (rc == 0 && r->err == 0 && !r->land_lost) {
		rc = store_put_landed(r->c->sh->st, &r->resv, l->off, l->len);
		if (rc < 0) /* a piece outside the block: op_data let none by */
			r->err = rc;
	}
	put_check(r);
}

/* Have UCX receive a DATA piece at off straight into the reservation. */
static void
put_rx(struct srv_req *r, struct net_data *d, uint64_t off)
{
	struct iovec sl[STORE_RESV_MAXIOV];
	size_t len = net_data_len(d);
	int n = net_iov_slice(r->resv.iov, r->resv.iovcnt, off, len, sl,
			      STORE_RESV_MAXIOV);
	struct srv_land *l;
	int rc;

	if (n < 0 || r->err < 0) {
		net_data_drop(d); /* kept ones; a fresh one UCX drops */
		if (r->err == 0)
			r->err = -EIO;
		return;
	}
	/* a slot saying where the piece goes; past SRV_LAND landing at
	 * once, the shared last one, and the commit checksums the whole
	 * block instead */
	_Static_assert(SRV_LAND == 16, "land_busy has a bit per slot");
	if (r->land_busy == UINT16_MAX) {
		r->land_lost = true;
		l = &r->land[SRV_LAND];
		l->r = r;
	} else {
		l = &r->land[__builtin_ctz(~(unsigned)r->land_busy)];
		*l = (struct srv_land){ r, (uint32_t)off, (uint32_t)len };
		r->land_busy |= (uint16_t)(1u << (l - r->land));
	}
	r->rx++;
	rc = net_data_recv_nb(d, sl, (unsigned)n, put_rx_cb, l);
	if (rc < 0) {
		r->rx--;
		if (l - r->land < SRV_LAND)
			r->land_busy &= (uint16_t)~(1u << (l - r->land));
		if (r->err == 0)
			r->err = rc;
	}
}

/* A skipped PUT is answered once all its DATA has come (and gone). */
static void
put_skip_check(struct srv_req *r)
{
	if (r->announced == r->blk.len)
		req_end(r, 0);
}

/*
 * Reserve the block's place in the write buffer; the DATA that came
 * meanwhile goes straight in. Returns -EAGAIN while there is no room.
 */
static int
put_start(struct srv_req *r)
{
	struct store *st = r->c->sh->st;
	int rc;

	if (r->c->dead) {
		req_end(r, -ECONNRESET);
		return 0;
	}
	if (!r->checked && (r->checked = true) &&
	    store_put_check(st, r->blk.ns, r->blk.key, r->blk.len,
			    ((r->h.flags & WIRE_F_DURABLE) ? STORE_PUT_DURABLE
							   : 0) |
			    ((r->h.flags & WIRE_F_IF_ABSENT) ? STORE_PUT_IF_ABSENT
							     : 0)) > 0) {
		r->state = PUT_SKIP;
		r->t_wait = clock_now_ns(); /* it waits for its client now */
		pend_drop(r);
		put_skip_check(r);
		return 0;
	}
	rc = store_put_reserve(st, r->blk.ns, r->blk.key, (uint32_t)r->blk.len,
			       &r->resv);
	if (rc == -EAGAIN)
		return rc;
	if (rc < 0) {
		req_end(r, rc);
		return 0;
	}
	r->state = PUT_RESERVED;
	r->resv.hint = r->hint;
	r->t_wait = clock_now_ns(); /* from now on it waits for its client */
	for (unsigned i = 0; i < r->npend; i++)
		put_rx(r, r->pend[i], r->pend_off[i]);
	r->npend = 0;
	put_check(r);
	return 0;
}

/* r waits for room behind those already waiting. */
static void
retry_push(struct srv_shard *sh, struct srv_req *r)
{
	r->link = NULL;
	if (sh->retry == NULL)
		sh->retry = r;
	else
		sh->retry_tail->link = r;
	sh->retry_tail = r;
}

/* Start the PUTs waiting for room, oldest first, up to the first that
 * still finds none: the rest wait behind it, in order, so a batch's
 * blocks keep their order in the log (a chain's parents before their
 * children) and no PUT is overtaken by newer ones, not even by smaller
 * ones that would fit the open segment's end. */
void
srv_retry(struct srv_shard *sh)
{
	struct srv_req *list = sh->retry, *r;
	bool blocked = false;

	sh->retry = sh->retry_tail = NULL;
	while ((r = list) != NULL) {
		list = r->link;
		if (blocked || put_start(r) == -EAGAIN) {
			retry_push(sh, r);
			blocked = true;
		}
	}
}

/*
 * The connection is gone: PUTs still waiting for DATA will get none.
 * Those landing bytes fail with their receives, those waiting for room
 * at their next retry; the kept pieces go back to UCX now.
 */
void
srv_conn_puts_fail(struct srv_conn *c)
{
	struct srv_req *r = c->puts, *next;

	for (; r != NULL; r = next) {
		next = r->cnext;
		pend_drop(r);
		if (r->state == PUT_SKIP) { /* ended by put_start, as dead */
			retry_push(c->sh, r);
			continue;
		}
		if (r->state != PUT_RESERVED)
			continue;
		if (r->err == 0)
			r->err = -ECONNRESET;
		put_check(r);
	}
}

/* DATA from the client: the next piece of one of its PUTs. */
static void
op_data(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body,
	struct net_data *d)
{
	struct srv_req *r = c->puts, *batch = NULL;
	struct wire_hdr hl = *h;
	size_t n;

	(void)body;
	/* the PUT, or in a batch the block whose bytes start at or before
	 * aux and run past it (one that has ended already is not found:
	 * its DATA is dropped, as a plain PUT's is) */
	for (; r != NULL; r = r->cnext) {
		if (r->h.req_id != h->req_id)
			continue;
		if (r->pv == NULL ||
		    (h->aux >= r->base && h->aux - r->base < r->blk.len))
			break;
		batch = r;
	}
	if (r != NULL) {
		hl.aux -= r->base; /* from here on, as a plain PUT's */
		h = &hl;
	}
	if (d == NULL || h->body_len != 0 ||
	    (r == NULL && batch != NULL && h->aux >= batch->pv->total)) {
		/* past a batch's last byte is inside no block: its blocks
		 * would wait for server.client_timeout */
		srv_conn_drop(c);
		return;
	}
	if (r == NULL)
		return; /* its PUT was answered already (BUSY...): dropped */
	n = net_data_len(d);
	if (!net_data_rndv(d) || h->aux != r->announced ||
	    n > r->blk.len - r->announced) {
		/* inline bytes would need a copy; pieces out of order, or
		 * more than announced, are a broken client */
		srv_conn_drop(c);
		return;
	}
	r->announced += n;
	if (r->state == PUT_SKIP) {
		net_data_drop(d);
		put_skip_check(r);
		return;
	}
	if (r->state == PUT_RESERVED) {
		put_rx(r, d, h->aux);
		put_check(r);
		return;
	}
	if (r->npend == WIRE_MAX_IOV ||
	    (r->pend[r->npend] = net_data_keep(d)) == NULL) {
		srv_conn_drop(c);
		return;
	}
	r->pend_off[r->npend++] = h->aux;
}

/* The GET's pieces are at the client (or failed): done. */
static void
get_tx_cb(void *arg, int rc)
{
	struct srv_req *r = arg;

	if (rc < 0 && r->err == 0)
		r->err = rc;
	if (--r->tx == 0)
		req_end(r, r->err < 0 ? r->err : (int)r->len);
}

/*
 * Send the block as DATA pieces straight from where it is. The last piece
 * is the answer too (count 1, status = the block's length): the client
 * is done once it has landed, and no answer of its own follows unless a
 * piece fails.
 */
static void
get_send(struct srv_req *r, const struct iovec *iov, unsigned n)
{
	struct srv_conn *c = r->c;
	uint8_t hb[WIRE_HDR_SIZE];
	struct wire_hdr h = { .opcode = WIRE_OP_DATA | WIRE_OP_RESP,
			      .req_id = r->h.req_id, .shard = c->sh->idx };
	uint64_t off = 0;
	unsigned last = n;

	if (r->len > r->blk.len) { /* the client has no room for it */
		req_end(r, -ENOBUFS);
		return;
	}
	if (r->gv != NULL) { /* its batch sends it, with the others */
		r->at.n = 0;
		for (unsigned i = 0; i < n; i++) {
			if (iov[i].iov_len == 0)
				continue;
			if (r->at.n == STORE_RESV_MAXIOV) {
				req_end(r, -EIO);
				return;
			}
			r->at.iov[r->at.n++] = iov[i];
		}
		getv_found(r, (int)r->len);
		return;
	}
	while (last > 0 && iov[last - 1].iov_len == 0)
		last--;
	h.body_crc = wire_body_crc(NULL, 0);
	r->t_wait = clock_now_ns(); /* the pieces wait for the client */
	r->tx = 1; /* held while the pieces go out */
	for (unsigned i = 0; i < last && r->err == 0; i++) {
		int rc = -ECONNRESET;

		if (iov[i].iov_len == 0)
			continue;
		h.aux = off;
		h.count = i + 1 == last;
		h.status = h.count ? (int32_t)r->len : 0;
		wire_hdr_encode(&h, hb);
		if (!c->dead)
			rc = net_send_data_nb(c->ep, NET_AM_TO_CLIENT, hb,
					      sizeof(hb), iov[i].iov_base,
					      iov[i].iov_len, get_tx_cb, r);
		if (rc < 0) {
			r->err = rc;
		} else {
			r->tx++;
			r->answered |= h.count != 0;
		}
		off += iov[i].iov_len;
	}
	get_tx_cb(r, 0);
}

/* The batch is over (its pieces landed, or failed with err): answer a
 * failure, then end every block's request, each with its own status. */
static void
getv_end(struct srv_getv *b, int err)
{
	if (err < 0)
		srv_reply(b->c, &b->h, err, b->n, 0, NULL, 0);
	for (uint32_t i = 0; i < b->n; i++) {
		struct srv_req *r = b->r[i];

		if (r == NULL) /* not started: no room, or no memory */
			continue;
		r->gv_over = true;
		req_end(r, err < 0 ? err : (int32_t)get_le32(b->st + 4 * i));
	}
	free(b);
}

static void
getv_tx_cb(void *arg, int rc)
{
	struct srv_getv *b = arg;

	if (rc < 0 && b->err == 0)
		b->err = rc;
	if (--b->tx == 0)
		getv_end(b, b->err);
}

/* One DATA piece of the batch's answer: the found blocks' bytes from
 * offset off, with the statuses as its body. */
static int
getv_piece(struct srv_getv *b, uint64_t off, bool last, uint64_t total,
	   const struct iovec *iov, unsigned n)
{
	uint8_t msg[WIRE_HDR_SIZE + 4 * WIRE_MAX_XFER];
	struct wire_hdr h = { .opcode = WIRE_OP_DATA | WIRE_OP_RESP,
			      .req_id = b->h.req_id, .shard = b->c->sh->idx,
			      .aux = off, .body_len = 4 * b->n,
			      .count = last ? b->n : 0,
			      .status = last ? (int32_t)total : 0 };
	int rc;

	if (b->c->dead)
		return -ECONNRESET;
	h.body_crc = wire_body_crc(b->st, 4 * b->n);
	wire_hdr_encode(&h, msg);
	memcpy(msg + WIRE_HDR_SIZE, b->st, 4 * b->n);
	rc = n == 1 ? net_send_data_nb(b->c->ep, NET_AM_TO_CLIENT, msg,
				       WIRE_HDR_SIZE + 4 * b->n,
				       iov[0].iov_base, iov[0].iov_len,
				       getv_tx_cb, b)
		    : net_send_datav_nb(b->c->ep, NET_AM_TO_CLIENT, msg,
					WIRE_HDR_SIZE + 4 * b->n, iov, n,
					getv_tx_cb, b);
	if (rc == 0)
		b->tx++;
	return rc;
}

/*
 * Every block of the batch is found: their bytes go out, one after
 * another, as one message where the connection sends iovecs (net.h),
 * else a piece per place they lie; with none found, the statuses alone.
 */
static void
getv_send(struct srv_getv *b)
{
	uint64_t total = 0, off = 0, now = clock_now_ns();
	struct iovec *iov;
	unsigned n = 0, sent = 0;

	for (uint32_t i = 0; i < b->n; i++)
		if ((int32_t)get_le32(b->st + 4 * i) > 0)
			n += b->r[i]->at.n;
	if (n == 0 || b->c->dead) {
		if (!b->c->dead)
			srv_reply(b->c, &b->h, 0, b->n, 0, b->st, 4 * b->n);
		getv_end(b, b->c->dead ? -ECONNRESET : 0);
		return;
	}
	iov = malloc(n * sizeof(*iov));
	if (iov == NULL) {
		getv_end(b, -ENOMEM);
		return;
	}
	for (uint32_t i = 0; i < b->n; i++) {
		struct srv_req *r = b->r[i];

		if ((int32_t)get_le32(b->st + 4 * i) <= 0)
			continue;
		r->t_wait = now; /* the pieces wait for the client */
		for (unsigned j = 0; j < r->at.n; j++) {
			iov[sent++] = r->at.iov[j];
			total += r->at.iov[j].iov_len;
		}
	}
	b->tx = 1; /* held while the pieces go out */
	if (net_ep_sends_iov(b->c->ep, total)) {
		if (getv_piece(b, 0, true, total, iov, n) < 0)
			b->err = -ECONNRESET;
	} else {
		for (unsigned j = 0; j < n && b->err == 0; j++) {
			if (getv_piece(b, off, j + 1 == n, total, &iov[j], 1) < 0)
				b->err = -ECONNRESET;
			off += iov[j].iov_len;
		}
	}
	free(iov);
	getv_tx_cb(b, 0);
}

/* Block r of its batch is found (status: its length) or failed. */
static void
getv_found(struct srv_req *r, int status)
{
	struct srv_getv *b = r->gv;

	put_le32(b->st + 4 * r->gi, (uint32_t)status);
	if (status <= 0)
		r->at.n = 0;
	if (--b->left == 0)
		getv_send(b);
}

static void
get_data_cb(void *arg, int rc, const struct iovec *iov, unsigned n,
	    struct store_zc_ref *ref)
{
	struct srv_req *r = arg;

	r->ref = ref;
	if (rc < 0) {
		req_end(r, rc);
		return;
	}
	r->len = (uint32_t)rc;
	get_send(r, iov, n);
}

/* The GET from wherever the store has the block, through a read buffer
 * of ours when that is flash. */
static void
get_plain(struct srv_req *r)
{
	struct srv_shard *sh = r->c->sh;
	size_t cap;
	int rc;

	cap = (r->blk.len + STORE_IO_ALIGN - 1) & ~(size_t)(STORE_IO_ALIGN - 1);
	r->rbuf = rbuf_get(cap, &r->rcap);
	if (r->rbuf == NULL) {
		req_end(r, -ENOMEM);
		return;
	}
	rc = store_get_zc_submit(sh->st, r->blk.ns, r->blk.key, r->rbuf,
				 r->rcap, get_data_cb, r);
	if (rc < 0)
		req_end(r, rc);
}

/* A promotion's flash read is done: the block stays in the read cache,
 * and this GET is served from there. */
static void
promote_cb(void *arg, int rc, const struct iovec *iov, unsigned n,
	   struct store_zc_ref *ref)
{
	struct srv_req *r = arg;
	struct srv_shard *sh = r->c->sh;
	struct rcache_ent *e = r->pe;
	const uint8_t *data;
	uint32_t len;

	r->pe = NULL;
	if (rc < 0 || n != 1 || iov[0].iov_base != rcache_buf(e)) {
		/* failed, or not read from flash after all: a plain GET's */
		rcache_fail(sh->rc, e);
		get_data_cb(r, rc, iov, n, ref);
		return;
	}
	store_get_zc_release(sh->st, ref);
	if (!rcache_ready(sh->rc, e, (uint32_t)rc)) {
		get_plain(r); /* a PUT or DELETE of the key came meanwhile */
		return;
	}
	rcache_pin(sh->rc, e, &data, &len);
	r->ce = e;
	r->len = len;
	get_send(r, &(struct iovec){ (void *)data, len }, 1);
}

/*
 * A GET: from the read cache if the block is there (a DRAM hit, which
 * the store's policy counts as a read); else, if it is on flash and was
 * read before (its CLOCK bit: read since written, or since reclaim kept
 * it), read into the read cache, a promotion, so that the reads after it
 * find it in DRAM (one-time reads never displace what is there); else
 * from the store as it is.
 */
static void
get_start(struct srv_req *r)
{
	struct srv_shard *sh = r->c->sh;
	const uint8_t *data;
	uint32_t len;
	bool hot = false;
	long room;

	if (!store_touch(sh->st, r->blk.ns, r->blk.key, &hot)) /* expired */
		rcache_drop(sh->rc, r->blk.ns, r->blk.key);
	r->ce = rcache_get(sh->rc, r->blk.ns, r->blk.key, &data, &len);
	if (r->ce != NULL) { /* prefetched or promoted: from DRAM */
		struct iovec v = { (void *)data, len };

		r->len = len;
		get_send(r, &v, 1);
		return;
	}
	if (hot && !store_block_buffered(sh->st, r->blk.ns, r->blk.key) &&
	    (room = store_block_room(sh->st, r->blk.ns, r->blk.key)) > 0 &&
	    (r->pe = rcache_load(sh->rc, r->blk.ns, r->blk.key,
				 (uint32_t)room)) != NULL) {
		if (store_get_zc_submit(sh->st, r->blk.ns, r->blk.key,
					rcache_buf(r->pe), (size_t)room,
					promote_cb, r) == 0)
			return;
		rcache_fail(sh->rc, r->pe);
		r->pe = NULL;
	}
	get_plain(r);
}

_Static_assert(WIRE_PRIO_LOW == STORE_PRIO_LOW &&
		       WIRE_PRIO_HIGH == STORE_PRIO_HIGH &&
		       WIRE_PRIO_NORMAL == STORE_PRIO_NORMAL &&
		       WIRE_MAX_TTL == STORE_MAX_TTL,
	       "a PUT's hints go to the store as they are");

/* n blocks of a PUT or GET that end with status without starting: each
 * counts as a request, as each started block does at its end. */
static void
refused_count(struct srv_shard *sh, unsigned op, int status, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		srv_metrics_op(sh->m, op, status, 0, 0, 0);
}

/* A PUT's or GET's n blocks answered status, none started. */
static void
xfer_refuse(struct srv_conn *c, const struct wire_hdr *h, int status,
	    uint32_t n)
{
	srv_reply(c, h, status, n, 0, NULL, 0);
	refused_count(c->sh, h->opcode, status, n);
}

/*
 * How many of a batch's n blocks may start now: as many as the
 * connection's and the shard's in-flight limits have room for (the
 * rest are answered BUSY in the batch's statuses and sent again by the
 * client), so that a batch larger than the room left, or than a small
 * max_inflight_conn, still goes on; none while the shard drains.
 */
static uint32_t
batch_room(const struct srv_conn *c, uint32_t n)
{
	const struct srv_shard *sh = c->sh;
	const struct srv_config *cfg = &sh->srv->cfg;
	uint32_t room = n;

	if (sh->draining || c->inflight >= cfg->max_inflight_conn ||
	    sh->inflight >= cfg->max_inflight_shard)
		return 0;
	if (cfg->max_inflight_conn - c->inflight < room)
		room = cfg->max_inflight_conn - c->inflight;
	if (cfg->max_inflight_shard - sh->inflight < room)
		room = cfg->max_inflight_shard - sh->inflight;
	return room;
}

/*
 * A GET of several blocks: a request per block, started as a plain GET;
 * each counts against the in-flight limits. The batch holds one count of
 * its own on left until all are started, so that blocks found at once
 * do not send it early.
 */
static void
op_getv(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body)
{
	struct srv_shard *sh = c->sh;
	struct wire_blk blk[WIRE_MAX_XFER];
	uint32_t n = h->count, adm;
	struct srv_getv *b;
	uint64_t now = clock_now_ns(), caps = 0;

	if (wire_blkv_decode(body, h->body_len, n, blk) < 0) {
		srv_conn_drop(c);
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		caps += blk[i].len;
	if (caps > INT32_MAX) { /* the answer's status could not count it */
		xfer_refuse(c, h, -GPC_ETOOBIG, n);
		return;
	}
	adm = batch_room(c, n);
	if (adm == 0) {
		xfer_refuse(c, h, -GPC_EBUSY, n);
		return;
	}
	b = calloc(1, sizeof(*b) + n * sizeof(b->r[0]) + 4 * (size_t)n);
	if (b == NULL) {
		xfer_refuse(c, h, -ENOMEM, n);
		return;
	}
	b->c = c;
	b->h = *h;
	b->n = n;
	b->st = (uint8_t *)&b->r[n];
	for (uint32_t i = adm; i < n; i++) /* no room for them now */
		put_le32(b->st + 4 * i, (uint32_t)-GPC_EBUSY);
	refused_count(sh, h->opcode, -GPC_EBUSY, n - adm);
	for (uint32_t i = 0; i < adm; i++) {
		struct srv_req *r = calloc(1, sizeof(*r));

		if (r == NULL) { /* those made so far end, the batch fails */
			refused_count(sh, h->opcode, -ENOMEM, adm - i);
			getv_end(b, -ENOMEM);
			return;
		}
		*r = (struct srv_req){ .c = c, .h = *h, .blk = blk[i],
				       .cns = blk[i].ns, .t0 = now, .gv = b,
				       .gi = i };
		r->blk.ns = ns_of(c, blk[i].ns);
		b->r[i] = r;
		c->inflight++;
		sh->inflight++;
		req_link(sh, r);
	}
	b->left = adm + 1;
	for (uint32_t i = 0; i < adm; i++)
		get_start(b->r[i]);
	if (--b->left == 0)
		getv_send(b);
}

/*
 * A PUT of several blocks: a request per block, each a plain PUT whose
 * DATA starts at its base in the batch's, started in order (so that they
 * keep their order in the log, as a chain's blocks must); each counts
 * against the in-flight limits, and the last to end answers for all.
 */
static void
op_putv(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body)
{
	struct srv_shard *sh = c->sh;
	struct wire_blk blk[WIRE_MAX_XFER];
	struct srv_req *r[WIRE_MAX_XFER];
	struct wire_put_hint hint = { 0 };
	uint32_t n = h->count, adm;
	struct srv_putv *b;
	uint64_t now = clock_now_ns(), base = 0;

	if (wire_blkv_decode(body, h->body_len, n, blk) < 0) {
		srv_conn_drop(c);
		return;
	}
	if (wire_put_hint_decode(h, &hint) < 0) {
		xfer_refuse(c, h, -EINVAL, n);
		return; /* a TTL or priority out of range; DATA is dropped */
	}
	adm = batch_room(c, n);
	if (adm == 0) {
		xfer_refuse(c, h, -GPC_EBUSY, n);
		return; /* its DATA finds no PUT and is dropped */
	}
	b = calloc(1, sizeof(*b) + 4 * (size_t)n);
	for (uint32_t i = 0; i < adm; i++)
		r[i] = b != NULL ? calloc(1, sizeof(*r[i])) : NULL;
	for (uint32_t i = 0; i < adm; i++)
		if (r[i] == NULL) {
			for (uint32_t j = 0; j < adm; j++)
				free(r[j]);
			free(b);
			xfer_refuse(c, h, -ENOMEM, n);
			return;
		}
	b->h = *h;
	b->n = n;
	b->left = adm;
	for (uint32_t i = 0; i < n; i++)
		b->total += blk[i].len;
	/* no room for the rest now: BUSY, their DATA finds no PUT */
	for (uint32_t i = adm; i < n; i++)
		put_le32(b->st + 4 * i, (uint32_t)-GPC_EBUSY);
	refused_count(sh, h->opcode, -GPC_EBUSY, n - adm);
	for (uint32_t i = 0; i < n; i++) {
		if (i >= adm) {
			base += blk[i].len;
			continue;
		}
		*r[i] = (struct srv_req){
			.c = c, .h = *h, .blk = blk[i], .cns = blk[i].ns,
			.t0 = now, .pv = b, .gi = i, .base = base,
			.hint = { .ttl_s = hint.ttl_s, .prio = hint.prio } };
		r[i]->blk.ns = ns_of(c, blk[i].ns);
		base += blk[i].len;
		c->inflight++;
		sh->inflight++;
		req_link(sh, r[i]);
		r[i]->cnext = c->puts; /* takes DATA from now on */
		c->puts = r[i];
	}
	/* behind PUTs already waiting for room, never ahead of them; a
	 * block may end at once (and the batch with its last): r[i] is
	 * not touched after its start */
	for (uint32_t i = 0; i < adm; i++)
		if (sh->retry != NULL || put_start(r[i]) == -EAGAIN)
			retry_push(sh, r[i]);
}

/* PUT and GET: one block each, or several (op_getv, op_putv); a PUT's
 * bytes follow as DATA. */
static void
op_xfer(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body,
	struct net_data *d)
{
	struct srv_shard *sh = c->sh;
	struct wire_put_hint hint = { 0 };
	struct wire_blk blk;
	struct srv_req *r;

	(void)d; /* none: srv_dispatch refuses data parts here */
	if (h->opcode == WIRE_OP_GET && h->count > 1) {
		op_getv(c, h, body);
		return;
	}
	if (h->opcode == WIRE_OP_PUT && h->count > 1) {
		op_putv(c, h, body);
		return;
	}
	if (h->count != 1 || wire_blk_decode(body, h->body_len, &blk) < 0) {
		srv_conn_drop(c);
		return;
	}
	if (h->opcode == WIRE_OP_PUT && wire_put_hint_decode(h, &hint) < 0) {
		xfer_refuse(c, h, -EINVAL, 1);
		return; /* a TTL or priority out of range; DATA is dropped */
	}
	if (batch_room(c, 1) == 0) {
		xfer_refuse(c, h, -GPC_EBUSY, 1);
		return; /* its DATA, if any, finds no PUT and is dropped */
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		xfer_refuse(c, h, -ENOMEM, 1);
		return;
	}
	r->c = c;
	r->h = *h;
	r->blk = blk;
	r->cns = blk.ns;
	r->blk.ns = ns_of(c, blk.ns);
	r->hint = (struct store_hint){ .ttl_s = hint.ttl_s, .prio = hint.prio };
	r->t0 = clock_now_ns();
	c->inflight++;
	sh->inflight++;
	req_link(sh, r);
	if (h->opcode == WIRE_OP_GET) {
		get_start(r);
		return;
	}
	r->cnext = c->puts; /* takes DATA from now on */
	c->puts = r;
	/* behind PUTs already waiting for room, never ahead of them */
	if (sh->retry != NULL || put_start(r) == -EAGAIN)
		retry_push(sh, r);
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
op_keys(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body,
	 struct net_data *d)
{
	struct store *st = c->sh->st;
	const uint8_t *keys;
	uint64_t ns, cns, t0 = clock_now_ns();
	uint8_t *resp;
	unsigned present = 0;

	(void)d; /* none: srv_dispatch refuses data parts here */
	if (wire_keys_decode(body, h->body_len, h->count, &ns, &keys) < 0) {
		srv_conn_drop(c);
		return;
	}
	cns = ns;
	ns = ns_of(c, ns);
	if (h->opcode == WIRE_OP_LOOKUP) {
		struct policy_reuse ru = { 0 };

		present = store_lookup_part(st, ns, keys, h->count,
					    (h->flags & WIRE_F_CHAIN_END) != 0,
					    &ru);
		if (c->tenant >= 0)
			srv_metrics_tenant_lookup(c->sh->m, (unsigned)c->tenant,
						  cns, h->count, present, &ru);
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
		if (rc == -EAGAIN) /* no room for the tombstone or pin marker
					* just now */
			rc = -GPC_EBUSY;

		put_le32(resp + 4 * i, (uint32_t)rc);
	}
	srv_reply(c, h, 0, h->count, 0, resp, (size_t)h->count * 4);
	srv_metrics_op(c->sh->m, h->opcode, 0, clock_now_ns() - t0, 0, 0);
	free(resp);
}

/* The calling tenant's own counters on this shard: nothing of other
 * tenants' activity shows (docs/protocol.md). */
static void
op_stat(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body,
	struct net_data *d)
{
	struct srv_tenant_counts t;
	uint64_t v[8];
	uint8_t resp[sizeof(v)];

	(void)d; /* none: srv_dispatch refuses data parts here */
	(void)body;
	srv_metrics_tenant_read(c->sh->m, c->tenant >= 0 ? (unsigned)c->tenant
							 : UINT32_MAX, &t);
	v[0] = t.puts;
	v[1] = t.hits + t.misses;
	v[2] = t.hits;
	v[3] = t.misses;
	v[4] = t.usage;
	v[5] = t.stored;
	v[6] = t.served;
	v[7] = 0; /* payload bytes copied by the server: none, by design */
	for (unsigned i = 0; i < 8; i++)
		put_le64(resp + 8 * i, v[i]);
	srv_reply(c, h, 0, 8, 0, resp, sizeof(resp));
}

/* SUBSCRIBE: u64 ns; KV events of the namespace follow as EVENTs. */
static void
op_subscribe(struct srv_conn *c, const struct wire_hdr *h,
	     const uint8_t *body, struct net_data *d)
{
	uint64_t client_ns;

	(void)d; /* none: srv_dispatch refuses data parts here */
	if (h->body_len != 8) {
		srv_conn_drop(c);
		return;
	}
	client_ns = get_le64(body);
	srv_reply(c, h, srv_events_subscribe(c, client_ns, ns_of(c, client_ns)),
		  0, 0, NULL, 0);
	srv_metrics_op(c->sh->m, h->opcode, 0, 0, 0, 0);
}

/* USED: u64 ns, u64 n: the tenant's engine used n blocks it fetched;
 * counted per tenant (the funnel's last stage, docs/metrics.md). */
static void
op_used(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body,
	struct net_data *d)
{
	uint64_t ns, n;
	int rc;

	(void)d; /* none: srv_dispatch refuses data parts here */
	rc = wire_used_decode(body, h->body_len, &ns, &n);
	if (rc == -GPC_ECORRUPT) {
		srv_conn_drop(c);
		return;
	}
	if (rc == 0 && c->tenant >= 0)
		srv_metrics_tenant_used(c->sh->m, (unsigned)c->tenant, ns, n);
	srv_reply(c, h, rc, 0, 0, NULL, 0);
	srv_metrics_op(c->sh->m, h->opcode, rc, 0, 0, 0);
}

/* WEIGHT: u64 ns, u64 w: the namespace's weight on this shard's store
 * (docs/cache-policy.md); the client sends it to every shard. */
static void
op_weight(struct srv_conn *c, const struct wire_hdr *h, const uint8_t *body,
	  struct net_data *d)
{
	uint64_t ns;
	unsigned w;
	int rc;

	(void)d; /* none: srv_dispatch refuses data parts here */
	rc = wire_weight_decode(body, h->body_len, &ns, &w);
	if (rc == -GPC_ECORRUPT) {
		srv_conn_drop(c);
		return;
	}
	if (rc == 0)
		rc = store_set_ns_weight(c->sh->st, ns_of(c, ns), w);
	srv_reply(c, h, rc, 0, 0, NULL, 0);
	srv_metrics_op(c->sh->m, h->opcode, rc, 0, 0, 0);
}
_Static_assert(WIRE_MAX_WEIGHT == STORE_MAX_WEIGHT, "weights agree");

static const struct {
	op_fn fn;
	bool need_auth;
} op_table[WIRE_OP_MAX] = {
	[WIRE_OP_HELLO] = { op_hello, false },
	[WIRE_OP_AUTH] = { op_auth, false },
	[WIRE_OP_PUT] = { op_xfer, true },
	[WIRE_OP_GET] = { op_xfer, true },
	[WIRE_OP_LOOKUP] = { op_keys, true },
	[WIRE_OP_DELETE] = { op_keys, true },
	[WIRE_OP_PIN] = { op_keys, true },
	[WIRE_OP_UNPIN] = { op_keys, true },
	[WIRE_OP_STAT] = { op_stat, true },
	[WIRE_OP_DATA] = { op_data, true },
	[WIRE_OP_SUBSCRIBE] = { op_subscribe, true },
	[WIRE_OP_USED] = { op_used, true },
	[WIRE_OP_WEIGHT] = { op_weight, true },
	/* WIRE_OP_EVENT goes to clients only: NULL, a peer sending it is
	 * dropped like any unknown opcode */
};
_Static_assert(sizeof(op_table) / sizeof(op_table[0]) == WIRE_OP_MAX,
	       "one entry per opcode");

void
srv_dispatch(struct srv_conn *c, const uint8_t *buf, size_t len,
	     struct net_data *d)
{
	struct wire_hdr h;

	if (wire_msg_decode(buf, len, &h) < 0 || h.shard != c->sh->idx ||
	    h.opcode >= WIRE_OP_MAX || op_table[h.opcode].fn == NULL ||
	    (op_table[h.opcode].need_auth && c->state != CONN_AUTHED) ||
	    (d != NULL) != (h.opcode == WIRE_OP_DATA)) {
		log_info("ops", "protocol error from tenant '%s': dropped",
			 c->tenant_name);
		srv_conn_drop(c);
		return;
	}
	op_table[h.opcode].fn(c, &h, buf + WIRE_HDR_SIZE, d);
}
