/*
 * trace.c - reading Mooncake-format traces (trace.h). The parser looks for
 * the two fields it needs and reads the id list with strtoul; anything
 * else on the line is ignored, so extra fields do not break it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

int
trace_parse_line(const char *line, uint64_t *input, uint32_t *ids,
		 unsigned *n, unsigned max)
{
	const char *p = strstr(line, "\"input_length\"");
	char *end;

	*n = 0;
	if (p == NULL || (p = strchr(p, ':')) == NULL)
		return -EINVAL;
	*input = strtoull(p + 1, NULL, 10);
	p = strstr(line, "\"hash_ids\"");
	if (p == NULL || (p = strchr(p, '[')) == NULL)
		return -EINVAL;
	p++;
	while (*p && *p != ']' && *n < max) {
		while (*p == ' ' || *p == ',')
			p++;
		if (*p == ']')
			break;
		ids[(*n)++] = (uint32_t)strtoul(p, &end, 10);
		if (end == p)
			return -EINVAL;
		p = end;
	}
	return 0;
}

int
trace_chain_keys(const uint32_t *ids, unsigned n, uint8_t (*keys)[GPC_KEY_LEN])
{
	for (unsigned i = 0; i < n; i++) {
		int rc = gpc_key_chain(i ? keys[i - 1] : NULL, "gpucache-replay",
				       15, &ids[i], 1, keys[i]);

		if (rc < 0)
			return rc;
	}
	return 0;
}

void
trace_block_fill(uint8_t *p, uint64_t len, const uint8_t *key)
{
	for (uint64_t i = 0; i < len; i += GPC_KEY_LEN)
		memcpy(p + i, key, len - i < GPC_KEY_LEN ? len - i : GPC_KEY_LEN);
}

bool
trace_block_check(const uint8_t *p, uint64_t len, const uint8_t *key)
{
	for (uint64_t i = 0; i < len; i += GPC_KEY_LEN)
		if (memcmp(p + i, key, len - i < GPC_KEY_LEN ? len - i
							    : GPC_KEY_LEN) != 0)
			return false;
	return true;
}

static int
grow(void **p, uint64_t *cap, uint64_t need, size_t elt)
{
	void *q;

	if (need <= *cap)
		return 0;
	while (*cap < need)
		*cap = *cap ? *cap * 2 : 1024;
	q = realloc(*p, *cap * elt);
	if (q == NULL)
		return -ENOMEM;
	*p = q;
	return 0;
}

int
trace_load(const char *path, uint64_t max_req, struct trace *t)
{
	static uint32_t ids[TRACE_MAX_CHAIN];
	uint64_t cap_ids = 0, cap_req = 0, cap_in = 0;
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t lcap = 0;
	int rc = 0;

	memset(t, 0, sizeof(*t));
	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -errno;
	}
	while (getline(&line, &lcap, f) > 0 && (max_req == 0 || t->nreq < max_req)) {
		uint64_t input;
		unsigned n;

		if (trace_parse_line(line, &input, ids, &n, TRACE_MAX_CHAIN) < 0) {
			fprintf(stderr, "%s: line %" PRIu64 ": not a trace record\n",
				path, t->nreq + 1);
			rc = -EINVAL;
			break;
		}
		if (grow((void **)&t->ids, &cap_ids, t->nids + n, sizeof(*t->ids)) ||
		    grow((void **)&t->off, &cap_req, t->nreq + 2, sizeof(*t->off)) ||
		    grow((void **)&t->input, &cap_in, t->nreq + 1,
			 sizeof(*t->input))) {
			rc = -ENOMEM;
			break;
		}
		memcpy(t->ids + t->nids, ids, n * sizeof(*ids));
		t->off[t->nreq] = t->nids;
		t->input[t->nreq] = input;
		t->nids += n;
		t->nreq++;
		t->off[t->nreq] = t->nids;
	}
	free(line);
	fclose(f);
	if (rc == 0 && t->nreq == 0) {
		fprintf(stderr, "%s: no requests\n", path);
		rc = -EINVAL;
	}
	if (rc < 0)
		trace_free(t);
	return rc;
}

void
trace_free(struct trace *t)
{
	free(t->ids);
	free(t->off);
	free(t->input);
	memset(t, 0, sizeof(*t));
}
