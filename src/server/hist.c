/*
 * hist.c - the log-linear latency histogram (see hist.h for the bucket
 * geometry and the error bound).
 *
 * One writer per histogram, so hist_record needs no read-modify-write:
 * it loads and stores each word with memory_order_relaxed, which compiles
 * to plain loads and stores on x86 and Arm yet is a data race for neither
 * the C memory model nor TSan. Readers only ever see whole 64-bit values;
 * they may see one sample's bucket without its sum, which is harmless for
 * monitoring and is why a snapshot's count is recomputed from its buckets.
 */
#include <string.h>

#include "hist.h"

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics are lock-free");
_Static_assert(HIST_NBUCKETS == 1056, "bucket table size");

static inline void
ctr_add(_Atomic uint64_t *c, uint64_t n)
{
	uint64_t v = atomic_load_explicit(c, memory_order_relaxed);

	atomic_store_explicit(c, v + n, memory_order_relaxed);
}

void
hist_init(struct hist *h)
{
	atomic_init(&h->sum, 0);
	atomic_init(&h->max, 0);
	for (unsigned i = 0; i < HIST_NBUCKETS; i++)
		atomic_init(&h->b[i], 0);
}

unsigned
hist_bucket(uint64_t v)
{
	unsigned e;

	if (v < HIST_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	if (e >= HIST_MAX_EXP)
		return HIST_NBUCKETS - 1;
	return (e - HIST_SUB_BITS + 1u) * HIST_SUB +
	       (unsigned)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1u));
}

uint64_t
hist_bucket_lo(unsigned i)
{
	unsigned g = i / HIST_SUB, s = i % HIST_SUB, e;

	if (g == 0)
		return s;
	e = g + HIST_SUB_BITS - 1u;
	return (1ull << e) + ((uint64_t)s << (e - HIST_SUB_BITS));
}

uint64_t
hist_bucket_width(unsigned i)
{
	unsigned g = i / HIST_SUB;

	if (g == 0)
		return 1;
	return 1ull << (g - 1u);
}

void
hist_record(struct hist *h, uint64_t ns)
{
	ctr_add(&h->b[hist_bucket(ns)], 1);
	ctr_add(&h->sum, ns);
	if (ns > atomic_load_explicit(&h->max, memory_order_relaxed))
		atomic_store_explicit(&h->max, ns, memory_order_relaxed);
}

void
hist_snapshot(const struct hist *h, struct hist_snap *out)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < HIST_NBUCKETS; i++) {
		out->b[i] = atomic_load_explicit(&h->b[i],
						 memory_order_relaxed);
		n += out->b[i];
	}
	out->count = n;
	out->sum = atomic_load_explicit(&h->sum, memory_order_relaxed);
	out->max = atomic_load_explicit(&h->max, memory_order_relaxed);
}

void
hist_snap_clear(struct hist_snap *s)
{
	memset(s, 0, sizeof(*s));
}

void
hist_merge(struct hist_snap *dst, const struct hist_snap *src)
{
	for (unsigned i = 0; i < HIST_NBUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t
hist_quantile(const struct hist_snap *s, double q)
{
	uint64_t rank, seen = 0, mid;
	double x;
	unsigned i;

	if (s->count == 0)
		return 0;
	if (!(q > 0.0))
		q = 0.0;
	if (q > 1.0)
		q = 1.0;
	x = q * (double)s->count;
	rank = (uint64_t)x;
	if ((double)rank < x)
		rank++;
	if (rank == 0)
		rank = 1;
	if (rank > s->count)
		rank = s->count;
	for (i = 0; i < HIST_NBUCKETS - 1; i++) {
		seen += s->b[i];
		if (seen >= rank)
			break;
	}
	if (i == HIST_NBUCKETS - 1)
		return s->max;
	mid = hist_bucket_lo(i) + hist_bucket_width(i) / 2;
	return mid < s->max ? mid : s->max;
}

uint64_t
hist_count_le(const struct hist_snap *s, uint64_t v)
{
	unsigned top = hist_bucket(v);
	uint64_t n = 0;

	for (unsigned i = 0; i <= top; i++)
		n += s->b[i];
	return n;
}
