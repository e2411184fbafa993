/*
 * hash.h - XXH3 used header-only (XXH_INLINE_ALL): the shared library is
 * about 4x slower because nothing inlines through it.
 */
#ifndef GPC_COMMON_HASH_H
#define GPC_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

struct hash128 {
	uint64_t lo;
	uint64_t hi;
};

static inline struct hash128
hash128_seed(const void *buf, size_t len, uint64_t seed)
{
	XXH128_hash_t h = XXH3_128bits_withSeed(buf, len, seed);
	struct hash128 r = { .lo = h.low64, .hi = h.high64 };

	return r;
}

#endif
