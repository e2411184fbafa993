/*
 * net_ucx.c - the transport over UCX's ucp layer (net.h).
 *
 * Every UCX operation is issued with UCP_OP_ATTR_FLAG_NO_IMM_CMPL, so its
 * callback always runs later from ucp_worker_progress: the async contract
 * of net.h holds without a second path for immediate completion. Incoming
 * active messages arrive whole (UCP_AM_FLAG_WHOLE_MSG); a control message
 * is all data (no UCX header), and a large one is fetched into a heap
 * buffer first; a message with a data part has the control message as
 * the UCX header and the payload as data, received where the callee says
 * (net_data_recv_nb). Endpoints live in a per-worker list so
 * the reply endpoint UCX hands to the message callback finds our net_ep;
 * a closed endpoint stays allocated until UCX has finished closing it, so
 * no late callback can touch freed memory.
 *
 * Operations are the per-message cost of the data path (every answer,
 * every DATA piece, every receive): their records come from a per-worker
 * free list, and a send's copy of a small message (a header, a short
 * body) or a receive's short iovec table lives inside the record, so the
 * common operation allocates nothing.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <ucp/api/ucp.h>

#include "common/log.h"
#include "net.h"

struct net_ctx {
	ucp_context_h ucp;
	bool private_mem; /* data moves as UCX iovecs: no key to our memory */
	bool send_iov;    /* data parts go out as UCX iovecs too */
	bool send_auto;   /* or per endpoint (net_iov_max_for) */
};

struct net_worker {
	struct net_ctx *ctx;
	ucp_worker_h w;
	ucp_listener_h listener;
	unsigned am_id;
	net_msg_cb on_msg;
	net_error_cb on_err;
	net_accept_cb on_accept;
	void *arg;
	size_t max_msg;     /* larger incoming messages are refused */
	struct net_ep *eps; /* live endpoints */
	struct op *dhead, *dtail; /* completions to deliver at progress */
	/* Every operation not yet finished. UCX 1.13 never completes a
	 * rendezvous send whose peer died before answering it, not even
	 * when its endpoint is force-closed; such ones are freed (without
	 * their callbacks) when the worker goes. */
	struct op *live;
	struct op *pool; /* finished operation records, for reuse */
	unsigned npool;
	int efd;
};

struct net_ep {
	struct net_ep *next;
	struct net_worker *w;
	ucp_ep_h ep;
	void *user;
	bool closed;
	bool iov_known;  /* iov_max is set (NET_CTX_SEND_AUTO) */
	size_t iov_max;  /* largest data part sent as a UCX iovec */
};

struct net_rkey {
	ucp_rkey_h rk;
};

struct net_mem {
	ucp_mem_h memh;
};

/* A message's data part (net.h). */
struct net_data {
	struct net_worker *w;
	void *desc;  /* UCX's rendezvous descriptor, or the inline bytes */
	size_t len;
	bool rndv;
	bool heap;   /* a kept copy, on the heap */
	bool kept;   /* handed to a kept copy during the callback */
};

/* Bytes of a send copy or iovec table kept inside the operation: a
 * message header (48) and a short body, or four iovec entries. */
#define OP_INLINE 96u
/* Finished operation records a worker keeps for reuse. */
#define OP_POOL_MAX 256u

struct op {
	struct op *next;        /* worker's deferred list; the free list */
	struct op *lprev, *lnext; /* worker's live operations */
	struct net_worker *w;
	net_done_cb cb;
	void *arg;
	void *buf; /* send copy or iovec table: inl, or the heap's */
	int rc;
	_Alignas(16) uint8_t inl[OP_INLINE];
};

/*
 * Set while an operation is being issued: UCX may run the completion
 * callback inside the issuing call even with NO_IMM_CMPL, and net.h
 * promises callbacks only from net_progress, so such a completion is
 * queued and delivered at the next progress.
 */
static _Thread_local bool in_issue;

/* Put o on its worker's list of live operations. */
static void
op_live(struct op *o)
{
	o->lprev = NULL;
	o->lnext = o->w->live;
	if (o->lnext)
		o->lnext->lprev = o;
	o->w->live = o;
}

/* Room for len bytes for o->buf: inside o when they fit. */
static void *
op_buf(struct op *o, size_t len)
{
	o->buf = len <= OP_INLINE ? o->inl : malloc(len);
	return o->buf;
}

static void
op_free(struct op *o)
{
	struct net_worker *w = o->w;

	if (o->lprev)
		o->lprev->lnext = o->lnext;
	else if (w->live == o)
		w->live = o->lnext;
	if (o->lnext)
		o->lnext->lprev = o->lprev;
	if (o->buf != o->inl)
		free(o->buf);
	if (w->npool == OP_POOL_MAX) {
		free(o);
		return;
	}
	o->next = w->pool;
	w->pool = o;
	w->npool++;
}

static void
op_finish(struct op *o)
{
	if (o->cb)
		o->cb(o->arg, o->rc);
	op_free(o);
}


/* The one place UCX status codes become errno values. */
static int
net_status(ucs_status_t st)
{
	switch (st) {
	case UCS_OK: return 0;
	case UCS_INPROGRESS: case UCS_ERR_NO_RESOURCE: case UCS_ERR_BUSY:
		return -EAGAIN;
	case UCS_ERR_NO_MEMORY: return -ENOMEM;
	case UCS_ERR_INVALID_PARAM: return -EINVAL;
	case UCS_ERR_UNREACHABLE: return -EHOSTUNREACH;
	case UCS_ERR_TIMED_OUT: return -ETIMEDOUT;
	case UCS_ERR_CANCELED: return -ECANCELED;
	case UCS_ERR_CONNECTION_RESET: case UCS_ERR_ENDPOINT_TIMEOUT:
		return -ECONNRESET;
	case UCS_ERR_NOT_CONNECTED: return -ENOTCONN;
	case UCS_ERR_REJECTED: return -ECONNREFUSED;
	case UCS_ERR_UNSUPPORTED: return -EOPNOTSUPP;
	case UCS_ERR_BUFFER_TOO_SMALL: case UCS_ERR_MESSAGE_TRUNCATED:
		return -EMSGSIZE;
	case UCS_ERR_NO_ELEM: return -ENOENT;
	default: return -EIO;
	}
}

int
net_ctx_create(bool multi_thread, unsigned flags, struct net_ctx **out)
{
	ucp_params_t p = {
		.field_mask = UCP_PARAM_FIELD_FEATURES |
			      UCP_PARAM_FIELD_MT_WORKERS_SHARED,
		.features = UCP_FEATURE_AM | UCP_FEATURE_WAKEUP |
			    ((flags & NET_CTX_RMA) ? UCP_FEATURE_RMA : 0),
		.mt_workers_shared = multi_thread,
	};
	struct net_ctx *c = calloc(1, sizeof(*c));
	ucp_config_t *cfg;
	ucs_status_t st;

	if (c == NULL)
		return -ENOMEM;
	/*
	 * UCX puts the key of a rendezvous buffer on the wire only for a
	 * contiguous one (ucp_rndv_rts_pack, and the RTR likewise), so a
	 * private context's data always moves as iovecs and no peer ever
	 * learns a key to its memory.
	 */
	c->private_mem = (flags & NET_CTX_PRIVATE) != 0;
	c->send_iov = c->private_mem && (flags & NET_CTX_SEND_IOV) != 0;
	c->send_auto = c->private_mem && (flags & NET_CTX_SEND_AUTO) != 0;
	st = ucp_config_read(NULL, NULL, &cfg);
	/*
	 * A restarted daemon must get its port back at once, even while
	 * connections of its previous life sit in TIME_WAIT (UCX's default
	 * is no SO_REUSEADDR). The environment still decides if it says.
	 */
	if (st == UCS_OK && getenv("UCX_TCP_CM_REUSEADDR") == NULL)
		(void)ucp_config_modify(cfg, "CM_REUSEADDR", "y");
	/*
	 * A private context sends by rendezvous with the put scheme: its
	 * announcement then carries no key to its memory and the receiver
	 * answers with one to its own, which we write (UCX packs a key in
	 * the announcement only for the get scheme). It receives into
	 * iovecs, for which the receiver's answer carries no key either.
	 */
	if (st == UCS_OK && (flags & NET_CTX_PRIVATE) &&
	    getenv("UCX_RNDV_SCHEME") == NULL)
		(void)ucp_config_modify(cfg, "RNDV_SCHEME", "put_zcopy");
	/*
	 * Shared memory stays off by default. Our endpoints ask UCX to report a
	 * dead peer, and UCX 1.13 then keeps only transports that can tell:
	 * posix and sysv qualify only with UCX_MM_ERROR_HANDLING=y (at both
	 * ends); without it a same-host client's messages go over tcp (block
	 * data by CMA where UCX picks it). We do not turn it on ourselves:
	 * UCX does not check the keys it is handed on those transports, so
	 * a peer running a modified UCX could answer a rendezvous with a key
	 * naming another process's segment and have the daemon write there.
	 * Set it only where every client is trusted (benchmarks, a single-
	 * tenant host).
	 */
	if (st == UCS_OK) {
		st = ucp_init(&p, cfg, &c->ucp);
		ucp_config_release(cfg);
	}
	if (st != UCS_OK) {
		log_err("net", "ucp_init: %s", ucs_status_string(st));
		free(c);
		return net_status(st);
	}
	*out = c;
	return 0;
}

void
net_ctx_destroy(struct net_ctx *ctx)
{
	if (ctx == NULL)
		return;
	ucp_cleanup(ctx->ucp);
	free(ctx);
}

static struct net_ep *
ep_find(struct net_worker *w, ucp_ep_h ep)
{
	for (struct net_ep *e = w->eps; e != NULL; e = e->next)
		if (e->ep == ep && !e->closed)
			return e;
	return NULL;
}

/* Is ep (a pointer we handed out) still open on w? */
static bool
ep_live(struct net_worker *w, const struct net_ep *ep)
{
	for (struct net_ep *e = w->eps; e != NULL; e = e->next)
		if (e == ep)
			return !e->closed;
	return false;
}

struct rndv {
	struct net_worker *w;
	struct net_ep *ep;
	uint8_t *buf;
	size_t len;
	ucp_dt_iov_t iov; /* the buffer as a UCX iovec (private contexts) */
};

static void
rndv_done(void *req, ucs_status_t st, size_t len, void *user)
{
	struct rndv *r = user;

	(void)len;
	if (st == UCS_OK && ep_live(r->w, r->ep)) /* it may be gone by now */
		r->w->on_msg(r->w->arg, r->ep, r->buf, r->len, NULL);
	free(r->buf);
	free(r);
	ucp_request_free(req);
}

static void
refuse(struct net_worker *w, struct net_ep *ep, size_t len)
{
	/* before a byte of it is fetched: a peer must not make us allocate
	 * what it likes */
	log_warn("net", "message of %zu bytes refused: peer dropped", len);
	if (w->on_err)
		w->on_err(w->arg, ep, -EMSGSIZE);
	net_ep_close(ep);
}

static ucs_status_t
data_msg(struct net_worker *w, struct net_ep *ep, const void *hdr,
	 size_t hlen, void *data, size_t len, const ucp_am_recv_param_t *param)
{
	struct net_data d = {
		.w = w, .desc = data, .len = len,
		.rndv = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0,
	};

	if (w->max_msg && hlen > w->max_msg) {
		refuse(w, ep, hlen);
		return UCS_OK;
	}
	w->on_msg(w->arg, ep, hdr, hlen, &d);
	/* kept: UCX holds the descriptor until we receive or drop it */
	return d.kept ? UCS_INPROGRESS : UCS_OK;
}

static ucs_status_t
am_cb(void *arg, const void *hdr, size_t hlen, void *data, size_t len,
      const ucp_am_recv_param_t *param)
{
	struct net_worker *w = arg;
	struct net_ep *ep = NULL;
	ucp_request_param_t rp = {
		.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
				UCP_OP_ATTR_FIELD_USER_DATA |
				UCP_OP_ATTR_FLAG_NO_IMM_CMPL,
		.cb.recv_am = rndv_done,
	};
	struct rndv *r;
	ucs_status_ptr_t sp;

	if (param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP)
		ep = ep_find(w, param->reply_ep);
	if (ep == NULL)
		return UCS_OK; /* from nobody we know: dropped */
	if (hlen > 0) /* a message with a data part */
		return data_msg(w, ep, hdr, hlen, data, len, param);
	if (w->max_msg && len > w->max_msg) {
		refuse(w, ep, len);
		return UCS_OK;
	}
	if (!(param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV)) {
		w->on_msg(w->arg, ep, data, len, NULL);
		return UCS_OK;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL || (r->buf = malloc(len ? len : 1)) == NULL) {
		free(r);
		return UCS_OK;
	}
	*r = (struct rndv){ .w = w, .ep = ep, .buf = r->buf, .len = len,
			    .iov = { r->buf, len } };
	rp.user_data = r;
	if (w->ctx->private_mem) { /* no key to our heap in the answer */
		rp.op_attr_mask |= UCP_OP_ATTR_FIELD_DATATYPE;
		rp.datatype = ucp_dt_make_iov();
		sp = ucp_am_recv_data_nbx(w->w, data, &r->iov, 1, &rp);
	} else {
		sp = ucp_am_recv_data_nbx(w->w, data, r->buf, len, &rp);
	}
	if (UCS_PTR_IS_ERR(sp)) {
		free(r->buf);
		free(r);
	}
	return UCS_OK;
}

int
net_worker_create(struct net_ctx *ctx, unsigned am_id, net_msg_cb on_msg,
		  net_error_cb on_err, void *arg, struct net_worker **out)
{
	ucp_worker_params_t wp = {
		.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE,
		.thread_mode = UCS_THREAD_MODE_SERIALIZED,
	};
	ucp_am_handler_param_t hp = {
		.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID |
			      UCP_AM_HANDLER_PARAM_FIELD_CB |
			      UCP_AM_HANDLER_PARAM_FIELD_ARG |
			      UCP_AM_HANDLER_PARAM_FIELD_FLAGS,
		.id = am_id,
		.flags = UCP_AM_FLAG_WHOLE_MSG,
		.cb = am_cb,
	};
	struct net_worker *w = calloc(1, sizeof(*w));
	ucs_status_t st;

	if (w == NULL)
		return -ENOMEM;
	*w = (struct net_worker){ .ctx = ctx, .am_id = am_id, .on_msg = on_msg,
				  .on_err = on_err, .arg = arg, .efd = -1 };
	st = ucp_worker_create(ctx->ucp, &wp, &w->w);
	if (st != UCS_OK) {
		free(w);
		return net_status(st);
	}
	hp.arg = w;
	st = ucp_worker_set_am_recv_handler(w->w, &hp);
	if (st == UCS_OK && ucp_worker_get_efd(w->w, &w->efd) != UCS_OK)
		w->efd = -1;
	if (st != UCS_OK) {
		ucp_worker_destroy(w->w);
		free(w);
		return net_status(st);
	}
	*out = w;
	return 0;
}

void
net_worker_destroy(struct net_worker *w)
{
	struct net_ep *e;

	if (w == NULL)
		return;
	if (w->listener)
		ucp_listener_destroy(w->listener);
	for (e = w->eps; e != NULL;) {
		struct net_ep *next = e->next; /* close may free e */

		if (!e->closed)
			net_ep_close(e);
		e = next;
	}
	/*
	 * Let closes finish; net_progress, not ucp_worker_progress, so that
	 * operations the forced closes purged (queued on dhead) complete
	 * too: else they and their buffers leak (a daemon stopped under
	 * load showed it).
	 */
	for (int i = 0; i < 1000 && (w->eps != NULL || w->dhead != NULL); i++)
		net_progress(w);
	/* UCX may finish stuck closes while it destroys the worker (their
	 * callbacks free them): free what is left only after that */
	ucp_worker_destroy(w->w);
	while ((e = w->eps) != NULL) {
		w->eps = e->next;
		free(e);
	}
	while (w->live != NULL)
		op_free(w->live);
	while (w->pool != NULL) {
		struct op *o = w->pool;

		w->pool = o->next;
		free(o);
	}
	free(w);
}

unsigned
net_progress(struct net_worker *w)
{
	struct op *o = w->dhead;
	unsigned n = 0;

	w->dhead = w->dtail = NULL;
	while (o != NULL) { /* callbacks may queue more: those wait */
		struct op *next = o->next;

		op_finish(o);
		o = next;
		n++;
	}
	return n + ucp_worker_progress(w->w);
}

/*
 * Arm w's event fd before a sleep: true if armed. When UCX says it is
 * busy after a progress call that found nothing, what it has is work it
 * cannot finish yet, typically a send waiting for the peer to drain the
 * shared-memory FIFO: the peer needs a CPU more than we need to look
 * again at once. Two shards and their clients on 2 vCPUs otherwise spun
 * here (read, epoll_wait, ucp_worker_arm: GETs as iovecs at a third of
 * one shard's rate, docs/benchmarks.md).
 */
static bool
arm_or_yield(struct net_worker *w)
{
	ucs_status_t st;

	if (w->dhead != NULL || w->efd < 0)
		return false; /* events pending (or no fd): go round again */
	st = ucp_worker_arm(w->w);
	if (st == UCS_ERR_BUSY)
		sched_yield();
	return st == UCS_OK;
}

void
net_wait(struct net_worker *w, int timeout_ms)
{
	struct pollfd pfd = { .fd = w->efd, .events = POLLIN };

	if (arm_or_yield(w))
		poll(&pfd, 1, timeout_ms);
}

void
net_wait_fd(struct net_worker *w, int fd, int timeout_ms)
{
	struct pollfd pfd[2] = { { .fd = w->efd, .events = POLLIN },
				 { .fd = fd, .events = POLLIN } };

	if (arm_or_yield(w))
		poll(pfd, 2, timeout_ms);
}

void
net_wait_us(struct net_worker *w, unsigned timeout_us)
{
	if (net_arm(w) > 0) /* else events pending (or no fd): go round */
		net_sleep(w, timeout_us);
}

int
net_arm(struct net_worker *w)
{
	ucs_status_t st;

	if (w->dhead != NULL)
		return 0;
	if (w->efd < 0)
		return -ENOTSUP;
	st = ucp_worker_arm(w->w);
	return st == UCS_OK ? 1 : st == UCS_ERR_BUSY ? 0 : net_status(st);
}

void
net_sleep(struct net_worker *w, unsigned timeout_us)
{
	struct pollfd pfd = { .fd = w->efd, .events = POLLIN };
	struct timespec ts = { .tv_sec = timeout_us / 1000000u,
			       .tv_nsec = (long)(timeout_us % 1000000u) * 1000 };

	ppoll(&pfd, 1, &ts, NULL);
}

void
net_signal(struct net_worker *w)
{
	(void)ucp_worker_signal(w->w);
}

static void
ep_err_cb(void *arg, ucp_ep_h uep, ucs_status_t st)
{
	struct net_ep *ep = arg;

	(void)uep;
	if (ep->closed)
		return;
	if (ep->w->on_err)
		ep->w->on_err(ep->w->arg, ep, net_status(st));
	net_ep_close(ep);
}

static struct net_ep *
ep_new(struct net_worker *w)
{
	struct net_ep *ep = calloc(1, sizeof(*ep));

	if (ep == NULL)
		return NULL;
	ep->w = w;
	ep->next = w->eps;
	w->eps = ep;
	return ep;
}

static void
ep_unlink_free(struct net_ep *ep)
{
	struct net_ep **pp = &ep->w->eps;

	while (*pp != NULL && *pp != ep)
		pp = &(*pp)->next;
	if (*pp == ep)
		*pp = ep->next;
	free(ep);
}

static void
conn_cb(ucp_conn_request_h req, void *arg)
{
	struct net_worker *w = arg;
	struct net_ep *ep = ep_new(w);
	ucp_ep_params_t p = {
		.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST |
			      UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
			      UCP_EP_PARAM_FIELD_ERR_HANDLER,
		.conn_request = req,
		.err_mode = UCP_ERR_HANDLING_MODE_PEER,
		.err_handler = { .cb = ep_err_cb, .arg = ep },
	};

	if (ep == NULL) {
		ucp_listener_reject(w->listener, req);
		return;
	}
	if (ucp_ep_create(w->w, &p, &ep->ep) != UCS_OK) {
		ep_unlink_free(ep);
		return;
	}
	if (w->on_accept)
		w->on_accept(w->arg, ep);
}

static int
resolve(const char *host, uint16_t port, struct sockaddr_storage *ss,
	socklen_t *len)
{
	struct addrinfo hints = { .ai_family = AF_INET,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE }, *res;
	char ps[8];

	snprintf(ps, sizeof(ps), "%u", port);
	if (getaddrinfo(host, ps, &hints, &res) != 0)
		return -EHOSTUNREACH;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int
net_listen(struct net_worker *w, const char *addr, uint16_t port,
	   net_accept_cb on_accept)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	ucp_listener_params_t p = {
		.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR |
			      UCP_LISTENER_PARAM_FIELD_CONN_HANDLER,
		.conn_handler = { .cb = conn_cb, .arg = w },
	};
	int rc = resolve(addr, port, &ss, &sl);
	ucs_status_t st;

	if (rc < 0)
		return rc;
	p.sockaddr.addr = (struct sockaddr *)&ss;
	p.sockaddr.addrlen = sl;
	w->on_accept = on_accept;
	st = ucp_listener_create(w->w, &p, &w->listener);
	/* the one place BUSY is not retryable: the port is taken */
	return st == UCS_ERR_BUSY ? -EADDRINUSE : net_status(st);
}

int
net_connect(struct net_worker *w, const char *host, uint16_t port,
	    struct net_ep **out)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct net_ep *ep;
	ucp_ep_params_t p = {
		.field_mask = UCP_EP_PARAM_FIELD_FLAGS |
			      UCP_EP_PARAM_FIELD_SOCK_ADDR |
			      UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
			      UCP_EP_PARAM_FIELD_ERR_HANDLER,
		.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER,
		.err_mode = UCP_ERR_HANDLING_MODE_PEER,
	};
	int rc = resolve(host, port, &ss, &sl);

	if (rc < 0)
		return rc;
	ep = ep_new(w);
	if (ep == NULL)
		return -ENOMEM;
	p.sockaddr.addr = (struct sockaddr *)&ss;
	p.sockaddr.addrlen = sl;
	p.err_handler.cb = ep_err_cb;
	p.err_handler.arg = ep;
	rc = net_status(ucp_ep_create(w->w, &p, &ep->ep));
	if (rc < 0) {
		ep_unlink_free(ep);
		return rc;
	}
	*out = ep;
	return 0;
}

static void
close_done(void *req, ucs_status_t st, void *user)
{
	(void)st;
	ep_unlink_free(user);
	ucp_request_free(req);
}

void
net_ep_close(struct net_ep *ep)
{
	bool was;
	ucp_request_param_t p = {
		.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
				UCP_OP_ATTR_FIELD_USER_DATA |
				UCP_OP_ATTR_FIELD_FLAGS,
		.cb.send = close_done,
		.user_data = ep,
		.flags = UCP_EP_CLOSE_FLAG_FORCE,
	};
	ucs_status_ptr_t sp;

	if (ep == NULL || ep->closed)
		return;
	ep->closed = true;
	was = in_issue;
	in_issue = true; /* a forced close may purge requests right here */
	sp = ucp_ep_close_nbx(ep->ep, &p);
	in_issue = was;
	if (sp == NULL || UCS_PTR_IS_ERR(sp))
		ep_unlink_free(ep);
}

void
net_worker_set_max_msg(struct net_worker *w, size_t max)
{
	w->max_msg = max;
}

/* The transport of the lane whose line in info names role ("am_bw#"),
 * as "posix", "tcp", "rc_mlx5"...; false if there is none. */
static bool
lane_tl(const char *info, const char *role, char *tl, size_t cap)
{
	const char *p = strstr(info, role), *line, *c, *e;

	if (p == NULL)
		return false;
	for (line = p; line > info && line[-1] != '\n'; line--)
		;
	c = strstr(line, "lane[");
	c = c != NULL && c < p ? strchr(c, ':') : NULL; /* "lane[1]:" */
	c = c != NULL && c < p ? strchr(c + 1, ':') : NULL; /* " 1:posix/" */
	e = c != NULL ? strchr(c, '/') : NULL;
	if (e == NULL || e > p || (size_t)(e - c - 1) >= cap || e == c + 1)
		return false;
	memcpy(tl, c + 1, (size_t)(e - c - 1));
	tl[e - c - 1] = '\0';
	return true;
}

size_t
net_iov_max_for(const char *info)
{
	char am[32], rma[32];

	if (info == NULL || !lane_tl(info, "am_bw#", am, sizeof(am)))
		return 0;
	if (strcmp(am, "posix") == 0 || strcmp(am, "sysv") == 0 ||
	    strcmp(am, "xpmem") == 0)
		return SIZE_MAX;
	if (!lane_tl(info, "rma_bw#", rma, sizeof(rma)))
		strcpy(rma, am); /* rendezvous goes over the message lane */
	return strcmp(rma, "tcp") == 0 ? NET_IOV_MAX_SOCKET : 0;
}

size_t
net_iov_max_ucp(void *ucp_ep)
{
	char *buf = NULL;
	size_t len = 0, max = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return 0;
	ucp_ep_print_info(ucp_ep, f);
	if (fclose(f) == 0)
		max = net_iov_max_for(buf);
	free(buf);
	return max;
}

/* The largest data part ep sends as an iovec, from its lanes (once: by
 * the first data part, after HELLO and AUTH, its lanes are set). */
static size_t
ep_iov_max(struct net_ep *ep)
{
	if (ep->w->ctx->send_iov)
		return SIZE_MAX;
	if (!ep->w->ctx->send_auto)
		return 0;
	if (!ep->iov_known) {
		ep->iov_max = net_iov_max_ucp(ep->ep);
		ep->iov_known = true;
		log_debug("net", "endpoint %p: data parts up to %zu bytes as "
			  "iovecs", (void *)ep, ep->iov_max);
	}
	return ep->iov_max;
}

void
net_ep_set_user(struct net_ep *ep, void *user)
{
	ep->user = user;
}

void *
net_ep_user(const struct net_ep *ep)
{
	return ep->user;
}

/* Queue o's completion for the next net_progress. */
static void
op_defer(struct op *o)
{
	o->next = NULL;
	if (o->w->dtail)
		o->w->dtail->next = o;
	else
		o->w->dhead = o;
	o->w->dtail = o;
}

/* UCX completed the request of o: deliver now, or at the next progress
 * if UCX completed it inside the issuing call. */
static void
op_done(void *req, ucs_status_t st, void *user)
{
	struct op *o = user;

	o->rc = net_status(st);
	ucp_request_free(req);
	if (in_issue)
		op_defer(o);
	else
		op_finish(o);
}

/* Common tail of every operation: a request pointer or an error. */
static int
op_issued(struct op *o, ucs_status_ptr_t sp)
{
	if (UCS_PTR_IS_ERR(sp)) {
		op_free(o);
		return net_status(UCS_PTR_STATUS(sp));
	}
	if (sp == NULL) { /* done at once after all: deliver at progress */
		o->rc = 0;
		op_defer(o);
	}
	return 0;
}

static struct op *
op_new(struct net_worker *w, net_done_cb cb, void *arg,
       ucp_request_param_t *p)
{
	struct op *o = w->pool;

	if (o != NULL) {
		w->pool = o->next;
		w->npool--;
	} else if ((o = malloc(sizeof(*o))) == NULL) {
		return NULL;
	}
	o->next = NULL;
	o->w = w;
	o->cb = cb;
	o->arg = arg;
	o->buf = NULL;
	o->rc = 0;
	op_live(o);
	*p = (ucp_request_param_t){
		.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
				UCP_OP_ATTR_FIELD_USER_DATA |
				UCP_OP_ATTR_FLAG_NO_IMM_CMPL,
		.cb.send = op_done,
		.user_data = o,
	};
	return o;
}

int
net_send_nb(struct net_ep *ep, unsigned am_id, const void *hdr, size_t hlen,
	    const void *body, size_t blen, net_done_cb cb, void *arg)
{
	ucp_request_param_t p;
	ucs_status_ptr_t sp;
	struct op *o;

	if (ep->closed)
		return -ENOTCONN;
	o = op_new(ep->w, cb, arg, &p);
	if (o == NULL || op_buf(o, hlen + blen) == NULL) {
		if (o != NULL)
			op_free(o);
		return -ENOMEM;
	}
	memcpy(o->buf, hdr, hlen);
	if (blen)
		memcpy((uint8_t *)o->buf + hlen, body, blen);
	p.op_attr_mask |= UCP_OP_ATTR_FIELD_FLAGS;
	p.flags = UCP_AM_SEND_FLAG_REPLY;
	in_issue = true;
	sp = ucp_am_send_nbx(ep->ep, am_id, NULL, 0, o->buf, hlen + blen, &p);
	in_issue = false;
	return op_issued(o, sp);
}

/* The UCX datatype for a receive into iov: contiguous for one piece,
 * unless ctx keeps its memory private; the table lives in o->buf. */
static void
dt_set(struct net_ctx *ctx, struct op *o, const struct iovec *iov,
       unsigned niov, ucp_request_param_t *p, void **buf, size_t *count)
{
	ucp_dt_iov_t *dt = o->buf;

	p->op_attr_mask |= UCP_OP_ATTR_FIELD_DATATYPE;
	if (niov == 1 && !ctx->private_mem) {
		p->datatype = ucp_dt_make_contig(1);
		*buf = iov[0].iov_base;
		*count = iov[0].iov_len;
		return;
	}
	for (unsigned i = 0; i < niov; i++)
		dt[i] = (ucp_dt_iov_t){ iov[i].iov_base, iov[i].iov_len };
	p->datatype = ucp_dt_make_iov();
	*buf = dt;
	*count = niov;
}

/*
 * One contiguous piece per message: UCX 1.13 gets the length of an
 * active message wrong for an iovec datatype (the receiver is told the
 * element count), so a block in several pieces goes as several messages.
 */
int
net_send_data_nb(struct net_ep *ep, unsigned am_id, const void *msg,
		 size_t mlen, const void *data, size_t dlen, net_done_cb cb,
		 void *arg)
{
	ucp_request_param_t p;
	ucs_status_ptr_t sp;
	struct op *o;

	if (ep->closed)
		return -ENOTCONN;
	if (dlen == 0 || mlen == 0)
		return -EINVAL;
	if (dlen <= ep_iov_max(ep)) /* as a one-element iovec (NET_CTX_SEND_*) */
		return net_send_datav_nb(ep, am_id, msg, mlen,
					 &(struct iovec){ (void *)data, dlen },
					 1, cb, arg);
	o = op_new(ep->w, cb, arg, &p);
	if (o == NULL || op_buf(o, mlen) == NULL) {
		if (o != NULL)
			op_free(o);
		return -ENOMEM;
	}
	memcpy(o->buf, msg, mlen);
	p.op_attr_mask |= UCP_OP_ATTR_FIELD_FLAGS | UCP_OP_ATTR_FIELD_DATATYPE;
	/* always rendezvous: the receiver places the bytes, nobody copies */
	p.flags = UCP_AM_SEND_FLAG_REPLY | UCP_AM_SEND_FLAG_RNDV;
	p.datatype = ucp_dt_make_contig(1);
	in_issue = true;
	sp = ucp_am_send_nbx(ep->ep, am_id, o->buf, mlen, data, dlen, &p);
	in_issue = false;
	return op_issued(o, sp);
}

bool
net_ep_sends_iov(struct net_ep *ep, size_t len)
{
	return !ep->closed && len <= ep_iov_max(ep);
}

int
net_send_datav_nb(struct net_ep *ep, unsigned am_id, const void *msg,
		  size_t mlen, const struct iovec *iov, unsigned niov,
		  net_done_cb cb, void *arg)
{
	size_t moff = (mlen + 15) & ~(size_t)15; /* the table after msg */
	ucp_request_param_t p;
	ucs_status_ptr_t sp;
	ucp_dt_iov_t *dt;
	size_t total = 0;
	struct op *o;

	if (ep->closed)
		return -ENOTCONN;
	for (unsigned i = 0; i < niov; i++)
		total += iov[i].iov_len;
	if (niov == 0 || mlen == 0 || total == 0)
		return -EINVAL;
	o = op_new(ep->w, cb, arg, &p);
	if (o == NULL || op_buf(o, moff + niov * sizeof(*dt)) == NULL) {
		if (o != NULL)
			op_free(o);
		return -ENOMEM;
	}
	memcpy(o->buf, msg, mlen);
	dt = (ucp_dt_iov_t *)((uint8_t *)o->buf + moff);
	for (unsigned i = 0; i < niov; i++)
		dt[i] = (ucp_dt_iov_t){ iov[i].iov_base, iov[i].iov_len };
	/* without NO_IMM_CMPL: with it, UCX 1.13 tells the receiver the
	 * iovec's element count as the data part's length (every GET failed
	 * in test_server); an immediate completion is deferred to
	 * net_progress by op_issued all the same */
	p.op_attr_mask &= ~(uint32_t)UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
	p.op_attr_mask |= UCP_OP_ATTR_FIELD_FLAGS | UCP_OP_ATTR_FIELD_DATATYPE;
	p.flags = UCP_AM_SEND_FLAG_REPLY | UCP_AM_SEND_FLAG_RNDV;
	p.datatype = ucp_dt_make_iov();
	in_issue = true;
	sp = ucp_am_send_nbx(ep->ep, am_id, o->buf, mlen, dt, niov, &p);
	in_issue = false;
	return op_issued(o, sp);
}

size_t
net_data_len(const struct net_data *d)
{
	return d->len;
}

bool
net_data_rndv(const struct net_data *d)
{
	return d->rndv;
}

struct net_data *
net_data_keep(struct net_data *d)
{
	struct net_data *h;

	if (!d->rndv || d->heap || d->kept)
		return NULL; /* inline bytes die with the callback */
	h = malloc(sizeof(*h));
	if (h == NULL)
		return NULL;
	*h = *d;
	h->heap = true;
	d->kept = true;
	return h;
}

void
net_data_drop(struct net_data *d)
{
	if (d == NULL || !d->heap)
		return;
	ucp_am_data_release(d->w->w, d->desc);
	free(d);
}

int
net_iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len,
	      struct iovec *out, unsigned max)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n && len > 0; i++) {
		size_t take;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		if (k == max)
			return -1;
		take = iov[i].iov_len - off;
		if (take > len)
			take = len;
		out[k++] = (struct iovec){ (uint8_t *)iov[i].iov_base + off,
					   take };
		len -= take;
		off = 0;
	}
	return len == 0 ? (int)k : -1;
}

/* The receive flavour of op_done (UCX hands it the length too). */
static void
recv_done(void *req, ucs_status_t st, size_t len, void *user)
{
	(void)len;
	op_done(req, st, user);
}

/* Inline data: copy it in (a client's small answer; the daemon refuses
 * inline block data before it gets here). */
static int
recv_inline(struct net_data *d, const struct iovec *iov, unsigned niov,
	    struct op *o)
{
	const uint8_t *src = d->desc;
	size_t left = d->len;

	for (unsigned i = 0; i < niov && left > 0; i++) {
		size_t n = iov[i].iov_len < left ? iov[i].iov_len : left;

		memcpy(iov[i].iov_base, src, n);
		src += n;
		left -= n;
	}
	o->rc = left ? -EMSGSIZE : 0;
	op_defer(o);
	return 0;
}

int
net_data_recv_nb(struct net_data *d, const struct iovec *iov, unsigned niov,
		 net_done_cb cb, void *arg)
{
	struct net_worker *w = d->w;
	ucp_request_param_t p;
	size_t count, total = 0;
	ucs_status_ptr_t sp;
	struct op *o;
	void *buf;

	for (unsigned i = 0; i < niov; i++)
		total += iov[i].iov_len;
	if (niov == 0 || total < d->len) {
		net_data_drop(d);
		return -EMSGSIZE;
	}
	o = op_new(w, cb, arg, &p);
	if (o == NULL || op_buf(o, niov * sizeof(ucp_dt_iov_t)) == NULL) {
		if (o != NULL)
			op_free(o);
		net_data_drop(d);
		return -ENOMEM;
	}
	p.cb.recv_am = recv_done;
	if (!d->rndv) {
		d->kept = true; /* used up */
		return recv_inline(d, iov, niov, o);
	}
	dt_set(w->ctx, o, iov, niov, &p, &buf, &count);
	in_issue = true;
	sp = ucp_am_recv_data_nbx(w->w, d->desc, buf, count, &p);
	in_issue = false;
	if (UCS_PTR_IS_ERR(sp) && d->heap)
		ucp_am_data_release(w->w, d->desc);
	if (d->heap)
		free(d);
	else
		d->kept = false; /* received in the callback: UCX knows */
	return op_issued(o, sp);
}

/* One RMA operation, read (get) or write (put) of the peer's memory. */
static int
rma_nb(struct net_ep *ep, bool put, void *local, size_t len, uint64_t raddr,
       struct net_rkey *rk, net_done_cb cb, void *arg)
{
	ucp_request_param_t p;
	ucs_status_ptr_t sp;
	struct op *o;

	if (ep->closed)
		return -ENOTCONN;
	o = op_new(ep->w, cb, arg, &p);
	if (o == NULL)
		return -ENOMEM;
	in_issue = true;
	sp = put ? ucp_put_nbx(ep->ep, local, len, raddr, rk->rk, &p)
		 : ucp_get_nbx(ep->ep, local, len, raddr, rk->rk, &p);
	in_issue = false;
	return op_issued(o, sp);
}

int
net_get_nb(struct net_ep *ep, void *local, size_t len, uint64_t raddr,
	   struct net_rkey *rk, net_done_cb cb, void *arg)
{
	return rma_nb(ep, false, local, len, raddr, rk, cb, arg);
}

int
net_put_nb(struct net_ep *ep, const void *local, size_t len, uint64_t raddr,
	   struct net_rkey *rk, net_done_cb cb, void *arg)
{
	return rma_nb(ep, true, (void *)local, len, raddr, rk, cb, arg);
}

int
net_flush_nb(struct net_ep *ep, net_done_cb cb, void *arg)
{
	ucp_request_param_t p;
	ucs_status_ptr_t sp;
	struct op *o;

	if (ep->closed)
		return -ENOTCONN;
	o = op_new(ep->w, cb, arg, &p);
	if (o == NULL)
		return -ENOMEM;
	in_issue = true;
	sp = ucp_ep_flush_nbx(ep->ep, &p);
	in_issue = false;
	return op_issued(o, sp);
}

int
net_mem_map(struct net_ctx *ctx, void **addr, size_t len, struct net_mem **out)
{
	ucp_mem_map_params_t p = {
		.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS |
			      UCP_MEM_MAP_PARAM_FIELD_LENGTH |
			      UCP_MEM_MAP_PARAM_FIELD_FLAGS,
		.address = *addr,
		.length = len,
		.flags = *addr ? 0 : UCP_MEM_MAP_ALLOCATE,
	};
	ucp_mem_attr_t a = { .field_mask = UCP_MEM_ATTR_FIELD_ADDRESS };
	struct net_mem *m = calloc(1, sizeof(*m));
	ucs_status_t st;

	if (m == NULL)
		return -ENOMEM;
	st = ucp_mem_map(ctx->ucp, &p, &m->memh);
	if (st == UCS_OK && *addr == NULL) {
		st = ucp_mem_query(m->memh, &a);
		if (st == UCS_OK)
			*addr = a.address;
		else
			ucp_mem_unmap(ctx->ucp, m->memh);
	}
	if (st != UCS_OK) {
		free(m);
		return net_status(st);
	}
	*out = m;
	return 0;
}

void
net_mem_unmap(struct net_ctx *ctx, struct net_mem *m)
{
	if (m == NULL)
		return;
	ucp_mem_unmap(ctx->ucp, m->memh);
	free(m);
}

int
net_mem_pack(struct net_ctx *ctx, struct net_mem *m, void **buf, size_t *len)
{
	void *rb;
	size_t n;
	ucs_status_t st = ucp_rkey_pack(ctx->ucp, m->memh, &rb, &n);

	if (st != UCS_OK)
		return net_status(st);
	*buf = malloc(n);
	if (*buf != NULL)
		memcpy(*buf, rb, n);
	ucp_rkey_buffer_release(rb);
	if (*buf == NULL)
		return -ENOMEM;
	*len = n;
	return 0;
}

int
net_rkey_unpack(struct net_ep *ep, const void *buf, size_t len,
		struct net_rkey **out)
{
	struct net_rkey *rk = calloc(1, sizeof(*rk));
	ucs_status_t st;

	(void)len; /* UCX parses the buffer itself; the length was bounded */
	if (rk == NULL)
		return -ENOMEM;
	st = ucp_ep_rkey_unpack(ep->ep, buf, &rk->rk);
	if (st != UCS_OK) {
		free(rk);
		return net_status(st);
	}
	*out = rk;
	return 0;
}

void
net_rkey_destroy(struct net_rkey *rk)
{
	if (rk == NULL)
		return;
	ucp_rkey_destroy(rk->rk);
	free(rk);
}
