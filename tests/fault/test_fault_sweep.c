/*
 * test_fault_sweep.c - fail the Nth device I/O, for N = 1, 2, ... through
 * a scripted workload (open with recovery, puts, durable puts, flushes,
 * deletes, gets, close) until a run completes without reaching the Nth
 * I/O. After each run the store is reopened on clean devices: no crash,
 * no leak (under ASan), every block acknowledged durable bit-exact, every
 * other block bit-exact or absent. Swept for 1+0 (any failure loses the
 * device) and 4+2 (the store goes on degraded).
 */
#include "common/log.h"
#include "crashlib.h"

#define MAX_N 20000u

struct geom {
	unsigned ndev, k, m;
};

/* The workload: a first session to have something to recover, then the
 * faulty one. Returns I/Os the faulty session submitted. */
static uint64_t
run_once(struct store_memdisk *md, const struct geom *g, uint64_t n,
	 struct cl_state *cs)
{
	struct store_io *io, *fio;
	struct store *st;
	uint64_t rs = 7, count;

	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_open(io, NULL, &st) == 0);
	for (int i = 0; i < 20; i++)
		cl_step(st, cs, &rs);
	cl_flush(st, cs);
	store_close(st);
	memset(cs->inflight, 0, sizeof(cs->inflight));

	REQUIRE(store_io_mem_open(md, &io) == 0);
	REQUIRE(store_io_fault_open(io, n, &fio) == 0);
	store_io_fault_fail_nth(fio, n, -EIO);
	if (store_open(fio, NULL, &st) < 0) {
		store_io_close(fio);
		return n; /* the failure hit recovery: open refused cleanly */
	}
	for (int i = 0; i < 60; i++)
		cl_step(st, cs, &rs);
	cl_flush(st, cs);
	count = store_io_fault_count(fio);
	store_close(st);
	(void)g;
	return count;
}

static unsigned
sweep(const struct geom *g, uint64_t *runs)
{
	struct store_format_opts fo = { .k = g->k, .m = g->m,
					.chunk_size = 32u << 10 };
	unsigned wrong = 0;

	for (uint64_t n = 1; n < MAX_N; n++) {
		struct store_memdisk *md;
		struct cl_state *cs = calloc(1, sizeof(*cs));
		struct store_io *io;
		struct store *st;
		unsigned present, bad;
		uint64_t count;

		REQUIRE(store_memdisk_create(g->ndev, 4u << 20, &md) == 0);
		REQUIRE(store_io_mem_open(md, &io) == 0);
		REQUIRE(store_format(io, &fo) == 0);
		store_io_close(io);
		count = run_once(md, g, n, cs);
		REQUIRE(store_io_mem_open(md, &io) == 0);
		REQUIRE(store_open(io, NULL, &st) == 0);
		bad = cl_verify(st, cs, &present);
		if (bad)
			fprintf(stderr, "%u+%u fail I/O #%llu: %u wrong\n", g->k,
				g->m, (unsigned long long)n, bad);
		wrong += bad;
		store_abandon(st);
		store_memdisk_destroy(md);
		free(cs);
		*runs = n;
		if (count < n)
			break; /* the Nth I/O never came: the sweep is done */
	}
	return wrong;
}

int
main(void)
{
	static const struct geom geoms[] = { { 1, 1, 0 }, { 6, 4, 2 } };

	log_set_level(LOG_ERR);
	for (unsigned i = 0; i < 2; i++) {
		uint64_t runs = 0;
		unsigned wrong = sweep(&geoms[i], &runs);

		printf("fault sweep %u+%u: %llu runs, %u wrong\n", geoms[i].k,
		       geoms[i].m, (unsigned long long)runs, wrong);
		CHECK_RC(wrong, 0);
		CHECK(runs > 10 && runs < MAX_N - 1);
	}
	return test_summary("test_fault_sweep");
}
