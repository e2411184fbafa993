/*
 * test_coder.c - property test of src/coder: ISA-L against the reference.
 *
 * For each (k, m) and a few odd lengths: random data (seeded; the seed is
 * printed, pass it as argv[1] to replay), ISA-L parity must equal the
 * reference parity byte for byte; then for every pattern of up to m lost
 * fragments the lost buffers are wiped and both implementations must bring
 * back every fragment bit-exact and leave the survivors untouched. The
 * reference is slow, so at long lengths it decodes a seeded sample of the
 * patterns (ISA-L still decodes all of them); at short lengths both decode
 * every pattern. Error paths: bad k/m/impl at create, bad lost lists and
 * nlost > m at decode, which must also leave every buffer untouched.
 *
 * Every fragment is its own exact-size allocation so ASan sees any
 * overrun. Exit 0 pass, 1 fail.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coder/coder.h"
#include "gpucache/gpucache.h"

#define N_MAX (CODER_MAX_K + CODER_MAX_M)

/* Reference byte-products per (k, m, len) spent on sampled decodes. */
#define REF_BUDGET (1u << 20)

struct km {
	unsigned k, m;
};

static const struct km test_kms[] = {
	{ 1, 0 }, { 2, 1 }, { 4, 2 }, { 8, 3 }, { 3, 2 }, { 6, 3 }, { 10, 4 },
};
static const size_t test_lens[] = { 1, 7, 33, 4095, 4097, 65537 };

/* Lengths up to this decode every pattern with the reference too. */
#define REF_FULL_LEN 33

static unsigned long n_pass, n_fail;
static uint64_t rng_state;

static int
check(int ok, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		n_pass++;
		return 1;
	}
	n_fail++;
	fprintf(stderr, "FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 0;
}

/* splitmix64 */
static uint64_t
rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void
rng_fill(uint8_t *p, size_t len)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if ((i & 7) == 0)
			v = rng_next();
		p[i] = (uint8_t)(v >> ((i & 7) * 8));
	}
}

struct bufs {
	unsigned n;
	size_t len;
	uint8_t *orig[N_MAX]; /* data + ISA-L parity: the truth */
	uint8_t *work[N_MAX]; /* what decode sees */
	uint8_t *refpar[CODER_MAX_M];
};

static void
bufs_destroy(struct bufs *b)
{
	unsigned i;

	for (i = 0; i < N_MAX; i++) {
		free(b->orig[i]);
		free(b->work[i]);
	}
	for (i = 0; i < CODER_MAX_M; i++)
		free(b->refpar[i]);
	memset(b, 0, sizeof(*b));
}

static int
bufs_create(struct bufs *b, unsigned k, unsigned m, size_t len)
{
	unsigned i;

	memset(b, 0, sizeof(*b));
	b->n = k + m;
	b->len = len;
	for (i = 0; i < b->n; i++) {
		b->orig[i] = malloc(len);
		b->work[i] = malloc(len);
		if (b->orig[i] == NULL || b->work[i] == NULL)
			goto err_free;
	}
	for (i = 0; i < m; i++) {
		b->refpar[i] = malloc(len);
		if (b->refpar[i] == NULL)
			goto err_free;
	}
	return 0;

err_free:
	bufs_destroy(b);
	return -ENOMEM;
}

/* 1 if every work buffer equals its original. */
static int
bufs_intact(const struct bufs *b, unsigned *bad)
{
	unsigned i;

	for (i = 0; i < b->n; i++) {
		if (memcmp(b->work[i], b->orig[i], b->len) != 0) {
			*bad = i;
			return 0;
		}
	}
	return 1;
}

/* Encode random data with both coders; compare parity; reset work. */
static void
encode_both(struct coder *ci, struct coder *cr, struct bufs *b, unsigned k,
	    unsigned m)
{
	unsigned i;

	for (i = 0; i < k; i++)
		rng_fill(b->orig[i], b->len);
	for (i = 0; i < m; i++) {
		memset(b->orig[k + i], 0x5a, b->len);
		memset(b->refpar[i], 0xa5, b->len);
	}
	coder_encode(ci, b->len, (const uint8_t *const *)b->orig, &b->orig[k]);
	coder_encode(cr, b->len, (const uint8_t *const *)b->orig, b->refpar);
	for (i = 0; i < m; i++)
		check(memcmp(b->orig[k + i], b->refpar[i], b->len) == 0,
		      "k=%u m=%u len=%zu: parity %u differs isal vs ref", k,
		      m, b->len, i);
	for (i = 0; i < b->n; i++)
		memcpy(b->work[i], b->orig[i], b->len);
}

/* Wipe the lost buffers, decode with c, check all, restore. */
static void
decode_one(struct coder *c, const char *name, struct bufs *b,
	   const unsigned *lost, unsigned nlost)
{
	unsigned i, bad = 0;
	int rc, ok;

	for (i = 0; i < nlost; i++)
		memset(b->work[lost[i]], (int)(rng_next() & 0xff), b->len);
	rc = coder_decode(c, b->len, b->work, lost, nlost);
	ok = check(rc == 0, "%s k=%u m=%u len=%zu nlost=%u: rc %d", name,
		   coder_k(c), coder_m(c), b->len, nlost, rc);
	if (ok)
		ok = check(bufs_intact(b, &bad),
			   "%s k=%u m=%u len=%zu nlost=%u (first lost %u): "
			   "fragment %u wrong",
			   name, coder_k(c), coder_m(c), b->len, nlost,
			   nlost ? lost[0] : 0, bad);
	/* Survivors were checked untouched; after a failure restore all. */
	if (!ok)
		for (i = 0; i < b->n; i++)
			memcpy(b->work[i], b->orig[i], b->len);
	for (i = 0; i < nlost; i++)
		memcpy(b->work[lost[i]], b->orig[lost[i]], b->len);
}

static unsigned
mask_to_list(uint64_t mask, unsigned *lost)
{
	unsigned n = 0, i;

	for (i = 0; i < 64; i++)
		if (mask & ((uint64_t)1 << i))
			lost[n++] = i;
	return n;
}

/* Sum over patterns of nlost, for all masks of n bits with <= m set. */
static uint64_t
pattern_weight(unsigned n, unsigned m)
{
	uint64_t mask, w = 0;
	unsigned pc;

	for (mask = 0; mask < ((uint64_t)1 << n); mask++) {
		pc = (unsigned)__builtin_popcountll(mask);
		if (pc <= m)
			w += pc;
	}
	return w;
}

/*
 * Every pattern of up to m losses: ISA-L always; the reference on all of
 * them at short lengths, else on a seeded sample within REF_BUDGET.
 * Counts go to nref[0] (patterns) and nref[1] (reference decodes).
 */
static void
decode_all(struct coder *ci, struct coder *cr, struct bufs *b, unsigned k,
	   unsigned m, unsigned long *nref)
{
	unsigned lost[N_MAX], nlost;
	uint64_t mask, cost, keep = UINT64_MAX;

	cost = pattern_weight(b->n, m) * k * b->len;
	if (b->len > REF_FULL_LEN && cost > REF_BUDGET)
		keep = UINT64_MAX / cost * REF_BUDGET;
	for (mask = 0; mask < ((uint64_t)1 << b->n); mask++) {
		if ((unsigned)__builtin_popcountll(mask) > m)
			continue;
		nlost = mask_to_list(mask, lost);
		/* Swap first and last sometimes: lost[] need not be sorted. */
		if (nlost > 1 && (mask & 1)) {
			lost[0] ^= lost[nlost - 1];
			lost[nlost - 1] ^= lost[0];
			lost[0] ^= lost[nlost - 1];
		}
		decode_one(ci, "isal", b, lost, nlost);
		nref[0]++;
		if (keep == UINT64_MAX || rng_next() < keep) {
			decode_one(cr, "ref", b, lost, nlost);
			nref[1]++;
		}
	}
}

/* Decode calls that must fail and touch nothing. */
static void
check_decode_errors(struct coder *c, struct bufs *b, unsigned k, unsigned m)
{
	unsigned lost[N_MAX + 1], i, n = k + m, bad = 0;
	int rc;

	for (i = 0; i <= m && i < n; i++)
		lost[i] = n - 1 - i;
	if (m + 1 <= n) {
		rc = coder_decode(c, b->len, b->work, lost, m + 1);
		check(rc == -GPC_EDEGRADED, "k=%u m=%u nlost=m+1: rc %d", k, m,
		      rc);
	}
	lost[0] = 0;
	lost[1] = 0;
	rc = coder_decode(c, b->len, b->work, lost, 2);
	check(rc == -EINVAL, "k=%u m=%u duplicate index: rc %d", k, m, rc);
	lost[0] = n;
	rc = coder_decode(c, b->len, b->work, lost, 1);
	check(rc == -EINVAL, "k=%u m=%u index k+m: rc %d", k, m, rc);
	lost[0] = UINT32_MAX;
	rc = coder_decode(c, b->len, b->work, lost, 1);
	check(rc == -EINVAL, "k=%u m=%u index UINT_MAX: rc %d", k, m, rc);
	for (i = 0; i <= n; i++)
		lost[i] = i;
	rc = coder_decode(c, b->len, b->work, lost, n + 1);
	check(rc == -EINVAL, "k=%u m=%u nlost=k+m+1: rc %d", k, m, rc);
	rc = coder_decode(c, b->len, b->work, NULL, 0);
	check(rc == 0, "k=%u m=%u nlost=0: rc %d", k, m, rc);
	check(bufs_intact(b, &bad), "k=%u m=%u: failed decode wrote %u", k,
	      m, bad);
}

static void
test_km_len(unsigned k, unsigned m, size_t len, unsigned long *nref)
{
	struct coder *ci = NULL, *cr = NULL;
	struct bufs b;
	int rc;

	rc = coder_create(CODER_ISAL, k, m, &ci);
	if (rc == 0)
		rc = coder_create(CODER_REF, k, m, &cr);
	if (!check(rc == 0, "create k=%u m=%u: rc %d", k, m, rc))
		goto out_destroy;
	check(coder_k(ci) == k && coder_m(ci) == m && coder_k(cr) == k &&
		      coder_m(cr) == m,
	      "k=%u m=%u: accessors", k, m);
	rc = bufs_create(&b, k, m, len);
	if (!check(rc == 0, "alloc k=%u m=%u len=%zu", k, m, len))
		goto out_destroy;
	encode_both(ci, cr, &b, k, m);
	decode_all(ci, cr, &b, k, m, nref);
	check_decode_errors(ci, &b, k, m);
	check_decode_errors(cr, &b, k, m);
	bufs_destroy(&b);
out_destroy:
	coder_destroy(cr);
	coder_destroy(ci);
}

/* The largest code: random loss patterns, both implementations. */
static void
test_max_random(unsigned npatterns)
{
	unsigned k = CODER_MAX_K, m = CODER_MAX_M, n = k + m;
	unsigned lost[N_MAX], perm[N_MAX], nlost, i, j, t, p;
	struct coder *ci = NULL, *cr = NULL;
	struct bufs b;

	if (!check(coder_create(CODER_ISAL, k, m, &ci) == 0 &&
			   coder_create(CODER_REF, k, m, &cr) == 0,
		   "create k=%u m=%u", k, m))
		goto out_destroy;
	if (!check(bufs_create(&b, k, m, 65) == 0, "alloc max"))
		goto out_destroy;
	encode_both(ci, cr, &b, k, m);
	for (p = 0; p < npatterns; p++) {
		for (i = 0; i < n; i++)
			perm[i] = i;
		for (i = n - 1; i > 0; i--) {
			j = (unsigned)(rng_next() % (i + 1));
			t = perm[i];
			perm[i] = perm[j];
			perm[j] = t;
		}
		nlost = p % 2 ? m : (unsigned)(rng_next() % (m + 1));
		memcpy(lost, perm, nlost * sizeof(lost[0]));
		decode_one(ci, "isal", &b, lost, nlost);
		decode_one(cr, "ref", &b, lost, nlost);
	}
	check_decode_errors(ci, &b, k, m);
	bufs_destroy(&b);
out_destroy:
	coder_destroy(cr);
	coder_destroy(ci);
}

static void
test_create_errors(void)
{
	static const struct {
		int impl;
		unsigned k, m;
	} bad[] = {
		{ CODER_ISAL, 0, 0 },
		{ CODER_ISAL, 0, 2 },
		{ CODER_ISAL, CODER_MAX_K + 1, 0 },
		{ CODER_ISAL, 4, CODER_MAX_M + 1 },
		{ CODER_REF, 0, 1 },
		{ CODER_REF, CODER_MAX_K + 1, 1 },
		{ CODER_REF, 1, CODER_MAX_M + 1 },
		{ 2, 4, 2 },
		{ -1, 4, 2 },
	};
	struct coder *c, *const sentinel = (struct coder *)&n_pass;
	unsigned i;
	int rc;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = sentinel;
		rc = coder_create((enum coder_impl)bad[i].impl, bad[i].k,
				  bad[i].m, &c);
		check(rc == -EINVAL && c == sentinel,
		      "create impl=%d k=%u m=%u: rc %d", bad[i].impl, bad[i].k,
		      bad[i].m, rc);
	}
	coder_destroy(NULL);
	check(1, "coder_destroy(NULL)");
}

static uint64_t
pick_seed(int argc, char **argv)
{
	const char *s = argc > 1 ? argv[1] : getenv("GPC_TEST_SEED");

	if (s != NULL && *s != '\0')
		return strtoull(s, NULL, 0);
	return (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
}

int
main(int argc, char **argv)
{
	uint64_t seed = pick_seed(argc, argv);
	unsigned long nref[2] = { 0, 0 };
	unsigned i, j;

	rng_state = seed;
	printf("test_coder: seed %" PRIu64 "\n", seed);
	test_create_errors();
	for (i = 0; i < sizeof(test_kms) / sizeof(test_kms[0]); i++)
		for (j = 0; j < sizeof(test_lens) / sizeof(test_lens[0]); j++)
			test_km_len(test_kms[i].k, test_kms[i].m, test_lens[j],
				    nref);
	test_max_random(64);
	printf("test_coder: %lu loss patterns decoded by isal, %lu by ref\n",
	       nref[0], nref[1]);
	printf("test_coder: %lu passed, %lu failed\n", n_pass, n_fail);
	return n_fail == 0 ? 0 : 1;
}
