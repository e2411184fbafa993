/*
 * metrics_client.c - fetch, parse and summarise gpucached's /metrics
 * (used by `gpucache stat` and the tests).
 *
 * The fetch is deliberately small: one blocking TCP connection, an
 * HTTP/1.0 request (so the answer is never chunked), read to EOF, check
 * the status line, honour Content-Length. The parser follows the text
 * format 0.0.4 grammar strictly (name, optional labels with escapes,
 * a float value, an optional integer timestamp) and never reads past the
 * line it is given. The summary keys everything it prints by label value
 * in small tables, so it depends on metric names, not on line order.
 */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "metrics_client.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define FETCH_MAX (256u << 20)

/* ---- parsing ---- */

struct cur {
	const char *p, *end;
};

static void
skip_ws(struct cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
}

static bool
name_char(char ch, size_t pos, bool colon_ok)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       ch == '_' || (colon_ok && ch == ':') ||
	       (pos > 0 && ch >= '0' && ch <= '9');
}

static int
parse_name(struct cur *c, char *out, bool colon_ok)
{
	size_t n = 0;

	while (c->p < c->end && name_char(*c->p, n, colon_ok)) {
		if (n + 1 >= SRV_PROM_NAME)
			return -EINVAL;
		out[n++] = *c->p++;
	}
	if (n == 0)
		return -EINVAL;
	out[n] = '\0';
	return 0;
}

static int
parse_lval(struct cur *c, char *out)
{
	size_t n = 0;
	char ch;

	if (c->p >= c->end || *c->p != '"')
		return -EINVAL;
	c->p++;
	for (;;) {
		if (c->p >= c->end)
			return -EINVAL;
		ch = *c->p++;
		if (ch == '"')
			break;
		if (ch == '\\') {
			if (c->p >= c->end)
				return -EINVAL;
			ch = *c->p++;
			if (ch == 'n')
				ch = '\n';
			else if (ch != '\\' && ch != '"')
				return -EINVAL;
		}
		if (n + 1 >= SRV_PROM_LVAL)
			return -EINVAL;
		out[n++] = ch;
	}
	out[n] = '\0';
	return 0;
}

static int
parse_label(struct cur *c, struct srv_prom_sample *s)
{
	struct srv_prom_label *l;

	if (s->nlabels == SRV_PROM_MAX_LABELS)
		return -EINVAL;
	l = &s->label[s->nlabels];
	if (parse_name(c, l->key, false) < 0)
		return -EINVAL;
	skip_ws(c);
	if (c->p >= c->end || *c->p != '=')
		return -EINVAL;
	c->p++;
	skip_ws(c);
	if (parse_lval(c, l->val) < 0)
		return -EINVAL;
	if (srv_prom_label(s, l->key) != NULL)
		return -EINVAL; /* duplicate label */
	s->nlabels++;
	return 0;
}

/* At '{': labels up to and including '}' (a trailing comma is allowed). */
static int
parse_labels(struct cur *c, struct srv_prom_sample *s)
{
	c->p++;
	for (;;) {
		skip_ws(c);
		if (c->p < c->end && *c->p == '}')
			break;
		if (parse_label(c, s) < 0)
			return -EINVAL;
		skip_ws(c);
		if (c->p < c->end && *c->p == ',') {
			c->p++;
			continue;
		}
		if (c->p < c->end && *c->p == '}')
			break;
		return -EINVAL;
	}
	c->p++;
	return 0;
}

/* A whitespace-delimited token into buf[cap]; 0 or -EINVAL. */
static int
parse_token(struct cur *c, char *buf, size_t cap)
{
	size_t n = 0;

	while (c->p < c->end && *c->p != ' ' && *c->p != '\t') {
		if (n + 1 >= cap)
			return -EINVAL;
		buf[n++] = *c->p++;
	}
	buf[n] = '\0';
	return n > 0 ? 0 : -EINVAL;
}

static int
parse_value(struct cur *c, struct srv_prom_sample *s)
{
	char buf[64], *end;
	const char *q;

	if (parse_token(c, buf, sizeof(buf)) < 0)
		return -EINVAL;
	s->value = strtod(buf, &end);
	if (*end != '\0')
		return -EINVAL;
	skip_ws(c);
	if (c->p == c->end)
		return 0;
	if (parse_token(c, buf, sizeof(buf)) < 0) /* timestamp, ms */
		return -EINVAL;
	q = buf[0] == '-' ? buf + 1 : buf;
	if (*q == '\0' || strspn(q, "0123456789") != strlen(q))
		return -EINVAL;
	skip_ws(c);
	return c->p == c->end ? 0 : -EINVAL;
}

int
srv_prom_parse_line(const char *line, size_t len, struct srv_prom_sample *out)
{
	struct cur c = {line, line + len};

	if (len > 0 && line[len - 1] == '\r')
		c.end--;
	skip_ws(&c);
	if (c.p == c.end || *c.p == '#')
		return 0;
	out->nlabels = 0;
	if (parse_name(&c, out->name, true) < 0)
		return -EINVAL;
	if (c.p < c.end && *c.p == '{' && parse_labels(&c, out) < 0)
		return -EINVAL;
	if (c.p >= c.end || (*c.p != ' ' && *c.p != '\t'))
		return -EINVAL;
	skip_ws(&c);
	return parse_value(&c, out) < 0 ? -EINVAL : 1;
}

const char *
srv_prom_label(const struct srv_prom_sample *s, const char *key)
{
	for (unsigned i = 0; i < s->nlabels; i++)
		if (strcmp(s->label[i].key, key) == 0)
			return s->label[i].val;
	return NULL;
}

/* ---- fetching ---- */

static int
sock_connect(const char *host, uint16_t port, int timeout_ms)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	char pbuf[8];
	int fd = -1, rc, gai;

	snprintf(pbuf, sizeof(pbuf), "%u", port);
	gai = getaddrinfo(host, pbuf, &hints, &res);
	if (gai == EAI_MEMORY)
		return -ENOMEM;
	if (gai == EAI_SYSTEM)
		return errno != 0 ? -errno : -EHOSTUNREACH;
	if (gai != 0)
		return -EHOSTUNREACH;
	rc = -EHOSTUNREACH;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		/* Linux: connect past SO_SNDTIMEO fails with EINPROGRESS */
		rc = errno == EINPROGRESS ? -ETIMEDOUT : -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd >= 0 ? fd : rc;
}

static int
sock_send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read to EOF into a malloc'd buffer (NUL-terminated). */
static int
sock_read_all(int fd, char **out, size_t *len)
{
	size_t n = 0, cap = 64u << 10;
	char *buf = malloc(cap + 1), *nb;
	ssize_t r;

	if (buf == NULL)
		return -ENOMEM;
	for (;;) {
		if (n == cap) {
			if (cap >= FETCH_MAX)
				goto err_big;
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (nb == NULL)
				goto err_nomem;
			buf = nb;
		}
		r = recv(fd, buf + n, cap - n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
			free(buf);
			return rc;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;

err_big:
	free(buf);
	return -E2BIG;
err_nomem:
	free(buf);
	return -ENOMEM;
}

/* Find "Content-Length:" in the header block [p, hend); -1 if absent. */
static long long
http_content_length(const char *p, const char *hend)
{
	static const char key[] = "\r\ncontent-length:";
	size_t kl = sizeof(key) - 1;
	long long v;
	char *e;

	for (; p + kl <= hend; p++) {
		if (strncasecmp(p, key, kl) != 0)
			continue;
		v = strtoll(p + kl, &e, 10);
		return e == p + kl || v < 0 ? -2 : v;
	}
	return -1;
}

/* Check the status line and headers of resp[0..n); body offset and length
 * out. 0, -ENOENT (404) or -EPROTO. */
static int
http_parse(const char *resp, size_t n, size_t *boff, size_t *blen)
{
	const char *hend;
	long long cl;
	int code;

	if (n < 12 || strncmp(resp, "HTTP/1.", 7) != 0 || resp[8] != ' ')
		return -EPROTO;
	if (sscanf(resp + 9, "%3d", &code) != 1)
		return -EPROTO;
	hend = memmem(resp, n, "\r\n\r\n", 4);
	if (hend == NULL)
		return -EPROTO;
	if (code == 404)
		return -ENOENT;
	if (code != 200)
		return -EPROTO;
	*boff = (size_t)(hend + 4 - resp);
	*blen = n - *boff;
	cl = http_content_length(resp, hend + 2);
	if (cl == -2 || (cl >= 0 && (unsigned long long)cl > *blen))
		return -EPROTO;
	if (cl >= 0)
		*blen = (size_t)cl;
	return 0;
}

int
srv_metrics_fetch(const char *host, uint16_t port, int timeout_ms, char **out,
		  size_t *len)
{
	char req[512], *resp = NULL;
	size_t n = 0, boff, blen;
	int fd, rc, rl;
	bool v6;

	v6 = strchr(host, ':') != NULL; /* an IPv6 literal goes in [] */
	rl = snprintf(req, sizeof(req),
		      "GET /metrics HTTP/1.0\r\nHost: %s%s%s:%u\r\n"
		      "Accept: text/plain\r\nConnection: close\r\n\r\n",
		      v6 ? "[" : "", host, v6 ? "]" : "", port);
	if (rl < 0 || (size_t)rl >= sizeof(req))
		return -EINVAL;
	fd = sock_connect(host, port, timeout_ms);
	if (fd < 0)
		return fd;
	rc = sock_send_all(fd, req, (size_t)rl);
	if (rc == 0)
		rc = sock_read_all(fd, &resp, &n);
	close(fd);
	if (rc < 0)
		return rc;
	rc = http_parse(resp, n, &boff, &blen);
	if (rc < 0) {
		free(resp);
		return rc;
	}
	memmove(resp, resp + boff, blen);
	resp[blen] = '\0';
	*out = resp;
	*len = blen;
	return 0;
}

/* ---- the human summary ---- */

enum { T_OPS, T_TEN, T_NS, T_DEV, T_ALL, T_N };
enum { OP_REQ, OP_ERR, OP_BUSY, OP_P50, OP_P99, OP_P999, OP_NCOL };
enum { TN_PUTS, TN_GETS, TN_HITS, TN_MISSES, TN_STORED, TN_SERVED, TN_USED,
       TN_LIMIT, TN_LKEYS, TN_LFOUND, TN_CONFIRMED, TN_RSUM, TN_RCOUNT,
       TN_NCOL };
/* a namespace's row: the funnel, puts, reuse (the tenant's columns) */
#define NS_SHOWN 10u /* namespaces printed, most keys looked up first */
enum { SC_COPY, SC_AUTH, SC_CONNS, SC_DEGRADED, SC_EVICTED, SC_REINS,
       SC_WRITTEN, SC_READ, SC_IDXBYTES, SC_DEVFAIL, SC_OFFERED, SC_REFUSED,
       SC_DEDUP, SC_RULE_ALL, SC_RULE_SEEN, SC_RULE_NOTAIL, SC_ORPHAN,
       SC_EXPIRED, SC_NCOL };
#define MAX_COL 20u
_Static_assert(OP_NCOL <= MAX_COL && TN_NCOL <= MAX_COL && SC_NCOL <= MAX_COL,
	       "a row holds every column");

struct row {
	char key[SRV_PROM_LVAL];
	double v[MAX_COL];
};

struct table {
	struct row *r;
	size_t n, cap;
	size_t last; /* row of the last cell found, where a search starts:
		      * the families list rows in one order, so the next
		      * sample's row is most often this one or the next */
};

/* Which sample feeds which cell: table tab, column col, summed over the
 * samples that match; quantile, if set, must match that label; eq, if
 * set, counts the samples of that value instead (shards per rule). */
static const struct pick {
	const char *name;
	unsigned tab, col;
	const char *quantile;
	int eq;
} picks[] = {
	{"gpucache_requests_total", T_OPS, OP_REQ, NULL},
	{"gpucache_request_errors_total", T_OPS, OP_ERR, NULL},
	{"gpucache_busy_rejections_total", T_OPS, OP_BUSY, NULL},
	{"gpucache_request_latency_seconds", T_OPS, OP_P50, "0.5"},
	{"gpucache_request_latency_seconds", T_OPS, OP_P99, "0.99"},
	{"gpucache_request_latency_seconds", T_OPS, OP_P999, "0.999"},
	{"gpucache_tenant_puts_total", T_TEN, TN_PUTS, NULL},
	{"gpucache_tenant_gets_total", T_TEN, TN_GETS, NULL},
	{"gpucache_tenant_hits_total", T_TEN, TN_HITS, NULL},
	{"gpucache_tenant_misses_total", T_TEN, TN_MISSES, NULL},
	{"gpucache_tenant_stored_bytes_total", T_TEN, TN_STORED, NULL},
	{"gpucache_tenant_served_bytes_total", T_TEN, TN_SERVED, NULL},
	{"gpucache_tenant_quota_used_bytes", T_TEN, TN_USED, NULL},
	{"gpucache_tenant_quota_limit_bytes", T_TEN, TN_LIMIT, NULL},
	{"gpucache_tenant_lookup_keys_total", T_TEN, TN_LKEYS, NULL},
	{"gpucache_tenant_lookup_found_total", T_TEN, TN_LFOUND, NULL},
	{"gpucache_tenant_used_blocks_total", T_TEN, TN_CONFIRMED, NULL},
	{"gpucache_tenant_reuse_distance_references_sum", T_TEN, TN_RSUM, NULL},
	{"gpucache_tenant_reuse_distance_references_count", T_TEN, TN_RCOUNT,
	 NULL},
	{"gpucache_namespace_lookup_keys_total", T_NS, TN_LKEYS, NULL},
	{"gpucache_namespace_lookup_found_total", T_NS, TN_LFOUND, NULL},
	{"gpucache_namespace_hits_total", T_NS, TN_HITS, NULL},
	{"gpucache_namespace_misses_total", T_NS, TN_MISSES, NULL},
	{"gpucache_namespace_puts_total", T_NS, TN_PUTS, NULL},
	{"gpucache_namespace_used_blocks_total", T_NS, TN_CONFIRMED, NULL},
	{"gpucache_namespace_reuse_distance_references_sum", T_NS, TN_RSUM,
	 NULL},
	{"gpucache_namespace_reuse_distance_references_count", T_NS, TN_RCOUNT,
	 NULL},
	{"gpucache_device_healthy", T_DEV, 0, NULL},
	{"gpucache_payload_copy_bytes_total", T_ALL, SC_COPY, NULL},
	{"gpucache_auth_failures_total", T_ALL, SC_AUTH, NULL},
	{"gpucache_connections_open", T_ALL, SC_CONNS, NULL},
	{"gpucache_store_degraded_reads_total", T_ALL, SC_DEGRADED, NULL},
	{"gpucache_store_evicted_blocks_total", T_ALL, SC_EVICTED, NULL},
	{"gpucache_store_reinserted_blocks_total", T_ALL, SC_REINS, NULL},
	{"gpucache_store_flash_written_bytes_total", T_ALL, SC_WRITTEN, NULL},
	{"gpucache_store_flash_read_bytes_total", T_ALL, SC_READ, NULL},
	{"gpucache_store_index_bytes", T_ALL, SC_IDXBYTES, NULL},
	{"gpucache_devices_failed", T_ALL, SC_DEVFAIL, NULL},
	{"gpucache_store_put_offered_bytes_total", T_ALL, SC_OFFERED, NULL},
	{"gpucache_store_puts_refused_total", T_ALL, SC_REFUSED, NULL},
	{"gpucache_store_puts_deduped_total", T_ALL, SC_DEDUP, NULL},
	{"gpucache_policy_admission_rule", T_ALL, SC_RULE_ALL, NULL, 1},
	{"gpucache_policy_admission_rule", T_ALL, SC_RULE_SEEN, NULL, 2},
	{"gpucache_policy_admission_rule", T_ALL, SC_RULE_NOTAIL, NULL, 3},
	{"gpucache_store_orphaned_blocks_total", T_ALL, SC_ORPHAN, NULL},
	{"gpucache_store_expired_blocks_total", T_ALL, SC_EXPIRED, NULL},
};

/* Cell (key, col) of t, appended (zero) if new; NULL if out of memory. */
static double *
cell(struct table *t, const char *key, unsigned col)
{
	struct row *nr;

	for (size_t k = 0; k < t->n; k++) {
		size_t i = (t->last + k) % t->n;

		if (strcmp(t->r[i].key, key) == 0) {
			t->last = i;
			return &t->r[i].v[col];
		}
	}
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 16;

		nr = realloc(t->r, ncap * sizeof(*nr));
		if (nr == NULL)
			return NULL;
		t->r = nr;
		t->cap = ncap;
	}
	t->last = t->n;
	nr = &t->r[t->n++];
	memset(nr, 0, sizeof(*nr));
	snprintf(nr->key, sizeof(nr->key), "%s", key);
	return &nr->v[col];
}

/* The row key of sample s in table tab. */
static void
row_key(const struct srv_prom_sample *s, unsigned tab, char *key, size_t cap)
{
	const char *a = NULL, *b = NULL;

	if (tab == T_OPS)
		a = srv_prom_label(s, "op");
	else if (tab == T_TEN)
		a = srv_prom_label(s, "tenant");
	else if (tab == T_NS) {
		const char *t = srv_prom_label(s, "tenant"),
			   *ns = srv_prom_label(s, "ns");

		snprintf(key, cap, "%s ns %s", t ? t : "", ns ? ns : "");
		return;
	}
	else if (tab == T_DEV) {
		a = srv_prom_label(s, "shard");
		b = srv_prom_label(s, "device");
	}
	snprintf(key, cap, "%s%s%s", a ? a : "", b ? "/" : "", b ? b : "");
}

static int
absorb(struct table *tabs, const struct srv_prom_sample *s)
{
	char key[SRV_PROM_LVAL];

	for (unsigned i = 0; i < ARRAY_SIZE(picks); i++) {
		const struct pick *pk = &picks[i];
		const char *q = srv_prom_label(s, "quantile");
		double *c;

		if (strcmp(s->name, pk->name) != 0)
			continue;
		if (pk->quantile != NULL &&
		    (q == NULL || strcmp(q, pk->quantile) != 0))
			continue;
		row_key(s, pk->tab, key, sizeof(key));
		c = cell(&tabs[pk->tab], key, pk->col);
		if (c == NULL)
			return -ENOMEM;
		if (pk->eq != 0)
			*c += s->value == pk->eq;
		else
			*c = pk->quantile != NULL ? s->value : *c + s->value;
	}
	return 0;
}

static const char *
fmt_bytes(double v, char *buf, size_t cap)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB",
					   "PiB"};
	unsigned u = 0;

	while (v >= 1024.0 && u + 1 < ARRAY_SIZE(unit)) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, cap, u == 0 ? "%.0f %s" : "%.1f %s", v, unit[u]);
	return buf;
}

static const char *
fmt_secs(double s, char *buf, size_t cap)
{
	if (isnan(s))
		snprintf(buf, cap, "-");
	else if (s < 1e-6)
		snprintf(buf, cap, "%.0fns", s * 1e9);
	else if (s < 1e-3)
		snprintf(buf, cap, "%.1fus", s * 1e6);
	else if (s < 1.0)
		snprintf(buf, cap, "%.2fms", s * 1e3);
	else
		snprintf(buf, cap, "%.2fs", s);
	return buf;
}

static void
print_ops(FILE *f, const struct table *t)
{
	char a[32], b[32], c[32];
	unsigned shown = 0;

	fprintf(f, "%-12s %12s %10s %10s %10s %10s %10s\n", "operation",
		"requests", "errors", "busy", "p50", "p99", "p999");
	for (size_t i = 0; i < t->n; i++) {
		const double *v = t->r[i].v;

		if (v[OP_REQ] == 0)
			continue;
		shown++;
		fprintf(f, "  %-10s %12.0f %10.0f %10.0f %10s %10s %10s\n",
			t->r[i].key, v[OP_REQ], v[OP_ERR], v[OP_BUSY],
			fmt_secs(v[OP_P50], a, sizeof(a)),
			fmt_secs(v[OP_P99], b, sizeof(b)),
			fmt_secs(v[OP_P999], c, sizeof(c)));
	}
	if (shown == 0)
		fprintf(f, "  (no requests)\n");
}

/* key funnel: looked up -> found -> fetched -> used; reuse distance */
static void
print_funnel(FILE *f, const struct row *r)
{
	const double *v = r->v;
	char a[32];

	fprintf(f, "  %-14s funnel: %.0f keys looked up -> %.0f found "
		"(%.1f%%) -> %.0f fetched -> %.0f used", r->key, v[TN_LKEYS],
		v[TN_LFOUND], v[TN_LKEYS] > 0 ? 100.0 * v[TN_LFOUND] /
		v[TN_LKEYS] : 0.0, v[TN_HITS], v[TN_CONFIRMED]);
	if (v[TN_RCOUNT] > 0) {
		snprintf(a, sizeof(a), "%.0f", v[TN_RSUM] / v[TN_RCOUNT]);
		fprintf(f, "; reuse distance %s references (mean of %.0f "
			"sampled)", a, v[TN_RCOUNT]);
	}
	fputc('\n', f);
}

static void
print_tenants(FILE *f, const struct table *t)
{
	char a[32], b[32], c[32], d[32], hr[16];

	fprintf(f, "%-16s %10s %10s %7s %11s %11s %11s %11s\n", "tenant",
		"puts", "gets", "hit%", "stored", "served", "quota used",
		"quota");
	for (size_t i = 0; i < t->n; i++) {
		const double *v = t->r[i].v;
		double looked = v[TN_HITS] + v[TN_MISSES];

		if (looked > 0)
			snprintf(hr, sizeof(hr), "%.1f",
				 100.0 * v[TN_HITS] / looked);
		else
			snprintf(hr, sizeof(hr), "-");
		fprintf(f, "  %-14s %10.0f %10.0f %7s %11s %11s %11s %11s\n",
			t->r[i].key, v[TN_PUTS], v[TN_GETS], hr,
			fmt_bytes(v[TN_STORED], a, sizeof(a)),
			fmt_bytes(v[TN_SERVED], b, sizeof(b)),
			fmt_bytes(v[TN_USED], c, sizeof(c)),
			v[TN_LIMIT] > 0 ? fmt_bytes(v[TN_LIMIT], d, sizeof(d))
					: "-");
	}
	if (t->n == 0)
		fprintf(f, "  (no tenants)\n");
	for (size_t i = 0; i < t->n; i++)
		if (t->r[i].v[TN_LKEYS] > 0)
			print_funnel(f, &t->r[i]);
}

static int
by_lookups(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->v[TN_LKEYS] != y->v[TN_LKEYS])
		return x->v[TN_LKEYS] > y->v[TN_LKEYS] ? -1 : 1;
	if (x->v[TN_HITS] != y->v[TN_HITS])
		return x->v[TN_HITS] > y->v[TN_HITS] ? -1 : 1;
	return strcmp(x->key, y->key);
}

/* The namespaces with figures of their own, most keys looked up first. */
static void
print_namespaces(FILE *f, struct table *t)
{
	if (t->n == 0)
		return;
	qsort(t->r, t->n, sizeof(*t->r), by_lookups);
	fprintf(f, "namespaces: %zu with figures of their own%s\n", t->n,
		t->n > NS_SHOWN ? "; the 10 that looked up most" : "");
	for (size_t i = 0; i < t->n && i < NS_SHOWN; i++) {
		print_funnel(f, &t->r[i]);
		fprintf(f, "  %-14s %.0f puts, %.0f gets\n", "",
			t->r[i].v[TN_PUTS],
			t->r[i].v[TN_HITS] + t->r[i].v[TN_MISSES]);
	}
}

static void
print_devices(FILE *f, const struct table *t)
{
	size_t bad = 0;

	for (size_t i = 0; i < t->n; i++)
		bad += t->r[i].v[0] == 0;
	fprintf(f, "devices: %zu healthy, %zu failed\n", t->n - bad, bad);
	for (size_t i = 0; i < t->n; i++)
		if (t->r[i].v[0] == 0)
			fprintf(f, "  shard/device %s: FAILED\n", t->r[i].key);
}

static void
print_rest(FILE *f, const struct table *t)
{
	static const double zero[MAX_COL];
	const double *v = t->n > 0 ? t->r[0].v : zero;
	char a[32], b[32], c[32];

	fprintf(f, "store: %.0f degraded reads, %.0f blocks evicted (%.0f "
		"orphans), %.0f expired, %.0f reinserted; flash written %s, "
		"read %s; index %s\n",
		v[SC_DEGRADED], v[SC_EVICTED], v[SC_ORPHAN], v[SC_EXPIRED],
		v[SC_REINS],
		fmt_bytes(v[SC_WRITTEN], a, sizeof(a)),
		fmt_bytes(v[SC_READ], b, sizeof(b)),
		fmt_bytes(v[SC_IDXBYTES], c, sizeof(c)));
	if (v[SC_OFFERED] > 0)
		fprintf(f, "cache: %.2f flash bytes written (parity included) "
			"per byte put, %.0f puts refused, %.0f deduped; admission "
			"rule in force: all on %.0f shards, seen on %.0f, notail "
			"on %.0f\n",
			v[SC_WRITTEN] / v[SC_OFFERED], v[SC_REFUSED],
			v[SC_DEDUP], v[SC_RULE_ALL], v[SC_RULE_SEEN],
			v[SC_RULE_NOTAIL]);
	fprintf(f, "connections: %.0f open, %.0f authentication failures\n",
		v[SC_CONNS], v[SC_AUTH]);
	if (v[SC_COPY] == 0)
		fprintf(f, "payload copies: 0 bytes\n");
	else
		fprintf(f, "payload copies: %s (WARNING: should be 0)\n",
			fmt_bytes(v[SC_COPY], a, sizeof(a)));
}

int
srv_metrics_summary(FILE *f, const char *text, size_t len)
{
	struct table tabs[T_N] = {0};
	struct srv_prom_sample *s;
	const char *p = text, *end = text + len, *nl;
	unsigned bad = 0;
	int rc = 0, r;

	s = malloc(sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	for (; p < end && rc == 0; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		r = srv_prom_parse_line(p, (size_t)(nl - p), s);
		if (r < 0)
			bad++;
		else if (r == 1)
			rc = absorb(tabs, s);
	}
	if (rc == 0) {
		print_ops(f, &tabs[T_OPS]);
		print_tenants(f, &tabs[T_TEN]);
		print_namespaces(f, &tabs[T_NS]);
		print_devices(f, &tabs[T_DEV]);
		print_rest(f, &tabs[T_ALL]);
		if (bad > 0)
			fprintf(f, "warning: %u malformed lines ignored\n",
				bad);
	}
	for (unsigned i = 0; i < T_N; i++)
		free(tabs[i].r);
	free(s);
	return rc < 0 ? rc : bad > 0 ? -EINVAL : 0;
}
