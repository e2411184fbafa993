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
