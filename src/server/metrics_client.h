/*
 * metrics_client.h - the reading side of gpucached's metrics, for
 * `gpucache stat` and tests: fetch /metrics over a plain TCP socket,
 * parse the Prometheus text format line by line, print a human summary.
 * No threads, no global state; every function is reentrant.
 */
#ifndef GPC_SERVER_METRICS_CLIENT_H
#define GPC_SERVER_METRICS_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SRV_PROM_MAX_LABELS 8u
#define SRV_PROM_NAME 128u /* longest name + 1 */
#define SRV_PROM_LVAL 256u /* longest decoded label value + 1 */

struct srv_prom_label {
	char key[SRV_PROM_NAME];
	char val[SRV_PROM_LVAL];
};

/* One sample line, decoded. */
struct srv_prom_sample {
	char name[SRV_PROM_NAME];
	unsigned nlabels;
	struct srv_prom_label label[SRV_PROM_MAX_LABELS];
	double value;
};

/*
 * Parse one line of the text format 0.0.4 (without its newline):
 * name [{k="v",...}] value [timestamp]. Returns 1 and *out for a sample,
 * 0 for a blank line or a comment (# HELP / # TYPE included), -EINVAL if
 * the line is malformed or exceeds the limits above.
 */
int srv_prom_parse_line(const char *line, size_t len,
			struct srv_prom_sample *out);
/* Value of label key in s, or NULL. */
const char *srv_prom_label(const struct srv_prom_sample *s, const char *key);

/*
 * GET http://host:port/metrics (HTTP/1.0, one connection), each socket
 * step bounded by timeout_ms. On success *out is the malloc'd,
 * NUL-terminated body (the caller frees it) and *len its length.
 * 0, -ENOENT (HTTP 404), -EPROTO (other status or a malformed response),
 * -ETIMEDOUT, -EHOSTUNREACH (name did not resolve), -E2BIG (over 256 MiB)
 * or -errno from socket/connect/recv.
 */
int srv_metrics_fetch(const char *host, uint16_t port, int timeout_ms,
		      char **out, size_t *len);

/*
 * Print a human summary of a /metrics text to f: requests, errors, busy
 * rejections and p50/p99/p999 per op; per tenant puts, gets, hit ratio,
 * bytes and quota use; device health; engine figures; payload copies.
 * 0, -EINVAL if some lines were malformed (the rest is still printed),
 * or -ENOMEM.
 */
int srv_metrics_summary(FILE *f, const char *text, size_t len);

#endif
