/*
 * index.h - the DRAM index of the flash engine: (namespace, key) -> where
 * the block's record lies. 16 bytes per entry, open addressing, kept
 * between 53% and 80% full, so 20-30 bytes of DRAM per indexed block.
 *
 * The index keeps a 64-bit fingerprint of (ns, key), not the key: two
 * blocks whose fingerprints collide share one entry (the later wins) and
 * a read always compares the full key stored on flash, so a collision is a
 * miss, never another block's bytes. Single-threaded: one per store.
 */
#ifndef GPC_STORE_INDEX_H
#define GPC_STORE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INDEX_F_REF 0x01u    /* read since written (CLOCK bit) */
#define INDEX_F_PINNED 0x02u /* survives eviction (reinserted) */
#define INDEX_F_TTL 0x04u    /* has an expiry (ttl.h) */
#define INDEX_F_LOW 0x08u    /* priority low: never reinserted */
#define INDEX_F_HIGH 0x10u   /* priority high: reinserted first */

#define INDEX_MAX_SLOT ((1u << 24) - 1)
#define INDEX_MAX_OFF4K ((1u << 18) - 1)
#define INDEX_MAX_LEN4K (1u << 14)

struct index_hkey {
	uint64_t tag; /* fingerprint of (ns, key); never 0 */
};

struct index_loc {
	uint32_t slot;  /* stripe slot of the segment */
	uint32_t off4k; /* record offset in the logical space / 4096 */
	uint32_t len4k; /* data sectors, 1..INDEX_MAX_LEN4K */
	uint8_t flags;  /* INDEX_F_* */
};

struct store_index;

int index_create(size_t expect, struct store_index **out);
void index_destroy(struct store_index *ix);

/* The fingerprint of (ns, key) is index_hash_kh(ns, index_key_hash(key)):
 * a key's own hash, free of the namespace, is what a prefix chain's
 * links keep (policy.h), and its fingerprint in any namespace follows.
 * Its high 32 bits are on flash (a summary entry's parent, format.h):
 * changing either function is a format change. */
struct index_hkey index_hash(uint64_t ns, const uint8_t *key);
uint64_t index_key_hash(const uint8_t *key);
struct index_hkey index_hash_kh(uint64_t ns, uint64_t kh);

/* 0 and *out, or -GPC_ENOTFOUND. */
int index_lookup(const struct store_index *ix, struct index_hkey hk,
		 struct index_loc *out);
/* Insert or replace; returns 0 or -ENOMEM (index unchanged). */
int index_upsert(struct store_index *ix, struct index_hkey hk,
		 const struct index_loc *loc);
/* Insert or replace; 1 and *old (if not NULL) when an entry was replaced,
 * 0 when inserted, -ENOMEM. */
int index_swap(struct store_index *ix, struct index_hkey hk,
	       const struct index_loc *loc, struct index_loc *old);
/* Does an entry's tag have these high 32 bits (hi != 0)? What a summary
 * entry keeps of a block's parent (format.h) finds it so; another tag
 * with the same high bits answers yes too (about n / 2^32 of the time,
 * for n entries near its home), so use it only where a wrong yes costs
 * nothing but a missed chance. */
bool index_has_hi32(const struct store_index *ix, uint32_t hi);
/* Remove; 0 or -GPC_ENOTFOUND. */
int index_remove(struct store_index *ix, struct index_hkey hk);
/* Remove only while the entry still points at (slot, off4k). */
int index_remove_at(struct store_index *ix, struct index_hkey hk,
		    uint32_t slot, uint32_t off4k);
/* OR flags into / clear flags of an entry; -GPC_ENOTFOUND if absent. */
int index_set_flags(struct store_index *ix, struct index_hkey hk,
		    uint8_t set, uint8_t clear);

size_t index_count(const struct store_index *ix);
/* DRAM bytes the index holds (table and header). */
size_t index_bytes(const struct store_index *ix);

#endif
