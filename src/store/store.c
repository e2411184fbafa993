/*
 * store.c - the flash engine's lifecycle: format, open with recovery,
 * close; the completion queue that runs user callbacks from store_poll;
 * synchronous I/O for the rare paths (recovery, eviction, reconstruction,
 * rebuild, fsck); device mapping and failure; statistics.
 *
 * Recovery trusts only what checks out: a slot's segment is the newest
 * sequence number that at least k of its chunk headers agree on (the
 * others are stale or torn and marked bad for this segment), and its
 * summary must pass the footer and summary CRCs, reconstructed around bad
 * chunks if need be. Segments are replayed oldest first, so later puts and
 * tombstones win. Nothing that is not in a sealed segment comes back.
 *
 * Threads: one store, one thread (see store.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/crc.h"
#include "common/log.h"
#include "gpucache/gpucache.h"
#include "store_int.h"

#define NO_DEV (~0u)
#define RECOVER_BATCH 64u

int
ringq_init(struct ringq *q, uint64_t cap)
{
	q->v = calloc(cap, sizeof(*q->v));
	if (q->v == NULL)
		return -ENOMEM;
	q->cap = cap;
	q->head = q->tail = 0;
	return 0;
}

void
ringq_push(struct ringq *q, uint64_t v)
{
	q->v[q->tail++ % q->cap] = v;
}

int
ringq_pop(struct ringq *q, uint64_t *v)
{
	if (q->head == q->tail)
		return -1;
	*v = q->v[q->head++ % q->cap];
	return 0;
}

void
store_done_push(struct store *st, struct store_done *d)
{
	d->next = NULL;
	if (st->done_tail)
		st->done_tail->next = d;
	else
		st->done_head = d;
	st->done_tail = d;
}

void
store_complete(struct store *st, store_cb cb, void *arg, int rc)
{
	struct store_done *d = malloc(sizeof(*d));

	if (d == NULL) { /* cannot queue: run it now rather than lose it */
		if (cb != NULL)
			cb(arg, rc);
		st->pending--;
		return;
	}
	d->cb = cb;
	d->arg = arg;
	d->rc = rc;
	store_done_push(st, d);
}

unsigned
store_slot_dev(const struct store *st, uint64_t slot, unsigned i,
	       uint64_t *off)
{
	unsigned dev;

	store_geom_chunk(&st->g, slot, i, &dev, off);
	return dev;
}

/* Submit r asynchronously; r->dev is a store device, translated here. */
int
store_submit(struct store *st, struct store_io_req *r)
{
	unsigned sdev = r->dev;

	if (sdev >= st->g.ndev || st->devmap[sdev] == NO_DEV)
		return -ENODEV;
	r->dev = (uint16_t)st->devmap[sdev];
	return store_io_submit(st->io, r);
}

/* The store device of a request submitted by store_submit. */
unsigned
store_req_sdev(const struct store *st, const struct store_io_req *r)
{
	return st->rdevmap[r->dev];
}

void
store_fail_dev_io(struct store *st, unsigned dev, int err)
{
	if (dev >= st->g.ndev || st->dev_failed[dev])
		return;
	log_warn("store", "device %u failed (%s): reads reconstruct around it",
		 dev, gpc_strerror(err));
	st->dev_failed[dev] = 1;
}

static void
sync_cb(struct store_io_req *r)
{
	unsigned *left = r->arg;

	(*left)--;
}

/* Submit the n requests (io device indices) and wait for all of them. */
static int
raw_sync_io(struct store_io *io, struct store_io_req **reqs, unsigned n)
{
	unsigned left = 0;

	for (unsigned i = 0; i < n; i++) {
		int rc;

		reqs[i]->cb = sync_cb;
		reqs[i]->arg = &left;
		rc = store_io_submit(io, reqs[i]);
		if (rc < 0)
			reqs[i]->res = rc;
		else
			left++;
	}
	while (left > 0) {
		int rc = store_io_poll(io, 1);

		if (rc < 0 && rc != -EINTR && rc != -EAGAIN)
			return rc; /* the backend is broken: give up */
	}
	return 0;
}

/*
 * Submit n requests whose dev is a STORE device index and wait for all.
 * Requests to unmapped devices, and reads from failed ones, are not sent:
 * -ENODEV. Returns 0 or the first error; each req->res tells its own.
 */
int
store_sync_io(struct store *st, struct store_io_req *reqs, unsigned n)
{
	struct store_io_req *send[64];
	unsigned sdev[64];
	int first = 0;

	for (unsigned base = 0; base < n; base += 64) {
		unsigned cnt = n - base < 64 ? n - base : 64, ns = 0;
		int rc;

		for (unsigned i = 0; i < cnt; i++) {
			struct store_io_req *r = &reqs[base + i];

			if (r->dev >= st->g.ndev || st->devmap[r->dev] == NO_DEV ||
			    (st->dev_failed[r->dev] && r->op == STORE_IO_READ)) {
				r->res = -ENODEV;
				continue;
			}
			sdev[ns] = r->dev;
			r->dev = (uint16_t)st->devmap[r->dev];
			send[ns++] = r;
		}
		rc = raw_sync_io(st->io, send, ns);
		for (unsigned i = 0; i < ns; i++)
			send[i]->dev = (uint16_t)sdev[i];
		if (rc < 0)
			return rc;
	}
	for (unsigned i = 0; i < n; i++)
		if (reqs[i].res < 0 && first == 0)
			first = reqs[i].res;
	return first;
}

void *
store_zalloc(size_t len)
{
	void *p;

	if (posix_memalign(&p, STORE_IO_ALIGN, len) != 0)
		return NULL;
	memset(p, 0, len);
	return p;
}

/* Write sector 0 (a superblock) of io device j and flush it. */
static int
write_sb(struct store_io *io, unsigned j, const struct sb_disk *sb)
{
	uint8_t *buf = store_zalloc(STORE_SECTOR);
	struct iovec iov = { .iov_base = buf, .iov_len = STORE_SECTOR };
	struct store_io_req w = { .op = STORE_IO_WRITE, .dev = (uint16_t)j,
				  .buf_index = -1, .iov = &iov, .iovcnt = 1 };
	struct store_io_req f = { .op = STORE_IO_FLUSH, .dev = (uint16_t)j,
				  .buf_index = -1 };
	struct store_io_req *p = &w;
	int rc;

	if (buf == NULL)
		return -ENOMEM;
	sb_encode(sb, buf);
	rc = raw_sync_io(io, &p, 1);
	if (rc == 0)
		rc = w.res < 0 ? w.res : 0;
	p = &f;
	if (rc == 0)
		rc = raw_sync_io(io, &p, 1);
	if (rc == 0)
		rc = f.res < 0 ? f.res : 0;
	free(buf);
	return rc;
}

int
store_format(struct store_io *io, const struct store_format_opts *fo)
{
	struct sb_disk sb = { .k = (uint16_t)fo->k, .m = (uint16_t)fo->m };
	struct store_geom g;
	uint64_t rows = UINT64_MAX;
	struct timespec ts;
	int rc;

	/* default: 32 MiB of data per segment, so 1 MiB blocks waste ~2% */
	sb.chunk_size = fo->chunk_size ? fo->chunk_size
				       : ((32u << 20) / (fo->k ? fo->k : 1) +
					  STORE_SECTOR + STORE_SECTOR - 1) &
						 ~(STORE_SECTOR - 1);
	for (unsigned j = 0; j < io->ndev; j++) {
		struct store_dev_info di;

		rc = io->ops->dev_info(io, j, &di);
		if (rc < 0)
			return rc;
		if (di.state != STORE_DEV_OK) {
			log_err("store", "format: device %u (%s) missing: %s", j,
				di.path, gpc_strerror(di.open_err));
			return di.open_err ? di.open_err : -ENODEV;
		}
		if (di.size < STORE_DATA_OFF + 2ull * sb.chunk_size) {
			log_err("store", "format: device %u (%s) too small: "
				"%llu bytes", j, di.path,
				(unsigned long long)di.size);
			return -ENOSPC;
		}
		if ((di.size - STORE_DATA_OFF) / sb.chunk_size < rows)
			rows = (di.size - STORE_DATA_OFF) / sb.chunk_size;
	}
	rc = store_geom_init(&g, io->ndev, fo->k, fo->m, sb.chunk_size, rows);
	if (rc < 0)
		return rc;
	if (getrandom(sb.uuid, sizeof(sb.uuid), 0) != sizeof(sb.uuid))
		return -EIO;
	clock_gettime(CLOCK_REALTIME, &ts);
	sb.ndev = io->ndev;
	sb.flags = SB_F_ROTATE;
	sb.rows = rows;
	sb.data_off = STORE_DATA_OFF;
	sb.format_time = (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
	for (unsigned j = 0; j < io->ndev && rc == 0; j++) {
		struct store_dev_info di;

		io->ops->dev_info(io, j, &di);
		sb.dev_index = j;
		sb.dev_size = di.size;
		rc = write_sb(io, j, &sb);
	}
	return rc;
}

static bool
sb_compatible(const struct sb_disk *a, const struct sb_disk *b)
{
	return memcmp(a->uuid, b->uuid, 16) == 0 && a->ndev == b->ndev &&
	       a->k == b->k && a->m == b->m && a->chunk_size == b->chunk_size &&
	       a->rows == b->rows;
}

/*
 * Map store device i to the io device whose superblock names it. A store
 * device nobody claims is failed; it is mapped to io device i when that
 * one holds no valid superblock of this store (a blank or foreign
 * replacement, which store_rebuild can fill in).
 */
static void
map_devs(struct store *st, const struct sb_disk *ref, const struct sb_disk *sb,
	 const bool *ok, bool *claimed, unsigned n)
{
	for (unsigned i = 0; i < STORE_MAX_DEVS; i++)
		st->devmap[i] = st->rdevmap[i] = NO_DEV;
	for (unsigned j = 0; j < n; j++) {
		unsigned i = sb[j].dev_index;

		if (!ok[j] || !sb_compatible(&sb[j], ref) || i >= ref->ndev ||
		    st->devmap[i] != NO_DEV)
			continue;
		st->devmap[i] = j;
		st->rdevmap[j] = i;
		st->sb_gen[i] = sb[j].sb_gen;
		claimed[j] = true;
	}
	for (unsigned i = 0; i < ref->ndev; i++) {
		if (st->devmap[i] != NO_DEV)
			continue;
		st->dev_failed[i] = 1;
		if (i < n && !claimed[i]) {
			st->devmap[i] = i;
			st->rdevmap[i] = i;
			claimed[i] = true;
		}
		log_warn("store", "open: device %u %s: running degraded", i,
			 i < n ? "has no superblock of this store"
			       : "is not configured");
	}
}

/* Read every superblock; map store devices to io devices; mark failures. */
static int
open_devs(struct store *st, struct sb_disk *ref)
{
	unsigned n = st->io->ndev;
	uint8_t *buf = store_zalloc((size_t)n * STORE_SECTOR);
	struct store_io_req *reqs = calloc(n, sizeof(*reqs));
	struct store_io_req **pp = calloc(n, sizeof(*pp));
	struct iovec *iov = calloc(n, sizeof(*iov));
	struct sb_disk *sb = calloc(n, sizeof(*sb));
	bool *ok = calloc(n, sizeof(*ok)), *claimed = calloc(n, sizeof(bool));
	int rc = -ENOMEM, refj = -1;

	if (!buf || !reqs || !pp || !iov || !sb || !ok || !claimed)
		goto out;
	for (unsigned j = 0; j < n; j++) {
		iov[j] = (struct iovec){ buf + (size_t)j * STORE_SECTOR,
					 STORE_SECTOR };
		reqs[j] = (struct store_io_req){ .op = STORE_IO_READ,
			.dev = (uint16_t)j, .buf_index = -1, .iov = &iov[j],
			.iovcnt = 1 };
		pp[j] = &reqs[j];
	}
	rc = raw_sync_io(st->io, pp, n);
	if (rc < 0)
		goto out;
	for (unsigned j = 0; j < n; j++) {
		ok[j] = reqs[j].res >= 0 &&
			sb_decode(iov[j].iov_base, &sb[j]) == 0;
		if (ok[j] && refj < 0)
			refj = (int)j;
	}
	rc = -GPC_ECORRUPT;
	if (refj < 0) {
		log_info("store", "open: no device has a valid superblock");
		goto out;
	}
	*ref = sb[refj];
	rc = -GPC_ECONFIG;
	if (ref->ndev > STORE_MAX_DEVS || ref->ndev == 0) {
		log_err("store", "open: superblock names %u devices", ref->ndev);
		goto out;
	}
	map_devs(st, ref, sb, ok, claimed, n);
	rc = 0;
out:
	free(buf), free(reqs), free(pp), free(iov), free(sb), free(ok);
	free(claimed);
	return rc;
}

/* Is h a valid chunk header for chunk i of slot s of this store? */
static bool
chunk_ok(const struct store *st, const struct chunk_disk *h, uint64_t s,
	 unsigned i)
{
	return memcmp(h->uuid, st->uuid, 16) == 0 && h->slot == s &&
	       h->chunk_idx == i && h->k == st->g.k && h->m == st->g.m &&
	       h->chunk_size == st->g.chunk_size && h->seg_seq != 0;
}

static bool
chunk_same_seg(const struct chunk_disk *a, const struct chunk_disk *b)
{
	return a->seg_seq == b->seg_seq && a->gen == b->gen &&
	       a->data_len == b->data_len && a->nentries == b->nentries;
}

/*
 * Choose the segment a slot holds from its chunk headers: the newest one
 * that at least k headers agree on. Chunks that disagree are marked bad.
 */
static void
pick_segment(struct store *st, uint32_t s, const struct chunk_disk *h,
	     const bool *ok)
{
	struct slot *sl = &st->slots[s];
	unsigned w = st->g.w, best = w;
	bool newer_torn = false;

	for (unsigned i = 0; i < w; i++) {
		unsigned cnt = 0;

		if (!ok[i])
			continue;
		for (unsigned j = 0; j < w; j++)
			cnt += ok[j] && chunk_same_seg(&h[i], &h[j]);
		if (cnt < st->g.k)
			continue;
		if (best == w || h[i].seg_seq > h[best].seg_seq)
			best = i;
	}
	for (unsigned i = 0; i < w; i++)
		if (ok[i] && (best == w || h[i].seg_seq > h[best].seg_seq))
			newer_torn = true;
	st->s.torn_segs += newer_torn;
	if (best == w)
		return;
	if (h[best].data_len + store_sum_size(h[best].nentries) > st->g.cap ||
	    (uint64_t)h[best].nentries * SUM_DISK_SIZE > st->g.cap) {
		st->s.torn_segs++;
		return;
	}
	sl->seq = h[best].seg_seq;
	sl->gen = h[best].gen;
	sl->data_len = h[best].data_len;
	sl->nentries = h[best].nentries;
	sl->badmask = 0;
	for (unsigned i = 0; i < w; i++)
		if (!ok[i] || !chunk_same_seg(&h[i], &h[best]))
			sl->badmask |= 1ull << i;
	sl->state = SLOT_SEALED;
}

static void
note_damage(struct store *st, uint32_t slot, unsigned chunk, uint8_t kind)
{
	if (st->ndmg < STORE_MAX_DAMAGE)
		st->dmg[st->ndmg++] = (struct open_dmg){ slot, (uint16_t)chunk,
							  kind };
}

/* A header sector that is neither ours-and-valid nor blank or foreign. */
static void
check_damage(struct store *st, const uint8_t *sec, uint32_t s, unsigned i)
{
	struct chunk_disk h;

	if (memcmp(sec, "GPCCHNK1", 8) != 0)
		return; /* never written, or another store's: not damage */
	if (chunk_decode(sec, &h) < 0)
		note_damage(st, s, i, DMG_CHUNK_HDR);
	else if (memcmp(h.uuid, st->uuid, 16) == 0 && !chunk_ok(st, &h, s, i)) {
		note_damage(st, s, i, DMG_MISPLACED);
		/* and where it should have gone, it is missing */
		if (h.slot < st->g.nslots && h.chunk_idx < st->g.w &&
		    (h.slot != s || h.chunk_idx != i))
			note_damage(st, h.slot, h.chunk_idx, DMG_MISSING);
	}
}

/* Read the chunk headers of slots [s0, s0+n) and pick their segments. */
static int
scan_slots(struct store *st, uint32_t s0, unsigned n, uint8_t *buf,
	   struct store_io_req *reqs, struct iovec *iov)
{
	unsigned w = st->g.w, cnt = n * w;
	struct chunk_disk h[CODER_MAX_K + CODER_MAX_M];
	bool ok[CODER_MAX_K + CODER_MAX_M];
	int rc;

	for (unsigned q = 0; q < cnt; q++) {
		uint64_t off;
		unsigned dev = store_slot_dev(st, s0 + q / w, q % w, &off);

		iov[q] = (struct iovec){ buf + (size_t)q * STORE_SECTOR,
					 STORE_SECTOR };
		reqs[q] = (struct store_io_req){ .op = STORE_IO_READ,
			.dev = (uint16_t)dev, .buf_index = -1, .off = off,
			.iov = &iov[q], .iovcnt = 1 };
	}
	rc = store_sync_io(st, reqs, cnt);
	if (rc < 0 && rc != -ENODEV && rc != -EIO)
		return rc;
	for (unsigned q = 0; q < cnt; q++) {
		if (reqs[q].res < 0 && reqs[q].res != -ENODEV)
			store_fail_dev_io(st, reqs[q].dev, reqs[q].res);
		ok[q % w] = reqs[q].res >= 0 &&
			    chunk_decode(iov[q].iov_base, &h[q % w]) == 0 &&
			    chunk_ok(st, &h[q % w], s0 + q / w, q % w);
		if (reqs[q].res >= 0 && !ok[q % w])
			check_damage(st, iov[q].iov_base, s0 + q / w, q % w);
		if (q % w == w - 1)
			pick_segment(st, s0 + q / w, h, ok);
	}
	return 0;
}

struct sum_verify {
	const struct store *st;
	uint64_t seq;
	uint32_t n, len;
};

/* Verify a summary area read into buf: footer last, entries first. */
static int
sum_verify(void *ctx, const uint8_t *buf)
{
	struct sum_verify *v = ctx;
	struct foot_disk f;

	if (foot_decode(buf + v->len - STORE_SECTOR, &f) < 0)
		return -GPC_ECORRUPT;
	if (f.seg_seq != v->seq || f.nentries != v->n ||
	    f.sum_len != v->n * SUM_DISK_SIZE ||
	    memcmp(f.uuid, v->st->uuid, 16) != 0 ||
	    f.sum_crc != crc32c(buf, f.sum_len))
		return -GPC_ECORRUPT;
	return 0;
}

/*
 * Read and verify the summary of the segment in slot s into a new buffer
 * (*out, freed by the caller). Returns 0 or -errno.
 */
int
store_read_summary(struct store *st, uint32_t s, uint8_t **out)
{
	struct slot *sl = &st->slots[s];
	struct sum_verify v = { .st = st, .seq = sl->seq, .n = sl->nentries };
	uint8_t *buf;
	int rc;

	v.len = store_sum_size(sl->nentries);
	buf = store_zalloc(v.len);
	if (buf == NULL)
		return -ENOMEM;
	rc = store_read_range(st, s, st->g.cap - v.len, v.len, buf, sum_verify,
			      &v);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

/* A block of len4k sectors of namespace ns left the index. */
static void
store_usage_sub(struct store *st, uint64_t ns, uint32_t len4k)
{
	unsigned cls = store_ns_class(ns);
	uint64_t f = store_foot(len4k);

	st->usage[cls] -= f < st->usage[cls] ? f : st->usage[cls];
}

/* Pinned bytes of class cls change by +f (add) or -f. */
static void
pin_account(struct store *st, unsigned cls, uint64_t f, bool add)
{
	uint64_t *shared = st->quota[cls] == 0 ? &st->pinned_shared : NULL;

	if (add) {
		st->pinned[cls] += f;
		if (shared != NULL)
			*shared += f;
		return;
	}
	st->pinned[cls] -= f < st->pinned[cls] ? f : st->pinned[cls];
	if (shared != NULL)
		*shared -= f < *shared ? f : *shared;
}

/* An index entry (loc) of tag left: its bytes leave the class's
 * accounts, its expiry the TTL table. */
static void
ix_gone(struct store *st, uint64_t ns, uint64_t tag,
	const struct index_loc *loc)
{
	if (loc->flags & INDEX_F_TTL)
		ttl_del(st->ttl, tag);
	if ((loc->flags & INDEX_F_HIGH) && st->nhigh > 0)
		st->nhigh--;
	store_usage_sub(st, ns, loc->len4k);
	if (loc->flags & INDEX_F_PINNED)
		pin_account(st, store_ns_class(ns), store_foot(loc->len4k),
			    false);
}

int
store_ix_put(struct store *st, uint64_t ns, const uint8_t *key,
	     const struct index_loc *loc, uint32_t expire)
{
	struct index_hkey hk = index_hash(ns, key);
	bool placed = false;
	struct index_loc old;
	int rc = 0;

	if ((loc->flags & INDEX_F_TTL) && ttl_get(st->ttl, hk.tag) == 0) {
		rc = ttl_set(st->ttl, hk.tag, 1); /* room first: no failure
						   * after the swap */
		placed = rc == 0;
	}
	if (rc == 0)
		rc = index_swap(st->ix, hk, loc, &old);
	if (rc < 0) {
		if (placed)
			ttl_del(st->ttl, hk.tag);
		return rc;
	}
	if (rc == 1)
		ix_gone(st, ns, hk.tag, &old);
	if (loc->flags & INDEX_F_TTL) {
		struct slot *sl = &st->slots[loc->slot];

		/* cannot fail: ix_gone may have removed the entry placed
		 * above, but that left the room it took */
		ttl_set(st->ttl, hk.tag, expire);
		if (sl->ttl_min == 0 || expire < sl->ttl_min)
			sl->ttl_min = expire; /* the sweep's bound */
	}
	st->usage[store_ns_class(ns)] += store_foot(loc->len4k);
	st->nhigh += (loc->flags & INDEX_F_HIGH) != 0;
	if (loc->flags & INDEX_F_PINNED) /* a pinned block reinserted */
		pin_account(st, store_ns_class(ns), store_foot(loc->len4k),
			    true);
	return 0;
}

void
store_ix_del(struct store *st, uint64_t ns, struct index_hkey hk,
	     uint32_t len4k)
{
	struct index_loc old;

	if (index_lookup(st->ix, hk, &old) < 0 || index_remove(st->ix, hk) < 0)
		return;
	old.len4k = len4k;
	ix_gone(st, ns, hk.tag, &old);
}

void
store_ix_del_at(struct store *st, uint64_t ns, struct index_hkey hk,
		uint32_t slot, uint32_t off4k)
{
	struct index_loc old;

	if (index_lookup(st->ix, hk, &old) == 0 &&
	    index_remove_at(st->ix, hk, slot, off4k) == 0)
		ix_gone(st, ns, hk.tag, &old);
}

int
store_ix_find(struct store *st, uint64_t ns, const uint8_t *key,
	      struct index_hkey hk, struct index_loc *out)
{
	struct index_loc loc;

	if (index_lookup(st->ix, hk, &loc) < 0)
		return -GPC_ENOTFOUND;
	if ((loc.flags & INDEX_F_TTL) &&
	    store_expired(st, ttl_get(st->ttl, hk.tag))) {
		store_ix_del(st, ns, hk, loc.len4k);
		st->s.blocks_expired++;
		store_note_gone(st, ns, key, false);
		return -GPC_ENOTFOUND;
	}
	*out = loc;
	return 0;
}

uint32_t
store_now_s(const struct store *st)
{
	uint64_t now = st->o.clock != NULL ? st->o.clock(st->o.clock_arg)
					   : (uint64_t)time(NULL);

	return now < UINT32_MAX ? (uint32_t)now : UINT32_MAX;
}

/*
 * The expiry of a block put now with ttl_s: whole seconds, as the store's
 * clock counts them. On the real clock the put's time is rounded up, so
 * that a block lives at least ttl_s seconds (at most ttl_s + 1): rounded
 * down, a TTL of 1 s put in a second's last milliseconds expired as that
 * second turned (test_ttl_whole_seconds).
 */
uint32_t
store_expire_at(const struct store *st, uint32_t ttl_s)
{
	uint64_t now = store_now_s(st), e;
	struct timespec ts;

	if (ttl_s == 0)
		return 0;
	if (st->o.clock == NULL && clock_gettime(CLOCK_REALTIME, &ts) == 0)
		now = (uint64_t)ts.tv_sec + (ts.tv_nsec > 0);
	e = now + ttl_s;
	return e < UINT32_MAX ? (uint32_t)e : UINT32_MAX;
}

int
store_hint_check(const struct store_hint *h)
{
	if (h != NULL && (h->prio > STORE_PRIO_HIGH ||
			  h->ttl_s > STORE_MAX_TTL))
		return -EINVAL;
	return 0;
}

int
store_set_quota(struct store *st, unsigned cls, uint64_t bytes)
{
	if (cls >= STORE_MAX_CLASSES)
		return -EINVAL;
	st->quota_sum -= st->quota[cls];
	st->quota_sum += bytes;
	if ((st->quota[cls] == 0) != (bytes == 0)) { /* joins or leaves the
						      * shared pin pool */
		if (bytes == 0)
			st->pinned_shared += st->pinned[cls];
		else
			st->pinned_shared -= st->pinned[cls];
	}
	st->quota[cls] = bytes;
	return 0;
}

/* Where ns is, or would go, in the sorted weights. */
static unsigned
weight_pos(const struct store *st, uint64_t ns)
{
	unsigned lo = 0, hi = st->nweights;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (st->weights[mid].ns < ns)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int
store_set_ns_weight(struct store *st, uint64_t ns, unsigned weight)
{
	unsigned i = weight_pos(st, ns);
	bool have = i < st->nweights && st->weights[i].ns == ns;

	if (weight > STORE_MAX_WEIGHT)
		return -EINVAL;
	if (weight == 1) { /* the default: no entry */
		if (have) {
			memmove(&st->weights[i], &st->weights[i + 1],
				(st->nweights - i - 1) * sizeof(*st->weights));
			st->nweights--;
			st->nweights_cls[store_ns_class(ns)]--;
		}
		return 0;
	}
	if (!have) {
		unsigned cls = store_ns_class(ns);

		/* per class: one tenant's namespaces never take another's room */
		if (st->nweights_cls[cls] == STORE_MAX_WEIGHTED)
			return -ENOSPC;
		if (st->nweights == st->weights_cap) {
			unsigned cap = st->weights_cap ? 2 * st->weights_cap : 64;
			struct ns_weight *n = realloc(st->weights,
						      cap * sizeof(*n));

			if (n == NULL)
				return -ENOMEM;
			st->weights = n;
			st->weights_cap = cap;
		}
		memmove(&st->weights[i + 1], &st->weights[i],
			(st->nweights - i) * sizeof(*st->weights));
		st->nweights++;
		st->nweights_cls[cls]++;
		st->weights[i].ns = ns;
	}
	st->weights[i].w = weight;
	return 0;
}

unsigned
store_ns_weight(const struct store *st, uint64_t ns)
{
	unsigned i;

	if (st->nweights == 0)
		return 1;
	i = weight_pos(st, ns);
	return i < st->nweights && st->weights[i].ns == ns ? st->weights[i].w
							   : 1;
}

uint64_t
store_class_usage(const struct store *st, unsigned cls)
{
	return cls < STORE_MAX_CLASSES ? st->usage[cls] : 0;
}

uint64_t
store_class_pinned(const struct store *st, unsigned cls)
{
	return cls < STORE_MAX_CLASSES ? st->pinned[cls] : 0;
}

/* Bytes class cls may still pin: what its quota leaves, or for a class
 * without one, what the shared pool (STORE_PIN_SHARED_PCT of the flash
 * the quotas leave) leaves. */
static uint64_t
pin_room(const struct store *st, unsigned cls)
{
	uint64_t cap = st->g.nslots * (uint64_t)st->g.cap, pool;

	if (st->quota[cls] != 0)
		return st->quota[cls] > st->pinned[cls]
			       ? st->quota[cls] - st->pinned[cls] : 0;
	pool = (cap > st->quota_sum ? cap - st->quota_sum : 0) *
	       STORE_PIN_SHARED_PCT / 100;
	return pool > st->pinned_shared ? pool - st->pinned_shared : 0;
}

/* Pin or unpin the indexed block hk (loc: its entry), accounts too. */
static void
pin_set(struct store *st, uint64_t ns, struct index_hkey hk,
	const struct index_loc *loc, bool pin)
{
	if (pin == ((loc->flags & INDEX_F_PINNED) != 0))
		return;
	index_set_flags(st->ix, hk, pin ? INDEX_F_PINNED : 0,
			pin ? 0 : INDEX_F_PINNED);
	pin_account(st, store_ns_class(ns), store_foot(loc->len4k), pin);
}

int
store_pin(struct store *st, uint64_t ns, const uint8_t *key, bool pin)
{
	struct index_hkey hk = index_hash(ns, key);
	unsigned cls = store_ns_class(ns);
	struct index_loc loc;
	uint64_t f;
	int rc;

	if (st->o.read_only || st->abandoned)
		return -EROFS;
	if (store_ix_find(st, ns, key, hk, &loc) < 0)
		return -GPC_ENOTFOUND;
	f = store_foot(loc.len4k);
	if (pin == ((loc.flags & INDEX_F_PINNED) != 0))
		return 0; /* pinned already, or not pinned */
	if (pin && f > pin_room(st, cls))
		return -GPC_EQUOTA;
	/* the log says so first (a restart replays it), then the index */
	rc = store_log_pin(st, ns, key, pin, &loc);
	if (rc < 0)
		return rc;
	pin_set(st, ns, hk, &loc, pin);
	return 0;
}

/* Apply one segment's summary to the index, in append order. */
static int
replay(struct store *st, uint32_t s, const uint8_t *sum)
{
	const struct slot *sl = &st->slots[s];

	for (uint32_t e = 0; e < sl->nentries; e++) {
		struct sum_disk d;
		struct index_hkey hk;
		struct index_loc loc = { .slot = s };
		int rc;

		sum_decode(sum + (size_t)e * SUM_DISK_SIZE, &d);
		hk = index_hash(d.ns, d.key);
		if (sum_is_pinmark(&d)) { /* the record it names, if
					   * still the key's */
			if (index_lookup(st->ix, hk, &loc) == 0 &&
			    (uint32_t)st->slots[loc.slot].seq == d.data_crc &&
			    loc.off4k == d.parent)
				pin_set(st, d.ns, hk, &loc,
					(d.flags & SUM_F_PINNED) != 0);
			continue;
		}
		/* an expired block replaced what came before, then left:
		 * like a tombstone */
		if ((d.flags & SUM_F_TOMBSTONE) || store_expired(st, d.expire)) {
			struct index_loc old;

			if (index_lookup(st->ix, hk, &old) == 0)
				store_ix_del(st, d.ns, hk, old.len4k);
			continue;
		}
		if (d.len == 0 || d.len > STORE_MAX_BLOCK ||
		    (uint64_t)d.off4k * STORE_SECTOR + store_rec_size(d.len) >
			    sl->data_len)
			continue; /* cannot be ours: skip the entry */
		loc.off4k = d.off4k;
		loc.len4k = (d.len + STORE_SECTOR - 1) / STORE_SECTOR;
		loc.flags = store_sum_ixflags(d.flags, d.expire);
		rc = store_ix_put(st, d.ns, d.key, &loc, d.expire);
		if (rc < 0)
			return rc;
	}
	return 0;
}

struct seqslot {
	uint64_t seq;
	uint32_t slot;
};

static int
seqslot_cmp(const void *a, const void *b)
{
	const struct seqslot *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Replay the valid segments oldest first and build the slot queues. */
static int
replay_all(struct store *st)
{
	struct seqslot *v = calloc(st->g.nslots, sizeof(*v));
	uint64_t n = 0;
	int rc = 0;

	if (v == NULL)
		return -ENOMEM;
	for (uint32_t s = 0; s < st->g.nslots; s++)
		if (st->slots[s].state == SLOT_SEALED)
			v[n++] = (struct seqslot){ st->slots[s].seq, s };
	qsort(v, n, sizeof(*v), seqslot_cmp);
	for (uint64_t i = 0; i < n && rc == 0; i++) {
		struct slot *sl = &st->slots[v[i].slot];
		uint8_t *sum;

		rc = store_read_summary(st, v[i].slot, &sum);
		if (rc < 0) {
			note_damage(st, v[i].slot, 0, DMG_SUMMARY);
			st->s.torn_segs++;
			sl->state = SLOT_FREE;
			sl->seq = 0;
			rc = rc == -ENOMEM ? rc : 0;
			continue;
		}
		rc = replay(st, v[i].slot, sum);
		free(sum);
		ringq_push(&st->fifo, (sl->seq << 24) | v[i].slot);
		st->s.recovered_segs++;
		if (sl->seq >= st->next_seq)
			st->next_seq = sl->seq + 1;
	}
	for (uint32_t s = 0; s < st->g.nslots; s++)
		if (st->slots[s].state == SLOT_FREE)
			ringq_push(&st->freeq, s);
	free(v);
	return rc;
}

static int
recover(struct store *st)
{
	unsigned w = st->g.w, batch = RECOVER_BATCH;
	uint8_t *buf = store_zalloc((size_t)batch * w * STORE_SECTOR);
	struct store_io_req *reqs = calloc((size_t)batch * w, sizeof(*reqs));
	struct iovec *iov = calloc((size_t)batch * w, sizeof(*iov));
	uint64_t t0 = clock_now_ns();
	int rc = -ENOMEM;

	if (buf == NULL || reqs == NULL || iov == NULL)
		goto out;
	rc = 0;
	for (uint64_t s = 0; s < st->g.nslots && rc == 0; s += batch) {
		unsigned n = st->g.nslots - s < batch ? st->g.nslots - s : batch;

		rc = scan_slots(st, (uint32_t)s, n, buf, reqs, iov);
	}
	if (rc == 0)
		rc = replay_all(st);
	st->s.recovered_blocks = index_count(st->ix);
	st->s.recovery_ns = clock_now_ns() - t0;
out:
	free(buf);
	free(reqs);
	free(iov);
	return rc;
}

/* Flash bytes the log holds when full (every slot's data space). */
static uint64_t
store_capacity(const struct store *st)
{
	return st->g.nslots * (uint64_t)st->g.cap;
}

/* The policy, sized for blocks of 64 KiB until puts tell better. */
static int
store_policy_create(struct store *st)
{
	struct policy_opts po = { .mode = st->o.policy,
				  .keep_orphans = st->o.keep_orphans };

	po.capacity = store_capacity(st) / store_rec_size(64u << 10);
	if (po.capacity < 64)
		po.capacity = 64;
	return policy_create(&po, &st->pol);
}

static int
store_alloc(struct store *st, const struct sb_disk *ref)
{
	size_t expect = st->o.index_expect;
	int rc;

	rc = store_geom_init(&st->g, ref->ndev, ref->k, ref->m, ref->chunk_size,
			     ref->rows);
	if (rc < 0)
		return rc;
	st->g.rotate = (ref->flags & SB_F_ROTATE) != 0;
	memcpy(st->uuid, ref->uuid, 16);
	rc = coder_create(CODER_ISAL, st->g.k, st->g.m, &st->coder);
	if (rc < 0)
		return rc;
	if (expect == 0) /* grow with use: DRAM follows the blocks held */
		expect = 1024;
	rc = index_create(expect, &st->ix);
	if (rc == 0)
		rc = ttl_create(&st->ttl);
	if (rc < 0)
		return rc;
	st->slots = calloc(st->g.nslots, sizeof(*st->slots));
	if (st->slots == NULL)
		return -ENOMEM;
	for (uint64_t s = 0; s < st->g.nslots; s++)
		st->slots[s].wbuf = -1;
	rc = ringq_init(&st->fifo, st->g.nslots);
	if (rc == 0)
		rc = ringq_init(&st->freeq, st->g.nslots);
	if (rc == 0)
		rc = store_policy_create(st);
	return rc;
}

static void
store_free(struct store *st)
{
	sealer_stop(st->sealer); /* before the buffers it may be encoding */
	store_read_fini(st);
	store_wbufs_fini(st);
	free(st->fifo.v);
	free(st->freeq.v);
	free(st->slots);
	index_destroy(st->ix);
	ttl_destroy(st->ttl);
	free(st->weights);
	policy_destroy(st->pol);
	coder_destroy(st->coder);
	free(st);
}

int
store_open(struct store_io *io, const struct store_opts *o,
	   struct store **out)
{
	struct sb_disk ref;
	struct store *st;
	int rc;

	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	st->io = io;
	st->cur = -1;
	st->recl_slot = -1;
	st->next_seq = 1;
	if (o != NULL)
		st->o = *o;
	if (st->o.wbuf_segs == 0)
		st->o.wbuf_segs = 4;
	if (st->o.reinsert_pct == 0 || st->o.reinsert_pct > 90)
		st->o.reinsert_pct = 90;
	if (!(st->o.write_amp_max >= 1.0 && st->o.write_amp_max <= 100.0))
		st->o.write_amp_max = 1.5;
	rc = open_devs(st, &ref);
	if (rc == 0)
		rc = store_alloc(st, &ref);
	st->sb = ref;
	if (rc == 0)
		rc = recover(st);
	if (rc == 0 && !st->o.read_only)
		rc = store_wbufs_init(st);
	if (rc == 0 && !st->o.read_only && st->o.seal_thread)
		rc = sealer_start(st->g.k, st->g.m, store_event_fd(st),
				  &st->sealer);
	if (rc < 0) {
		st->io = NULL;
		store_free(st);
		return rc;
	}
	*out = st;
	return 0;
}

/* Run the callbacks queued so far (not those they queue). */
static int
run_done(struct store *st)
{
	struct store_done *d = st->done_head;
	int n = 0;

	st->done_head = st->done_tail = NULL;
	while (d != NULL) {
		struct store_done *next = d->next;

		st->pending--;
		if (d->cb != NULL)
			d->cb(d->arg, d->rc);
		free(d);
		d = next;
		n++;
	}
	return n;
}

int
store_poll(struct store *st, unsigned min)
{
	bool wait = min > 0 && st->done_head == NULL && st->degq == NULL &&
		    st->io->inflight > 0;
	int rc;

	/* segments the sealer finished; with nothing else to wait for, wait
	 * for one of those */
	store_seal_reap(st, min > 0 && st->done_head == NULL &&
			    st->degq == NULL && st->io->inflight == 0);
	store_seal_pending(st);
	rc = store_io_poll(st->io, wait ? 1 : 0);
	if (rc < 0 && rc != -EINTR && rc != -EAGAIN)
		return rc;
	store_degraded_run(st);
	store_seal_pending(st);
	store_writeback_age(st);
	store_ttl_sweep(st);
	return run_done(st);
}

unsigned
store_pending(const struct store *st)
{
	return st->pending + sealer_busy(st->sealer);
}

int
store_event_fd(const struct store *st)
{
	const struct store_io_ops *ops = st->io->ops;

	return ops->event_fd != NULL ? ops->event_fd(st->io) : -1;
}

void
store_event_drain(struct store *st)
{
	int fd = store_event_fd(st);
	uint64_t v;

	if (fd >= 0 && read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("store", "event fd: %s", gpc_strerror(-errno));
}

/* Fail a list of waiters with rc: their callbacks run once, now. */
static void
fail_waiters(struct store *st, struct store_done **list, int rc)
{
	struct store_done *d;

	while ((d = *list) != NULL) {
		*list = d->next;
		d->rc = rc;
		store_done_push(st, d);
	}
}

/* Wait for every I/O in flight, then fail what still waits. */
static void
drain(struct store *st)
{
	while (st->io->inflight > 0 || st->degq != NULL ||
	       sealer_busy(st->sealer) > 0)
		if (store_poll(st, 1) < 0)
			break;
	for (unsigned i = 0; st->wb != NULL && i < st->nwb; i++)
		fail_waiters(st, &st->wb[i].waiters, -GPC_ECLOSED);
	fail_waiters(st, &st->flushq, -GPC_ECLOSED);
	run_done(st);
}

void
store_abandon(struct store *st)
{
	if (st == NULL)
		return;
	st->abandoned = true;
	drain(st);
	sealer_stop(st->sealer); /* it writes the I/O context's event fd */
	st->sealer = NULL;
	store_io_close(st->io);
	st->io = NULL;
	store_free(st);
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	if (!st->o.read_only && st->wb != NULL) {
		int rc = store_flush(st);

		if (rc < 0)
			log_warn("store", "close: final flush failed: %s",
				 gpc_strerror(rc));
		while (st->recl_slot >= 0 && store_poll(st, 1) >= 0)
			; /* a reclaim under way: let its slot go free */
		rc = store_zero_stale(st);
		if (rc < 0)
			log_warn("store", "close: clearing evicted segments: "
				 "%s", gpc_strerror(rc));
	}
	store_abandon(st);
}

void
store_get_stats(struct store *st, struct store_stats *out)
{
	st->s.index_blocks = index_count(st->ix);
	st->s.index_bytes = index_bytes(st->ix) + ttl_bytes(st->ttl);
	st->s.ttl_blocks = ttl_count(st->ttl);
	st->s.nslots = st->g.nslots;
	st->s.slots_used = st->g.nslots - ringq_len(&st->freeq);
	st->s.ndev = st->g.ndev;
	st->s.ndev_failed = 0;
	for (unsigned i = 0; i < st->g.ndev; i++)
		st->s.ndev_failed += st->dev_failed[i];
	st->s.k = st->g.k;
	st->s.m = st->g.m;
	st->s.chunk_size = st->g.chunk_size;
	st->s.seg_cap = st->g.cap;
	st->s.capacity_bytes = store_capacity(st);
	policy_get_stats(st->pol, &st->s.pol);
	*out = st->s;
}

int
store_dev_fail(struct store *st, unsigned dev)
{
	if (dev >= st->g.ndev)
		return -EINVAL;
	store_fail_dev_io(st, dev, -EIO);
	return 0;
}

int
store_dev_health(const struct store *st, unsigned dev)
{
	if (dev >= st->g.ndev)
		return -EINVAL;
	return st->dev_failed[dev] ? STORE_DEV_FAILED : STORE_DEV_HEALTHY;
}

struct waitv {
	bool done;
	int rc;
};

static void
wait_cb(void *arg, int rc)
{
	struct waitv *w = arg;

	w->done = true;
	w->rc = rc;
}

static int
wait_for(struct store *st, struct waitv *w)
{
	while (!w->done) {
		int rc = store_poll(st, 1);

		if (rc < 0)
			return rc;
	}
	return w->rc;
}

int
store_put(struct store *st, uint64_t ns, const uint8_t *key, const void *buf,
	  size_t len, unsigned flags)
{
	return store_put_hint(st, ns, key, buf, len, flags, NULL);
}

int
store_put_hint(struct store *st, uint64_t ns, const uint8_t *key,
	       const void *buf, size_t len, unsigned flags,
	       const struct store_hint *h)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct waitv w = { 0 };
	int rc;

	for (;;) {
		rc = store_put_submit_hint(st, ns, key, &iov, 1, flags, h,
					   wait_cb, &w);
		if (rc != -EAGAIN)
			break;
		rc = store_poll(st, 1);
		if (rc < 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	return wait_for(st, &w);
}

int
store_get(struct store *st, uint64_t ns, const uint8_t *key, void *buf,
	  size_t cap)
{
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct waitv w = { 0 };
	int rc;

	rc = store_get_submit(st, ns, key, &iov, 1, wait_cb, &w);
	if (rc < 0)
		return rc;
	return wait_for(st, &w);
}

int
store_flush(struct store *st)
{
	struct waitv w = { 0 };
	int rc;

	rc = store_flush_submit(st, wait_cb, &w);
	if (rc < 0)
		return rc;
	return wait_for(st, &w);
}
