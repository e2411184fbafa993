/*
 * test_metrics.c - the latency histogram (quantiles against exact sorted
 * quantiles, merge), rendering (every line parsed back against the text
 * format, values checked), the summary printer, the HTTP endpoint on an
 * ephemeral loopback port, and single-writer counters and the store
 * seqlock under concurrent writers and renders (run it under TSan too).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gpucache/gpucache.h"
#include "server/hist.h"
#include "server/metrics.h"
#include "server/metrics_client.h"
#include "test.h"

#define NSAMPLES 200000u

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Log-uniform from 50 ns to ~50 s, with a few exact small values. */
static uint64_t
rand_latency(uint64_t *seed)
{
	uint64_t r = test_rand(seed);
	unsigned e = 5 + (unsigned)(r % 31);          /* 2^5 .. 2^35 */
	uint64_t lo = 1ull << e;

	if (r % 97 == 0)
		return r % 64;
	return lo + (test_rand(seed) % lo);
}

/* Within the histogram's bound: |got - want| <= want / 64. */
static bool
close_enough(uint64_t got, uint64_t want)
{
	uint64_t d = got > want ? got - want : want - got;

	return d * 64 <= want;
}

static void
test_hist_geometry(void)
{
	bool ok = true;

	for (unsigned i = 0; i < HIST_NBUCKETS - 1; i++) {
		uint64_t lo = hist_bucket_lo(i), w = hist_bucket_width(i);

		ok &= hist_bucket(lo) == i && hist_bucket(lo + w - 1) == i;
		ok &= hist_bucket_lo(i + 1) == lo + w;
		ok &= lo < 64 ? w == 1 : w * 32 <= lo;
	}
	CHECK(ok);
	CHECK(hist_bucket(UINT64_MAX) == HIST_NBUCKETS - 1);
	CHECK(hist_bucket(100000000000ull) < HIST_NBUCKETS - 1); /* 100 s */
}

static void
test_hist_quantiles(void)
{
	static const double qs[] = {0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1};
	uint64_t *v = malloc(NSAMPLES * sizeof(*v)), seed = 42, sum = 0;
	struct hist *h = malloc(sizeof(*h));
	struct hist_snap *s = malloc(sizeof(*s));

	REQUIRE(v && h && s);
	hist_init(h);
	for (unsigned i = 0; i < NSAMPLES; i++) {
		v[i] = rand_latency(&seed);
		sum += v[i];
		hist_record(h, v[i]);
	}
	hist_snapshot(h, s);
	qsort(v, NSAMPLES, sizeof(*v), cmp_u64);
	CHECK(s->count == NSAMPLES && s->sum == sum && s->max == v[NSAMPLES - 1]);
	for (unsigned i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		double x = qs[i] * NSAMPLES;
		uint64_t rank = (uint64_t)ceil(x), got, want;

		rank = rank == 0 ? 1 : rank;
		want = v[rank - 1];
		got = hist_quantile(s, qs[i]);
		if (!close_enough(got, want))
			fprintf(stderr, "q=%g got %lu want %lu\n", qs[i],
				(unsigned long)got, (unsigned long)want);
		CHECK(close_enough(got, want));
	}
	/* empty, and values past the top bucket answer max */
	hist_snap_clear(s);
	CHECK(hist_quantile(s, 0.5) == 0);
	hist_init(h);
	hist_record(h, 500ull * 1000000000ull);
	hist_snapshot(h, s);
	CHECK(hist_quantile(s, 0.99) == 500ull * 1000000000ull);
	free(v);
	free(h);
	free(s);
}

static void
test_hist_merge(void)
{
	struct hist *h = malloc(5 * sizeof(*h));
	struct hist_snap *all = malloc(sizeof(*all)), *m = malloc(sizeof(*m)),
			 *t = malloc(sizeof(*t));
	uint64_t seed = 7;

	REQUIRE(h && all && m && t);
	for (unsigned i = 0; i < 5; i++)
		hist_init(&h[i]);
	for (unsigned i = 0; i < 50000; i++) {
		uint64_t x = rand_latency(&seed);

		hist_record(&h[4], x);
		hist_record(&h[i % 4], x);
	}
	hist_snapshot(&h[4], all);
	hist_snap_clear(m);
	for (unsigned i = 0; i < 4; i++) {
		hist_snapshot(&h[i], t);
		hist_merge(m, t);
	}
	CHECK(memcmp(all, m, sizeof(*m)) == 0);
	CHECK(hist_quantile(m, 0.999) == hist_quantile(all, 0.999));
	CHECK(hist_count_le(m, UINT64_MAX) == m->count);
	free(h);
	free(all);
	free(m);
	free(t);
}

static void
test_parser(void)
{
	struct srv_prom_sample s;

	CHECK_RC(srv_prom_parse_line("", 0, &s), 0);
	CHECK_RC(srv_prom_parse_line("# HELP x y", 10, &s), 0);
	CHECK_RC(srv_prom_parse_line("a_b:c 1.5", 9, &s), 1);
	CHECK(strcmp(s.name, "a_b:c") == 0 && s.value == 1.5 && s.nlabels == 0);
	const char *l = "x{a=\"q\\\"\\\\\\n\",b=\"2\",} -Inf 1234";
	CHECK_RC(srv_prom_parse_line(l, strlen(l), &s), 1);
	CHECK(s.nlabels == 2 && strcmp(srv_prom_label(&s, "a"), "q\"\\\n") == 0);
	CHECK(isinf(s.value) && s.value < 0);
	CHECK_RC(srv_prom_parse_line("x NaN", 5, &s), 1);
	CHECK(isnan(s.value));
	static const char *const bad[] = {
		"x", "x{a=\"b\" 1", "1x 2", "x 1 2 3", "x{a=\"\\q\"} 1",
		"x{a=\"1\",a=\"2\"} 1", "x{a=b} 1", "x 1z", "x{a=\"1\"}1",
		"x 1 12a",
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_RC(srv_prom_parse_line(bad[i], strlen(bad[i]), &s), -EINVAL);
}

/* ---- rendering ---- */

static const char *
tname(void *ctx, unsigned t)
{
	static const char *const names[] = {"alice", NULL, "bob \"the\" \\b"};

	(void)ctx;
	return t < 3 ? names[t] : NULL;
}

static uint64_t
tquota(void *ctx, unsigned t)
{
	(void)ctx;
	return t == 0 ? 1ull << 30 : 0;
}

static const struct srv_metrics_src src = {
	.tenant_name = tname,
	.tenant_quota = tquota,
};

static void
fill(struct srv_metrics *m)
{
	struct srv_shard_metrics *s0 = srv_metrics_shard(m, 0),
				 *s1 = srv_metrics_shard(m, 1),
				 *s2 = srv_metrics_shard(m, 2);
	struct srv_store_snap snap;

	for (unsigned i = 0; i < 100; i++) {
		srv_metrics_op(s0, WIRE_OP_PUT, 0, 10000 + i * 100, 4096, 0);
		srv_metrics_op(s1, WIRE_OP_GET, i < 10 ? -GPC_ENOTFOUND : 0,
			       20000, 0, 8192);
	}
	srv_metrics_op(s1, WIRE_OP_PUT, -GPC_EBUSY, 1, 0, 0);
	srv_metrics_op(s1, 200, -GPC_ECORRUPT, 5, 0, 0);
	struct policy_reuse ru = { 0 };

	/* alice (0) in namespaces 7 and 8 (on both shards), bob (2) in 7
	 * and 9: each shard has rows for 3 (m's ns_rows), 2 a tenant, so
	 * bob's 9, the fourth on shard 0, is untracked */
	srv_metrics_tenant(s0, 0, 7, SRV_TENANT_PUT, 100, 409600);
	srv_metrics_tenant(s1, 0, 7, SRV_TENANT_HIT, 90, 90 * 8192);
	srv_metrics_tenant(s1, 0, 8, SRV_TENANT_MISS, 10, 0);
	srv_metrics_tenant(s1, 2, 7, SRV_TENANT_HIT, 3, 300);
	srv_metrics_tenant(s1, 99, 7, SRV_TENANT_HIT, 3, 300); /* ignored */
	srv_metrics_tenant_usage(s0, 0, 1000);
	srv_metrics_tenant_usage(s1, 0, 500);
	ru.n[1] = 4;  /* distances 2..3 */
	ru.n[4] = 1;  /* 16..31 */
	ru.n[27] = 2; /* 2^27 and beyond */
	ru.sum = 4 * 3 + 20 + 2 * (1ull << 27);
	ru.far = 6;
	srv_metrics_tenant_lookup(s0, 0, 7, 30, 0, NULL);
	srv_metrics_tenant_lookup(s0, 0, 8, 30, 12, &ru);
	srv_metrics_tenant_lookup(s1, 0, 8, 2000, 1500, &ru);
	srv_metrics_tenant_lookup(s1, 99, 8, 3, 3, &ru); /* ignored */
	srv_metrics_tenant_used(s0, 0, 7, 10);
	srv_metrics_tenant_used(s1, 0, 7, 7);
	srv_metrics_tenant_used(s0, 2, 7, 1);
	srv_metrics_tenant_used(s0, 2, 9, 1); /* shard 0 is full: untracked */
	/* shard 2: alice may have 2 rows of its 3, so her third namespace
	 * is untracked though a row is free */
	for (uint64_t ns = 11; s2 != NULL && ns <= 13; ns++)
		srv_metrics_tenant_used(s2, 0, ns, 0);
	srv_metrics_tenant_used(s1, 99, 7, 5); /* ignored */
	srv_metrics_conn(s0, 1);
	srv_metrics_conn(s0, 1);
	srv_metrics_conn(s1, -1);
	srv_metrics_auth_fail(s1);
	memset(&snap, 0, sizeof(snap));
	snap.stats.ndev = 4;
	snap.stats.ndev_failed = 1;
	snap.stats.degraded_reads = 7;
	snap.stats.blocks_evicted = 11;
	snap.stats.ec_cpu_ns = 1500000000;
	snap.dev_failed[2] = 1;
	snap.dram = (struct srv_dram_snap){ 4096, 1 << 20, 5, 9 };
	snap.stats.capacity_bytes = 1ull << 30;
	snap.stats.pol.reuse[3] = 2;
	snap.stats.pol.reuse_sum = 20;
	srv_metrics_publish_store(s0, &snap);
	snap.dev_failed[2] = 0;
	snap.stats.ndev_failed = 0;
	srv_metrics_publish_store(s1, &snap);
	/* shard 2 publishes nothing */
}

static bool
valid_type(const char *t)
{
	return !strcmp(t, "counter") || !strcmp(t, "gauge") ||
	       !strcmp(t, "summary") || !strcmp(t, "histogram");
}

/* Sample name -> family name, given the family's type. */
static bool
in_family(const char *name, const char *fam, const char *type)
{
	size_t fl = strlen(fam);

	if (strcmp(name, fam) == 0)
		return true;
	if (strncmp(name, fam, fl) != 0)
		return false;
	if (!strcmp(type, "histogram") && !strcmp(name + fl, "_bucket"))
		return true;
	return (!strcmp(type, "histogram") || !strcmp(type, "summary")) &&
	       (!strcmp(name + fl, "_sum") || !strcmp(name + fl, "_count"));
}

struct seen {
	char fam[SRV_PROM_NAME], type[32];
	char done[256][SRV_PROM_NAME]; /* families already closed */
	unsigned ndone, bad, samples;
};

static void
check_comment(struct seen *v, const char *line)
{
	char name[SRV_PROM_NAME], type[32];

	if (sscanf(line, "# TYPE %127s %31s", name, type) == 2) {
		for (unsigned i = 0; i < v->ndone; i++)
			v->bad += strcmp(v->done[i], name) == 0;
		if (v->ndone < 256)
			snprintf(v->done[v->ndone++], SRV_PROM_NAME, "%s", name);
		v->bad += !valid_type(type);
		v->bad += strncmp(name, "gpucache_", 9) != 0;
		v->bad += !strcmp(type, "counter") &&
			  strcmp(name + strlen(name) - 6, "_total") != 0;
		snprintf(v->fam, sizeof(v->fam), "%s", name);
		snprintf(v->type, sizeof(v->type), "%s", type);
	} else if (strncmp(line, "# HELP gpucache_", 16) != 0 &&
		   strncmp(line, "# gpucached", 11) != 0) {
		v->bad++;
	}
}

/* Every line well formed; each sample inside the family its # TYPE
 * opened last (families are contiguous and declared once). */
static void
check_wellformed(const char *text, size_t len)
{
	struct seen *v = calloc(1, sizeof(*v));
	struct srv_prom_sample s;
	const char *p = text, *nl;

	REQUIRE(v != NULL);
	CHECK(len > 0 && text[len - 1] == '\n' && strlen(text) == len);
	for (; p < text + len; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(text + len - p));
		REQUIRE(nl != NULL);
		char line[1024];
		size_t n = (size_t)(nl - p);
		REQUIRE(n < sizeof(line));
		memcpy(line, p, n);
		line[n] = '\0';
		int rc = srv_prom_parse_line(line, n, &s);
		if (rc == 0) {
			check_comment(v, line);
		} else if (rc != 1 || !in_family(s.name, v->fam, v->type)) {
			fprintf(stderr, "bad line: %s\n", line);
			v->bad++;
		} else {
			v->samples++;
		}
	}
	CHECK(v->bad == 0);
	CHECK(v->samples > 100);
	free(v);
}

/* Value of the sample "name{labels}" exactly as rendered; NAN if absent. */
static double
sample(const char *text, const char *key)
{
	char pat[512];
	const char *p;

	snprintf(pat, sizeof(pat), "\n%s ", key);
	p = strstr(text, pat);
	return p ? strtod(p + strlen(pat), NULL) : NAN;
}

static void
test_render(void)
{
	struct srv_metrics *m;
	char *text, *sum = NULL;
	size_t len, slen = 0;
	FILE *f;

	CHECK_RC(srv_metrics_create(0, 1, 2, 2, &m), -EINVAL);
	CHECK_RC(srv_metrics_create(1, 0, 2, 2, &m), -EINVAL);
	CHECK_RC(srv_metrics_create(1, 1, 2, 3, &m), -EINVAL);
	CHECK_RC(srv_metrics_create(1, 1, SRV_METRICS_MAX_NS_ROWS + 1, 1, &m),
		 -EINVAL);
	REQUIRE(srv_metrics_create(3, 4, 3, 2, &m) == 0);
	CHECK(srv_metrics_shard(m, 3) == NULL);
	CHECK(((uintptr_t)srv_metrics_shard(m, 1) % SRV_CACHELINE) == 0);
	CHECK(((uintptr_t)srv_metrics_shard(m, 2) % SRV_CACHELINE) == 0);
	fill(m);
	REQUIRE(srv_metrics_render(m, &src, &text, &len) == 0);
	check_wellformed(text, len);
	CHECK(sample(text, "gpucache_requests_total{op=\"put\"}") == 101);
	CHECK(sample(text, "gpucache_requests_total{op=\"get\"}") == 100);
	CHECK(sample(text, "gpucache_requests_total{op=\"unknown\"}") == 1);
	CHECK(sample(text, "gpucache_request_errors_total{op=\"get\"}") == 10);
	CHECK(sample(text, "gpucache_request_errors_total{op=\"put\"}") == 0);
	CHECK(sample(text, "gpucache_busy_rejections_total{op=\"put\"}") == 1);
	CHECK(sample(text, "gpucache_received_bytes_total{op=\"put\"}") == 409600);
	CHECK(sample(text, "gpucache_sent_bytes_total{op=\"get\"}") == 819200);
	CHECK(sample(text, "gpucache_request_latency_seconds_count{op=\"put\"}") == 100);
	CHECK(fabs(sample(text, "gpucache_request_latency_seconds{op=\"get\",quantile=\"0.99\"}") - 20e-6) < 20e-6 / 64);
	CHECK(isnan(sample(text, "gpucache_request_latency_seconds{op=\"stat\",quantile=\"0.5\"}")));
	CHECK(sample(text, "gpucache_request_duration_seconds_bucket{op=\"put\",le=\"2.5e-05\"}") == 100);
	/* 10000, 10100 and 10200 ns share 10000's bucket: le is "<=" to
	 * within one bucket */
	CHECK(sample(text, "gpucache_request_duration_seconds_bucket{op=\"put\",le=\"1e-05\"}") == 3);
	CHECK(sample(text, "gpucache_request_duration_seconds_bucket{op=\"get\",le=\"+Inf\"}") == 100);
	CHECK(sample(text, "gpucache_tenant_gets_total{tenant=\"alice\"}") == 100);
	CHECK(sample(text, "gpucache_tenant_hits_total{tenant=\"alice\"}") == 90);
	CHECK(sample(text, "gpucache_tenant_quota_used_bytes{tenant=\"alice\"}") == 1500);
	CHECK(sample(text, "gpucache_tenant_quota_limit_bytes{tenant=\"alice\"}") == 1073741824);
	CHECK(sample(text, "gpucache_tenant_served_bytes_total{tenant=\"bob \\\"the\\\" \\\\b\"}") == 300);
	CHECK(strstr(text, "tenant=\"1\"") == NULL); /* unnamed: not exported */
	/* the DRAM tier, the tiers' capacities, the reuse histogram */
	CHECK(sample(text, "gpucache_dram_tier_bytes{shard=\"0\"}") == 4096);
	CHECK(sample(text, "gpucache_dram_tier_promotions_total{shard=\"0\"}") == 9);
	CHECK(sample(text, "gpucache_capacity_bytes{shard=\"0\",tier=\"flash\"}") == 1073741824);
	CHECK(sample(text, "gpucache_capacity_bytes{shard=\"0\",tier=\"dram\"}") == 1048576);
	CHECK(sample(text, "gpucache_policy_reuse_distance_references_bucket{shard=\"0\",le=\"7\"}") == 0);
	CHECK(sample(text, "gpucache_policy_reuse_distance_references_bucket{shard=\"0\",le=\"15\"}") == 2);
	CHECK(sample(text, "gpucache_policy_reuse_distance_references_count{shard=\"0\"}") == 2);
	/* the hit funnel and the found-prefix histogram */
	CHECK(sample(text, "gpucache_tenant_lookup_keys_total{tenant=\"alice\"}") == 2060);
	CHECK(sample(text, "gpucache_tenant_lookup_found_total{tenant=\"alice\"}") == 1512);
	CHECK(sample(text, "gpucache_tenant_used_blocks_total{tenant=\"alice\"}") == 17);
	CHECK(sample(text, "gpucache_tenant_used_blocks_total{tenant=\"bob \\\"the\\\" \\\\b\"}") == 2);
	/* per tenant: the reuse its lookups showed, two policy buckets per
	 * bucket (le 3 holds [2, 4); 31 holds [16, 32)) */
	CHECK(sample(text, "gpucache_tenant_reuse_distance_references_bucket{tenant=\"alice\",le=\"3\"}") == 8);
	CHECK(sample(text, "gpucache_tenant_reuse_distance_references_bucket{tenant=\"alice\",le=\"15\"}") == 8);
	CHECK(isnan(sample(text, "gpucache_tenant_reuse_distance_references_bucket{tenant=\"alice\",le=\"7\"}")));
	CHECK(sample(text, "gpucache_tenant_reuse_distance_references_bucket{tenant=\"alice\",le=\"63\"}") == 10);
	CHECK(sample(text, "gpucache_tenant_reuse_distance_references_bucket{tenant=\"alice\",le=\"134217727\"}") == 10);
	CHECK(sample(text, "gpucache_tenant_reuse_distance_references_bucket{tenant=\"alice\",le=\"+Inf\"}") == 14);
	CHECK(sample(text, "gpucache_tenant_reuse_distance_references_count{tenant=\"alice\"}") == 14);
	CHECK(sample(text, "gpucache_tenant_reuse_distance_references_sum{tenant=\"alice\"}") == 2.0 * (32 + 2 * (1ull << 27)));
	CHECK(sample(text, "gpucache_tenant_reuse_beyond_total{tenant=\"alice\"}") == 12);
	/* per namespace: summed over the shards that have its row */
	CHECK(sample(text, "gpucache_namespaces") == 5);
	CHECK(sample(text, "gpucache_namespace_untracked_total") == 2);
	CHECK(sample(text, "gpucache_namespace_used_blocks_total{tenant=\"alice\",ns=\"12\"}") == 0);
	CHECK(isnan(sample(text, "gpucache_namespace_used_blocks_total{tenant=\"alice\",ns=\"13\"}")));
	CHECK(sample(text, "gpucache_namespace_puts_total{tenant=\"alice\",ns=\"7\"}") == 100);
	CHECK(sample(text, "gpucache_namespace_hits_total{tenant=\"alice\",ns=\"7\"}") == 90);
	CHECK(sample(text, "gpucache_namespace_misses_total{tenant=\"alice\",ns=\"8\"}") == 10);
	CHECK(sample(text, "gpucache_namespace_used_blocks_total{tenant=\"alice\",ns=\"7\"}") == 17);
	CHECK(sample(text, "gpucache_namespace_lookup_keys_total{tenant=\"alice\",ns=\"7\"}") == 30);
	CHECK(sample(text, "gpucache_namespace_lookup_keys_total{tenant=\"alice\",ns=\"8\"}") == 2030);
	CHECK(sample(text, "gpucache_namespace_lookup_found_total{tenant=\"alice\",ns=\"8\"}") == 1512);
	CHECK(sample(text, "gpucache_namespace_lookup_prefix_blocks_bucket{tenant=\"alice\",ns=\"8\",le=\"16\"}") == 1);
	CHECK(sample(text, "gpucache_namespace_lookup_prefix_blocks_count{tenant=\"alice\",ns=\"8\"}") == 2);
	CHECK(sample(text, "gpucache_namespace_reuse_distance_references_count{tenant=\"alice\",ns=\"8\"}") == 14);
	CHECK(sample(text, "gpucache_namespace_reuse_distance_references_count{tenant=\"alice\",ns=\"7\"}") == 0);
	CHECK(sample(text, "gpucache_namespace_reuse_beyond_total{tenant=\"alice\",ns=\"8\"}") == 12);
	CHECK(sample(text, "gpucache_namespace_hits_total{tenant=\"bob \\\"the\\\" \\\\b\",ns=\"7\"}") == 3);
	CHECK(sample(text, "gpucache_namespace_used_blocks_total{tenant=\"bob \\\"the\\\" \\\\b\",ns=\"7\"}") == 1);
	CHECK(isnan(sample(text, "gpucache_namespace_used_blocks_total{tenant=\"bob \\\"the\\\" \\\\b\",ns=\"9\"}")));
	CHECK(sample(text, "gpucache_tenant_lookup_prefix_blocks_bucket{tenant=\"alice\",le=\"0\"}") == 1);
	CHECK(sample(text, "gpucache_tenant_lookup_prefix_blocks_bucket{tenant=\"alice\",le=\"4\"}") == 1);
	CHECK(sample(text, "gpucache_tenant_lookup_prefix_blocks_bucket{tenant=\"alice\",le=\"16\"}") == 2);
	CHECK(sample(text, "gpucache_tenant_lookup_prefix_blocks_bucket{tenant=\"alice\",le=\"1024\"}") == 2);
	CHECK(sample(text, "gpucache_tenant_lookup_prefix_blocks_bucket{tenant=\"alice\",le=\"+Inf\"}") == 3);
	CHECK(sample(text, "gpucache_tenant_lookup_prefix_blocks_sum{tenant=\"alice\"}") == 1512);
	CHECK(sample(text, "gpucache_tenant_lookup_prefix_blocks_count{tenant=\"alice\"}") == 3);
	CHECK(sample(text, "gpucache_shard_requests_total{shard=\"1\"}") == 102);
	CHECK(sample(text, "gpucache_connections_open") == 1);
	CHECK(sample(text, "gpucache_connections_total") == 2);
	CHECK(sample(text, "gpucache_auth_failures_total") == 1);
	CHECK(sample(text, "gpucache_payload_copy_bytes_total") == 0);
	CHECK(sample(text, "gpucache_device_healthy{shard=\"0\",device=\"2\"}") == 0);
	CHECK(sample(text, "gpucache_device_healthy{shard=\"1\",device=\"2\"}") == 1);
	CHECK(sample(text, "gpucache_store_degraded_reads_total{shard=\"1\"}") == 7);
	CHECK(sample(text, "gpucache_store_ec_cpu_seconds_total{shard=\"0\"}") == 1.5);
	CHECK(strstr(text, "shard=\"2\",device") == NULL);
	CHECK(isnan(sample(text, "gpucache_store_evicted_blocks_total{shard=\"2\"}")));

	f = open_memstream(&sum, &slen);
	REQUIRE(f != NULL);
	CHECK_RC(srv_metrics_summary(f, text, len), 0);
	fclose(f);
	CHECK(strstr(sum, "  put ") != NULL && strstr(sum, "alice") != NULL);
	CHECK(strstr(sum, "90.0") != NULL);  /* alice's hit ratio */
	CHECK(strstr(sum, "fetched -> 17 used") != NULL); /* the funnel */
	CHECK(strstr(sum, "alice ns 8") != NULL); /* per namespace */
	CHECK(strstr(sum, "2030 keys looked up -> 1512 found") != NULL);
	CHECK(strstr(sum, "devices: 7 healthy, 1 failed") != NULL);
	CHECK(strstr(sum, "0/2: FAILED") != NULL);
	CHECK(strstr(sum, "14 degraded reads, 22 blocks evicted") != NULL);
	CHECK(strstr(sum, "payload copies: 0 bytes") != NULL);
	if (getenv("TEST_VERBOSE") != NULL)
		fputs(sum, stdout);
	free(sum);
	free(text);
	srv_metrics_destroy(m);
}

/* Namespace rows go, once all are taken, to new namespaces in place of
 * rows idle 10 minutes (of the shard's clock): the oldest first, and
 * within a tenant's share only its own. */
static void
test_ns_recycle(void)
{
	struct srv_metrics *m;
	struct srv_shard_metrics *s;
	char *text;
	size_t len;

	REQUIRE(srv_metrics_create(1, 2, 3, 2, &m) == 0);
	s = srv_metrics_shard(m, 0);
	srv_metrics_clock(s, 1000);
	srv_metrics_tenant_used(s, 0, 1, 1); /* alice: 1 and 2 (her share) */
	srv_metrics_tenant_used(s, 0, 2, 1);
	srv_metrics_tenant_used(s, 1, 9, 1); /* bob: 9 (the table full) */
	srv_metrics_clock(s, 1100);
	srv_metrics_tenant_used(s, 0, 2, 1);
	srv_metrics_tenant_used(s, 1, 8, 1); /* none idle: untracked */
	srv_metrics_clock(s, 1650);          /* 1 and 9 idle 650 s, 2 550 s */
	srv_metrics_tenant_used(s, 0, 3, 1); /* alice at her share: her 1 */
	srv_metrics_tenant_used(s, 0, 3, 1);
	srv_metrics_tenant_used(s, 1, 8, 1); /* bob under his: 9, not 2 */
	srv_metrics_clock(s, 1720);          /* 2 idle 620 s */
	srv_metrics_tenant_used(s, 1, 7, 1); /* bob under his: alice's 2 */
	REQUIRE(srv_metrics_render(m, NULL, &text, &len) == 0);
	check_wellformed(text, len);
	CHECK(sample(text, "gpucache_namespaces") == 3);
	CHECK(isnan(sample(text, "gpucache_namespace_used_blocks_total{tenant=\"0\",ns=\"1\"}")));
	CHECK(isnan(sample(text, "gpucache_namespace_used_blocks_total{tenant=\"0\",ns=\"2\"}")));
	CHECK(sample(text, "gpucache_namespace_used_blocks_total{tenant=\"0\",ns=\"3\"}") == 2);
	CHECK(isnan(sample(text, "gpucache_namespace_used_blocks_total{tenant=\"1\",ns=\"9\"}")));
	CHECK(sample(text, "gpucache_namespace_used_blocks_total{tenant=\"1\",ns=\"8\"}") == 1);
	CHECK(sample(text, "gpucache_namespace_used_blocks_total{tenant=\"1\",ns=\"7\"}") == 1);
	CHECK(sample(text, "gpucache_namespace_untracked_total") == 1);
	/* the tenants' own figures lose nothing */
	CHECK(sample(text, "gpucache_tenant_used_blocks_total{tenant=\"0\"}") == 5);
	CHECK(sample(text, "gpucache_tenant_used_blocks_total{tenant=\"1\"}") == 4);
	free(text);
	srv_metrics_destroy(m);
}

/* ---- HTTP ---- */

/* Send "method path" to 127.0.0.1:port; the status code, and whether the
 * response carries hdr. -1 on a socket error. */
static int
raw_http(uint16_t port, const char *method, const char *path, const char *hdr,
	 bool *has_hdr)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	char req[256], resp[8192];
	size_t n = 0;
	ssize_t r;
	int fd, code = -1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out;
	snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\n\r\n", method, path);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		goto out;
	while (n < sizeof(resp) - 1 &&
	       (r = read(fd, resp + n, sizeof(resp) - 1 - n)) > 0)
		n += (size_t)r;
	resp[n] = '\0';
	if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1)
		code = -1;
	if (has_hdr != NULL)
		*has_hdr = strstr(resp, hdr) != NULL;
out:
	if (fd >= 0)
		close(fd);
	return code;
}

static void
test_http(void)
{
	struct srv_metrics *m;
	struct srv_metrics_http *h;
	char *body, *text;
	size_t blen, tlen;
	bool ct = false;
	uint16_t port;

	REQUIRE(srv_metrics_create(2, 3, 16, 16, &m) == 0);
	fill(m);
	CHECK_RC(srv_metrics_http_start(m, &src, "not-an-ip", 0, &h), -EINVAL);
	REQUIRE(srv_metrics_http_start(m, &src, "127.0.0.1", 0, &h) == 0);
	port = srv_metrics_http_port(h);
	CHECK(port != 0);
	CHECK_RC(raw_http(port, "GET", "/metrics",
			  "text/plain; version=0.0.4", &ct), 200);
	CHECK(ct);
	CHECK_RC(raw_http(port, "HEAD", "/metrics", "", NULL), 200);
	CHECK_RC(raw_http(port, "GET", "/other", "", NULL), 404);
	CHECK_RC(raw_http(port, "GET", "/", "", NULL), 404);
	CHECK_RC(raw_http(port, "POST", "/metrics", "Allow: GET", &ct), 405);
	CHECK(ct);
	REQUIRE(srv_metrics_fetch("127.0.0.1", port, 2000, &body, &blen) == 0);
	REQUIRE(srv_metrics_render(m, &src, &text, &tlen) == 0);
	CHECK(blen == tlen && memcmp(body, text, blen) == 0);
	CHECK(strstr(body, "gpucache_requests_total{op=\"put\"} 101\n") != NULL);
	CHECK(strstr(body, "# TYPE gpucache_request_latency_seconds summary\n") != NULL);
	free(body);
	free(text);
	CHECK_RC(srv_metrics_fetch("localhost", port, 2000, &body, &blen), 0);
	free(body);
	srv_metrics_http_stop(h);
	CHECK_RC(srv_metrics_fetch("127.0.0.1", port, 2000, &body, &blen),
		 -ECONNREFUSED);
	/* IPv6 loopback, where the host has it */
	if (srv_metrics_http_start(m, NULL, "::1", 0, &h) == 0) {
		CHECK_RC(srv_metrics_fetch("::1", srv_metrics_http_port(h),
					   2000, &body, &blen), 0);
		CHECK(strstr(body, "tenant=\"2\"") != NULL); /* no names */
		free(body);
		srv_metrics_http_stop(h);
	}
	srv_metrics_http_stop(NULL);
	srv_metrics_destroy(m);
	srv_metrics_destroy(NULL);
}

/* ---- concurrency: one writer per shard, renders and HTTP reading ---- */

struct writer {
	struct srv_shard_metrics *s;
	atomic_bool *stop;
	uint64_t ops;
};

/* Every uint64 field of the published snapshot equals the same i, and
 * every device byte equals i & 1: a torn read shows up as a mismatch. */
static void
snap_make(struct srv_store_snap *snap, uint64_t i)
{
	memset(snap, 0, sizeof(*snap));
	snap->stats.puts = snap->stats.gets = snap->stats.hits = i;
	snap->stats.degraded_reads = snap->stats.blocks_evicted = i;
	snap->stats.data_bytes = snap->stats.recovery_ns = i;
	snap->stats.ndev = STORE_MAX_DEVS;
	memset(snap->dev_failed, (int)(i & 1), sizeof(snap->dev_failed));
}

static bool
snap_consistent(const struct srv_store_snap *snap)
{
	const struct store_stats *st = &snap->stats;
	uint64_t i = st->puts;
	bool ok = st->gets == i && st->hits == i && st->degraded_reads == i &&
		  st->blocks_evicted == i && st->data_bytes == i &&
		  st->recovery_ns == i;

	for (unsigned d = 0; d < STORE_MAX_DEVS; d++)
		ok &= snap->dev_failed[d] == (i & 1);
	return ok;
}

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct srv_store_snap snap;
	uint64_t i = 0;

	while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
		for (unsigned j = 0; j < 64; j++, i++) {
			srv_metrics_op(w->s, WIRE_OP_GET, 0, 1000 + i % 5000,
				       0, 4096);
			/* a new namespace every 4096 events and a second
			 * every 64: rows are added, fill up, go idle and
			 * are given to new namespaces while renders read
			 * them */
			srv_metrics_clock(w->s, i / 64);
			srv_metrics_tenant(w->s, 0, i / 4096, SRV_TENANT_HIT, 1,
					   4096);
			srv_metrics_tenant_usage(w->s, 0, i);
		}
		srv_metrics_conn(w->s, 1);
		srv_metrics_conn(w->s, -1);
		snap_make(&snap, i);
		srv_metrics_publish_store(w->s, &snap);
	}
	w->ops = i;
	return NULL;
}

struct pub {
	struct srv_shard_metrics *s;
	atomic_bool *stop;
};

static void *
publisher_main(void *arg)
{
	struct pub *p = arg;
	struct srv_store_snap snap;

	for (uint64_t i = 1; !atomic_load_explicit(p->stop,
						   memory_order_relaxed); i++) {
		snap_make(&snap, i);
		srv_metrics_publish_store(p->s, &snap);
	}
	return NULL;
}

/* The seqlock alone: a writer publishing back to back, a reader reading
 * back to back; no read may mix two publications. */
static void
test_seqlock(void)
{
	struct srv_metrics *m;
	struct srv_store_snap snap;
	atomic_bool stop;
	struct pub p;
	pthread_t th;
	unsigned ok = 0, torn = 0, busy = 0;
	struct timespec t0, t1;

	REQUIRE(srv_metrics_create(1, 1, 0, 0, &m) == 0);
	p = (struct pub){srv_metrics_shard(m, 0), &stop};
	CHECK_RC(srv_metrics_read_store(p.s, &snap), -ENOENT);
	atomic_init(&stop, false);
	REQUIRE(pthread_create(&th, NULL, publisher_main, &p) == 0);
	while (srv_metrics_read_store(p.s, &snap) == -ENOENT)
		sched_yield();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		for (unsigned i = 0; i < 1000; i++) {
			int rc = srv_metrics_read_store(p.s, &snap);

			if (rc == 0) {
				ok++;
				torn += !snap_consistent(&snap);
			} else {
				busy += rc == -EAGAIN;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while ((t1.tv_sec - t0.tv_sec) * 1000000000L +
		 (t1.tv_nsec - t0.tv_nsec) < 150000000L);
	atomic_store(&stop, true);
	pthread_join(th, NULL);
	CHECK(ok > 0);
	CHECK(torn == 0);
	printf("seqlock: %u reads, %u torn, %u retried out\n", ok, torn, busy);
	srv_metrics_destroy(m);
}

static void
test_concurrent(void)
{
	struct srv_metrics *m;
	struct srv_metrics_http *h;
	struct writer w[2];
	pthread_t th[2];
	atomic_bool stop;
	struct srv_store_snap snap;
	double last = 0;
	unsigned renders = 0, reads = 0, torn = 0, mono = 0, fetched = 0;
	struct timespec t0, t1;

	REQUIRE(srv_metrics_create(2, 1, 64, 64, &m) == 0);
	REQUIRE(srv_metrics_http_start(m, NULL, "127.0.0.1", 0, &h) == 0);
	atomic_init(&stop, false);
	for (unsigned i = 0; i < 2; i++) {
		w[i] = (struct writer){srv_metrics_shard(m, i), &stop, 0};
		REQUIRE(pthread_create(&th[i], NULL, writer_main, &w[i]) == 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		char *text;
		size_t len;

		REQUIRE(srv_metrics_render(m, NULL, &text, &len) == 0);
		double v = sample(text, "gpucache_requests_total{op=\"get\"}");
		mono += v < last;
		last = v;
		renders++;
		free(text);
		for (unsigned i = 0; i < 2; i++) {
			int rc = srv_metrics_read_store(srv_metrics_shard(m, i),
							&snap);
			if (rc == 0) {
				reads++;
				torn += !snap_consistent(&snap);
			}
		}
		if (renders % 8 == 0 &&
		    srv_metrics_fetch("127.0.0.1", srv_metrics_http_port(h),
				      2000, &text, &len) == 0) {
			fetched++;
			free(text);
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while ((t1.tv_sec - t0.tv_sec) * 1000000000L +
		 (t1.tv_nsec - t0.tv_nsec) < 400000000L);
	atomic_store(&stop, true);
	for (unsigned i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	srv_metrics_http_stop(h);
	CHECK(renders > 2 && reads > 0 && fetched > 0);
	CHECK(torn == 0);
	CHECK(mono == 0);
	/* quiescent: the totals are exact */
	{
		char *text;
		size_t len;

		REQUIRE(srv_metrics_render(m, NULL, &text, &len) == 0);
		CHECK(sample(text, "gpucache_requests_total{op=\"get\"}") ==
		      (double)(w[0].ops + w[1].ops));
		CHECK(sample(text, "gpucache_tenant_hits_total{tenant=\"0\"}") ==
		      (double)(w[0].ops + w[1].ops));
		/* every row is one namespace's, never a mix: at most its
		 * 4096 events on each of the two shards */
		{
			const char *p = text, *q = "\ngpucache_namespace_hits_total{";
			unsigned rows = 0, bad = 0;

			while ((p = strstr(p + 1, q)) != NULL) {
				double v = strtod(strchr(p, '}') + 1, NULL);

				rows++;
				bad += !(v >= 1 && v <= 2 * 4096);
			}
			CHECK(rows >= 1 && rows <= 2 * 64);
			CHECK_RC(bad, 0);
		}
		CHECK(sample(text, "gpucache_connections_open") == 0);
		/* the rows filled while renders read them, and the
		 * first went to later namespaces */
		CHECK(sample(text, "gpucache_namespaces") >= 64);
		CHECK(isnan(sample(text, "gpucache_namespace_hits_total{tenant=\"0\",ns=\"0\"}")));
		free(text);
	}
	printf("concurrent: %u renders, %u snapshot reads, %u fetches, "
	       "%lu writes\n", renders, reads, fetched,
	       (unsigned long)(w[0].ops + w[1].ops));
	srv_metrics_destroy(m);
}

int
main(void)
{
	test_hist_geometry();
	test_hist_quantiles();
	test_hist_merge();
	test_parser();
	test_render();
	test_ns_recycle();
	test_http();
	test_seqlock();
	test_concurrent();
	return test_summary("metrics");
}
