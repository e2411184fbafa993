/*
 * test_format.c - every on-disk structure: encode/decode round trip, a
 * flipped byte anywhere in the checked range is refused (-GPC_ECORRUPT),
 * a newer version is refused (-GPC_EVERSION), and a golden superblock
 * image of format version 1 still decodes (the old-image test: a format
 * change must keep or consciously replace it).
 */
#include <string.h>

#include "common/bytes.h"
#include "common/crc.h"
#include "gpucache/gpucache.h"
#include "store/format.h"
#include "test.h"

static void
test_sb(void)
{
	struct sb_disk a = { .dev_index = 3, .ndev = 6, .k = 4, .m = 2,
			     .chunk_size = 8u << 20, .rows = 1234,
			     .data_off = STORE_DATA_OFF, .dev_size = 1ull << 34,
			     .format_time = 42, .sb_gen = 7 }, b;
	uint8_t buf[SB_DISK_SIZE];

	memset(a.uuid, 0xab, 16);
	sb_encode(&a, buf);
	CHECK_RC(sb_decode(buf, &b), 0);
	CHECK(memcmp(&a.uuid, &b.uuid, 16) == 0 && b.rows == 1234 &&
	      b.k == 4 && b.m == 2 && b.dev_index == 3 && b.sb_gen == 7 &&
	      b.chunk_size == (8u << 20) && b.dev_size == (1ull << 34));
	for (unsigned i = 0; i < 256; i++) {
		buf[i] ^= 0x10;
		CHECK(sb_decode(buf, &b) < 0);
		buf[i] ^= 0x10;
	}
	put_le32(buf + 8, 2);
	put_le32(buf + 252, crc32c(buf, 252));
	CHECK_RC(sb_decode(buf, &b), -GPC_EVERSION);
}

static void
test_chunk_rec_foot(void)
{
	struct chunk_disk c = { .chunk_idx = 5, .k = 4, .m = 2, .seg_seq = 99,
				.slot = 17, .gen = 3, .chunk_size = 65536,
				.payload_crc = 0xdeadbeef, .data_len = 4096 * 3,
				.nentries = 2 }, c2;
	struct rec_disk r = { .ns = 77, .len = 1000, .data_crc = 5,
			      .seg_seq = 99 }, r2;
	struct foot_disk f = { .nentries = 2, .seg_seq = 99, .sum_off = 8192,
			       .sum_len = 128, .sum_crc = 9, .data_len = 4096 },
			 f2;
	struct sum_disk e = { .ns = 1, .off4k = 3, .len = 5000, .data_crc = 8,
			      .flags = SUM_F_TOMBSTONE }, e2;
	uint8_t buf[STORE_SECTOR];

	chunk_encode(&c, buf);
	CHECK_RC(chunk_decode(buf, &c2), 0);
	CHECK(c2.seg_seq == 99 && c2.slot == 17 && c2.chunk_idx == 5 &&
	      c2.payload_crc == 0xdeadbeef && c2.nentries == 2);
	buf[40] ^= 1;
	CHECK_RC(chunk_decode(buf, &c2), -GPC_ECORRUPT);
	memset(r.key, 0x11, 32);
	rec_encode(&r, buf);
	CHECK_RC(rec_decode(buf, &r2), 0);
	CHECK(r2.ns == 77 && r2.len == 1000 && memcmp(r2.key, r.key, 32) == 0);
	buf[0] = 'X';
	CHECK_RC(rec_decode(buf, &r2), -GPC_ECORRUPT);
	foot_encode(&f, buf);
	CHECK_RC(foot_decode(buf, &f2), 0);
	CHECK(f2.sum_off == 8192 && f2.sum_len == 128 && f2.nentries == 2);
	buf[59] ^= 0x80;
	CHECK_RC(foot_decode(buf, &f2), -GPC_ECORRUPT);
	sum_encode(&e, buf);
	sum_decode(buf, &e2);
	CHECK(e2.ns == 1 && e2.off4k == 3 && e2.len == 5000 &&
	      e2.flags == SUM_F_TOMBSTONE);
}

/* A version-1 superblock as written by the first release, byte for byte. */
static void
test_golden(void)
{
	static const uint8_t head[] = {
		'G', 'P', 'C', 'S', 'U', 'P', 'R', '1', 1, 0, 0, 0, 2, 0, 0, 0,
	};
	uint8_t buf[SB_DISK_SIZE] = { 0 };
	struct sb_disk s;

	memcpy(buf, head, sizeof(head));
	memset(buf + 16, 0x5a, 16);          /* uuid */
	put_le32(buf + 32, 3);               /* ndev */
	put_le16(buf + 36, 2);               /* k */
	put_le16(buf + 38, 1);               /* m */
	put_le32(buf + 40, 1u << 20);        /* chunk_size */
	put_le64(buf + 48, 100);             /* rows */
	put_le64(buf + 56, STORE_DATA_OFF);  /* data_off */
	put_le32(buf + 252, 0x00000000);
	put_le32(buf + 252, crc32c(buf, 252));
	CHECK_RC(sb_decode(buf, &s), 0);
	CHECK(s.dev_index == 2 && s.ndev == 3 && s.k == 2 && s.m == 1 &&
	      s.chunk_size == (1u << 20) && s.rows == 100 && s.flags == 0);
}

/* A summary entry as the first release wrote it (bytes 52..64: flags,
 * then zeros) reads as a block of normal priority with no expiry and no
 * known parent; the
 * hints a newer one carries sit at their documented offsets. */
static void
test_golden_sum(void)
{
	uint8_t buf[SUM_DISK_SIZE] = { 0 };
	struct sum_disk e;

	memset(buf, 0x33, 32);        /* key */
	put_le64(buf + 32, 9);        /* ns */
	put_le32(buf + 40, 2);        /* off4k */
	put_le32(buf + 44, 4096);     /* len */
	put_le32(buf + 48, 0xabcd);   /* data_crc */
	sum_decode(buf, &e);
	CHECK(e.ns == 9 && e.off4k == 2 && e.len == 4096 &&
	      e.data_crc == 0xabcd && e.flags == 0 && e.expire == 0 &&
	      e.parent == 0);
	e.flags = SUM_F_HIGH;
	e.expire = 1900000000u;
	sum_encode(&e, buf);
	CHECK_RC(get_le32(buf + 52), SUM_F_HIGH);
	CHECK_RC(get_le32(buf + 56), 1900000000u);
	CHECK_RC(get_le32(buf + 60), 0);
	e.parent = 0x89abcdefu;
	sum_encode(&e, buf);
	CHECK_RC(get_le32(buf + 60), 0x89abcdefu);
	sum_decode(buf, &e);
	CHECK(e.flags == SUM_F_HIGH && e.expire == 1900000000u &&
	      e.parent == 0x89abcdefu);
	CHECK(sum_is_record(&e) && !sum_is_pinmark(&e));
	/* a pin marker: flags bit 3 (pin) or 4 (unpin), len 0, off all
	 * ones; a reader from before markers skips it (len 0, not a
	 * tombstone) */
	CHECK_RC(SUM_F_PINNED, 8);
	CHECK_RC(SUM_F_UNPIN, 16);
	memset(buf, 0, sizeof(buf));
	memset(buf, 0x33, 32);
	put_le32(buf + 40, 0xffffffffu);
	put_le32(buf + 52, 16);
	sum_decode(buf, &e);
	CHECK(sum_is_pinmark(&e) && !sum_is_record(&e) &&
	      e.off4k == SUM_OFF_NONE && e.len == 0);
	put_le32(buf + 52, SUM_F_TOMBSTONE | SUM_F_PINNED);
	sum_decode(buf, &e);
	CHECK(!sum_is_pinmark(&e) && !sum_is_record(&e));
}

static void
test_geom(void)
{
	struct store_geom g;
	unsigned dev;
	uint64_t off;

	CHECK_RC(store_geom_init(&g, 8, 4, 2, 1u << 20, 100), 0);
	CHECK(g.nslots == 8 * 100 / 6 && g.cap == 4 * ((1u << 20) - 4096));
	/* the chunks of any slot lie on distinct devices */
	for (uint64_t s = 0; s < g.nslots; s++) {
		unsigned seen = 0;

		for (unsigned i = 0; i < g.w; i++) {
			store_geom_chunk(&g, s, i, &dev, &off);
			CHECK(!(seen & (1u << dev)));
			seen |= 1u << dev;
			CHECK(off >= STORE_DATA_OFF &&
			      off + g.chunk_size <= STORE_DATA_OFF + 100ull * (1u << 20));
		}
	}
	/* with as many devices as chunks, parity moves every row */
	CHECK_RC(store_geom_init(&g, 6, 4, 2, 1u << 20, 100), 0);
	{
		unsigned parity_on[6] = { 0 };

		for (uint64_t s = 0; s < 6; s++) {
			store_geom_chunk(&g, s, 4, &dev, &off);
			parity_on[dev]++;
		}
		for (unsigned d = 0; d < 6; d++)
			CHECK_RC(parity_on[d], 1);
	}
	g.rotate = false; /* a store formatted before SB_F_ROTATE */
	store_geom_chunk(&g, 3, 4, &dev, &off);
	CHECK_RC(dev, 4);
	CHECK_RC(store_geom_init(&g, 3, 2, 2, 1u << 20, 100), -GPC_ECONFIG);
	CHECK_RC(store_geom_init(&g, 3, 2, 1, 1000, 100), -GPC_ECONFIG);
	CHECK_RC(store_geom_init(&g, 3, 0, 1, 1u << 20, 100), -GPC_ECONFIG);
}

int
main(void)
{
	test_sb();
	test_chunk_rec_foot();
	test_golden();
	test_golden_sum();
	test_geom();
	return test_summary("test_format");
}
