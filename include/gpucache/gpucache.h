/*
 * gpucache.h - the public ABI of GPUCache.
 *
 * Every exported symbol starts with gpc_. Functions that can fail return 0
 * or a negative error code: a negative errno (-ENOMEM, -EIO, ...) or one of
 * GPUCache's own codes below, which start at 1024. gpc_strerror() names
 * every code. This header is the only one a client needs; libgpucache (the
 * client library) extends it in a later version without breaking it.
 */
#ifndef GPUCACHE_GPUCACHE_H
#define GPUCACHE_GPUCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GPC_VERSION_MAJOR 0
#define GPC_VERSION_MINOR 3

/* GPUCache's own error codes; functions return them negated. */
enum gpc_error {
	GPC_EBASE = 1024,
	GPC_ECORRUPT = 1024,  /* on-disk or on-wire bytes failed a check */
	GPC_EVERSION = 1025,  /* unknown format or protocol version */
	GPC_ENOTFOUND = 1026, /* no such block (a miss) */
	GPC_ETOOBIG = 1027,   /* value larger than a segment can hold */
	GPC_EDEGRADED = 1028, /* more devices lost than the code tolerates */
	GPC_EUUID = 1029,     /* device belongs to another store */
	GPC_ENOSPACE = 1030,  /* no segment can be written (devices failed) */
	GPC_ECONFIG = 1031,   /* bad configuration value */
	GPC_EBUSY = 1032,     /* overloaded: retry later */
	GPC_EAUTH = 1033,     /* authentication failed */
	GPC_ECLOSED = 1034,   /* object is closing or closed */
	GPC_EQUOTA = 1035,    /* over the tenant's quota (e.g. a pin) */
	GPC_ELAST = 1036,
};

/*
 * Return a static, human-readable string for an error code. Accepts the
 * code with either sign; never returns NULL.
 */
const char *gpc_strerror(int err);

/*
 * ---- Client library (libgpucache) ----
 *
 * Thread-safe: every call may come from any thread; one connection object
 * serializes its own use. Handles are opaque; option structs start with
 * their own size so they can grow without breaking older callers.
 */

#define GPC_KEY_LEN 32
#define GPC_PUT_DURABLE 0x1u     /* acknowledge once on flash */
/* Keys name their content (an engine's block hash): a key the tier holds
 * already is not rewritten (the put only marks the block used), nor one
 * another client's put is landing (readable once that put ends). */
#define GPC_PUT_IF_ABSENT 0x4u
#define GPC_LOOKUP_PREFETCH 0x2u /* start reading the found prefix */
/* (flag values are unique across calls, so one passed to the wrong call
 * is ignored rather than read as another) */

struct gpc_client;
struct gpc_mr;
struct gpc_req;

struct gpc_connect_opts {
	size_t struct_size;   /* sizeof(struct gpc_connect_opts) */
	const char *tenant;
	const void *secret;
	size_t secret_len;
	unsigned timeout_ms;  /* connect and authenticate; 0 = 10 s */
	/* Since 0.3 (a caller built against 0.2 passes the smaller struct
	 * and gets the default): how long gpc_wait and gpc_wait_any poll
	 * the transport after its last news before they sleep on its event
	 * fd. 0 = the default, GPC_SPIN_DEFAULT_US; GPC_SPIN_ALWAYS = never
	 * sleep (poll, yielding the CPU: the lowest latency, at the price of
	 * a CPU per waiting thread). 64 bits, so that it lies past 0.2's
	 * struct, padding included. */
	uint64_t spin_us;
};

#define GPC_SPIN_DEFAULT_US 50u
#define GPC_SPIN_ALWAYS UINT64_MAX

/* One block of a batch: its key, where its bytes are (an iovec over
 * registered memory), and its result, written by the library (0 or a
 * length on success, a negative error code otherwise). */
struct gpc_iov {
	void *addr;
	size_t len;
	struct gpc_mr *mr;    /* registration that contains [addr, addr+len) */
};

struct gpc_block {
	const uint8_t *key;   /* GPC_KEY_LEN bytes */
	const struct gpc_iov *iov;
	unsigned iovcnt;
	int status;           /* out */
};

/* Connect to "gpc://host:port" (port of shard 0) and authenticate on
 * every shard. */
int gpc_connect(const char *url, const struct gpc_connect_opts *opts,
		struct gpc_client **out);
void gpc_close(struct gpc_client *c);
unsigned gpc_shards(const struct gpc_client *c);

/* Register caller memory for transfers (with UCX, locally: nothing about
 * it is sent); or let UCX allocate it. Every iovec of a block must lie
 * inside the registration it names, or the block fails with -EINVAL
 * before anything is sent. A registration must outlive the transfers
 * that use it. */
int gpc_mem_register(struct gpc_client *c, void *addr, size_t len,
		     struct gpc_mr **out);
int gpc_mem_alloc(struct gpc_client *c, size_t len, void **addr,
		  struct gpc_mr **out);
void gpc_mem_deregister(struct gpc_client *c, struct gpc_mr *mr);

/*
 * Asynchronous batch operations: submit returns 0 and a request, which
 * gpc_test (non-blocking: 1 done, 0 not yet) or gpc_wait completes; the
 * blocks' status fields are written before completion is reported. The
 * request is freed by gpc_req_free after completion. Blocks and their
 * iovecs must stay valid until then. Return values: 0 if the request
 * completed (individual blocks may still have failed), or a negative code
 * for the request as a whole. A block answered -GPC_EBUSY (the daemon had
 * no room for it: its limits count blocks, and a batch may get room for
 * only its first ones) was not stored or read: submit those blocks again,
 * and only those, since a submit sends every block it is given (the
 * blocking gpc_put and gpc_get do this themselves, with backoff).
 */
int gpc_put_submit(struct gpc_client *c, uint64_t ns, struct gpc_block *b,
		   unsigned n, unsigned flags, struct gpc_req **req);
int gpc_get_submit(struct gpc_client *c, uint64_t ns, struct gpc_block *b,
		   unsigned n, struct gpc_req **req);
int gpc_test(struct gpc_client *c, struct gpc_req *req);
int gpc_wait(struct gpc_client *c, struct gpc_req *req);
void gpc_req_free(struct gpc_req *req);

/*
 * Since 0.3: wait until one of the n requests (n >= 1, all of client c)
 * is done, or timeout_us passes (0: test once, never block). Returns the
 * index of a done one (its result is then gpc_wait's, at once),
 * -ETIMEDOUT, or -EINVAL for bad arguments. For a caller that keeps many
 * requests in flight and would otherwise spin on gpc_test. Like
 * gpc_wait, it polls for the client's spin_us and then sleeps on the
 * transport's event fd, so a waiting thread costs no CPU; any number of
 * threads may wait on one client at once (not to be cancelled while they
 * do: pthread_cancel of a waiting thread is not supported).
 */
int gpc_wait_any(struct gpc_client *c, struct gpc_req *const *reqs,
		 unsigned n, unsigned timeout_us);

/*
 * PUT with options (since 0.2): the flags above plus the client's hints
 * for the blocks (docs/cache-policy.md). ttl_s: the blocks expire that
 * many seconds after the put, counted in whole seconds of the daemon's
 * clock: at least ttl_s, under ttl_s + 1 (misses from then on; 0 =
 * never; at most GPC_MAX_TTL). priority: GPC_PRIO_LOW blocks are the first to go (never
 * rewritten when their flash is reclaimed, unless pinned), GPC_PRIO_HIGH
 * ones are kept by reclaim whether read or not, within its budget. A put
 * of a key the tier holds already with GPC_PUT_IF_ABSENT leaves the held
 * block's hints as they were. Set o->struct_size = sizeof(*o): fields
 * past it count as 0, so the struct can grow. -EINVAL for a value out of
 * range, before anything is sent; a server answers a bad one with
 * -EINVAL per block. A server older than 0.2 ignores the hints.
 */
#define GPC_PRIO_NORMAL 0u
#define GPC_PRIO_LOW 1u
#define GPC_PRIO_HIGH 2u
#define GPC_MAX_TTL (10u * 366 * 86400) /* ten years, in seconds */
struct gpc_put_opts {
	size_t struct_size;   /* sizeof(struct gpc_put_opts) */
	unsigned flags;       /* GPC_PUT_DURABLE, GPC_PUT_IF_ABSENT */
	uint32_t ttl_s;
	unsigned priority;    /* GPC_PRIO_* */
};
int gpc_put_submit_ex(struct gpc_client *c, uint64_t ns, struct gpc_block *b,
		      unsigned n, const struct gpc_put_opts *o,
		      struct gpc_req **req);

/* Blocking helpers. */
int gpc_put(struct gpc_client *c, uint64_t ns, struct gpc_block *b,
	    unsigned n, unsigned flags);
/* gpc_put with options (since 0.2). */
int gpc_put_ex(struct gpc_client *c, uint64_t ns, struct gpc_block *b,
	       unsigned n, const struct gpc_put_opts *o);
int gpc_get(struct gpc_client *c, uint64_t ns, struct gpc_block *b,
	    unsigned n);
/* How many leading keys of keys[0..n) (32 bytes each) are present. */
int gpc_lookup(struct gpc_client *c, uint64_t ns, const uint8_t *keys,
	       unsigned n, unsigned flags, unsigned *present);
/* status[i] gets 0 or a negative code per key (status may be NULL). */
int gpc_delete(struct gpc_client *c, uint64_t ns, const uint8_t *keys,
	       unsigned n, int *status);
int gpc_pin(struct gpc_client *c, uint64_t ns, const uint8_t *keys,
	    unsigned n, int pin, int *status);

/*
 * The hit funnel's last stage (since 0.2; docs/metrics.md): of the blocks
 * this client fetched (GET hits) in namespace ns, its engine used
 * nblocks, e.g. a prefix load that finished and went into a forward
 * pass. Counted per tenant (gpucache_tenant_used_blocks_total), so the
 * funnel reads looked up -> found -> fetched -> used. A count, not keys:
 * the daemon knows which blocks it served, and one small message per
 * request costs less than a key list. Blocking; 0 sends nothing.
 */
int gpc_confirm_used(struct gpc_client *c, uint64_t ns, uint64_t nblocks);

/*
 * A namespace's weight (since 0.2; docs/cache-policy.md): what its blocks
 * are worth a flash rewrite when the tier reclaims room. 1, the default:
 * a block is kept if it was read since written. 0: never kept that way
 * (blocks cheap to recompute; pins still hold). 2..GPC_MAX_WEIGHT: a
 * block is also kept unread, up to weight - 1 times in a row (blocks
 * costly to recompute: a large model's). For all of the tenant's
 * connections; sent to every shard in turn, stopping at the first that
 * fails (the shards before it have the new weight then: set it again).
 * The daemon keeps weights in DRAM, up to 1,024 namespaces of a tenant
 * per shard (-ENOSPC past it; 1 frees one): set them again after it
 * restarts. A daemon before 0.2 drops the connection. Blocking. -EINVAL
 * past GPC_MAX_WEIGHT.
 */
#define GPC_MAX_WEIGHT 8u
int gpc_set_weight(struct gpc_client *c, uint64_t ns, unsigned weight);

/*
 * The calling tenant's own figures, summed over the shards (STAT; nothing
 * of other tenants shows). Set out->struct_size = sizeof(*out) first:
 * fields past it are not written, so the struct can grow.
 */
struct gpc_stat {
	uint32_t struct_size;
	uint64_t puts;          /* blocks stored */
	uint64_t gets;          /* blocks asked for */
	uint64_t hits, misses;
	uint64_t usage_bytes;   /* flash its blocks take now (~100 ms old) */
	uint64_t stored_bytes, served_bytes;
	uint64_t copy_bytes;    /* payload bytes the server copied: 0 */
};
int gpc_stat(struct gpc_client *c, struct gpc_stat *out);

/*
 * KV events, for routers (docs/protocol.md, "KV events"): after
 * gpc_subscribe(c, ns), every shard tells this client which blocks of its
 * tenant's namespace ns it stored (GPC_EV_STORED: a new block, not a
 * touch) and which left it (GPC_EV_REMOVED: evicted or deleted). Up to 16
 * namespaces per client. gpc_events_poll drives the connection once and
 * takes up to max events, oldest first, into ev; *n gets their count and
 * *lost (may be NULL) the events dropped since the last poll because this
 * client did not keep up (the server's and this library's queues are
 * bounded): after a loss, resynchronize (e.g. LOOKUP what matters).
 */
#define GPC_EV_STORED 1
#define GPC_EV_REMOVED 2
struct gpc_event {
	uint64_t ns;                 /* as subscribed */
	uint8_t key[GPC_KEY_LEN];
	uint32_t type;               /* GPC_EV_* */
	uint32_t shard;
};
int gpc_subscribe(struct gpc_client *c, uint64_t ns);
int gpc_events_poll(struct gpc_client *c, struct gpc_event *ev,
		    unsigned max, unsigned *n, uint64_t *lost);

/*
 * Chained block key, as engines with prefix caching compute them:
 * SHA-256(parent[32] || u32 salt_len || salt || u32 n || n x u32 token),
 * all integers little-endian; parent NULL means 32 zero bytes.
 */
int gpc_key_chain(const uint8_t *parent, const void *salt, size_t salt_len,
		  const uint32_t *tokens, size_t ntokens, uint8_t *out);
/* A namespace id from a description of model and KV layout (any bytes,
 * e.g. "llama-3-8b/bf16/16tok/layers0-31/tp0"): XXH3-64 of them. */
uint64_t gpc_namespace(const void *desc, size_t len);

#ifdef __cplusplus
}
#endif
#endif
