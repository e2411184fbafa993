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

#define SRV_MAX_REGIONS 64

enum conn_state { CONN_NEW = 0, CONN_CHALLENGED = 1, CONN_AUTHED = 2 };

struct srv_region {
	bool used;
	uint32_t id;
	uint64_t addr, len;
	struct net_rkey *rk;
};

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
	struct srv_region regs[SRV_MAX_REGIONS];
	unsigned inflight;      /* requests not yet answered */
};

/* Per block of a PUT or GET in flight. */
struct srv_blk {
	struct srv_req *r;
	unsigned i;
	unsigned rma;           /* RMA operations outstanding */
	int err;
	struct store_resv resv;
	struct store_zc_ref *ref;
	struct rcache_ent *ce;  /* GET served from the read cache */
	uint8_t *rbuf;
	size_t rcap;            /* bytes of rbuf */
};

struct srv_req {
	struct srv_req *link;   /* shard's retry list */
	struct srv_req *aprev, *anext; /* shard's list of every request */
	struct srv_conn *c;
	struct wire_hdr h;
	uint8_t *body;
	uint64_t ns;
	unsigned n;             /* blocks or keys */
	struct wire_block *blk;
	struct wire_desc *desc;
	int32_t *status;
	struct srv_blk *b;
	unsigned left;          /* blocks not finished */
	unsigned next_blk;      /* next block to start */
	uint64_t t0, bytes;
};

struct srv;

struct srv_shard {
	struct srv *srv;
	unsigned idx;
	pthread_t th;
	struct net_worker *w;
	struct store *st;
	struct srv_conn *conns;
	struct srv_req *retry;  /* waiting for write-buffer room */
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
};

struct srv {
	struct srv_config cfg;
	struct net_ctx *net;
	struct srv_metrics *metrics;
	struct srv_shard *sh;
	unsigned nsh;
	uint64_t region_len;    /* bytes of each device per shard */
	_Atomic(struct srv_config *) tenants; /* current tenant table */
	atomic_uint tenants_gen;              /* bumped by each reload */
};

/* shard.c */
int srv_shard_start(struct srv *s, unsigned idx);
void srv_shard_stop(struct srv_shard *sh);
void srv_shard_join(struct srv_shard *sh);
void srv_conn_drop(struct srv_conn *c);
int srv_reply(struct srv_conn *c, const struct wire_hdr *req, int status,
	      uint32_t count, uint64_t aux, const void *body, size_t blen);
void srv_req_done(struct srv_req *r);
int srv_shard_of(const uint8_t *key, unsigned nshards);

/* ops.c */
void srv_dispatch(struct srv_conn *c, const uint8_t *buf, size_t len);
void srv_retry(struct srv_shard *sh);
void srv_sweep(struct srv_shard *sh);
/* Free the calling shard thread's spare read buffers (at its exit). */
void srv_rbufs_free(void);

#endif
