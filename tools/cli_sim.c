/*
 * cli_sim.c - `gpucache sim`: what a cache of a given capacity would have
 * hit on a trace, for three policies side by side:
 *   lru     a plain LRU of whole blocks (the baseline to beat);
 *   belady  furthest next use, with the future known (the bound);
 *   ours    the real flash engine (src/store, its policy module
 *           src/store/policy.c) on in-memory devices sized to the
 *           capacity, driven the way gpucached drives it (LOOKUP the
 *           chain, GET the present prefix, PUT the rest), so the figure
 *           is what the daemon does, not a model of it; "all", "seen"
 *           and "notail" pin its admission to one rule instead of the
 *           automatic choice.
 * Prefix semantics throughout: a request's hit is its leading run of
 * present blocks; then every block of the request is touched or inserted.
 * Capacity is in tokens (512 per block; K, M, G are powers of 10). Every
 * block the store returns is checked against the bytes that were put.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpucache/gpucache.h"
#include "store/format.h"
#include "store/store.h"
#include "cli.h"
#include "trace.h"

#define SIM_MAX_CAPS 16
#define SIM_NS 1

enum { P_LRU, P_BELADY, P_OURS, P_ALL, P_SEEN, P_NOTAIL, P_N };
static const char *const pol_names[P_N] = { "lru", "belady", "ours", "all",
					    "seen", "notail" };

struct sim {
	struct trace t;
	uint32_t *dense;      /* ids renumbered 0..nuniq-1, per access */
	uint64_t nuniq;
	uint64_t caps[SIM_MAX_CAPS];
	unsigned ncaps;
	bool want[P_N];
	uint64_t block_bytes;
	unsigned segs;        /* segments the store's capacity is cut into */
	bool geometry;        /* print the store's geometry, run nothing */
	bool keep_orphans;    /* --keep-orphans: reclaim ignores parents */
	double write_amp_max; /* --write-amp-max (store.write_amp_max) */
	unsigned seeds;       /* runs of the store, each another namespace */
	uint64_t ns_index;    /* --ns-index: the first of them */
	const char *data_out;
	const char *plot_out; /* --plot FILE.png (gnuplot) */
	const char *trace_name; /* the plot's title */
};

struct result {
	double hit, hit_min, hit_max, write_amp; /* hit: mean over seeds */
	uint64_t wrong, refused, deduped, orphaned, capacity_blocks, switches;
	uint64_t held; /* blocks in the index at the end */
	uint64_t mini_hits[POLICY_NMINI];
	const char *mode;
};

/* ---- dense ids ---- */

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int
densify(struct sim *s)
{
	uint32_t *sorted = malloc(s->t.nids * sizeof(*sorted));
	uint64_t u = 0;

	s->dense = malloc(s->t.nids * sizeof(*s->dense));
	if (sorted == NULL || s->dense == NULL) {
		free(sorted);
		return -ENOMEM;
	}
	memcpy(sorted, s->t.ids, s->t.nids * sizeof(*sorted));
	qsort(sorted, s->t.nids, sizeof(*sorted), cmp_u32);
	for (uint64_t i = 0; i < s->t.nids; i++)
		if (i == 0 || sorted[i] != sorted[i - 1])
			sorted[u++] = sorted[i];
	for (uint64_t i = 0; i < s->t.nids; i++) {
		uint32_t *p = bsearch(&s->t.ids[i], sorted, u, sizeof(*sorted),
				      cmp_u32);
		s->dense[i] = (uint32_t)(p - sorted);
	}
	s->nuniq = u;
	free(sorted);
	return 0;
}

/* ---- LRU: a doubly linked list over dense ids ---- */

static double
run_lru(const struct sim *s, uint64_t cap)
{
	uint32_t *prev = malloc(s->nuniq * 4), *next = malloc(s->nuniq * 4);
	uint8_t *in = calloc(s->nuniq, 1);
	uint32_t head = UINT32_MAX, tail = UINT32_MAX; /* head: most recent */
	uint64_t n = 0, hits = 0;

	if (prev == NULL || next == NULL || in == NULL)
		abort();
	for (uint64_t r = 0; r < s->t.nreq; r++) {
		uint64_t a = s->t.off[r], b = s->t.off[r + 1], i;

		for (i = a; i < b && in[s->dense[i]]; i++)
			hits++;
		for (i = a; i < b; i++) {
			uint32_t x = s->dense[i];

			if (in[x]) { /* unlink */
				if (prev[x] != UINT32_MAX)
					next[prev[x]] = next[x];
				else
					head = next[x];
				if (next[x] != UINT32_MAX)
					prev[next[x]] = prev[x];
				else
					tail = prev[x];
			} else {
				in[x] = 1;
				n++;
			}
			prev[x] = UINT32_MAX;
			next[x] = head;
			if (head != UINT32_MAX)
				prev[head] = x;
			head = x;
			if (tail == UINT32_MAX)
				tail = x;
			while (n > cap) {
				uint32_t v = tail;

				tail = prev[v];
				if (tail != UINT32_MAX)
					next[tail] = UINT32_MAX;
				else
					head = UINT32_MAX;
				in[v] = 0;
				n--;
			}
		}
	}
	free(prev);
	free(next);
	free(in);
	return (double)hits / (double)s->t.nids;
}

/* ---- Belady: furthest next use, a max-heap with lazy deletion ---- */

struct hent {
	uint64_t nu;
	uint32_t id;
};

static void
heap_push(struct hent *h, uint64_t *n, struct hent e)
{
	uint64_t i = (*n)++;

	while (i > 0 && h[(i - 1) / 2].nu < e.nu) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = e;
}

static struct hent
heap_pop(struct hent *h, uint64_t *n)
{
	struct hent top = h[0], e = h[--(*n)];
	uint64_t i = 0;

	for (;;) {
		uint64_t c = 2 * i + 1;

		if (c >= *n)
			break;
		if (c + 1 < *n && h[c + 1].nu > h[c].nu)
			c++;
		if (h[c].nu <= e.nu)
			break;
		h[i] = h[c];
		i = c;
	}
	if (*n > 0)
		h[i] = e;
	return top;
}

static double
run_belady(const struct sim *s, uint64_t cap)
{
	uint64_t *nextuse = malloc(s->t.nids * 8), *cur = malloc(s->nuniq * 8);
	uint64_t *last = malloc(s->nuniq * 8), hn = 0, n = 0, hits = 0;
	struct hent *h = malloc(s->t.nids * sizeof(*h));
	const uint64_t never = UINT64_MAX;

	if (nextuse == NULL || cur == NULL || last == NULL || h == NULL)
		abort();
	for (uint64_t x = 0; x < s->nuniq; x++) {
		last[x] = never;
		cur[x] = 0; /* 0: not cached; else its next use + 1 */
	}
	for (uint64_t i = s->t.nids; i-- > 0;) {
		nextuse[i] = last[s->dense[i]];
		last[s->dense[i]] = i;
	}
	for (uint64_t r = 0; r < s->t.nreq; r++) {
		uint64_t a = s->t.off[r], b = s->t.off[r + 1], i;

		for (i = a; i < b && cur[s->dense[i]]; i++)
			hits++;
		for (i = a; i < b; i++) {
			uint32_t x = s->dense[i];
			uint64_t nu = nextuse[i] == never ? never - 1 : nextuse[i];

			if (!cur[x])
				n++;
			cur[x] = nu + 1;
			heap_push(h, &hn, (struct hent){ nu, x });
			while (n > cap) {
				struct hent e = heap_pop(h, &hn);

				if (cur[e.id] == e.nu + 1) {
					cur[e.id] = 0;
					n--;
				}
			}
		}
	}
	free(nextuse);
	free(cur);
	free(last);
	free(h);
	return (double)hits / (double)s->t.nids;
}

/* ---- ours: the real store on in-memory devices ---- */

/*
 * 1+0 on one device: about s->segs segments (a chunk each) of whole
 * blocks, so the store holds no more blocks than the capacity says and as
 * close to it as whole segments allow: of the segment counts n within 25%
 * of s->segs, the one whose n x (cap / n) blocks come closest to cap
 * (then the least padding, then the n nearest s->segs). gpucached gives
 * its shards devices cut to whole MiB (store_io_region_len), so the
 * device is whole MiB and holds exactly n chunks: the chunk may be
 * padded, up to a sector short of holding one block more, so that n of
 * them and no more fit the MiB (padding is written with the chunk, so it
 * counts as write amplification: small stores pay it). `gpucache sim
 * --geometry` prints these figures for a gpucached that is to match.
 */
struct geom {
	uint64_t n, per, chunk, dev;
};

static uint64_t
chunk_for(const struct sim *s, uint64_t per)
{
	uint64_t rec = store_rec_size((uint32_t)s->block_bytes);

	return ((per * rec + store_sum_size((uint32_t)per) + STORE_SECTOR - 1) &
		~(uint64_t)(STORE_SECTOR - 1)) + STORE_SECTOR;
}

static uint64_t
gap(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

/* n segments of cap / n blocks: the least chunk and smallest device of
 * whole MiB that holds exactly n of them (false: none does). */
static bool
geom_for(const struct sim *s, uint64_t cap, uint64_t n, struct geom *g)
{
	const uint64_t mib = 1u << 20;
	uint64_t per = cap / n, cmin = chunk_for(s, per),
		 cmax = chunk_for(s, per + 1) - STORE_SECTOR;

	for (uint64_t x = (n * cmin + mib - 1) / mib * mib;
	     x < (n + 1) * cmax; x += mib) {
		/* the least chunk that x holds n of, not n + 1 */
		uint64_t c = (x / (n + 1) + STORE_SECTOR) &
			     ~(uint64_t)(STORE_SECTOR - 1);

		c = c > cmin ? c : cmin;
		if (c > cmax || n * c > x)
			continue;
		*g = (struct geom){ n, per, c, x + STORE_DATA_OFF };
		return true;
	}
	return false;
}

/* Is g better than best: more blocks, then less padding, then nearer
 * the segment count asked for? */
static bool
geom_better(const struct sim *s, const struct geom *g, const struct geom *best)
{
	uint64_t pg = g->chunk - chunk_for(s, g->per),
		 pb = best->chunk - chunk_for(s, best->per);

	if (best->n == 0 || g->n * g->per != best->n * best->per)
		return best->n == 0 || g->n * g->per > best->n * best->per;
	if (pg != pb)
		return pg < pb;
	return gap(g->n, s->segs) < gap(best->n, s->segs);
}

static struct geom
ours_geom(const struct sim *s, uint64_t cap)
{
	const uint64_t mib = 1u << 20;
	uint64_t lo = s->segs * 3 / 4, hi = s->segs * 5 / 4;
	struct geom best = { 0 }, g;

	for (uint64_t n = lo > 2 ? lo : 2; n <= hi && n <= cap; n++)
		if (geom_for(s, cap, n, &g) && geom_better(s, &g, &best))
			best = g;
	if (best.n == 0) /* too small for that many segments: any count */
		for (uint64_t n = 2; n <= cap && n < lo; n++)
			if (geom_for(s, cap, n, &g) &&
			    geom_better(s, &g, &best))
				best = g;
	if (best.n == 0) { /* none fits: more blocks than cap, which main
			    * refuses */
		best.n = s->segs;
		best.per = cap / best.n ? cap / best.n : 1;
		best.chunk = chunk_for(s, best.per);
		best.dev = (best.n * best.chunk + STORE_DATA_OFF + mib - 1) /
			   mib * mib;
	}
	return best;
}

static uint64_t
ours_per_seg(const struct sim *s, uint64_t cap)
{
	return ours_geom(s, cap).per;
}

static uint64_t
ours_chunk(const struct sim *s, uint64_t cap)
{
	return ours_geom(s, cap).chunk;
}

static uint64_t
ours_dev_size(const struct sim *s, uint64_t cap)
{
	return ours_geom(s, cap).dev;
}

/* gpucached's dram_buffer for it: 2 segments, in whole MiB (the daemon
 * turns it into dram_buffer / chunk write buffers, as ours_open does). */
static uint64_t
ours_dram(const struct sim *s, uint64_t cap)
{
	return (2 * ours_chunk(s, cap) + (1u << 20) - 1) &
	       ~(uint64_t)((1u << 20) - 1);
}

static int
ours_open(const struct sim *s, uint64_t cap, enum policy_mode mode,
	  struct store_memdisk **md, struct store **st)
{
	uint64_t chunk = ours_chunk(s, cap);
	struct store_format_opts fo = { .k = 1, .m = 0,
					.chunk_size = (uint32_t)chunk };
	struct store_opts so = { .policy = mode,
				 .keep_orphans = s->keep_orphans,
				 .write_amp_max = s->write_amp_max,
				 .wbuf_segs = (unsigned)(ours_dram(s, cap) / chunk) };
	struct store_io *io;
	int rc;

	rc = store_memdisk_create(1, ours_dev_size(s, cap), md);
	if (rc < 0)
		return rc;
	rc = store_io_mem_open(*md, &io);
	if (rc == 0) {
		rc = store_format(io, &fo);
		store_io_close(io);
	}
	if (rc == 0)
		rc = store_io_mem_open(*md, &io);
	if (rc == 0 && (rc = store_open(io, &so, st)) < 0)
		store_io_close(io);
	if (rc < 0)
		store_memdisk_destroy(*md);
	return rc;
}

static int
ours_request(const struct sim *s, struct store *st, uint64_t ns, uint64_t r,
	     uint8_t *buf, uint8_t (*keys)[GPC_KEY_LEN], struct result *res,
	     uint64_t *hits)
{
	uint64_t a = s->t.off[r];
	unsigned n = (unsigned)(s->t.off[r + 1] - a), p;

	if (trace_chain_keys(&s->t.ids[a], n, keys) < 0)
		return -EINVAL;
	p = store_longest_prefix(st, ns, &keys[0][0], n);
	for (unsigned i = 0; i < p; i++) {
		int rc;

		/* a GET, as gpucached runs one: marked read, then read */
		store_touch(st, ns, keys[i], NULL);
		rc = store_get(st, ns, keys[i], buf, s->block_bytes);

		if (rc == -GPC_ENOTFOUND) { /* gone since the lookup */
			p = i;
			break;
		}
		if (rc != (int)s->block_bytes ||
		    !trace_block_check(buf, s->block_bytes, keys[i]))
			res->wrong++;
	}
	*hits += p;
	for (unsigned i = p; i < n; i++) {
		int rc;

		trace_block_fill(buf, s->block_bytes, keys[i]);
		rc = store_put(st, ns, keys[i], buf, s->block_bytes,
			       STORE_PUT_IF_ABSENT);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int
run_ours(const struct sim *s, uint64_t cap, enum policy_mode mode,
	 uint64_t ns, struct result *res)
{
	static uint8_t keys[TRACE_MAX_CHAIN][GPC_KEY_LEN];
	struct store_memdisk *md;
	struct store_stats ss;
	struct store *st;
	uint8_t *buf;
	uint64_t hits = 0;
	int rc;

	if (posix_memalign((void **)&buf, 4096, s->block_bytes + 4096))
		return -ENOMEM;
	rc = ours_open(s, cap, mode, &md, &st);
	for (uint64_t r = 0; rc == 0 && r < s->t.nreq; r++)
		rc = ours_request(s, st, ns, r, buf, keys, res, &hits);
	if (rc == 0) {
		store_get_stats(st, &ss);
		res->hit = (double)hits / (double)s->t.nids;
		/* flash bytes written (records, headers, summaries; 1+0 has
		 * no parity) over the bytes put, as bench-cache's daemon */
		res->write_amp = ss.put_bytes_offered
			? (double)ss.flash_bytes_written /
				  (double)ss.put_bytes_offered : 0;
		res->refused = ss.puts_refused;
		res->deduped = ss.puts_deduped;
		res->orphaned = ss.blocks_orphaned;
		res->capacity_blocks = ss.nslots * ours_per_seg(s, cap);
		res->held = ss.index_blocks;
		res->mode = policy_mode_name(ss.pol.mode);
		res->switches = ss.pol.switches;
		for (unsigned i = 0; i < POLICY_NMINI; i++)
			res->mini_hits[i] = ss.pol.mini_hits[i];
		store_close(st);
		store_memdisk_destroy(md);
	} else if (rc != -ENOMEM) {
		fprintf(stderr, "gpucache sim: store: %s\n", gpc_strerror(rc));
	}
	free(buf);
	return rc;
}

/*
 * ours over s->seeds namespaces: the same trace, other fingerprints, so
 * other hash placements and other samples for the minis. The figure is
 * the mean, with its spread; the write amplification the worst; the
 * rest is the first run's.
 */
static int
run_seeds(const struct sim *s, uint64_t cap, enum policy_mode mode,
	  struct result *res)
{
	double sum = 0;

	for (unsigned k = 0; k < s->seeds; k++) {
		struct result one = { 0 };
		uint64_t ns = SIM_NS + s->ns_index + k;
		int rc;

		/* a namespace without a class (the top bits, as gpucached
		 * sets them from the tenant) gets one of its own, as if each
		 * were another tenant's: the policy's reference counts are
		 * per class, so namespaces of one class are one draw of its
		 * hashes where every chain is sampled */
		if ((ns >> 48) == 0)
			ns |= (uint64_t)(1 + (ns - 1) % 1023) << 48;
		rc = run_ours(s, cap, mode, ns, &one);

		if (rc < 0)
			return rc;
		if (k == 0) {
			*res = one;
			res->hit_min = res->hit_max = one.hit;
		}
		sum += one.hit;
		res->hit_min = one.hit < res->hit_min ? one.hit : res->hit_min;
		res->hit_max = one.hit > res->hit_max ? one.hit : res->hit_max;
		res->write_amp = one.write_amp > res->write_amp ? one.write_amp
							  : res->write_amp;
		if (k > 0)
			res->wrong += one.wrong;
	}
	res->hit = sum / s->seeds;
	return 0;
}

/* ---- command line ---- */

/* "1M,3M,300K": tokens, powers of 10. */
static int
parse_caps(struct sim *s, char *arg)
{
	for (char *tok = strtok(arg, ","); tok; tok = strtok(NULL, ",")) {
		char *end;
		double v = strtod(tok, &end);

		if (*end == 'K' || *end == 'k')
			v *= 1e3, end++;
		else if (*end == 'M' || *end == 'm')
			v *= 1e6, end++;
		else if (*end == 'G' || *end == 'g')
			v *= 1e9, end++;
		if (end == tok || *end != '\0' || v < TRACE_BLOCK_TOKENS ||
		    s->ncaps == SIM_MAX_CAPS)
			return -1;
		s->caps[s->ncaps++] = (uint64_t)v;
	}
	return s->ncaps ? 0 : -1;
}

static int
parse_pols(struct sim *s, char *arg)
{
	for (char *tok = strtok(arg, ","); tok; tok = strtok(NULL, ",")) {
		unsigned p;

		for (p = 0; p < P_N && strcmp(tok, pol_names[p]) != 0; p++)
			;
		if (p == P_N)
			return -1;
		s->want[p] = true;
	}
	return 0;
}

static int
sim_parse(struct sim *s, int argc, char **argv, uint64_t *max_req)
{
	static const struct option opts[] = {
		{ "capacity", required_argument, NULL, 'c' },
		{ "policy", required_argument, NULL, 'p' },
		{ "block-bytes", required_argument, NULL, 'b' },
		{ "max-requests", required_argument, NULL, 'n' },
		{ "data", required_argument, NULL, 'd' },
		{ "segments", required_argument, NULL, 's' },
		{ "geometry", no_argument, NULL, 'g' },
		{ "keep-orphans", no_argument, NULL, 'k' },
		{ "write-amp-max", required_argument, NULL, 'w' },
		{ "ns-index", required_argument, NULL, 'N' },
		{ "plot", required_argument, NULL, 'P' },
		{ "seeds", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool pols = false;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (parse_caps(s, optarg) < 0)
				goto usage;
			break;
		case 'p':
			pols = true;
			if (parse_pols(s, optarg) < 0)
				goto usage;
			break;
		case 'b': s->block_bytes = (uint64_t)cli_parse_size(optarg); break;
		case 'n': *max_req = strtoull(optarg, NULL, 10); break;
		case 'd': s->data_out = optarg; break;
		case 's': s->segs = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'g': s->geometry = true; break;
		case 'k': s->keep_orphans = true; break;
		case 'w': {
			char *end;

			s->write_amp_max = strtod(optarg, &end);
			if (end == optarg || *end != '\0' ||
			    !(s->write_amp_max >= 1.0 &&
			      s->write_amp_max <= 10.0))
				goto usage; /* gpucached's range */
			break;
		}
		case 'N': s->ns_index = strtoull(optarg, NULL, 0); break;
		case 'P': s->plot_out = optarg; break;
		case 'S': s->seeds = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'h':
			printf("usage: gpucache sim TRACE.jsonl [--capacity "
			       "1M,3M,10M] [--policy "
			       "lru,belady,ours,all,seen,notail] "
			       "[--block-bytes 16K] [--segments 64] [--seeds 1] "
			       "[--max-requests N] [--data FILE.tsv] "
			       "[--keep-orphans] [--write-amp-max 1.5] "
			       "[--ns-index K] [--plot FILE.png]\n"
			       "       gpucache sim --geometry "
			       "--capacity C [--block-bytes B] [--segments S]: the "
			       "gpucached settings of the same store\ncapacity in tokens (512 a block; K, M, "
			       "G = 1e3, 1e6, 1e9).\n");
			exit(0);
		default:
			goto usage;
		}
	}
	if (!pols)
		s->want[P_LRU] = s->want[P_BELADY] = s->want[P_OURS] = true;
	if (s->ncaps == 0) {
		s->caps[0] = 1000000;
		s->caps[1] = 3000000;
		s->ncaps = 2;
	}
	if (optind != argc - (s->geometry ? 0 : 1) || s->block_bytes < 1 ||
	    s->segs < 4 || s->seeds < 1 || s->seeds > 64 ||
	    s->segs > 4096 ||
	    s->block_bytes > (16u << 20))
		goto usage;
	return 0;
usage:
	fprintf(stderr, "gpucache sim: bad arguments (see --help)\n");
	return -1;
}

static void
report(const struct sim *s, uint64_t tokens, const double *hit,
       const struct result *ours, FILE *data)
{
	printf("capacity %" PRIu64 " tokens (%" PRIu64 " blocks):", tokens,
	       tokens / TRACE_BLOCK_TOKENS);
	for (unsigned p = 0; p < P_N; p++)
		if (s->want[p])
			printf(" %s %.2f%%", pol_names[p], 100 * hit[p]);
	printf("\n");
	for (unsigned p = P_OURS; p < P_N; p++)
		if (s->want[p] && s->seeds > 1)
			printf("  %-5s %.2f%% .. %.2f%% over %u namespaces (hash "
			       "seeds); the first of them:\n", pol_names[p],
			       100 * ours[p].hit_min, 100 * ours[p].hit_max,
			       s->seeds);
	for (unsigned p = P_OURS; p < P_N; p++)
		if (s->want[p])
			printf("  %-5s store of %" PRIu64 " blocks (%" PRIu64
			       " held at the end), write amp %.2f, "
			       "%" PRIu64 " puts refused, %" PRIu64
			       " deduped, %" PRIu64 " orphans dropped, "
			       "admission %s at the end (%" PRIu64
			       " switches; minis all/seen/notail %" PRIu64
			       "/%" PRIu64 "/%" PRIu64 " hits), wrong %" PRIu64
			       "\n",
			       pol_names[p], ours[p].capacity_blocks,
			       ours[p].held, ours[p].write_amp, ours[p].refused,
			       ours[p].deduped, ours[p].orphaned, ours[p].mode,
			       ours[p].switches,
			       ours[p].mini_hits[0], ours[p].mini_hits[1],
			       ours[p].mini_hits[2], ours[p].wrong);
	if (data != NULL) {
		fprintf(data, "%" PRIu64, tokens);
		for (unsigned p = 0; p < P_N; p++)
			if (s->want[p])
				fprintf(data, "\t%.5f", hit[p]);
		fprintf(data, "\n");
	}
}

/* Hit ratio against capacity, one line per policy, from the data file
 * sim_run wrote (a column per policy wanted, in pol_names order). */
static int
plot(const struct sim *s, const char *tsv)
{
	FILE *g = popen("gnuplot", "w");
	unsigned col = 2;
	int rc;

	if (g == NULL)
		return -errno;
	fprintf(g, "set terminal pngcairo noenhanced size 800,500\n"
		   "set output \"%s\"\nset logscale x\n"
		   "set xlabel \"capacity (tokens)\"\n"
		   "set ylabel \"block hit ratio (prefix hits)\"\n"
		   "set key left top\nset title \"%s\"\nplot ", s->plot_out,
		s->trace_name);
	for (unsigned p = 0; p < P_N; p++) {
		if (!s->want[p])
			continue;
		fprintf(g, "%s\"%s\" using 1:%u with linespoints title \"%s\"",
			col > 2 ? ", " : "", tsv, col,
			p == P_OURS ? "gpucached (sim)" : pol_names[p]);
		col++;
	}
	fprintf(g, "\n");
	rc = pclose(g);
	return rc == 0 ? 0 : -EIO;
}

static int
sim_run(struct sim *s, FILE *data)
{
	static const enum policy_mode modes[P_N] = {
		[P_OURS] = POLICY_AUTO, [P_ALL] = POLICY_ADMIT_ALL,
		[P_SEEN] = POLICY_ADMIT_SEEN, [P_NOTAIL] = POLICY_ADMIT_NOTAIL,
	};
	uint64_t wrong = 0;

	for (unsigned i = 0; i < s->ncaps; i++) {
		uint64_t cap = s->caps[i] / TRACE_BLOCK_TOKENS;
		struct result ours[P_N] = { 0 };
		double hit[P_N] = { 0 };

		if (s->want[P_LRU])
			hit[P_LRU] = run_lru(s, cap);
		if (s->want[P_BELADY])
			hit[P_BELADY] = run_belady(s, cap);
		for (unsigned p = P_OURS; p < P_N; p++) {
			if (!s->want[p])
				continue;
			if (run_seeds(s, cap, modes[p], &ours[p]) < 0)
				return 1;
			hit[p] = ours[p].hit;
			wrong += ours[p].wrong;
		}
		report(s, s->caps[i], hit, ours, data);
		if (s->want[P_OURS])
			printf("RESULT sim capacity=%" PRIu64 " lru=%.4f belady=%.4f "
			       "ours=%.4f ours_min=%.4f ours_max=%.4f "
			       "write_amp=%.3f wrong=%" PRIu64 "\n",
			       s->caps[i], hit[P_LRU], hit[P_BELADY],
			       hit[P_OURS], ours[P_OURS].hit_min,
			       ours[P_OURS].hit_max, ours[P_OURS].write_amp,
			       ours[P_OURS].wrong);
	}
	return wrong ? 1 : 0;
}

int
cli_sim(int argc, char **argv)
{
	struct sim s = { .block_bytes = 16u << 10, .segs = 64, .seeds = 1 };
	uint64_t max_req = 0;
	FILE *data = NULL;
	char tmp[] = "/tmp/gpucache-sim-XXXXXX";
	int rc;

	if (sim_parse(&s, argc, argv, &max_req) < 0)
		return 2;
	if (s.plot_out != NULL &&
	    (strpbrk(s.plot_out, "\"\n\\") != NULL ||
	     (s.data_out != NULL && strpbrk(s.data_out, "\"\n\\") != NULL) ||
	     system("command -v gnuplot >/dev/null 2>&1") != 0)) {
		fprintf(stderr, "gpucache sim: --plot needs gnuplot (apt-get "
			"install gnuplot-nox) and file names (--plot, --data) "
			"without quotes, backslashes or newlines\n");
		return 2;
	}
	for (unsigned i = 0; i < s.ncaps; i++) {
		uint64_t cap = s.caps[i] / TRACE_BLOCK_TOKENS;
		struct geom g = ours_geom(&s, cap);
		bool store = s.geometry;

		for (unsigned p = P_OURS; p < P_N; p++)
			store |= s.want[p];
		if (store && (cap < 1 || g.n * g.per > cap ||
			      g.chunk > (1u << 30))) {
			fprintf(stderr, "gpucache sim: capacity %" PRIu64
				" tokens (%" PRIu64 " blocks of %" PRIu64
				" bytes): no store of whole-MiB segments "
				"holds it (too %s)\n", s.caps[i], cap,
				s.block_bytes, g.chunk > (1u << 30) ?
				"large: try more --segments" : "small");
			return 2;
		}
	}
	if (s.geometry) { /* for a gpucached of the first capacity */
		uint64_t cap = s.caps[0] / TRACE_BLOCK_TOKENS;

		printf("chunk_size=%" PRIu64 " device_size=%" PRIu64
		       " dram_buffer=%" PRIu64 "\n", ours_chunk(&s, cap),
		       ours_dev_size(&s, cap), ours_dram(&s, cap));
		return 0;
	}
	if (trace_load(argv[optind], max_req, &s.t) < 0)
		return 1;
	s.trace_name = strrchr(argv[optind], '/');
	s.trace_name = s.trace_name != NULL ? s.trace_name + 1 : argv[optind];
	if (strpbrk(s.trace_name, "\"\n\\") != NULL)
		s.trace_name = "the trace";
	if (densify(&s) < 0) {
		trace_free(&s.t);
		return 1;
	}
	printf("sim: %" PRIu64 " requests, %" PRIu64 " block accesses, %"
	       PRIu64 " distinct blocks, %" PRIu64 "-byte blocks\n", s.t.nreq,
	       s.t.nids, s.nuniq, s.block_bytes);
	if (s.data_out != NULL && (data = fopen(s.data_out, "w")) == NULL)
		fprintf(stderr, "gpucache sim: %s: %s\n", s.data_out,
			strerror(errno));
	if (s.plot_out != NULL && s.data_out == NULL) {
		int fd = mkstemp(tmp);

		data = fd < 0 ? NULL : fdopen(fd, "w");
		if (data == NULL) {
			fprintf(stderr, "gpucache sim: %s: %s\n", tmp,
				strerror(errno));
			return 1;
		}
	}
	rc = sim_run(&s, data);
	if (data != NULL)
		fclose(data);
	if (rc == 0 && s.plot_out != NULL) {
		const char *tsv = s.data_out ? s.data_out : tmp;

		if (plot(&s, tsv) < 0) {
			fprintf(stderr, "gpucache sim: gnuplot could not draw "
				"%s\n", s.plot_out);
			rc = 1;
		} else {
			printf("plot: %s\n", s.plot_out);
		}
	}
	if (s.plot_out != NULL && s.data_out == NULL)
		unlink(tmp);
	free(s.dense);
	trace_free(&s.t);
	return rc;
}
