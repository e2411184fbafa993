/*
 * format.c - encode/decode pairs for every on-disk structure in format.h.
 * One function per direction per structure, field by field through
 * little-endian helpers; decoders validate magic, CRC and version before
 * any field is trusted. Pure functions: no state, any thread.
 */
#include <errno.h>
#include <string.h>

#include "common/bytes.h"
#include "common/crc.h"
#include "gpucache/gpucache.h"
#include "format.h"

static const uint8_t SB_MAGIC[8] = "GPCSUPR1";
static const uint8_t CHUNK_MAGIC[8] = "GPCCHNK1";
static const uint8_t REC_MAGIC[4] = "GPCR";
static const uint8_t FOOT_MAGIC[8] = "GPCSUMM1";

/* Check magic, then the CRC stored at crc_off over [0, crc_off). */
static int
hdr_check(const uint8_t *buf, const uint8_t *magic, unsigned mlen,
	  unsigned crc_off)
{
	if (memcmp(buf, magic, mlen) != 0)
		return -GPC_ECORRUPT;
	if (get_le32(buf + crc_off) != crc32c(buf, crc_off))
		return -GPC_ECORRUPT;
	return 0;
}

void
sb_encode(const struct sb_disk *s, uint8_t *b)
{
	memset(b, 0, SB_DISK_SIZE);
	memcpy(b, SB_MAGIC, 8);
	put_le32(b + 8, STORE_FORMAT_VERSION);
	put_le32(b + 12, s->dev_index);
	memcpy(b + 16, s->uuid, 16);
	put_le32(b + 32, s->ndev);
	put_le16(b + 36, s->k);
	put_le16(b + 38, s->m);
	put_le32(b + 40, s->chunk_size);
	put_le32(b + 44, s->flags);
	put_le64(b + 48, s->rows);
	put_le64(b + 56, s->data_off);
	put_le64(b + 64, s->dev_size);
	put_le64(b + 72, s->format_time);
	put_le64(b + 80, s->sb_gen);
	put_le32(b + 252, crc32c(b, 252));
}

int
sb_decode(const uint8_t *b, struct sb_disk *out)
{
	struct sb_disk s;
	int rc = hdr_check(b, SB_MAGIC, 8, 252);

	if (rc < 0)
		return rc;
	s.version = get_le32(b + 8);
	if (s.version != STORE_FORMAT_VERSION)
		return -GPC_EVERSION;
	s.dev_index = get_le32(b + 12);
	memcpy(s.uuid, b + 16, 16);
	s.ndev = get_le32(b + 32);
	s.k = get_le16(b + 36);
	s.m = get_le16(b + 38);
	s.chunk_size = get_le32(b + 40);
	s.flags = get_le32(b + 44);
	s.rows = get_le64(b + 48);
	s.data_off = get_le64(b + 56);
	s.dev_size = get_le64(b + 64);
	s.format_time = get_le64(b + 72);
	s.sb_gen = get_le64(b + 80);
	*out = s;
	return 0;
}

void
chunk_encode(const struct chunk_disk *c, uint8_t *b)
{
	memset(b, 0, CHUNK_DISK_SIZE);
	memcpy(b, CHUNK_MAGIC, 8);
	put_le32(b + 8, STORE_FORMAT_VERSION);
	put_le16(b + 12, c->chunk_idx);
	b[14] = c->k;
	b[15] = c->m;
	memcpy(b + 16, c->uuid, 16);
	put_le64(b + 32, c->seg_seq);
	put_le32(b + 40, c->slot);
	put_le32(b + 44, c->gen);
	put_le32(b + 48, c->chunk_size);
	put_le32(b + 52, c->payload_crc);
	put_le32(b + 56, c->data_len);
	put_le32(b + 60, c->nentries);
	put_le64(b + 64, c->seal_time);
	put_le32(b + 124, crc32c(b, 124));
}

int
chunk_decode(const uint8_t *b, struct chunk_disk *out)
{
	struct chunk_disk c;
	int rc = hdr_check(b, CHUNK_MAGIC, 8, 124);

	if (rc < 0)
		return rc;
	c.version = get_le32(b + 8);
	if (c.version != STORE_FORMAT_VERSION)
		return -GPC_EVERSION;
	c.chunk_idx = get_le16(b + 12);
	c.k = b[14];
	c.m = b[15];
	memcpy(c.uuid, b + 16, 16);
	c.seg_seq = get_le64(b + 32);
	c.slot = get_le32(b + 40);
	c.gen = get_le32(b + 44);
	c.chunk_size = get_le32(b + 48);
	c.payload_crc = get_le32(b + 52);
	c.data_len = get_le32(b + 56);
	c.nentries = get_le32(b + 60);
	c.seal_time = get_le64(b + 64);
	*out = c;
	return 0;
}

void
rec_encode(const struct rec_disk *r, uint8_t *b)
{
	memset(b, 0, REC_DISK_SIZE);
	memcpy(b, REC_MAGIC, 4);
	put_le16(b + 4, STORE_FORMAT_VERSION);
	put_le16(b + 6, r->flags);
	memcpy(b + 8, r->key, STORE_KEY_LEN);
	put_le64(b + 40, r->ns);
	put_le32(b + 48, r->len);
	put_le32(b + 52, r->data_crc);
	put_le64(b + 56, r->seg_seq);
	put_le32(b + 124, crc32c(b, 124));
}

int
rec_decode(const uint8_t *b, struct rec_disk *out)
{
	struct rec_disk r;
	int rc = hdr_check(b, REC_MAGIC, 4, 124);

	if (rc < 0)
		return rc;
	r.version = get_le16(b + 4);
	if (r.version != STORE_FORMAT_VERSION)
		return -GPC_EVERSION;
	r.flags = get_le16(b + 6);
	memcpy(r.key, b + 8, STORE_KEY_LEN);
	r.ns = get_le64(b + 40);
	r.len = get_le32(b + 48);
	r.data_crc = get_le32(b + 52);
	r.seg_seq = get_le64(b + 56);
	*out = r;
	return 0;
}

void
sum_encode(const struct sum_disk *e, uint8_t *b)
{
	memset(b, 0, SUM_DISK_SIZE);
	memcpy(b, e->key, STORE_KEY_LEN);
	put_le64(b + 32, e->ns);
	put_le32(b + 40, e->off4k);
	put_le32(b + 44, e->len);
	put_le32(b + 48, e->data_crc);
	put_le32(b + 52, e->flags);
	put_le32(b + 56, e->expire);
	put_le32(b + 60, e->parent);
}

void
sum_decode(const uint8_t *b, struct sum_disk *out)
{
	memcpy(out->key, b, STORE_KEY_LEN);
	out->ns = get_le64(b + 32);
	out->off4k = get_le32(b + 40);
	out->len = get_le32(b + 44);
	out->data_crc = get_le32(b + 48);
	out->flags = get_le32(b + 52);
	out->expire = get_le32(b + 56);
	out->parent = get_le32(b + 60);
}

void
foot_encode(const struct foot_disk *f, uint8_t *b)
{
	memset(b, 0, FOOT_DISK_SIZE);
	memcpy(b, FOOT_MAGIC, 8);
	put_le32(b + 8, STORE_FORMAT_VERSION);
	put_le32(b + 12, f->nentries);
	put_le64(b + 16, f->seg_seq);
	put_le32(b + 24, f->sum_off);
	put_le32(b + 28, f->sum_len);
	put_le32(b + 32, f->sum_crc);
	put_le32(b + 36, f->data_len);
	memcpy(b + 40, f->uuid, 16);
	put_le32(b + 60, crc32c(b, 60));
}

int
foot_decode(const uint8_t *b, struct foot_disk *out)
{
	struct foot_disk f;
	int rc = hdr_check(b, FOOT_MAGIC, 8, 60);

	if (rc < 0)
		return rc;
	f.version = get_le32(b + 8);
	if (f.version != STORE_FORMAT_VERSION)
		return -GPC_EVERSION;
	f.nentries = get_le32(b + 12);
	f.seg_seq = get_le64(b + 16);
	f.sum_off = get_le32(b + 24);
	f.sum_len = get_le32(b + 28);
	f.sum_crc = get_le32(b + 32);
	f.data_len = get_le32(b + 36);
	memcpy(f.uuid, b + 40, 16);
	*out = f;
	return 0;
}

int
store_geom_init(struct store_geom *g, unsigned ndev, unsigned k, unsigned m,
		uint32_t chunk_size, uint64_t rows)
{
	uint64_t cap;

	if (k < 1 || k > 32 || m > 16 || ndev < k + m || ndev > STORE_MAX_DEVS)
		return -GPC_ECONFIG;
	if (chunk_size < 2 * STORE_SECTOR || chunk_size % STORE_SECTOR != 0)
		return -GPC_ECONFIG;
	cap = (uint64_t)k * (chunk_size - STORE_SECTOR);
	if (cap > (1ull << 30))
		return -GPC_ECONFIG; /* index packs offsets in 18 bits of 4K */
	g->ndev = ndev;
	g->k = k;
	g->m = m;
	g->w = k + m;
	g->chunk_size = chunk_size;
	g->payload = chunk_size - STORE_SECTOR;
	g->rows = rows;
	g->nslots = ndev * rows / g->w;
	g->cap = (uint32_t)cap;
	g->rotate = true;
	if (g->nslots < 2 || g->nslots >= (1u << 24))
		return -GPC_ECONFIG;
	return 0;
}
