/* clock.h - monotonic time and CPU time for latency and cost figures. */
#ifndef GPC_COMMON_CLOCK_H
#define GPC_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t
clock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU time consumed by the calling thread, in nanoseconds. */
static inline uint64_t
clock_thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
