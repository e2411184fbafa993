/*
 * store.h - the flash engine: a log-structured, erasure-coded store of KV
 * blocks on a set of devices (format: format.h, docs/format.md).
 *
 * One struct store is owned by one thread (a server shard): every call
 * below is made from that thread. The API is asynchronous: *_submit()
 * returns 0 and later runs the callback exactly once from store_poll() on
 * the owning thread, or returns < 0 and never runs it. Callbacks may call
 * *_submit() again but not store_poll() or the blocking wrappers. The
 * blocking wrappers (store_put, store_get, store_flush) are for tools and
 * tests.
 *
 * Semantics: a put is readable as soon as put_submit returns 0 (it sits in
 * the DRAM write buffer); it is durable once its segment is sealed, written
 * to every device of its stripe and flushed. STORE_PUT_DURABLE delays the
 * callback until then. After a crash, sealed segments come back and
 * nothing else does. A block whose checks fail reads as a miss.
 */
#ifndef GPC_STORE_STORE_H
#define GPC_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "format.h"
#include "io.h"
#include "policy.h"

#define STORE_PUT_DURABLE 0x1u
#define STORE_PUT_IF_ABSENT 0x2u /* a held key keeps its block (a touch) */

struct store;

struct store_format_opts {
	unsigned k, m;          /* 1 <= k, k + m <= ndev */
	uint32_t chunk_size;    /* bytes per chunk; 0 = 32 MiB / k + 4 KiB */
};

struct store_opts {
	unsigned wbuf_segs;     /* write-buffer segments; 0 = 4 */
	unsigned reinsert_pct;  /* per evicted segment, % of a segment, at
				 * most 90; 0 = 90 */
	double write_amp_max;   /* 1 + reinserted / (new + hit) record
				 * bytes; 0 = 1.5 */
	size_t index_expect;    /* index pre-size in blocks; 0 = from capacity */
	bool read_only;         /* fsck: no writes at all */
	enum policy_mode policy; /* admission (policy.h); 0 = auto */
	bool keep_orphans;      /* reclaim treats a block whose parent is
				 * gone like any other (policy.h) */
	bool seal_thread;       /* parity and chunk CRCs on a thread of the
				 * store's own (docs/pipeline.md) */
	unsigned writeback_ms;  /* 0: a full segment is written at once and
				 * its buffer freed; else it stays in DRAM
				 * unwritten up to this long or until its
				 * buffer is needed, is not written at all if
				 * nothing in it is live by then, and stays
				 * readable in DRAM after its write until its
				 * buffer is needed (docs/pipeline.md) */
	/* the clock TTLs run by, seconds since the epoch (tests, the
	 * simulator); NULL: the wall clock */
	uint64_t (*clock)(void *arg);
	void *clock_arg;
};

struct store_stats {
	uint64_t puts, put_bytes, gets, hits, misses, deletes;
	uint64_t flash_bytes_written, flash_bytes_read;
	uint64_t segs_sealed, segs_evicted, blocks_evicted;
	uint64_t segs_dropped;  /* closed segments never written: nothing in
				 * them was live any more (write-back) */
	uint64_t blocks_reinserted, bytes_reinserted;
	uint64_t degraded_reads, repaired_reads, check_failures;
	uint64_t seg_write_failures;
	uint64_t recovered_segs, recovered_blocks, torn_segs;
	uint64_t ec_cpu_ns, crc_cpu_ns, copy_bytes;
	uint64_t index_blocks, index_bytes;
	uint64_t nslots, slots_used;
	uint64_t data_bytes;    /* bytes of live block data */
	unsigned ndev, ndev_failed, k, m;
	uint32_t chunk_size, seg_cap;
	uint64_t recovery_ns;
	uint64_t put_bytes_offered; /* bytes clients put, written or not */
	uint64_t puts_deduped;  /* puts of a key held already (a touch), or
				 * being put (put-if-absent) */
	uint64_t puts_refused;  /* new blocks the policy kept off flash */
	uint64_t capacity_bytes; /* flash the log can hold (live data) */
	uint64_t blocks_expired; /* blocks whose TTL ran out, found so */
	uint64_t blocks_orphaned; /* evicted at reclaim with their parent
				   * gone, not rewritten */
	uint64_t ttl_blocks;    /* blocks with a TTL in the index */
	struct policy_stats pol;
};

/* Completion callback; a NULL callback is allowed (fire and forget). */
typedef void (*store_cb)(void *arg, int rc);

/*
 * Write a fresh store over every device of io (all must be present),
 * destroying what was there. Synchronous. io stays the caller's.
 */
int store_format(struct store_io *io, const struct store_format_opts *fo);

/*
 * Open the store on io: read the superblocks, rebuild the index from the
 * segment summaries. Devices that are missing or foreign count as failed.
 * On success the store owns io (store_close closes it); on failure io
 * stays the caller's.
 */
int store_open(struct store_io *io, const struct store_opts *o,
	       struct store **out);
/* Seal and flush what is buffered (best effort), then free everything. */
void store_close(struct store *st);
/* Free everything without sealing (simulated crash, tests). */
void store_abandon(struct store *st);

/*
 * Put a block of 1..STORE_MAX_BLOCK bytes gathered from iov. The bytes
 * are copied into the write buffer before return. -EAGAIN: the write
 * buffer is full, poll and retry. -GPC_ETOOBIG: larger than a segment.
 * cb(arg, 0) once accepted, or durable with STORE_PUT_DURABLE; cb(arg,
 * -errno) if the segment could not be made durable.
 */
int store_put_submit(struct store *st, uint64_t ns, const uint8_t *key,
		     const struct iovec *iov, unsigned iovcnt, unsigned flags,
		     store_cb cb, void *arg);

/*
 * A client's hints for one put (docs/cache-policy.md), kept per block in
 * its index entry and its summary entry on flash:
 *   ttl_s: the block expires ttl_s seconds after the put (0: never, at
 *     most STORE_MAX_TTL): from then on it is a miss, a LOOKUP stops at
 *     it, and reclaim drops it; an expired pinned block goes too;
 *   prio: STORE_PRIO_LOW blocks are never rewritten at reclaim (unless
 *     pinned), not even under a quota; STORE_PRIO_HIGH ones are kept
 *     whether or not they were read, with a share of the reinsertion
 *     budget (STORE_HIGH_RESERVE_PCT) that normal blocks cannot take
 *     while the store holds any high block (none: nothing changes).
 * A put that dedupes (STORE_PUT_IF_ABSENT of a held key) leaves the held
 * block's hints as they were. -EINVAL for a value out of range.
 */
#define STORE_PRIO_NORMAL 0u
#define STORE_PRIO_LOW 1u
#define STORE_PRIO_HIGH 2u
#define STORE_MAX_TTL (10u * 366 * 86400) /* ten years, in seconds */
#define STORE_HIGH_RESERVE_PCT 25u
struct store_hint {
	uint32_t ttl_s;
	uint8_t prio;
};
/* store_put_submit with hints (h NULL: none). */
int store_put_submit_hint(struct store *st, uint64_t ns, const uint8_t *key,
			  const struct iovec *iov, unsigned iovcnt,
			  unsigned flags, const struct store_hint *h,
			  store_cb cb, void *arg);
/* 0 or -EINVAL: a hint out of range. */
int store_hint_check(const struct store_hint *h);
/*
 * Read a block into iov (its total length must be >= the block's).
 * cb(arg, len) on a hit, cb(arg, -GPC_ENOTFOUND) on a miss (including any
 * failed check), cb(arg, -ENOBUFS) if iov is too small. iov must stay
 * valid until the callback. 4096-aligned iov entries are read into
 * directly; others go through a bounce buffer.
 */
int store_get_submit(struct store *st, uint64_t ns, const uint8_t *key,
		     const struct iovec *iov, unsigned iovcnt, store_cb cb,
		     void *arg);
/*
 * Should a put of len bytes under (ns, key) be written at all? 0: yes.
 * STORE_PUT_DEDUP: with STORE_PUT_IF_ABSENT, the store holds the key at
 * that length already (the client says keys name content: engines' block
 * hashes hash the tokens), so the put only marks the block used; or a
 * reservation of it at that length is open (its bytes are on their way),
 * so the put writes nothing. STORE_PUT_REFUSED: a new block the policy
 * does not admit (policy.h); the put has succeeded as far as the client
 * is concerned, and a later get misses. Durable puts are always written.
 * store_put_submit applies it itself; a zero-copy server calls it before
 * store_put_reserve and drops the bytes when it says no.
 */
#define STORE_PUT_DEDUP 1
#define STORE_PUT_REFUSED 2
int store_put_check(struct store *st, uint64_t ns, const uint8_t *key,
		    uint64_t len, unsigned flags);

/*
 * Zero-copy put, for a server whose network receives the bytes: reserve
 * room for a len-byte block in the write buffer, fill r->iov (the block's
 * bytes in DRAM, in order) by any means, then commit (checksum, header,
 * index; the block becomes readable; cb as for put_submit) or abort
 * (nothing is published). The segment is not sealed while reservations
 * on it are open. -EAGAIN: the write buffer is full, poll and retry. r
 * stays where it is until its commit or abort (the store links open
 * reservations by key, for store_put_check).
 */
#define STORE_RESV_MAXIOV 34 /* a record spans at most k + 1 chunks */
#define STORE_RESV_MAXLAND 32 /* store_put_landed runs kept */
struct store_resv {
	uint64_t ns;
	uint8_t key[STORE_KEY_LEN];
	struct store_hint hint; /* none after reserve; the caller may set
				 * it (checked: store_hint_check) before
				 * commit */
	uint32_t len, off;
	int wb;
	struct store_resv *hnext; /* the store's: open ones by key */
	uint64_t tag;             /* the store's: (ns, key)'s fingerprint */
	struct iovec iov[STORE_RESV_MAXIOV];
	unsigned iovcnt;
	/* the store's: runs checksummed by store_put_landed */
	unsigned nland;         /* STORE_RESV_MAXLAND + 1: too many */
	struct store_land {
		uint32_t off, len, q; /* in the block; CRC register from 0 */
	} land[STORE_RESV_MAXLAND];
};
int store_put_reserve(struct store *st, uint64_t ns, const uint8_t *key,
		      uint32_t len, struct store_resv *r);
int store_put_commit(struct store *st, struct store_resv *r, unsigned flags,
		     store_cb cb, void *arg);
void store_put_abort(struct store *st, struct store_resv *r);
/*
 * Bytes [off, off+len) of r's block are in place and final (a piece the
 * network has just landed): checksum them now, while they are in the
 * CPU's caches. When the pieces so reported tile the whole block, commit
 * checksums nothing again; otherwise (a gap, an overlap, more than
 * STORE_RESV_MAXLAND runs: a piece spanning chunks is one run per
 * chunk) commit checksums the whole block, as without them. Nothing of
 * them reaches the write buffer before commit. -EINVAL: the range is not
 * inside the block (nothing is done).
 */
int store_put_landed(struct store *st, struct store_resv *r, uint32_t off,
		     uint32_t len);

/*
 * Zero-copy get: buf (4096-aligned, cap bytes, >= the block rounded up to
 * 4096) receives the block when it is on flash; a block still in the
 * write buffer is handed out in place. cb(arg, rc, iov, iovcnt, ref): rc
 * is the length or -errno; on success the bytes are in iov and stay valid
 * until store_get_zc_release(st, ref), which the caller must call.
 */
struct store_zc_ref;
typedef void (*store_zc_cb)(void *arg, int rc, const struct iovec *iov,
			    unsigned iovcnt, struct store_zc_ref *ref);
int store_get_zc_submit(struct store *st, uint64_t ns, const uint8_t *key,
			void *buf, size_t cap, store_zc_cb cb, void *arg);
void store_get_zc_release(struct store *st, struct store_zc_ref *ref);

/*
 * Namespace classes: the top 16 bits of a namespace id name its class (the
 * server puts the tenant there). Eviction does not take a class below its
 * quota: while a class holds no more than its quota, its blocks in an
 * evicted segment are rewritten instead of dropped. The sum of the quotas
 * must leave room for everyone else's writes. A class's pinned blocks
 * count against its quota (store_pin).
 */
#define STORE_MAX_CLASSES 1024u
static inline unsigned
store_ns_class(uint64_t ns)
{
	unsigned c = (unsigned)(ns >> 48);

	return c < STORE_MAX_CLASSES ? c : 0;
}
int store_set_quota(struct store *st, unsigned cls, uint64_t bytes);
/*
 * A namespace's weight (docs/cache-policy.md, "Client hints"): what its
 * blocks are worth a rewrite at reclaim. 1, the default: as every block
 * (rewritten if read since written). 0: never rewritten unless pinned
 * or kept for a quota (a block that is cheap to recompute). w >= 2: a
 * block not read since written is still rewritten, up to w - 1 times in
 * a row (a read starts the count again), within the reinsertion budget.
 * In DRAM only: a restart forgets weights (clients set them again).
 * -EINVAL past STORE_MAX_WEIGHT; -ENOSPC when STORE_MAX_WEIGHTED
 * namespaces of ns's class (its tenant) have one already (setting 1
 * removes a namespace's); -ENOMEM.
 */
#define STORE_MAX_WEIGHT 8u
#define STORE_MAX_WEIGHTED 1024u
int store_set_ns_weight(struct store *st, uint64_t ns, unsigned weight);
unsigned store_ns_weight(const struct store *st, uint64_t ns);
/* Flash bytes the class's live blocks take (headers included). */
uint64_t store_class_usage(const struct store *st, unsigned cls);
/* Flash bytes of the class's pinned blocks (headers included). */
uint64_t store_class_pinned(const struct store *st, unsigned cls);

/* Bytes a buffer needs to receive the block (its length rounded up to
 * 4096), or -GPC_ENOTFOUND. */
long store_block_room(struct store *st, uint64_t ns, const uint8_t *key);
/* Is the block still in the DRAM write buffer (no flash read needed)? */
bool store_block_buffered(struct store *st, uint64_t ns, const uint8_t *key);
/* A read of the block served from elsewhere (the server's DRAM read
 * cache) counts for the policy as a get does: its CLOCK bit is set.
 * false: the block is not held (gone, or expired). *was_read (may be
 * NULL): the bit was set already (the block was read since written, or
 * since reclaim last kept it). */
bool store_touch(struct store *st, uint64_t ns, const uint8_t *key,
		 bool *was_read);

/*
 * KV events: cb(arg, STORE_EV_STORED, ns, key) when a new block is put
 * (not when eviction rewrites one), STORE_EV_REMOVED when a block leaves
 * the store (evicted, deleted). Runs on the store's thread, inside the
 * call that caused it: it must not call back into the store. NULL: none.
 */
#define STORE_EV_STORED 1
#define STORE_EV_REMOVED 2
typedef void (*store_ev_cb)(void *arg, int ev, uint64_t ns,
			    const uint8_t *key);
void store_set_event_cb(struct store *st, store_ev_cb cb, void *arg);

/*
 * Pin a block so eviction keeps it (reclaim always rewrites it), or unpin
 * it. Pins count against the class's quota: its pinned blocks' flash
 * bytes stay within it, and classes without a quota share a pool of
 * STORE_PIN_SHARED_PCT of the flash the quotas leave. So what is pinned
 * is always less than the log holds, and reclaim can keep all of it.
 * 0 (also for a pin of a pinned block, an unpin of an unpinned one),
 * -GPC_ENOTFOUND, or -GPC_EQUOTA: the pin would go past the quota or the
 * pool (nothing changes), or what a delete's tombstone may get (-EAGAIN:
 * no room in the log just now; -EROFS). A pin ends when the block
 * leaves: deleted, replaced by a put of its key, or expired. A pin or
 * unpin is a marker in the open segment's summary and a pinned block is
 * rewritten pinned (format.h), so pins survive a restart once their
 * segment is on flash.
 */
#define STORE_PIN_SHARED_PCT 25u
int store_pin(struct store *st, uint64_t ns, const uint8_t *key, bool pin);

/*
 * Seal the open segment; cb(arg, 0) when every put accepted since the
 * previous flush is durable. A segment that could not be written is
 * reported (-EIO) to exactly one flush, like fsync's error reporting.
 */
int store_flush_submit(struct store *st, store_cb cb, void *arg);

/* 1 if present in the index, 0 if not (a later get may still miss). */
int store_exists(struct store *st, uint64_t ns, const uint8_t *key);
/* Number of leading keys of keys[0..n) (32 bytes each) present. Every
 * key of the chain counts as a reference for the policy, and names the
 * key before it as its parent. ends: keys[n - 1] is the last key of the
 * client's chain, its tail (a chain split over shards or messages comes
 * in parts, and only the part with the chain's last key ends it). ru
 * (NULL: not wanted) is added the reuse distances the policy saw for
 * these keys (policy_ref_chain). */
unsigned store_lookup_part(struct store *st, uint64_t ns,
			   const uint8_t *keys, unsigned n, bool ends,
			   struct policy_reuse *ru);
/* A whole chain: store_lookup_part(..., true). */
unsigned store_longest_prefix(struct store *st, uint64_t ns,
			      const uint8_t *keys, unsigned n);
/* Delete: 0 or -GPC_ENOTFOUND. Persists with the next sealed segment. */
int store_delete(struct store *st, uint64_t ns, const uint8_t *key);

/* Drive I/O and run callbacks; waits for one event if min > 0 and work is
 * pending. Returns callbacks run or -errno. */
int store_poll(struct store *st, unsigned min);
/* Operations submitted whose callbacks have not run. */
unsigned store_pending(const struct store *st);
/*
 * An fd that becomes readable when the store has work for store_poll:
 * device I/O completed or the sealer finished a segment. An owner with
 * operations pending may sleep on it (with its other fds) instead of
 * polling; -1 when the I/O backend has none (synchronous backends: poll).
 * Call store_event_drain before the last store_poll ahead of such a
 * sleep, so that nothing that completes after it is missed.
 */
int store_event_fd(const struct store *st);
void store_event_drain(struct store *st);

void store_get_stats(struct store *st, struct store_stats *out);

/* Blocking wrappers. store_get returns the length (>= 0) or -errno. */
int store_put(struct store *st, uint64_t ns, const uint8_t *key,
	      const void *buf, size_t len, unsigned flags);
int store_put_hint(struct store *st, uint64_t ns, const uint8_t *key,
		   const void *buf, size_t len, unsigned flags,
		   const struct store_hint *h);
int store_get(struct store *st, uint64_t ns, const uint8_t *key, void *buf,
	      size_t cap);
int store_flush(struct store *st);

/* Administration. */
enum store_dev_health { STORE_DEV_HEALTHY = 0, STORE_DEV_FAILED = 1 };
/* Mark a device failed: reads reconstruct around it, writes avoid it. */
int store_dev_fail(struct store *st, unsigned dev);
int store_dev_health(const struct store *st, unsigned dev);
/*
 * Rebuild device dev (failed or replaced by a blank one) from the others:
 * rewrite every chunk it holds and its superblock, then mark it healthy.
 * Synchronous. Returns the number of chunks rebuilt or -errno.
 */
long store_rebuild(struct store *st, unsigned dev);

struct store_fsck_report {
	uint64_t segs, segs_bad, chunks_bad, blocks, blocks_bad;
	uint64_t blocks_repairable;
};
/* Verify every segment, chunk and block. report(ctx, line) gets one
 * human-readable line per problem. Synchronous. */
int store_fsck(struct store *st, void (*report)(void *ctx, const char *line),
	       void *ctx, struct store_fsck_report *out);

#endif
