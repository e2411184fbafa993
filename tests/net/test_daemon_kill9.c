/*
 * test_daemon_kill9.c - kill -9 of gpucached while several client
 * processes put (some batches with GPC_PUT_DURABLE, some without), then a
 * restart: every block acknowledged durable is back bit-exact, every other
 * block ever submitted reads back bit-exact or misses, and nothing wrong
 * is ever returned (also while running: each client reads back what it
 * wrote). Several cycles, each killing at a different point; a clean
 * SIGTERM (exit 0) at the end.
 *
 * Children (this executable again, "--putter PORT CYCLE INDEX") report on
 * their fd 3 (a pipe), one record per block: submitted, acknowledged,
 * acknowledged durable, or read back wrong.
 *
 * The store is sized so that nothing is evicted in the whole run (each
 * durable batch may seal a segment early), so a miss of a durable block
 * is always a loss.
 *
 * argv[1]: gpucached.
 */
#include "nettest.h"

#define NS 0x6b696c6c39ull
#define NCYC 6
#define NCHILD 3
#define BATCH 16
#define NBATCH 8
#define MAXSEQ (BATCH * NBATCH)
#define MAXLEN (32u << 10)

enum { REC_SUBMIT = 1, REC_ACK = 2, REC_ACK_DURABLE = 3, REC_CONN = 7,
       REC_LOST = 8, REC_WRONG = 9 };

struct rec {
	uint32_t kind;
	uint32_t pad;
	uint64_t id;
};

static uint64_t
blk_id(unsigned cycle, unsigned child, unsigned seq)
{
	return (uint64_t)(cycle + 1) * 1000000 + child * 100000 + seq;
}

static size_t
blk_len(uint64_t id)
{
	return test_len(id, MAXLEN);
}

static void
emit(const struct rec *r, unsigned n)
{
	if (n && write(3, r, n * sizeof(*r)) != (ssize_t)(n * sizeof(*r)))
		_exit(2); /* parent gone */
}

/* ---- the putter (child) ---- */

static int
putter(uint16_t port, unsigned cycle, unsigned idx)
{
	struct gpc_client *c = NULL;
	struct gpc_mr *mr;
	void *mem = NULL;
	uint8_t *pbuf, *gbuf, *want, keys[MAXSEQ][32];
	struct gpc_iov v[BATCH];
	struct gpc_block b[BATCH];
	struct rec r[BATCH];
	bool acked[MAXSEQ] = { false };
	int rc = -1;

	alarm(40);
	for (unsigned t = 0; t < 3 && rc < 0; t++) {
		uint64_t t0 = nt_now_ms();

		rc = nt_connect_port(port, "alice", NT_ALICE_SECRET, &c);
		if (rc < 0) {
			fprintf(stderr, "putter %u/%u: connect: %s after %llu "
				"ms\n", cycle, idx, gpc_strerror(rc),
				(unsigned long long)(nt_now_ms() - t0));
			nt_sleep_ms(100);
		}
	}
	if (rc < 0) {
		fprintf(stderr, "putter %u/%u: connect: %s\n", cycle, idx,
			gpc_strerror(rc));
		return 1;
	}
	want = malloc(MAXLEN);
	if (want == NULL || gpc_mem_alloc(c, 2 * BATCH * MAXLEN, &mem, &mr))
		return 1;
	r[0] = (struct rec){ REC_CONN, 0, blk_id(cycle, idx, 0) };
	emit(r, 1);
	/* all putters start together, when the parent says so */
	if (read(0, r, 1) != 1)
		return 1;
	pbuf = mem;
	gbuf = pbuf + BATCH * MAXLEN;
	for (unsigned bn = 0; bn < NBATCH; bn++) {
		bool durable = bn % 2 == 0;
		unsigned n = 0;

		for (unsigned j = 0; j < BATCH; j++) {
			unsigned seq = bn * BATCH + j;
			uint64_t id = blk_id(cycle, idx, seq);
			size_t len = blk_len(id);

			test_key(id, keys[seq]);
			test_fill(id, pbuf + j * MAXLEN, len);
			v[j] = (struct gpc_iov){ pbuf + j * MAXLEN, len, mr };
			b[j] = (struct gpc_block){ keys[seq], &v[j], 1, 1 };
			r[j] = (struct rec){ REC_SUBMIT, 0, id };
		}
		emit(r, BATCH);
		rc = gpc_put(c, NS, b, BATCH, durable ? GPC_PUT_DURABLE : 0);
		for (unsigned j = 0; j < BATCH; j++)
			if (b[j].status == 0) {
				acked[bn * BATCH + j] = true;
				r[n++] = (struct rec){
					durable ? REC_ACK_DURABLE : REC_ACK, 0,
					blk_id(cycle, idx, bn * BATCH + j) };
			}
		emit(r, n);
		if (rc < 0)
			break; /* the daemon is gone */
		/* read the previous batch back: exact, or the daemon died */
		if (bn == 0)
			continue;
		for (unsigned j = 0; j < BATCH; j++) {
			unsigned seq = (bn - 1) * BATCH + j;

			v[j] = (struct gpc_iov){ gbuf + j * MAXLEN, MAXLEN, mr };
			b[j] = (struct gpc_block){ keys[seq], &v[j], 1, 1 };
		}
		memset(gbuf, 0, BATCH * MAXLEN);
		rc = gpc_get(c, NS, b, BATCH);
		n = 0;
		for (unsigned j = 0; j < BATCH; j++) {
			unsigned seq = (bn - 1) * BATCH + j;
			uint64_t id = blk_id(cycle, idx, seq);
			size_t len = blk_len(id);

			if (b[j].status == -GPC_ENOTFOUND && acked[seq] &&
			    rc == 0) {
				r[n++] = (struct rec){ REC_LOST, 0, id };
				continue;
			}
			if (b[j].status < 0)
				continue; /* daemon gone */
			test_fill(id, want, len);
			if (b[j].status != (int)len ||
			    memcmp(gbuf + j * MAXLEN, want, len) != 0)
				r[n++] = (struct rec){ REC_WRONG, 0, id };
		}
		emit(r, n);
		if (rc < 0)
			break;
	}
	gpc_close(c);
	free(want);
	return 0;
}

/* ---- the parent ---- */

/* What the parent knows of every block: 0 never submitted, else REC_*. */
static uint8_t state[NCYC][NCHILD][MAXSEQ];
static unsigned wrong_seen, lost_seen;

/*
 * A putter's end: it must exit 0, whatever the daemon did. (With protocol
 * v1, UCX aborted a client applying the daemon's emulated RMA when the
 * connection died; v2 has no RMA and no such exception.)
 */
static void
putter_end(unsigned i, int st, const char *errfile)
{
	char buf[8192], what[32];
	size_t n = 0;
	FILE *f = fopen(errfile, "r");

	if (f != NULL) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	if (n > 0)
		fprintf(stderr, "--- putter %u stderr:\n%s---\n", i, buf);
	snprintf(what, sizeof(what), "putter %u", i);
	CHECK(nt_exit0(st, what));
}

static void
record(const struct rec *r)
{
	uint64_t id = r->id, cyc = id / 1000000 - 1, ch = id % 1000000 / 100000,
		 seq = id % 100000;

	if (cyc >= NCYC || ch >= NCHILD || seq >= MAXSEQ) {
		fprintf(stderr, "bad record id %llu\n", (unsigned long long)id);
		wrong_seen++;
		return;
	}
	switch (r->kind) {
	case REC_CONN:
		break;
	case REC_SUBMIT: case REC_ACK: case REC_ACK_DURABLE:
		if (state[cyc][ch][seq] < r->kind)
			state[cyc][ch][seq] = (uint8_t)r->kind;
		break;
	case REC_LOST:
		fprintf(stderr, "LOST while running: id %llu\n",
			(unsigned long long)id);
		lost_seen++;
		break;
	default:
		fprintf(stderr, "WRONG BYTES while running: id %llu\n",
			(unsigned long long)id);
		wrong_seen++;
		break;
	}
}

struct vstat {
	unsigned durable, durable_ok, other, other_ok, other_miss;
	unsigned wrong, lost, errors;
};

/*
 * GET every block ever submitted (cycles < ncyc) and judge it; in cycle
 * strict (if < NCYC) every acknowledged block counts as durable.
 */
static void
verify_all(unsigned ncyc, unsigned strict, struct vstat *vs)
{
	struct gpc_client *c = nt_connect("alice");
	struct gpc_mr *mr;
	void *mem = NULL;
	uint8_t *buf, *want = malloc(MAXLEN), keys[64][32];
	struct gpc_iov v[64];
	struct gpc_block b[64];
	uint64_t ids[64];
	unsigned n = 0;

	memset(vs, 0, sizeof(*vs));
	REQUIRE(want != NULL);
	REQUIRE(gpc_mem_alloc(c, 64 * MAXLEN, &mem, &mr) == 0);
	buf = mem;
	for (unsigned cy = 0; cy < ncyc; cy++)
		for (unsigned ch = 0; ch < NCHILD; ch++)
			for (unsigned sq = 0; sq <= MAXSEQ; sq++) {
				bool last = cy == ncyc - 1 && ch == NCHILD - 1 &&
					    sq == MAXSEQ;

				if (sq < MAXSEQ && state[cy][ch][sq] != 0) {
					ids[n] = blk_id(cy, ch, sq);
					test_key(ids[n], keys[n]);
					v[n] = (struct gpc_iov){ buf + n * MAXLEN,
								 MAXLEN, mr };
					b[n] = (struct gpc_block){ keys[n],
								   &v[n], 1, 1 };
					n++;
				}
				if (n < 64 && !(last && n > 0))
					continue;
				memset(buf, 0, 64 * MAXLEN);
				CHECK_RC(gpc_get(c, NS, b, n), 0);
				for (unsigned i = 0; i < n; i++) {
					uint64_t id = ids[i];
					unsigned st = state[id / 1000000 - 1]
							   [id % 1000000 / 100000]
							   [id % 100000];
					size_t len = blk_len(id);
					bool dur = st == REC_ACK_DURABLE ||
						   (st == REC_ACK &&
						    id / 1000000 - 1 == strict);

					if (dur)
						vs->durable++;
					else
						vs->other++;
					if (b[i].status == -GPC_ENOTFOUND) {
						if (dur) {
							fprintf(stderr, "LOST durable id %llu\n",
								(unsigned long long)id);
							vs->lost++;
						} else {
							vs->other_miss++;
						}
						continue;
					}
					if (b[i].status < 0) {
						fprintf(stderr, "id %llu: %s\n",
							(unsigned long long)id,
							gpc_strerror(b[i].status));
						vs->errors++;
						continue;
					}
					test_fill(id, want, len);
					if (b[i].status != (int)len ||
					    memcmp(buf + i * MAXLEN, want, len)) {
						fprintf(stderr, "WRONG id %llu: status %d, "
							"len %zu\n",
							(unsigned long long)id,
							b[i].status, len);
						vs->wrong++;
						continue;
					}
					if (dur)
						vs->durable_ok++;
					else
						vs->other_ok++;
				}
				n = 0;
			}
	gpc_mem_deregister(c, mr);
	gpc_close(c);
	free(want);
}

static void
judge(const char *when, unsigned ncyc, unsigned strict)
{
	struct vstat vs;
	uint64_t t0 = nt_now_ms();

	verify_all(ncyc, strict, &vs);
	printf("%s: durable %u/%u back; other %u: %u back, %u missing; "
	       "%u wrong, %u errors (%llu ms)\n", when, vs.durable_ok,
	       vs.durable, vs.other, vs.other_ok, vs.other_miss, vs.wrong,
	       vs.errors, (unsigned long long)(nt_now_ms() - t0));
	CHECK_RC(vs.lost, 0);
	CHECK_RC(vs.wrong, 0);
	CHECK_RC(vs.errors, 0);
	CHECK_RC(vs.durable_ok, vs.durable);
}

/*
 * One cycle: children put; once `kill_at` blocks are acked, kill -9 the
 * daemon, or (term) SIGTERM it, which must then exit 0.
 */
static void
run_cycle(unsigned cycle, unsigned kill_at, bool term)
{
	char port[16], cyc[8], idx[NCHILD][8], errf[NCHILD][300];
	int fd[NCHILD], go[NCHILD];
	uint8_t acc[NCHILD][sizeof(struct rec) * 64];
	size_t have[NCHILD] = { 0 };
	bool open_[NCHILD];
	unsigned acks = 0, durable = 0, open_n = NCHILD, conns = 0;
	uint64_t t0 = nt_now_ms(), tkill = 0;
	bool killed = false;

	snprintf(port, sizeof(port), "%u", nt_port);
	snprintf(cyc, sizeof(cyc), "%u", cycle);
	for (unsigned i = 0; i < NCHILD; i++) {
		const char *args[] = { "--putter", port, cyc, idx[i], NULL };

		snprintf(idx[i], sizeof(idx[i]), "%u", i);
		snprintf(errf[i], sizeof(errf[i]), "%s/putter%u.%u.err", nt_dir,
			 cycle, i);
		nt_spawn_io(i, args, &fd[i], &go[i], errf[i]);
		open_[i] = true;
	}
	while (open_n > 0 && nt_now_ms() - t0 < 30000) {
		struct pollfd pf[NCHILD];

		for (unsigned i = 0; i < NCHILD; i++)
			pf[i] = (struct pollfd){ .fd = open_[i] ? fd[i] : -1,
						 .events = POLLIN };
		if (poll(pf, NCHILD, 10) < 0 && errno != EINTR)
			break;
		for (unsigned i = 0; i < NCHILD; i++) {
			ssize_t got;

			if (!open_[i] || !(pf[i].revents & (POLLIN | POLLHUP)))
				continue;
			got = read(fd[i], acc[i] + have[i],
				   sizeof(acc[i]) - have[i]);
			if (got <= 0) {
				open_[i] = false;
				open_n--;
				close(fd[i]);
				continue;
			}
			have[i] += (size_t)got;
			while (have[i] >= sizeof(struct rec)) {
				struct rec r;

				memcpy(&r, acc[i], sizeof(r));
				memmove(acc[i], acc[i] + sizeof(r),
					have[i] - sizeof(r));
				have[i] -= sizeof(r);
				record(&r);
				if (r.kind == REC_CONN && ++conns == NCHILD) {
					for (unsigned g = 0; g < NCHILD; g++)
						if (write(go[g], "g", 1) != 1)
							fprintf(stderr, "go %u: %s\n",
								g, strerror(errno));
					t0 = nt_now_ms();
				}
				if (!killed && (r.kind == REC_ACK ||
						r.kind == REC_ACK_DURABLE)) {
					acks++;
					durable += r.kind == REC_ACK_DURABLE;
				}
			}
		}
		if (!killed && ((acks >= kill_at && conns == NCHILD) ||
				open_n == 0 ||
				nt_now_ms() - t0 > 10000)) {
			if (term)
				kill(nt_daemon, SIGTERM);
			else
				nt_daemon_kill9();
			killed = true;
			tkill = nt_now_ms();
		}
	}
	if (!killed)
		nt_daemon_kill9();
	if (term)
		CHECK(nt_exit0(nt_daemon_wait(20000),
			       "gpucached after SIGTERM under load"));
	for (unsigned i = 0; i < NCHILD; i++) {
		putter_end(i, nt_child_wait(i, 15000), errf[i]);
		if (open_[i])
			close(fd[i]);
		close(go[i]);
	}
	printf("cycle %u: %s after %u acks (%u durable) at %llu ms; "
	       "clients gone %llu ms later\n", cycle,
	       term ? "SIGTERM" : "kill -9", acks, durable,
	       (unsigned long long)(tkill - t0),
	       (unsigned long long)(nt_now_ms() - tkill));
}

int
main(int argc, char **argv)
{
	/* the last cycle ends with SIGTERM instead of kill -9 */
	static const unsigned kill_at[NCYC] = { 40, 150, 3, 260, 90, 120 };
	uint64_t t0;

	if (argc >= 6 && strcmp(argv[2], "--putter") == 0)
		return putter((uint16_t)atoi(argv[3]), (unsigned)atoi(argv[4]),
			      (unsigned)atoi(argv[5]));
	/* 112 segments of 2 MiB per shard: nothing is ever evicted here */
	nt_dev_mb = 224;
	nt_chunk_mb = 1;
	nt_setup("net_kill9", argc, argv, 100);
	t0 = nt_now_ms();
	nt_daemon_start();
	for (unsigned cy = 0; cy < NCYC; cy++) {
		bool term = cy == NCYC - 1;
		char when[64];

		run_cycle(cy, kill_at[cy], term);
		nt_daemon_restart();
		snprintf(when, sizeof(when), "after %s %u",
			 term ? "SIGTERM under load" : "kill -9", cy + 1);
		/* after SIGTERM every acknowledged block must be back */
		judge(when, cy + 1, term ? cy : NCYC);
	}
	CHECK_RC(wrong_seen, 0);
	CHECK_RC(lost_seen, 0);
	CHECK(nt_exit0(nt_daemon_stop(20000), "gpucached after SIGTERM"));
	printf("total %llu ms\n", (unsigned long long)(nt_now_ms() - t0));
	return test_summary("net_daemon_kill9");
}
