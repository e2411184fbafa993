/*
 * metrics.c - per-shard counters and latency histograms, the seqlock that
 * publishes each shard's engine figures, Prometheus text rendering, and
 * the libmicrohttpd server that serves it.
 *
 * Ownership: struct srv_metrics owns one contiguous array of shard slots,
 * each aligned to and a multiple of SRV_CACHELINE bytes, so no two shards
 * ever write the same cache line. A slot has one writer (its shard) and
 * any number of readers (renders). Writers use relaxed load + relaxed
 * store on each counter: no lock, no locked instruction, whole 64-bit
 * values for readers on every architecture, and no data race in the C11
 * memory model (so nothing for TSan to report). Counters need no order
 * among themselves; a render is a sum of per-counter snapshots, each
 * monotonic, not a cut across counters.
 *
 * The engine snapshot is bigger than a word, so it is published under a
 * seqlock (Boehm, "Can seqlocks get along with programming language
 * memory models?", 2012): the payload is stored as relaxed atomic words;
 * the writer makes seq odd, issues a release fence, stores the words and
 * release-stores seq even; the reader acquire-loads seq, loads the words,
 * issues an acquire fence and re-reads seq, retrying on a change.
 *
 * Rendering allocates its scratch per call and only reads the slots, so
 * renders may run concurrently (the HTTP thread, `gpucache stat`, tests).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpucache/gpucache.h"
#include "hist.h"
#include "metrics.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SNAP_WORDS ((sizeof(struct srv_store_snap) + 7u) / 8u)
#define SEQ_TRIES 1000u
#define MAX_SHARDS 1024u

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics are lock-free");
_Static_assert((SRV_CACHELINE & (SRV_CACHELINE - 1)) == 0,
	       "cache line is a power of two");

enum { OPC_REQ, OPC_ERR, OPC_BUSY, OPC_IN, OPC_OUT, OPC_N };
/* TC_DEPTH: LOOKUPs by the length of the prefix found, one counter per
 * histogram bucket (depth_le), the last one open. TC_REUSE: the policy's
 * buckets of reuse distance (policy_reuse), TC_REUSE_SUM their sum,
 * TC_REUSE_FAR its misses. A tenant and a namespace row count the same. */
#define TC_NDEPTH 8
static const unsigned depth_le[TC_NDEPTH - 1] = { 0, 1, 4, 16, 64, 256, 1024 };
enum { TC_PUTS, TC_HITS, TC_MISSES, TC_STORED, TC_SERVED, TC_USAGE,
       TC_LOOKUPS, TC_LKEYS, TC_LFOUND, TC_CONFIRMED, TC_DEPTH,
       TC_REUSE = TC_DEPTH + TC_NDEPTH,
       TC_REUSE_SUM = TC_REUSE + POLICY_REUSE_BUCKETS, TC_REUSE_FAR,
       TC_N };
#define TC_GETS TC_N /* rendered as hits + misses */

struct op_ctr {
	_Atomic uint64_t v[OPC_N];
};

struct tenant_ctr {
	_Atomic uint64_t v[TC_N];
};

/*
 * A shard's namespaces: the first cap (tenant, client namespace) pairs
 * it sees get a row each; once the rows are taken, a row idle for
 * NS_IDLE_S seconds goes to a new namespace. The shard thread is the only
 * writer: it finds rows through ix (its own, never read elsewhere), fills
 * a new row's key, then release-stores n; a render acquire-loads n and
 * reads rows [0, n). A row given to another namespace is rewritten under
 * its gen, a seqlock (odd while the key and counters change), so a render
 * never mixes one namespace's key with another's counters: it skips a row
 * whose gen was odd or moved.
 */
#define NS_IDLE_S 600u
struct ns_row {
	_Atomic uint32_t gen;
	_Atomic uint32_t tenant;
	_Atomic uint64_t ns;
	uint64_t last;             /* the table's clock at its last event */
	struct tenant_ctr c;
};

struct ns_table {
	unsigned cap, per_tenant;  /* rows, and rows one tenant may have */
	uint32_t ixmask;           /* ix has ixmask + 1 slots, >= 2 x cap */
	uint64_t seed;             /* of the hash: keys are the clients' */
	uint32_t *ix;              /* row + 1 by hash, 0: empty (writer's) */
	uint32_t *trows;           /* [ntenants]: rows per tenant (writer's) */
	uint64_t now;              /* seconds, as srv_metrics_clock says */
	uint64_t scan_after;       /* no row is idle before then (writer's) */
	_Atomic uint32_t n;        /* rows published */
	_Atomic uint64_t untracked; /* events of namespaces left without */
	struct ns_row *rows;
};

struct srv_shard_metrics {
	/* set at create, before any thread starts; read-only after */
	_Alignas(SRV_CACHELINE) unsigned ntenants;
	struct ns_table *nst;      /* NULL: no rows (ns_rows 0) */
	struct op_ctr op[SRV_METRICS_OPS];
	_Atomic uint64_t copy_bytes, auth_failures, conns_open, conns_total;
	struct hist lat[SRV_METRICS_OPS];
	/* seqlock'd engine snapshot: read by renders, so on its own lines */
	_Alignas(SRV_CACHELINE) _Atomic uint32_t seq; /* 0: none yet */
	_Atomic uint64_t snap[SNAP_WORDS];
	_Alignas(SRV_CACHELINE) struct tenant_ctr tenant[];
};

struct srv_metrics {
	unsigned nshards, ntenants, ns_rows;
	size_t stride; /* bytes per slot, a multiple of SRV_CACHELINE */
	unsigned char *slots;
};

static const char *const op_names[SRV_METRICS_OPS] = {
	[0] = "unknown",
	[WIRE_OP_HELLO] = "hello",
	[WIRE_OP_AUTH] = "auth",
	[3] = "unused3", /* REG and DEREG of protocol version 1 */
	[4] = "unused4",
	[WIRE_OP_PUT] = "put",
	[WIRE_OP_GET] = "get",
	[WIRE_OP_LOOKUP] = "lookup",
	[WIRE_OP_DELETE] = "delete",
	[WIRE_OP_PIN] = "pin",
	[WIRE_OP_UNPIN] = "unpin",
	[WIRE_OP_STAT] = "stat",
	[WIRE_OP_DATA] = "data",
	[WIRE_OP_SUBSCRIBE] = "subscribe",
	[WIRE_OP_EVENT] = "event",
	[WIRE_OP_USED] = "used",
	[WIRE_OP_WEIGHT] = "weight",
};
_Static_assert(ARRAY_SIZE(op_names) == WIRE_OP_MAX,
	       "one name per opcode slot; name any new opcode");

/* Single-writer increment: see the file comment. */
static inline void
ctr_add(_Atomic uint64_t *c, uint64_t n)
{
	uint64_t v = atomic_load_explicit(c, memory_order_relaxed);

	atomic_store_explicit(c, v + n, memory_order_relaxed);
}

static inline uint64_t
ctr_get(const _Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/*
 * Seqlocks (the file comment): one writer makes seq odd, releases, writes
 * relaxed atomic words, and release-stores seq even; a reader
 * acquire-loads seq, reads the words, fences, and keeps them only if seq
 * was even and has not moved.
 */
static inline uint32_t
seq_write_begin(_Atomic uint32_t *seq)
{
	uint32_t g = atomic_load_explicit(seq, memory_order_relaxed);

	atomic_store_explicit(seq, g + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	return g;
}

static inline void
seq_write_end(_Atomic uint32_t *seq, uint32_t g)
{
	atomic_store_explicit(seq, g + 2, memory_order_release);
}

static inline uint32_t
seq_read_begin(const _Atomic uint32_t *seq)
{
	return atomic_load_explicit(seq, memory_order_acquire);
}

/* Were the words read since seq_read_begin gave g one write's whole? */
static inline bool
seq_read_ok(const _Atomic uint32_t *seq, uint32_t g)
{
	atomic_thread_fence(memory_order_acquire);
	return (g & 1u) == 0 &&
	       atomic_load_explicit(seq, memory_order_relaxed) == g;
}

const char *
srv_metrics_op_name(unsigned op)
{
	return op < SRV_METRICS_OPS ? op_names[op] : op_names[0];
}

/* ---- lifecycle ---- */

static void
shard_init(struct srv_shard_metrics *s, unsigned ntenants)
{
	s->ntenants = ntenants;
	for (unsigned i = 0; i < SRV_METRICS_OPS; i++) {
		for (unsigned j = 0; j < OPC_N; j++)
			atomic_init(&s->op[i].v[j], 0);
		hist_init(&s->lat[i]);
	}
	atomic_init(&s->copy_bytes, 0);
	atomic_init(&s->auth_failures, 0);
	atomic_init(&s->conns_open, 0);
	atomic_init(&s->conns_total, 0);
	atomic_init(&s->seq, 0);
	for (unsigned i = 0; i < SNAP_WORDS; i++)
		atomic_init(&s->snap[i], 0);
	for (unsigned t = 0; t < ntenants; t++)
		for (unsigned j = 0; j < TC_N; j++)
			atomic_init(&s->tenant[t].v[j], 0);
}

static void
ns_table_free(struct ns_table *t)
{
	if (t == NULL)
		return;
	free(t->ix);
	free(t->trows);
	free(t->rows);
	free(t);
}

static int
ns_table_new(unsigned cap, unsigned per_tenant, unsigned ntenants,
	     struct ns_table **out)
{
	struct ns_table *t = calloc(1, sizeof(*t));
	uint32_t slots = 4;
	struct timespec ts;

	if (t == NULL)
		return -ENOMEM;
	while (slots < 2 * cap)
		slots *= 2;
	t->cap = cap;
	t->per_tenant = per_tenant;
	t->ixmask = slots - 1;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* not guessable by clients */
	t->seed = ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^
		  (uint64_t)(uintptr_t)t;
	t->ix = calloc(slots, sizeof(*t->ix));
	t->trows = calloc(ntenants, sizeof(*t->trows));
	t->rows = calloc(cap, sizeof(*t->rows));
	if (t->ix == NULL || t->trows == NULL || t->rows == NULL) {
		ns_table_free(t);
		return -ENOMEM;
	}
	atomic_init(&t->n, 0);
	atomic_init(&t->untracked, 0);
	for (unsigned i = 0; i < cap; i++) {
		atomic_init(&t->rows[i].gen, 0);
		atomic_init(&t->rows[i].tenant, 0);
		atomic_init(&t->rows[i].ns, 0);
		for (unsigned j = 0; j < TC_N; j++)
			atomic_init(&t->rows[i].c.v[j], 0);
	}
	*out = t;
	return 0;
}

int
srv_metrics_create(unsigned nshards, unsigned ntenants, unsigned ns_rows,
		   unsigned ns_per_tenant, struct srv_metrics **out)
{
	struct srv_metrics *m;
	size_t sz;

	if (nshards == 0 || nshards > MAX_SHARDS || ntenants == 0 ||
	    ntenants > SRV_METRICS_MAX_TENANTS ||
	    ns_rows > SRV_METRICS_MAX_NS_ROWS || ns_per_tenant > ns_rows)
		return -EINVAL;
	if (ns_per_tenant == 0)
		ns_rows = 0;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	sz = sizeof(struct srv_shard_metrics) +
	     (size_t)ntenants * sizeof(struct tenant_ctr);
	m->stride = (sz + SRV_CACHELINE - 1) & ~(size_t)(SRV_CACHELINE - 1);
	m->nshards = nshards;
	m->ntenants = ntenants;
	m->ns_rows = ns_rows;
	m->slots = aligned_alloc(SRV_CACHELINE, m->stride * nshards);
	if (m->slots == NULL) {
		free(m);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < nshards; i++) {
		struct srv_shard_metrics *s = srv_metrics_shard(m, i);

		shard_init(s, ntenants);
		s->nst = NULL;
		if (ns_rows > 0 && ns_table_new(ns_rows, ns_per_tenant, ntenants,
						&s->nst) < 0) {
			m->nshards = i + 1;
			srv_metrics_destroy(m);
			return -ENOMEM;
		}
	}
	*out = m;
	return 0;
}

void
srv_metrics_destroy(struct srv_metrics *m)
{
	if (m == NULL)
		return;
	for (unsigned i = 0; i < m->nshards; i++)
		ns_table_free(srv_metrics_shard(m, i)->nst);
	free(m->slots);
	free(m);
}

struct srv_shard_metrics *
srv_metrics_shard(struct srv_metrics *m, unsigned i)
{
	if (i >= m->nshards)
		return NULL;
	return (struct srv_shard_metrics *)(void *)(m->slots + m->stride * i);
}

/* ---- recording (the shard's thread only) ---- */

void
srv_metrics_op(struct srv_shard_metrics *s, unsigned op, int status,
	       uint64_t latency_ns, uint64_t bytes_in, uint64_t bytes_out)
{
	struct op_ctr *c;

	if (op >= SRV_METRICS_OPS)
		op = 0;
	c = &s->op[op];
	ctr_add(&c->v[OPC_REQ], 1);
	ctr_add(&c->v[OPC_IN], bytes_in);
	ctr_add(&c->v[OPC_OUT], bytes_out);
	if (status == -GPC_EBUSY || status == -EAGAIN) {
		ctr_add(&c->v[OPC_BUSY], 1);
		return;
	}
	if (status < 0)
		ctr_add(&c->v[OPC_ERR], 1);
	hist_record(&s->lat[op], latency_ns);
}

static uint64_t
ns_hash(uint64_t seed, unsigned t, uint64_t ns)
{
	uint64_t x = ns ^ seed ^ ((uint64_t)t * 0x9e3779b97f4a7c15ull);

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

/* ix's slot for (t, ns): its row's, or the empty one it would take. */
static uint32_t
ns_slot(const struct ns_table *nt, unsigned t, uint64_t ns)
{
	uint32_t i = (uint32_t)ns_hash(nt->seed, t, ns) & nt->ixmask;

	for (; nt->ix[i] != 0; i = (i + 1) & nt->ixmask) {
		const struct ns_row *r = &nt->rows[nt->ix[i] - 1];

		if (atomic_load_explicit(&r->tenant, memory_order_relaxed) == t &&
		    atomic_load_explicit(&r->ns, memory_order_relaxed) == ns)
			break;
	}
	return i;
}

/* The row idle longest, NS_IDLE_S or more, of tenant t (or of anyone's,
 * t = UINT32_MAX); -1 if none. A scan that finds none notes when the
 * first row could be idle, so that namespaces left without a row do not
 * scan the rows at every event. */
static int64_t
ns_idle_row(struct ns_table *nt, uint32_t n, unsigned t)
{
	uint64_t oldest = UINT64_MAX;
	int64_t best = -1;

	if (nt->now < nt->scan_after)
		return -1;
	for (uint32_t k = 0; k < n; k++) {
		const struct ns_row *r = &nt->rows[k];

		oldest = r->last < oldest ? r->last : oldest;
		if (nt->now - r->last < NS_IDLE_S ||
		    (t != UINT32_MAX &&
		     atomic_load_explicit(&r->tenant, memory_order_relaxed) != t))
			continue;
		if (best < 0 || r->last < nt->rows[best].last)
			best = k;
	}
	if (best < 0) /* none idle anywhere before then (each last grows) */
		nt->scan_after = oldest + NS_IDLE_S;
	return best;
}

/* Row k's key becomes (t, ns), counted as t's, seen now; the caller
 * makes it visible (n, or the row's seqlock). */
static void
ns_key(struct ns_table *nt, uint32_t k, unsigned t, uint64_t ns)
{
	struct ns_row *r = &nt->rows[k];

	atomic_store_explicit(&r->tenant, t, memory_order_relaxed);
	atomic_store_explicit(&r->ns, ns, memory_order_relaxed);
	nt->trows[t]++;
	r->last = nt->now;
}

/* Row k goes to (t, ns), its counters from 0, under its seqlock; ix is
 * rebuilt (a removed key would break the probes after it). */
static void
ns_recycle(struct ns_table *nt, uint32_t n, uint32_t k, unsigned t,
	   uint64_t ns)
{
	struct ns_row *r = &nt->rows[k];
	uint32_t g;

	nt->trows[atomic_load_explicit(&r->tenant, memory_order_relaxed)]--;
	g = seq_write_begin(&r->gen);
	ns_key(nt, k, t, ns);
	for (unsigned j = 0; j < TC_N; j++)
		atomic_store_explicit(&r->c.v[j], 0, memory_order_relaxed);
	seq_write_end(&r->gen, g);
	memset(nt->ix, 0, ((size_t)nt->ixmask + 1) * sizeof(*nt->ix));
	for (uint32_t j = 0; j < n; j++)
		nt->ix[ns_slot(nt, atomic_load_explicit(&nt->rows[j].tenant,
							memory_order_relaxed),
			       atomic_load_explicit(&nt->rows[j].ns,
						    memory_order_relaxed))] = j + 1;
}

/* The row of (t, ns) on this shard: found, added if there is room, or an
 * idle one given to it; NULL when none is (the event is counted as
 * untracked), or there are no rows. */
static struct tenant_ctr *
ns_ctr(struct srv_shard_metrics *s, unsigned t, uint64_t ns)
{
	struct ns_table *nt = s->nst;
	uint32_t i, n;
	int64_t k;

	if (nt == NULL)
		return NULL;
	n = atomic_load_explicit(&nt->n, memory_order_relaxed); /* ours */
	i = ns_slot(nt, t, ns);
	if (nt->ix[i] != 0) {
		nt->rows[nt->ix[i] - 1].last = nt->now;
		return &nt->rows[nt->ix[i] - 1].c;
	}
	if (n < nt->cap && nt->trows[t] < nt->per_tenant) {
		ns_key(nt, n, t, ns);
		nt->ix[i] = n + 1;
		atomic_store_explicit(&nt->n, n + 1, memory_order_release);
		return &nt->rows[n].c;
	}
	/* full: an idle row of its own past its share, or anyone's */
	k = ns_idle_row(nt, n, nt->trows[t] < nt->per_tenant ? UINT32_MAX : t);
	if (k < 0) {
		ctr_add(&nt->untracked, 1);
		return NULL;
	}
	ns_recycle(nt, n, (uint32_t)k, t, ns);
	return &nt->rows[k].c;
}

static void
ctr_event(struct tenant_ctr *c, enum srv_tenant_ev ev, uint64_t nblocks,
	  uint64_t bytes)
{
	switch (ev) {
	case SRV_TENANT_PUT:
		ctr_add(&c->v[TC_PUTS], nblocks);
		ctr_add(&c->v[TC_STORED], bytes);
		break;
	case SRV_TENANT_HIT:
		ctr_add(&c->v[TC_HITS], nblocks);
		ctr_add(&c->v[TC_SERVED], bytes);
		break;
	case SRV_TENANT_MISS:
		ctr_add(&c->v[TC_MISSES], nblocks);
		break;
	}
}

/* The counters an event of tenant t in namespace ns goes to: the
 * tenant's, then its namespace's row if it has one. 0 if t is out of
 * range. */
static unsigned
ctrs_of(struct srv_shard_metrics *s, unsigned t, uint64_t ns,
	struct tenant_ctr *c[2])
{
	if (t >= s->ntenants)
		return 0;
	c[0] = &s->tenant[t];
	c[1] = ns_ctr(s, t, ns);
	return c[1] != NULL ? 2 : 1;
}

void
srv_metrics_clock(struct srv_shard_metrics *s, uint64_t now_s)
{
	if (s->nst != NULL)
		s->nst->now = now_s;
}

void
srv_metrics_tenant(struct srv_shard_metrics *s, unsigned t, uint64_t ns,
		   enum srv_tenant_ev ev, uint64_t nblocks, uint64_t bytes)
{
	struct tenant_ctr *c[2];

	for (unsigned i = 0, n = ctrs_of(s, t, ns, c); i < n; i++)
		ctr_event(c[i], ev, nblocks, bytes);
}

static void
ctr_lookup(struct tenant_ctr *c, unsigned nkeys, unsigned found,
	   const struct policy_reuse *ru)
{
	unsigned b = 0;

	ctr_add(&c->v[TC_LOOKUPS], 1);
	ctr_add(&c->v[TC_LKEYS], nkeys);
	ctr_add(&c->v[TC_LFOUND], found);
	while (b < TC_NDEPTH - 1 && found > depth_le[b])
		b++;
	ctr_add(&c->v[TC_DEPTH + b], 1);
	if (ru == NULL)
		return;
	for (unsigned i = 0; i < POLICY_REUSE_BUCKETS; i++)
		if (ru->n[i] != 0)
			ctr_add(&c->v[TC_REUSE + i], ru->n[i]);
	ctr_add(&c->v[TC_REUSE_SUM], ru->sum);
	ctr_add(&c->v[TC_REUSE_FAR], ru->far);
}

void
srv_metrics_tenant_lookup(struct srv_shard_metrics *s, unsigned t,
			  uint64_t ns, unsigned nkeys, unsigned found,
			  const struct policy_reuse *ru)
{
	struct tenant_ctr *c[2];

	for (unsigned i = 0, n = ctrs_of(s, t, ns, c); i < n; i++)
		ctr_lookup(c[i], nkeys, found, ru);
}

void
srv_metrics_tenant_used(struct srv_shard_metrics *s, unsigned t, uint64_t ns,
			uint64_t nblocks)
{
	struct tenant_ctr *c[2];

	for (unsigned i = 0, n = ctrs_of(s, t, ns, c); i < n; i++)
		ctr_add(&c[i]->v[TC_CONFIRMED], nblocks);
}

void
srv_metrics_tenant_read(const struct srv_shard_metrics *s, unsigned t,
			struct srv_tenant_counts *out)
{
	const struct tenant_ctr *c;

	memset(out, 0, sizeof(*out));
	if (t >= s->ntenants)
		return;
	c = &s->tenant[t];
	out->puts = ctr_get(&c->v[TC_PUTS]);
	out->hits = ctr_get(&c->v[TC_HITS]);
	out->misses = ctr_get(&c->v[TC_MISSES]);
	out->stored = ctr_get(&c->v[TC_STORED]);
	out->served = ctr_get(&c->v[TC_SERVED]);
	out->usage = ctr_get(&c->v[TC_USAGE]);
}

void
srv_metrics_tenant_usage(struct srv_shard_metrics *s, unsigned t,
			 uint64_t bytes)
{
	if (t < s->ntenants)
		atomic_store_explicit(&s->tenant[t].v[TC_USAGE], bytes,
				      memory_order_relaxed);
}

void
srv_metrics_add_copy(struct srv_shard_metrics *s, uint64_t bytes)
{
	ctr_add(&s->copy_bytes, bytes);
}

void
srv_metrics_conn(struct srv_shard_metrics *s, int delta)
{
	/* Two's complement: a shard may close more than it opened (a
	 * connection migrated); the sum over shards is still right. */
	ctr_add(&s->conns_open, (uint64_t)(int64_t)delta);
	if (delta > 0)
		ctr_add(&s->conns_total, (uint64_t)delta);
}

void
srv_metrics_auth_fail(struct srv_shard_metrics *s)
{
	ctr_add(&s->auth_failures, 1);
}

/* ---- the engine snapshot seqlock ---- */

void
srv_metrics_publish_store(struct srv_shard_metrics *s,
			  const struct srv_store_snap *snap)
{
	uint64_t w[SNAP_WORDS] = {0};
	uint32_t g;

	memcpy(w, snap, sizeof(*snap));
	g = seq_write_begin(&s->seq);
	for (unsigned i = 0; i < SNAP_WORDS; i++)
		atomic_store_explicit(&s->snap[i], w[i], memory_order_relaxed);
	seq_write_end(&s->seq, g);
}

int
srv_metrics_read_store(const struct srv_shard_metrics *s,
		       struct srv_store_snap *out)
{
	uint64_t w[SNAP_WORDS];
	uint32_t s1;

	for (unsigned tries = 0; tries < SEQ_TRIES; tries++) {
		s1 = seq_read_begin(&s->seq);
		if (s1 == 0)
			return -ENOENT;
		if (s1 & 1u) {
			sched_yield();
			continue;
		}
		for (unsigned i = 0; i < SNAP_WORDS; i++)
			w[i] = atomic_load_explicit(&s->snap[i],
						    memory_order_relaxed);
		if (seq_read_ok(&s->seq, s1)) {
			memcpy(out, w, sizeof(*out));
			return 0;
		}
	}
	return -EAGAIN;
}

/* ---- text buffer ---- */

struct sbuf {
	char *p;
	size_t len, cap;
	int err; /* sticky -ENOMEM */
};

static void sb_printf(struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->err)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->err = -EINVAL;
			return;
		}
		if ((size_t)n < b->cap - b->len)
			break;
		size_t ncap = b->cap * 2 + (size_t)n + 1;
		char *np = realloc(b->p, ncap);
		if (np == NULL) {
			b->err = -ENOMEM;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	b->len += (size_t)n;
}

/* A label value with \, " and newline escaped as the format requires. */
static void
sb_label(struct sbuf *b, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\')
			sb_printf(b, "\\\\");
		else if (*v == '"')
			sb_printf(b, "\\\"");
		else if (*v == '\n')
			sb_printf(b, "\\n");
		else
			sb_printf(b, "%c", *v);
	}
}

static void
sb_head(struct sbuf *b, const char *name, const char *type, const char *help)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
sb_secs(struct sbuf *b, uint64_t ns)
{
	sb_printf(b, "%.9g", (double)ns / 1e9);
}

/* ---- rendering: gather every slot, then emit family by family ---- */

struct render {
	struct srv_metrics *m;
	const struct srv_metrics_src *src;
	struct sbuf b;
	uint64_t op[SRV_METRICS_OPS][OPC_N];
	struct hist_snap lat[SRV_METRICS_OPS];
	struct hist_snap tmp;
	uint64_t copy, auth, conns_open, conns_total;
	uint64_t *ten;               /* [ntenants][TC_N] */
	const char **tname;          /* [ntenants]; NULL: not exported */
	struct ns_sum *nsr;          /* [nns]: every shard's rows, merged */
	size_t nns;
	uint32_t *ns_avail;          /* [nshards]: rows each had at gather */
	uint64_t ns_untracked;
	uint64_t *shard_req;         /* [nshards] */
	struct srv_store_snap *snap; /* [nshards] */
	unsigned char *snap_ok;      /* [nshards] */
};

struct fam {
	const char *name, *type, *help;
	unsigned idx;
};

/* A namespace's figures summed over the shards that have a row for it. */
struct ns_sum {
	unsigned tenant;
	uint64_t ns;
	uint64_t v[TC_N];
};

/* The figures of a tenant, or (has_ns) of one of its namespaces. */
struct series {
	unsigned t;
	bool has_ns;
	uint64_t ns;
	const uint64_t *v;
};

static const struct fam op_fams[] = {
	{"gpucache_requests_total", "counter",
	 "Requests finished, by opcode.", OPC_REQ},
	{"gpucache_request_errors_total", "counter",
	 "Requests answered with an error other than busy.", OPC_ERR},
	{"gpucache_busy_rejections_total", "counter",
	 "Requests rejected as overload (BUSY/EAGAIN).", OPC_BUSY},
	{"gpucache_received_bytes_total", "counter",
	 "Payload bytes moved from clients to the server.", OPC_IN},
	{"gpucache_sent_bytes_total", "counter",
	 "Payload bytes moved from the server to clients.", OPC_OUT},
};

static const struct fam tenant_fams[] = {
	{"gpucache_tenant_puts_total", "counter",
	 "Blocks stored for the tenant.", TC_PUTS},
	{"gpucache_tenant_gets_total", "counter",
	 "Blocks the tenant asked for (hits + misses).", TC_GETS},
	{"gpucache_tenant_hits_total", "counter",
	 "Blocks the tenant asked for and got.", TC_HITS},
	{"gpucache_tenant_misses_total", "counter",
	 "Blocks the tenant asked for and did not get.", TC_MISSES},
	{"gpucache_tenant_stored_bytes_total", "counter",
	 "Bytes stored for the tenant.", TC_STORED},
	{"gpucache_tenant_served_bytes_total", "counter",
	 "Bytes served to the tenant.", TC_SERVED},
	{"gpucache_tenant_quota_used_bytes", "gauge",
	 "Bytes the tenant holds now (counted against its quota).", TC_USAGE},
	{"gpucache_tenant_lookup_keys_total", "counter",
	 "Keys of the chains the tenant looked up (the hit funnel's top).",
	 TC_LKEYS},
	{"gpucache_tenant_lookup_found_total", "counter",
	 "Keys its lookups found present as a leading prefix.", TC_LFOUND},
	{"gpucache_tenant_used_blocks_total", "counter",
	 "Blocks its engines confirmed they used after fetching them "
	 "(the hit funnel's last stage).", TC_CONFIRMED},
};

static const struct fam ns_fams[] = {
	{"gpucache_namespace_lookup_keys_total", "counter",
	 "Keys of the chains looked up in the namespace.", TC_LKEYS},
	{"gpucache_namespace_lookup_found_total", "counter",
	 "Keys its lookups found present as a leading prefix.", TC_LFOUND},
	{"gpucache_namespace_hits_total", "counter",
	 "Blocks asked for and got (fetched).", TC_HITS},
	{"gpucache_namespace_misses_total", "counter",
	 "Blocks asked for and not got.", TC_MISSES},
	{"gpucache_namespace_puts_total", "counter",
	 "Blocks stored.", TC_PUTS},
	{"gpucache_namespace_used_blocks_total", "counter",
	 "Blocks the engines confirmed they used after fetching them.",
	 TC_CONFIRMED},
};

static const uint64_t le_ns[] = {
	10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
	5000000, 10000000, 25000000, 100000000, 1000000000,
};

static const struct {
	const char *text;
	double q;
} quantiles[] = {{"0.5", 0.5}, {"0.99", 0.99}, {"0.999", 0.999}};

static void
gather_shard(struct render *r, unsigned i)
{
	const struct srv_shard_metrics *s = srv_metrics_shard(r->m, i);
	unsigned nt = r->m->ntenants;

	for (unsigned op = 0; op < SRV_METRICS_OPS; op++) {
		for (unsigned j = 0; j < OPC_N; j++)
			r->op[op][j] += ctr_get(&s->op[op].v[j]);
		r->shard_req[i] += ctr_get(&s->op[op].v[OPC_REQ]);
		hist_snapshot(&s->lat[op], &r->tmp);
		hist_merge(&r->lat[op], &r->tmp);
	}
	for (unsigned t = 0; t < nt; t++)
		for (unsigned j = 0; j < TC_N; j++)
			r->ten[t * TC_N + j] += ctr_get(&s->tenant[t].v[j]);
	if (s->nst != NULL) {
		uint32_t n = r->ns_avail[i]; /* as gather counted them */

		for (uint32_t k = 0; k < n; k++) {
			const struct ns_row *w = &s->nst->rows[k];
			struct ns_sum *o = &r->nsr[r->nns];
			uint32_t g = seq_read_begin(&w->gen);

			o->tenant = atomic_load_explicit(&w->tenant,
							 memory_order_relaxed);
			o->ns = atomic_load_explicit(&w->ns, memory_order_relaxed);
			for (unsigned j = 0; j < TC_N; j++)
				o->v[j] = ctr_get(&w->c.v[j]);
			/* a row being given to another namespace is left
			 * for the next render */
			r->nns += seq_read_ok(&w->gen, g);
		}
		r->ns_untracked += ctr_get(&s->nst->untracked);
	}
	r->copy += ctr_get(&s->copy_bytes);
	r->auth += ctr_get(&s->auth_failures);
	r->conns_open += ctr_get(&s->conns_open);
	r->conns_total += ctr_get(&s->conns_total);
	r->snap_ok[i] = srv_metrics_read_store(s, &r->snap[i]) == 0;
}

static int
ns_cmp(const void *a, const void *b)
{
	const struct ns_sum *x = a, *y = b;

	if (x->tenant != y->tenant)
		return x->tenant < y->tenant ? -1 : 1;
	return x->ns < y->ns ? -1 : x->ns > y->ns;
}

/* Sort the rows by (tenant, namespace) and sum each one's shards. */
static void
ns_merge(struct render *r)
{
	size_t o = 0;

	if (r->nns == 0)
		return;
	qsort(r->nsr, r->nns, sizeof(*r->nsr), ns_cmp);
	for (size_t i = 1; i < r->nns; i++) {
		if (ns_cmp(&r->nsr[o], &r->nsr[i]) == 0) {
			for (unsigned j = 0; j < TC_N; j++)
				r->nsr[o].v[j] += r->nsr[i].v[j];
			continue;
		}
		r->nsr[++o] = r->nsr[i];
	}
	r->nns = o + 1;
}

static int
gather(struct render *r)
{
	unsigned nt = r->m->ntenants, ns = r->m->nshards;
	size_t rows = 0;

	/* the namespace rows published now; later ones wait for the next */
	r->ns_avail = calloc(ns, sizeof(*r->ns_avail));
	if (r->ns_avail == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < ns; i++) {
		const struct ns_table *t = srv_metrics_shard(r->m, i)->nst;

		if (t != NULL)
			r->ns_avail[i] = atomic_load_explicit(&t->n,
							      memory_order_acquire);
		rows += r->ns_avail[i];
	}
	r->nsr = calloc(rows ? rows : 1, sizeof(*r->nsr));
	r->ten = calloc((size_t)nt * TC_N, sizeof(*r->ten));
	r->tname = calloc(nt, sizeof(*r->tname));
	r->shard_req = calloc(ns, sizeof(*r->shard_req));
	r->snap = calloc(ns, sizeof(*r->snap));
	r->snap_ok = calloc(ns, sizeof(*r->snap_ok));
	if (r->nsr == NULL || r->ten == NULL || r->tname == NULL ||
	    r->shard_req == NULL || r->snap == NULL || r->snap_ok == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < ns; i++)
		gather_shard(r, i);
	ns_merge(r);
	if (r->src != NULL && r->src->tenant_name != NULL)
		for (unsigned t = 0; t < nt; t++)
			r->tname[t] = r->src->tenant_name(r->src->ctx, t);
	return 0;
}

static void
render_free(struct render *r)
{
	free(r->ten);
	free(r->nsr);
	free(r->ns_avail);
	free(r->tname);
	free(r->shard_req);
	free(r->snap);
	free(r->snap_ok);
	free(r->b.p);
	free(r);
}

static void
emit_ops(struct render *r)
{
	struct sbuf *b = &r->b;

	for (unsigned f = 0; f < ARRAY_SIZE(op_fams); f++) {
		sb_head(b, op_fams[f].name, op_fams[f].type, op_fams[f].help);
		for (unsigned op = 0; op < SRV_METRICS_OPS; op++)
			sb_printf(b, "%s{op=\"%s\"} %" PRIu64 "\n",
				  op_fams[f].name, op_names[op],
				  r->op[op][op_fams[f].idx]);
	}
	sb_head(b, "gpucache_shard_requests_total", "counter",
		"Requests finished, by shard.");
	for (unsigned i = 0; i < r->m->nshards; i++)
		sb_printf(b, "gpucache_shard_requests_total{shard=\"%u\"} "
			  "%" PRIu64 "\n", i, r->shard_req[i]);
}

static void
emit_summary(struct render *r)
{
	static const char name[] = "gpucache_request_latency_seconds";
	struct sbuf *b = &r->b;

	sb_head(b, name, "summary",
		"Request latency by opcode, all shards merged (1.6% error).");
	for (unsigned op = 0; op < SRV_METRICS_OPS; op++) {
		const struct hist_snap *h = &r->lat[op];

		for (unsigned i = 0; i < ARRAY_SIZE(quantiles); i++) {
			sb_printf(b, "%s{op=\"%s\",quantile=\"%s\"} ", name,
				  op_names[op], quantiles[i].text);
			if (h->count == 0)
				sb_printf(b, "NaN");
			else
				sb_secs(b, hist_quantile(h, quantiles[i].q));
			sb_printf(b, "\n");
		}
		sb_printf(b, "%s_sum{op=\"%s\"} ", name, op_names[op]);
		sb_secs(b, h->sum);
		sb_printf(b, "\n%s_count{op=\"%s\"} %" PRIu64 "\n", name,
			  op_names[op], h->count);
	}
}

static void
emit_histogram(struct render *r)
{
	static const char name[] = "gpucache_request_duration_seconds";
	struct sbuf *b = &r->b;

	sb_head(b, name, "histogram",
		"Request latency by opcode, coarse buckets for aggregation.");
	for (unsigned op = 0; op < SRV_METRICS_OPS; op++) {
		const struct hist_snap *h = &r->lat[op];

		for (unsigned i = 0; i < ARRAY_SIZE(le_ns); i++) {
			sb_printf(b, "%s_bucket{op=\"%s\",le=\"", name,
				  op_names[op]);
			sb_secs(b, le_ns[i]);
			sb_printf(b, "\"} %" PRIu64 "\n",
				  hist_count_le(h, le_ns[i]));
		}
		sb_printf(b, "%s_bucket{op=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
			  name, op_names[op], h->count);
		sb_printf(b, "%s_sum{op=\"%s\"} ", name, op_names[op]);
		sb_secs(b, h->sum);
		sb_printf(b, "\n%s_count{op=\"%s\"} %" PRIu64 "\n", name,
			  op_names[op], h->count);
	}
}

/* name{tenant="..." (and ,ns="..." for a namespace): the tenant's name,
 * escaped, or its index when it has none; the caller closes the quote
 * and the braces. */
static void
series_open(struct render *r, const char *name, const char *suffix,
	    const struct series *x)
{
	struct sbuf *b = &r->b;

	sb_printf(b, "%s%s{tenant=\"", name, suffix);
	if (r->tname[x->t] != NULL)
		sb_label(b, r->tname[x->t]);
	else
		sb_printf(b, "%u", x->t);
	if (x->has_ns)
		sb_printf(b, "\",ns=\"%" PRIu64, x->ns);
}

static void
emit_sample(struct render *r, const char *name, const struct series *x,
	    uint64_t v)
{
	series_open(r, name, "", x);
	sb_printf(&r->b, "\"} %" PRIu64 "\n", v);
}

static bool
tenant_exported(const struct render *r, unsigned t)
{
	bool named = r->src != NULL && r->src->tenant_name != NULL;

	return !named || r->tname[t] != NULL;
}

static void
emit_fams(struct render *r, const struct fam *fams, size_t nf,
	  const struct series *xs, size_t n)
{
	for (size_t f = 0; f < nf; f++) {
		const struct fam *fm = &fams[f];

		sb_head(&r->b, fm->name, fm->type, fm->help);
		for (size_t i = 0; i < n; i++)
			emit_sample(r, fm->name, &xs[i], fm->idx == TC_GETS ?
				    xs[i].v[TC_HITS] + xs[i].v[TC_MISSES] :
				    xs[i].v[fm->idx]);
	}
}

/* A histogram's name_sum and name_count of series x. */
static void
emit_sum_count(struct render *r, const char *name, const struct series *x,
	       uint64_t sum, uint64_t count)
{
	char sub[128];

	snprintf(sub, sizeof(sub), "%s_sum", name);
	emit_sample(r, sub, x, sum);
	snprintf(sub, sizeof(sub), "%s_count", name);
	emit_sample(r, sub, x, count);
}

/* The found-prefix length of each LOOKUP, a Prometheus histogram. */
static void
emit_depth(struct render *r, const char *name, const struct series *xs,
	   size_t n)
{
	struct sbuf *b = &r->b;

	sb_head(b, name, "histogram",
		"Blocks found as a leading prefix, per LOOKUP.");
	for (size_t k = 0; k < n; k++) {
		const uint64_t *v = xs[k].v;
		uint64_t cum = 0;

		for (unsigned i = 0; i < TC_NDEPTH; i++) {
			cum += v[TC_DEPTH + i];
			series_open(r, name, "_bucket", &xs[k]);
			if (i < TC_NDEPTH - 1)
				sb_printf(b, "\",le=\"%u\"} %" PRIu64 "\n",
					  depth_le[i], cum);
			else
				sb_printf(b, "\",le=\"+Inf\"} %" PRIu64 "\n", cum);
		}
		emit_sum_count(r, name, &xs[k], v[TC_LFOUND], v[TC_LOOKUPS]);
	}
}

/*
 * The reuse distances of the keys a tenant or namespace looked up, as
 * the policy's admit-all mini saw them (its sampled keys), then the
 * misses: two of the policy's buckets per bucket here (le 3, 15, 63, ...,
 * 2^26 - 1, then 2^27 - 1 and +Inf, as the policy's last two), to keep
 * the series per namespace few.
 */
static void
emit_reuse_of(struct render *r, const char *what, const struct series *xs,
	      size_t n)
{
	struct sbuf *b = &r->b;
	char name[96];

	snprintf(name, sizeof(name), "gpucache_%s_reuse_distance_references",
		 what);
	sb_head(b, name, "histogram", "References between two references "
		"of a block it looked up, as the cache policy's admit-all "
		"mini sees them (its sampled keys).");
	for (size_t k = 0; k < n; k++) {
		const uint64_t *v = xs[k].v;
		uint64_t cum = 0;

		for (unsigned i = 0; i < POLICY_REUSE_BUCKETS; i++) {
			cum += v[TC_REUSE + i];
			if (i % 2 == 0 && i + 2 < POLICY_REUSE_BUCKETS)
				continue;
			series_open(r, name, "_bucket", &xs[k]);
			if (i + 1 < POLICY_REUSE_BUCKETS)
				sb_printf(b, "\",le=\"%llu\"} %" PRIu64 "\n",
					  (1ull << (i + 1)) - 1, cum);
			else
				sb_printf(b, "\",le=\"+Inf\"} %" PRIu64 "\n", cum);
		}
		emit_sum_count(r, name, &xs[k], v[TC_REUSE_SUM], cum);
	}
	snprintf(name, sizeof(name), "gpucache_%s_reuse_beyond_total", what);
	sb_head(b, name, "counter", "Of its sampled keys, references the "
		"admit-all mini missed: first seen, or reused beyond what the "
		"cache holds.");
	for (size_t k = 0; k < n; k++)
		emit_sample(r, name, &xs[k], xs[k].v[TC_REUSE_FAR]);
}

static void
emit_tenants(struct render *r)
{
	unsigned nt = r->m->ntenants;
	struct series *xs = calloc(nt, sizeof(*xs));
	size_t n = 0;

	if (xs == NULL) {
		r->b.err = -ENOMEM;
		return;
	}
	for (unsigned t = 0; t < nt; t++)
		if (tenant_exported(r, t))
			xs[n++] = (struct series){ .t = t,
						   .v = &r->ten[t * TC_N] };
	emit_fams(r, tenant_fams, ARRAY_SIZE(tenant_fams), xs, n);
	emit_depth(r, "gpucache_tenant_lookup_prefix_blocks", xs, n);
	emit_reuse_of(r, "tenant", xs, n);
	if (r->src != NULL && r->src->tenant_quota != NULL) {
		sb_head(&r->b, "gpucache_tenant_quota_limit_bytes", "gauge",
			"The tenant's quota (0: none).");
		for (size_t i = 0; i < n; i++)
			emit_sample(r, "gpucache_tenant_quota_limit_bytes",
				    &xs[i], r->src->tenant_quota(r->src->ctx,
								 xs[i].t));
	}
	free(xs);
}

/* The namespaces the shards have rows for, each summed over them. */
static void
emit_namespaces(struct render *r)
{
	struct series *xs = calloc(r->nns + 1, sizeof(*xs));
	size_t n = 0;

	if (xs == NULL) {
		r->b.err = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < r->nns; i++)
		if (r->nsr[i].tenant < r->m->ntenants &&
		    tenant_exported(r, r->nsr[i].tenant))
			xs[n++] = (struct series){ .t = r->nsr[i].tenant,
						   .has_ns = true,
						   .ns = r->nsr[i].ns,
						   .v = r->nsr[i].v };
	sb_head(&r->b, "gpucache_namespaces", "gauge", "Namespaces with "
		"figures of their own (server.namespace_metrics per shard).");
	sb_printf(&r->b, "gpucache_namespaces %zu\n", n);
	sb_head(&r->b, "gpucache_namespace_untracked_total", "counter",
		"Events of namespaces a shard had no row left for (counted "
		"per tenant only).");
	sb_printf(&r->b, "gpucache_namespace_untracked_total %" PRIu64 "\n",
		  r->ns_untracked);
	emit_fams(r, ns_fams, ARRAY_SIZE(ns_fams), xs, n);
	emit_depth(r, "gpucache_namespace_lookup_prefix_blocks", xs, n);
	emit_reuse_of(r, "namespace", xs, n);
	free(xs);
}

static void
emit_misc(struct render *r)
{
	struct sbuf *b = &r->b;

	sb_head(b, "gpucache_build_info", "gauge", "Version of gpucached.");
	sb_printf(b, "gpucache_build_info{version=\"%d.%d\"} 1\n",
		  GPC_VERSION_MAJOR, GPC_VERSION_MINOR);
	sb_head(b, "gpucache_shards", "gauge", "Shard threads.");
	sb_printf(b, "gpucache_shards %u\n", r->m->nshards);
	sb_head(b, "gpucache_payload_copy_bytes_total", "counter",
		"Payload bytes copied by the server's CPU (should stay 0).");
	sb_printf(b, "gpucache_payload_copy_bytes_total %" PRIu64 "\n",
		  r->copy);
	sb_head(b, "gpucache_auth_failures_total", "counter",
		"Connections that failed authentication.");
	sb_printf(b, "gpucache_auth_failures_total %" PRIu64 "\n", r->auth);
	sb_head(b, "gpucache_connections_open", "gauge",
		"Client connections open now.");
	sb_printf(b, "gpucache_connections_open %" PRId64 "\n",
		  (int64_t)r->conns_open);
	sb_head(b, "gpucache_connections_total", "counter",
		"Client connections accepted.");
	sb_printf(b, "gpucache_connections_total %" PRIu64 "\n",
		  r->conns_total);
}

#define SF(f)                                                                \
	offsetof(struct store_stats, f), sizeof(((struct store_stats *)0)->f)

static const struct store_fam {
	const char *name, *type, *help;
	size_t off, size;
	bool ns; /* nanoseconds, exported as seconds */
} store_fams[] = {
	{"gpucache_store_puts_total", "counter",
	 "Blocks put into the engine.",
	 SF(puts), false},
	{"gpucache_store_put_bytes_total", "counter",
	 "Bytes put into the engine.",
	 SF(put_bytes), false},
	{"gpucache_store_gets_total", "counter",
	 "Engine reads.",
	 SF(gets), false},
	{"gpucache_store_hits_total", "counter",
	 "Engine reads that found the block.",
	 SF(hits), false},
	{"gpucache_store_misses_total", "counter",
	 "Engine reads that missed.",
	 SF(misses), false},
	{"gpucache_store_deletes_total", "counter",
	 "Engine deletes.",
	 SF(deletes), false},
	{"gpucache_store_flash_written_bytes_total", "counter",
	 "Bytes written to flash.",
	 SF(flash_bytes_written), false},
	{"gpucache_store_flash_read_bytes_total", "counter",
	 "Bytes read from flash.",
	 SF(flash_bytes_read), false},
	{"gpucache_store_sealed_segments_total", "counter",
	 "Segments sealed and written.",
	 SF(segs_sealed), false},
	{"gpucache_store_dropped_segments_total", "counter",
	 "Closed segments never written: nothing in them was live any more.",
	 SF(segs_dropped), false},
	{"gpucache_store_evicted_segments_total", "counter",
	 "Segments evicted.",
	 SF(segs_evicted), false},
	{"gpucache_store_evicted_blocks_total", "counter",
	 "Blocks dropped by eviction.",
	 SF(blocks_evicted), false},
	{"gpucache_store_orphaned_blocks_total", "counter",
	 "Blocks evicted with their parent gone (they could never hit).",
	 SF(blocks_orphaned), false},
	{"gpucache_store_expired_blocks_total", "counter",
	 "Blocks whose TTL ran out, dropped (found at a lookup, by the "
	 "expiry sweep or at reclaim).",
	 SF(blocks_expired), false},
	{"gpucache_store_reinserted_blocks_total", "counter",
	 "Hot blocks rewritten on eviction.",
	 SF(blocks_reinserted), false},
	{"gpucache_store_reinserted_bytes_total", "counter",
	 "Bytes rewritten on eviction.",
	 SF(bytes_reinserted), false},
	{"gpucache_store_degraded_reads_total", "counter",
	 "Reads reconstructed from parity.",
	 SF(degraded_reads), false},
	{"gpucache_store_repaired_reads_total", "counter",
	 "Reads repaired after a failed check.",
	 SF(repaired_reads), false},
	{"gpucache_store_check_failures_total", "counter",
	 "Chunk or block checks that failed.",
	 SF(check_failures), false},
	{"gpucache_store_segment_write_failures_total", "counter",
	 "Segments that could not be written.",
	 SF(seg_write_failures), false},
	{"gpucache_store_copy_bytes_total", "counter",
	 "Bytes the engine copied (write buffer, bounce buffers).",
	 SF(copy_bytes), false},
	{"gpucache_store_ec_cpu_seconds_total", "counter",
	 "CPU time spent erasure coding.",
	 SF(ec_cpu_ns), true},
	{"gpucache_store_crc_cpu_seconds_total", "counter",
	 "CPU time spent on checksums.",
	 SF(crc_cpu_ns), true},
	{"gpucache_store_index_blocks", "gauge",
	 "Blocks in the DRAM index.",
	 SF(index_blocks), false},
	{"gpucache_store_index_bytes", "gauge",
	 "DRAM bytes held by the index.",
	 SF(index_bytes), false},
	{"gpucache_store_data_bytes", "gauge",
	 "Bytes of live block data.",
	 SF(data_bytes), false},
	{"gpucache_store_slots", "gauge",
	 "Segment slots (stripes).",
	 SF(nslots), false},
	{"gpucache_store_slots_used", "gauge",
	 "Segment slots holding a segment.",
	 SF(slots_used), false},
	{"gpucache_store_recovered_segments", "gauge",
	 "Segments recovered at open.",
	 SF(recovered_segs), false},
	{"gpucache_store_recovered_blocks", "gauge",
	 "Blocks recovered at open.",
	 SF(recovered_blocks), false},
	{"gpucache_store_torn_segments", "gauge",
	 "Torn segments dropped at open.",
	 SF(torn_segs), false},
	{"gpucache_store_recovery_seconds", "gauge",
	 "Time the last open spent recovering.",
	 SF(recovery_ns), true},
	{"gpucache_store_put_offered_bytes_total", "counter",
	 "Bytes clients put, written to flash or not.",
	 SF(put_bytes_offered), false},
	{"gpucache_store_puts_deduped_total", "counter",
	 "Puts of a key held already (put-if-absent): a touch, no write.",
	 SF(puts_deduped), false},
	{"gpucache_store_puts_refused_total", "counter",
	 "New blocks the admission policy kept off flash.",
	 SF(puts_refused), false},
	{"gpucache_store_capacity_bytes", "gauge",
	 "Block data the flash log holds when full.",
	 SF(capacity_bytes), false},
	{"gpucache_policy_references_total", "counter",
	 "Keys of LOOKUP chains recorded by the cache policy.",
	 SF(pol.refs), false},
	{"gpucache_policy_admission_rule", "gauge",
	 "Admission rule in force: 1 every block, 2 blocks seen before.",
	 SF(pol.mode), false},
	{"gpucache_policy_table_agings_total", "counter",
	 "Times the reference table halved its counts (windows, scans).",
	 SF(pol.resets), false},
	{"gpucache_policy_rule_switches_total", "counter",
	 "Times the miniature simulations changed the admission rule.",
	 SF(pol.switches), false},
	{"gpucache_policy_mini_all_hits_total", "counter",
	 "Hits of the miniature cache that admits every block.",
	 SF(pol.mini_hits[0]), false},
	{"gpucache_policy_mini_seen_hits_total", "counter",
	 "Hits of the miniature cache that admits blocks seen before.",
	 SF(pol.mini_hits[1]), false},
	{"gpucache_policy_mini_notail_hits_total", "counter",
	 "Hits of the miniature cache that admits all but a chain's unseen "
	 "last block.",
	 SF(pol.mini_hits[2]), false},
	{"gpucache_policy_capacity_blocks", "gauge",
	 "Blocks the policy estimates the flash log holds.",
	 SF(pol.capacity), false},
	{"gpucache_devices", "gauge",
	 "Devices of the shard's store.",
	 SF(ndev), false},
	{"gpucache_devices_failed", "gauge",
	 "Devices marked failed.",
	 SF(ndev_failed), false},
};

static uint64_t
stats_field(const struct store_stats *st, size_t off, size_t size)
{
	const unsigned char *p = (const unsigned char *)st + off;
	uint64_t v64;
	uint32_t v32;

	if (size == sizeof(v64)) {
		memcpy(&v64, p, sizeof(v64));
		return v64;
	}
	memcpy(&v32, p, sizeof(v32));
	return v32;
}

/* The policy's reuse distances (its admit-all mini), a histogram. */
static void
emit_reuse(struct render *r)
{
	static const char name[] = "gpucache_policy_reuse_distance_references";
	struct sbuf *b = &r->b;

	sb_head(b, name, "histogram", "References between two references "
		"of a block, as the cache policy's admit-all mini sees them.");
	for (unsigned i = 0; i < r->m->nshards; i++) {
		const struct policy_stats *p = &r->snap[i].stats.pol;
		uint64_t cum = 0;

		if (!r->snap_ok[i])
			continue;
		for (unsigned k = 0; k < POLICY_REUSE_BUCKETS; k++) {
			cum += p->reuse[k];
			if (k + 1 < POLICY_REUSE_BUCKETS)
				sb_printf(b, "%s_bucket{shard=\"%u\",le=\"%llu\"} %"
					  PRIu64 "\n", name, i,
					  (unsigned long long)(1ull << (k + 1)) - 1,
					  cum);
			else
				sb_printf(b, "%s_bucket{shard=\"%u\",le=\"+Inf\"} %"
					  PRIu64 "\n", name, i, cum);
		}
		sb_printf(b, "%s_sum{shard=\"%u\"} %" PRIu64 "\n", name, i,
			  p->reuse_sum);
		sb_printf(b, "%s_count{shard=\"%u\"} %" PRIu64 "\n", name, i,
			  cum);
	}
	sb_head(b, "gpucache_policy_reuse_beyond_total", "counter",
		"References the admit-all mini missed: first seen, or reused "
		"beyond what the cache holds.");
	for (unsigned i = 0; i < r->m->nshards; i++)
		if (r->snap_ok[i])
			sb_printf(b, "gpucache_policy_reuse_beyond_total{shard="
				  "\"%u\"} %" PRIu64 "\n", i,
				  r->snap[i].stats.pol.reuse_far);
}

/* The tiers: flash (the log's capacity) and the DRAM read cache. */
static void
emit_dram(struct render *r)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} fams[] = {
		{ "gpucache_dram_tier_bytes", "gauge", "Bytes the DRAM read "
		  "cache holds (copies of flash blocks).",
		  offsetof(struct srv_dram_snap, bytes) },
		{ "gpucache_dram_tier_capacity_bytes", "gauge", "The DRAM read "
		  "cache's budget (dram_buffer / 4).",
		  offsetof(struct srv_dram_snap, max) },
		{ "gpucache_dram_tier_hits_total", "counter", "GETs served "
		  "from the DRAM read cache, no flash read.",
		  offsetof(struct srv_dram_snap, hits) },
		{ "gpucache_dram_tier_promotions_total", "counter", "Blocks "
		  "brought up from flash into DRAM (LOOKUP with PREFETCH).",
		  offsetof(struct srv_dram_snap, loads) },
	};
	struct sbuf *b = &r->b;

	for (unsigned f = 0; f < ARRAY_SIZE(fams); f++) {
		sb_head(b, fams[f].name, fams[f].type, fams[f].help);
		for (unsigned i = 0; i < r->m->nshards; i++) {
			uint64_t v;

			if (!r->snap_ok[i])
				continue;
			memcpy(&v, (const char *)&r->snap[i].dram + fams[f].off,
			       sizeof(v));
			sb_printf(b, "%s{shard=\"%u\"} %" PRIu64 "\n",
				  fams[f].name, i, v);
		}
	}
	sb_head(b, "gpucache_capacity_bytes", "gauge", "Block bytes the tier "
		"holds when full, per tier; the DRAM tier is inclusive (copies "
		"of flash), so the tier's capacity is the flash one.");
	for (unsigned i = 0; i < r->m->nshards; i++)
		if (r->snap_ok[i])
			sb_printf(b, "gpucache_capacity_bytes{shard=\"%u\","
				  "tier=\"flash\"} %" PRIu64 "\n"
				  "gpucache_capacity_bytes{shard=\"%u\","
				  "tier=\"dram\"} %" PRIu64 "\n", i,
				  r->snap[i].stats.capacity_bytes, i,
				  r->snap[i].dram.max);
}

static void
emit_store(struct render *r)
{
	struct sbuf *b = &r->b;
	unsigned ns = r->m->nshards;

	for (unsigned f = 0; f < ARRAY_SIZE(store_fams); f++) {
		const struct store_fam *sf = &store_fams[f];

		sb_head(b, sf->name, sf->type, sf->help);
		for (unsigned i = 0; i < ns; i++) {
			uint64_t v;

			if (!r->snap_ok[i])
				continue;
			v = stats_field(&r->snap[i].stats, sf->off, sf->size);
			sb_printf(b, "%s{shard=\"%u\"} ", sf->name, i);
			if (sf->ns)
				sb_secs(b, v);
			else
				sb_printf(b, "%" PRIu64, v);
			sb_printf(b, "\n");
		}
	}
	emit_reuse(r);
	emit_dram(r);
	sb_head(b, "gpucache_device_healthy", "gauge",
		"1 if the device is healthy, 0 if failed.");
	for (unsigned i = 0; i < ns; i++) {
		unsigned nd = r->snap[i].stats.ndev;

		if (!r->snap_ok[i])
			continue;
		for (unsigned d = 0; d < nd && d < STORE_MAX_DEVS; d++)
			sb_printf(b, "gpucache_device_healthy{shard=\"%u\","
				  "device=\"%u\"} %d\n", i, d,
				  r->snap[i].dev_failed[d] ? 0 : 1);
	}
}

int
srv_metrics_render(struct srv_metrics *m, const struct srv_metrics_src *src,
		   char **out, size_t *len)
{
	struct render *r;
	int rc;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	r->m = m;
	r->src = src;
	rc = gather(r);
	if (rc < 0)
		goto err_free;
	sb_printf(&r->b, "# gpucached metrics (text format 0.0.4)\n");
	emit_misc(r);
	emit_ops(r);
	emit_summary(r);
	emit_histogram(r);
	emit_tenants(r);
	emit_namespaces(r);
	emit_store(r);
	rc = r->b.err;
	if (rc < 0)
		goto err_free;
	*out = r->b.p;
	*len = r->b.len;
	r->b.p = NULL;
	render_free(r);
	return 0;

err_free:
	render_free(r);
	return rc;
}

/* ---- HTTP ---- */

struct srv_metrics_http {
	struct MHD_Daemon *d;
	struct srv_metrics *m;
	struct srv_metrics_src src;
	bool have_src;
	uint16_t port;
};

static enum MHD_Result
http_text(struct MHD_Connection *c, unsigned code, const char *text,
	  bool allow)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	/* PERSISTENT: MHD neither writes nor frees text (a literal) */
	resp = MHD_create_response_from_buffer(strlen(text), (void *)text,
					       MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; charset=utf-8");
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
					"GET, HEAD");
	ret = MHD_queue_response(c, code, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* libmicrohttpd's access handler; runs on its internal thread. */
static enum MHD_Result
http_answer(void *cls, struct MHD_Connection *c, const char *url,
	    const char *method, const char *version, const char *upload,
	    size_t *upload_size, void **con_cls)
{
	struct srv_metrics_http *h = cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *buf;
	size_t len;

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)con_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return http_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
				 "method not allowed\n", true);
	if (strcmp(url, "/metrics") != 0)
		return http_text(c, MHD_HTTP_NOT_FOUND, "not found\n", false);
	if (srv_metrics_render(h->m, h->have_src ? &h->src : NULL, &buf,
			       &len) < 0)
		return http_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				 "out of memory\n", false);
	resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; version=0.0.4; charset=utf-8");
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Parse addr (NULL: 127.0.0.1) and port into *ss; 0 or -EINVAL. */
static int
http_addr(const char *addr, uint16_t port, struct sockaddr_storage *ss,
	  bool *v6)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (addr == NULL)
		addr = "127.0.0.1";
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		*v6 = false;
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*v6 = true;
		return 0;
	}
	return -EINVAL;
}

int
srv_metrics_http_start(struct srv_metrics *m, const struct srv_metrics_src *src,
		       const char *addr, uint16_t port,
		       struct srv_metrics_http **out)
{
	struct srv_metrics_http *h;
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *di;
	bool v6;
	int rc;

	rc = http_addr(addr, port, &ss, &v6);
	if (rc < 0)
		return rc;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return -ENOMEM;
	h->m = m;
	if (src != NULL) {
		h->src = *src;
		h->have_src = true;
	}
	errno = 0;
	h->d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD |
				(v6 ? MHD_USE_IPv6 : 0),
				port, NULL, NULL, http_answer, h,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				MHD_OPTION_CONNECTION_LIMIT, 64u,
				MHD_OPTION_CONNECTION_TIMEOUT, 10u,
				MHD_OPTION_END);
	if (h->d == NULL) {
		rc = errno != 0 ? -errno : -EIO;
		goto err_free;
	}
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di != NULL && di->port != 0 ? di->port : port;
	*out = h;
	return 0;

err_free:
	free(h);
	return rc;
}

uint16_t
srv_metrics_http_port(const struct srv_metrics_http *h)
{
	return h->port;
}

void
srv_metrics_http_stop(struct srv_metrics_http *h)
{
	if (h == NULL)
		return;
	MHD_stop_daemon(h->d);
	free(h);
}
