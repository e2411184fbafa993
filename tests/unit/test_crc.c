/*
 * test_crc.c - CRC32C: the check value, and checksums assembled from
 * pieces with crc32c_raw/crc32c_shift equal the one-pass checksum, for
 * random splits, lengths and zero runs.
 */
#include <string.h>

#include "common/crc.h"
#include "test.h"

int
main(void)
{
	static uint8_t buf[1 << 16];
	uint64_t rs = 3;

	CHECK(crc32c("123456789", 9) == 0xe3069283u);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)test_rand(&rs);
	for (int t = 0; t < 2000; t++) {
		size_t len = test_rand(&rs) % sizeof(buf);
		size_t cut = len ? test_rand(&rs) % len : 0;
		uint32_t st = 0xffffffffu;

		if (t % 4 == 0) /* a zero run inside */
			memset(buf + cut / 2, 0, cut - cut / 2);
		st = crc32c_shift(st, cut) ^ crc32c_raw(buf, cut);
		st = crc32c_shift(st, len - cut) ^ crc32c_raw(buf + cut, len - cut);
		CHECK(st == crc32_iscsi(buf, (int)len, 0xffffffffu));
		CHECK((st ^ 0xffffffffu) == crc32c(buf, len));
	}
	/* zero bytes are a pure shift */
	memset(buf, 0, 4096);
	CHECK(crc32c_shift(0x12345678u, 4096) ==
	      crc32_iscsi(buf, 4096, 0x12345678u));
	CHECK(crc32c_shift(0xdeadbeefu, 0) == 0xdeadbeefu);
	return test_summary("test_crc");
}
