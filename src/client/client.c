/*
 * client.c - libgpucache: connection set-up (HELLO/AUTH on every shard),
 * request bookkeeping and the answers' parsing. Batch operations are in
 * client_ops.c.
 *
 * Threads: every public entry point takes c->mu; completion is driven by
 * whichever thread waits, with the lock released between rounds so other
 * threads can submit meanwhile. Server answers are matched to requests by
 * request id and checked (CRCs, counts, shard) before anything is written
 * to the caller's blocks.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/hash.h"
#include "net/auth.h"
#include "client_int.h"

uint64_t
gpc_namespace(const void *desc, size_t len)
{
	return XXH3_64bits(desc, len);
}

unsigned
gpc_shards(const struct gpc_client *c)
{
	return c->nshards;
}

/* The unfinished part with request id id. A request's parts are sent
 * under one hold of c->mu, so their ids are consecutive unless a send
 * failed after taking one. */
static struct cli_part *
part_find(struct gpc_client *c, uint64_t id, struct gpc_req **reqp)
{
	for (struct gpc_req *r = c->reqs; r != NULL; r = r->next) {
		uint64_t k;

		if (r->nparts == 0 || id < r->parts[0].req_id)
			continue;
		k = id - r->parts[0].req_id;
		if (k < r->nparts && r->parts[k].req_id == id &&
		    !r->parts[k].done) {
			*reqp = r;
			return &r->parts[k];
		}
		for (k = 0; k < r->nparts; k++) /* an id was skipped */
			if (r->parts[k].req_id == id && !r->parts[k].done) {
				*reqp = r;
				return &r->parts[k];
			}
	}
	return NULL;
}

static void
part_end(struct gpc_req *r, struct cli_part *p)
{
	p->done = true;
	if (--r->left == 0)
		r->done = true;
}

/* A GET of several blocks is over: each block's status. */
static void
getv_end(struct gpc_req *r, struct cli_part *p)
{
	for (unsigned k = 0; k < p->cnt; k++) {
		int st = p->rerr;

		if (st == 0 && p->rstatus < 0)
			st = p->rstatus; /* the whole message failed */
		else if (st == 0 && p->bst == NULL)
			st = -GPC_ECORRUPT;
		else if (st == 0 && ((uint64_t)p->rstatus != p->got ||
				     p->got != p->want))
			st = -GPC_ECORRUPT; /* the pieces did not add up */
		else if (st == 0)
			st = p->bst[k];
		r->blocks[p->idx[k]].status = st;
	}
	part_end(r, p);
}

/* A GET is over once its answer is in and no piece is still landing. */
static void
get_check(struct gpc_req *r, struct cli_part *p)
{
	struct gpc_block *b = &r->blocks[p->idx[0]];

	if (!p->resp || p->rx > 0)
		return;
	if (p->cnt > 1) {
		getv_end(r, p);
		return;
	}
	if (p->rerr < 0)
		b->status = p->rerr;
	else if (p->rstatus > 0 && (uint64_t)p->rstatus != p->got)
		b->status = -GPC_ECORRUPT; /* the pieces did not add up */
	else
		b->status = p->rstatus;
	part_end(r, p);
}

/* A GET's piece, landing: found again by id when it is in, since the
 * request may have ended meanwhile (its connection failed). */
struct get_rx {
	struct gpc_client *c;
	uint64_t req_id;
};

static void
get_rx_done(void *arg, int rc)
{
	struct get_rx *x = arg;
	struct gpc_req *r;
	struct cli_part *p = part_find(x->c, x->req_id, &r);

	if (p != NULL) {
		p->rx--;
		if (rc < 0 && p->rerr == 0)
			p->rerr = rc;
		get_check(r, p);
	}
	free(x);
}

/* DATA for a GET: receive the piece straight into the block's memory;
 * the last piece (count 1) carries the answer's status as well. Left
 * alone, it is dropped. */
static void
get_rx(struct gpc_client *c, struct cli_part *p, const struct wire_hdr *h,
       struct net_data *d)
{
	struct gpc_block *b = &p->req->blocks[p->idx[0]];
	struct iovec iov[WIRE_MAX_IOV], sl[WIRE_MAX_IOV];
	size_t n = net_data_len(d);
	struct get_rx *x;
	int k;

	for (unsigned i = 0; i < b->iovcnt && i < WIRE_MAX_IOV; i++)
		iov[i] = (struct iovec){ b->iov[i].addr, b->iov[i].len };
	k = net_iov_slice(iov, b->iovcnt, h->aux, n, sl, WIRE_MAX_IOV);
	if (h->count == 1) { /* the last piece: the answer too */
		p->resp = true;
		p->rstatus = h->status;
	}
	x = k < 0 || h->aux != p->got ? NULL : malloc(sizeof(*x));
	if (x == NULL) {
		if (p->rerr == 0)
			p->rerr = k < 0 || h->aux != p->got ? -GPC_ECORRUPT
							    : -ENOMEM;
		get_check(p->req, p); /* the last piece may be this one */
		return;
	}
	*x = (struct get_rx){ .c = c, .req_id = h->req_id };
	p->got += n;
	p->rx++;
	if (net_data_recv_nb(d, sl, (unsigned)k, get_rx_done, x) < 0) {
		free(x);
		p->rx--;
		if (p->rerr == 0)
			p->rerr = -EIO;
		get_check(p->req, p);
	}
}

/*
 * A GET of several blocks: the statuses a piece or the answer carries
 * (count x i32), the first time; with them, where the found blocks'
 * bytes land, one after another. 0, or -GPC_ECORRUPT for statuses that
 * do not fit the blocks asked for.
 */
static int
getv_statuses(struct gpc_req *r, struct cli_part *p, const struct wire_hdr *h,
	      const uint8_t *body)
{
	unsigned n = 0;

	if (p->bst != NULL)
		return 0;
	if (h->body_len != 4 * p->cnt)
		return -GPC_ECORRUPT;
	p->bst = malloc(p->cnt * sizeof(*p->bst));
	for (unsigned k = 0; p->bst != NULL && k < p->cnt; k++)
		n += r->blocks[p->idx[k]].iovcnt;
	p->dst = p->bst != NULL ? malloc((n ? n : 1) * sizeof(*p->dst)) : NULL;
	if (p->dst == NULL)
		return -ENOMEM;
	for (unsigned k = 0; k < p->cnt; k++) {
		const struct gpc_block *b = &r->blocks[p->idx[k]];
		int32_t st = (int32_t)get_le32(body + 4 * k);
		uint64_t left = st > 0 ? (uint64_t)st : 0;

		p->bst[k] = st;
		p->want += left;
		for (unsigned i = 0; i < b->iovcnt && left > 0; i++) {
			size_t m = b->iov[i].len < left ? b->iov[i].len : left;

			p->dst[p->ndst++] = (struct iovec){ b->iov[i].addr, m };
			left -= m;
		}
		if (left > 0) { /* longer than the block's memory: no piece
				 * of this answer lands anywhere */
			p->ndst = 0;
			return -GPC_ECORRUPT;
		}
	}
	return 0;
}

/* DATA for a GET of several blocks: the piece at aux of the found
 * blocks' bytes, straight into their memory. */
static void
getv_rx(struct gpc_client *c, struct cli_part *p, const struct wire_hdr *h,
	const uint8_t *body, struct net_data *d)
{
	size_t n = net_data_len(d);
	struct get_rx *x = NULL;
	struct iovec *sl = NULL;
	int rc = getv_statuses(p->req, p, h, body), k = 0;

	if (h->count != 0) { /* the last piece: the answer too */
		p->resp = true;
		p->rstatus = h->status;
	}
	if (rc == 0 && h->aux != p->got)
		rc = -GPC_ECORRUPT; /* pieces come in order */
	if (rc == 0 &&
	    (sl = malloc((p->ndst ? p->ndst : 1) * sizeof(*sl))) == NULL)
		rc = -ENOMEM;
	if (rc == 0 &&
	    (k = net_iov_slice(p->dst, p->ndst, h->aux, n, sl, p->ndst)) < 0)
		rc = -GPC_ECORRUPT; /* more than the blocks announced */
	if (rc == 0 && (x = malloc(sizeof(*x))) == NULL)
		rc = -ENOMEM;
	if (rc < 0) {
		free(sl);
		if (p->rerr == 0)
			p->rerr = rc;
		get_check(p->req, p);
		return;
	}
	*x = (struct get_rx){ .c = c, .req_id = h->req_id };
	p->got += n;
	p->rx++;
	rc = net_data_recv_nb(d, sl, (unsigned)k, get_rx_done, x);
	free(sl); /* UCX took its own copy of the table */
	if (rc < 0) {
		free(x);
		p->rx--;
		if (p->rerr == 0)
			p->rerr = -EIO;
		get_check(p->req, p);
	}
}

/* Per-item statuses of a batch answer into the caller's slots. */
static void
part_statuses(struct gpc_req *r, struct cli_part *p, const struct wire_hdr *h,
	      const uint8_t *body)
{
	for (unsigned k = 0; k < p->cnt; k++) {
		int st = h->status;

		if (st == 0)
			st = (h->count == p->cnt && h->body_len == 4 * p->cnt)
				     ? (int)get_le32(body + 4 * k)
				     : -GPC_ECORRUPT;
		if (st > 0) /* items answer 0 or -errno */
			st = -GPC_ECORRUPT;
		if (r->blocks)
			r->blocks[p->idx[k]].status = st;
		else if (r->status)
			r->status[p->idx[k]] = st;
	}
}

/* An EVENT from shard h->shard: its records into the client's ring. */
static void
events_rx(struct gpc_client *c, const struct wire_hdr *h, const uint8_t *body)
{
	if (c->evq == NULL || h->shard >= c->nshards)
		return; /* not subscribed: nothing to keep */
	c->ev_lost += h->aux;
	if ((uint64_t)h->count * WIRE_EV_SIZE != h->body_len)
		return;
	for (uint32_t i = 0; i < h->count; i++) {
		struct wire_ev e;
		struct gpc_event *g;

		if (wire_ev_decode(body + (size_t)i * WIRE_EV_SIZE, &e) < 0)
			continue;
		if (c->ev_n == CLI_EVQ) {
			c->ev_lost++;
			continue;
		}
		g = &c->evq[(c->ev_head + c->ev_n++) % CLI_EVQ];
		g->ns = e.ns;
		memcpy(g->key, e.key, GPC_KEY_LEN);
		g->type = e.type;
		g->shard = h->shard;
	}
}

static void
on_msg(void *arg, struct net_ep *ep, const uint8_t *buf, size_t len,
       struct net_data *d)
{
	struct gpc_client *c = arg;
	struct wire_hdr h;
	struct gpc_req *r = NULL;
	struct cli_part *p;

	(void)ep;
	if (wire_msg_decode(buf, len, &h) < 0 || !(h.opcode & WIRE_OP_RESP))
		return;
	if (h.opcode == (WIRE_OP_EVENT | WIRE_OP_RESP)) {
		if (d == NULL)
			events_rx(c, &h, buf + WIRE_HDR_SIZE);
		return;
	}
	p = part_find(c, h.req_id, &r);
	if (p == NULL || h.shard != p->shard)
		return;
	if (d != NULL) {
		if (r->op == WIRE_OP_GET &&
		    h.opcode == (WIRE_OP_DATA | WIRE_OP_RESP) && !p->resp) {
			if (p->cnt > 1)
				getv_rx(c, p, &h, buf + WIRE_HDR_SIZE, d);
			else
				get_rx(c, p, &h, d);
		}
		return; /* nothing else comes with data: dropped */
	}
	if (h.opcode == (WIRE_OP_DATA | WIRE_OP_RESP))
		return; /* DATA without data: nonsense */
	/* a whole-part failure; BUSY is per block, the caller retries them;
	 * a PUT's or GET's status is its one block's */
	if (h.status < 0 && h.status != -GPC_EBUSY && r->rc == 0 &&
	    r->op != WIRE_OP_PUT && r->op != WIRE_OP_GET)
		r->rc = h.status;
	switch (r->op) {
	case WIRE_OP_PUT: /* one block: status in header; a batch: body */
		if (p->cnt > 1)
			part_statuses(r, p, &h, buf + WIRE_HDR_SIZE);
		else
			r->blocks[p->idx[0]].status =
				h.status > 0 ? -GPC_ECORRUPT : h.status;
		break;
	case WIRE_OP_GET: /* the block's length, once its pieces are in */
		if (p->cnt > 1 && h.status >= 0) { /* nothing found: statuses */
			int rc = getv_statuses(r, p, &h, buf + WIRE_HDR_SIZE);

			if (rc < 0 && p->rerr == 0)
				p->rerr = rc;
		}
		p->resp = true;
		p->rstatus = h.status;
		get_check(r, p);
		return;
	case WIRE_OP_DELETE: case WIRE_OP_PIN: case WIRE_OP_UNPIN:
		part_statuses(r, p, &h, buf + WIRE_HDR_SIZE);
		break;
	case WIRE_OP_LOOKUP:
		p->found = h.aux < p->cnt ? (unsigned)h.aux : p->cnt;
		break;
	default:
		r->aux = h.aux;
		r->reply_len = h.body_len < sizeof(r->reply) ? h.body_len
							      : sizeof(r->reply);
		memcpy(r->reply, buf + WIRE_HDR_SIZE, r->reply_len);
		break;
	}
	part_end(r, p);
}

/* A part whose connection is gone: it and its items fail with err. */
static void
part_fail(struct gpc_req *r, struct cli_part *p, int err)
{
	if (r->blocks || r->status) {
		struct wire_hdr h = { .status = err };

		part_statuses(r, p, &h, NULL);
	}
	r->rc = r->rc ? r->rc : err;
	part_end(r, p);
}

static void
on_err(void *arg, struct net_ep *ep, int err)
{
	struct gpc_client *c = arg;

	for (unsigned i = 0; i < c->nshards; i++)
		if (c->sh[i].ep == ep)
			c->sh[i].up = false;
	/* requests waiting on that shard fail */
	for (struct gpc_req *r = c->reqs; r != NULL; r = r->next)
		for (unsigned i = 0; i < r->nparts; i++)
			if (!r->parts[i].done && c->sh[r->parts[i].shard].ep == ep)
				part_fail(r, &r->parts[i], err);
	cli_wake(c); /* also when a send, not progress, found it */
}

struct gpc_req *
cli_req_new(struct gpc_client *c, uint8_t op, unsigned nparts)
{
	struct gpc_req *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->parts = calloc(nparts ? nparts : 1, sizeof(*r->parts));
	if (r->parts == NULL) {
		free(r);
		return NULL;
	}
	r->c = c;
	r->op = op;
	return r;
}

/* A PUT's data part has gone out (or failed with its connection). */
static void
data_sent(void *arg, int rc)
{
	struct gpc_client *c = arg;

	(void)rc; /* a failure ends its request through on_err */
	c->sending--;
}

/* Send one part of r to shard s (with iov[0..niov) as its data part if
 * iov is not NULL); the part gets a fresh request id. */
int
cli_send(struct gpc_client *c, struct gpc_req *r, unsigned s, uint8_t flags,
	 uint32_t count, const struct wire_wr *body, const struct iovec *iov,
	 unsigned niov, struct cli_part *p)
{
	uint8_t hb[WIRE_HDR_SIZE];
	struct wire_hdr h = { .opcode = r->op, .flags = flags, .count = count,
			      .shard = s,
			      .aux = r->op == WIRE_OP_PUT ? r->put_aux : 0 };
	uint64_t off = 0;
	int rc;

	if (s >= c->nshards || !c->sh[s].up)
		return -ENOTCONN;
	if (body->err)
		return body->err;
	h.req_id = ++c->next_id;
	h.body_len = (uint32_t)body->len;
	h.body_crc = wire_body_crc(body->buf, body->len);
	wire_hdr_encode(&h, hb);
	p->req = r;
	p->req_id = h.req_id;
	p->shard = s;
	rc = net_send_nb(c->sh[s].ep, NET_AM_TO_SERVER, hb, sizeof(hb),
			 body->buf, body->len, NULL, NULL);
	for (unsigned i = 0; rc == 0 && i < niov; i++) { /* a PUT's bytes */
		struct wire_hdr dh = { .opcode = WIRE_OP_DATA, .req_id = h.req_id,
				       .shard = s, .aux = off };

		if (!c->sh[s].up) { /* UCX failed the endpoint inside the last
				     * send: on_err ran and it is freed */
			rc = -ENOTCONN;
			break;
		}
		dh.body_crc = wire_body_crc(NULL, 0);
		wire_hdr_encode(&dh, hb);
		rc = net_send_data_nb(c->sh[s].ep, NET_AM_TO_SERVER, hb,
				      sizeof(hb), iov[i].iov_base,
				      iov[i].iov_len, data_sent, c);
		if (rc == 0)
			c->sending++;
		off += iov[i].iov_len;
		if (rc < 0 && c->sh[s].up) { /* the daemon holds a PUT it will
					      * never get the rest of: end the
					      * connection, so it lets go at
					      * once, and its other requests
					      * fail here */
			struct net_ep *ep = c->sh[s].ep;

			on_err(c, ep, rc);
			net_ep_close(ep);
		}
	}
	if (rc == 0) {
		r->nparts++;
		r->left++;
	}
	return rc;
}

/* Put r on the in-flight list (after its parts are sent). */
void
cli_req_track(struct gpc_client *c, struct gpc_req *r)
{
	/* UCX may report a dead peer inside a send, before r was on the
	 * list on_err walks: parts sent to it fail here instead */
	for (unsigned i = 0; i < r->nparts; i++)
		if (!r->parts[i].done && !c->sh[r->parts[i].shard].up)
			part_fail(r, &r->parts[i], -ENOTCONN);
	if (r->left == 0)
		r->done = true;
	r->next = c->reqs;
	c->reqs = r;
}

static void
req_untrack(struct gpc_client *c, struct gpc_req *r)
{
	struct gpc_req **pp = &c->reqs;

	while (*pp != NULL && *pp != r)
		pp = &(*pp)->next;
	if (*pp == r)
		*pp = r->next;
}

void
gpc_req_free(struct gpc_req *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->c->mu);
	req_untrack(r->c, r);
	pthread_mutex_unlock(&r->c->mu);
	for (unsigned i = 0; i < r->nparts; i++) {
		free(r->parts[i].idx);
		free(r->parts[i].bst);
		free(r->parts[i].dst);
	}
	free(r->parts);
	free(r);
}

/* The first of reqs[0..n) that is done, or -1. */
static int
first_done(struct gpc_req *const *reqs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (reqs[i]->done)
			return (int)i;
	return -1;
}

/* One round of progress, then first_done. Called unlocked. */
static int
test_any(struct gpc_client *c, struct gpc_req *const *reqs, unsigned n)
{
	int i;

	pthread_mutex_lock(&c->mu);
	cli_progress(c);
	i = first_done(reqs, n);
	pthread_mutex_unlock(&c->mu);
	return i;
}

int
gpc_test(struct gpc_client *c, struct gpc_req *r)
{
	return test_any(c, &r, 1) == 0 ? 1 : 0;
}

/* Let another thread have the lock and the CPU. Called and returns with
 * mu held. */
static void
cli_yield(struct gpc_client *c)
{
	pthread_mutex_unlock(&c->mu);
	sched_yield();
	pthread_mutex_lock(&c->mu);
}

/* A condition whose timed waits count on CLOCK_MONOTONIC, as cli_sleep's
 * deadlines do. */
static void
cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

void
cli_wake(struct gpc_client *c)
{
	if (c->followers != 0)
		pthread_cond_broadcast(&c->cv);
	if (c->sleeping && !c->signalled) {
		/* our progress may have taken what its fd would signal */
		net_signal(c->w);
		c->signalled = true;
	}
}

unsigned
cli_progress(struct gpc_client *c)
{
	unsigned n = net_progress(c->w);

	if (n != 0)
		cli_wake(c);
	return n;
}

/* Wait for another waiter's news (cli_wake), at most us. Called and
 * returns with mu held. */
static void
cli_follow(struct gpc_client *c, uint64_t us)
{
	struct timespec ts;
	uint64_t ns;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ns = (uint64_t)ts.tv_nsec + us * 1000u;
	ts.tv_sec += (time_t)(ns / 1000000000u);
	ts.tv_nsec = (long)(ns % 1000000000u);
	c->followers++;
	pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	c->followers--;
}

/*
 * Nothing to progress: sleep until the transport may have news, at most
 * us. The first thread here sleeps on the worker's event fd, without
 * the lock, and wakes the others when it wakes; they wait on cv. Any
 * thread whose progress finds something while they wait wakes them all
 * (cli_wake), the sleeper through the worker's signal, since that
 * progress may have taken the arrival its fd would have shown. If the
 * worker cannot be armed, the lock is let go for a yield instead, so
 * that the caller polls without holding other threads off. Called and
 * returns with mu held.
 */
static void
cli_sleep(struct gpc_client *c, uint64_t us)
{
	if (!c->sleeping) {
		if (net_arm(c->w) <= 0) { /* news already, or no fd */
			cli_yield(c);
			return;
		}
		c->sleeping = true;
		c->signalled = false;
		pthread_mutex_unlock(&c->mu);
		net_sleep(c->w, (unsigned)us);
		pthread_mutex_lock(&c->mu);
		c->sleeping = false;
		if (c->followers != 0)
			pthread_cond_broadcast(&c->cv);
		return;
	}
	cli_follow(c, us);
}

/* One sleep at most this long: a wake-up that went astray (none is known
 * since cli_wake signals the sleeper) costs a bounded delay. */
#define CLI_SLEEP_MAX_US 10000u

/*
 * Drive progress until one of reqs is done (lim_ns 0: no limit; a data
 * transfer only ends with its answer or with the connection): poll while
 * there is news and for spin_ns after the last, yielding the CPU, then
 * sleep (cli_sleep). Returns the done one's index or -ETIMEDOUT. Called
 * unlocked.
 */
static int
cli_wait_any(struct gpc_client *c, struct gpc_req *const *reqs, unsigned n,
	     uint64_t lim_ns)
{
	uint64_t t0 = clock_now_ns(), news = t0, now, left;
	bool poller = false;
	int i;

	pthread_mutex_lock(&c->mu);
	while ((i = first_done(reqs, n)) < 0) {
		now = clock_now_ns();
		if (lim_ns && now - t0 >= lim_ns)
			break; /* checked every round: news never defers it */
		left = lim_ns && (t0 + lim_ns - now) / 1000u < CLI_SLEEP_MAX_US
			       ? (t0 + lim_ns - now + 999u) / 1000u
			       : CLI_SLEEP_MAX_US;
		if (cli_progress(c) != 0) {
			news = now;
			continue;
		}
		/* one waiter polls; the others wait for its news (more
		 * pollers only take CPU from it, the daemon and the engine) */
		if (c->polling && !poller) {
			cli_follow(c, left);
			continue;
		}
		/* a PUT's bytes go out as this side progresses (over shared
		 * memory, in fragments as the peer frees room, which no
		 * event announces): poll until they are out, sleep only
		 * while waiting on the daemon */
		if (c->spin_ns == UINT64_MAX || now - news < c->spin_ns ||
		    c->sending > 0) {
			poller = c->polling = true;
			cli_yield(c);
			continue;
		}
		if (poller) { /* polled long enough: sleep, another may poll */
			poller = c->polling = false;
			cli_wake(c);
		}
		cli_sleep(c, left);
	}
	if (poller) { /* done: a waiter left behind polls now */
		c->polling = false;
		cli_wake(c);
	}
	pthread_mutex_unlock(&c->mu);
	return i >= 0 ? i : -ETIMEDOUT;
}

int
cli_wait(struct gpc_client *c, struct gpc_req *r, uint64_t lim_ns)
{
	int rc = cli_wait_any(c, &r, 1, lim_ns);

	return rc < 0 ? rc : r->rc;
}

int
gpc_wait(struct gpc_client *c, struct gpc_req *r)
{
	return cli_wait(c, r, 0);
}

int
gpc_wait_any(struct gpc_client *c, struct gpc_req *const *reqs, unsigned n,
	     unsigned timeout_us)
{
	int i;

	if (c == NULL || reqs == NULL || n == 0 || n > INT_MAX)
		return -EINVAL;
	for (unsigned k = 0; k < n; k++)
		if (reqs[k] == NULL || reqs[k]->c != c)
			return -EINVAL;
	if (timeout_us == 0) {
		i = test_any(c, reqs, n);
		return i >= 0 ? i : -ETIMEDOUT;
	}
	return cli_wait_any(c, reqs, n, (uint64_t)timeout_us * 1000u);
}

int
cli_call(struct gpc_client *c, unsigned s, uint8_t op,
	 const struct wire_wr *body, uint64_t lim_ns, struct gpc_req **out)
{
	struct gpc_req *r = cli_req_new(c, op, 1);
	int rc;

	if (r == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&c->mu);
	rc = cli_send(c, r, s, 0, 0, body, NULL, 0, &r->parts[0]);
	if (rc == 0)
		cli_req_track(c, r);
	pthread_mutex_unlock(&c->mu);
	if (rc == 0)
		rc = cli_wait(c, r, lim_ns);
	if (rc < 0 || out == NULL) {
		gpc_req_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

/* Connect shard s and authenticate. */
static int
shard_up(struct gpc_client *c, unsigned s)
{
	uint64_t lim = (uint64_t)c->timeout_ms * 1000000ull;
	uint8_t mac[AUTH_MAC_LEN];
	struct wire_wr w;
	struct gpc_req *r;
	int rc;

	rc = net_connect(c->w, c->host, (uint16_t)(c->port + s), &c->sh[s].ep);
	if (rc < 0)
		return rc;
	c->sh[s].up = true;
	wire_wr_init(&w);
	wire_wr_u16(&w, (uint16_t)strlen(c->tenant));
	wire_wr_bytes(&w, c->tenant, strlen(c->tenant));
	rc = cli_call(c, s, WIRE_OP_HELLO, &w, lim, &r);
	wire_wr_fini(&w);
	if (rc < 0)
		return rc;
	if (r->reply_len < WIRE_NONCE_LEN + 8) {
		gpc_req_free(r);
		return -GPC_ECORRUPT;
	}
	if (s == 0) {
		c->nshards = get_le32(r->reply + WIRE_NONCE_LEN);
		/* a daemon before GET batches sends no features */
		c->feat = r->reply_len >= WIRE_NONCE_LEN + 12
				  ? get_le32(r->reply + WIRE_NONCE_LEN + 8)
				  : 0;
		c->put_piece = r->reply_len >= WIRE_NONCE_LEN + 16
				       ? get_le32(r->reply + WIRE_NONCE_LEN + 12)
				       : 0;
	}
	rc = auth_mac(c->secret, c->secret_len, r->reply, c->tenant, s, mac);
	gpc_req_free(r);
	if (rc < 0)
		return rc;
	if (c->nshards == 0 || c->nshards > CLI_MAX_SHARDS)
		return -GPC_ECORRUPT;
	wire_wr_init(&w);
	wire_wr_bytes(&w, mac, sizeof(mac));
	rc = cli_call(c, s, WIRE_OP_AUTH, &w, lim, NULL);
	wire_wr_fini(&w);
	return rc;
}

static int
parse_url(const char *url, char *host, size_t hlen, uint16_t *port)
{
	const char *p = url, *colon;
	char *end;
	unsigned long v;

	if (strncmp(p, "gpc://", 6) == 0)
		p += 6;
	colon = strrchr(p, ':');
	if (colon == NULL || colon == p || (size_t)(colon - p) >= hlen)
		return -EINVAL;
	v = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || v == 0 || v > 65535)
		return -EINVAL;
	memcpy(host, p, (size_t)(colon - p));
	host[colon - p] = '\0';
	*port = (uint16_t)v;
	return 0;
}

int
gpc_connect(const char *url, const struct gpc_connect_opts *o,
	    struct gpc_client **out)
{
	struct gpc_client *c;
	uint64_t spin;
	int rc;

	if (url == NULL || o == NULL ||
	    o->struct_size < offsetof(struct gpc_connect_opts, timeout_ms) +
				     sizeof(o->timeout_ms) || /* 0.2's */
	    o->tenant == NULL || strlen(o->tenant) == 0 ||
	    strlen(o->tenant) > WIRE_MAX_TENANT || o->secret_len > 256 ||
	    (o->secret_len && o->secret == NULL))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	pthread_mutex_init(&c->mu, NULL);
	cond_init_monotonic(&c->cv);
	c->timeout_ms = o->timeout_ms ? o->timeout_ms : 10000;
	spin = o->struct_size >= offsetof(struct gpc_connect_opts, spin_us) +
					 sizeof(o->spin_us)
		       ? o->spin_us
		       : 0;
	c->spin_ns = spin >= UINT64_MAX / 1000u ? UINT64_MAX
		     : (spin ? spin : GPC_SPIN_DEFAULT_US) * 1000u;
	snprintf(c->tenant, sizeof(c->tenant), "%s", o->tenant);
	memcpy(c->secret, o->secret, o->secret_len);
	c->secret_len = o->secret_len;
	c->nshards = 1;
	rc = parse_url(url, c->host, sizeof(c->host), &c->port);
	if (rc == 0)
		rc = net_ctx_create(false, 0, &c->ctx);
	if (rc == 0)
		rc = net_worker_create(c->ctx, NET_AM_TO_CLIENT, on_msg, on_err,
				       c, &c->w);
	if (rc == 0)
		net_worker_set_max_msg(c->w, WIRE_HDR_SIZE + WIRE_MAX_BODY);
	for (unsigned s = 0; rc == 0 && s < c->nshards; s++)
		rc = shard_up(c, s);
	if (rc < 0) {
		gpc_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

void
gpc_close(struct gpc_client *c)
{
	if (c == NULL)
		return;
	while (c->mrs != NULL)
		gpc_mem_deregister(c, c->mrs);
	net_worker_destroy(c->w);
	net_ctx_destroy(c->ctx);
	free(c->evq);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	memset(c->secret, 0, sizeof(c->secret));
	free(c);
}
