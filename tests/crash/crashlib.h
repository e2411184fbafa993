/*
 * crashlib.h - what the crash and fault campaigns share: a seeded
 * workload against a store whose I/O may fail or crash at any point, the
 * record of what was acknowledged durable, and the check after reopening
 * on clean devices: every durable block bit-exact, every other block tried
 * bit-exact or absent, zero wrong bytes.
 */
#ifndef GPC_TESTS_CRASHLIB_H
#define GPC_TESTS_CRASHLIB_H

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gpucache/gpucache.h"
#include "store/io_fault.h"
#include "store/store.h"
#include "test.h"

#define CL_MAXID 4096u
#define CL_NS 11
#define CL_MAXLEN 40000u

struct cl_state {
	uint8_t tried[CL_MAXID];   /* put attempted at least once */
	uint8_t durable[CL_MAXID]; /* acknowledged durable, not deleted since */
	uint8_t inflight[CL_MAXID]; /* put accepted, durability unknown */
	uint32_t gen[CL_MAXID];    /* bumped by each delete */
	unsigned next_id;
};

struct cl_put {
	struct cl_state *cs;
	unsigned id;
	uint32_t gen;
};

static void
cl_durable_cb(void *arg, int rc)
{
	struct cl_put *p = arg;

	if (rc == 0 && p->gen == p->cs->gen[p->id]) /* not deleted since */
		p->cs->durable[p->id] = 1;
	free(p);
}

/*
 * Flush: every put accepted since the previous flush is durable once it
 * returns 0 (a lost segment is reported to one flush, like fsync).
 */
static void
cl_flush(struct store *st, struct cl_state *cs)
{
	uint8_t snap[CL_MAXID];

	memcpy(snap, cs->inflight, sizeof(snap));
	memset(cs->inflight, 0, sizeof(cs->inflight));
	if (store_flush(st) == 0)
		for (unsigned i = 0; i < CL_MAXID; i++)
			if (snap[i])
				cs->durable[i] = 1;
}

static int
cl_put(struct store *st, struct cl_state *cs, unsigned id, bool durable)
{
	uint8_t key[32], *buf;
	size_t len = test_len(id, CL_MAXLEN);
	struct iovec iov;
	struct cl_put *p = NULL;
	int rc;

	buf = malloc(len);
	test_key(id, key);
	test_fill(id, buf, len);
	iov = (struct iovec){ buf, len };
	cs->tried[id] = 1;
	if (durable) {
		p = malloc(sizeof(*p));
		*p = (struct cl_put){ cs, id, cs->gen[id] };
	}
	do {
		rc = store_put_submit(st, CL_NS, key, &iov, 1,
				      durable ? STORE_PUT_DURABLE : 0,
				      durable ? cl_durable_cb : NULL, p);
		if (rc == -EAGAIN && store_poll(st, 1) < 0)
			break;
	} while (rc == -EAGAIN);
	if (rc < 0)
		free(p);
	else
		cs->inflight[id] = 1;
	free(buf);
	return rc;
}

/* One seeded step of the workload. */
static void
cl_step(struct store *st, struct cl_state *cs, uint64_t *rs)
{
	unsigned what = (unsigned)(test_rand(rs) % 100);
	uint8_t key[32];
	static int trace = -1;

	if (trace < 0)
		trace = getenv("GPC_CRASH_TRACE") != NULL;
	if (trace)
		fprintf(stderr, "step %u next_id %u\n", what, cs->next_id);

	if (what < 70 || cs->next_id == 0) {
		unsigned id = cs->next_id < CL_MAXID - 1 ? cs->next_id++ : 0;

		cl_put(st, cs, id, what < 15);
	} else if (what < 80) {
		cl_flush(st, cs);
	} else if (what < 85) {
		unsigned id = (unsigned)(test_rand(rs) % cs->next_id);

		test_key(id, key);
		if (store_delete(st, CL_NS, key) == 0) {
			cs->durable[id] = cs->inflight[id] = 0;
			cs->gen[id]++;
		}
	} else if (what < 95) {
		unsigned id = (unsigned)(test_rand(rs) % cs->next_id);
		size_t len = test_len(id, CL_MAXLEN);
		uint8_t *want = malloc(len), *got = malloc(len + 64);
		int rc;

		test_key(id, key);
		test_fill(id, want, len);
		rc = store_get(st, CL_NS, key, got, len + 64);
		CHECK(rc == -GPC_ENOTFOUND || rc < 0 ||
		      (rc == (int)len && memcmp(want, got, len) == 0));
		free(want);
		free(got);
	} else {
		store_poll(st, 0);
	}
}

/*
 * Reopen-side check: returns the number of wrong results (durable block
 * missing or any block with wrong bytes) and counts present blocks.
 */
static unsigned
cl_verify(struct store *st, const struct cl_state *cs, unsigned *present)
{
	unsigned bad = 0;

	*present = 0;
	for (unsigned id = 0; id < CL_MAXID; id++) {
		size_t len = test_len(id, CL_MAXLEN);
		uint8_t key[32], *want, *got;
		int rc;

		if (!cs->tried[id])
			continue;
		want = malloc(len);
		got = malloc(len + 64);
		test_key(id, key);
		test_fill(id, want, len);
		rc = store_get(st, CL_NS, key, got, len + 64);
		if (rc == (int)len && memcmp(want, got, len) == 0) {
			(*present)++;
		} else if (rc == -GPC_ENOTFOUND && !cs->durable[id]) {
			/* absent: allowed for a block never made durable */
		} else {
			fprintf(stderr, "block %u: rc %d (%s), durable %d\n",
				id, rc, gpc_strerror(rc), cs->durable[id]);
			bad++;
		}
		free(want);
		free(got);
	}
	return bad;
}

#endif
