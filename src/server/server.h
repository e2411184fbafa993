/*
 * server.h - gpucached's internals shared by main.c (lifecycle, signals),
 * shard.c (the per-core event loop, connections) and ops.c (the operation
 * table). docs/threading.md says which thread may touch what: a shard's
 * structures belong to its thread alone; the main thread only flips
 * atomics (stop, reload) and joins.
 */
#ifndef GPC_SERVER_SERVER_H
#define GPC_SERVER_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/net.h"
#include "net/wire.h"
#include "server/config.h"
#include "server/metrics.h"
#include "server/rcache.h"
#include "store/store.h"

/* Connections per shard that have not authenticated yet; more are
 * refused at once. */
#define SRV_MAX_UNAUTH 64

enum conn_state { CONN_NEW = 0, CONN_CHALLENGED = 1, CONN_AUTHED = 2 };

struct srv_shard;

struct srv_conn {
	struct srv_conn *next;
	struct srv_shard *sh;
	struct net_ep *ep;
	uint8_t state;          /* enum conn_state */
	bool dead;              /* peer gone: finish what runs, then free */
	int tenant;             /* index in the config, -1 until known */
	char tenant_name[WIRE_MAX_TENANT + 1];
	uint8_t nonce[WIRE_NONCE_LEN];
	uint64_t ns_seed;       /* folds the tenant into every namespace */
	uint16_t cls;           /* the tenant's engine class (quotas) */
	unsigned inflight;      /* requests not yet answered */
	struct srv_req *puts;   /* PUTs taking DATA, newest first */
	uint64_t t_open;        /* accepted at (clock_now_ns) */
	bool doomed;            /* to be dropped by the sweep */
	struct srv_evq *evq;    /* KV event subscriptions (events.c) */
};

/* PUT_SKIP: the store does not want the block (a held key, or refused
 * by the policy): its DATA is let go unreceived, then it is answered 0. */
enum put_state { PUT_WAIT_ROOM = 0, PUT_RESERVED = 1, PUT_DONE = 2,
		 PUT_SKIP = 3 };

struct srv_getv;
struct srv_putv;

/* DATA pieces of one PUT that land at once, each checksummed as it lands
 * (more at once: the commit checksums the whole block). 2 MiB in pieces
 * of 256K (server.put_piece) is 8. */
#define SRV_LAND 16u

/* A PUT or GET in flight (one block). */
struct srv_req {
	struct srv_req *link;   /* shard's retry list */
	struct srv_req *aprev, *anext; /* shard's list of every request */
	struct srv_req *cnext;  /* connection's PUTs taking DATA */
	struct srv_conn *c;
	struct wire_hdr h;
	struct wire_blk blk;    /* ns with the tenant folded in */
	uint64_t cns;           /* the client's ns (its metrics row) */
	int err;                /* first failure of a transfer */
	/* PUT */
	uint8_t state;          /* enum put_state */
	bool checked;           /* PUT: store_put_check has had its say */
	struct store_hint hint; /* PUT: the client's TTL and priority */
	union {
		struct store_resv resv; /* PUT: the block's place */
		struct {                /* GET in a batch: where its bytes are */
			struct iovec iov[STORE_RESV_MAXIOV];
			unsigned n;
		} at;
	};
	struct srv_getv *gv;    /* GET: the batch it is part of, or NULL */
	unsigned gi;            /* its place in the batch (GET and PUT) */
	bool gv_over;           /* the batch is over: req_end ends it */
	struct srv_putv *pv;    /* PUT: the batch it is part of, or NULL */
	uint64_t base;          /* PUT in a batch: its DATA's first offset */
	uint64_t announced;     /* bytes of DATA arrived so far */
	unsigned rx;            /* DATA pieces landing */
	uint16_t land_busy;     /* land[i] in use: bit i (i < SRV_LAND) */
	bool land_lost;         /* a piece landed without a slot of its own */
	struct srv_land {       /* a DATA piece landing: where it goes; the
				 * last is shared by pieces past the rest */
		struct srv_req *r;
		uint32_t off, len;
	} land[SRV_LAND + 1];
	unsigned npend;         /* DATA kept until there is room */
	struct net_data *pend[WIRE_MAX_IOV];
	uint64_t pend_off[WIRE_MAX_IOV];
	/* GET */
	struct store_zc_ref *ref;   /* the engine's bytes */
	struct rcache_ent *ce;  /* served from the read cache */
	struct rcache_ent *pe;  /* loading into it for this GET (promotion) */
	uint8_t *rbuf;          /* read buffer, from flash */
	size_t rcap;            /* bytes of rbuf */
	uint32_t len;           /* the block's length */
	unsigned tx;            /* DATA pieces going out (+1 while sending) */
	bool answered;          /* the last piece, which answers, went out */
	uint64_t t0;
	uint64_t t_wait;        /* waiting on the client since; 0: not */
};

struct srv;

struct srv_shard {
	struct srv *srv;
	unsigned idx;
	pthread_t th;
	struct net_worker *w;
	struct store *st;
	struct srv_conn *conns;
	struct srv_req *retry;  /* waiting for write-buffer room, oldest
				 * first (PUTs start in arrival order) */
	struct srv_req *retry_tail;
	struct rcache *rc;      /* blocks prefetched by LOOKUP */
	struct srv_req *all;    /* every request in flight, oldest last */
	uint64_t last_sweep;
	unsigned inflight;
	struct srv_shard_metrics *m;
	atomic_bool stop;
	bool draining;          /* stopping: no new transfers or connections */
	int start_rc;           /* set before the thread signals ready */
	atomic_int ready;       /* 0 starting, 1 running, -1 failed */
	uint64_t last_publish;
	unsigned tenants_gen;   /* quotas applied for this generation */
	unsigned nsubscribed;   /* connections with KV event subscriptions */
};

struct srv {
	struct srv_config cfg;
	struct net_ctx *net;
	struct srv_metrics *metrics;
	struct srv_shard *sh;
	unsigned nsh;
	uint64_t region_len;    /* bytes of each device per shard */
	_Atomic(struct srv_config *) tenants; /* current tenant table */
	/* Every tenant name since start-up, at its index in every table
	 * (metrics and STAT counters are kept by index); main thread. */
	char slots[SRV_MAX_TENANTS][SRV_TENANT_MAX + 1];
	unsigned nslots;
	atomic_uint tenants_gen;              /* bumped by each reload */
};

/* shard.c */
int srv_shard_start(struct srv *s, unsigned idx);
void srv_shard_stop(struct srv_shard *sh);
void srv_shard_join(struct srv_shard *sh);
void srv_conn_drop(struct srv_conn *c);
int srv_reply(struct srv_conn *c, const struct wire_hdr *req, int status,
	      uint32_t count, uint64_t aux, const void *body, size_t blen);
int srv_shard_of(const uint8_t *key, unsigned nshards);

/* events.c: KV events for subscribers */
struct srv_evq;
/* Subscribe c to namespace ns (client_ns as the client names it): 0,
 * -ENOSPC past WIRE_MAX_SUBS, -ENOMEM. */
int srv_events_subscribe(struct srv_conn *c, uint64_t client_ns,
			 uint64_t ns);
/* c is being freed: its queue goes once its EVENTs are sent. */
void srv_events_conn_gone(struct srv_conn *c);
/* store_ev_cb for the shard's store (arg: the shard). */
void srv_events_store_cb(void *arg, int ev, uint64_t ns, const uint8_t *key);
/* Send what the loop round queued. */
void srv_events_flush(struct srv_shard *sh);

/* ops.c */
void srv_dispatch(struct srv_conn *c, const uint8_t *buf, size_t len,
		  struct net_data *d);
void srv_retry(struct srv_shard *sh);
void srv_sweep(struct srv_shard *sh, uint64_t now);
void srv_conn_puts_fail(struct srv_conn *c);
/* Free the calling shard thread's spare read buffers (at its exit). */
void srv_rbufs_free(void);

#endif
