/*
 * policy.h - what the cache keeps: the flash engine's admission and
 * reinsertion decisions, in one module that the store and the offline
 * simulator (`gpucache sim`, which runs the real store on in-memory
 * devices) both run, so what is measured offline is what the daemon does.
 * Design and measurements: docs/cache-policy.md.
 *
 * The store is a log: flash is written only in whole segments and
 * reclaimed oldest segment first (store_write.c). Within that constraint
 * the policy decides
 *   - admission: does a new block go to flash at all (policy_admit)?
 *   - reinsertion: which live blocks of a reclaimed segment are rewritten
 *     (policy_keep; the store bounds the bytes per segment);
 * from what the workload tells it:
 *   - references: every key of a LOOKUP chain (engines look a prefix up
 *     before they load or save it) is counted in a reference table (a
 *     cuckoo filter with 2-bit counts, halved every window of 8 x
 *     capacity references), so "seen before" outlives the block;
 *   - the CLOCK bit (read or re-put since written), pins and the
 *     client's priority per put (low: never rewritten; high: kept
 *     unread), kept in the index entry;
 *   - prefix chains: a LOOKUP chain names each key's parent; the store
 *     keeps it in the block's summary entry (policy_parent), and a block
 *     whose parent is gone by reclaim is an orphan, never rewritten (a
 *     LOOKUP stops before it, so it can never hit).
 * Admission is chosen online by miniature simulations (Waldspurger et
 * al., ATC'17): three small CLOCK caches over a spatial sample of the
 * keys (1 in 2^sample_shift, by fingerprint; each chain's sampled keys
 * in order, scored on their leading run), sized to the cache's
 * capacity scaled down the same way, one admitting every block, one
 * admitting only blocks referenced twice lately (count >= 2), one
 * admitting every block but a chain's tail (its last key) unless that
 * was referenced twice lately. Whichever scored most prefix hits over
 * the recent epochs (a refusing rule by a margin) decides for the real
 * cache. A small cache whose reuse
 * distances are longer than it can hold gains by refusing one-hit
 * wonders; a large one loses by it; the minis tell which case holds now,
 * on this workload, with no tuning to a trace.
 *
 * Fingerprints are the index's 64-bit tags (index_hash), never 0.
 * Single-threaded: one policy per store, owned by the store's thread.
 */
#ifndef GPC_STORE_POLICY_H
#define GPC_STORE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

enum policy_mode {
	POLICY_AUTO = 0,       /* the miniature simulations choose */
	POLICY_ADMIT_ALL = 1,  /* every new block goes to flash */
	POLICY_ADMIT_SEEN = 2, /* only blocks referenced before */
	POLICY_ADMIT_NOTAIL = 3, /* all but a chain's last block, unless
				  * that was referenced before */
};
#define POLICY_NMODES 4u
#define POLICY_NMINI 3u /* a mini per rule: all, seen, notail */

struct policy_opts {
	uint64_t capacity;     /* blocks the cache holds when full (estimate) */
	unsigned sample_shift; /* minis sample 1 key in 2^shift; 0 = auto:
				* as few as keep each mini >= 2,048 slots,
				* at most 1 in 256 */
	enum policy_mode mode;
	bool keep_orphans;     /* policy_keep ignores orphans (measuring) */
};

/* Reuse distances seen by the admit-all mini, in references (scaled by
 * the sampling): bucket i counts distances in [2^i, 2^(i+1)), the last
 * one everything beyond; reuse_far counts references it missed (first
 * seen, or reused beyond what it holds). */
#define POLICY_REUSE_BUCKETS 28

/* One LOOKUP's share of those figures (policy_ref_chain's out): the same
 * buckets, sum and misses, for its sampled keys only, added to. */
struct policy_reuse {
	uint64_t n[POLICY_REUSE_BUCKETS];
	uint64_t sum, far;
};

struct policy_stats {
	uint64_t refs;            /* references recorded */
	uint64_t admitted, refused; /* admission decisions */
	uint64_t mini_hits[POLICY_NMINI]; /* per mini (all, seen, notail):
					   * hits so far (not decayed) */
	uint64_t mini_refs;       /* sampled references fed to the minis */
	uint64_t capacity;        /* current capacity estimate, blocks */
	unsigned mode;            /* enum policy_mode in force now */
	uint64_t switches;        /* times AUTO changed its choice */
	uint64_t resets;          /* reference-table agings (windows, scans) */
	uint64_t reuse[POLICY_REUSE_BUCKETS];
	uint64_t reuse_sum;       /* sum of the distances counted there */
	uint64_t reuse_far;
};

struct policy;

/* -ENOMEM or -EINVAL (capacity 0). */
int policy_create(const struct policy_opts *o, struct policy **out);
void policy_destroy(struct policy *p);

/* The cache now holds about this many blocks when full (block sizes
 * vary: the store re-estimates from the records it writes). */
void policy_set_capacity(struct policy *p, uint64_t blocks);

/* A key as the reference counts know it: its key hash (index_key_hash)
 * within scope (the tenant's class), whichever namespace it is in, so
 * that a chain looked up in one namespace counts for the same keys in
 * the tenant's others (an engine's layers: it looks a chain up in the
 * first layer's namespace and puts it in every layer's). Never 0. */
uint64_t policy_key(uint64_t scope, uint64_t kh);
/* Is the key of fingerprint fp in the minis' sample at this shift? */
bool policy_sampled(uint64_t fp, unsigned shift);
/* The keys of a LOOKUP chain, root first: each is a reference. fps: the
 * blocks' fingerprints (the minis' blocks); keys: their policy_key (NULL:
 * the fps stand for them). ends: the chain ends with the n-th (a long
 * chain comes in pieces; only the last piece ends it). out (NULL: none)
 * is added the reuse its sampled keys showed, for figures per tenant and
 * namespace. */
void policy_ref_chain(struct policy *p, const uint64_t *fps,
		      const uint64_t *keys, unsigned n, bool ends,
		      struct policy_reuse *out);
/* The same chain's links, for policy_parent: khs are its keys' own
 * hashes (index_key_hash, free of the namespace), each key's parent is
 * the key before it, khs[0]'s is up (0: a root). scope is what the links
 * hold within (the tenant's class): a key's parent is a property of the
 * key (prefix hash chains), whichever namespace it is put in. ends: as
 * for policy_ref_chain; the chain's last key is then its tail
 * (policy_tail) until a longer chain through it says otherwise. */
void policy_link_chain(struct policy *p, uint64_t scope, uint64_t up,
		       const uint64_t *khs, unsigned n, bool ends);
/* A reference to one block (a chain of one, not ending: no tail; its
 * fingerprint stands for its key). */
void policy_ref(struct policy *p, uint64_t fp);
/* Should a new block go to flash? key: its policy_key (as referenced);
 * tail: it was the last key of the latest LOOKUP chain through it
 * (policy_tail). Counts the decision. */
bool policy_admit(struct policy *p, uint64_t key, bool tail);
/* Is a live block of a reclaimed segment worth rewriting? flags are its
 * index flags: pinned, yes; an orphan (its parent, as its summary entry
 * names it, is gone: a LOOKUP would stop before it, so it can never
 * hit), no; a client's low priority (INDEX_F_LOW), no; its namespace's
 * weight 0, no; read since written (INDEX_F_REF) or high priority
 * (INDEX_F_HIGH), yes; else yes while the block has been rewritten
 * unread fewer than weight - 1 times in a row (age; weight 1, the
 * default: never). (The store gives high blocks a share of the budget
 * of their own.) */
bool policy_keep(const struct policy *p, uint64_t fp, uint8_t flags,
		 bool orphan, unsigned weight, unsigned age);
/* Are orphans kept like other blocks (policy_opts.keep_orphans)? Then
 * the store need not look their parents up. */
bool policy_keep_orphans(const struct policy *p);
/* The key hash of kh's parent in scope, as the latest LOOKUP chain
 * through it said; 0 when not known (a root, no LOOKUP lately, or
 * forgotten: a table of the last 64 Ki links). */
uint64_t policy_parent(const struct policy *p, uint64_t scope, uint64_t kh);
/* Was kh the last key of the latest LOOKUP chain through it (as far as
 * the same table remembers)? */
bool policy_tail(const struct policy *p, uint64_t scope, uint64_t kh);
/* A key's references lately, 0..3, as the reference table counts them
 * (key: as given to policy_ref_chain). */
unsigned policy_freq(const struct policy *p, uint64_t key);

void policy_get_stats(const struct policy *p, struct policy_stats *out);
const char *policy_mode_name(unsigned mode);
/* Parse "auto", "all", "seen", "notail"; -EINVAL otherwise. */
int policy_mode_parse(const char *s, enum policy_mode *out);

#endif
