/*
 * test.h - the few helpers every test executable shares: CHECK counts
 * and reports, test_summary prints "name: N passed, N failed" and gives
 * the exit code (0 pass, 1 fail); exit 77 means skipped.
 */
#ifndef GPC_TESTS_TEST_H
#define GPC_TESTS_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long test_pass, test_fail;

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (cond) {                                                  \
			test_pass++;                                         \
		} else {                                                     \
			test_fail++;                                         \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__,        \
				__LINE__, #cond);                            \
		}                                                            \
	} while (0)

#define CHECK_RC(expr, want)                                                 \
	do {                                                                 \
		long _rc = (long)(expr);                                     \
		if (_rc == (long)(want)) {                                   \
			test_pass++;                                         \
		} else {                                                     \
			test_fail++;                                         \
			fprintf(stderr, "FAIL %s:%d: %s = %ld, want %ld\n",  \
				__FILE__, __LINE__, #expr, _rc, (long)(want)); \
		}                                                            \
	} while (0)

/* Fatal check: stop the test at once. */
#define REQUIRE(cond)                                                        \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "FATAL %s:%d: %s\n", __FILE__,       \
				__LINE__, #cond);                            \
			exit(1);                                             \
		}                                                            \
	} while (0)

static inline int
test_summary(const char *name)
{
	printf("%s: %lu passed, %lu failed\n", name, test_pass, test_fail);
	return test_fail == 0 && test_pass > 0 ? 0 : 1;
}

/* splitmix64: deterministic test data from a seed. */
static inline uint64_t
test_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Key i of a test, and the bytes a block with key i and length len holds:
 * both pure functions, so any version read back can be checked. */
static inline void
test_key(uint64_t i, uint8_t *key)
{
	uint64_t s = i * 7919 + 1;

	for (int j = 0; j < 32; j += 8) {
		uint64_t v = test_rand(&s);
		memcpy(key + j, &v, 8);
	}
}

static inline void
test_fill(uint64_t i, uint8_t *buf, size_t len)
{
	uint64_t s = i ^ 0xabcdef;
	size_t j = 0;

	for (; j + 8 <= len; j += 8) {
		uint64_t v = test_rand(&s);
		memcpy(buf + j, &v, 8);
	}
	for (; j < len; j++)
		buf[j] = (uint8_t)test_rand(&s);
}

/* Length of the block of key i in a test (4 KiB .. ~maxlen). */
static inline size_t
test_len(uint64_t i, size_t maxlen)
{
	uint64_t s = i + 12345;

	return 1 + test_rand(&s) % maxlen;
}

#endif
