/*
 * hist.h - a fixed-size log-linear histogram of nanosecond latencies.
 *
 * Buckets: values below 64 have a bucket each; above, every power of two
 * [2^e, 2^(e+1)) is cut into HIST_SUB equal buckets, so a bucket is at
 * most 1/32 (3.1%) of its lower bound wide and a quantile, reported as
 * its bucket's midpoint, is within 1/64 (1.6%) of the exact one. The top
 * bucket starts near 2^37 ns (137 s) and takes everything above; `max`
 * keeps the largest value exactly. 1056 buckets, 8.5 KiB.
 *
 * Threads: a struct hist has exactly one writer (hist_record, O(1), no
 * locks: relaxed atomic loads and stores, no read-modify-write) and any
 * number of concurrent readers (hist_snapshot). A snapshot is a plain
 * copy: merge snapshots of several writers' histograms, then ask for
 * quantiles. A snapshot taken during writes may lag by a few samples; its
 * count is the sum of its buckets, so quantiles are always consistent.
 */
#ifndef GPC_SERVER_HIST_H
#define GPC_SERVER_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#define HIST_SUB_BITS 5u
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP 37u /* values >= 2^37 ns share the top bucket */
#define HIST_NBUCKETS (HIST_SUB * (HIST_MAX_EXP - HIST_SUB_BITS + 1u))

struct hist {
	_Atomic uint64_t sum, max;
	_Atomic uint64_t b[HIST_NBUCKETS];
};

struct hist_snap {
	uint64_t count, sum, max;
	uint64_t b[HIST_NBUCKETS];
};

/* Zero h; before any writer or reader uses it. */
void hist_init(struct hist *h);
/* Record one value. Only h's single writer may call this. */
void hist_record(struct hist *h, uint64_t ns);
/* Copy h into *out (overwriting it); safe concurrently with the writer. */
void hist_snapshot(const struct hist *h, struct hist_snap *out);
/* Zero a snapshot (the identity of hist_merge). */
void hist_snap_clear(struct hist_snap *s);
/* dst += src, bucket by bucket; max is the larger. */
void hist_merge(struct hist_snap *dst, const struct hist_snap *src);
/*
 * The q-quantile (0 <= q <= 1) of s: the midpoint of the bucket holding
 * the sample of rank ceil(q * count) (at least 1), clamped to max; the
 * top bucket answers max. 0 if s is empty.
 */
uint64_t hist_quantile(const struct hist_snap *s, double q);
/* Samples in buckets up to and including v's bucket: "<= v" to within
 * one bucket (a Prometheus histogram's le count). */
uint64_t hist_count_le(const struct hist_snap *s, uint64_t v);

/* Bucket geometry: index of v, and bucket i's range [lo, lo + width). */
unsigned hist_bucket(uint64_t v);
uint64_t hist_bucket_lo(unsigned i);
uint64_t hist_bucket_width(unsigned i);

#endif
