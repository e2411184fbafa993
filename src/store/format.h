/*
 * format.h - the on-disk format of the flash engine, version 1.
 * docs/format.md is the prose version of this file; keep them in step.
 *
 * All integers little-endian; every structure below is encoded and decoded
 * field by field (format.c), never by casting. Sizes are in bytes.
 *
 * Device layout
 *   [0, 4096)                  superblock (struct sb_disk, rest zero)
 *   [4096, STORE_DATA_OFF)     reserved, zero
 *   [STORE_DATA_OFF + r * chunk_size, +chunk_size)   chunk row r, r < rows
 *
 * Stripes: the store has nslots = (ndev * rows) / (k + m) stripe slots.
 * Chunk i (0 <= i < k+m) of slot s is global chunk g = s * (k+m) + i, at
 * row r = g / ndev, on device (g + r) % ndev (SB_F_ROTATE; a store
 * formatted without that flag uses g % ndev). The k+m chunks of a slot are
 * on distinct devices (k+m <= ndev), and the parity chunks move to another
 * device on every row, so reads of data use every device.
 *
 * Chunk layout: [0, 4096) chunk header (chunk_disk), [4096, chunk_size)
 * payload. Data chunks 0..k-1 carry the segment's logical space, parity
 * chunks k..k+m-1 carry the Reed-Solomon parity of the data payloads.
 *
 * Segment logical space: the concatenation of the k data payloads,
 * cap = k * (chunk_size - 4096) bytes. Logical offset L is in data chunk
 * L / P at chunk offset 4096 + L % P, P = chunk_size - 4096.
 *   [0, data_len)                records, each 4096-aligned:
 *                                [rec_disk header sector][data, zero-padded
 *                                to a 4096 multiple]
 *   [cap - 4096 - S, cap - 4096) summary: nentries sum_disk entries, S =
 *                                roundup(nentries * 64, 4096), zero-padded
 *   [cap - 4096, cap)            footer (foot_disk, rest zero)
 */
#ifndef GPC_STORE_FORMAT_H
#define GPC_STORE_FORMAT_H

#include <stdbool.h>
#include <stdint.h>

#define STORE_SECTOR 4096u
#define STORE_DATA_OFF (1u << 20)
#define STORE_FORMAT_VERSION 1u
#define STORE_KEY_LEN 32u
#define STORE_MAX_DEVS 64u
#define STORE_MAX_BLOCK (64u << 20)

/* Superblock, device offset 0.
 *  off size field
 *    0    8 magic "GPCSUPR1"
 *    8    4 version
 *   12    4 dev_index      this device's place in the store (0..ndev-1)
 *   16   16 uuid           store identity, random at format
 *   32    4 ndev
 *   36    2 k
 *   38    2 m
 *   40    4 chunk_size     multiple of 4096, >= 8192
 *   44    4 flags          SB_F_ROTATE (bit 0): rotated layout
 *   48    8 rows           chunk rows per device (same on every device)
 *   56    8 data_off       STORE_DATA_OFF
 *   64    8 dev_size       bytes of this device at format time
 *   72    8 format_time    ns since the epoch
 *   80    8 sb_gen         bumped when the device is rebuilt
 *   88  164 reserved       zero
 *  252    4 crc            CRC32C of bytes [0, 252)
 */
#define SB_DISK_SIZE 256u
#define SB_F_ROTATE 0x1u
struct sb_disk {
	uint32_t version;
	uint32_t dev_index;
	uint8_t uuid[16];
	uint32_t ndev;
	uint16_t k, m;
	uint32_t chunk_size;
	uint32_t flags;
	uint64_t rows;
	uint64_t data_off;
	uint64_t dev_size;
	uint64_t format_time;
	uint64_t sb_gen;
};

/* Chunk header, first 4096 bytes of every chunk.
 *  off size field
 *    0    8 magic "GPCCHNK1"
 *    8    4 version
 *   12    2 chunk_idx      0..k+m-1 (k.. are parity)
 *   14    1 k
 *   15    1 m
 *   16   16 uuid
 *   32    8 seg_seq        segment id: store-wide sequence, never 0
 *   40    4 slot
 *   44    4 gen            times this slot has been written
 *   48    4 chunk_size
 *   52    4 payload_crc    CRC32C of chunk bytes [4096, chunk_size)
 *   56    4 data_len       logical bytes used by records
 *   60    4 nentries       summary entries
 *   64    8 seal_time      ns since the epoch
 *   72   52 reserved       zero
 *  124    4 crc            CRC32C of bytes [0, 124)
 */
#define CHUNK_DISK_SIZE 128u
struct chunk_disk {
	uint32_t version;
	uint16_t chunk_idx;
	uint8_t k, m;
	uint8_t uuid[16];
	uint64_t seg_seq;
	uint32_t slot;
	uint32_t gen;
	uint32_t chunk_size;
	uint32_t payload_crc;
	uint32_t data_len;
	uint32_t nentries;
	uint64_t seal_time;
};

/* Record header, the 4096-byte sector in front of each block's data.
 *  off size field
 *    0    4 magic "GPCR"
 *    4    2 version
 *    6    2 flags          0
 *    8   32 key
 *   40    8 ns             namespace id
 *   48    4 len            data bytes
 *   52    4 data_crc       CRC32C of the data
 *   56    8 seg_seq        segment the record was written in
 *   64   60 reserved       zero
 *  124    4 crc            CRC32C of bytes [0, 124)
 */
#define REC_DISK_SIZE 128u
struct rec_disk {
	uint16_t version;
	uint16_t flags;
	uint8_t key[STORE_KEY_LEN];
	uint64_t ns;
	uint32_t len;
	uint32_t data_crc;
	uint64_t seg_seq;
};

/* Summary entry, 64 bytes, one per record or tombstone, in append order.
 *  off size field
 *    0   32 key
 *   32    8 ns
 *   40    4 off            record offset in the logical space / 4096
 *   44    4 len            data bytes (0 for a tombstone)
 *   48    4 data_crc
 *   52    4 flags          bit 0: tombstone (delete of ns/key);
 *                          bit 1: priority low; bit 2: priority high;
 *                          bit 3: pinned (a record written pinned, or
 *                          a pin marker); bit 4: unpin marker;
 *                          bits 5-7: unread rewrites, the times in a
 *                          row reclaim rewrote the block unread for its
 *                          namespace's weight (not for a pin, a quota
 *                          or its priority)
 *   56    4 expire         seconds since the epoch when the block
 *                          expires; 0: never (stores before it: zero)
 *   60    4 parent         high 32 bits of the index fingerprint of the
 *                          block's parent in its prefix chain (the key
 *                          before it in the LOOKUP chain that named it);
 *                          0: a root, or not known (stores before it:
 *                          zero)
 * Readers that predate bits 1-2 and 5-7, expire and parent ignore them (they were
 * zero and unread), so the format version stays 1 either way.
 */
#define SUM_DISK_SIZE 64u
#define SUM_F_TOMBSTONE 1u
#define SUM_F_LOW 2u
#define SUM_F_HIGH 4u
#define SUM_F_PINNED 8u
#define SUM_F_UNPIN 16u
#define SUM_F_AGE_SHIFT 5u
#define SUM_F_AGE_MAX 7u
/* A pin marker: no record, no tombstone, len 0 and off SUM_OFF_NONE
 * (readers before markers skip a len-0 entry as not theirs, and no
 * record is at that offset); the key's block is pinned (SUM_F_PINNED)
 * or unpinned (SUM_F_UNPIN) from here on in the log. */
#define SUM_OFF_NONE 0xffffffffu

struct sum_disk {
	uint8_t key[STORE_KEY_LEN];
	uint64_t ns;
	uint32_t off4k;
	uint32_t len;
	uint32_t data_crc;
	uint32_t flags;
	uint32_t expire;
	uint32_t parent;
};

static inline bool
sum_is_pinmark(const struct sum_disk *d)
{
	return !(d->flags & SUM_F_TOMBSTONE) && d->len == 0 &&
	       (d->flags & (SUM_F_PINNED | SUM_F_UNPIN)) != 0;
}

/* Times in a row reclaim rewrote the block unread for its namespace's
 * weight (bits 5-7). */
static inline unsigned
sum_age(const struct sum_disk *d)
{
	return (d->flags >> SUM_F_AGE_SHIFT) & SUM_F_AGE_MAX;
}

/* A block's record (not a tombstone, not a marker)? */
static inline bool
sum_is_record(const struct sum_disk *d)
{
	return !(d->flags & SUM_F_TOMBSTONE) && d->len != 0;
}

/* Segment footer, first bytes of the last 4096 of the logical space.
 *  off size field
 *    0    8 magic "GPCSUMM1"
 *    8    4 version
 *   12    4 nentries
 *   16    8 seg_seq
 *   24    4 sum_off        logical offset of the summary
 *   28    4 sum_len        nentries * 64
 *   32    4 sum_crc        CRC32C of the sum_len summary bytes
 *   36    4 data_len
 *   40   16 uuid
 *   56    4 reserved       zero
 *   60    4 crc            CRC32C of bytes [0, 60)
 */
#define FOOT_DISK_SIZE 64u
struct foot_disk {
	uint32_t version;
	uint32_t nentries;
	uint64_t seg_seq;
	uint32_t sum_off;
	uint32_t sum_len;
	uint32_t sum_crc;
	uint32_t data_len;
	uint8_t uuid[16];
};

/*
 * Encoders write exactly *_DISK_SIZE bytes (magic, version and crc filled
 * in). Decoders check magic, crc and version, in that order, and return 0,
 * -GPC_ECORRUPT or -GPC_EVERSION; *out is written only on success.
 */
void sb_encode(const struct sb_disk *s, uint8_t *buf);
int sb_decode(const uint8_t *buf, struct sb_disk *out);
void chunk_encode(const struct chunk_disk *c, uint8_t *buf);
int chunk_decode(const uint8_t *buf, struct chunk_disk *out);
void rec_encode(const struct rec_disk *r, uint8_t *buf);
int rec_decode(const uint8_t *buf, struct rec_disk *out);
void sum_encode(const struct sum_disk *e, uint8_t *buf);
void sum_decode(const uint8_t *buf, struct sum_disk *out);
void foot_encode(const struct foot_disk *f, uint8_t *buf);
int foot_decode(const uint8_t *buf, struct foot_disk *out);

/* Geometry derived from a superblock. */
struct store_geom {
	unsigned ndev, k, m, w;   /* w = k + m */
	uint32_t chunk_size;
	uint32_t payload;         /* chunk_size - 4096 */
	uint64_t rows;
	uint64_t nslots;
	uint32_t cap;             /* logical bytes per segment */
	bool rotate;              /* SB_F_ROTATE layout (the default) */
};

int store_geom_init(struct store_geom *g, unsigned ndev, unsigned k,
		    unsigned m, uint32_t chunk_size, uint64_t rows);

/* Device and byte offset of chunk i of slot s. */
static inline void
store_geom_chunk(const struct store_geom *g, uint64_t slot, unsigned i,
		 unsigned *dev, uint64_t *off)
{
	uint64_t gc = slot * g->w + i, row = gc / g->ndev;

	*dev = (unsigned)((gc + (g->rotate ? row : 0)) % g->ndev);
	*off = STORE_DATA_OFF + row * (uint64_t)g->chunk_size;
}

/* Bytes of a record holding len data bytes, header included. */
static inline uint32_t
store_rec_size(uint32_t len)
{
	return STORE_SECTOR + ((len + STORE_SECTOR - 1) & ~(STORE_SECTOR - 1));
}

/* Bytes the summary and footer take for n entries. */
static inline uint32_t
store_sum_size(uint32_t n)
{
	return ((n * SUM_DISK_SIZE + STORE_SECTOR - 1) & ~(STORE_SECTOR - 1)) +
	       STORE_SECTOR;
}

#endif
