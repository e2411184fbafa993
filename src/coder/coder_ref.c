/*
 * coder_ref.c - a slow, obviously correct implementation of the same code,
 * for tests only. It shares nothing with ISA-L: GF(2^8) multiplication is
 * schoolbook shift-and-add reduced by x^8 + x^4 + x^3 + x^2 + 1 (0x11d),
 * an inverse is found by trying all 255 candidates, the generator is built
 * from its definition, matrices are inverted by Gauss-Jordan elimination,
 * and every output byte is a plain sum of products.
 *
 * Decode rebuilds lost data fragments from k survivors through the inverse
 * of their submatrix, then re-encodes lost parity fragments from the (now
 * complete) data, a different route to the same bytes than coder_isal.c.
 * No tables, no caching; all scratch is on the stack.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "coder/coder_int.h"

#define CODER_REF_POLY 0x11d

/* a * b in GF(2^8): carry-less multiply, reducing as each bit shifts out. */
static uint8_t
coder_ref_mul(uint8_t a, uint8_t b)
{
	unsigned x = a, acc = 0;

	while (b != 0) {
		if (b & 1)
			acc ^= x;
		x <<= 1;
		if (x & 0x100)
			x ^= CODER_REF_POLY;
		b >>= 1;
	}
	return (uint8_t)acc;
}

/* The x with a * x == 1; a must not be 0. */
static uint8_t
coder_ref_inv(uint8_t a)
{
	unsigned x;

	assert(a != 0);
	for (x = 1; x < 256; x++)
		if (coder_ref_mul(a, (uint8_t)x) == 1)
			return (uint8_t)x;
	assert(0 && "GF(2^8) element without inverse");
	return 0;
}

/* Rows 0..k-1: identity; row i >= k, column j: 1 / (i ^ j). */
static void
coder_ref_init(struct coder *c)
{
	unsigned k = c->k, i, j;

	for (i = 0; i < k + c->m; i++) {
		for (j = 0; j < k; j++) {
			if (i < k)
				c->matrix[i * k + j] = i == j;
			else
				c->matrix[i * k + j] =
					coder_ref_inv((uint8_t)(i ^ j));
		}
	}
}

/* Swap rows r and s of both n x n matrices a and b. */
static void
coder_ref_swap_rows(uint8_t *a, uint8_t *b, unsigned n, unsigned r, unsigned s)
{
	uint8_t t;
	unsigned j;

	for (j = 0; j < n; j++) {
		t = a[r * n + j];
		a[r * n + j] = a[s * n + j];
		a[s * n + j] = t;
		t = b[r * n + j];
		b[r * n + j] = b[s * n + j];
		b[s * n + j] = t;
	}
}

/*
 * out = inverse of the n x n matrix a by Gauss-Jordan elimination on
 * [a | I]; a is destroyed. Returns 0, or -EINVAL if a is singular.
 */
static int
coder_ref_invert(uint8_t *a, uint8_t *out, unsigned n)
{
	unsigned col, r, j;
	uint8_t f;

	for (r = 0; r < n; r++)
		for (j = 0; j < n; j++)
			out[r * n + j] = r == j;
	for (col = 0; col < n; col++) {
		for (r = col; r < n && a[r * n + col] == 0; r++)
			;
		if (r == n)
			return -EINVAL;
		coder_ref_swap_rows(a, out, n, r, col);
		f = coder_ref_inv(a[col * n + col]);
		for (j = 0; j < n; j++) {
			a[col * n + j] = coder_ref_mul(f, a[col * n + j]);
			out[col * n + j] = coder_ref_mul(f, out[col * n + j]);
		}
		for (r = 0; r < n; r++) {
			f = a[r * n + col];
			if (r == col || f == 0)
				continue;
			for (j = 0; j < n; j++) {
				a[r * n + j] ^=
					coder_ref_mul(f, a[col * n + j]);
				out[r * n + j] ^=
					coder_ref_mul(f, out[col * n + j]);
			}
		}
	}
	return 0;
}

/* dst[b] = sum over j < k of coef[j] * src[j][b], for every byte b. */
static void
coder_ref_combine(size_t len, unsigned k, const uint8_t *coef,
		  const uint8_t *const *src, uint8_t *dst)
{
	size_t b;
	unsigned j;
	uint8_t acc;

	for (b = 0; b < len; b++) {
		acc = 0;
		for (j = 0; j < k; j++)
			acc ^= coder_ref_mul(coef[j], src[j][b]);
		dst[b] = acc;
	}
}

static void
coder_ref_encode(const struct coder *c, size_t len, const uint8_t *const *data,
		 uint8_t *const *parity)
{
	unsigned p;

	for (p = 0; p < c->m; p++)
		coder_ref_combine(len, c->k, &c->matrix[(c->k + p) * c->k],
				  data, parity[p]);
}

static int
coder_ref_decode(const struct coder *c, size_t len, uint8_t *const *frags,
		 const unsigned *lost, unsigned nlost)
{
	uint8_t sub[CODER_MAX_K * CODER_MAX_K];
	uint8_t inv[CODER_MAX_K * CODER_MAX_K];
	uint8_t is_lost[CODER_MAX_N] = { 0 };
	const uint8_t *src[CODER_MAX_K];
	unsigned k = c->k, i, n;
	int rc;

	for (i = 0; i < nlost; i++)
		is_lost[lost[i]] = 1;
	for (i = 0, n = 0; n < k; i++) {
		if (is_lost[i])
			continue;
		memcpy(&sub[n * k], &c->matrix[i * k], k);
		src[n++] = frags[i];
	}
	rc = coder_ref_invert(sub, inv, k);
	if (rc < 0)
		return -EIO;
	/* Data first: survivors are never lost, so src and dst never alias. */
	for (i = 0; i < nlost; i++)
		if (lost[i] < k)
			coder_ref_combine(len, k, &inv[lost[i] * k], src,
					  frags[lost[i]]);
	/* Now frags[0..k) all hold data: re-encode the lost parity. */
	for (i = 0; i < nlost; i++)
		if (lost[i] >= k)
			coder_ref_combine(len, k, &c->matrix[lost[i] * k],
					  (const uint8_t *const *)frags,
					  frags[lost[i]]);
	return 0;
}

const struct coder_ops coder_ref_ops = {
	.name = "ref",
	.init = coder_ref_init,
	.encode = coder_ref_encode,
	.decode = coder_ref_decode,
};
