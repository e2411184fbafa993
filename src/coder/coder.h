/*
 * coder.h - systematic Reed-Solomon erasure coding over GF(2^8), k data +
 * m parity fragments, with the Cauchy generator matrix of ISA-L's
 * gf_gen_cauchy1_matrix (rows k..k+m-1: a[i][j] = 1 / (i ^ j), field
 * polynomial 0x11d). k in 1..32, m in 0..16, k + m <= 48.
 *
 * Two implementations of the same code: coder_isal.c (ISA-L, fast, what the
 * engine uses) and coder_ref.c (slow, obviously correct GF(2^8) arithmetic
 * written here, for tests). Both produce identical bytes.
 *
 * A coder is immutable after create and may be shared by threads; decode
 * caches nothing.
 */
#ifndef GPC_CODER_CODER_H
#define GPC_CODER_CODER_H

#include <stddef.h>
#include <stdint.h>

#define CODER_MAX_K 32
#define CODER_MAX_M 16

struct coder;

enum coder_impl { CODER_ISAL = 0, CODER_REF = 1 };

int coder_create(enum coder_impl impl, unsigned k, unsigned m,
		 struct coder **out);
void coder_destroy(struct coder *c);
unsigned coder_k(const struct coder *c);
unsigned coder_m(const struct coder *c);

/*
 * Compute the m parity fragments from the k data fragments, each len bytes
 * (any len >= 1; no alignment needed).
 */
void coder_encode(const struct coder *c, size_t len,
		  const uint8_t *const *data, uint8_t *const *parity);

/*
 * Reconstruct lost fragments. frags[0..k+m) point to len-byte buffers
 * (data first, then parity); lost[] lists the nlost indices whose content
 * is unknown (distinct, < k+m). On return those buffers hold the
 * reconstructed bytes; the others are only read. Returns 0, -EINVAL for a
 * bad list, or -GPC_EDEGRADED when nlost > m.
 */
int coder_decode(const struct coder *c, size_t len, uint8_t *const *frags,
		 const unsigned *lost, unsigned nlost);

#endif
