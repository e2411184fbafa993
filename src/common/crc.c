/*
 * crc.c - shifting a CRC32C register over runs of zero bytes without
 * touching them: multiplication by x^(8n) in GF(2)[x] modulo the CRC32C
 * polynomial, in the reflected bit order ISA-L's crc32_iscsi uses (bit 31
 * is x^0). x^(2^k) for k = 0..63 is computed once by repeated squaring;
 * x^(8n) is the product of the powers for the set bits of 8n. The table
 * is built once (pthread_once); after that everything is pure.
 */
#include <pthread.h>

#include "crc.h"

#define CRC32C_POLY_REFLECTED 0x82f63b78u

/* a * b modulo P, reflected (bit 31 = x^0). */
static uint32_t
gf_mul(uint32_t a, uint32_t b)
{
	uint32_t prod = 0;

	for (uint32_t bit = 1u << 31; bit != 0; bit >>= 1) {
		if (a & bit)
			prod ^= b;
		b = (b & 1) ? (b >> 1) ^ CRC32C_POLY_REFLECTED : b >> 1;
	}
	return prod;
}

static uint32_t pow2k[64]; /* x^(2^k) */
static pthread_once_t pow2k_once = PTHREAD_ONCE_INIT;

static void
pow2k_init(void)
{
	uint32_t p = 1u << 30; /* x^1 */

	for (unsigned k = 0; k < 64; k++) {
		pow2k[k] = p;
		p = gf_mul(p, p);
	}
}

uint32_t
crc32c_shift(uint32_t state, uint64_t nbytes)
{
	uint64_t n = nbytes * 8; /* multiply by x^n */

	pthread_once(&pow2k_once, pow2k_init);
	for (unsigned k = 0; n != 0; k++, n >>= 1)
		if (n & 1)
			state = gf_mul(pow2k[k], state);
	return state;
}
