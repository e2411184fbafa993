/*
 * trace.h - LLM-serving traces in the Mooncake format: one JSON object per
 * line with input_length (tokens) and hash_ids (ids of prefix-chained
 * 512-token blocks; equal ids mean the same block after the same prefix).
 * Shared by `gpucache replay` and `gpucache sim`.
 */
#ifndef GPC_TOOLS_TRACE_H
#define GPC_TOOLS_TRACE_H

#include <stdint.h>
#include <stdio.h>

#define TRACE_BLOCK_TOKENS 512u
#define TRACE_MAX_CHAIN 4096u

/* Parse one line: input_length and up to max hash_ids. -EINVAL if the
 * line is not a trace record. */
int trace_parse_line(const char *line, uint64_t *input, uint32_t *ids,
		     unsigned *n, unsigned max);

/* A whole trace in memory: request r's ids are ids[off[r] .. off[r+1]). */
struct trace {
	uint32_t *ids;
	uint64_t *off;
	uint64_t *input;
	uint64_t nreq, nids;
};

/* Load at most max_req requests (0: all); errors reported on stderr. */
int trace_load(const char *path, uint64_t max_req, struct trace *t);
void trace_free(struct trace *t);

#endif
