/*
 * store_int.h - private to the flash engine: the structures shared by
 * store.c (lifecycle, recovery), store_write.c (write buffer, sealing,
 * eviction), store_read.c (reads, reconstruction) and store_admin.c
 * (rebuild, fsck). Single-threaded: every field belongs to the owning
 * thread.
 */
#ifndef GPC_STORE_STORE_INT_H
#define GPC_STORE_STORE_INT_H

#include "coder/coder.h"
#include "index.h"
#include "store.h"
#include "ttl.h"

#define STORE_MAX_IO (1u << 20) /* device I/O size cap */
#define STORE_CHAIN_PIECE 1024u /* a LOOKUP chain goes to the policy in
				 * pieces of this many keys */

enum slot_state {
	SLOT_FREE = 0,
	SLOT_OPEN = 1,    /* in a write buffer, accepting records */
	SLOT_SEALING = 2, /* in a write buffer, being written */
	SLOT_SEALED = 3,  /* on flash */
	SLOT_RECLAIMING = 4, /* evicted, blocks it keeps still being read */
};

struct slot {
	uint64_t seq;      /* segment in this slot, 0 when free */
	uint64_t badmask;  /* chunks known stale or unwritten */
	uint32_t gen;
	uint32_t data_len;
	uint32_t nentries;
	uint32_t ttl_min;  /* earliest expiry of a block indexed here, 0:
			    * none (a bound: it may have left); the sweep's */
	uint8_t state;     /* enum slot_state */
	int8_t wbuf;       /* write buffer holding it, or -1 */
	bool stale;        /* free, and still holding an evicted segment */
};

/* A queued completion: the user callback runs from store_poll. */
struct store_done {
	struct store_done *next;
	store_cb cb;
	void *arg;
	int rc;
	uint64_t seq;      /* flush waiters: complete when all <= seq durable */
};

/* Damage seen at open on slots that did not come back (fsck reports it). */
enum open_damage {
	DMG_CHUNK_HDR = 1,   /* our magic, bad CRC or fields */
	DMG_MISPLACED = 2,   /* a valid header of another slot or chunk */
	DMG_SUMMARY = 3,     /* headers agreed, summary failed its checks */
	DMG_MISSING = 4,     /* its chunk was found written elsewhere */
};
#define STORE_MAX_DAMAGE 4096u

struct open_dmg {
	uint32_t slot;
	uint16_t chunk;
	uint8_t kind;
};

/* The CRC register of a non-zero run of a segment's logical space: data
 * chunk checksums are assembled from these at seal (crc.h), so the bytes
 * are checksummed once, as they arrive. Runs never cross chunks. */
struct crc_frag {
	uint32_t loff, len, q;
};

#define STORE_RESV_BUCKETS 256u

struct wbuf {
	struct store *st;
	uint8_t *mem;      /* w * chunk_size, 4096-aligned; chunk i at i*cs */
	uint8_t *sum;      /* summary entries being built */
	uint32_t sum_cap;  /* bytes of sum */
	uint32_t slot;
	uint32_t data_len;
	uint32_t nentries;
	unsigned pending;  /* I/Os in flight while sealing */
	int err;           /* first failure while sealing */
	bool busy;         /* holds a segment */
	bool want_seal;    /* a durable put waits on it */
	bool seal_deferred; /* sealing waits for reservations to finish */
	bool release_deferred; /* durable, but zero-copy readers hold it */
	bool held;         /* closed, kept in DRAM unwritten (write-back) */
	bool clean;        /* written, kept in DRAM for reads */
	uint64_t closed_ns; /* when it was closed, for the write-back age */
	unsigned nresv;    /* reservations not yet committed or aborted */
	unsigned refs;     /* zero-copy readers pinning the memory */
	struct store_done *waiters;
	struct store_io_req *reqs;
	struct crc_frag *frags; /* every non-zero run of the data chunks */
	uint32_t nfrags, frags_cap;
	bool frags_lost;        /* a fragment could not be recorded */
};

/* FIFO of (segment seq << 24 | slot) values; stale ones are skipped. */
struct ringq {
	uint64_t *v;
	uint64_t head, tail, cap;
};

struct store {
	struct store_io *io;
	struct store_geom g;
	struct coder *coder;
	struct store_index *ix;
	struct store_ttl *ttl; /* expiries of blocks with a TTL */
	struct store_opts o;
	struct sb_disk sb;     /* the store's superblock, as read at open */
	uint8_t uuid[16];
	uint64_t sb_gen[STORE_MAX_DEVS];
	unsigned devmap[STORE_MAX_DEVS]; /* store device -> io device */
	unsigned rdevmap[STORE_MAX_DEVS]; /* io device -> store device */
	uint8_t dev_failed[STORE_MAX_DEVS];
	struct slot *slots;
	struct ringq fifo;     /* non-free slots, oldest segment first */
	struct ringq freeq;    /* free slots */
	struct wbuf *wb;
	unsigned nwb;
	bool bufs_registered;  /* the write buffers are fixed buffers */
	int cur;               /* open write buffer, or -1 */
	struct store_resv *resv_ht[STORE_RESV_BUCKETS]; /* reservations
				* not yet committed or aborted, by key */
	uint64_t next_seq;
	struct store_done *done_head, *done_tail; /* callbacks to run */
	struct store_done *flushq;                /* flush waiters */
	struct store_get_op *degq;                /* gets to reconstruct */
	struct reins *reinsq;                     /* blocks to reinsert */
	struct reins *recl_todo;  /* kept blocks of the reclaimed segment
				   * not yet read */
	unsigned recl_inflight;   /* their reads in flight */
	int recl_slot;            /* the slot being reclaimed, or -1 */
	bool abandoned;                           /* no more sealing */
	uint64_t writable_mask;   /* failed devices when last checked */
	bool writable_mask_valid, writable_cached;
	uint64_t usage[STORE_MAX_CLASSES]; /* flash bytes per namespace class */
	uint64_t quota[STORE_MAX_CLASSES]; /* bytes eviction leaves alone */
	uint64_t pinned[STORE_MAX_CLASSES]; /* flash bytes of pinned blocks */
	uint64_t quota_sum;       /* sum of quota[] */
	uint64_t pinned_shared;   /* pinned[] of classes without a quota */
	uint64_t nhigh;           /* blocks of high priority in the index */
	uint32_t sweep_next;      /* wall second of the next TTL sweep */
	uint32_t sweep_pos;       /* slot the next TTL sweep starts at */
	struct ns_weight {
		uint64_t ns;
		uint32_t w;
	} *weights;               /* namespaces' weights other than 1,
				   * sorted by ns (store_set_ns_weight) */
	unsigned nweights, weights_cap;
	uint16_t nweights_cls[STORE_MAX_CLASSES]; /* of them, per class */
	struct open_dmg dmg[STORE_MAX_DAMAGE];
	unsigned ndmg;
	uint64_t lost_segs;    /* segments that could not be made durable */
	uint64_t lost_seen;    /* lost_segs as last reported by a flush */
	unsigned pending;      /* user ops not yet completed */
	uint8_t *zero_sec;     /* a zeroed sector: invalidates chunk headers */
	struct policy *pol;    /* admission and reinsertion (policy.h) */
	struct sealer *sealer; /* seals off this thread, or NULL */
	store_ev_cb ev_cb;     /* KV events, or NULL */
	void *ev_arg;
	uint64_t rec_bytes, recs; /* records put: the capacity estimate */
	uint64_t reins_rec_bytes; /* records rewritten by reinsertion */
	uint64_t hit_rec_bytes; /* records of held blocks GETs asked for */
	uint64_t budget_lapsed; /* reinsertion budget past the bank, lost */
	uint32_t rec_max; /* the largest record a put has asked room for */
	struct store_stats s;
};

/* Flash footprint of a record of len4k data sectors (header included). */
static inline uint64_t
store_foot(uint32_t len4k)
{
	return (1ull + len4k) * STORE_SECTOR;
}

/* A segment's sealing work (store_seal.c): what it reads of the store
 * does not change while the store is open. */
struct seal_cost {
	uint64_t ec_ns, crc_ns;
};
struct seal_job {
	struct seal_job *next;
	const struct store_geom *g;
	const struct coder *coder;
	const uint8_t *uuid;
	struct wbuf *w;
	uint64_t seq;
	uint32_t gen;
	struct seal_cost cost;
};
struct sealer;

/* store_seal.c: parity, chunk CRCs and headers of a full buffer whose
 * tail is built; on any thread (see the file). */
void seal_encode(const struct seal_job *j, struct seal_cost *cost);
/* efd (or -1): an eventfd written when a job is done (store_event_fd). */
int sealer_start(unsigned k, unsigned m, int efd, struct sealer **out);
/* Join the thread; jobs not reaped are freed (their buffers stay as
 * they are: the store is being freed or abandoned). */
void sealer_stop(struct sealer *s);
/* Hand j (malloc'd) over; the sealer runs seal_encode on it. */
void sealer_submit(struct sealer *s, struct seal_job *j);
/* A finished job (the caller frees it), or NULL; with wait, blocks until
 * one finishes if any is out. */
struct seal_job *sealer_reap(struct sealer *s, bool wait);
/* Jobs handed over and not reaped. */
unsigned sealer_busy(const struct sealer *s);

/* store.c */
/* Index (ns, key) at loc; expire (seconds since the epoch, 0: none)
 * goes to the TTL table when loc->flags has INDEX_F_TTL. */
int store_ix_put(struct store *st, uint64_t ns, const uint8_t *key,
		 const struct index_loc *loc, uint32_t expire);
/* index_lookup, but an expired block is a miss (and leaves the index,
 * with its REMOVED event). */
int store_ix_find(struct store *st, uint64_t ns, const uint8_t *key,
		  struct index_hkey hk, struct index_loc *out);
/* Seconds since the epoch, by the store's clock. */
uint32_t store_now_s(const struct store *st);
/* Has a block whose expiry is expire (0: none) expired? */
static inline bool
store_expired(const struct store *st, uint32_t expire)
{
	return expire != 0 && store_now_s(st) >= expire;
}
/* Index flags and summary flags of a priority, and back. */
static inline uint8_t
store_prio_ixflags(unsigned prio)
{
	return prio == STORE_PRIO_LOW ? INDEX_F_LOW
	       : prio == STORE_PRIO_HIGH ? INDEX_F_HIGH : 0;
}
static inline uint32_t
store_ix_sumflags(uint8_t ixflags)
{
	return ((ixflags & INDEX_F_LOW) ? SUM_F_LOW : 0) |
	       ((ixflags & INDEX_F_HIGH) ? SUM_F_HIGH : 0) |
	       ((ixflags & INDEX_F_PINNED) ? SUM_F_PINNED : 0);
}
static inline uint8_t
store_sum_ixflags(uint32_t sumflags, uint32_t expire)
{
	return (uint8_t)(((sumflags & SUM_F_LOW) ? INDEX_F_LOW : 0) |
			 ((sumflags & SUM_F_HIGH) ? INDEX_F_HIGH : 0) |
			 ((sumflags & SUM_F_PINNED) ? INDEX_F_PINNED : 0) |
			 (expire ? INDEX_F_TTL : 0));
}
/* What the summary entry of (ns, key) keeps of its parent: the high 32
 * bits of the parent's fingerprint in ns, as the latest LOOKUP chain
 * through the key in ns's class said (policy_parent); 0: a root, or not
 * known. */
static inline uint32_t
store_parent_of(const struct store *st, uint64_t ns, const uint8_t *key)
{
	uint64_t up = policy_parent(st->pol, store_ns_class(ns),
				    index_key_hash(key));

	return up ? (uint32_t)(index_hash_kh(ns, up).tag >> 32) : 0;
}
/* Log a pin marker of (ns, key)'s indexed record in the open segment
 * (store_write.c) and give its index entry: 0, -GPC_ENOTFOUND (gone
 * while room was made), or what a delete's tombstone may get (-EAGAIN,
 * -GPC_ENOSPACE, -ENOMEM). */
int store_log_pin(struct store *st, uint64_t ns, const uint8_t *key,
		  bool pin, struct index_loc *loc);
/* The expiry of a put with ttl_s (0: none) made now. */
uint32_t store_expire_at(const struct store *st, uint32_t ttl_s);
void store_ix_del(struct store *st, uint64_t ns, struct index_hkey hk,
		  uint32_t len4k);
/* Remove the entry only while it points at (slot, off4k), as
 * index_remove_at; its usage and pin leave the accounts. */
void store_ix_del_at(struct store *st, uint64_t ns, struct index_hkey hk,
		     uint32_t slot, uint32_t off4k);
void store_complete(struct store *st, store_cb cb, void *arg, int rc);
void store_done_push(struct store *st, struct store_done *d);
int store_sync_io(struct store *st, struct store_io_req *reqs, unsigned n);
void *store_zalloc(size_t len);
unsigned store_slot_dev(const struct store *st, uint64_t slot, unsigned i,
			uint64_t *off);
void store_fail_dev_io(struct store *st, unsigned dev, int err);
int store_submit(struct store *st, struct store_io_req *r);
unsigned store_req_sdev(const struct store *st, const struct store_io_req *r);
int ringq_init(struct ringq *q, uint64_t cap);
void ringq_push(struct ringq *q, uint64_t v);
int ringq_pop(struct ringq *q, uint64_t *v);
static inline uint64_t
ringq_len(const struct ringq *q)
{
	return q->tail - q->head;
}

/* store_write.c */
/* Write out the segments the sealer has finished (wait: block for one if
 * any is out and nothing else is pending). */
void store_seal_reap(struct store *st, bool wait);
void store_note_put(struct store *st, uint64_t ns, const uint8_t *key,
		    uint32_t len);
/* A block left the store: counted as evicted when evicted is set. */
void store_note_gone(struct store *st, uint64_t ns, const uint8_t *key,
		     bool evicted);
int store_wbufs_init(struct store *st);
void store_wbufs_fini(struct store *st);
void store_seal_pending(struct store *st);
/* Write held segments older than writeback_ms (store_poll). */
void store_writeback_age(struct store *st);
/* store_sweep.c: once a second (store_poll), drop the expired blocks of
 * a few sealed segments whose earliest expiry has passed. */
void store_ttl_sweep(struct store *st);
/* Close: zero the chunk headers of free slots that still hold an evicted
 * segment, so that it does not come back at the next open. */
int store_zero_stale(struct store *st);
int store_seal_cur(struct store *st);
int store_read_summary(struct store *st, uint32_t s, uint8_t **out);
void store_flushq_check(struct store *st);
unsigned store_wbuf_pieces(const struct store *st, const struct wbuf *w,
			   uint32_t off, uint32_t len, struct iovec *iov,
			   unsigned max);
void store_wbuf_pin(struct store *st, int wb);
void store_wbuf_unpin(struct store *st, int wb);
uint8_t *store_wbuf_ptr(const struct store *st, const struct wbuf *w,
			uint32_t loff, uint32_t *room);

/* store_read.c */
int store_read_range(struct store *st, uint32_t slot, uint32_t off,
		     uint32_t len, uint8_t *buf,
		     int (*verify)(void *ctx, const uint8_t *buf), void *ctx);
void store_degraded_run(struct store *st);
int store_reconstruct(struct store *st, uint32_t s, unsigned c, uint32_t coff,
		      uint32_t len, uint8_t *dst, uint64_t *bad);
int store_read_chunk(struct store *st, uint32_t s, unsigned c, uint32_t coff,
		     uint32_t len, uint8_t *dst);
uint64_t store_bad_chunks(const struct store *st, uint32_t s);
/* Read the record of len bytes at (slot, off4k) of (ns, key) into buf
 * (4096-aligned, store_rec_size(len) - 4096 bytes), checked as a get is,
 * without a get's counters or CLOCK bit: cb(arg, len or -errno) from
 * store_poll. For reclaim (store_write.c). */
int store_read_loc_submit(struct store *st, uint64_t ns, const uint8_t *key,
			  uint32_t slot, uint32_t off4k, uint32_t len,
			  void *buf, store_cb cb, void *arg);
int store_read_record(struct store *st, uint32_t slot, uint32_t off4k,
		      uint32_t len, uint64_t ns, const uint8_t *key,
		      uint8_t *buf);
int store_rec_check(const struct store *st, const uint8_t *hdr,
		    uint64_t ns, const uint8_t *key, uint64_t seq,
		    uint32_t len4k, struct rec_disk *out);
void store_read_fini(struct store *st);

#endif
