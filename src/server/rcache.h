/*
 * rcache.h - a shard's DRAM read cache: blocks that LOOKUP with PREFETCH
 * brought up from flash ahead of the GET that follows (an engine looks a
 * prefix up, then fetches it), and blocks a GET read from flash that had
 * been read before (hot ones: promoted on their second read). Bounded in bytes, LRU, shard-local (no
 * locks). A block is read from flash straight into the cache's buffer and
 * sent to the client from there: no CPU copy.
 *
 * Entries: LOADING (read in flight), READY (servable), DEAD (dropped while
 * in use; freed when the last user lets go). A GET pins a READY entry for
 * the length of its send. A PUT or DELETE of the key drops the entry, so
 * the cache never serves bytes older than what the engine holds.
 */
#ifndef GPC_SERVER_RCACHE_H
#define GPC_SERVER_RCACHE_H

#include <stdbool.h>
#include <stdint.h>

struct rcache;
struct rcache_ent;

int rcache_create(uint64_t max_bytes, struct rcache **out);
/* Free everything (shutdown: no entry may be in use any more). */
void rcache_destroy(struct rcache *rc);

/*
 * Start loading a block of room bytes: returns an entry whose buffer
 * (rcache_buf) the caller fills, then rcache_ready or rcache_fail. NULL
 * if the key is cached or loading already, or the budget is spent by
 * entries in use.
 */
struct rcache_ent *rcache_load(struct rcache *rc, uint64_t ns,
			       const uint8_t *key, uint32_t room);
uint8_t *rcache_buf(struct rcache_ent *e);
/* false: the entry was dropped while loading, and is freed now. */
bool rcache_ready(struct rcache *rc, struct rcache_ent *e, uint32_t len);
void rcache_fail(struct rcache *rc, struct rcache_ent *e);

/* A READY entry for the key, pinned, with its bytes; NULL on a miss. */
struct rcache_ent *rcache_get(struct rcache *rc, uint64_t ns,
			      const uint8_t *key, const uint8_t **data,
			      uint32_t *len);
void rcache_unpin(struct rcache *rc, struct rcache_ent *e);
/* Pin READY entry e, just loaded, for the GET that loaded it (not counted
 * as a hit: that GET read flash); its bytes. */
void rcache_pin(struct rcache *rc, struct rcache_ent *e, const uint8_t **data,
		uint32_t *len);
/* Forget the key (its block changed or went away). */
void rcache_drop(struct rcache *rc, uint64_t ns, const uint8_t *key);

uint64_t rcache_bytes(const struct rcache *rc);
uint64_t rcache_hits(const struct rcache *rc);
/* Blocks brought up from flash (promotions), and the byte budget. */
uint64_t rcache_loads(const struct rcache *rc);
uint64_t rcache_max(const struct rcache *rc);

#endif
