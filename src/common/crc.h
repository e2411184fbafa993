/* crc.h - CRC32C (Castagnoli), computed by ISA-L's crc32_iscsi. */
#ifndef GPC_COMMON_CRC_H
#define GPC_COMMON_CRC_H

#include <stddef.h>
#include <stdint.h>

#include <isa-l/crc.h>

/* Standard CRC32C of buf[0..len) (check value of "123456789": 0xe3069283). */
static inline uint32_t
crc32c(const void *buf, size_t len)
{
	return crc32_iscsi((unsigned char *)buf, (int)len, 0xffffffffu) ^
	       0xffffffffu;
}

/* Continue a CRC32C: crc32c_extend(crc32c(a), b) == crc32c(a||b). */
static inline uint32_t
crc32c_extend(uint32_t crc, const void *buf, size_t len)
{
	return crc32_iscsi((unsigned char *)buf, (int)len, crc ^ 0xffffffffu) ^
	       0xffffffffu;
}

#endif

/*
 * CRC arithmetic for checksums assembled from pieces computed once, out
 * of order: crc32c_raw(p) is the CRC register after p starting from 0,
 * and crc32c_shift(s, n) is the register after n zero bytes starting from
 * s (s times x^(8n) modulo the reflected polynomial). Because the CRC is
 * linear, the register over A||B from state s is
 *     crc32c_shift(crc32c_shift(s, |A|) ^ crc32c_raw(A), |B|) ^ crc32c_raw(B)
 * and crc32c(buf) == crc32c_shift(0xffffffff, len) ^ crc32c_raw(buf) ^
 * 0xffffffff.
 */
static inline uint32_t
crc32c_raw(const void *buf, size_t len)
{
	return crc32_iscsi((unsigned char *)buf, (int)len, 0);
}

uint32_t crc32c_shift(uint32_t state, uint64_t nbytes);
