/*
 * coder_isal.c - the coder entry points and the ISA-L implementation.
 *
 * Dispatch: coder_create() checks k and m, picks a const vtable from
 * coder_impls[] and lets it fill the generator matrix; coder_encode() and
 * coder_decode() check their arguments once here, so both implementations
 * see only valid input and answer errors identically.
 *
 * ISA-L: the generator is gf_gen_cauchy1_matrix(); the m parity rows are
 * expanded once at create (ec_init_tables) and reused read-only by every
 * encode, so a coder may be shared by threads. Decode takes the first k
 * surviving fragments, inverts their k x k submatrix, derives one row per
 * lost fragment (data: a row of the inverse; parity: the parity row times
 * the inverse), expands those rows and runs ec_encode_data() from the
 * survivors into the lost buffers. Its scratch (about 19 KiB at the maximum
 * k and m) lives on the caller's stack: decode allocates nothing and caches
 * nothing. ec_encode_data() takes an int length, so longer fragments are
 * fed in chunks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/erasure_code.h>

#include "coder/coder_int.h"
#include "gpucache/gpucache.h"

/* Largest length handed to ec_encode_data() at once; a multiple of 64. */
#define CODER_ISAL_CHUNK ((size_t)1 << 30)

static const struct coder_ops *const coder_impls[] = {
	[CODER_ISAL] = &coder_isal_ops,
	[CODER_REF] = &coder_ref_ops,
};
_Static_assert(sizeof(coder_impls) / sizeof(coder_impls[0]) == CODER_REF + 1,
	       "every coder_impl has a vtable");

int
coder_create(enum coder_impl impl, unsigned k, unsigned m, struct coder **out)
{
	const struct coder_ops *ops;
	struct coder *c;

	if ((unsigned)impl >= sizeof(coder_impls) / sizeof(coder_impls[0]))
		return -EINVAL;
	ops = coder_impls[impl];
	if (ops == NULL || ops->init == NULL || ops->encode == NULL ||
	    ops->decode == NULL)
		return -EINVAL;
	if (k < 1 || k > CODER_MAX_K || m > CODER_MAX_M || k + m > CODER_MAX_N)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->ops = ops;
	c->k = k;
	c->m = m;
	ops->init(c);
	*out = c;
	return 0;
}

void
coder_destroy(struct coder *c)
{
	free(c);
}

unsigned
coder_k(const struct coder *c)
{
	return c->k;
}

unsigned
coder_m(const struct coder *c)
{
	return c->m;
}

void
coder_encode(const struct coder *c, size_t len, const uint8_t *const *data,
	     uint8_t *const *parity)
{
	if (c->m == 0 || len == 0)
		return;
	c->ops->encode(c, len, data, parity);
}

/* 0 if lost[0..nlost) are distinct indices < k + m, else -EINVAL. */
static int
coder_check_lost(const struct coder *c, const unsigned *lost, unsigned nlost)
{
	uint8_t seen[CODER_MAX_N] = { 0 };
	unsigned n = c->k + c->m;
	unsigned i;

	if (nlost > n || (nlost > 0 && lost == NULL))
		return -EINVAL;
	for (i = 0; i < nlost; i++) {
		if (lost[i] >= n || seen[lost[i]])
			return -EINVAL;
		seen[lost[i]] = 1;
	}
	return 0;
}

int
coder_decode(const struct coder *c, size_t len, uint8_t *const *frags,
	     const unsigned *lost, unsigned nlost)
{
	int rc;

	rc = coder_check_lost(c, lost, nlost);
	if (rc < 0)
		return rc;
	if (nlost > c->m)
		return -GPC_EDEGRADED;
	if (nlost == 0 || len == 0)
		return 0;
	return c->ops->decode(c, len, frags, lost, nlost);
}

static void
coder_isal_init(struct coder *c)
{
	gf_gen_cauchy1_matrix(c->matrix, (int)(c->k + c->m), (int)c->k);
	if (c->m > 0)
		ec_init_tables((int)c->k, (int)c->m, &c->matrix[c->k * c->k],
			       c->enc_tbls);
}

/*
 * dst[0..rows) = tables applied to src[0..k), len bytes each, in chunks
 * that fit ec_encode_data()'s int length. tbls is only read.
 */
static void
coder_isal_run(size_t len, unsigned k, unsigned rows, const uint8_t *tbls,
	       uint8_t *const *src, uint8_t *const *dst)
{
	uint8_t *s[CODER_MAX_K];
	uint8_t *d[CODER_MAX_M];
	size_t off, n;
	unsigned i;

	for (off = 0; off < len; off += n) {
		n = len - off < CODER_ISAL_CHUNK ? len - off : CODER_ISAL_CHUNK;
		for (i = 0; i < k; i++)
			s[i] = src[i] + off;
		for (i = 0; i < rows; i++)
			d[i] = dst[i] + off;
		/* Not const-correct either: the tables are only read. */
		ec_encode_data((int)n, (int)k, (int)rows,
			       (uint8_t *)(uintptr_t)tbls, s, d);
	}
}

static void
coder_isal_encode(const struct coder *c, size_t len, const uint8_t *const *data,
		  uint8_t *const *parity)
{
	uint8_t *src[CODER_MAX_K];
	unsigned i;

	/* ISA-L's prototype is not const-correct; sources are only read. */
	for (i = 0; i < c->k; i++)
		src[i] = (uint8_t *)(uintptr_t)data[i];
	coder_isal_run(len, c->k, c->m, c->enc_tbls, src, parity);
}

/*
 * rows[i * k ..] = the row that rebuilds fragment lost[i] from the
 * survivors whose submatrix has inverse inv (k x k).
 */
static void
coder_isal_rows(const struct coder *c, const uint8_t *inv,
		const unsigned *lost, unsigned nlost, uint8_t *rows)
{
	const uint8_t *enc;
	unsigned k = c->k, i, j, t;
	uint8_t acc;

	for (i = 0; i < nlost; i++) {
		if (lost[i] < k) {
			memcpy(&rows[i * k], &inv[lost[i] * k], k);
			continue;
		}
		enc = &c->matrix[lost[i] * k];
		for (j = 0; j < k; j++) {
			acc = 0;
			for (t = 0; t < k; t++)
				acc ^= gf_mul(enc[t], inv[t * k + j]);
			rows[i * k + j] = acc;
		}
	}
}

static int
coder_isal_decode(const struct coder *c, size_t len, uint8_t *const *frags,
		  const unsigned *lost, unsigned nlost)
{
	_Alignas(GPC_CACHELINE) uint8_t tbls[32 * CODER_MAX_K * CODER_MAX_M];
	uint8_t sub[CODER_MAX_K * CODER_MAX_K];
	uint8_t inv[CODER_MAX_K * CODER_MAX_K];
	uint8_t rows[CODER_MAX_M * CODER_MAX_K];
	uint8_t is_lost[CODER_MAX_N] = { 0 };
	uint8_t *src[CODER_MAX_K];
	uint8_t *dst[CODER_MAX_M];
	unsigned k = c->k, i, n;

	for (i = 0; i < nlost; i++)
		is_lost[lost[i]] = 1;
	/* nlost <= m, so k survivors exist among the k + m fragments. */
	for (i = 0, n = 0; n < k; i++) {
		if (is_lost[i])
			continue;
		memcpy(&sub[n * k], &c->matrix[i * k], k);
		src[n++] = frags[i];
	}
	/* Every square submatrix of [I; Cauchy] is invertible. */
	if (gf_invert_matrix(sub, inv, (int)k) != 0)
		return -EIO;
	coder_isal_rows(c, inv, lost, nlost, rows);
	for (i = 0; i < nlost; i++)
		dst[i] = frags[lost[i]];
	ec_init_tables((int)k, (int)nlost, rows, tbls);
	coder_isal_run(len, k, nlost, tbls, src, dst);
	return 0;
}

const struct coder_ops coder_isal_ops = {
	.name = "isal",
	.init = coder_isal_init,
	.encode = coder_isal_encode,
	.decode = coder_isal_decode,
};
