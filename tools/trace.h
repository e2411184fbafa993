/*
 * trace.h - LLM-serving traces in the Mooncake format: one JSON object per
 * line with input_length (tokens) and hash_ids (ids of prefix-chained
 * 512-token blocks; equal ids mean the same block after the same prefix).
 * Shared by `gpucache replay` and `gpucache sim`.
 */
#ifndef GPC_TOOLS_TRACE_H
#define GPC_TOOLS_TRACE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "gpucache/gpucache.h"

#define TRACE_BLOCK_TOKENS 512u
#define TRACE_MAX_CHAIN 4096u

/* Parse one line: input_length and up to max hash_ids. -EINVAL if the
 * line is not a trace record. */
int trace_parse_line(const char *line, uint64_t *input, uint32_t *ids,
		     unsigned *n, unsigned max);

/*
 * What a replay of the trace stores: block i of a request is keyed by the
 * chained SHA-256 (gpc_key_chain, salt "gpucache-replay") of ids[0..i], so
 * equal prefixes meet, and holds its key repeated, so distinct keys hold
 * distinct bytes and any block read back can be checked. `gpucache replay`
 * and `gpucache sim` use these, so both stores hold the same blocks.
 */
int trace_chain_keys(const uint32_t *ids, unsigned n,
		     uint8_t (*keys)[GPC_KEY_LEN]);
void trace_block_fill(uint8_t *p, uint64_t len, const uint8_t *key);
bool trace_block_check(const uint8_t *p, uint64_t len, const uint8_t *key);

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
