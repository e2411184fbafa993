/* bench_common.h - what the benchmark programs (bench_net, bench_ucx_rma,
 * gpucache bench) share. */
#ifndef GPC_TOOLS_BENCH_COMMON_H
#define GPC_TOOLS_BENCH_COMMON_H

#include <stdint.h>
#include <stdlib.h>

/* qsort order of uint64_t values (latencies). */
static inline int
bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* "256K", "2M", "1G" or a plain number of bytes. */
static inline size_t
bench_parse_size(const char *s)
{
	char *e;
	double v = strtod(s, &e);

	switch (*e) {
	case 'k': case 'K': v *= 1024; break;
	case 'm': case 'M': v *= 1024 * 1024; break;
	case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
	}
	return (size_t)v;
}

#endif
