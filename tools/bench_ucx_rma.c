/*
 * bench_ucx_rma.c - the ceiling gpucached is measured against: raw UCX
 * (ucp) doing what gpucached's data path does and nothing else.
 *
 * One process forks a server (one thread, one worker, a listener on
 * --port), then runs --threads client threads in the parent, each with its
 * own UCX context, worker and endpoint, like a libgpucache client per
 * thread. A client maps --depth slots of --size bytes (UCP_MEM_MAP_ALLOCATE
 * by default: one-sided RMA over shared memory needs UCX-allocated
 * memory; --client-mem malloc for ordinary memory), sends the packed rkey
 * in an active message, then keeps --depth requests in flight: a 16-byte
 * active message naming op and slot. The server drives the RMA against
 * the client's memory, as gpucached does: op "put" (the client stores) is
 * ucp_get_nbx from the client's slot into a server buffer, answered when
 * it completes; op "get" is ucp_put_nbx from a server buffer into the
 * slot, then ucp_ep_flush_nbx, answered when the flush completes (the
 * bytes have landed). No store, no checks, no copies of our own.
 *
 * Prints one line per op: GB/s, requests, p50/p99/p999 of the per-request
 * latency, and the server's CPU seconds per GB (its utime+stime from
 * /proc, before and after the op's timed run).
 *
 * --mode am measures what protocol v2 (gpucached today) does instead: no
 * RMA feature, no rkey; block bytes travel as the data part of an active
 * message sent by rendezvous (UCP_AM_SEND_FLAG_RNDV). A put is the 16-byte
 * request as the AM header and the slot as its data part; the server
 * receives it with ucp_am_recv_data_nbx into its buffer as a one-element
 * UCX iovec (as gpucached's private context does, so no key to its memory
 * goes out) and answers with a 16-byte message when it has landed. A get
 * is a 16-byte request; the server sends the block from its buffer as the
 * data part of an AM with the request as header, rendezvous with the put
 * scheme (UCX_RNDV_SCHEME=put_zcopy on the server's context unless the
 * environment says otherwise, as gpucached sets it), and the client
 * receives it straight into the slot: the landed data is the answer, as
 * a GET's last DATA piece is gpucached's answer. Peer error handling on
 * every endpoint and whole-message AM handlers, as in gpucached.
 *
 * Every loop polls without sleeping but yields its CPU when a progress
 * call found nothing (--no-yield: never): on a machine with fewer CPUs
 * than busy pollers, a rendezvous (which needs both ends to progress)
 * otherwise waits a scheduler slice per step when client and server
 * share a CPU (AM over shared memory: p50 24 ms instead of 0.15 ms here).
 *
 * Threads: each client thread owns its context, worker and endpoint; the
 * server is single-threaded; nothing is shared across threads but the
 * start/stop flags and the result arrays.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <ucp/api/ucp.h>

#include "net/net.h"
#include "bench_common.h"

#define AM_TO_SRV 0u
#define AM_TO_CLI 1u
#define MSG_REG 1u
#define MSG_PUT 2u
#define MSG_GET 3u
#define MAX_CONNS 64
#define MAX_DEPTH 256

struct opts {
	uint16_t port;
	size_t size;
	unsigned threads, depth;
	double seconds;
	bool client_malloc, srv_reg;
	bool am; /* --mode am: AM rendezvous, no RMA */
	bool yield; /* sched_yield() when a progress call found nothing */
	size_t span; /* --server-span: server buffer bytes per connection */
	unsigned pieces; /* --pieces: a slot moves as a UCX iovec of this many */
	int send; /* --send: how the server sends a get's slot, as
		   * gpucached's server.data_send: SEND_CONTIG, SEND_IOV, or
		   * SEND_AUTO (per connection, from its lanes) */
	const char *ops;
};

static struct opts o = { .port = 17300, .size = 256 << 10, .threads = 1,
			 .depth = 8, .seconds = 2.0, .ops = "put,get",
			 .yield = true, .pieces = 1 };

#define MAX_PIECES 64
enum { SEND_CONTIG, SEND_IOV, SEND_AUTO };

/*
 * --pieces P: a slot's bytes as P equal pieces of a UCX iovec, each
 * piece standing for one block of a batch sent as one message (P = 1:
 * one piece, the slot itself). Returns P.
 */
static unsigned
slot_iov(uint8_t *base, ucp_dt_iov_t *iov)
{
	size_t step = o.size / o.pieces;

	for (unsigned i = 0; i < o.pieces; i++)
		iov[i] = (ucp_dt_iov_t){ base + i * step,
					 i + 1 == o.pieces ? o.size - i * step
							   : step };
	return o.pieces;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
die(const char *what, ucs_status_t st)
{
	fprintf(stderr, "bench_ucx_rma: %s: %s\n", what, ucs_status_string(st));
	exit(1);
}

static ucp_context_h
ctx_new(bool server)
{
	ucp_params_t p = { .field_mask = UCP_PARAM_FIELD_FEATURES,
			   .features = UCP_FEATURE_AM |
				       (o.am ? 0 : UCP_FEATURE_RMA) };
	ucp_config_t *cfg;
	ucp_context_h ctx;
	ucs_status_t st = ucp_config_read(NULL, NULL, &cfg);

	if (st != UCS_OK)
		die("ucp_config_read", st);
	if (getenv("UCX_TCP_CM_REUSEADDR") == NULL)
		(void)ucp_config_modify(cfg, "CM_REUSEADDR", "y");
	/* as gpucached's private context (src/net/net_ucx.c) */
	if (server && o.am && getenv("UCX_RNDV_SCHEME") == NULL)
		(void)ucp_config_modify(cfg, "RNDV_SCHEME", "put_zcopy");
	st = ucp_init(&p, cfg, &ctx);
	ucp_config_release(cfg);
	if (st != UCS_OK)
		die("ucp_init", st);
	return ctx;
}

static ucp_worker_h
worker_new(ucp_context_h ctx, unsigned am_id, ucp_am_recv_callback_t cb,
	   void *arg)
{
	ucp_worker_params_t wp = { .field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE,
				   .thread_mode = UCS_THREAD_MODE_SINGLE };
	ucp_am_handler_param_t hp = {
		.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID |
			      UCP_AM_HANDLER_PARAM_FIELD_CB |
			      UCP_AM_HANDLER_PARAM_FIELD_ARG |
			      UCP_AM_HANDLER_PARAM_FIELD_FLAGS,
		.id = am_id, .cb = cb, .arg = arg,
		.flags = o.am ? UCP_AM_FLAG_WHOLE_MSG : 0,
	};
	ucp_worker_h w;
	ucs_status_t st = ucp_worker_create(ctx, &wp, &w);

	if (st != UCS_OK)
		die("ucp_worker_create", st);
	st = ucp_worker_set_am_recv_handler(w, &hp);
	if (st != UCS_OK)
		die("ucp_worker_set_am_recv_handler", st);
	return w;
}

/* ---- wire: 16-byte requests and answers; REG carries the rkey ---- */

struct msg {
	uint32_t type, slot;
	uint64_t id;
};

struct reg_msg {
	uint32_t type, rkey_len;
	uint64_t addr, len;
	uint8_t rkey[];
};

/* Fire-and-forget AM send; the payload is copied by UCX or kept until
 * the request completes, so senders keep it alive (small: eager copies). */
static void
send_free_cb(void *req, ucs_status_t st, void *user)
{
	(void)st;
	free(user);
	ucp_request_free(req);
}

static void
am_send(ucp_ep_h ep, unsigned id, const void *buf, size_t len)
{
	void *copy = malloc(len);
	ucp_request_param_t p = {
		.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
				UCP_OP_ATTR_FIELD_USER_DATA |
				UCP_OP_ATTR_FIELD_FLAGS,
		.cb.send = send_free_cb,
		.flags = UCP_AM_SEND_FLAG_REPLY,
	};
	ucs_status_ptr_t sp;

	memcpy(copy, buf, len);
	p.user_data = copy;
	sp = ucp_am_send_nbx(ep, id, NULL, 0, copy, len, &p);
	if (sp == NULL)
		free(copy);
	else if (UCS_PTR_IS_ERR(sp))
		die("ucp_am_send_nbx", UCS_PTR_STATUS(sp));
}

/* ---- server ---- */

struct sconn {
	ucp_ep_h ep;
	ucp_rkey_h rk;
	uint64_t raddr, rlen;
	uint8_t *buf;           /* nbuf slots of size bytes */
	size_t nbuf;            /* depth, or --server-span / size */
	size_t rot;             /* the next slot of a span, in turn */
	ucp_mem_h memh;
	bool used;
	bool iov_known; /* --send auto: iov_max is set */
	size_t iov_max;
};

/* Whether c's server sends a get's slot as an iovec (--send), as
 * gpucached decides it (net_iov_max_for). */
static bool
srv_send_iov(struct sconn *c)
{
	if (o.send != SEND_AUTO)
		return o.send == SEND_IOV;
	if (!c->iov_known) {
		c->iov_max = net_iov_max_ucp(c->ep);
		c->iov_known = true;
	}
	return o.size <= c->iov_max;
}

struct sop {
	struct sconn *c;
	struct msg m;
	bool flushing;
	ucp_dt_iov_t iov[MAX_PIECES]; /* am: the server buffer as a UCX iovec */
};

static struct {
	ucp_context_h ctx;
	ucp_worker_h w;
	ucp_listener_h l;
	struct sconn conns[MAX_CONNS];
} S;

static void srv_rma_cb(void *req, ucs_status_t st, void *user);

static void
srv_answer(struct sop *op)
{
	struct msg a = op->m;

	am_send(op->c->ep, AM_TO_CLI, &a, sizeof(a));
	free(op);
}

static void
srv_rma_cb(void *req, ucs_status_t st, void *user)
{
	struct sop *op = user;
	ucp_request_param_t p = {
		.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
				UCP_OP_ATTR_FIELD_USER_DATA,
		.cb.send = srv_rma_cb, .user_data = op,
	};
	ucs_status_ptr_t sp;

	if (req != NULL)
		ucp_request_free(req);
	if (st != UCS_OK)
		die("server rma", st);
	if (op->m.type == MSG_PUT || op->flushing) {
		srv_answer(op);
		return;
	}
	op->flushing = true; /* GET: the bytes must land before the answer */
	sp = ucp_ep_flush_nbx(op->c->ep, &p);
	if (sp == NULL)
		srv_answer(op);
	else if (UCS_PTR_IS_ERR(sp))
		die("ucp_ep_flush_nbx", UCS_PTR_STATUS(sp));
}

static void
srv_request(struct sconn *c, const struct msg *m)
{
	struct sop *op = calloc(1, sizeof(*op));
	ucp_request_param_t p = {
		.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
				UCP_OP_ATTR_FIELD_USER_DATA,
		.cb.send = srv_rma_cb, .user_data = op,
	};
	uint64_t raddr = c->raddr + (uint64_t)m->slot * o.size;
	uint8_t *lbuf = c->buf + (size_t)m->slot * o.size;
	ucs_status_ptr_t sp;

	op->c = c;
	op->m = *m;
	if (m->slot >= o.depth)
		die("bad slot", UCS_ERR_INVALID_PARAM);
	sp = m->type == MSG_PUT ? ucp_get_nbx(c->ep, lbuf, o.size, raddr, c->rk, &p)
				: ucp_put_nbx(c->ep, lbuf, o.size, raddr, c->rk, &p);
	if (UCS_PTR_IS_ERR(sp))
		die("server rma issue", UCS_PTR_STATUS(sp));
	if (sp == NULL)
		srv_rma_cb(NULL, UCS_OK, op);
}

/* --mode am: the put's data part has landed in the server's buffer. */
static void
srv_am_recv_cb(void *req, ucs_status_t st, size_t len, void *user)
{
	(void)len;
	if (req != NULL)
		ucp_request_free(req);
	if (st != UCS_OK)
		die("server am receive", st);
	srv_answer(user);
}

/* --mode am: the get's block has gone out (landed at the client). */
static void
srv_am_send_cb(void *req, ucs_status_t st, void *user)
{
	if (req != NULL)
		ucp_request_free(req);
	if (st != UCS_OK)
		die("server am send", st);
	free(user);
}

/* The server buffer of a request: the client's slot, or with
 * --server-span the next slot of the span in turn (so that data lands in,
 * and leaves from, memory as large as a store's rather than a few slots
 * that stay in the CPU's caches). */
static uint8_t *
srv_slot(struct sconn *c, const struct msg *m)
{
	size_t i = o.span > 0 ? c->rot++ % c->nbuf : m->slot;

	return c->buf + i * o.size;
}

/* --mode am put: receive the data part (desc) into the slot. */
static void
srv_am_put(struct sconn *c, const struct msg *m, void *desc)
{
	struct sop *op = calloc(1, sizeof(*op));
	ucp_request_param_t p = {
		.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
				UCP_OP_ATTR_FIELD_USER_DATA |
				UCP_OP_ATTR_FIELD_DATATYPE,
		.cb.recv_am = srv_am_recv_cb, .user_data = op,
		.datatype = ucp_dt_make_iov(),
	};
	ucs_status_ptr_t sp;

	if (m->slot >= o.depth)
		die("bad slot", UCS_ERR_INVALID_PARAM);
	op->c = c;
	op->m = *m;
	sp = ucp_am_recv_data_nbx(S.w, desc, op->iov,
				  slot_iov(srv_slot(c, m), op->iov), &p);
	if (UCS_PTR_IS_ERR(sp))
		die("ucp_am_recv_data_nbx", UCS_PTR_STATUS(sp));
	if (sp == NULL)
		srv_am_recv_cb(NULL, UCS_OK, o.size, op);
}

/* --mode am get: send the slot as the data part of the answer. */
static void
srv_am_get(struct sconn *c, const struct msg *m)
{
	struct sop *op = calloc(1, sizeof(*op));
	ucp_request_param_t p = {
		.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
				UCP_OP_ATTR_FIELD_USER_DATA |
				UCP_OP_ATTR_FIELD_FLAGS |
				UCP_OP_ATTR_FIELD_DATATYPE,
		.cb.send = srv_am_send_cb, .user_data = op,
		.flags = UCP_AM_SEND_FLAG_REPLY | UCP_AM_SEND_FLAG_RNDV,
	};
	ucs_status_ptr_t sp;
	bool iov = o.pieces > 1 || srv_send_iov(c);

	if (m->slot >= o.depth)
		die("bad slot", UCS_ERR_INVALID_PARAM);
	p.datatype = iov ? ucp_dt_make_iov() : ucp_dt_make_contig(1);
	op->c = c;
	op->m = *m; /* the header stays alive until the send completes */
	if (iov)
		sp = ucp_am_send_nbx(c->ep, AM_TO_CLI, &op->m, sizeof(op->m),
				     op->iov, slot_iov(srv_slot(c, m), op->iov),
				     &p);
	else
		sp = ucp_am_send_nbx(c->ep, AM_TO_CLI, &op->m, sizeof(op->m),
				     srv_slot(c, m), o.size, &p);
	if (UCS_PTR_IS_ERR(sp))
		die("ucp_am_send_nbx (get)", UCS_PTR_STATUS(sp));
	if (sp == NULL)
		free(op);
}

static void
srv_reg(struct sconn *c, const struct reg_msg *r)
{
	ucs_status_t st = o.am ? UCS_OK
			       : ucp_ep_rkey_unpack(c->ep, r->rkey, &c->rk);

	if (st != UCS_OK)
		die("ucp_ep_rkey_unpack", st);
	c->raddr = r->addr;
	c->rlen = r->len;
	c->nbuf = o.depth;
	if (o.span / o.size > c->nbuf)
		c->nbuf = o.span / o.size;
	if (posix_memalign((void **)&c->buf, 4096, c->nbuf * o.size))
		die("posix_memalign", UCS_ERR_NO_MEMORY);
	memset(c->buf, 0x5a, c->nbuf * o.size);
	if (o.srv_reg) {
		ucp_mem_map_params_t mp = {
			.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS |
				      UCP_MEM_MAP_PARAM_FIELD_LENGTH,
			.address = c->buf, .length = c->nbuf * o.size,
		};
		st = ucp_mem_map(S.ctx, &mp, &c->memh);
		if (st != UCS_OK)
			die("ucp_mem_map (server)", st);
	}
	struct msg a = { .type = MSG_REG };
	am_send(c->ep, AM_TO_CLI, &a, sizeof(a));
}

static struct sconn *
sconn_of(ucp_ep_h ep)
{
	for (unsigned i = 0; i < MAX_CONNS; i++)
		if (S.conns[i].used && S.conns[i].ep == ep)
			return &S.conns[i];
	return NULL;
}

static ucs_status_t
srv_am(void *arg, const void *hdr, size_t hlen, void *data, size_t len,
       const ucp_am_recv_param_t *param)
{
	struct sconn *c = sconn_of(param->reply_ep);
	struct msg m;

	(void)arg;
	if (c == NULL)
		die("server: message from nobody", UCS_ERR_INVALID_PARAM);
	if (o.am && hlen == sizeof(m)) { /* a put with its data part */
		memcpy(&m, hdr, sizeof(m));
		if (m.type != MSG_PUT || len != o.size ||
		    !(param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV))
			die("server: unexpected data", UCS_ERR_INVALID_PARAM);
		srv_am_put(c, &m, data);
		return UCS_OK; /* received in the callback */
	}
	if (hlen != 0 || len < sizeof(m) ||
	    (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV))
		die("server: unexpected message", UCS_ERR_INVALID_PARAM);
	memcpy(&m, data, sizeof(m));
	if (m.type == MSG_REG)
		srv_reg(c, data);
	else if (o.am && m.type == MSG_GET)
		srv_am_get(c, &m);
	else if (o.am)
		die("server: put without data", UCS_ERR_INVALID_PARAM);
	else
		srv_request(c, &m);
	return UCS_OK;
}

static void
srv_ep_err(void *arg, ucp_ep_h ep, ucs_status_t st)
{
	(void)arg, (void)ep, (void)st; /* clients leave at the end */
}

static void
srv_conn(ucp_conn_request_h req, void *arg)
{
	ucp_ep_params_t p = {
		.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST |
			      UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
			      UCP_EP_PARAM_FIELD_ERR_HANDLER,
		.conn_request = req,
		.err_mode = UCP_ERR_HANDLING_MODE_PEER,
		.err_handler = { .cb = srv_ep_err },
	};
	(void)arg;
	for (unsigned i = 0; i < MAX_CONNS; i++) {
		if (S.conns[i].used)
			continue;
		if (ucp_ep_create(S.w, &p, &S.conns[i].ep) != UCS_OK)
			die("server ucp_ep_create", UCS_ERR_IO_ERROR);
		S.conns[i].used = true;
		return;
	}
	ucp_listener_reject(S.l, req);
}

static void
server_main(int ready_fd)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(o.port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	ucp_listener_params_t lp = {
		.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR |
			      UCP_LISTENER_PARAM_FIELD_CONN_HANDLER,
		.sockaddr = { .addr = (struct sockaddr *)&sa,
			      .addrlen = sizeof(sa) },
		.conn_handler = { .cb = srv_conn },
	};
	ucs_status_t st;

	S.ctx = ctx_new(true);
	S.w = worker_new(S.ctx, AM_TO_SRV, srv_am, NULL);
	st = ucp_listener_create(S.w, &lp, &S.l);
	if (st != UCS_OK)
		die("ucp_listener_create", st);
	if (write(ready_fd, "r", 1) != 1)
		exit(1);
	close(ready_fd);
	for (;;) /* busy-polls like a gpucached shard under load */
		if (ucp_worker_progress(S.w) == 0 && o.yield)
			sched_yield();
}

/* ---- clients ---- */

struct cli {
	pthread_t th;
	unsigned idx;
	ucp_context_h ctx;
	ucp_worker_h w;
	ucp_ep_h ep;
	ucp_mem_h memh;
	uint8_t *mem;
	bool reg_done;
	uint64_t t0[MAX_DEPTH];
	struct msg hdr[MAX_DEPTH]; /* am puts: kept until the send completes */
	ucp_dt_iov_t iov[MAX_DEPTH][MAX_PIECES]; /* and their --pieces */
	unsigned done_slot[MAX_DEPTH], ndone;
	uint64_t *lat;
	size_t nlat, cap;
	uint64_t bytes;
};

static struct cli *clis;
static atomic_int phase; /* 0 warm-up, 1 timed, 2 stop */

struct cli_rx {
	struct cli *c;
	unsigned slot;
	ucp_dt_iov_t iov[MAX_PIECES];
};

/* --mode am get: the block has landed in the slot: the get is done. */
static void
cli_rx_cb(void *req, ucs_status_t st, size_t len, void *user)
{
	struct cli_rx *x = user;

	(void)len;
	if (req != NULL)
		ucp_request_free(req);
	if (st != UCS_OK)
		die("client am receive", st);
	x->c->done_slot[x->c->ndone++] = x->slot;
	free(x);
}

static ucs_status_t
cli_am(void *arg, const void *hdr, size_t hlen, void *data, size_t len,
       const ucp_am_recv_param_t *param)
{
	struct cli *c = arg;
	struct msg m;

	if (hlen == sizeof(m)) { /* --mode am: a get's block */
		struct cli_rx *x = malloc(sizeof(*x));
		ucp_request_param_t p = {
			.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
					UCP_OP_ATTR_FIELD_USER_DATA |
					UCP_OP_ATTR_FIELD_DATATYPE,
			.cb.recv_am = cli_rx_cb, .user_data = x,
			.datatype = o.pieces > 1 ? ucp_dt_make_iov()
						 : ucp_dt_make_contig(1),
		};
		ucs_status_ptr_t sp;

		memcpy(&m, hdr, sizeof(m));
		if (m.slot >= o.depth || len != o.size ||
		    !(param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV))
			die("client: unexpected data", UCS_ERR_INVALID_PARAM);
		x->c = c;
		x->slot = m.slot;
		if (o.pieces > 1)
			sp = ucp_am_recv_data_nbx(
				c->w, data, x->iov,
				slot_iov(c->mem + (size_t)m.slot * o.size,
					 x->iov),
				&p);
		else
			sp = ucp_am_recv_data_nbx(
				c->w, data, c->mem + (size_t)m.slot * o.size,
				o.size, &p);
		if (UCS_PTR_IS_ERR(sp))
			die("client ucp_am_recv_data_nbx", UCS_PTR_STATUS(sp));
		if (sp == NULL)
			cli_rx_cb(NULL, UCS_OK, len, x);
		return UCS_OK;
	}
	if (len < sizeof(m))
		return UCS_OK;
	memcpy(&m, data, sizeof(m));
	if (m.type == MSG_REG)
		c->reg_done = true;
	else
		c->done_slot[c->ndone++] = m.slot;
	return UCS_OK;
}

static void
cli_setup(struct cli *c)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(o.port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	ucp_ep_params_t ep = {
		.field_mask = UCP_EP_PARAM_FIELD_FLAGS |
			      UCP_EP_PARAM_FIELD_SOCK_ADDR |
			      UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE,
		.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER,
		.sockaddr = { .addr = (struct sockaddr *)&sa,
			      .addrlen = sizeof(sa) },
		.err_mode = UCP_ERR_HANDLING_MODE_PEER,
	};
	size_t len = (size_t)o.depth * o.size;
	ucp_mem_map_params_t mp = {
		.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS |
			      UCP_MEM_MAP_PARAM_FIELD_LENGTH |
			      UCP_MEM_MAP_PARAM_FIELD_FLAGS,
		.length = len,
	};
	ucp_mem_attr_t ma = { .field_mask = UCP_MEM_ATTR_FIELD_ADDRESS };
	void *rk;
	size_t rklen;
	struct reg_msg *r;
	ucs_status_t st;

	c->ctx = ctx_new(false);
	c->w = worker_new(c->ctx, AM_TO_CLI, cli_am, c);
	st = ucp_ep_create(c->w, &ep, &c->ep);
	if (st != UCS_OK)
		die("client ucp_ep_create", st);
	if (o.client_malloc) {
		if (posix_memalign(&mp.address, 4096, len))
			die("posix_memalign", UCS_ERR_NO_MEMORY);
	} else {
		mp.flags = UCP_MEM_MAP_ALLOCATE;
	}
	st = ucp_mem_map(c->ctx, &mp, &c->memh);
	if (st == UCS_OK)
		st = ucp_mem_query(c->memh, &ma);
	if (st != UCS_OK)
		die("client ucp_mem_map", st);
	c->mem = ma.address;
	memset(c->mem, (int)c->idx, len);
	if (o.am) { /* no key: the server allocates its buffers only */
		rk = NULL;
		rklen = 0;
	} else {
		st = ucp_rkey_pack(c->ctx, c->memh, &rk, &rklen);
		if (st != UCS_OK)
			die("ucp_rkey_pack", st);
	}
	r = calloc(1, sizeof(*r) + rklen);
	*r = (struct reg_msg){ .type = MSG_REG, .rkey_len = (uint32_t)rklen,
			       .addr = (uint64_t)(uintptr_t)c->mem, .len = len };
	if (rk != NULL) {
		memcpy(r->rkey, rk, rklen);
		ucp_rkey_buffer_release(rk);
	}
	am_send(c->ep, AM_TO_SRV, r, sizeof(*r) + rklen);
	free(r);
	while (!c->reg_done)
		ucp_worker_progress(c->w);
}

static void
cli_put_sent(void *req, ucs_status_t st, void *user)
{
	(void)user;
	if (st != UCS_OK)
		die("client am put", st);
	ucp_request_free(req);
}

/* --mode am put: the request as the header, the slot as the data part,
 * by rendezvous, as libgpucache sends a PUT's DATA. */
static void
cli_am_put(struct cli *c, unsigned slot)
{
	ucp_request_param_t p = {
		.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
				UCP_OP_ATTR_FIELD_FLAGS |
				UCP_OP_ATTR_FIELD_DATATYPE,
		.cb.send = cli_put_sent,
		.flags = UCP_AM_SEND_FLAG_REPLY | UCP_AM_SEND_FLAG_RNDV,
		.datatype = o.pieces > 1 ? ucp_dt_make_iov()
					 : ucp_dt_make_contig(1),
	};
	ucs_status_ptr_t sp;

	if (o.pieces > 1)
		sp = ucp_am_send_nbx(c->ep, AM_TO_SRV, &c->hdr[slot],
				     sizeof(c->hdr[slot]), c->iov[slot],
				     slot_iov(c->mem + (size_t)slot * o.size,
					      c->iov[slot]),
				     &p);
	else
		sp = ucp_am_send_nbx(c->ep, AM_TO_SRV, &c->hdr[slot],
				     sizeof(c->hdr[slot]),
				     c->mem + (size_t)slot * o.size, o.size, &p);
	if (UCS_PTR_IS_ERR(sp))
		die("ucp_am_send_nbx (put)", UCS_PTR_STATUS(sp));
}

static void
cli_issue(struct cli *c, uint32_t type, unsigned slot)
{
	struct msg m = { .type = type, .slot = slot };

	c->t0[slot] = now_ns();
	c->hdr[slot] = m;
	if (o.am && type == MSG_PUT)
		cli_am_put(c, slot);
	else
		am_send(c->ep, AM_TO_SRV, &m, sizeof(m));
}

static void
lat_add(struct cli *c, uint64_t v)
{
	if (c->nlat == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 65536;
		c->lat = realloc(c->lat, c->cap * sizeof(*c->lat));
	}
	c->lat[c->nlat++] = v;
}

/* One op: warm-up until phase 1, count during it, drain at 2. */
static void
cli_run(struct cli *c, uint32_t type)
{
	unsigned inflight = 0;

	for (unsigned s = 0; s < o.depth; s++, inflight++)
		cli_issue(c, type, s);
	while (inflight > 0) {
		int ph = atomic_load_explicit(&phase, memory_order_relaxed);

		if (ucp_worker_progress(c->w) == 0 && o.yield)
			sched_yield();
		for (unsigned i = 0; i < c->ndone; i++) {
			unsigned s = c->done_slot[i];

			inflight--;
			if (ph == 1) {
				lat_add(c, now_ns() - c->t0[s]);
				c->bytes += o.size;
			}
			if (ph < 2) {
				cli_issue(c, type, s);
				inflight++;
			}
		}
		c->ndone = 0;
	}
}

static pthread_barrier_t bar;
static uint32_t cur_type;

static void *
cli_main(void *arg)
{
	struct cli *c = arg;

	cli_setup(c);
	for (;;) {
		pthread_barrier_wait(&bar); /* op chosen or stop */
		if (cur_type == 0)
			break;
		cli_run(c, cur_type);
		pthread_barrier_wait(&bar); /* op done */
	}
	return NULL;
}

static double
proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL || fgets(buf, sizeof(buf), f) == NULL) {
		if (f)
			fclose(f);
		return 0;
	}
	fclose(f);
	p = strrchr(buf, ')');
	/* fields after ')': state(3) ... utime(14) stime(15) */
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
				&ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void
report(const char *name, double dt, double cpu)
{
	uint64_t bytes = 0, n = 0, *all;
	size_t k = 0;

	for (unsigned i = 0; i < o.threads; i++)
		bytes += clis[i].bytes, n += clis[i].nlat;
	all = malloc((n ? n : 1) * sizeof(*all));
	for (unsigned i = 0; i < o.threads; i++) {
		memcpy(all + k, clis[i].lat, clis[i].nlat * sizeof(*all));
		k += clis[i].nlat;
		clis[i].nlat = 0;
		clis[i].bytes = 0;
	}
	qsort(all, n, sizeof(*all), bench_cmp_u64);
#define Q(q) (n ? all[(size_t)((double)(n - 1) * (q))] / 1000.0 : 0.0)
	printf("ucx mode=%s%s op=%s size=%zu threads=%u depth=%u gbps=%.3f reqs=%" PRIu64
	       " p50_us=%.1f p99_us=%.1f p999_us=%.1f srv_cpu_s=%.3f bytes=%" PRIu64
	       " srv_cpu_s_per_gb=%.4f\n",
	       o.am ? "am" : "rma", o.span > 0 ? "-mem" : "", name, o.size, o.threads, o.depth, (double)bytes / dt / 1e9, n,
	       Q(0.5), Q(0.99), Q(0.999), cpu, bytes,
	       bytes ? cpu / ((double)bytes / 1e9) : 0);
#undef Q
	fflush(stdout);
	free(all);
}

static void
usage(void)
{
	fprintf(stderr,
"usage: bench_ucx_rma [--port N] [--size S] [--threads N] [--depth N]\n"
"                     [--seconds T] [--ops put,get] [--client-mem ucx|malloc]\n"
"                     [--server-reg] [--mode rma|am] [--no-yield]\n"
"                     [--server-span BYTES] [--pieces P]\n"
"                     [--send contig|iovec|auto]\n"
"  Server-driven RMA against client-registered memory, or (--mode am)\n"
"  block data by active-message rendezvous as gpucached moves it (see the\n"
"  top of tools/bench_ucx_rma.c). UCX_TLS and other UCX_* variables apply\n"
"  to both the server and the clients.\n");
	exit(2);
}

static void
parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "port", 1, NULL, 'p' }, { "size", 1, NULL, 's' },
		{ "threads", 1, NULL, 't' }, { "depth", 1, NULL, 'd' },
		{ "seconds", 1, NULL, 'T' }, { "ops", 1, NULL, 'o' },
		{ "client-mem", 1, NULL, 'm' }, { "server-reg", 0, NULL, 'r' },
		{ "mode", 1, NULL, 'M' }, { "no-yield", 0, NULL, 'Y' },
		{ "server-span", 1, NULL, 'S' }, { "pieces", 1, NULL, 'P' },
		{ "send", 1, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'p': o.port = (uint16_t)atoi(optarg); break;
		case 's': o.size = bench_parse_size(optarg); break;
		case 't': o.threads = (unsigned)atoi(optarg); break;
		case 'd': o.depth = (unsigned)atoi(optarg); break;
		case 'T': o.seconds = atof(optarg); break;
		case 'o': o.ops = optarg; break;
		case 'm': o.client_malloc = strcmp(optarg, "malloc") == 0; break;
		case 'r': o.srv_reg = true; break;
		case 'Y': o.yield = false; break;
		case 'S': o.span = bench_parse_size(optarg); break;
		case 'P': o.pieces = (unsigned)atoi(optarg); break;
		case 'D':
			o.send = strcmp(optarg, "iovec") == 0  ? SEND_IOV
				 : strcmp(optarg, "auto") == 0 ? SEND_AUTO
							       : SEND_CONTIG;
			if (o.send == SEND_CONTIG &&
			    strcmp(optarg, "contig") != 0)
				usage();
			break;
		case 'M':
			if (strcmp(optarg, "am") != 0 && strcmp(optarg, "rma") != 0)
				usage();
			o.am = strcmp(optarg, "am") == 0;
			break;
		default: usage();
		}
	}
	if (o.size == 0 || o.threads == 0 || o.threads > MAX_CONNS ||
	    o.depth == 0 || o.depth > MAX_DEPTH || o.pieces == 0 ||
	    o.pieces > MAX_PIECES || o.size < o.pieces)
		usage();
}

int
main(int argc, char **argv)
{
	int pfd[2];
	char ch;
	pid_t srv;
	char ops[64], *save = NULL;

	parse(argc, argv);
	if (pipe(pfd) != 0)
		return 1;
	srv = fork();
	if (srv == 0) {
		close(pfd[0]);
		server_main(pfd[1]);
		_exit(0);
	}
	close(pfd[1]);
	if (read(pfd[0], &ch, 1) != 1) {
		fprintf(stderr, "bench_ucx_rma: server did not start\n");
		return 1;
	}
	clis = calloc(o.threads, sizeof(*clis));
	pthread_barrier_init(&bar, NULL, o.threads + 1);
	for (unsigned i = 0; i < o.threads; i++) {
		clis[i].idx = i;
		pthread_create(&clis[i].th, NULL, cli_main, &clis[i]);
	}
	snprintf(ops, sizeof(ops), "%s", o.ops);
	for (char *op = strtok_r(ops, ",", &save); op != NULL;
	     op = strtok_r(NULL, ",", &save)) {
		double cpu0, t0, dt;

		cur_type = strcmp(op, "get") == 0 ? MSG_GET : MSG_PUT;
		atomic_store(&phase, 0);
		pthread_barrier_wait(&bar);
		usleep(300000); /* warm-up */
		cpu0 = proc_cpu_s(srv);
		t0 = (double)now_ns();
		atomic_store(&phase, 1);
		usleep((useconds_t)(o.seconds * 1e6));
		atomic_store(&phase, 2);
		dt = ((double)now_ns() - t0) / 1e9;
		cpu0 = proc_cpu_s(srv) - cpu0;
		pthread_barrier_wait(&bar); /* clients drained: results stable */
		report(op, dt, cpu0);
	}
	cur_type = 0;
	pthread_barrier_wait(&bar);
	for (unsigned i = 0; i < o.threads; i++)
		pthread_join(clis[i].th, NULL);
	kill(srv, SIGKILL);
	waitpid(srv, NULL, 0);
	return 0;
}
