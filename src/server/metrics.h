/*
 * metrics.h - gpucached's counters, latency histograms and Prometheus
 * exposition (docs/metrics.md lists every metric).
 *
 * Threads. Each shard thread owns one struct srv_shard_metrics and is its
 * only writer: every srv_metrics_* recording call below takes the shard's
 * struct and must be made from that shard's thread (a thread that is not
 * a shard, e.g. an acceptor, needs a slot of its own: count it in
 * nshards). Recording is lock-free and O(1): relaxed atomic loads and
 * stores, no read-modify-write. Readers (srv_metrics_render, the HTTP
 * thread) run concurrently with every writer and see each counter whole.
 *
 * Engine figures cross threads the same way: the shard thread copies its
 * store's stats and device health into a struct srv_store_snap every so
 * often (say each 100-500 ms, and at once when a device fails) and hands
 * it to srv_metrics_publish_store, a seqlock whose reader is render. The
 * HTTP thread thus never touches a struct store.
 */
#ifndef GPC_SERVER_METRICS_H
#define GPC_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/cacheline.h"
#include "net/wire.h"
#include "store/store.h"

/* Alignment and size granule of every shard's struct (false sharing). */
#define SRV_CACHELINE GPC_CACHELINE
/* Opcode slots: the wire opcodes 1..WIRE_OP_MAX-1; slot 0 counts invalid
 * opcodes. */
#define SRV_METRICS_OPS WIRE_OP_MAX
#define SRV_METRICS_MAX_TENANTS 4096u
/* Rows of namespaces per shard at most (server.namespace_metrics). */
#define SRV_METRICS_MAX_NS_ROWS 65536u

struct srv_metrics;
struct srv_shard_metrics;
struct srv_metrics_http;

/* What a tenant's blocks did (srv_metrics_tenant). */
enum srv_tenant_ev {
	SRV_TENANT_PUT = 0,  /* blocks stored, bytes stored */
	SRV_TENANT_HIT = 1,  /* GET blocks found, bytes served */
	SRV_TENANT_MISS = 2, /* GET blocks not found (bytes ignored) */
};

/* A shard's engine figures as the shard thread last saw them. */
/* The DRAM read cache (rcache.h) beside the engine: blocks LOOKUP with
 * PREFETCH brought up from flash. It holds copies (the tier is inclusive),
 * so it adds speed, not capacity. */
struct srv_dram_snap {
	uint64_t bytes, max, hits, loads;
};

struct srv_store_snap {
	struct store_stats stats;
	struct srv_dram_snap dram;
	uint8_t dev_failed[STORE_MAX_DEVS]; /* i < stats.ndev: 1 = failed */
};

/*
 * What render needs from the server; every callback runs on the thread
 * that renders (the HTTP thread) and must be safe there: e.g. tenant
 * names fixed at start-up, or swapped only under the server's own lock.
 */
struct srv_metrics_src {
	void *ctx;
	/* Name of tenant t (< ntenants), or NULL: index unused, not exported.
	 * NULL callback: every index is exported, labelled by its number. */
	const char *(*tenant_name)(void *ctx, unsigned t);
	/* Optional: tenant t's quota in bytes, 0 for none. */
	uint64_t (*tenant_quota)(void *ctx, unsigned t);
};

/* nshards writer slots (1..1024), tenant indices 0..ntenants-1 (1..
 * SRV_METRICS_MAX_TENANTS), and per shard rows for the first ns_rows
 * (0..SRV_METRICS_MAX_NS_ROWS; 0: none) namespaces it sees, at most
 * ns_per_tenant (<= ns_rows; 0: none) of them a tenant's, for figures
 * per namespace (docs/metrics.md, "Namespaces"). 0, -EINVAL or
 * -ENOMEM. */
int srv_metrics_create(unsigned nshards, unsigned ntenants, unsigned ns_rows,
		       unsigned ns_per_tenant, struct srv_metrics **out);
/* Free m (NULL allowed); the HTTP server using it must be stopped first. */
void srv_metrics_destroy(struct srv_metrics *m);
/* Slot of shard i (< nshards); NULL otherwise. */
struct srv_shard_metrics *srv_metrics_shard(struct srv_metrics *m,
					    unsigned i);

/*
 * One request of opcode op (without WIRE_OP_RESP; out of range counts as
 * slot 0) finished with status (0 or -errno): requests += 1; errors += 1
 * if status < 0, except -GPC_EBUSY and -EAGAIN, which count as busy
 * rejections instead; the latency goes into op's histogram unless busy.
 * bytes_in / bytes_out: payload bytes moved for it in each direction.
 */
void srv_metrics_op(struct srv_shard_metrics *s, unsigned op, int status,
		    uint64_t latency_ns, uint64_t bytes_in, uint64_t bytes_out);
/*
 * Per tenant, and per namespace (ns: the client's, as it sent it; a row
 * of the shard's, if it has one or room for one): each call counts for
 * tenant t (ignored if out of range) and for its namespace ns.
 */
/* nblocks blocks did ev, moving bytes. */
void srv_metrics_tenant(struct srv_shard_metrics *s, unsigned t, uint64_t ns,
			enum srv_tenant_ev ev, uint64_t nblocks,
			uint64_t bytes);
/* A LOOKUP of nkeys keys found a prefix of found blocks; ru (NULL: none)
 * is the reuse the policy saw for them (store_lookup_part). */
void srv_metrics_tenant_lookup(struct srv_shard_metrics *s, unsigned t,
			       uint64_t ns, unsigned nkeys, unsigned found,
			       const struct policy_reuse *ru);
/* The shard's clock, in seconds, for its namespace rows: a row that has
 * seen no event for 10 minutes may go to a new namespace once every row
 * is taken. Call it now and then (the shard does at each publish). */
void srv_metrics_clock(struct srv_shard_metrics *s, uint64_t now_s);
/* The engine confirmed it used nblocks blocks it fetched. */
void srv_metrics_tenant_used(struct srv_shard_metrics *s, unsigned t,
			     uint64_t ns, uint64_t nblocks);
/* Tenant t's counters on this shard, for its own STAT. */
struct srv_tenant_counts {
	uint64_t puts, hits, misses, stored, served, usage;
};
void srv_metrics_tenant_read(const struct srv_shard_metrics *s, unsigned t,
			     struct srv_tenant_counts *out);
/* Bytes tenant t holds on this shard now (gauge; render sums shards). */
void srv_metrics_tenant_usage(struct srv_shard_metrics *s, unsigned t,
			      uint64_t bytes);
/* Payload bytes copied by the CPU on the server (the design says none). */
void srv_metrics_add_copy(struct srv_shard_metrics *s, uint64_t bytes);
/* A connection opened (+1) or closed (-1) on this shard. */
void srv_metrics_conn(struct srv_shard_metrics *s, int delta);
/* A connection failed authentication. */
void srv_metrics_auth_fail(struct srv_shard_metrics *s);

/* Publish the shard's engine figures (shard thread only). */
void srv_metrics_publish_store(struct srv_shard_metrics *s,
			       const struct srv_store_snap *snap);
/* Read the latest published figures, from any thread: 0, -ENOENT if none
 * was published yet, -EAGAIN if the writer kept publishing meanwhile. */
int srv_metrics_read_store(const struct srv_shard_metrics *s,
			   struct srv_store_snap *out);

/*
 * Render the Prometheus text exposition format 0.0.4 into a malloc'd,
 * NUL-terminated buffer (*out, freed by the caller; *len excludes the
 * NUL). Any thread, concurrently with the writers and with other renders.
 * src may be NULL. 0 or -ENOMEM.
 */
int srv_metrics_render(struct srv_metrics *m, const struct srv_metrics_src *src,
		       char **out, size_t *len);

/*
 * Serve GET (or HEAD) /metrics on addr:port (IPv4 or IPv6 literal; NULL
 * means 127.0.0.1; port 0 picks a free one, see srv_metrics_http_port)
 * from libmicrohttpd's own thread: 200 text/plain; version=0.0.4; any
 * other path 404, any other method 405. m and *src (copied) must outlive
 * the server. 0, -EINVAL (bad address) or -errno from bind.
 */
int srv_metrics_http_start(struct srv_metrics *m,
			   const struct srv_metrics_src *src, const char *addr,
			   uint16_t port, struct srv_metrics_http **out);
uint16_t srv_metrics_http_port(const struct srv_metrics_http *h);
/* Stop serving and free h (NULL allowed); waits for a render in flight. */
void srv_metrics_http_stop(struct srv_metrics_http *h);

/* Lower-case name of opcode slot op ("put", ...; "unknown" for slot 0). */
const char *srv_metrics_op_name(unsigned op);

#endif
