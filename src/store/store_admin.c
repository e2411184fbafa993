/*
 * store_admin.c - offline-style administration of the flash engine,
 * synchronous and on the owning thread: rebuild of a failed or replaced
 * device from the other chunks of each stripe, and fsck, which reads
 * every chunk of every sealed segment, checks headers, payload CRCs,
 * summaries and every block, and reports each problem in one line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/crc.h"
#include "common/log.h"
#include "gpucache/gpucache.h"
#include "store_int.h"

/* Write chunk_size bytes of buf as chunk i of slot s, then flush. */
static int
write_chunk(struct store *st, uint32_t s, unsigned i, uint8_t *buf)
{
	uint32_t cs = st->g.chunk_size, n = 0;
	unsigned np = (cs + STORE_MAX_IO - 1) / STORE_MAX_IO;
	struct store_io_req *r = calloc(np + 1, sizeof(*r));
	struct iovec *iov = calloc(np, sizeof(*iov));
	uint64_t off;
	unsigned dev = store_slot_dev(st, s, i, &off);
	int rc;

	if (r == NULL || iov == NULL) {
		free(r);
		free(iov);
		return -ENOMEM;
	}
	for (uint32_t p = 0; p < cs; p += STORE_MAX_IO, n++) {
		iov[n] = (struct iovec){ buf + p, cs - p < STORE_MAX_IO
							  ? cs - p : STORE_MAX_IO };
		r[n] = (struct store_io_req){ .op = STORE_IO_WRITE,
			.dev = (uint16_t)dev, .buf_index = -1, .off = off + p,
			.iov = &iov[n], .iovcnt = 1 };
	}
	r[n] = (struct store_io_req){ .op = STORE_IO_FLUSH,
				      .dev = (uint16_t)dev, .buf_index = -1 };
	rc = store_sync_io(st, r, n);
	if (rc == 0)
		rc = store_sync_io(st, &r[n], 1);
	st->s.flash_bytes_written += rc == 0 ? cs : 0;
	free(r);
	free(iov);
	return rc;
}

/* Reconstruct chunk i of sealed slot s into buf (header included). */
static int
rebuild_chunk(struct store *st, uint32_t s, unsigned i, uint8_t *buf)
{
	struct slot *sl = &st->slots[s];
	struct chunk_disk h = { .chunk_idx = (uint16_t)i, .k = (uint8_t)st->g.k,
				.m = (uint8_t)st->g.m, .seg_seq = sl->seq,
				.slot = s, .gen = sl->gen,
				.chunk_size = st->g.chunk_size,
				.data_len = sl->data_len,
				.nentries = sl->nentries };
	uint64_t bad = sl->badmask | (1ull << i);
	struct timespec ts;
	int rc;

	rc = store_reconstruct(st, s, i, STORE_SECTOR, st->g.payload,
			       buf + STORE_SECTOR, &bad);
	if (rc < 0)
		return rc;
	clock_gettime(CLOCK_REALTIME, &ts);
	h.seal_time = (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
	memcpy(h.uuid, st->uuid, 16);
	h.payload_crc = crc32c(buf + STORE_SECTOR, st->g.payload);
	memset(buf, 0, STORE_SECTOR);
	chunk_encode(&h, buf);
	return 0;
}

/* New superblock for store device dev on its current io device. */
static int
rebuild_sb(struct store *st, unsigned dev)
{
	struct sb_disk sb = st->sb;
	struct store_dev_info di;
	uint8_t *buf = store_zalloc(STORE_SECTOR);
	struct iovec iov = { buf, STORE_SECTOR };
	struct store_io_req r[2] = {
		{ .op = STORE_IO_WRITE, .dev = (uint16_t)dev, .buf_index = -1,
		  .iov = &iov, .iovcnt = 1 },
		{ .op = STORE_IO_FLUSH, .dev = (uint16_t)dev, .buf_index = -1 },
	};
	int rc;

	if (buf == NULL)
		return -ENOMEM;
	st->io->ops->dev_info(st->io, st->devmap[dev], &di);
	sb.dev_index = dev;
	sb.dev_size = di.size;
	sb.sb_gen = st->sb_gen[dev] + 1;
	sb_encode(&sb, buf);
	rc = store_sync_io(st, &r[0], 1);
	if (rc == 0)
		rc = store_sync_io(st, &r[1], 1);
	if (rc == 0)
		st->sb_gen[dev] = sb.sb_gen;
	free(buf);
	return rc;
}

long
store_rebuild(struct store *st, unsigned dev)
{
	struct store_dev_info di;
	uint8_t *buf;
	long n = 0, lost = 0;
	int rc;

	if (dev >= st->g.ndev || st->o.read_only)
		return -EINVAL;
	if (st->devmap[dev] == ~0u ||
	    st->io->ops->dev_info(st->io, st->devmap[dev], &di) < 0 ||
	    di.state != STORE_DEV_OK)
		return -ENODEV;
	if (di.size < STORE_DATA_OFF + st->g.rows * st->g.chunk_size)
		return -ENOSPC;
	rc = store_flush(st);
	if (rc < 0)
		return rc;
	st->dev_failed[dev] = 1; /* never read what we are rewriting */
	buf = store_zalloc(st->g.chunk_size);
	if (buf == NULL)
		return -ENOMEM;
	for (uint32_t s = 0; s < st->g.nslots; s++) {
		struct slot *sl = &st->slots[s];

		if (sl->state != SLOT_SEALED)
			continue;
		for (unsigned i = 0; i < st->g.w; i++) {
			uint64_t off;

			if (store_slot_dev(st, s, i, &off) != dev)
				continue;
			rc = rebuild_chunk(st, s, i, buf);
			if (rc == 0)
				rc = write_chunk(st, s, i, buf);
			if (rc < 0) {
				lost++;
				continue;
			}
			sl->badmask &= ~(1ull << i);
			n++;
		}
	}
	free(buf);
	rc = rebuild_sb(st, dev);
	if (rc < 0)
		return rc;
	st->dev_failed[dev] = 0;
	if (lost > 0)
		log_warn("store", "rebuild of device %u: %ld chunks could not "
			 "be reconstructed (more than m losses)", dev, lost);
	return n;
}

static void
say(void (*report)(void *, const char *), void *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
say(void (*report)(void *, const char *), void *ctx, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (report != NULL)
		report(ctx, line);
}

/* Check every chunk of slot s; returns how many are bad. */
static unsigned
fsck_chunks(struct store *st, uint32_t s, uint8_t *buf,
	    void (*report)(void *, const char *), void *ctx)
{
	const struct slot *sl = &st->slots[s];
	unsigned bad = 0;

	for (unsigned i = 0; i < st->g.w; i++) {
		struct chunk_disk h;
		uint64_t off;
		unsigned dev = store_slot_dev(st, s, i, &off);
		const char *why = NULL;

		if (st->dev_failed[dev])
			why = "device failed";
		else if (store_read_chunk(st, s, i, 0, st->g.chunk_size, buf))
			why = "read error";
		else if (chunk_decode(buf, &h) < 0)
			why = "bad chunk header";
		else if (h.seg_seq != sl->seq || h.chunk_idx != i ||
			 h.slot != s || memcmp(h.uuid, st->uuid, 16) != 0)
			why = "chunk header of another segment (stale or misdirected)";
		else if (crc32c(buf + STORE_SECTOR, st->g.payload) !=
			 h.payload_crc)
			why = "payload CRC mismatch";
		if (why == NULL)
			continue;
		bad++;
		say(report, ctx, "segment %llu (slot %u) chunk %u on device %u "
		    "at offset %llu: %s", (unsigned long long)sl->seq, s, i,
		    dev, (unsigned long long)off, why);
	}
	return bad;
}

/* Check every block of slot s against its summary entry. */
static void
fsck_blocks(struct store *st, uint32_t s, const uint8_t *sum,
	    struct store_fsck_report *out,
	    void (*report)(void *, const char *), void *ctx)
{
	const struct slot *sl = &st->slots[s];
	uint8_t *buf = store_zalloc(st->g.cap); /* no record is larger */

	if (buf == NULL)
		return;
	for (uint32_t e = 0; e < sl->nentries; e++) {
		struct sum_disk d;
		int rc;

		sum_decode(sum + (size_t)e * SUM_DISK_SIZE, &d);
		if ((d.flags & SUM_F_TOMBSTONE) || sum_is_pinmark(&d))
			continue;
		out->blocks++;
		if (d.len == 0 || d.len > STORE_MAX_BLOCK ||
		    (uint64_t)d.off4k * STORE_SECTOR + store_rec_size(d.len) >
			    sl->data_len) {
			out->blocks_bad++;
			say(report, ctx, "segment %llu entry %u: bad extent",
			    (unsigned long long)sl->seq, e);
			continue;
		}
		uint64_t rep = st->s.repaired_reads, deg = st->s.degraded_reads;
		rc = store_read_record(st, s, d.off4k, d.len, d.ns, d.key, buf);
		if (rc == 0 && rep == st->s.repaired_reads &&
		    deg == st->s.degraded_reads)
			continue;
		out->blocks_bad++;
		out->blocks_repairable += rc == 0;
		say(report, ctx, "segment %llu block at offset %u (%u bytes): "
		    "%s", (unsigned long long)sl->seq, d.off4k * STORE_SECTOR,
		    d.len, rc == 0 ? "damaged, reconstructed from parity"
				   : "damaged beyond repair");
	}
	free(buf);
}

/* Did an earlier damage entry already name this chunk? */
static bool
dmg_seen(const struct store *st, unsigned upto, uint32_t slot, unsigned chunk)
{
	for (unsigned j = 0; j < upto; j++) {
		const struct open_dmg *e = &st->dmg[j];
		unsigned c = e->kind == DMG_SUMMARY ? st->g.k - 1 : e->chunk;

		if (e->slot == slot && c == chunk &&
		    (e->kind == DMG_SUMMARY ||
		     st->slots[slot].state != SLOT_SEALED))
			return true;
	}
	return false;
}

/* What open found on slots that did not come back. */
static void
fsck_open_damage(struct store *st, struct store_fsck_report *out,
		 void (*report)(void *, const char *), void *ctx)
{
	static const char *const why[] = {
		[DMG_CHUNK_HDR] = "damaged chunk header",
		[DMG_MISPLACED] = "chunk of another place (misdirected write)",
		[DMG_SUMMARY] = "segment summary failed its checks",
		[DMG_MISSING] = "chunk missing (found written elsewhere)",
	};

	for (unsigned i = 0; i < st->ndmg; i++) {
		const struct open_dmg *d = &st->dmg[i];
		/* a summary ends in the last data chunk: name that one */
		unsigned chunk = d->kind == DMG_SUMMARY ? st->g.k - 1 : d->chunk;
		uint64_t off;
		unsigned dev = store_slot_dev(st, d->slot, chunk, &off);

		if (d->kind != DMG_SUMMARY &&
		    st->slots[d->slot].state == SLOT_SEALED)
			continue; /* the segment came back: checked below */
		out->segs += d->kind == DMG_SUMMARY;
		out->segs_bad += d->kind == DMG_SUMMARY;
		if (dmg_seen(st, i, d->slot, chunk))
			continue; /* one line per chunk */
		out->chunks_bad++;
		say(report, ctx, "segment 0 (slot %u) chunk %u on device %u at "
		    "offset %llu: %s; dropped at open", d->slot, chunk, dev,
		    (unsigned long long)off, why[d->kind]);
	}
}

int
store_fsck(struct store *st, void (*report)(void *ctx, const char *line),
	   void *ctx, struct store_fsck_report *out)
{
	uint8_t *buf = store_zalloc(st->g.chunk_size);

	memset(out, 0, sizeof(*out));
	if (buf == NULL)
		return -ENOMEM;
	fsck_open_damage(st, out, report, ctx);
	for (uint32_t s = 0; s < st->g.nslots; s++) {
		const struct slot *sl = &st->slots[s];
		uint8_t *sum;
		unsigned bad;

		if (sl->state != SLOT_SEALED)
			continue;
		out->segs++;
		bad = fsck_chunks(st, s, buf, report, ctx);
		out->chunks_bad += bad;
		if (store_read_summary(st, s, &sum) < 0) {
			out->segs_bad++;
			say(report, ctx, "segment %llu (slot %u): summary "
			    "unreadable", (unsigned long long)sl->seq, s);
			continue;
		}
		out->segs_bad += bad > st->g.m;
		fsck_blocks(st, s, sum, out, report, ctx);
		free(sum);
	}
	if (st->s.torn_segs > 0)
		say(report, ctx, "%llu torn or unverifiable segments skipped at "
		    "open", (unsigned long long)st->s.torn_segs);
	free(buf);
	return 0;
}
