/*
 * store_sweep.c - the expiry sweep. A block whose TTL ran out is found
 * lazily at a lookup of its key or when reclaim reaches its segment; until
 * then it would hold its flash and count in its tenant's usage (quotas,
 * pins, STAT). Once a second, store_poll calls store_ttl_sweep, which
 * takes up to SWEEP_SEGS sealed segments, in turn from where the last
 * sweep stopped (so that none waits behind others), whose earliest expiry
 * (slot.ttl_min, kept by store_ix_put) has passed, reads each one's
 * summary, and drops the blocks of it that the index still places there
 * and that have expired: each is a REMOVED KV event and counts in
 * blocks_expired, exactly as when a lookup finds it. The slot's bound
 * becomes the earliest expiry of what stays. Its flash comes back when
 * reclaim reaches the segment, as for a deleted block.
 *
 * The summary is read synchronously, as reclaim reads it: a bounded
 * stall (SWEEP_SEGS summaries a second, each one read of nentries x 64
 * bytes: 256 KiB for a 256 MiB segment of 64 KiB blocks). So expired
 * blocks leave within a second while at most SWEEP_SEGS segments are due
 * at once; with more, the sweep catches up over the next seconds, each
 * due segment in its turn. Segments still open or being
 * written are swept once sealed; the segment under reclaim is reclaim's.
 * A later scrub pass over sealed segments belongs beside this one.
 */
#include <stdlib.h>

#include "store_int.h"

#define SWEEP_SEGS 32u      /* summaries read per sweep, at most */
#define SWEEP_RETRY_S 60u   /* after a summary could not be read */

/* Drop the expired blocks of sealed slot s; its new bound. */
static void
sweep_slot(struct store *st, uint32_t s, uint32_t now)
{
	struct slot *sl = &st->slots[s];
	uint32_t next = 0;
	uint8_t *sum;

	if (store_read_summary(st, s, &sum) < 0) {
		sl->ttl_min = now + SWEEP_RETRY_S;
		return;
	}
	for (uint32_t e = 0; e < sl->nentries; e++) {
		struct sum_disk d;
		struct index_hkey hk;
		struct index_loc loc;
		uint32_t exp;

		sum_decode(sum + (size_t)e * SUM_DISK_SIZE, &d);
		if (!sum_is_record(&d) || d.expire == 0)
			continue;
		hk = index_hash(d.ns, d.key);
		if (index_lookup(st->ix, hk, &loc) < 0 || loc.slot != s ||
		    loc.off4k != d.off4k || !(loc.flags & INDEX_F_TTL))
			continue; /* replaced, deleted, or gone already */
		exp = ttl_get(st->ttl, hk.tag);
		if (exp != 0 && now >= exp) {
			store_ix_del(st, d.ns, hk, loc.len4k);
			st->s.blocks_expired++;
			store_note_gone(st, d.ns, d.key, false);
		} else if (exp != 0 && (next == 0 || exp < next)) {
			next = exp;
		}
	}
	free(sum);
	sl->ttl_min = next;
}

void
store_ttl_sweep(struct store *st)
{
	uint32_t now, done = 0, start = st->sweep_pos;

	if (ttl_count(st->ttl) == 0 || st->abandoned)
		return;
	now = store_now_s(st);
	if (now < st->sweep_next && st->sweep_next - now <= 1)
		return; /* (a clock set back does not stop the sweep) */
	st->sweep_next = now + 1;
	for (uint32_t i = 0; i < st->g.nslots && done < SWEEP_SEGS; i++) {
		uint32_t s = (start + i) % st->g.nslots;
		struct slot *sl = &st->slots[s];

		if (sl->ttl_min == 0 || sl->ttl_min > now ||
		    sl->state != SLOT_SEALED || (int)s == st->recl_slot)
			continue;
		sweep_slot(st, s, now);
		st->sweep_pos = s + 1;
		done++;
	}
}
