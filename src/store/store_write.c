/*
 * store_write.c - the write side of the flash engine: the DRAM write
 * buffer, appending records, sealing segments, slot allocation and
 * eviction.
 *
 * A write buffer holds one segment laid out exactly as on flash (k data
 * chunks then m parity chunks, each with its 4096-byte header), so sealing
 * is: summary and footer into the tail of the logical space, chunk
 * headers and CRCs, parity, then one write per chunk piece from the
 * registered buffer, then a flush of each device; the segment is durable
 * when the last flush completes. Readers find blocks of a buffered segment
 * in DRAM through the slot's wbuf link.
 *
 * Write-back (store_opts.writeback_ms > 0): a closed segment stays in
 * its buffer, unwritten and readable, until a quarter of the buffers
 * would otherwise be busy, a flush or a durable put asks, eviction
 * reaches it, or it is writeback_ms old; a segment with nothing live left
 * in it by then (every block overwritten or deleted, no tombstone) is
 * not written at all: its slot's chunk headers are zeroed and the slot is
 * free. A written segment stays readable in DRAM until its buffer is
 * needed (the DRAM tier).
 *
 * Eviction is segment-granular and oldest first. Blocks the policy keeps
 * (policy.h: read or re-put since written, or pinned) are read back
 * asynchronously (the slot is RECLAIMING meanwhile, the blocks stay
 * readable where they are) and copied into the open segment, up to
 * reinsert_pct of a segment per evicted segment (less the room of the
 * largest put) and while the records rewritten stay within
 * (write_amp_max - 1) x the records put and read (reinsert_budget); that
 * copy is the only
 * write amplification and is counted in bytes_reinserted. Admission and
 * dedupe happen before a put touches the write buffer (store_put_check).
 * A put that needs a slot or a buffer not yet free gets -EAGAIN; the open
 * segment stays open until the next can open, so deletes still land.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/crc.h"
#include "common/log.h"
#include "gpucache/gpucache.h"
#include "store_int.h"

/* A block of an evicted segment kept by the policy: read back
 * (asynchronously), then rewritten into the open segment. */
struct reins {
	struct reins *next;
	struct store *st;
	bool quota;          /* pinned, or kept for its class's quota:
			      * goes first */
	uint64_t ns;
	uint8_t key[STORE_KEY_LEN];
	uint32_t len;
	uint32_t slot, off4k; /* where it is, in the slot being reclaimed */
	uint8_t flags;
	uint8_t age;         /* its copy's unread rewrites (sum_age) */
	uint32_t expire;     /* 0: none */
	uint32_t parent;     /* summary entry's parent (format.h) */
	uint8_t *data;       /* record: header sector, then the data */
};

static void
reins_free(struct reins *r)
{
	free(r->data);
	free(r);
}

int
store_wbufs_init(struct store *st)
{
	size_t segsz = (size_t)st->g.w * st->g.chunk_size;
	unsigned nreq = st->g.w * (st->g.chunk_size / STORE_MAX_IO + 2);
	struct iovec *reg;
	int rc;

	st->nwb = st->o.wbuf_segs;
	st->wb = calloc(st->nwb, sizeof(*st->wb));
	reg = calloc(st->nwb, sizeof(*reg));
	if (st->wb == NULL || reg == NULL) {
		free(reg);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < st->nwb; i++) {
		struct wbuf *w = &st->wb[i];

		w->mem = store_zalloc(segsz);
		w->sum_cap = 64u * SUM_DISK_SIZE;
		w->sum = malloc(w->sum_cap);
		w->reqs = calloc(nreq, sizeof(*w->reqs) + sizeof(struct iovec));
		if (w->mem == NULL || w->sum == NULL || w->reqs == NULL) {
			free(reg);
			return -ENOMEM;
		}
		reg[i] = (struct iovec){ w->mem, segsz };
	}
	st->zero_sec = store_zalloc(STORE_SECTOR);
	if (st->zero_sec == NULL) {
		free(reg);
		return -ENOMEM;
	}
	rc = st->io->ops->register_bufs(st->io, reg, st->nwb);
	free(reg);
	st->bufs_registered = rc == 0;
	if (rc < 0) /* e.g. RLIMIT_MEMLOCK for a non-root user */
		log_warn("store", "registered buffers unavailable (%s): plain "
			 "writes", gpc_strerror(rc));
	return 0;
}

void
store_wbufs_fini(struct store *st)
{
	struct reins *r;

	while ((r = st->reinsq) != NULL) {
		st->reinsq = r->next;
		reins_free(r);
	}
	while ((r = st->recl_todo) != NULL) {
		st->recl_todo = r->next;
		reins_free(r);
	}
	for (unsigned i = 0; st->wb != NULL && i < st->nwb; i++) {
		free(st->wb[i].mem);
		free(st->wb[i].sum);
		free(st->wb[i].reqs);
		free(st->wb[i].frags);
	}
	free(st->wb);
	st->wb = NULL;
	free(st->zero_sec);
	st->zero_sec = NULL;
}

uint8_t *
store_wbuf_ptr(const struct store *st, const struct wbuf *w, uint32_t loff,
	       uint32_t *room)
{
	uint32_t c = loff / st->g.payload, o = loff % st->g.payload;

	*room = st->g.payload - o;
	return w->mem + (size_t)c * st->g.chunk_size + STORE_SECTOR + o;
}

/* Copy len bytes from src into the logical space of w at loff. */
static void
wbuf_write(const struct store *st, const struct wbuf *w, uint32_t loff,
	   const uint8_t *src, uint32_t len)
{
	while (len > 0) {
		uint32_t room;
		uint8_t *p = store_wbuf_ptr(st, w, loff, &room);
		uint32_t n = len < room ? len : room;

		memcpy(p, src, n);
		src += n;
		loff += n;
		len -= n;
	}
}

/* Record that [loff, loff+len) of w holds bytes with CRC register q. */
static int
frag_add(struct wbuf *w, uint32_t loff, uint32_t len, uint32_t q)
{
	if (len == 0)
		return 0;
	if (w->nfrags == w->frags_cap) {
		uint32_t cap = w->frags_cap ? 2 * w->frags_cap : 256;
		struct crc_frag *n = realloc(w->frags, cap * sizeof(*n));

		if (n == NULL) { /* seal falls back to checksumming chunks */
			w->frags_lost = true;
			return 0;
		}
		w->frags = n;
		w->frags_cap = cap;
	}
	w->frags[w->nfrags++] = (struct crc_frag){ loff, len, q };
	return 0;
}

/*
 * Checksum the bytes now at [loff, loff+n) of w (within one chunk), once:
 * the run goes to the chunk's fragments, and *rec (a CRC register from 0)
 * is extended for the record's own checksum.
 */
static int
frag_crc(struct store *st, struct wbuf *w, uint32_t loff, const uint8_t *p,
	 uint32_t n, uint32_t *rec)
{
	uint64_t t0 = clock_cost_ns();
	uint32_t q = crc32c_raw(p, n);

	st->s.crc_cpu_ns += clock_cost_ns() - t0;
	if (rec != NULL)
		*rec = crc32c_shift(*rec, n) ^ q;
	return frag_add(w, loff, n, q);
}

/* The standard CRC32C of len bytes whose register from 0 is raw. */
static uint32_t
crc_finish(uint32_t raw, uint32_t len)
{
	return crc32c_shift(0xffffffffu, len) ^ raw ^ 0xffffffffu;
}

/* Checksum [loff, loff+len) of w as it is now, chunk by chunk. */
static int
frag_range(struct store *st, struct wbuf *w, uint32_t loff, uint32_t len)
{
	int rc = 0;

	while (len > 0 && rc == 0) {
		uint32_t room;
		uint8_t *p = store_wbuf_ptr(st, w, loff, &room);
		uint32_t n = len < room ? len : room;

		rc = frag_crc(st, w, loff, p, n, NULL);
		loff += n;
		len -= n;
	}
	return rc;
}

/*
 * Copy the iov into w at loff and checksum it on the way (while it is in
 * cache): *crc gets the standard CRC32C of the bytes.
 */
static int
wbuf_write_iov(struct store *st, struct wbuf *w, uint32_t loff,
	       const struct iovec *iov, unsigned iovcnt, uint32_t *crc)
{
	uint32_t raw = 0, total = 0;
	int rc = 0;

	for (unsigned i = 0; i < iovcnt && rc == 0; i++) {
		const uint8_t *src = iov[i].iov_base;
		uint32_t len = (uint32_t)iov[i].iov_len;

		while (len > 0 && rc == 0) {
			uint32_t room;
			uint8_t *p = store_wbuf_ptr(st, w, loff, &room);
			uint32_t n = len < room ? len : room;

			memcpy(p, src, n);
			rc = frag_crc(st, w, loff, p, n, &raw);
			src += n;
			loff += n;
			len -= n;
			total += n;
		}
	}
	*crc = crc_finish(raw, total);
	return rc;
}

static void
wbuf_zero(const struct store *st, const struct wbuf *w, uint32_t loff,
	  uint32_t len)
{
	while (len > 0) {
		uint32_t room;
		uint8_t *p = store_wbuf_ptr(st, w, loff, &room);
		uint32_t n = len < room ? len : room;

		memset(p, 0, n);
		loff += n;
		len -= n;
	}
}

static int
sum_append(struct wbuf *w, const struct sum_disk *e)
{
	if ((w->nentries + 1) * SUM_DISK_SIZE > w->sum_cap) {
		uint8_t *n = realloc(w->sum, (size_t)w->sum_cap * 2);

		if (n == NULL)
			return -ENOMEM;
		w->sum = n;
		w->sum_cap *= 2;
	}
	sum_encode(e, w->sum + (size_t)w->nentries * SUM_DISK_SIZE);
	w->nentries++;
	return 0;
}

/*
 * Append one record to the open segment (room already checked) and point
 * the index at it; ixflags' priority, expire (0: none), parent and age
 * (unread rewrites, sum_age) go to its summary entry too. Returns 0 or
 * -errno (the record then stays unindexed).
 */
static int
append_rec(struct store *st, uint64_t ns, const uint8_t *key,
	   const struct iovec *iov, unsigned iovcnt, uint32_t len,
	   uint8_t ixflags, uint32_t expire, uint32_t parent, unsigned age)
{
	struct wbuf *w = &st->wb[st->cur];
	uint32_t off = w->data_len, rs = store_rec_size(len);
	struct rec_disk r = { .ns = ns, .len = len,
			      .seg_seq = st->slots[w->slot].seq };
	struct sum_disk e = { .ns = ns, .off4k = off / STORE_SECTOR,
			      .len = len, .expire = expire, .parent = parent,
			      .flags = store_ix_sumflags(ixflags) |
				       age << SUM_F_AGE_SHIFT };
	uint8_t hdr[STORE_SECTOR] = { 0 };
	struct index_loc loc = { .slot = w->slot, .off4k = off / STORE_SECTOR,
				 .len4k = (rs - STORE_SECTOR) / STORE_SECTOR,
				 .flags = (uint8_t)(ixflags |
						    (expire ? INDEX_F_TTL : 0)) };
	int rc;

	memcpy(r.key, key, STORE_KEY_LEN);
	memcpy(e.key, key, STORE_KEY_LEN);
	rc = wbuf_write_iov(st, w, off + STORE_SECTOR, iov, iovcnt,
			    &r.data_crc);
	wbuf_zero(st, w, off + STORE_SECTOR + len, rs - STORE_SECTOR - len);
	rec_encode(&r, hdr);
	wbuf_write(st, w, off, hdr, STORE_SECTOR);
	if (rc == 0)
		rc = frag_crc(st, w, off, hdr, STORE_SECTOR, NULL);
	e.data_crc = r.data_crc;
	if (rc == 0)
		rc = sum_append(w, &e);
	if (rc < 0)
		return rc;
	w->data_len += rs;
	st->s.copy_bytes += len;
	return store_ix_put(st, ns, key, &loc, expire);
}

static bool
fits(const struct store *st, const struct wbuf *w, uint32_t need,
     uint32_t nent)
{
	/* open reservations will each add one summary entry */
	return (uint64_t)w->data_len + need +
		       store_sum_size(w->nentries + w->nresv + nent) <=
	       st->g.cap;
}

/* Chunks of slot s whose devices are failed. */
static uint64_t
slot_failed_mask(const struct store *st, uint32_t s)
{
	uint64_t mask = 0, off;

	for (unsigned i = 0; i < st->g.w; i++)
		if (st->dev_failed[store_slot_dev(st, s, i, &off)])
			mask |= 1ull << i;
	return mask;
}

/*
 * Take a free slot: one on healthy devices if there is any, else one with
 * at most m failed devices (a degraded write). -ENOENT: no free slot
 * qualifies.
 */
static int
take_free(struct store *st, uint32_t *out)
{
	uint64_t n = ringq_len(&st->freeq), v;
	int best = -1;

	for (int pass = 0; pass < 2 && best < 0; pass++) {
		for (uint64_t i = 0; i < n; i++) {
			uint32_t s;
			int nf;

			ringq_pop(&st->freeq, &v);
			s = (uint32_t)(v & 0xffffff);
			nf = __builtin_popcountll(slot_failed_mask(st, s));
			if (best < 0 && (nf == 0 || (pass == 1 &&
						     (unsigned)nf <= st->g.m))) {
				best = (int)s;
				continue;
			}
			ringq_push(&st->freeq, v);
		}
	}
	if (best < 0)
		return -ENOENT;
	*out = (uint32_t)best;
	return 0;
}

static uint64_t reinsert_budget(struct store *st);

/* d's block leaves the index: evicted, or expired (not counted as evicted). */
static void
evict_gone(struct store *st, const struct sum_disk *d, struct index_hkey hk,
	   uint32_t len4k, bool evicted)
{
	store_ix_del(st, d->ns, hk, len4k);
	store_note_gone(st, d->ns, d->key, evicted);
}

/* Queue d's kept block of slot s for reclaim's read (recl_issue); it
 * stays in the index, readable where it is, until reinsert rewrites it.
 * aged: kept unread for its namespace's weight (its copy's count of
 * such rewrites goes up; a read since starts it again; a block kept for
 * a pin, a quota or its priority keeps its count). false: no memory. */
static bool
recl_queue(struct store *st, uint32_t s, const struct sum_disk *d,
	   struct index_hkey hk, const struct index_loc *loc, uint32_t expire,
	   bool quota, bool aged)
{
	unsigned age = sum_age(d);
	struct reins *r = calloc(1, sizeof(*r));

	if (r == NULL || (r->data = store_zalloc(store_rec_size(d->len))) ==
				 NULL) {
		free(r);
		return false;
	}
	r->st = st;
	r->slot = s;
	r->ns = d->ns;
	memcpy(r->key, d->key, STORE_KEY_LEN);
	r->len = d->len;
	r->off4k = d->off4k;
	r->flags = loc->flags & (INDEX_F_PINNED | INDEX_F_LOW | INDEX_F_HIGH);
	r->expire = expire;
	r->parent = d->parent;
	r->age = (uint8_t)((loc->flags & INDEX_F_REF) ? 0
			   : aged && age < SUM_F_AGE_MAX ? age + 1 : age);
	r->quota = quota;
	r->next = st->recl_todo;
	st->recl_todo = r;
	/* the read that kept it is spent: one read since, while it is
	 * copied, keeps the bit for its copy (recl_owns) */
	index_set_flags(st->ix, hk, 0, INDEX_F_REF);
	return true;
}

/* Decide the fate of one summary entry of an evicted segment. */
static void
evict_entry(struct store *st, uint32_t s, const struct sum_disk *d,
	    uint64_t *budget, uint64_t *qbudget)
{
	struct index_hkey hk = index_hash(d->ns, d->key);
	struct index_loc loc;
	uint32_t rs, expire;
	/* normal blocks leave high ones a share of the budget (while the
	 * store holds any: without hints, nothing changes) */
	uint64_t reserve;
	unsigned cls = store_ns_class(d->ns);
	bool keep, orphan, aged = false;

	if (!sum_is_record(d) || index_lookup(st->ix, hk, &loc) ||
	    loc.slot != s || loc.off4k != d->off4k)
		return;
	/* its parent gone, a block can never hit (a LOOKUP stops before
	 * it). A parent in this segment has met its fate already
	 * (evict_entries): a chain shares it. */
	orphan = !policy_keep_orphans(st->pol) && d->parent != 0 &&
		 !index_has_hi32(st->ix, d->parent);
	/* a class at or under its quota is not evicted: its block moves,
	 * unless the client said it is of low priority, or it is an orphan */
	keep = st->quota[cls] != 0 && st->usage[cls] <= st->quota[cls] &&
	       !(loc.flags & INDEX_F_LOW) && !orphan;
	expire = (loc.flags & INDEX_F_TTL) ? ttl_get(st->ttl, hk.tag) : 0;
	reserve = (loc.flags & INDEX_F_HIGH) || st->nhigh == 0
			  ? 0 : reinsert_budget(st) * STORE_HIGH_RESERVE_PCT / 100;
	rs = store_rec_size(d->len);
	if (store_expired(st, expire)) { /* not rewritten, pinned or not */
		st->s.blocks_expired++;
		evict_gone(st, d, hk, loc.len4k, false);
		return;
	}
	/* pinned blocks are always kept (pins stay within the quotas and
	 * a pool, store_pin, so they never outgrow the log); quota ones
	 * within qbudget, whatever the write amplification: the client
	 * asked for them */
	if (loc.flags & INDEX_F_PINNED) {
		keep = true;
	} else if (keep && rs <= *qbudget) {
		*qbudget -= rs;
	} else if (policy_keep(st->pol, hk.tag, loc.flags, orphan,
			       st->nweights ? store_ns_weight(st, d->ns) : 1,
			       sum_age(d)) &&
		   rs + reserve <= *budget) {
		*budget -= rs;
		/* neither read nor high: kept for its namespace's weight */
		aged = !(loc.flags & (INDEX_F_REF | INDEX_F_HIGH));
	} else {
		st->s.blocks_orphaned += orphan;
		evict_gone(st, d, hk, loc.len4k, true);
		return;
	}
	if (!recl_queue(st, s, d, hk, &loc, expire, keep, aged))
		evict_gone(st, d, hk, loc.len4k, true);
}

/* Decide an evicted segment's n summary entries, a block's parent first
 * where it is in the segment too, so that a chain shares its fate. The
 * summary is in commit order, which puts waiting for room (srv_retry) or
 * reinsertions (in read completion order) can make child-first: a child
 * decided first is kept, an orphan, if its parent then leaves. */
static void
evict_entries(struct store *st, uint32_t s, const uint8_t *sum, uint32_t n,
	      uint64_t *budget, uint64_t *qbudget)
{
	uint32_t hsz = 2, *ht = NULL, *hi, *stk;
	struct sum_disk *d = calloc(n + 1, sizeof(*d));
	uint8_t *state; /* 0: to decide, 1: on the stack, 2: decided */

	while (hsz < 2 * n)
		hsz <<= 1;
	if (d != NULL)
		ht = malloc(((size_t)hsz + 2 * (size_t)n) * sizeof(*ht) + n);
	if (ht == NULL) { /* no memory: in summary order */
		for (uint32_t e = 0; e < n; e++) {
			struct sum_disk x;

			sum_decode(sum + (size_t)e * SUM_DISK_SIZE, &x);
			evict_entry(st, s, &x, budget, qbudget);
		}
		free(d);
		return;
	}
	hi = ht + hsz; /* a record's high 32 bits of fingerprint */
	stk = hi + n;
	state = (uint8_t *)(stk + n);
	memset(ht, 0xff, (size_t)hsz * sizeof(*ht));
	memset(state, 0, n);
	for (uint32_t e = 0; e < n; e++) {
		sum_decode(sum + (size_t)e * SUM_DISK_SIZE, &d[e]);
		if (!sum_is_record(&d[e]))
			continue;
		hi[e] = (uint32_t)(index_hash(d[e].ns, d[e].key).tag >> 32);
		for (uint32_t h = hi[e] & (hsz - 1);; h = (h + 1) & (hsz - 1))
			if (ht[h] == UINT32_MAX || hi[ht[h]] == hi[e]) {
				ht[h] = e; /* a key's latest entry */
				break;
			}
	}
	for (uint32_t e = 0, sp = 0; e < n; e++) {
		if (state[e] != 0)
			continue;
		state[e] = 1;
		for (stk[sp++] = e; sp > 0;) {
			uint32_t x = stk[sp - 1], h = d[x].parent & (hsz - 1);

			while (ht[h] != UINT32_MAX && hi[ht[h]] != d[x].parent)
				h = (h + 1) & (hsz - 1);
			if (sum_is_record(&d[x]) && d[x].parent != 0 &&
			    ht[h] != UINT32_MAX && state[ht[h]] == 0) {
				state[ht[h]] = 1; /* its parent first */
				stk[sp++] = ht[h];
				continue;
			}
			evict_entry(st, s, &d[x], budget, qbudget);
			state[x] = 2;
			sp--;
		}
	}
	free(ht);
	free(d);
}

#define RECL_DEPTH 32u /* reclaim's reads in flight */

static void recl_issue(struct store *st);
static void reinsert(struct store *st, bool fresh);
static void recl_drop(struct store *st, struct reins *r);

/* Every kept block of the reclaimed segment is read: its slot is free. */
static void
recl_finish(struct store *st)
{
	struct slot *sl = &st->slots[st->recl_slot];

	sl->state = SLOT_FREE;
	sl->seq = 0;
	sl->stale = true; /* until another segment is written over it */
	ringq_push(&st->freeq, (uint32_t)st->recl_slot);
	st->recl_slot = -1;
	if (st->cur >= 0)
		reinsert(st, false);
}

static void
recl_read_done(void *arg, int rc)
{
	struct reins *r = arg;
	struct store *st = r->st;

	st->recl_inflight--;
	if (rc >= 0 && !st->abandoned) {
		r->next = st->reinsq;
		st->reinsq = r;
	} else {
		recl_drop(st, r);
	}
	recl_issue(st);
}

/* Keep up to RECL_DEPTH reads of kept blocks in flight. */
static void
recl_issue(struct store *st)
{
	struct reins *r;

	while (st->recl_inflight < RECL_DEPTH &&
	       (r = st->recl_todo) != NULL) {
		st->recl_todo = r->next;
		st->recl_inflight++;
		if (store_read_loc_submit(st, r->ns, r->key,
					  (uint32_t)st->recl_slot, r->off4k,
					  r->len, r->data + STORE_SECTOR,
					  recl_read_done, r) < 0)
			recl_read_done(r, -ENOMEM);
		/* recl_read_done issued the rest and may have finished */
		if (st->recl_slot < 0)
			return;
	}
	if (st->recl_inflight == 0 && st->recl_todo == NULL &&
	    st->recl_slot >= 0)
		recl_finish(st);
}

/*
 * Bytes of reinsertion the next evicted segment may have: a share of a
 * segment (reinsert_pct), less the room the largest put asked for (the
 * segment the rewrites go to must still take it: else a put of a block
 * bigger than what a reclaim leaves waits for ever while the blocks it
 * would displace are read), and within what the policy may add to the
 * flash writes: the records it rewrites stay under (write_amp_max - 1)
 * x the records the tier moved, new blocks put and blocks a GET asked
 * for (store_touch). Reads earn rewrites too: a store that mostly hits
 * puts little, and a budget of puts alone dropped the hot set it is
 * there to keep (chat and agent traces fell 8-11 points under LRU:
 * docs/cache-policy.md). What is not spent is kept up to a quarter of
 * the log (REINSERT_BANK_PCT), so that a long spell of reads is not
 * spent later in a long burst of rewrites (a bank of 2 segments instead
 * cost chat and agent traces 3-6 points). The format's own cost, headers
 * and summaries, is the block size's, not the policy's.
 */
/* unspent reinsertion budget kept: this share of the log, in % */
#define REINSERT_BANK_PCT 25u

static uint64_t
reinsert_budget(struct store *st)
{
	uint64_t seg = (uint64_t)st->g.cap * st->o.reinsert_pct / 100;
	uint64_t room = (uint64_t)st->rec_max +
			store_sum_size(st->g.cap / (2 * STORE_SECTOR) + 1);
	uint64_t allow = (uint64_t)((st->o.write_amp_max - 1.0) *
				    (double)(st->rec_bytes + st->hit_rec_bytes));
	uint64_t done = st->reins_rec_bytes;
	uint64_t bank = (uint64_t)st->g.nslots * st->g.cap *
			REINSERT_BANK_PCT / 100;

	if (seg + room > st->g.cap)
		seg = st->g.cap > room ? st->g.cap - room : 0;
	done += st->budget_lapsed;
	allow = allow > done ? allow - done : 0;
	if (allow > bank) {
		st->budget_lapsed += allow - bank;
		allow = bank;
	}
	return seg < allow ? seg : allow;
}

static void write_back(struct store *st, struct wbuf *w);

/* The wbuf pinned by no reader is free for another segment. */
static void
wbuf_release(struct wbuf *w)
{
	if (w->refs > 0)
		w->release_deferred = true; /* zero-copy readers still on it */
	else
		w->busy = false;
}

/* A segment kept clean in DRAM leaves it (it stays on flash). */
static void
release_clean(struct store *st, struct wbuf *w)
{
	st->slots[w->slot].wbuf = -1;
	w->clean = false;
	wbuf_release(w);
}

/* The oldest segment of the buffers that are clean (clean) or held;
 * clean ones no zero-copy reader pins first (releasing a pinned one frees
 * nothing until the reader is done, and loses its DRAM copy). */
static struct wbuf *
oldest_wbuf(struct store *st, bool clean)
{
	struct wbuf *best = NULL;

	for (unsigned i = 0; i < st->nwb; i++) {
		struct wbuf *w = &st->wb[i];

		if (!w->busy || !(clean ? w->clean : w->held))
			continue;
		if (best == NULL || (clean && (w->refs == 0) != (best->refs == 0)
					     ? w->refs == 0
					     : st->slots[w->slot].seq <
						       st->slots[best->slot].seq))
			best = w;
	}
	return best;
}

/*
 * Write-back: keep a quarter of the buffers (at least one) free, clean or
 * on their way to flash, by writing the oldest held segments; with force,
 * at least one more is started if any is held.
 */
static void
room_ahead(struct store *st, bool force)
{
	unsigned want = st->nwb / 4 > 0 ? st->nwb / 4 : 1, have = 0;
	struct wbuf *w;

	if (st->abandoned)
		return;
	for (unsigned i = 0; i < st->nwb; i++) {
		const struct wbuf *b = &st->wb[i];

		have += !b->busy || b->clean ||
			(!b->held && (int)i != st->cur &&
			 st->slots[b->slot].state == SLOT_SEALING);
	}
	while ((have < want || force) && (w = oldest_wbuf(st, false)) != NULL) {
		write_back(st, w);
		have++;
		force = false;
	}
}

/* A free write buffer, releasing the oldest segments kept clean in DRAM
 * as needed; NULL if there is none. */
static struct wbuf *
free_wbuf(struct store *st)
{
	struct wbuf *c;

	for (unsigned i = 0; i < st->nwb; i++)
		if (!st->wb[i].busy)
			return &st->wb[i];
	while ((c = oldest_wbuf(st, true)) != NULL) {
		release_clean(st, c);
		if (!c->busy)
			return c;
	}
	return NULL;
}

/*
 * Evict the oldest sealed segment: its blocks leave the index now; those
 * the policy keeps are read back asynchronously (recl_issue), and the
 * slot is free once they all are. 0: the slot is free; -EAGAIN: it will
 * be (or the oldest is still being written, or a reclaim is under way);
 * -ENOENT: nothing to evict.
 */
static int
evict_one(struct store *st)
{
	uint64_t v, budget = reinsert_budget(st);
	/* blocks under quota may fill a whole segment (quotas must leave
	 * room for others: that is what makes eviction progress) */
	uint64_t qbudget = (uint64_t)st->g.cap * 9 / 10;
	uint8_t *sum = NULL;
	struct slot *sl;
	uint32_t s;

	for (;;) {
		if (ringq_len(&st->fifo) == 0)
			return -ENOENT;
		v = st->fifo.v[st->fifo.head % st->fifo.cap];
		s = (uint32_t)(v & 0xffffff);
		sl = &st->slots[s];
		if (sl->seq == (v >> 24) && sl->state != SLOT_FREE)
			break;
		ringq_pop(&st->fifo, &v); /* stale: slot was lost */
	}
	if (st->recl_slot >= 0)
		return -EAGAIN; /* one at a time */
	if (sl->state != SLOT_SEALED) {
		/* still in DRAM, unwritten: write it now, evict it later */
		if (sl->wbuf >= 0 && st->wb[sl->wbuf].held)
			write_back(st, &st->wb[sl->wbuf]);
		return -EAGAIN;
	}
	if (sl->wbuf >= 0) /* its DRAM copy goes with it */
		release_clean(st, &st->wb[sl->wbuf]);
	ringq_pop(&st->fifo, &v);
	if (store_read_summary(st, s, &sum) == 0) {
		evict_entries(st, s, sum, sl->nentries, &budget, &qbudget);
		free(sum);
	}
	/* entries we could not read stay in the index and read as misses */
	st->s.segs_evicted++;
	sl->state = SLOT_RECLAIMING;
	st->recl_slot = (int)s;
	recl_issue(st);
	return st->recl_slot < 0 ? 0 : -EAGAIN;
}

/* Could any slot take a write with the devices failed now? Cached per
 * set of failed devices, so a full store does not rescan every time. */
static bool
writable_somewhere(struct store *st)
{
	uint64_t mask = 0;

	for (unsigned d = 0; d < st->g.ndev; d++)
		mask |= (uint64_t)st->dev_failed[d] << d;
	if (st->writable_mask_valid && st->writable_mask == mask)
		return st->writable_cached;
	st->writable_cached = false;
	for (uint64_t s = 0; s < st->g.nslots && !st->writable_cached; s++)
		if ((unsigned)__builtin_popcountll(slot_failed_mask(st,
					(uint32_t)s)) <= st->g.m)
			st->writable_cached = true;
	st->writable_mask = mask;
	st->writable_mask_valid = true;
	return st->writable_cached;
}

/* One step toward a free slot: evict the oldest segment (evict_one's
 * result), or -GPC_ENOSPACE where evicting cannot help. */
static int
evict_step(struct store *st)
{
	int rc;

	if (!writable_somewhere(st))
		return -GPC_ENOSPACE; /* evicting would not help */
	rc = evict_one(st);
	return rc == -ENOENT ? -GPC_ENOSPACE : rc;
}

static int
alloc_slot(struct store *st, uint32_t *out)
{
	for (;;) {
		int rc;

		if (take_free(st, out) == 0)
			return 0;
		rc = evict_step(st);
		if (rc < 0)
			return rc;
	}
}

/*
 * Is r's block still the index's, where reclaim found it? A put or delete
 * since then moved or removed it: the newer state wins. Unambiguous: the
 * slot is free from recl_finish until a new segment takes it, and that
 * segment's first records are these reinsertions (open_seg drains
 * reinsq before any put), never another version of r's key.
 */
static bool
recl_owns(struct store *st, struct reins *r)
{
	struct index_loc loc;

	if (index_lookup(st->ix, index_hash(r->ns, r->key), &loc) < 0 ||
	    loc.slot != r->slot || loc.off4k != r->off4k)
		return false;
	/* pinned or not, the priority, and read since it was kept (the
	 * CLOCK bit, cleared when it was kept), as they are by now */
	r->flags = loc.flags & (INDEX_F_PINNED | INDEX_F_LOW | INDEX_F_HIGH |
				INDEX_F_REF);
	return true;
}

/* r's block leaves the index (it could not be kept). */
static void
recl_drop(struct store *st, struct reins *r)
{
	struct index_hkey hk = index_hash(r->ns, r->key);

	if (recl_owns(st, r)) {
		store_ix_del(st, r->ns, hk,
			     (r->len + STORE_SECTOR - 1) / STORE_SECTOR);
		store_note_gone(st, r->ns, r->key, true);
	}
	reins_free(r);
}

/* Rewrite stashed blocks into the open segment, as far as they fit:
 * blocks kept for a quota first, then those read since written. Into a
 * fresh segment, what does not fit is dropped (it never will); into one
 * being filled, it waits for the next. */
static void
reinsert(struct store *st, bool fresh)
{
	struct reins *r, **pp = &st->reinsq;

	while ((r = *pp) != NULL) { /* quota blocks to the front */
		if (r->quota && pp != &st->reinsq) {
			*pp = r->next;
			r->next = st->reinsq;
			st->reinsq = r;
			continue;
		}
		pp = &r->next;
	}
	while ((r = st->reinsq) != NULL) {
		struct iovec iov = { r->data + STORE_SECTOR, r->len };
		bool room = fits(st, &st->wb[st->cur], store_rec_size(r->len),
				 1);

		if (!room && !fresh)
			break;
		st->reinsq = r->next;
		if (!recl_owns(st, r)) {
			reins_free(r); /* put or deleted meanwhile: that wins */
		} else if (room && append_rec(st, r->ns, r->key, &iov, 1,
					      r->len, r->flags, r->expire,
					      r->parent, r->age) == 0) {
			st->s.blocks_reinserted++;
			st->s.bytes_reinserted += r->len;
			st->reins_rec_bytes += store_rec_size(r->len);
			reins_free(r);
		} else {
			recl_drop(st, r);
		}
	}
}

/*
 * Make room in the FIFO of segments: entries of segments that left
 * without eviction (dropped unwritten, or lost) stay in it until they
 * reach its head; when it is full, they go now, order kept. The slots
 * in use are fewer than nslots (one is being opened), so room is made.
 */
static void
fifo_room(struct store *st)
{
	struct ringq *q = &st->fifo;
	uint64_t n = ringq_len(q), v;

	if (n < q->cap)
		return;
	for (uint64_t i = 0; i < n; i++) {
		const struct slot *sl;

		ringq_pop(q, &v);
		sl = &st->slots[v & 0xffffff];
		if (sl->seq == (v >> 24) && sl->state != SLOT_FREE)
			ringq_push(q, v);
	}
}

/* Open a new segment in a free write buffer. -EAGAIN: none is free. */
static int
open_seg(struct store *st)
{
	struct wbuf *w = NULL;
	struct slot *sl;
	uint32_t s;
	int rc;

	w = free_wbuf(st);
	if (w == NULL) {
		room_ahead(st, true);
		return -EAGAIN;
	}
	rc = alloc_slot(st, &s);
	if (rc < 0)
		return rc;
	sl = &st->slots[s];
	sl->seq = st->next_seq++;
	sl->gen++;
	sl->state = SLOT_OPEN;
	sl->stale = false; /* written over, or zeroed if dropped */
	sl->badmask = slot_failed_mask(st, s);
	sl->wbuf = (int8_t)(w - st->wb);
	sl->data_len = sl->nentries = sl->ttl_min = 0;
	*w = (struct wbuf){ .mem = w->mem, .sum = w->sum, .sum_cap = w->sum_cap,
			    .reqs = w->reqs, .frags = w->frags,
			    .frags_cap = w->frags_cap, .slot = s, .busy = true };
	fifo_room(st);
	ringq_push(&st->fifo, (sl->seq << 24) | s);
	st->cur = (int)(w - st->wb);
	reinsert(st, true);
	return 0;
}

/*
 * Could a new segment open now? 0: a write buffer and a free slot are
 * there; -EAGAIN: not yet, and what frees them has been started (a write,
 * a write-back, a reclaim's reads); other errors: never.
 */
static int
next_seg_ready(struct store *st)
{
	if (free_wbuf(st) == NULL) {
		unsigned others = 0;

		for (unsigned i = 0; i < st->nwb; i++)
			others += st->wb[i].busy && (int)i != st->cur;
		if (others == 0)
			return 0; /* the open segment has the only buffer:
				   * closing it is what frees one */
		room_ahead(st, true);
		return -EAGAIN;
	}
	while (ringq_len(&st->freeq) == 0) {
		int rc = evict_step(st);

		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * Make room for a record of need bytes and nent summary entries. The open
 * segment is sealed only once the next can open, so that while a put
 * waits (-EAGAIN) for a buffer or a slot, what still fits lands (a
 * delete's tombstone, one summary entry, nearly always does; a reserve
 * of summary room for them was measured: it moved the sim's hit ratio at
 * 10 M tokens by -0.36 points, the layout being that sensitive).
 * A new segment can come back full of blocks kept for their quota, hence
 * a few rounds.
 */
static int
ensure_room(struct store *st, uint32_t need, uint32_t nent)
{
	if (need > st->rec_max)
		st->rec_max = need; /* reclaim leaves room for it from now on */
	for (int tries = 0; tries < 64; tries++) {
		int rc;

		if (st->cur >= 0 && fits(st, &st->wb[st->cur], need, nent))
			return 0;
		rc = next_seg_ready(st);
		if (rc < 0)
			return rc;
		if (st->cur >= 0) {
			rc = store_seal_cur(st);
			if (rc < 0)
				return rc;
		}
		rc = open_seg(st);
		if (rc < 0)
			return rc;
	}
	return -GPC_ENOSPACE; /* quotas leave no room for this write */
}

/*
 * Make cb wait until w's segment is durable; the segment is sealed at the
 * next poll (group commit). -ENOMEM: the caller completes cb itself.
 */
static int
add_waiter(struct store *st, struct wbuf *w, store_cb cb, void *arg)
{
	struct store_done *d = calloc(1, sizeof(*d));

	(void)st;
	if (d == NULL)
		return -ENOMEM;
	d->cb = cb;
	d->arg = arg;
	d->next = w->waiters;
	w->waiters = d;
	w->want_seal = true;
	return 0;
}

int
store_put_submit(struct store *st, uint64_t ns, const uint8_t *key,
		 const struct iovec *iov, unsigned iovcnt, unsigned flags,
		 store_cb cb, void *arg)
{
	return store_put_submit_hint(st, ns, key, iov, iovcnt, flags, NULL,
				     cb, arg);
}

int
store_put_submit_hint(struct store *st, uint64_t ns, const uint8_t *key,
		      const struct iovec *iov, unsigned iovcnt,
		      unsigned flags, const struct store_hint *h,
		      store_cb cb, void *arg)
{
	uint64_t len = 0;
	int rc;

	if (st->o.read_only || st->abandoned)
		return -EROFS;
	if (store_hint_check(h) < 0)
		return -EINVAL;
	for (unsigned i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (len == 0)
		return -EINVAL;
	if (len > STORE_MAX_BLOCK ||
	    store_rec_size((uint32_t)len) + store_sum_size(1) > st->g.cap)
		return -GPC_ETOOBIG;
	if (store_put_check(st, ns, key, len, flags) > 0) {
		st->pending++;
		store_complete(st, cb, arg, 0);
		return 0;
	}
	rc = ensure_room(st, store_rec_size((uint32_t)len), 1);
	if (rc < 0)
		return rc;
	rc = append_rec(st, ns, key, iov, iovcnt, (uint32_t)len,
			h != NULL ? store_prio_ixflags(h->prio) : 0,
			h != NULL ? store_expire_at(st, h->ttl_s) : 0,
			store_parent_of(st, ns, key), 0);
	if (rc < 0)
		return rc;
	store_note_put(st, ns, key, (uint32_t)len);
	st->pending++;
	if ((flags & STORE_PUT_DURABLE) &&
	    add_waiter(st, &st->wb[st->cur], cb, arg) == 0)
		return 0;
	store_complete(st, cb, arg, 0);
	return 0;
}

int
store_delete(struct store *st, uint64_t ns, const uint8_t *key)
{
	struct index_hkey hk = index_hash(ns, key);
	struct sum_disk e = { .ns = ns, .flags = SUM_F_TOMBSTONE };
	struct index_loc loc;
	int rc;

	if (st->o.read_only || st->abandoned)
		return -EROFS;
	if (store_ix_find(st, ns, key, hk, &loc) < 0)
		return -GPC_ENOTFOUND;
	rc = ensure_room(st, 0, 1);
	if (rc < 0)
		return rc;
	memcpy(e.key, key, STORE_KEY_LEN);
	rc = sum_append(&st->wb[st->cur], &e);
	if (rc < 0)
		return rc;
	store_ix_del(st, ns, hk, loc.len4k);
	st->s.deletes++;
	store_note_gone(st, ns, key, false);
	return 0;
}

int
store_log_pin(struct store *st, uint64_t ns, const uint8_t *key, bool pin,
	      struct index_loc *loc)
{
	struct sum_disk e = { .ns = ns, .off4k = SUM_OFF_NONE,
			      .flags = pin ? SUM_F_PINNED : SUM_F_UNPIN };
	int rc = ensure_room(st, 0, 1);

	if (rc < 0)
		return rc;
	/* making room may have moved or dropped the block: the marker names
	 * the record indexed now, so a restart applies it to that one only
	 * (not to a put of the key committed later in an older segment) */
	if (index_lookup(st->ix, index_hash(ns, key), loc) < 0)
		return -GPC_ENOTFOUND;
	e.data_crc = (uint32_t)st->slots[loc->slot].seq;
	e.parent = loc->off4k; /* not expire: readers before markers
				 * would take the entry for an expiry */
	memcpy(e.key, key, STORE_KEY_LEN);
	return sum_append(&st->wb[st->cur], &e);
}

int
store_exists(struct store *st, uint64_t ns, const uint8_t *key)
{
	struct index_loc loc;

	return store_ix_find(st, ns, key, index_hash(ns, key), &loc) == 0;
}

unsigned
store_longest_prefix(struct store *st, uint64_t ns, const uint8_t *keys,
		     unsigned n)
{
	return store_lookup_part(st, ns, keys, n, true, NULL);
}

unsigned
store_lookup_part(struct store *st, uint64_t ns, const uint8_t *keys,
		  unsigned n, bool ends, struct policy_reuse *ru)
{
	uint64_t fps[STORE_CHAIN_PIECE], khs[STORE_CHAIN_PIECE], up = 0;
	uint64_t pks[STORE_CHAIN_PIECE];
	unsigned found = n, cls = store_ns_class(ns);

	for (unsigned i = 0; i < n; i++) {
		uint64_t kh = index_key_hash(keys + (size_t)i * STORE_KEY_LEN);
		struct index_hkey hk = index_hash_kh(ns, kh);
		struct index_loc loc;

		fps[i % STORE_CHAIN_PIECE] = hk.tag;
		khs[i % STORE_CHAIN_PIECE] = kh;
		pks[i % STORE_CHAIN_PIECE] = policy_key(cls, kh);
		if ((i + 1) % STORE_CHAIN_PIECE == 0 || i + 1 == n) {
			policy_ref_chain(st->pol, fps, pks,
					 i % STORE_CHAIN_PIECE + 1,
					 ends && i + 1 == n, ru);
			policy_link_chain(st->pol, cls, up, khs,
					  i % STORE_CHAIN_PIECE + 1,
					  ends && i + 1 == n);
			up = kh;
		}
		if (found == n && store_ix_find(st, ns, keys + (size_t)i *
						STORE_KEY_LEN, hk, &loc) < 0)
			found = i; /* a LOOKUP stops at a miss or an expiry */
	}
	return found;
}

/* The chain of open reservations whose (ns, key) has fingerprint tag. */
static struct store_resv **
resv_chain(struct store *st, uint64_t tag)
{
	return &st->resv_ht[tag % STORE_RESV_BUCKETS];
}

/* Is a reservation of (ns, key) (fingerprint hk) at len's sectors open? */
static bool
resv_open(struct store *st, struct index_hkey hk, uint64_t ns,
	  const uint8_t *key, uint64_t len)
{
	const struct store_resv *r = *resv_chain(st, hk.tag);

	for (; r != NULL; r = r->hnext)
		if (r->tag == hk.tag && r->ns == ns &&
		    memcmp(r->key, key, STORE_KEY_LEN) == 0 &&
		    (r->len + STORE_SECTOR - 1) / STORE_SECTOR ==
			    (len + STORE_SECTOR - 1) / STORE_SECTOR)
			return true;
	return false;
}

static void
resv_unlink(struct store *st, struct store_resv *r)
{
	struct store_resv **pp = resv_chain(st, r->tag);

	while (*pp != NULL && *pp != r)
		pp = &(*pp)->hnext;
	assert(*pp == r); /* else r's ns or key changed since its reserve */
	if (*pp == r)
		*pp = r->hnext;
	r->hnext = NULL;
}

int
store_put_check(struct store *st, uint64_t ns, const uint8_t *key,
		uint64_t len, unsigned flags)
{
	uint64_t kh = index_key_hash(key);
	struct index_hkey hk = index_hash_kh(ns, kh);
	unsigned cls = store_ns_class(ns);
	bool ia = (flags & STORE_PUT_IF_ABSENT) != 0, held;
	struct index_loc loc;

	st->s.put_bytes_offered += len;
	if (flags & STORE_PUT_DURABLE)
		return 0;
	held = store_ix_find(st, ns, key, hk, &loc) == 0;
	if (held && ia &&
	    loc.len4k == (len + STORE_SECTOR - 1) / STORE_SECTOR) {
		index_set_flags(st->ix, hk, INDEX_F_REF, 0);
		st->s.puts_deduped++;
		return STORE_PUT_DEDUP;
	}
	/* another put of it is landing (two engines offloading the same
	 * prefix at once): one copy is enough */
	if (ia && resv_open(st, hk, ns, key, len)) {
		st->s.puts_deduped++;
		return STORE_PUT_DEDUP;
	}
	if (held)
		return 0; /* never refused: its old bytes must not stay */
	if (policy_admit(st->pol, policy_key(cls, kh),
			 policy_tail(st->pol, cls, kh)))
		return 0;
	st->s.puts_refused++;
	return STORE_PUT_REFUSED;
}

void
store_note_gone(struct store *st, uint64_t ns, const uint8_t *key,
		bool evicted)
{
	if (evicted)
		st->s.blocks_evicted++;
	if (st->ev_cb != NULL)
		st->ev_cb(st->ev_arg, STORE_EV_REMOVED, ns, key);
}

void
store_set_event_cb(struct store *st, store_ev_cb cb, void *arg)
{
	st->ev_cb = cb;
	st->ev_arg = arg;
}

/* Whole records of rec bytes a segment of cap bytes holds, beside their
 * summary: a segment holds no part of a record, so the capacity the
 * policy sizes itself by is whole records per segment (a chunk with room
 * for 31.4 records holds 31). */
static uint64_t
recs_per_seg(uint32_t cap, uint64_t rec)
{
	uint64_t n = cap / rec;

	while (n > 1 && n * rec + store_sum_size((uint32_t)n) > cap)
		n--;
	return n;
}

/* A new block went into the write buffer: count it, and tell the policy
 * how many blocks of the sizes seen the log holds. */
void
store_note_put(struct store *st, uint64_t ns, const uint8_t *key,
	       uint32_t len)
{
	if (st->ev_cb != NULL)
		st->ev_cb(st->ev_arg, STORE_EV_STORED, ns, key);
	st->s.puts++;
	st->s.put_bytes += len;
	st->rec_bytes += store_rec_size(len);
	if (++st->recs % 256 == 0)
		policy_set_capacity(st->pol, st->g.nslots *
				    recs_per_seg(st->g.cap,
						 st->rec_bytes / st->recs));
}

/* Summary, zeroed gap and footer into the tail of the logical space. */
static void
build_tail(struct store *st, struct wbuf *w, const struct slot *sl)
{
	uint32_t slen = w->nentries * SUM_DISK_SIZE;
	uint32_t soff = st->g.cap - store_sum_size(w->nentries);
	uint8_t foot[STORE_SECTOR] = { 0 };
	struct foot_disk f = { .nentries = w->nentries, .seg_seq = sl->seq,
			       .sum_off = soff, .sum_len = slen,
			       .data_len = w->data_len };
	uint64_t t0 = clock_thread_cpu_ns();

	f.sum_crc = crc32c(w->sum, slen);
	st->s.crc_cpu_ns += clock_thread_cpu_ns() - t0;
	memcpy(f.uuid, st->uuid, 16);
	wbuf_zero(st, w, w->data_len, soff - w->data_len);
	wbuf_write(st, w, soff, w->sum, slen);
	wbuf_zero(st, w, soff + slen, st->g.cap - STORE_SECTOR - soff - slen);
	foot_encode(&f, foot);
	wbuf_write(st, w, st->g.cap - STORE_SECTOR, foot, STORE_SECTOR);
	frag_range(st, w, soff, slen);
	frag_range(st, w, st->g.cap - STORE_SECTOR, STORE_SECTOR);
}


static unsigned
wbuf_nreq(const struct store *st)
{
	return st->g.w * (st->g.chunk_size / STORE_MAX_IO + 2);
}

static struct iovec *
wbuf_iovs(const struct store *st, const struct wbuf *w)
{
	return (struct iovec *)(w->reqs + wbuf_nreq(st));
}

static void seal_finish(struct store *st, struct wbuf *w);
static void seal_flush(struct store *st, struct wbuf *w);

/* Mark chunk bits of slot on store device dev bad. */
static void
mark_dev_bad(struct store *st, struct slot *sl, uint32_t s, unsigned dev)
{
	uint64_t off;

	for (unsigned i = 0; i < st->g.w; i++)
		if (store_slot_dev(st, s, i, &off) == dev)
			sl->badmask |= 1ull << i;
}

static void
seal_io_cb(struct store_io_req *r)
{
	struct wbuf *w = r->arg;
	struct store *st = w->st;
	struct slot *sl = &st->slots[w->slot];

	if (r->res < 0) {
		unsigned dev = store_req_sdev(st, r);

		store_fail_dev_io(st, dev, r->res);
		mark_dev_bad(st, sl, w->slot, dev);
		if (w->err == 0)
			w->err = r->res;
	}
	if (--w->pending > 0)
		return;
	if (r->op == STORE_IO_WRITE)
		seal_flush(st, w);
	else
		seal_finish(st, w);
}

/* Phase 1: write every chunk on a working device, in pieces. */
static void
seal_write(struct store *st, struct wbuf *w)
{
	struct slot *sl = &st->slots[w->slot];
	struct iovec *iov = wbuf_iovs(st, w);
	unsigned n = 0;

	w->pending = 1; /* held until every piece is submitted */
	for (unsigned i = 0; i < st->g.w; i++) {
		uint64_t off;
		unsigned dev = store_slot_dev(st, w->slot, i, &off);

		if (sl->badmask & (1ull << i))
			continue;
		for (uint32_t p = 0; p < st->g.chunk_size; p += STORE_MAX_IO) {
			struct store_io_req *r = &w->reqs[n];
			uint32_t len = st->g.chunk_size - p;

			iov[n] = (struct iovec){
				w->mem + (size_t)i * st->g.chunk_size + p,
				len < STORE_MAX_IO ? len : STORE_MAX_IO };
			*r = (struct store_io_req){ .op = STORE_IO_WRITE,
				.dev = (uint16_t)dev, .off = off + p,
				.buf_index = st->bufs_registered
						     ? (int32_t)(w - st->wb) : -1,
				.iov = &iov[n], .iovcnt = 1, .cb = seal_io_cb,
				.arg = w };
			if (store_submit(st, r) < 0) {
				sl->badmask |= 1ull << i;
				break;
			}
			st->s.flash_bytes_written += iov[n].iov_len;
			w->pending++;
			n++;
		}
	}
	w->pending--;
	if (w->pending == 0)
		seal_flush(st, w);
}

/*
 * Flush every device that holds a chunk of w's slot outside skip, each
 * completion to cb; w->pending counts them (the caller holds it at one
 * while they are submitted). A device whose flush cannot be submitted:
 * its chunks go into skip when bad is given.
 */
static void
flush_devs(struct store *st, struct wbuf *w, uint64_t skip,
	   void (*cb)(struct store_io_req *), struct slot *bad)
{
	bool done[STORE_MAX_DEVS] = { false };
	unsigned n = 0;

	for (unsigned i = 0; i < st->g.w; i++) {
		uint64_t off;
		unsigned dev = store_slot_dev(st, w->slot, i, &off);
		struct store_io_req *r = &w->reqs[n];

		if ((skip & (1ull << i)) || done[dev])
			continue;
		done[dev] = true;
		*r = (struct store_io_req){ .op = STORE_IO_FLUSH,
			.dev = (uint16_t)dev, .buf_index = -1, .cb = cb,
			.arg = w };
		if (store_submit(st, r) < 0) {
			if (bad != NULL)
				mark_dev_bad(st, bad, w->slot, dev);
			continue;
		}
		w->pending++;
		n++;
	}
}

/* Phase 2: flush every device that holds a good chunk. */
static void
seal_flush(struct store *st, struct wbuf *w)
{
	struct slot *sl = &st->slots[w->slot];

	w->pending = 1;
	flush_devs(st, w, sl->badmask, seal_io_cb, sl);
	if (--w->pending == 0)
		seal_finish(st, w);
}

/* Forget the index entries of a segment that could not be written. */
static void
unindex(struct store *st, const struct wbuf *w)
{
	for (uint32_t e = 0; e < w->nentries; e++) {
		struct sum_disk d;

		sum_decode(w->sum + (size_t)e * SUM_DISK_SIZE, &d);
		if (sum_is_record(&d))
			store_ix_del_at(st, d.ns, index_hash(d.ns, d.key),
					w->slot, d.off4k);
	}
}

/* Phase 3: the segment is durable, or lost if more than m chunks failed. */
static void
seal_finish(struct store *st, struct wbuf *w)
{
	struct slot *sl = &st->slots[w->slot];
	int rc = 0;
	struct store_done *d;

	if ((unsigned)__builtin_popcountll(sl->badmask) > st->g.m) {
		rc = w->err < 0 ? w->err : -EIO;
		unindex(st, w);
		sl->state = SLOT_FREE;
		sl->seq = 0;
		ringq_push(&st->freeq, w->slot);
		st->s.seg_write_failures++;
		st->lost_segs++;
	} else {
		sl->state = SLOT_SEALED;
		st->s.segs_sealed++;
	}
	if (rc == 0 && st->o.writeback_ms > 0) {
		w->clean = true; /* readable in DRAM until its buffer is needed */
	} else {
		sl->wbuf = -1;
		wbuf_release(w);
	}
	while ((d = w->waiters) != NULL) {
		w->waiters = d->next;
		d->rc = rc;
		store_done_push(st, d);
	}
	store_flushq_check(st);
}

/* Write out a segment whose reservations are all done. */
/* A segment is encoded: count its cost, write it. */
static void
sealed(struct store *st, const struct seal_job *j)
{
	struct slot *sl = &st->slots[j->w->slot];

	st->s.ec_cpu_ns += j->cost.ec_ns;
	st->s.crc_cpu_ns += j->cost.crc_ns;
	sl->data_len = j->w->data_len;
	sl->nentries = j->w->nentries;
	seal_write(st, j->w);
}

/* Does a flush wait for segment seq to be durable? */
static bool
flush_covers(const struct store *st, uint64_t seq)
{
	for (const struct store_done *d = st->flushq; d != NULL; d = d->next)
		if (d->seq >= seq)
			return true;
	return false;
}

/* Is any record of w still the index's, or any tombstone or unpin
 * marker in it, or a pin marker of a block still indexed? */
static bool
seg_matters(struct store *st, const struct wbuf *w)
{
	for (uint32_t e = 0; e < w->nentries; e++) {
		struct sum_disk d;
		struct index_loc loc;

		sum_decode(w->sum + (size_t)e * SUM_DISK_SIZE, &d);
		if (d.flags & SUM_F_TOMBSTONE)
			return true; /* it must reach flash to hide older puts */
		if (sum_is_pinmark(&d)) { /* ... or to keep its pin state:
					   * an unpin, always (like a
					   * tombstone, it hides an older
					   * pin from a replay) */
			if ((d.flags & SUM_F_UNPIN) ||
			    index_lookup(st->ix, index_hash(d.ns, d.key),
					 &loc) == 0)
				return true;
			continue;
		}
		if (index_lookup(st->ix, index_hash(d.ns, d.key), &loc) == 0 &&
		    loc.slot == w->slot && loc.off4k == d.off4k)
			return true;
	}
	return false;
}

/* A dropped segment's slot is free again, its buffer too. */
static void
drop_finish(struct store *st, struct wbuf *w)
{
	struct slot *sl = &st->slots[w->slot];
	struct store_done *d;

	sl->state = SLOT_FREE;
	sl->seq = 0;
	sl->wbuf = -1;
	ringq_push(&st->freeq, w->slot);
	wbuf_release(w);
	while ((d = w->waiters) != NULL) { /* their puts were superseded */
		w->waiters = d->next;
		store_done_push(st, d);
	}
	store_flushq_check(st);
}

static void drop_flush(struct store *st, struct wbuf *w);

static void
drop_io_cb(struct store_io_req *r)
{
	struct wbuf *w = r->arg;

	if (r->res < 0)
		store_fail_dev_io(w->st, store_req_sdev(w->st, r), r->res);
	if (--w->pending > 0)
		return;
	if (r->op == STORE_IO_WRITE)
		drop_flush(w->st, w);
	else
		drop_finish(w->st, w);
}

/* The zeroed headers must be durable before the slot takes another
 * segment: else a crash could bring back the slot's evicted segment while
 * a newer one (its deletes, its newer versions) is already overwritten. */
static void
drop_flush(struct store *st, struct wbuf *w)
{
	w->pending = 1;
	flush_devs(st, w, slot_failed_mask(st, w->slot), drop_io_cb, NULL);
	if (--w->pending == 0)
		drop_finish(st, w);
}

/*
 * Drop a closed segment without writing it: nothing in it is live. The
 * slot's chunk headers are zeroed first, so that the segment it held
 * before (evicted) cannot come back at the next open; only then is the
 * slot free for another segment, whose writes cannot pass these.
 */
static void
drop_seg(struct store *st, struct wbuf *w)
{
	struct iovec *iov = wbuf_iovs(st, w);
	unsigned n = 0;

	w->st = st;
	w->pending = 1;
	for (unsigned i = 0; i < st->g.w; i++) {
		uint64_t off;
		unsigned dev = store_slot_dev(st, w->slot, i, &off);
		struct store_io_req *r = &w->reqs[n];

		if (st->dev_failed[dev])
			continue;
		iov[n] = (struct iovec){ st->zero_sec, STORE_SECTOR };
		*r = (struct store_io_req){ .op = STORE_IO_WRITE,
			.dev = (uint16_t)dev, .off = off, .buf_index = -1,
			.iov = &iov[n], .iovcnt = 1, .cb = drop_io_cb,
			.arg = w };
		if (store_submit(st, r) < 0)
			continue;
		st->s.flash_bytes_written += STORE_SECTOR;
		w->pending++;
		n++;
	}
	st->s.segs_dropped++;
	if (--w->pending == 0)
		drop_flush(st, w);
}

/* Encode a closed segment and write it, or drop it if nothing in it is
 * live any more. */
static void
write_back(struct store *st, struct wbuf *w)
{
	struct slot *sl = &st->slots[w->slot];

	w->held = false;
	/* a durable put or a flush waiting on it: written whatever
	 * superseded it since (those newer puts may not be durable) */
	if (w->waiters == NULL && !flush_covers(st, sl->seq) &&
	    !seg_matters(st, w)) {
		drop_seg(st, w);
		return;
	}
	build_tail(st, w, sl);
	if (st->sealer != NULL) {
		struct seal_job *j = malloc(sizeof(*j));

		if (j != NULL) {
			*j = (struct seal_job){ .g = &st->g, .uuid = st->uuid,
						.w = w, .seq = sl->seq,
						.gen = sl->gen };
			sealer_submit(st->sealer, j);
			return; /* store_seal_reap writes it */
		}
	}
	{
		struct seal_job j = { .g = &st->g, .coder = st->coder,
				      .uuid = st->uuid, .w = w,
				      .seq = sl->seq, .gen = sl->gen };

		seal_encode(&j, &j.cost);
		sealed(st, &j);
	}
}

/* A segment is closed, every reservation in it done: write it now (a
 * durable put waits, or no write-back), or keep it in DRAM for now. */
static void
seal_now(struct store *st, struct wbuf *w)
{
	w->seal_deferred = false;
	w->st = st;
	if (st->o.writeback_ms == 0 || w->want_seal) {
		write_back(st, w);
		return;
	}
	w->held = true;
	w->closed_ns = clock_now_ns();
	room_ahead(st, false);
}

void
store_seal_reap(struct store *st, bool wait)
{
	struct seal_job *j;

	while ((j = sealer_reap(st->sealer, wait)) != NULL) {
		wait = false;
		if (!st->abandoned) /* a crash: nothing more is written */
			sealed(st, j);
		free(j);
	}
}

int
store_seal_cur(struct store *st)
{
	struct wbuf *w;

	if (st->cur < 0)
		return 0;
	w = &st->wb[st->cur];
	if (w->nentries == 0 && w->nresv == 0)
		return 0;
	st->cur = -1;
	w->st = st;
	st->slots[w->slot].state = SLOT_SEALING;
	if (w->nresv > 0)
		w->seal_deferred = true; /* the last commit or abort seals */
	else
		seal_now(st, w);
	return 0;
}

/* Pin / unpin a write buffer for a zero-copy reader. */
void
store_wbuf_pin(struct store *st, int wb)
{
	st->wb[wb].refs++;
}

void
store_wbuf_unpin(struct store *st, int wb)
{
	struct wbuf *w = &st->wb[wb];

	if (--w->refs == 0 && w->release_deferred) {
		w->release_deferred = false;
		w->busy = false;
	}
}

void
store_seal_pending(struct store *st)
{
	if (!st->abandoned && st->cur >= 0 && st->wb[st->cur].want_seal)
		store_seal_cur(st);
}

int
store_zero_stale(struct store *st)
{
	struct store_io_req *reqs;
	struct iovec iov = { st->zero_sec, STORE_SECTOR };
	unsigned n = 0, nmax = st->g.w + st->g.ndev;
	int rc = 0;

	if (st->zero_sec == NULL)
		return 0;
	reqs = calloc(nmax, sizeof(*reqs));
	if (reqs == NULL)
		return -ENOMEM;
	for (uint32_t s = 0; s < st->g.nslots && rc == 0; s++) {
		struct slot *sl = &st->slots[s];

		if (sl->state != SLOT_FREE || !sl->stale)
			continue;
		n = 0;
		for (unsigned i = 0; i < st->g.w; i++) {
			uint64_t off;
			unsigned dev = store_slot_dev(st, s, i, &off);

			if (st->dev_failed[dev])
				continue;
			reqs[n++] = (struct store_io_req){ .op = STORE_IO_WRITE,
				.dev = (uint16_t)dev, .off = off,
				.buf_index = -1, .iov = &iov, .iovcnt = 1 };
		}
		rc = store_sync_io(st, reqs, n);
		if (rc == 0)
			sl->stale = false;
	}
	n = 0;
	for (unsigned d = 0; d < st->g.ndev && rc == 0; d++)
		if (!st->dev_failed[d])
			reqs[n++] = (struct store_io_req){ .op = STORE_IO_FLUSH,
				.dev = (uint16_t)d, .buf_index = -1 };
	if (rc == 0 && n > 0)
		rc = store_sync_io(st, reqs, n);
	free(reqs);
	return rc;
}

void
store_writeback_age(struct store *st)
{
	uint64_t now = 0, age = (uint64_t)st->o.writeback_ms * 1000000u;
	struct wbuf *w;

	if (st->o.writeback_ms == 0 || st->abandoned)
		return;
	while ((w = oldest_wbuf(st, false)) != NULL) {
		if (now == 0)
			now = clock_now_ns();
		if (now - w->closed_ns < age)
			break;
		write_back(st, w); /* bounds what a crash loses */
	}
}

/* Oldest segment still being written, or UINT64_MAX. */
static uint64_t
oldest_sealing(const struct store *st)
{
	uint64_t min = UINT64_MAX;

	for (unsigned i = 0; i < st->nwb; i++) {
		const struct slot *sl = &st->slots[st->wb[i].slot];

		if (st->wb[i].busy && sl->state == SLOT_SEALING && sl->seq < min)
			min = sl->seq;
	}
	return min;
}

void
store_flushq_check(struct store *st)
{
	uint64_t min = oldest_sealing(st);
	struct store_done **pp = &st->flushq, *d;

	while ((d = *pp) != NULL) {
		if (d->seq < min) {
			*pp = d->next;
			/* like fsync's errseq: report each loss to one flush */
			if (st->lost_segs != st->lost_seen) {
				d->rc = -EIO;
				st->lost_seen = st->lost_segs;
			}
			store_done_push(st, d);
		} else {
			pp = &d->next;
		}
	}
}

int
store_flush_submit(struct store *st, store_cb cb, void *arg)
{
	struct store_done *d = calloc(1, sizeof(*d));
	uint64_t newest = 0;
	struct wbuf *w;
	int rc;

	if (d == NULL)
		return -ENOMEM;
	rc = store_seal_cur(st);
	if (rc < 0) {
		free(d);
		return rc;
	}
	while ((w = oldest_wbuf(st, false)) != NULL)
		write_back(st, w); /* what write-back kept in DRAM */
	for (unsigned i = 0; i < st->nwb; i++)
		if (st->wb[i].busy && st->wb[i].seal_deferred)
			st->wb[i].want_seal = true; /* written once closed */
	for (unsigned i = 0; i < st->nwb; i++) {
		const struct slot *sl = &st->slots[st->wb[i].slot];

		if (st->wb[i].busy && sl->state == SLOT_SEALING &&
		    sl->seq > newest)
			newest = sl->seq;
	}
	d->cb = cb;
	d->arg = arg;
	d->seq = newest;
	st->pending++;
	d->next = st->flushq;
	st->flushq = d;
	store_flushq_check(st);
	return 0;
}

/* The wbuf pieces covering logical [off, off + len); returns the count. */
unsigned
store_wbuf_pieces(const struct store *st, const struct wbuf *w, uint32_t off,
	    uint32_t len, struct iovec *iov, unsigned max)
{
	unsigned n = 0;

	while (len > 0 && n < max) {
		uint32_t room;
		uint8_t *p = store_wbuf_ptr(st, w, off, &room);
		uint32_t k = len < room ? len : room;

		iov[n++] = (struct iovec){ p, k };
		off += k;
		len -= k;
	}
	return n;
}

int
store_put_reserve(struct store *st, uint64_t ns, const uint8_t *key,
		  uint32_t len, struct store_resv *r)
{
	uint32_t rs = store_rec_size(len);
	struct wbuf *w;
	int rc;

	if (st->o.read_only || st->abandoned)
		return -EROFS;
	if (len == 0)
		return -EINVAL;
	if (len > STORE_MAX_BLOCK || rs + store_sum_size(1) > st->g.cap)
		return -GPC_ETOOBIG;
	rc = ensure_room(st, rs, 1);
	if (rc < 0)
		return rc;
	w = &st->wb[st->cur];
	*r = (struct store_resv){ .ns = ns, .len = len, .wb = st->cur,
				  .off = w->data_len };
	memcpy(r->key, key, STORE_KEY_LEN);
	r->tag = index_hash(ns, key).tag;
	r->hnext = *resv_chain(st, r->tag);
	*resv_chain(st, r->tag) = r;
	r->iovcnt = store_wbuf_pieces(st, w, w->data_len + STORE_SECTOR, len, r->iov,
				STORE_RESV_MAXIOV);
	w->data_len += rs;
	w->nresv++; /* counts toward the summary's room until done */
	return 0;
}

int
store_put_landed(struct store *st, struct store_resv *r, uint32_t off,
		 uint32_t len)
{
	uint32_t pos = 0, end, n;

	if (len == 0 || off > r->len || len > r->len - off)
		return -EINVAL;
	end = off + len;
	for (unsigned i = 0; i < r->iovcnt && pos < end; pos += n, i++) {
		uint32_t a, b;
		uint64_t t0;

		n = (uint32_t)r->iov[i].iov_len;
		a = off > pos ? off - pos : 0;
		b = end < pos + n ? end - pos : n;
		if (a >= b)
			continue; /* the piece is not in this chunk */
		if (r->nland >= STORE_RESV_MAXLAND) {
			r->nland = STORE_RESV_MAXLAND + 1; /* commit: the long
							    * way */
			break;
		}
		t0 = clock_cost_ns();
		r->land[r->nland++] = (struct store_land){
			pos + a, b - a,
			crc32c_raw((const uint8_t *)r->iov[i].iov_base + a,
				   b - a) };
		st->s.crc_cpu_ns += clock_cost_ns() - t0;
	}
	return 0;
}

/*
 * The runs store_put_landed kept for r, if they tile its block: sorted,
 * each run added to w's fragments (merged with the one before it where
 * they meet inside a chunk, so a block adds at most one per chunk, as a
 * whole-block checksum does), and *raw is the block's register. false:
 * they do not tile it, nothing is added.
 */
static bool
land_commit(struct store *st, struct wbuf *w, struct store_resv *r,
	    uint32_t *raw)
{
	struct store_land *l = r->land, run;
	uint32_t n = r->nland, loff0 = r->off + STORE_SECTOR, P = st->g.payload;

	if (n == 0 || n > STORE_RESV_MAXLAND)
		return false;
	for (uint32_t i = 1; i < n; i++) /* insertion sort: n <= 32 */
		for (uint32_t k = i; k > 0 && l[k - 1].off > l[k].off; k--) {
			struct store_land t = l[k];

			l[k] = l[k - 1];
			l[k - 1] = t;
		}
	for (uint32_t i = 0, pos = 0; i < n; pos += l[i].len, i++)
		if (l[i].off != pos || (i == n - 1 && pos + l[i].len != r->len))
			return false; /* a gap or an overlap */
	*raw = 0;
	run = l[0];
	for (uint32_t i = 0; i < n; i++) {
		*raw = crc32c_shift(*raw, l[i].len) ^ l[i].q;
		if (i == 0)
			continue;
		if ((loff0 + l[i].off) % P != 0) { /* same chunk: one run */
			run.q = crc32c_shift(run.q, l[i].len) ^ l[i].q;
			run.len += l[i].len;
			continue;
		}
		frag_add(w, loff0 + run.off, run.len, run.q);
		run = l[i];
	}
	frag_add(w, loff0 + run.off, run.len, run.q);
	return true;
}

/* A reservation is over: seal the segment if that was waiting on it. */
static void
resv_done(struct store *st, struct wbuf *w)
{
	if (--w->nresv == 0 && w->seal_deferred)
		seal_now(st, w);
}

int
store_put_commit(struct store *st, struct store_resv *r, unsigned flags,
		 store_cb cb, void *arg)
{
	struct wbuf *w = &st->wb[r->wb];
	struct rec_disk rec = { .ns = r->ns, .len = r->len,
				.seg_seq = st->slots[w->slot].seq };
	uint8_t ixf = store_hint_check(&r->hint) == 0
			      ? store_prio_ixflags(r->hint.prio) : 0;
	uint32_t expire = store_hint_check(&r->hint) == 0
				  ? store_expire_at(st, r->hint.ttl_s) : 0;
	struct sum_disk e = { .ns = r->ns, .off4k = r->off / STORE_SECTOR,
			      .len = r->len, .expire = expire,
			      .parent = store_parent_of(st, r->ns, r->key),
			      .flags = store_ix_sumflags(ixf) };
	struct index_loc loc = { .slot = w->slot, .off4k = r->off / STORE_SECTOR,
				 .len4k = (r->len + STORE_SECTOR - 1) /
					  STORE_SECTOR,
				 .flags = (uint8_t)(ixf |
						    (expire ? INDEX_F_TTL : 0)) };
	uint8_t hdr[STORE_SECTOR] = { 0 };
	uint32_t raw = 0, rs = store_rec_size(r->len);
	uint32_t loff = r->off + STORE_SECTOR;
	int rc = 0;

	resv_unlink(st, r);
	if (!land_commit(st, w, r, &raw)) /* not checksummed as it landed */
		for (unsigned i = 0; i < r->iovcnt && rc == 0; i++) {
			rc = frag_crc(st, w, loff, r->iov[i].iov_base,
				      (uint32_t)r->iov[i].iov_len, &raw);
			loff += (uint32_t)r->iov[i].iov_len;
		}
	memcpy(rec.key, r->key, STORE_KEY_LEN);
	memcpy(e.key, r->key, STORE_KEY_LEN);
	rec.data_crc = e.data_crc = crc_finish(raw, r->len);
	wbuf_zero(st, w, r->off + STORE_SECTOR + r->len,
		  rs - STORE_SECTOR - r->len);
	rec_encode(&rec, hdr);
	wbuf_write(st, w, r->off, hdr, STORE_SECTOR);
	if (rc == 0)
		rc = frag_crc(st, w, r->off, hdr, STORE_SECTOR, NULL);
	if (rc == 0)
		rc = sum_append(w, &e);
	if (rc == 0)
		rc = store_ix_put(st, r->ns, r->key, &loc, expire);
	if (rc < 0) {
		resv_done(st, w);
		return rc;
	}
	store_note_put(st, r->ns, r->key, r->len);
	st->pending++;
	if ((flags & STORE_PUT_DURABLE) && add_waiter(st, w, cb, arg) == 0) {
		resv_done(st, w);
		return 0;
	}
	store_complete(st, cb, arg, 0);
	resv_done(st, w);
	return 0;
}

void
store_put_abort(struct store *st, struct store_resv *r)
{
	struct wbuf *w = &st->wb[r->wb];

	resv_unlink(st, r);
	/* no record here, and zeros: the chunk checksum assumes them */
	wbuf_zero(st, w, r->off, store_rec_size(r->len));
	resv_done(st, w);
}
