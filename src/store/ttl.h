/*
 * ttl.h - the expiry times of the blocks that have one (a PUT with a TTL,
 * docs/cache-policy.md): fingerprint (the index's tag) -> expiry, in
 * seconds since the epoch. Only blocks with a TTL are here (the index
 * entry's INDEX_F_TTL says to look), so blocks without one cost no DRAM;
 * one with a TTL costs 16 bytes at 50-75% load, 21-32 bytes. On flash
 * the expiry is in the block's summary entry (format.h), so recovery
 * rebuilds this table. Single-threaded: one per store.
 */
#ifndef GPC_STORE_TTL_H
#define GPC_STORE_TTL_H

#include <stddef.h>
#include <stdint.h>

struct store_ttl;

int ttl_create(struct store_ttl **out);
void ttl_destroy(struct store_ttl *t);
/* Set (or replace) tag's expiry (> 0); 0 or -ENOMEM (nothing changed). */
int ttl_set(struct store_ttl *t, uint64_t tag, uint32_t expire);
/* tag's expiry, or 0 when it has none. */
uint32_t ttl_get(const struct store_ttl *t, uint64_t tag);
void ttl_del(struct store_ttl *t, uint64_t tag);
size_t ttl_count(const struct store_ttl *t);
/* DRAM bytes the table holds. */
size_t ttl_bytes(const struct store_ttl *t);

#endif
