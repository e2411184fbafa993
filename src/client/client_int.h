/*
 * client_int.h - libgpucache's private structures. One struct gpc_client
 * is a UCX worker with one endpoint per server shard, guarded by one
 * mutex: every public call takes it, and progress happens under it.
 */
#ifndef GPC_CLIENT_CLIENT_INT_H
#define GPC_CLIENT_CLIENT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "gpucache/gpucache.h"
#include "net/net.h"
#include "net/wire.h"

#define CLI_MAX_SHARDS 64
/* Blocks of one PUT or GET message to one shard (a daemon with batches):
 * gpucached counts each against server.max_inflight_conn (64). */
#define CLI_XFER_BATCH 16u

struct gpc_mr {
	struct gpc_mr *next;
	uint8_t *addr;
	size_t len;
	bool allocated;
	struct net_mem *mem;
};

struct cli_shard {
	struct net_ep *ep;
	bool up;
};

/* One message in flight to one shard. */
struct cli_part {
	struct gpc_req *req;
	uint64_t req_id;
	unsigned shard;
	unsigned *idx;     /* block or key indices it carries */
	unsigned cnt;
	unsigned found;    /* LOOKUP: leading keys of idx[] present */
	uint64_t got;      /* GET: bytes of DATA arrived */
	unsigned rx;       /* GET: pieces landing */
	int rerr;          /* GET: a piece failed */
	int rstatus;       /* GET: the answer's status */
	bool resp;         /* GET: answered */
	bool done;
	/* GET of several blocks (cnt > 1): each one's length or -errno, as
	 * the first piece or the answer told; the found ones' memory, in
	 * order, where the pieces land */
	int32_t *bst;
	struct iovec *dst;
	unsigned ndst;
	uint64_t want;     /* the found blocks' bytes, by their statuses */
};

struct gpc_req {
	struct gpc_req *next;   /* client's in-flight list */
	struct gpc_client *c;
	uint8_t op;
	struct gpc_block *blocks;
	int *status;            /* key ops: per key */
	unsigned n;
	struct cli_part *parts;
	unsigned nparts, left;
	int rc;                 /* whole-request failure */
	uint64_t aux;           /* LOOKUP: prefix length */
	uint64_t put_aux;       /* PUT: the header's aux (the TTL) */
	uint8_t reply[64];      /* small replies (HELLO, STAT) */
	size_t reply_len;
	bool done;
};

struct gpc_client {
	pthread_mutex_t mu;
	struct net_ctx *ctx;
	struct net_worker *w;
	struct cli_shard sh[CLI_MAX_SHARDS];
	unsigned nshards;
	uint32_t feat;          /* WIRE_FEAT_* of the daemon (HELLO) */
	uint32_t put_piece;     /* its largest PUT DATA piece; 0: any */
	char host[256];
	uint16_t port;
	char tenant[WIRE_MAX_TENANT + 1];
	uint8_t secret[256];
	size_t secret_len;
	uint64_t next_id;
	struct gpc_mr *mrs;
	struct gpc_req *reqs;
	unsigned timeout_ms;
	struct gpc_event *evq;  /* KV events received (ring of CLI_EVQ) */
	unsigned ev_head, ev_n;
	uint64_t ev_lost;
	/* Waiting (cli_wait_any): one thread at a time sleeps on the
	 * worker's event fd (sleeping), the others on cv (followers); both
	 * are woken (cli_wake) when the sleeper wakes or when any thread's
	 * progress found something. */
	pthread_cond_t cv;      /* with mu, on CLOCK_MONOTONIC */
	bool sleeping;
	bool polling;           /* a waiter is polling (the others wait) */
	bool signalled;         /* the sleeper was signalled (once a sleep) */
	unsigned sending;       /* PUT data parts not yet gone out */
	unsigned followers;
	uint64_t spin_ns;       /* UINT64_MAX: never sleep */
};

#define CLI_EVQ 4096u /* KV events kept until gpc_events_poll */

struct gpc_req *cli_req_new(struct gpc_client *c, uint8_t op,
			    unsigned nparts);
int cli_send(struct gpc_client *c, struct gpc_req *r, unsigned s,
	     uint8_t flags, uint32_t count, const struct wire_wr *body,
	     const struct iovec *iov, unsigned niov, struct cli_part *p);
void cli_req_track(struct gpc_client *c, struct gpc_req *r);
int cli_wait(struct gpc_client *c, struct gpc_req *r, uint64_t lim_ns);
/* Progress the worker once, under mu; wakes waiting threads if anything
 * happened. Returns what net_progress does. */
unsigned cli_progress(struct gpc_client *c);
/* Something may have ended: make every waiting thread look (under mu). */
void cli_wake(struct gpc_client *c);
/* One synchronous message to one shard; the answer's body in r->reply. */
int cli_call(struct gpc_client *c, unsigned s, uint8_t op,
	     const struct wire_wr *body, uint64_t lim_ns,
	     struct gpc_req **out);

#endif
