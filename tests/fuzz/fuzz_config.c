/*
 * fuzz_config.c - libFuzzer target for gpucached's config parser
 * (src/server/config.c): srv_config_parse on arbitrary bytes over the
 * defaults, then srv_config_check. An input that starts with "!set\n"
 * (not a valid config: the parse fails on line 1) also goes line by line
 * to srv_config_set, at most SET_MAX_LINES lines.
 *
 * Invariants: a failed parse leaves the config untouched and names a line
 * that exists ("fuzz.conf:N: " with 1 <= N <= lines in the input); a
 * successful one leaves fields in their ranges (srv_config_check may
 * refuse only for cross-field reasons, never crash); a config that
 * passes the checks writes out and parses back to the same bytes.
 *
 * Also built by meson with tests/fuzz/standalone.c (any compiler) to
 * replay the seed corpus as a plain test.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpucache/gpucache.h"
#include "server/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: invariant failed: %s\n",     \
				__FILE__, __LINE__, #cond);                  \
			abort();                                             \
		}                                                            \
	} while (0)

#define SET_MAGIC "!set\n"
#define SET_MAX_LINES 32

static struct srv_config cfg, before, back;

static unsigned
count_lines(const uint8_t *data, size_t size)
{
	unsigned n = 1;

	for (size_t i = 0; i + 1 < size; i++)
		n += data[i] == '\n';
	return n;
}

/* The error names this input and a line inside it. */
static void
check_message(const char *err, const uint8_t *data, size_t size)
{
	unsigned long line;
	char *end;

	FUZZ_CHECK(strncmp(err, "fuzz.conf:", 10) == 0);
	line = strtoul(err + 10, &end, 10);
	FUZZ_CHECK(*end == ':' && line >= 1 && line <= count_lines(data, size));
}

/* A config that passes the checks survives a write and a parse. */
static void
check_roundtrip(void)
{
	char err[1024];
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int rc;

	if (f == NULL)
		return;
	rc = srv_config_write(&cfg, f);
	fclose(f);
	if (rc == 0) {
		srv_config_defaults(&back);
		FUZZ_CHECK(srv_config_parse(&back, buf, len, "w", err,
					    sizeof(err)) == 0);
		back.devices_from_set = cfg.devices_from_set;
		FUZZ_CHECK(memcmp(&back, &cfg, sizeof(cfg)) == 0);
	}
	free(buf);
}

/* Each line of the input as one --set assignment. */
static void
fuzz_set(const uint8_t *data, size_t size)
{
	char a[512], err[1024];
	size_t i = 0;
	unsigned lines = 0;

	srv_config_defaults(&cfg);
	while (i < size && lines++ < SET_MAX_LINES) {
		size_t n = 0;

		while (i < size && data[i] != '\n' && n + 1 < sizeof(a))
			a[n++] = data[i] == '\0' ? ' ' : (char)data[i], i++;
		a[n] = '\0';
		i++;
		memcpy(&before, &cfg, sizeof(cfg));
		if (srv_config_set(&cfg, a, err, sizeof(err)) != 0) {
			FUZZ_CHECK(strncmp(err, "--set: ", 7) == 0);
			FUZZ_CHECK(memcmp(&before, &cfg, sizeof(cfg)) == 0);
		}
	}
	if (srv_config_check(&cfg, err, sizeof(err)) == 0)
		check_roundtrip();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[1024];
	int rc;

	srv_config_defaults(&cfg);
	memcpy(&before, &cfg, sizeof(cfg));
	rc = srv_config_parse(&cfg, (const char *)data, size, "fuzz.conf", err,
			      sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -GPC_ECONFIG);
	if (rc != 0) {
		check_message(err, data, size);
		FUZZ_CHECK(memcmp(&before, &cfg, sizeof(cfg)) == 0);
	} else if (srv_config_check(&cfg, err, sizeof(err)) == 0) {
		check_roundtrip();
	} else {
		FUZZ_CHECK(strncmp(err, "config: ", 8) == 0);
	}
	if (size >= strlen(SET_MAGIC) &&
	    memcmp(data, SET_MAGIC, strlen(SET_MAGIC)) == 0)
		fuzz_set(data + strlen(SET_MAGIC), size - strlen(SET_MAGIC));
	return 0;
}
