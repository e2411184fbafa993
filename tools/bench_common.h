/* bench_common.h - what the two network benchmark programs share. */
#ifndef GPC_TOOLS_BENCH_COMMON_H
#define GPC_TOOLS_BENCH_COMMON_H

#include <stdlib.h>

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
