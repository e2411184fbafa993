/*
 * bench_coder.c - throughput of src/coder on one thread.
 *
 * For 4+2 and 8+3: encode, and decode of the worst case (m data fragments
 * lost), with ISA-L on 1 MiB fragments and the reference on 64 KiB ones
 * (it is a few hundred times slower). Each case repeats until it has run
 * for the target time (argv[1] seconds, default 0.5). Rates are in bytes
 * of user data (k fragments) per second; CPU s/GB is process CPU time per
 * 10^9 bytes of user data. Buffers are touched once before timing.
 *
 * Usage: bench_coder [seconds]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coder/coder.h"
#include "gpucache/gpucache.h"

#define N_MAX (CODER_MAX_K + CODER_MAX_M)

struct bench_case {
	enum coder_impl impl;
	const char *name;
	unsigned k, m;
	size_t len;
};

static const struct bench_case bench_cases[] = {
	{ CODER_ISAL, "isal", 4, 2, 1u << 20 },
	{ CODER_ISAL, "isal", 8, 3, 1u << 20 },
	{ CODER_REF, "ref", 4, 2, 64u << 10 },
	{ CODER_REF, "ref", 8, 3, 64u << 10 },
};

static double
bench_now(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void
bench_free(uint8_t **frags, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		free(frags[i]);
}

static int
bench_alloc(uint8_t **frags, unsigned n, size_t len)
{
	unsigned i;
	size_t b;

	memset(frags, 0, n * sizeof(frags[0]));
	for (i = 0; i < n; i++) {
		frags[i] = malloc(len);
		if (frags[i] == NULL) {
			bench_free(frags, n);
			return -ENOMEM;
		}
		for (b = 0; b < len; b++)
			frags[i][b] = (uint8_t)(b * 131 + i * 17 + (b >> 11));
	}
	return 0;
}

/* One timed loop: decode if lost != NULL, else encode. */
static void
bench_run(const struct coder *c, uint8_t **frags, size_t len,
	  const unsigned *lost, double target, const char *what,
	  const struct bench_case *bc)
{
	double w0, c0, wall, cpu, gb;
	unsigned long iters = 0;
	unsigned k = coder_k(c);
	int rc = 0;

	w0 = bench_now(CLOCK_MONOTONIC);
	c0 = bench_now(CLOCK_PROCESS_CPUTIME_ID);
	do {
		if (lost == NULL)
			coder_encode(c, len, (const uint8_t *const *)frags,
				     &frags[k]);
		else
			rc = coder_decode(c, len, frags, lost, coder_m(c));
		iters++;
		wall = bench_now(CLOCK_MONOTONIC) - w0;
	} while (rc == 0 && wall < target);
	cpu = bench_now(CLOCK_PROCESS_CPUTIME_ID) - c0;
	if (rc < 0) {
		fprintf(stderr, "bench_coder: decode: %s\n", gpc_strerror(rc));
		return;
	}
	gb = (double)iters * (double)len * k * 1e-9;
	printf("%-4s %2u+%-2u %-6s frag %7zu B  %8.3f GB/s  %8.3f CPU s/GB\n",
	       bc->name, bc->k, bc->m, what, len, gb / wall, cpu / gb);
}

static int
bench_one(const struct bench_case *bc, double target)
{
	unsigned lost[CODER_MAX_M], i, n = bc->k + bc->m;
	uint8_t *frags[N_MAX];
	struct coder *c;
	int rc;

	rc = coder_create(bc->impl, bc->k, bc->m, &c);
	if (rc < 0)
		return rc;
	rc = bench_alloc(frags, n, bc->len);
	if (rc < 0)
		goto err_destroy;
	for (i = 0; i < bc->m; i++)
		lost[i] = i;
	bench_run(c, frags, bc->len, NULL, target, "encode", bc);
	bench_run(c, frags, bc->len, lost, target, "decode", bc);
	bench_free(frags, n);
	coder_destroy(c);
	return 0;

err_destroy:
	coder_destroy(c);
	return rc;
}

int
main(int argc, char **argv)
{
	double target = argc > 1 ? strtod(argv[1], NULL) : 0.5;
	unsigned i;
	int rc;

	if (!(target > 0))
		target = 0.5;
	for (i = 0; i < sizeof(bench_cases) / sizeof(bench_cases[0]); i++) {
		rc = bench_one(&bench_cases[i], target);
		if (rc < 0) {
			fprintf(stderr, "bench_coder: %s %u+%u: %s\n",
				bench_cases[i].name, bench_cases[i].k,
				bench_cases[i].m, gpc_strerror(rc));
			return 1;
		}
	}
	return 0;
}
