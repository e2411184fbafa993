/*
 * coder_int.h - private to src/coder: the coder object and the const
 * vtable behind coder_create(). coder_isal.c owns the dispatch (create,
 * argument checks, destroy); each implementation fills the generator
 * matrix with its own arithmetic and does the byte work.
 *
 * Everything lives inline in struct coder (no further allocations): the
 * (k+m) x k generator and ISA-L's expanded encode tables are bounded by
 * CODER_MAX_K and CODER_MAX_M.
 */
#ifndef GPC_CODER_CODER_INT_H
#define GPC_CODER_CODER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "coder/coder.h"
#include "common/cacheline.h"

#define CODER_MAX_N (CODER_MAX_K + CODER_MAX_M)

struct coder;

/*
 * init fills c->matrix (and any tables) for c->k, c->m; it may not fail.
 * decode is called only with a valid lost list: distinct indices < k + m,
 * 1 <= nlost <= m.
 */
struct coder_ops {
	const char *name;
	void (*init)(struct coder *c);
	void (*encode)(const struct coder *c, size_t len,
		       const uint8_t *const *data, uint8_t *const *parity);
	int (*decode)(const struct coder *c, size_t len, uint8_t *const *frags,
		      const unsigned *lost, unsigned nlost);
};

struct coder {
	const struct coder_ops *ops;
	unsigned k;
	unsigned m;
	/* generator, row-major: rows 0..k-1 identity, k..k+m-1 Cauchy */
	uint8_t matrix[CODER_MAX_N * CODER_MAX_K];
	/* ISA-L: ec_init_tables() of the m parity rows (unused by ref) */
	_Alignas(GPC_CACHELINE) uint8_t enc_tbls[32 * CODER_MAX_K * CODER_MAX_M];
};

extern const struct coder_ops coder_isal_ops;
extern const struct coder_ops coder_ref_ops;

#endif
