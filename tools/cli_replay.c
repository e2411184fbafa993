/*
 * cli_replay.c - `gpucache replay`: drive a running gpucached with an
 * LLM-serving trace in the Mooncake format (one JSON object per line with
 * input_length and hash_ids, ids of prefix-chained 512-token blocks), the
 * way an inference engine with a KV offload tier would: for each request,
 * LOOKUP the chain of block keys, GET the present prefix instead of
 * recomputing it, and PUT the blocks it had to prefill. Keys are chained
 * SHA-256 (gpc_key_chain) of the trace's ids, so equal prefixes meet.
 * Every block read back is compared with the bytes that were written.
 *
 * Prints hit ratio, prefill tokens saved, put and get GB/s and per-batch
 * latency percentiles, and a machine-readable RESULT line.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "gpucache/gpucache.h"
#include "server/config.h"
#include "server/hist.h"
#include "server/metrics_client.h"
#include "cli.h"
#include "trace.h"

#define BLOCK_TOKENS TRACE_BLOCK_TOKENS
#define MAX_CHAIN TRACE_MAX_CHAIN

struct replay {
	const char *url, *trace, *conf, *tenant;
	uint64_t block_bytes;
	unsigned batch, max_req;
	struct gpc_client *c;
	uint8_t *mem;
	struct gpc_mr *mr;
	uint64_t ns;
	unsigned ns_index;   /* --ns-index: which of a series of namespaces */
	char maddr[64];      /* the daemon's metrics endpoint (its config) */
	uint16_t mport;
	/* figures */
	uint64_t reqs, blocks, hits, tokens, saved, wrong, errors;
	uint64_t put_bytes, get_bytes, put_ns, get_ns;
	uint64_t used;       /* blocks confirmed used (the funnel's last) */
	unsigned lead;       /* this request's leading run of good blocks */
	bool lead_open;      /* no bad block in the run so far */
	struct hist hput, hget;
};

/* GET (put == false) or PUT blocks [from, to) of the chain, in batches. */
static int
xfer(struct replay *r, const uint8_t (*keys)[GPC_KEY_LEN], unsigned from,
     unsigned to, bool put)
{
	struct gpc_block b[64];
	struct gpc_iov v[64];

	for (unsigned i = from; i < to; i += r->batch) {
		unsigned n = to - i < r->batch ? to - i : r->batch;
		uint64_t t0;
		int rc;

		for (unsigned j = 0; j < n; j++) {
			uint8_t *p = r->mem + (uint64_t)j * r->block_bytes;

			v[j] = (struct gpc_iov){ p, r->block_bytes, r->mr };
			b[j] = (struct gpc_block){ keys[i + j], &v[j], 1, 0 };
			if (put)
				trace_block_fill(p, r->block_bytes, keys[i + j]);
		}
		t0 = clock_now_ns();
		rc = put ? gpc_put(r->c, r->ns, b, n, GPC_PUT_IF_ABSENT) : gpc_get(r->c, r->ns, b, n);
		t0 = clock_now_ns() - t0;
		if (rc < 0)
			return rc;
		hist_record(put ? &r->hput : &r->hget, t0);
		*(put ? &r->put_ns : &r->get_ns) += t0;
		for (unsigned j = 0; j < n; j++) {
			bool ok = put ? b[j].status == 0
				      : b[j].status == (int)r->block_bytes;

			if (!ok) {
				r->errors++;
				r->lead_open &= put;
				continue;
			}
			*(put ? &r->put_bytes : &r->get_bytes) += r->block_bytes;
			if (put)
				continue;
			if (!trace_block_check(r->mem + (uint64_t)j * r->block_bytes,
					       r->block_bytes, keys[i + j])) {
				r->wrong++;
				r->lead_open = false;
			} else if (r->lead_open) {
				r->lead++;
			}
		}
	}
	return 0;
}

/* One request of the trace. */
static int
request(struct replay *r, uint64_t input, const uint32_t *ids, unsigned n)
{
	static uint8_t keys[MAX_CHAIN][GPC_KEY_LEN];
	unsigned present = 0;
	int rc;

	rc = trace_chain_keys(ids, n, keys);
	if (rc < 0)
		return rc;
	rc = gpc_lookup(r->c, r->ns, &keys[0][0], n, 0, &present);
	r->lead = 0;
	r->lead_open = true;
	if (rc == 0)
		rc = xfer(r, (const uint8_t (*)[GPC_KEY_LEN])keys, 0, present,
			  false);
	/* what an engine would do: it uses the leading run of blocks that
	 * arrived intact, and says so (the funnel's last stage) */
	if (rc == 0 && r->lead > 0) {
		rc = gpc_confirm_used(r->c, r->ns, r->lead);
		r->used += r->lead;
	}
	if (rc == 0)
		rc = xfer(r, (const uint8_t (*)[GPC_KEY_LEN])keys, present, n,
			  true);
	r->reqs++;
	r->blocks += n;
	r->hits += present;
	r->tokens += input;
	r->saved += (uint64_t)present * BLOCK_TOKENS < input
			    ? (uint64_t)present * BLOCK_TOKENS : input;
	return rc;
}

static int
secret_of(struct replay *r, uint8_t *secret, size_t *len)
{
	static struct srv_config cfg;
	const struct srv_tenant *t;
	char err[512];

	srv_config_defaults(&cfg);
	if (srv_config_load(&cfg, r->conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "gpucache replay: %s\n", err);
		return -EINVAL;
	}
	t = r->tenant ? srv_config_tenant(&cfg, r->tenant)
		      : (cfg.ntenants ? &cfg.tenants[0] : NULL);
	if (t == NULL) {
		fprintf(stderr, "gpucache replay: no tenant %s in %s\n",
			r->tenant ? r->tenant : "at all", r->conf);
		return -EINVAL;
	}
	r->tenant = t->name;
	snprintf(r->maddr, sizeof(r->maddr), "%s",
		 strcmp(cfg.metrics_addr, "0.0.0.0") == 0 ? "127.0.0.1"
							  : cfg.metrics_addr);
	r->mport = cfg.metrics_port;
	memcpy(secret, t->secret, t->secret_len);
	*len = t->secret_len;
	if (r->url == NULL) {
		static char url[128];

		snprintf(url, sizeof(url), "gpc://127.0.0.1:%u", cfg.port);
		r->url = url;
	}
	return 0;
}

/* The daemon's capacity per tier, from its metrics (the same figure as
 * `gpucache sim` sizes its store by): printed, or a note why not. */
static void
report_capacity(const struct replay *r)
{
	double tier[2] = { 0, 0 }, rec; /* flash, dram */
	char *text = NULL, *line, *save = NULL;
	size_t len;
	int rc = r->mport ? srv_metrics_fetch(r->maddr, r->mport, 2000, &text,
					      &len)
			  : -ENOENT;

	if (rc < 0) {
		printf("  capacity         not known (metrics at %s:%u: %s)\n",
		       r->maddr, r->mport, strerror(-rc));
		return;
	}
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		struct srv_prom_sample sm;
		const char *t;

		if (srv_prom_parse_line(line, strlen(line), &sm) != 1 ||
		    strcmp(sm.name, "gpucache_capacity_bytes") != 0 ||
		    (t = srv_prom_label(&sm, "tier")) == NULL)
			continue;
		tier[strcmp(t, "flash") == 0 ? 0 : 1] += sm.value;
	}
	free(text);
	/* a block's record on flash: its data in 4 KiB sectors and a header
	 * sector (docs/format.md) */
	rec = (double)(((r->block_bytes + 4095) & ~(uint64_t)4095) + 4096);
	printf("  capacity         flash %.0f bytes: %.0f blocks of %" PRIu64
	       " bytes as records, %.2f M tokens; DRAM tier %.0f bytes "
	       "(inclusive: it holds copies of flash blocks)\n", tier[0],
	       tier[0] / rec, r->block_bytes,
	       tier[0] / rec * BLOCK_TOKENS / 1e6, tier[1]);
}

static void
report(struct replay *r, double secs)
{
	struct hist_snap sp, sg;
	double gb_put = r->put_bytes / 1e9, gb_get = r->get_bytes / 1e9;
	double hit = r->blocks ? (double)(r->get_bytes / r->block_bytes) /
					 (double)r->blocks : 0;

	hist_snapshot(&r->hput, &sp);
	hist_snapshot(&r->hget, &sg);
	printf("replay: %" PRIu64 " requests, %" PRIu64 " blocks of %" PRIu64
	       " bytes in %.1f s\n", r->reqs, r->blocks, r->block_bytes, secs);
	printf("  hit ratio        %.1f%% of blocks served from the tier\n",
	       100 * hit);
	printf("  prefill saved    %" PRIu64 " of %" PRIu64 " tokens (%.1f%%)\n",
	       r->saved, r->tokens, r->tokens ? 100.0 * r->saved / r->tokens : 0);
	printf("  put              %.2f GB at %.2f GB/s, batch p50 %.0f us "
	       "p99 %.0f us\n", gb_put, r->put_ns ? gb_put / (r->put_ns / 1e9) : 0,
	       hist_quantile(&sp, 0.5) / 1e3, hist_quantile(&sp, 0.99) / 1e3);
	printf("  get              %.2f GB at %.2f GB/s, batch p50 %.0f us "
	       "p99 %.0f us\n", gb_get, r->get_ns ? gb_get / (r->get_ns / 1e9) : 0,
	       hist_quantile(&sg, 0.5) / 1e3, hist_quantile(&sg, 0.99) / 1e3);
	printf("  used             %" PRIu64 " blocks confirmed to the daemon "
	       "(each request's leading run of intact blocks)\n", r->used);
	printf("  errors %" PRIu64 ", wrong bytes in %" PRIu64 " blocks\n",
	       r->errors, r->wrong);
	report_capacity(r);
	printf("RESULT hit_ratio=%.4f tokens_saved=%" PRIu64 " put_gbps=%.3f "
	       "get_gbps=%.3f get_p50_us=%.0f get_p99_us=%.0f wrong=%" PRIu64
	       "\n", hit, r->saved, r->put_ns ? gb_put / (r->put_ns / 1e9) : 0,
	       r->get_ns ? gb_get / (r->get_ns / 1e9) : 0,
	       hist_quantile(&sg, 0.5) / 1e3, hist_quantile(&sg, 0.99) / 1e3,
	       r->wrong);
}

static int
replay_parse(struct replay *r, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "config", required_argument, NULL, 'c' },
		{ "tenant", required_argument, NULL, 't' },
		{ "block-bytes", required_argument, NULL, 'b' },
		{ "batch", required_argument, NULL, 'B' },
		{ "max-requests", required_argument, NULL, 'n' },
		{ "ns-index", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'u': r->url = optarg; break;
		case 'c': r->conf = optarg; break;
		case 't': r->tenant = optarg; break;
		case 'b': r->block_bytes = (uint64_t)cli_parse_size(optarg); break;
		case 'B': r->batch = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'n': r->max_req = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'N': r->ns_index = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'h':
			printf("usage: gpucache replay --config GPUCACHED.CONF "
			       "[--tenant T] [--url gpc://host:port] [--block-bytes "
			       "64K] [--batch 16] [--max-requests N] [--ns-index K] "
			       "TRACE.jsonl\n"
			       "Block bytes default: Llama-3-8B, 128 KiB per token x "
			       "512 tokens, scaled down 1/1024. --ns-index K replays "
			       "into the K-th of a series of namespaces (other "
			       "fingerprints, as the sim's --seeds).\n");
			exit(0);
		default: return -1;
		}
	}
	if (optind != argc - 1 || r->conf == NULL || r->block_bytes < 1 ||
	    r->block_bytes > (64u << 20) || r->batch < 1 || r->batch > 64) {
		fprintf(stderr, "gpucache replay: need --config and one trace "
			"(see --help)\n");
		return -1;
	}
	r->trace = argv[optind];
	return 0;
}

static int
replay_run(struct replay *r, FILE *f)
{
	static uint32_t ids[MAX_CHAIN];
	char *line = NULL;
	size_t cap = 0;
	uint64_t t0 = clock_now_ns();
	int rc = 0;

	while (rc == 0 && getline(&line, &cap, f) > 0 &&
	       (r->max_req == 0 || r->reqs < r->max_req)) {
		uint64_t input;
		unsigned n;

		if (trace_parse_line(line, &input, ids, &n, MAX_CHAIN) < 0) {
			fprintf(stderr, "gpucache replay: %s: line %" PRIu64
				": not a trace record\n", r->trace, r->reqs + 1);
			rc = -EINVAL;
			break;
		}
		rc = request(r, input, ids, n);
	}
	free(line);
	if (rc < 0 && rc != -EINVAL)
		fprintf(stderr, "gpucache replay: %s\n", gpc_strerror(rc));
	report(r, (clock_now_ns() - t0) / 1e9);
	return rc;
}

int
cli_replay(int argc, char **argv)
{
	struct replay r = { .block_bytes = (128u << 10) * BLOCK_TOKENS / 1024,
			    .batch = 16 };
	struct gpc_connect_opts o = { .struct_size = sizeof(o) };
	uint8_t secret[256];
	FILE *f;
	int rc;

	if (replay_parse(&r, argc, argv) < 0 ||
	    secret_of(&r, secret, &o.secret_len) < 0)
		return 2;
	f = fopen(r.trace, "r");
	if (f == NULL) {
		fprintf(stderr, "gpucache replay: %s: %s\n", r.trace,
			strerror(errno));
		return 1;
	}
	o.tenant = r.tenant;
	o.secret = secret;
	hist_init(&r.hput);
	hist_init(&r.hget);
	r.ns = gpc_namespace("llama-3-8b/bf16/512tok", 22) + r.ns_index;
	rc = gpc_connect(r.url, &o, &r.c);
	if (rc == 0)
		rc = gpc_mem_alloc(r.c, r.block_bytes * r.batch, (void **)&r.mem,
				   &r.mr);
	if (rc < 0) {
		fprintf(stderr, "gpucache replay: %s: %s\n", r.url,
			gpc_strerror(rc));
		fclose(f);
		gpc_close(r.c);
		return 1;
	}
	rc = replay_run(&r, f);
	fclose(f);
	gpc_mem_deregister(r.c, r.mr);
	gpc_close(r.c);
	return (rc < 0 || r.wrong > 0 || r.errors > 0) ? 1 : 0;
}
