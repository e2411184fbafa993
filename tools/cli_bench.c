/*
 * cli_bench.c - `gpucache bench`: the engine's own throughput on real
 * devices, for comparison with fio on the same devices (scripts/bench-
 * engine.sh). Put phase: blocks of --size until --bytes are written and
 * flushed. Get phase: --qd gets kept in flight over random written keys,
 * into 4096-aligned buffers (the direct O_DIRECT path), each one checked.
 * --rebuild-blocks N instead fills the store with N 4 KiB blocks and
 * times the index rebuild of a fresh open.
 *
 * --threads N runs N engines at once, each on its own thread over its own
 * region of the same devices, exactly as gpucached's N shards do (the
 * region of --shard I/N), for comparison with fio's numjobs=N. --bytes is
 * the total: each engine puts and gets bytes/N. The phases start together
 * (a barrier); a phase's time is the slowest engine's. Threads share
 * nothing but the barrier and their own result slots, read after join.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "gpucache/gpucache.h"
#include "bench_common.h"
#include "cli.h"

struct bench {
	struct cli_devs d;
	unsigned k, m, qd, wbufs;
	int64_t chunk, size, bytes, rebuild_blocks;
	bool format, random_data;
	struct store *st;
	uint64_t nkeys, issued, done, errors, seed;
	double put_cpu, get_cpu; /* this thread's CPU seconds per phase */
	uint8_t **bufs;
	struct iovec *iov;
	unsigned threads;        /* --threads: engines at once (0: one) */
	/* --threads: each engine's own */
	pthread_t th;
	pthread_barrier_t *bar;
	double put_s, get_s;
	struct store_stats stats;
	int rc;
	double mix;              /* --mix: seconds of mixed puts and gets */
};

static void
bench_key(uint64_t i, uint8_t *key)
{
	memset(key, 0, 32);
	memcpy(key, &i, 8);
	key[31] = 0x5a;
}

static uint64_t
next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * The payload every put writes: a 256-byte pattern (byte i is i*131+7,
 * what fio writes with --buffer_pattern of the same bytes) or, with
 * --data random, xorshift bytes that no compressor shrinks (fio's default
 * buffers). The pattern matters on zram, which compresses what it stores.
 */
static void
fill_payload(const struct bench *b, uint8_t *src, size_t len)
{
	uint64_t s = 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i < len; i++)
		src[i] = (uint8_t)(i * 131 + 7);
	for (size_t i = 0; b->random_data && i + 8 <= len; i += 8) {
		uint64_t r = next_rand(&s);

		memcpy(src + i, &r, 8);
	}
}

static int
bench_format(struct bench *b)
{
	struct store_format_opts fo = { .k = b->k, .m = b->m,
					.chunk_size = (uint32_t)b->chunk };
	struct store_io *io;
	int rc;

	if (cli_io_open(&b->d, b->d.create_size > 0, &io) < 0)
		return -1;
	rc = store_format(io, &fo);
	store_io_close(io);
	if (rc < 0)
		fprintf(stderr, "gpucache bench: format: %s\n", gpc_strerror(rc));
	return rc;
}

static int
put_phase(struct bench *b, double *secs)
{
	uint8_t *src, key[32];
	uint64_t n = (uint64_t)b->bytes / (uint64_t)b->size, t0, c0;
	int rc = 0;

	if (posix_memalign((void **)&src, 4096, (size_t)b->size))
		return -ENOMEM;
	fill_payload(b, src, (size_t)b->size);
	c0 = clock_thread_cpu_ns();
	t0 = clock_now_ns();
	for (uint64_t i = 0; i < n && rc == 0; i++) {
		struct iovec iov = { src, (size_t)b->size };

		bench_key(i, key);
		memcpy(src, &i, 8);
		do {
			rc = store_put_submit(b->st, 1, key, &iov, 1, 0, NULL,
					      NULL);
			if (rc == -EAGAIN)
				store_poll(b->st, 1);
		} while (rc == -EAGAIN);
		store_poll(b->st, 0);
	}
	if (rc == 0)
		rc = store_flush(b->st);
	*secs = (clock_now_ns() - t0) / 1e9;
	b->put_cpu = (clock_thread_cpu_ns() - c0) / 1e9;
	b->nkeys = n;
	free(src);
	return rc;
}

struct get_slot {
	struct bench *b;
	unsigned idx;
	uint64_t key_id;
};

static void get_issue(struct get_slot *g);

static void
get_cb(void *arg, int rc)
{
	struct get_slot *g = arg;
	struct bench *b = g->b;
	uint64_t got;

	memcpy(&got, b->bufs[g->idx], 8);
	if (rc != b->size || got != g->key_id)
		b->errors++;
	b->done++;
	if (b->issued < b->nkeys)
		get_issue(g);
}

static void
get_issue(struct get_slot *g)
{
	struct bench *b = g->b;
	uint8_t key[32];

	g->key_id = next_rand(&b->seed) % b->nkeys;
	bench_key(g->key_id, key);
	b->issued++;
	if (store_get_submit(b->st, 1, key, &b->iov[g->idx], 1, get_cb, g) < 0) {
		b->errors++;
		b->done++;
	}
}

static int
get_phase(struct bench *b, double *secs)
{
	struct get_slot *g = calloc(b->qd, sizeof(*g));
	uint64_t t0, c0;

	b->bufs = calloc(b->qd, sizeof(*b->bufs));
	b->iov = calloc(b->qd, sizeof(*b->iov));
	if (g == NULL || b->bufs == NULL || b->iov == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < b->qd; i++) {
		if (posix_memalign((void **)&b->bufs[i], 4096, (size_t)b->size))
			return -ENOMEM;
		b->iov[i] = (struct iovec){ b->bufs[i], (size_t)b->size };
		g[i] = (struct get_slot){ .b = b, .idx = i };
	}
	b->seed = 88172645463325252ull;
	c0 = clock_thread_cpu_ns();
	t0 = clock_now_ns();
	for (unsigned i = 0; i < b->qd && b->issued < b->nkeys; i++)
		get_issue(&g[i]);
	while (b->done < b->issued)
		if (store_poll(b->st, 1) < 0)
			break;
	*secs = (clock_now_ns() - t0) / 1e9;
	b->get_cpu = (clock_thread_cpu_ns() - c0) / 1e9;
	for (unsigned i = 0; i < b->qd; i++)
		free(b->bufs[i]);
	free(b->bufs);
	free(b->iov);
	free(g);
	return 0;
}

/*
 * --mix S: a cache in steady state. After the put phase has filled the
 * store (make --bytes larger than it holds, so the log has wrapped),
 * --qd requests stay in flight for S seconds, half of the slots putting
 * new blocks and half getting blocks put within the last capacity's
 * worth (each slot a closed loop), so that
 * some blocks of the oldest segment have been read when it is evicted and
 * the policy keeps them (reinsertion). Per request latency, puts counted
 * from their first try (a put waiting for room is answered -EAGAIN and
 * tried again); a get must return its block or miss, never other bytes.
 */
struct mix_slot {
	struct bench *b;
	struct mix *mx;
	unsigned idx;
	bool busy, put, waiting;
	uint64_t key_id, t0;
};

struct mix {
	uint64_t *lat[2];        /* [0] gets, [1] puts, ns */
	size_t nlat[2], cap;
	uint64_t hits, misses, wrong, eagain, puts, next_key;
};

static void
mix_cb(void *arg, int rc)
{
	struct mix_slot *m = arg;
	struct mix *mx = m->mx;
	struct bench *b = m->b;
	uint64_t got;

	if (mx->nlat[m->put] < mx->cap)
		mx->lat[m->put][mx->nlat[m->put]++] = clock_now_ns() - m->t0;
	m->busy = false;
	if (m->put) {
		mx->puts++;
		return;
	}
	memcpy(&got, b->bufs[m->idx], 8);
	if (rc == b->size && got == m->key_id)
		mx->hits++;
	else if (rc == -GPC_ENOTFOUND)
		mx->misses++;
	else
		mx->wrong++;
}

/* Start slot m's next request; false if a put must wait for room. */
static bool
mix_issue(struct mix_slot *m, uint64_t window)
{
	struct bench *b = m->b;
	struct mix *mx = m->mx;
	uint8_t key[32];
	int rc;

	if (!m->waiting) {
		m->t0 = clock_now_ns();
		if (m->put) {
			m->key_id = mx->next_key++;
		} else {
			uint64_t w = mx->next_key < window ? mx->next_key
							   : window;

			m->key_id = mx->next_key - 1 - next_rand(&b->seed) % w;
		}
	}
	bench_key(m->key_id, key);
	if (m->put) {
		memcpy(b->bufs[m->idx], &m->key_id, 8);
		rc = store_put_submit(b->st, 1, key, &b->iov[m->idx], 1, 0,
				      mix_cb, m);
	} else {
		rc = store_get_submit(b->st, 1, key, &b->iov[m->idx], 1,
				      mix_cb, m);
	}
	m->waiting = rc == -EAGAIN;
	if (rc == -EAGAIN) {
		mx->eagain++;
		return false;
	}
	m->busy = true;
	if (rc < 0)
		mix_cb(m, rc);
	return true;
}

static double
mix_q(struct mix *mx, int put, double q)
{
	size_t n = mx->nlat[put];

	return n ? (double)mx->lat[put][(size_t)((double)(n - 1) * q)] / 1e3
		 : 0.0;
}

static int
mix_phase(struct bench *b)
{
	struct mix_slot *ms = calloc(b->qd, sizeof(*ms));
	struct mix mx = { .cap = 1u << 22, .next_key = b->nkeys };
	struct store_stats s0, s1;
	uint64_t t0, end, window;
	double secs, gb[2];

	store_get_stats(b->st, &s0);
	window = s0.capacity_bytes / (uint64_t)b->size;
	mx.lat[0] = malloc(mx.cap * sizeof(uint64_t));
	mx.lat[1] = malloc(mx.cap * sizeof(uint64_t));
	b->bufs = calloc(b->qd, sizeof(*b->bufs));
	b->iov = calloc(b->qd, sizeof(*b->iov));
	if (ms == NULL || mx.lat[0] == NULL || mx.lat[1] == NULL ||
	    b->bufs == NULL || b->iov == NULL || window == 0)
		return -ENOMEM;
	for (unsigned i = 0; i < b->qd; i++) {
		if (posix_memalign((void **)&b->bufs[i], 4096, (size_t)b->size))
			return -ENOMEM;
		fill_payload(b, b->bufs[i], (size_t)b->size);
		b->iov[i] = (struct iovec){ b->bufs[i], (size_t)b->size };
		/* half the slots put, half get: each a closed loop */
		ms[i] = (struct mix_slot){ .b = b, .mx = &mx, .idx = i,
					   .put = i % 2 == 0 };
	}
	b->seed = 88172645463325252ull;
	t0 = clock_now_ns();
	end = t0 + (uint64_t)(b->mix * 1e9);
	for (;;) {
		unsigned busy = 0, issued = 0;
		bool open = clock_now_ns() < end, waiting = false;

		/* puts waiting for room go first, oldest first, and no new
		 * put starts while one waits (as gpucached's retry list) */
		for (;;) {
			struct mix_slot *old = NULL;

			for (unsigned i = 0; i < b->qd; i++)
				if (ms[i].waiting && !ms[i].busy &&
				    (old == NULL || ms[i].t0 < old->t0))
					old = &ms[i];
			if (old == NULL)
				break;
			if (!mix_issue(old, window)) {
				waiting = true;
				break;
			}
			issued++;
		}
		for (unsigned i = 0; i < b->qd; i++) {
			if (!ms[i].busy && !ms[i].waiting && open &&
			    !(ms[i].put && waiting)) {
				bool ok = mix_issue(&ms[i], window);

				issued += ok;
				waiting |= !ok;
			}
			busy += ms[i].busy;
		}
		if (!open && busy == 0)
			break;
		store_poll(b->st, issued == 0 && busy > 0 ? 1 : 0);
	}
	secs = (clock_now_ns() - t0) / 1e9;
	store_get_stats(b->st, &s1);
	qsort(mx.lat[0], mx.nlat[0], sizeof(uint64_t), bench_cmp_u64);
	qsort(mx.lat[1], mx.nlat[1], sizeof(uint64_t), bench_cmp_u64);
	gb[0] = (double)(mx.hits) * (double)b->size / 1e9;
	gb[1] = (double)mx.puts * (double)b->size / 1e9;
	printf("mix   %.1f s, qd %u: put %.2f GB/s (p50 %.0f us, p99 %.0f us, "
	       "max %.0f us; %" PRIu64 " waits for room), get %.2f GB/s of "
	       "hits (p50 %.0f us, p99 %.0f us, max %.0f us), %" PRIu64
	       " hits, %" PRIu64 " misses, %" PRIu64 " wrong; %" PRIu64
	       " segments evicted, %" PRIu64 " blocks reinserted\n", secs,
	       b->qd, gb[1] / secs, mix_q(&mx, 1, 0.5), mix_q(&mx, 1, 0.99),
	       mix_q(&mx, 1, 1.0), mx.eagain, gb[0] / secs,
	       mix_q(&mx, 0, 0.5), mix_q(&mx, 0, 0.99), mix_q(&mx, 0, 1.0),
	       mx.hits, mx.misses, mx.wrong,
	       s1.segs_evicted - s0.segs_evicted,
	       s1.blocks_reinserted - s0.blocks_reinserted);
	printf("RESULT mix_put_gbps=%.3f mix_get_gbps=%.3f get_p50_us=%.0f "
	       "get_p99_us=%.0f get_max_us=%.0f put_p99_us=%.0f "
	       "put_max_us=%.0f hits=%" PRIu64 " misses=%" PRIu64 " wrong=%"
	       PRIu64 " reinserted=%" PRIu64 "\n", gb[1] / secs,
	       gb[0] / secs, mix_q(&mx, 0, 0.5), mix_q(&mx, 0, 0.99),
	       mix_q(&mx, 0, 1.0), mix_q(&mx, 1, 0.99), mix_q(&mx, 1, 1.0),
	       mx.hits, mx.misses, mx.wrong,
	       s1.blocks_reinserted - s0.blocks_reinserted);
	b->errors += mx.wrong;
	for (unsigned i = 0; i < b->qd; i++)
		free(b->bufs[i]);
	free(b->bufs);
	free(b->iov);
	free(mx.lat[0]);
	free(mx.lat[1]);
	free(ms);
	return 0;
}

/* Fill with N 4 KiB blocks, close, and time a fresh open. */
static int
rebuild_phase(struct bench *b)
{
	struct store_opts o = { .wbuf_segs = b->wbufs };
	struct store_stats s;
	uint8_t *src = calloc(1, 4096), key[32];
	uint64_t t0;
	int rc = 0;

	for (int64_t i = 0; i < b->rebuild_blocks && rc == 0; i++) {
		bench_key((uint64_t)i, key);
		memcpy(src, &i, 8);
		do {
			struct iovec iov = { src, 4096 };

			rc = store_put_submit(b->st, 1, key, &iov, 1, 0, NULL,
					      NULL);
			if (rc == -EAGAIN)
				store_poll(b->st, 1);
		} while (rc == -EAGAIN);
		if ((i & 255) == 0)
			store_poll(b->st, 0);
	}
	free(src);
	store_close(b->st);
	b->st = NULL;
	if (rc < 0)
		return rc;
	t0 = clock_now_ns();
	rc = cli_store_open(&b->d, &o, &b->st);
	if (rc < 0)
		return rc;
	store_get_stats(b->st, &s);
	printf("rebuild: %" PRIu64 " blocks indexed in %.3f s (open %.3f s), "
	       "%.1f index bytes per block\n", s.index_blocks,
	       s.recovery_ns / 1e9, (clock_now_ns() - t0) / 1e9,
	       (double)s.index_bytes / (s.index_blocks ? s.index_blocks : 1));
	printf("RESULT rebuild_blocks=%" PRIu64 " rebuild_s=%.3f "
	       "index_bytes_per_block=%.1f\n", s.index_blocks,
	       s.recovery_ns / 1e9,
	       (double)s.index_bytes / (s.index_blocks ? s.index_blocks : 1));
	return 0;
}

/*
 * Report b (the sum of every engine's figures when --threads: nkeys,
 * errors, CPU seconds and the engine counters added up; the times are
 * the slowest engine's).
 */
static void
bench_report(struct bench *b, const struct store_stats *sp, double put_s,
	     double get_s)
{
	const struct store_stats s = *sp;
	double gb = (double)b->nkeys * (double)b->size / 1e9;
	double put_gbps = gb / put_s, get_gbps = gb / get_s, ipb;
	unsigned nt = b->threads ? b->threads : 1;

	ipb = (double)s.index_bytes /
	      (double)(s.index_blocks ? s.index_blocks : 1);
	printf("bench: %u+%u over %u devices, blocks of %" PRId64 " bytes, "
	       "qd %u, %s data, %u engine thread(s)\n", s.k, s.m, s.ndev,
	       b->size, b->qd, b->random_data ? "random" : "pattern", nt);
	printf("put   %.2f GB in %.3f s: %.2f GB/s (write amplification "
	       "%.3f incl. parity and metadata)\n", gb, put_s, put_gbps,
	       (double)s.flash_bytes_written / (double)s.put_bytes);
	printf("get   %.2f GB in %.3f s: %.2f GB/s, %" PRIu64 " errors, "
	       "%.2f GB read from flash\n", gb, get_s, get_gbps, b->errors,
	       s.flash_bytes_read / 1e9);
	printf("cpu   erasure coding %.4f s/GB, checksums %.4f s/GB; threads "
	       "busy %.0f%% of put, %.0f%% of get (%.3f, %.3f s/GB)\n",
	       s.ec_cpu_ns / 1e9 / gb, s.crc_cpu_ns / 1e9 / gb,
	       100 * b->put_cpu / put_s / nt, 100 * b->get_cpu / get_s / nt,
	       b->put_cpu / gb, b->get_cpu / gb);
	printf("index %.1f bytes per block (%" PRIu64 " blocks), %" PRIu64
	       " segments evicted\n", ipb, s.index_blocks, s.segs_evicted);
	printf("RESULT put_gbps=%.3f get_gbps=%.3f ec_cpu_s_per_gb=%.4f "
	       "crc_cpu_s_per_gb=%.4f put_cpu_s_per_gb=%.4f "
	       "get_cpu_s_per_gb=%.4f index_bytes_per_block=%.1f errors=%"
	       PRIu64 " segs_evicted=%" PRIu64 "\n", put_gbps, get_gbps,
	       s.ec_cpu_ns / 1e9 / gb, s.crc_cpu_ns / 1e9 / gb,
	       b->put_cpu / gb, b->get_cpu / gb, ipb, b->errors,
	       s.segs_evicted);
}

static int
bench_parse(struct bench *b, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "qd", required_argument, NULL, 'q' },
		{ "bytes", required_argument, NULL, 'B' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "wbufs", required_argument, NULL, 'w' },
		{ "format", no_argument, NULL, 'f' },
		{ "create-size", required_argument, NULL, 'C' },
		{ "rebuild-blocks", required_argument, NULL, 'r' },
		{ "backend", required_argument, NULL, 'b' },
		{ "data", required_argument, NULL, 'd' },
		{ "threads", required_argument, NULL, 't' },
		{ "mix", required_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "k:m:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'k': b->k = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'm': b->m = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'v': log_set_level(LOG_INFO); break;
		case 's': b->size = cli_parse_size(optarg); break;
		case 'q': b->qd = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'B': b->bytes = cli_parse_size(optarg); break;
		case 'c': b->chunk = cli_parse_size(optarg); break;
		case 'w': b->wbufs = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'f': b->format = true; break;
		case 'C': b->d.create_size = (uint64_t)cli_parse_size(optarg); break;
		case 'r': b->rebuild_blocks = cli_parse_size(optarg); break;
		case 'b': b->d.backend = optarg; break;
		case 't': b->threads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'x': b->mix = strtod(optarg, NULL); break;
		case 'd':
			b->random_data = strcmp(optarg, "random") == 0;
			if (!b->random_data && strcmp(optarg, "pattern") != 0)
				return -1;
			break;
		case 'h':
			printf("usage: gpucache bench [--format -k K -m M --chunk "
			       "SIZE --create-size SIZE] [--size 1M] [--qd 32] "
			       "[--bytes 2G] [--wbufs N] [--data pattern|random] "
			       "[--rebuild-blocks N] [--threads N] [--mix S] "
			       "DEV...\n"
			       "  --threads N: N engines at once, each over "
			       "its own region of the devices\n"
			       "  (gpucached's shard regions); --bytes is "
			       "their total\n"
			       "  --mix S: after the puts, S seconds of half "
			       "puts, half gets of recent blocks\n"
			       "  (a full cache: make --bytes exceed what the "
			       "store holds)\n");
			exit(0);
		default: return -1;
		}
	}
	if (optind >= argc || b->size < 1 || b->bytes < b->size ||
	    b->qd < 1 || b->chunk < 0 || b->rebuild_blocks < 0 ||
	    b->threads > 64 || (b->threads > 1 && b->rebuild_blocks > 0) ||
	    !(b->mix >= 0 && b->mix <= 3600) ||
	    (b->mix > 0 && b->threads > 1)) {
		fprintf(stderr, "gpucache bench: bad options or no devices "
			"(see --help)\n");
		return -1;
	}
	b->d.n = (unsigned)(argc - optind);
	b->d.paths = (const char **)&argv[optind];
	return 0;
}

/* One engine of --threads: format its region, put, then get, in step
 * with the others. Frees nothing it was given; closes its store. */
static void *
bench_thread(void *arg)
{
	struct bench *b = arg;
	struct store_opts o = { .wbuf_segs = b->wbufs };

	b->rc = b->format ? bench_format(b) : 0;
	if (b->rc == 0)
		b->rc = cli_store_open(&b->d, &o, &b->st);
	pthread_barrier_wait(b->bar); /* every engine ready */
	if (b->rc == 0)
		b->rc = put_phase(b, &b->put_s);
	pthread_barrier_wait(b->bar); /* gets start together */
	if (b->rc == 0)
		b->rc = get_phase(b, &b->get_s);
	if (b->st != NULL && b->rc == 0)
		store_get_stats(b->st, &b->stats);
	if (b->rc < 0 && b->st != NULL)
		store_abandon(b->st);
	else
		store_close(b->st);
	b->st = NULL;
	return NULL;
}

/* Add one engine's figures to the total in sum. */
static void
bench_add(struct bench *sum, struct store_stats *ss, const struct bench *b)
{
	const struct store_stats *s = &b->stats;

	sum->nkeys += b->nkeys;
	sum->errors += b->errors;
	sum->put_cpu += b->put_cpu;
	sum->get_cpu += b->get_cpu;
	if (b->put_s > sum->put_s)
		sum->put_s = b->put_s;
	if (b->get_s > sum->get_s)
		sum->get_s = b->get_s;
	if (ss->ndev == 0)
		*ss = *s; /* geometry and the rest from the first */
	else {
		ss->index_bytes += s->index_bytes;
		ss->index_blocks += s->index_blocks;
		ss->segs_evicted += s->segs_evicted;
		ss->flash_bytes_written += s->flash_bytes_written;
		ss->flash_bytes_read += s->flash_bytes_read;
		ss->put_bytes += s->put_bytes;
		ss->ec_cpu_ns += s->ec_cpu_ns;
		ss->crc_cpu_ns += s->crc_cpu_ns;
	}
}

/* --threads N: N engines over the regions of N shards. */
static int
bench_threads(struct bench *tmpl)
{
	unsigned n = tmpl->threads;
	struct bench *bs = calloc(n, sizeof(*bs)), sum = *tmpl;
	struct store_stats ss = { 0 };
	pthread_barrier_t bar;
	int rc = 0;

	if (bs == NULL)
		return 1;
	pthread_barrier_init(&bar, NULL, n);
	for (unsigned i = 0; i < n; i++) {
		bs[i] = *tmpl;
		bs[i].d.shard = i;
		bs[i].d.nshards = n;
		bs[i].bytes = tmpl->bytes / n / tmpl->size * tmpl->size;
		bs[i].bar = &bar;
		if (bs[i].bytes < bs[i].size ||
		    pthread_create(&bs[i].th, NULL, bench_thread, &bs[i]) != 0) {
			fprintf(stderr, "gpucache bench: cannot start engine "
				"%u of %u\n", i, n);
			exit(1); /* the others wait at a barrier forever */
		}
	}
	sum.nkeys = sum.errors = 0;
	sum.put_cpu = sum.get_cpu = sum.put_s = sum.get_s = 0;
	for (unsigned i = 0; i < n; i++) {
		pthread_join(bs[i].th, NULL);
		if (bs[i].rc < 0 && rc == 0) {
			fprintf(stderr, "gpucache bench: engine %u: %s\n", i,
				gpc_strerror(bs[i].rc));
			rc = bs[i].rc;
		}
		bench_add(&sum, &ss, &bs[i]);
	}
	pthread_barrier_destroy(&bar);
	free(bs);
	if (rc < 0)
		return 1;
	bench_report(&sum, &ss, sum.put_s, sum.get_s);
	return sum.errors ? 1 : 0;
}

int
cli_bench(int argc, char **argv)
{
	struct bench b = { .k = 1, .qd = 32, .wbufs = 4, .size = 1 << 20,
			   .bytes = 2ll << 30 };
	struct store_opts o;
	struct store_stats s;
	double put_s = 0, get_s = 0;
	int rc;

	if (bench_parse(&b, argc, argv) < 0)
		return 2;
	if (b.threads > 0)
		return bench_threads(&b);
	if (b.format && bench_format(&b) < 0)
		return 1;
	o = (struct store_opts){ .wbuf_segs = b.wbufs };
	if (cli_store_open(&b.d, &o, &b.st) < 0)
		return 1;
	if (b.rebuild_blocks > 0) {
		rc = rebuild_phase(&b);
		store_close(b.st);
		return rc < 0 ? 1 : 0;
	}
	rc = put_phase(&b, &put_s);
	if (rc == 0 && b.mix > 0) {
		rc = mix_phase(&b);
		if (rc < 0)
			fprintf(stderr, "gpucache bench: %s\n", gpc_strerror(rc));
		store_close(b.st);
		return rc < 0 || b.errors ? 1 : 0;
	}
	if (rc == 0)
		rc = get_phase(&b, &get_s);
	if (rc < 0) {
		fprintf(stderr, "gpucache bench: %s\n", gpc_strerror(rc));
		store_abandon(b.st);
		return 1;
	}
	store_get_stats(b.st, &s);
	bench_report(&b, &s, put_s, get_s);
	store_close(b.st);
	return b.errors ? 1 : 0;
}
