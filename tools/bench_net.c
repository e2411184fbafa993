/*
 * bench_net.c - a load generator for a running gpucached, through
 * libgpucache only (scripts/bench-net.sh drives it; make bench-net).
 *
 * --threads N threads, each with its own gpc_client (default) or all on
 * one shared client (--shared-client). Each thread allocates its buffers
 * with gpc_mem_alloc (UCX-allocated memory: over shared memory the
 * server's RMA on it is a true one-sided copy; ordinary registered memory
 * would be emulated over messages, see /work/shared/MACHINE-NOTES.md),
 * --depth slots of --batch blocks of --size bytes, and keeps --depth
 * batches in flight with gpc_put_submit / gpc_get_submit, polling them
 * with gpc_test and, when a pass ended none, waiting for one with
 * gpc_wait_any, which sleeps on the transport's event fd after
 * libgpucache's spin (--wait spin: poll only, never sleep, as before
 * libgpucache 0.3). Blocks answered -GPC_EBUSY are sent again (counted).
 * Besides the server's CPU it reports its own (cli_cpu_s_per_gb).
 *
 * Keys: --keys distinct keys, thread t owns keys i = t (mod N) and cycles
 * through them. Payload: random bytes (incompressible, so zram does not
 * flatter the flash case; --pattern: a byte pattern zram compresses),
 * with the key index stamped into the first and last 8 bytes of every
 * block; every GET checks both stamps and the length.
 *
 * --ops is a sequence run on the same connections: put and get are timed
 * (--seconds after a short warm-up), fill writes every key once, untimed
 * (what a following get needs), seal sends one DURABLE put of a spare key,
 * which makes the server seal its open segment, so a fill right after it
 * starts a fresh DRAM segment. --rate R (requests per second, all threads)
 * paces issue for a latency point below peak; a request's latency then
 * counts from its scheduled time, so queueing behind a late one shows.
 * --rate-pct P measures the peak first (a closed-loop phase, reported)
 * and then paces at P% of it, so that the load is a share of what the
 * machine gives at that moment, not of a peak taken minutes before.
 *
 * --phase-hook CMD runs `CMD start OP` as a timed phase begins and
 * `CMD stop OP` as it ends, and waits for each (bench-net's PROFILE=1
 * attaches perf to the daemon for exactly the timed phase this way).
 *
 * Per timed op one line: GB/s, requests, p50/p99/p999 per request (a
 * batch), retries, errors, wrong bytes, and with --server-pid the
 * server's CPU seconds per GB (utime+stime from /proc).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpucache/gpucache.h"
#include "bench_common.h"

#define MAX_DEPTH 64u
#define MAX_BATCH 64u
#define STAMP_X 0xa5c3f00d12345678ull

struct opts {
	const char *url, *tenant, *secret, *ops, *hook;
	size_t size;
	unsigned threads, depth, batch;
	uint64_t keys;
	double seconds, rate;
	double rate_pct; /* --rate-pct: pace at this share of the peak */
	bool shared, pattern;
	bool spin; /* --wait spin: poll gpc_test without end (before 0.3) */
	uint64_t spin_us; /* --spin-us: the clients' spin_us (0: default) */
	int srv_pid;
};

static struct opts o = { .url = "gpc://127.0.0.1:7070", .tenant = "default",
			 .ops = "put,fill,get", .size = 256 << 10,
			 .threads = 1, .depth = 8, .batch = 1, .keys = 1024,
			 .seconds = 2.0 };

enum op { OP_PUT, OP_GET, OP_FILL, OP_SEAL, OP_STOP };

struct slot {
	struct gpc_req *req;
	struct gpc_block blk[MAX_BATCH];
	struct gpc_iov iov[MAX_BATCH];
	uint8_t key[MAX_BATCH][GPC_KEY_LEN];
	uint64_t kidx[MAX_BATCH];
	uint64_t t0;
	bool busy;
	/* a retry: the blocks answered BUSY (rblk[j] is blk[ridx[j]]) */
	struct gpc_block rblk[MAX_BATCH];
	unsigned ridx[MAX_BATCH], nr;
};

struct thr {
	pthread_t th;
	unsigned idx;
	struct gpc_client *c;
	struct gpc_mr *mr;
	uint8_t *mem;
	uint64_t next_key;      /* position in this thread's key cycle */
	uint64_t nkeys;         /* keys this thread owns */
	struct slot slots[MAX_DEPTH];
	uint64_t *lat;
	size_t nlat, cap;
	uint64_t bytes, busy, errors, wrong;
	int fatal;
};

static struct thr *thr;
static struct gpc_client *shared_c;
static atomic_int phase; /* 0 warm-up, 1 timed, 2 drain */
static pthread_barrier_t bar;
static enum op cur_op;
static uint64_t ns_id;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t
mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Key i: a spread first word (it picks the shard), then i itself. */
static void
make_key(uint64_t i, uint8_t *k)
{
	uint64_t h = mix64(i);

	memset(k, 0, GPC_KEY_LEN);
	memcpy(k, &h, 8);
	memcpy(k + 8, &i, 8);
	k[31] = 0xb7;
}

static void
stamp(uint8_t *p, uint64_t i)
{
	uint64_t x = i ^ STAMP_X;

	memcpy(p, &i, 8);
	memcpy(p + o.size - 8, &x, 8);
}

static bool
stamp_ok(const uint8_t *p, uint64_t i)
{
	uint64_t a, b;

	memcpy(&a, p, 8);
	memcpy(&b, p + o.size - 8, 8);
	return a == i && b == (i ^ STAMP_X);
}

static struct gpc_client *
conn(struct thr *t)
{
	return t->c;
}

/* A client of the options' url, tenant, secret and wait mode. */
static int
connect_client(struct gpc_client **out)
{
	struct gpc_connect_opts co = { .struct_size = sizeof(co),
				       .tenant = o.tenant, .secret = o.secret,
				       .secret_len = strlen(o.secret),
				       .spin_us = o.spin ? GPC_SPIN_ALWAYS
							 : o.spin_us };
	int rc = gpc_connect(o.url, &co, out);

	if (rc < 0)
		fprintf(stderr, "bench_net: connect %s: %s\n", o.url,
			gpc_strerror(rc));
	return rc;
}

static int
thr_setup(struct thr *t)
{
	size_t len = (size_t)o.depth * o.batch * o.size;
	uint64_t s = 0x243f6a8885a308d3ull + t->idx;
	int rc;

	t->c = shared_c;
	if (t->c == NULL) {
		rc = connect_client(&t->c);
		if (rc < 0)
			return rc;
	}
	rc = gpc_mem_alloc(conn(t), len, (void **)&t->mem, &t->mr);
	if (rc < 0) {
		fprintf(stderr, "bench_net: gpc_mem_alloc: %s\n",
			gpc_strerror(rc));
		return rc;
	}
	for (size_t i = 0; o.pattern && i < len; i++)
		t->mem[i] = (uint8_t)(i * 131 + 7); /* compresses well */
	for (size_t i = 0; !o.pattern && i + 8 <= len; i += 8) { /* xorshift */
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		memcpy(t->mem + i, &s, 8);
	}
	t->nkeys = o.keys / o.threads + (t->idx < o.keys % o.threads);
	for (unsigned d = 0; d < o.depth; d++)
		for (unsigned b = 0; b < o.batch; b++) {
			struct slot *sl = &t->slots[d];

			sl->iov[b] = (struct gpc_iov){
				.addr = t->mem + ((size_t)d * o.batch + b) * o.size,
				.len = o.size, .mr = t->mr };
			sl->blk[b] = (struct gpc_block){ .key = sl->key[b],
							 .iov = &sl->iov[b],
							 .iovcnt = 1 };
		}
	return 0;
}

/* Send the slot's blocks, or (sl->nr > 0) only those answered BUSY. */
static int
slot_submit(struct thr *t, struct slot *sl, enum op op)
{
	struct gpc_block *b = sl->nr > 0 ? sl->rblk : sl->blk;
	unsigned n = sl->nr > 0 ? sl->nr : o.batch;
	int rc = op == OP_GET
			 ? gpc_get_submit(conn(t), ns_id, b, n, &sl->req)
			 : gpc_put_submit(conn(t), ns_id, b, n,
					  op == OP_SEAL ? GPC_PUT_DURABLE : 0,
					  &sl->req);

	if (rc < 0) {
		fprintf(stderr, "bench_net: submit: %s\n", gpc_strerror(rc));
		t->fatal = rc;
		return rc;
	}
	sl->busy = true;
	return 0;
}

/* Fill a slot with the thread's next keys and send it. */
static int
slot_issue(struct thr *t, struct slot *sl, enum op op, uint64_t t0)
{
	for (unsigned b = 0; b < o.batch; b++) {
		uint64_t i = t->idx + o.threads * (t->next_key++ % t->nkeys);

		if (op == OP_SEAL)
			i = o.keys + t->idx; /* a spare key, outside the set */
		sl->kidx[b] = i;
		make_key(i, sl->key[b]);
		if (op != OP_GET)
			stamp((uint8_t *)sl->iov[b].addr, i);
	}
	sl->t0 = t0;
	return slot_submit(t, sl, op);
}

static void
lat_add(struct thr *t, uint64_t v)
{
	if (t->nlat == t->cap) {
		uint64_t *n = realloc(t->lat, (t->cap ? 2 * t->cap : 65536) *
					      sizeof(*t->lat));
		if (n == NULL)
			return;
		t->lat = n;
		t->cap = t->cap ? 2 * t->cap : 65536;
	}
	t->lat[t->nlat++] = v;
}

/* A finished request: 1 if it went out again (retry of busy blocks). */
static int
slot_done(struct thr *t, struct slot *sl, enum op op, bool timed)
{
	int rc = gpc_wait(conn(t), sl->req);
	bool busy = false;

	gpc_req_free(sl->req);
	sl->req = NULL;
	sl->busy = false;
	for (unsigned j = 0; j < sl->nr; j++) /* a retry's statuses */
		sl->blk[sl->ridx[j]].status = sl->rblk[j].status;
	sl->nr = 0;
	for (unsigned b = 0; b < o.batch; b++) {
		int st = sl->blk[b].status;

		if (st == -GPC_EBUSY) {
			busy = true;
		} else if (rc < 0 || st < 0 ||
			   (op == OP_GET && (size_t)st != o.size)) {
			t->errors++;
			if (t->errors <= 3)
				fprintf(stderr, "bench_net: key %" PRIu64 ": %s\n",
					sl->kidx[b],
					gpc_strerror(rc < 0 ? rc : st < 0 ? st : -EIO));
		} else if (op == OP_GET &&
			   !stamp_ok(sl->iov[b].addr, sl->kidx[b])) {
			t->wrong++;
		}
	}
	if (busy) { /* only the busy blocks go again (the library's rule:
		     * gpc_*_submit sends every block it is given) */
		for (unsigned b = 0; b < o.batch; b++)
			if (sl->blk[b].status == -GPC_EBUSY) {
				sl->ridx[sl->nr] = b;
				sl->rblk[sl->nr++] = sl->blk[b];
			}
		t->busy++;
		return slot_submit(t, sl, op) == 0;
	}
	if (timed) {
		lat_add(t, now_ns() - sl->t0);
		t->bytes += (uint64_t)o.batch * o.size;
	}
	return 0;
}

/*
 * Reap finished requests; returns how many ended (retries stay in
 * flight). gpc_test makes progress on every call, and a progress round
 * costs an epoll_wait when tcp is among the transports, so one round per
 * pass: the first busy slot is tested, the others only looked at by
 * gpc_test once something has completed (answers come roughly in order).
 * A pass that ends nothing then waits (gpc_wait_any, at most wait_us)
 * for one of the busy slots, as an engine's thread would, unless --wait
 * spin: then the caller comes straight back.
 */
static unsigned
poll_slots(struct thr *t, enum op op, bool timed, unsigned wait_us)
{
	struct gpc_req *busy[MAX_DEPTH];
	unsigned ended = 0, nbusy = 0, slot[MAX_DEPTH];
	bool progressed = false;
	int i;

	for (unsigned d = 0; d < o.depth; d++) {
		struct slot *sl = &t->slots[d];

		if (!sl->busy)
			continue;
		if (progressed && ended == 0)
			break;
		progressed = true;
		if (gpc_test(conn(t), sl->req) != 1)
			continue;
		if (!slot_done(t, sl, op, timed))
			ended++;
	}
	if (ended != 0 || o.spin || wait_us == 0)
		return ended;
	for (unsigned d = 0; d < o.depth; d++)
		if (t->slots[d].busy) {
			slot[nbusy] = d;
			busy[nbusy++] = t->slots[d].req;
		}
	/* answers may come out of order (two shards, flash): reap the one
	 * that ended, wherever it is, or the next pass spins on the first */
	if (nbusy != 0 &&
	    (i = gpc_wait_any(conn(t), busy, nbusy, wait_us)) >= 0 &&
	    !slot_done(t, &t->slots[slot[i]], op, timed))
		ended++;
	return ended;
}

/* How long a thread waits for an answer at most before it looks at the
 * phase again (and at --rate's clock). */
#define WAIT_MAX_US 20000u

/* Timed put/get: closed loop, or paced with --rate. */
static void
run_timed(struct thr *t, enum op op)
{
	uint64_t gap = o.rate > 0 ? (uint64_t)(1e9 * o.threads / o.rate) : 0;
	uint64_t next = now_ns();
	unsigned inflight = 0, wait_us;

	for (;;) {
		int ph = atomic_load_explicit(&phase, memory_order_acquire);

		for (unsigned d = 0; d < o.depth && ph < 2 && !t->fatal; d++) {
			struct slot *sl = &t->slots[d];
			uint64_t now;

			if (sl->busy)
				continue;
			now = gap ? now_ns() : 0;
			if (gap && now < next)
				break;
			if (slot_issue(t, sl, op, gap ? next : now_ns()) == 0)
				inflight++;
			next += gap;
		}
		if (inflight == 0 && (ph == 2 || t->fatal))
			break;
		wait_us = WAIT_MAX_US;
		if (gap) {
			uint64_t now = now_ns();

			wait_us = next <= now ? 0
				  : next - now < WAIT_MAX_US * 1000ull
				  ? (unsigned)((next - now) / 1000u)
				  : WAIT_MAX_US;
		}
		inflight -= poll_slots(t, op, ph == 1, wait_us);
	}
}

/* Untimed: every key of this thread once (fill), or one durable put. */
static void
run_once(struct thr *t, enum op op)
{
	uint64_t left = op == OP_SEAL ? 1 : (t->nkeys + o.batch - 1) / o.batch;
	unsigned inflight = 0;

	t->next_key = 0;
	while ((left > 0 || inflight > 0) && !t->fatal) {
		for (unsigned d = 0; d < o.depth && left > 0; d++) {
			if (t->slots[d].busy)
				continue;
			if (slot_issue(t, &t->slots[d], op, now_ns()) == 0)
				inflight++;
			left--;
		}
		inflight -= poll_slots(t, op, false, WAIT_MAX_US);
	}
	t->next_key = 0;
}

static void *
thr_main(void *arg)
{
	struct thr *t = arg;

	/* sleeps end on time (the default slack is 50 us), which --rate's
	 * latencies, counted from the scheduled time, would show */
	(void)prctl(PR_SET_TIMERSLACK, 1ul, 0ul, 0ul, 0ul);
	t->fatal = thr_setup(t);
	pthread_barrier_wait(&bar); /* set up */
	for (;;) {
		pthread_barrier_wait(&bar); /* op chosen */
		if (cur_op == OP_STOP)
			break;
		if (!t->fatal && (cur_op == OP_PUT || cur_op == OP_GET))
			run_timed(t, cur_op);
		else if (!t->fatal && (cur_op == OP_FILL ||
				       (cur_op == OP_SEAL && t->idx == 0)))
			run_once(t, cur_op);
		pthread_barrier_wait(&bar); /* op done */
	}
	return NULL;
}

static double
proc_cpu_s(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		   &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void
report(const char *name, double dt, double cpu, double cli_cpu)
{
	uint64_t bytes = 0, n = 0, busy = 0, err = 0, wrong = 0, *all;
	size_t k = 0;

	for (unsigned i = 0; i < o.threads; i++) {
		bytes += thr[i].bytes;
		n += thr[i].nlat;
		busy += thr[i].busy;
		err += thr[i].errors;
		wrong += thr[i].wrong;
	}
	all = malloc((n ? n : 1) * sizeof(*all));
	for (unsigned i = 0; i < o.threads; i++) {
		memcpy(all + k, thr[i].lat, thr[i].nlat * sizeof(*all));
		k += thr[i].nlat;
		thr[i].nlat = thr[i].bytes = thr[i].busy = 0;
		thr[i].errors = thr[i].wrong = 0;
	}
	qsort(all, n, sizeof(*all), bench_cmp_u64);
#define Q(q) (n ? (double)all[(size_t)((double)(n - 1) * (q))] / 1000.0 : 0.0)
	printf("gpc op=%s size=%zu threads=%u depth=%u batch=%u client=%s "
	       "rate=%.0f gbps=%.3f reqs=%" PRIu64 " p50_us=%.1f p99_us=%.1f "
	       "p999_us=%.1f busy=%" PRIu64 " errors=%" PRIu64 " wrong=%" PRIu64
	       " srv_cpu_s=%.3f bytes=%" PRIu64 " srv_cpu_s_per_gb=%.4f"
	       " wait=%s cli_cpu_s=%.3f cli_cpu_s_per_gb=%.4f\n",
	       name, o.size, o.threads, o.depth, o.batch,
	       o.shared ? "shared" : "per-thread", o.rate,
	       (double)bytes / dt / 1e9, n, Q(0.5), Q(0.99), Q(0.999), busy, err,
	       wrong, cpu, bytes, bytes ? cpu / ((double)bytes / 1e9) : 0.0,
	       o.spin ? "spin" : "sleep", cli_cpu,
	       bytes ? cli_cpu / ((double)bytes / 1e9) : 0.0);
#undef Q
	fflush(stdout);
	free(all);
}

static void
usage(void)
{
	fprintf(stderr,
"usage: bench_net --secret S [--url gpc://H:P] [--tenant T] [--size S]\n"
"       [--threads N] [--depth D] [--batch B] [--keys K] [--seconds T]\n"
"       [--ops put,fill,get,seal] [--rate REQ_PER_S | --rate-pct PCT]\n"
"       [--shared-client]\n"
"       [--server-pid PID] [--pattern] [--phase-hook CMD]\n"
"       [--wait sleep|spin] [--spin-us US]\n");
	exit(2);
}

static void
parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "url", 1, NULL, 'u' }, { "tenant", 1, NULL, 'n' },
		{ "secret", 1, NULL, 'S' }, { "size", 1, NULL, 's' },
		{ "threads", 1, NULL, 't' }, { "depth", 1, NULL, 'd' },
		{ "batch", 1, NULL, 'b' }, { "keys", 1, NULL, 'k' },
		{ "seconds", 1, NULL, 'T' }, { "ops", 1, NULL, 'o' },
		{ "rate", 1, NULL, 'r' }, { "rate-pct", 1, NULL, 'R' },
		{ "shared-client", 0, NULL, 'C' },
		{ "server-pid", 1, NULL, 'P' }, { "pattern", 0, NULL, 'X' },
		{ "phase-hook", 1, NULL, 'H' }, { "wait", 1, NULL, 'W' },
		{ "spin-us", 1, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'u': o.url = optarg; break;
		case 'n': o.tenant = optarg; break;
		case 'S': o.secret = optarg; break;
		case 's': o.size = bench_parse_size(optarg); break;
		case 't': o.threads = (unsigned)atoi(optarg); break;
		case 'd': o.depth = (unsigned)atoi(optarg); break;
		case 'b': o.batch = (unsigned)atoi(optarg); break;
		case 'k': o.keys = strtoull(optarg, NULL, 0); break;
		case 'T': o.seconds = atof(optarg); break;
		case 'o': o.ops = optarg; break;
		case 'r': o.rate = atof(optarg); break;
		case 'U': o.spin_us = strtoull(optarg, NULL, 0); break;
		case 'W':
			if (strcmp(optarg, "spin") != 0 &&
			    strcmp(optarg, "sleep") != 0)
				usage();
			o.spin = strcmp(optarg, "spin") == 0;
			break;
		case 'R': o.rate_pct = atof(optarg); break;
		case 'C': o.shared = true; break;
		case 'P': o.srv_pid = atoi(optarg); break;
		case 'X': o.pattern = true; break;
		case 'H': o.hook = optarg; break;
		default: usage();
		}
	}
	if (o.secret == NULL || o.size < 16 || o.threads == 0 ||
	    o.depth == 0 || o.depth > MAX_DEPTH || o.batch == 0 ||
	    o.batch > MAX_BATCH || o.keys < o.threads ||
	    !(o.rate_pct >= 0 && o.rate_pct <= 100))
		usage();
}

/* --phase-hook: run `hook what op` and wait for it. */
static void
phase_hook(const char *what, const char *op)
{
	pid_t pid;

	if (o.hook == NULL)
		return;
	pid = fork();
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", "exec $0 \"$1\" \"$2\"", o.hook,
		      what, op, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

/* One timed put or get phase, reported; returns its requests per second. */
static double
timed_phase(const char *name)
{
	double cpu0, cli0, t0, dt;
	uint64_t n = 0;

	cur_op = name[0] == 'p' ? OP_PUT : OP_GET;
	atomic_store(&phase, 0);
	pthread_barrier_wait(&bar);
	usleep(300000); /* warm-up */
	phase_hook("start", name);
	cpu0 = proc_cpu_s(o.srv_pid);
	cli0 = proc_cpu_s(getpid());
	t0 = (double)now_ns();
	atomic_store(&phase, 1);
	usleep((useconds_t)(o.seconds * 1e6));
	atomic_store(&phase, 2);
	dt = ((double)now_ns() - t0) / 1e9;
	cpu0 = proc_cpu_s(o.srv_pid) - cpu0;
	cli0 = proc_cpu_s(getpid()) - cli0;
	phase_hook("stop", name);
	pthread_barrier_wait(&bar);
	for (unsigned i = 0; i < o.threads; i++)
		n += thr[i].nlat;
	report(name, dt, cpu0, cli0);
	return (double)n / dt;
}

static int
run_op(const char *name)
{
	if (strcmp(name, "put") == 0 || strcmp(name, "get") == 0) {
		/* --rate-pct: the peak of this moment, closed loop, then
		 * paced at that share of it (the last line is the paced one) */
		if (o.rate_pct > 0) {
			o.rate = 0;
			o.rate = timed_phase(name) * o.rate_pct / 100.0;
			if (o.rate < 1)
				o.rate = 1;
		}
		timed_phase(name);
		return 0;
	}
	if (strcmp(name, "fill") == 0 || strcmp(name, "seal") == 0) {
		cur_op = name[0] == 'f' ? OP_FILL : OP_SEAL;
		pthread_barrier_wait(&bar);
		pthread_barrier_wait(&bar);
		return 0;
	}
	fprintf(stderr, "bench_net: unknown op %s\n", name);
	return -EINVAL;
}

int
main(int argc, char **argv)
{
	char ops[128], *save = NULL;
	int rc = 0;

	parse(argc, argv);
	ns_id = gpc_namespace("bench-net", 9);
	if (o.shared) {
		rc = connect_client(&shared_c);
		if (rc < 0)
			return 1;
	}
	thr = calloc(o.threads, sizeof(*thr));
	pthread_barrier_init(&bar, NULL, o.threads + 1);
	for (unsigned i = 0; i < o.threads; i++) {
		thr[i].idx = i;
		pthread_create(&thr[i].th, NULL, thr_main, &thr[i]);
	}
	pthread_barrier_wait(&bar);
	for (unsigned i = 0; i < o.threads; i++)
		if (thr[i].fatal)
			rc = thr[i].fatal;
	snprintf(ops, sizeof(ops), "%s", o.ops);
	for (char *op = strtok_r(ops, ",", &save); rc == 0 && op != NULL;
	     op = strtok_r(NULL, ",", &save)) {
		rc = run_op(op);
		for (unsigned i = 0; i < o.threads; i++)
			if (thr[i].fatal)
				rc = thr[i].fatal;
	}
	cur_op = OP_STOP;
	pthread_barrier_wait(&bar);
	for (unsigned i = 0; i < o.threads; i++) {
		pthread_join(thr[i].th, NULL);
		if (thr[i].c != shared_c)
			gpc_close(thr[i].c);
		free(thr[i].lat);
	}
	gpc_close(shared_c);
	return rc < 0 ? 1 : 0;
}
