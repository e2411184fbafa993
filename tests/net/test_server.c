/*
 * test_server.c - gpucached and libgpucache end to end, on loopback:
 * batch PUT/GET bit-exact (1 B .. 2 MiB, iovecs over two registrations,
 * UCX-allocated and registered malloc memory, GET layouts other than the
 * PUT's, nothing written outside the descriptors), LOOKUP of a key chain
 * (also after a delete in the middle), KV events (a subscriber sees the
 * stored and deleted blocks of its namespace, nothing of others'), DELETE,
 * PIN/UNPIN (a pinned block
 * survives eviction), GPC_PUT_DURABLE, several client processes at once,
 * and a SIGTERM restart: exit 0, every acknowledged block back bit-exact,
 * pins kept.
 *
 * argv[1]: gpucached. Children: argv[2] = "--child", port, index.
 */
#include <pthread.h>
#include <stddef.h>

#include "nettest.h"

#define NS 0x5e7e5e01ull
#define MB (1u << 20)

/* Expected bytes of block id, length len, in a scratch buffer. */
static uint8_t *scratch;

static bool
iov_equal(uint64_t id, size_t len, const struct gpc_iov *iov, unsigned n)
{
	size_t off = 0;

	test_fill(id, scratch, len);
	for (unsigned i = 0; i < n; i++) {
		if (off + iov[i].len > len ||
		    memcmp(scratch + off, iov[i].addr, iov[i].len) != 0)
			return false;
		off += iov[i].len;
	}
	return off == len;
}

/* The shard of a key, of the test daemon's 2 (docs/protocol.md). */
static uint64_t
key_shard(const uint8_t *k)
{
	uint64_t s = 0;

	for (int j = 7; j >= 0; j--)
		s = s << 8 | k[j];
	return s % 2;
}

static void
iov_fill(uint64_t id, size_t len, const struct gpc_iov *iov, unsigned n)
{
	size_t off = 0;

	test_fill(id, scratch, len);
	for (unsigned i = 0; i < n; i++) {
		memcpy(iov[i].addr, scratch + off, iov[i].len);
		off += iov[i].len;
	}
}

/* ---- batch PUT/GET over two registrations ---- */

#define NB 72
#define GAP 16
#define REG_SZ (40u * MB)

struct arena {
	uint8_t *base;
	size_t cur;
	struct gpc_mr *mr;
};

static uint8_t *gaps[NB * 3 * 2];
static unsigned ngaps;

static void
carve(struct arena *a, size_t len, struct gpc_iov *v)
{
	REQUIRE(a->cur + len + GAP <= REG_SZ);
	*v = (struct gpc_iov){ a->base + a->cur, len, a->mr };
	a->cur += len;
	gaps[ngaps++] = a->base + a->cur;
	a->cur += GAP;
}

/* kind 0: one piece in A; 1: one in B; 2: three pieces A, B, A. */
static unsigned
place(struct arena *A, struct arena *B, unsigned kind, size_t len,
      struct gpc_iov *v)
{
	if (kind == 2 && len >= 3) {
		size_t l1 = len / 3, l2 = len / 3 + len % 3;

		carve(A, l1, &v[0]);
		carve(B, l2, &v[1]);
		carve(A, len - l1 - l2, &v[2]);
		return 3;
	}
	carve(kind == 1 ? B : A, len, &v[0]);
	return 1;
}

static size_t
batch_len(unsigned i)
{
	static const size_t special[] = { 1, 2, 3, 7, 511, 4095, 4096, 4097,
					  65535, 65536, MB, MB + 1,
					  2 * MB - 1, 2 * MB };
	const unsigned ns = sizeof(special) / sizeof(special[0]);

	if (i < ns)
		return special[i];
	return i % 8 == 0 ? test_len(i, 2 * MB) : test_len(i, 96u << 10);
}

static void
test_batch(struct gpc_client *c)
{
	static uint8_t keys[NB][32];
	static struct gpc_iov piov[NB][3], giov[NB][3];
	static struct gpc_block pb[NB], gb[NB];
	struct arena A = { 0 }, B = { 0 };
	uint8_t *bmem = malloc(REG_SZ + 64), *bb;
	void *amem = NULL;
	struct gpc_req *req;
	size_t len[NB];
	unsigned bad = 0, done;
	int rc;

	REQUIRE(bmem != NULL);
	CHECK_RC(gpc_mem_alloc(c, REG_SZ, &amem, &A.mr), 0);
	REQUIRE(A.mr != NULL && amem != NULL);
	A.base = amem;
	bb = bmem + 5; /* unaligned on purpose */
	CHECK_RC(gpc_mem_register(c, bb, REG_SZ, &B.mr), 0);
	REQUIRE(B.mr != NULL);
	B.base = bb;

	/* PUT: layouts by i % 3; GET: by (i + 1) % 3, into a fresh half */
	memset(amem, 0xA5, REG_SZ);
	memset(bb, 0xA5, REG_SZ);
	for (unsigned i = 0; i < NB; i++) {
		unsigned n;

		test_key(1000 + i, keys[i]);
		len[i] = batch_len(i);
		n = place(&A, &B, i % 3, len[i], piov[i]);
		iov_fill(1000 + i, len[i], piov[i], n);
		pb[i] = (struct gpc_block){ keys[i], piov[i], n, 1 };
	}
	ngaps = 0; /* only the GET side's gaps are checked */
	for (unsigned i = 0; i < NB; i++) {
		unsigned n = place(&A, &B, (i + 1) % 3, len[i], giov[i]);

		gb[i] = (struct gpc_block){ keys[i], giov[i], n, 1 };
	}
	rc = gpc_put(c, NS, pb, NB, 0);
	CHECK_RC(rc, 0);
	for (unsigned i = 0; i < NB; i++)
		if (pb[i].status != 0) {
			fprintf(stderr, "put block %u (len %zu): %s\n", i,
				len[i], gpc_strerror(pb[i].status));
			bad++;
		}
	CHECK_RC(bad, 0);

	/* asynchronous GET */
	rc = gpc_get_submit(c, NS, gb, NB, &req);
	CHECK_RC(rc, 0);
	if (rc == 0) {
		uint64_t t0 = nt_now_ms();

		while ((done = (unsigned)gpc_test(c, req)) == 0 &&
		       nt_now_ms() - t0 < 15000)
			;
		CHECK_RC(done, 1);
		CHECK_RC(gpc_wait(c, req), 0);
		gpc_req_free(req);
	}
	bad = 0;
	for (unsigned i = 0; i < NB; i++) {
		if (gb[i].status != (int)len[i] ||
		    !iov_equal(1000 + i, len[i], giov[i], gb[i].iovcnt)) {
			fprintf(stderr, "get block %u (len %zu, %u pieces): "
				"status %d%s\n", i, len[i], gb[i].iovcnt,
				gb[i].status, gb[i].status == (int)len[i] ?
				", wrong bytes" : "");
			bad++;
		}
	}
	CHECK_RC(bad, 0);
	bad = 0;
	for (unsigned i = 0; i < ngaps; i++)
		for (unsigned j = 0; j < GAP; j++)
			bad += gaps[i][j] != 0xA5;
	CHECK_RC(bad, 0); /* nothing written outside the descriptors */

	/* blocking GET again, same bytes (now also from flash or buffer) */
	for (unsigned i = 0; i < NB; i++)
		for (unsigned k = 0; k < gb[i].iovcnt; k++)
			memset(giov[i][k].addr, 0, giov[i][k].len);
	CHECK_RC(gpc_get(c, NS, gb, NB), 0);
	bad = 0;
	for (unsigned i = 0; i < NB; i++)
		bad += gb[i].status != (int)len[i] ||
		       !iov_equal(1000 + i, len[i], giov[i], gb[i].iovcnt);
	CHECK_RC(bad, 0);

	/* a destination larger than the block: its length, tail untouched */
	{
		struct gpc_iov v = { A.base, len[20] + 100, A.mr };
		struct gpc_block b = { keys[20], &v, 1, 1 };

		memset(A.base, 0xEE, len[20] + 100);
		CHECK_RC(gpc_get(c, NS, &b, 1), 0);
		CHECK_RC(b.status, (int)len[20]);
		v.len = len[20];
		CHECK(iov_equal(1020, len[20], &v, 1));
		bad = 0;
		for (size_t j = len[20]; j < len[20] + 100; j++)
			bad += A.base[j] != 0xEE;
		CHECK_RC(bad, 0);
	}
	/* too small: an error, and nothing written */
	{
		struct gpc_iov v = { B.base, len[9] - 1, B.mr };
		struct gpc_block b = { keys[9], &v, 1, 1 };

		memset(B.base, 0xEE, len[9]);
		CHECK_RC(gpc_get(c, NS, &b, 1), 0);
		CHECK(b.status < 0);
		bad = 0;
		for (size_t j = 0; j < len[9]; j++)
			bad += B.base[j] != 0xEE;
		CHECK_RC(bad, 0);
	}
	/* a miss: -GPC_ENOTFOUND, nothing written */
	{
		uint8_t k[32];
		struct gpc_iov v = { A.base, 4096, A.mr };
		struct gpc_block b = { k, &v, 1, 1 };

		test_key(999999, k);
		memset(A.base, 0xEE, 4096);
		CHECK_RC(gpc_get(c, NS, &b, 1), 0);
		CHECK_RC(b.status, -GPC_ENOTFOUND);
		bad = 0;
		for (size_t j = 0; j < 4096; j++)
			bad += A.base[j] != 0xEE;
		CHECK_RC(bad, 0);
		/* the same key in another namespace is another block */
		v.len = len[5];
		CHECK_RC(gpc_get(c, NS + 1, &gb[5], 1), 0);
		CHECK_RC(gb[5].status, -GPC_ENOTFOUND);
	}
	/*
	 * One GET message of blocks that end every way (the daemon takes a
	 * shard's blocks as one message): found, into more room than it
	 * needs, a miss, too little room, found in two pieces. Each gets its
	 * own status, only found ones are written, their neighbours not.
	 */
	{
		enum { MX = 5 };
		unsigned pick[MX], np = 0;
		uint8_t mk[32], *dst[MX];
		struct gpc_iov v[MX + 1];
		struct gpc_block b[MX];
		size_t room[MX], off = 0;
		int want[MX];
		uint64_t s0;

		s0 = key_shard(keys[0]);
		for (unsigned i = 0; i < NB && np < MX; i++)
			if (key_shard(keys[i]) == s0 && len[i] >= 2 &&
			    len[i] < 1 << 20)
				pick[np++] = i;
		REQUIRE(np == MX);
		for (uint64_t id = 990000;; id++) { /* a missing key there */
			test_key(id, mk);
			if (key_shard(mk) == s0)
				break;
		}
		for (unsigned i = 0; i < MX; i++) {
			size_t l = len[pick[i]];

			room[i] = i == 1 ? l + 100 : i == 3 ? l - 1 : l;
			want[i] = i == 2 ? -GPC_ENOTFOUND : i == 3 ? -ENOBUFS
								 : (int)l;
			dst[i] = A.base + off;
			off += room[i] + 64; /* a gap after each */
		}
		REQUIRE(off <= REG_SZ);
		memset(A.base, 0xEE, off);
		for (unsigned i = 0; i < MX; i++) {
			b[i] = (struct gpc_block){ i == 2 ? mk : keys[pick[i]],
						   &v[i], 1, 1 };
			v[i] = (struct gpc_iov){ dst[i], room[i], A.mr };
		}
		/* the last block in two pieces, the second 1 byte long */
		v[MX - 1].len = room[MX - 1] - 1;
		v[MX] = (struct gpc_iov){ dst[MX - 1] + room[MX - 1] - 1, 1,
					  A.mr };
		b[MX - 1] = (struct gpc_block){ keys[pick[MX - 1]], &v[MX - 1],
						2, 1 };
		CHECK_RC(gpc_get(c, NS, b, MX), 0);
		bad = 0;
		for (unsigned i = 0; i < MX; i++) {
			struct gpc_iov w = { dst[i], len[pick[i]], A.mr };
			size_t got = b[i].status > 0 ? (size_t)b[i].status : 0;

			CHECK_RC(b[i].status, want[i]);
			if (want[i] > 0 && !iov_equal(1000 + pick[i],
						      len[pick[i]], &w, 1))
				bad++;
			for (size_t j = got; j < room[i] + 64; j++)
				bad += dst[i][j] != 0xEE;
		}
		CHECK_RC(bad, 0);
	}
	/* an iovec outside its registration is refused by the library */
	{
		struct gpc_iov v = { A.base + REG_SZ - 10, 20, A.mr };
		struct gpc_block b = { keys[0], &v, 1, 1 };

		CHECK_RC(gpc_get(c, NS, &b, 1), 0);
		CHECK_RC(b.status, -EINVAL);
	}
	/* so is a piece of length 0 in a PUT, even in a block that has
	 * bytes (an empty DATA would end the shard's connection): nothing
	 * is sent, and the connection serves the next block */
	{
		struct gpc_iov v[2] = { { A.base, 100, A.mr },
					{ A.base + 100, 0, A.mr } };
		struct gpc_block b = { keys[0], v, 2, 1 };

		CHECK_RC(gpc_put(c, NS, &b, 1, 0), 0);
		CHECK_RC(b.status, -EINVAL);
		v[0].len = len[0] < REG_SZ ? len[0] : REG_SZ;
		b = (struct gpc_block){ keys[0], &v[0], 1, 1 };
		CHECK_RC(gpc_get(c, NS, &b, 1), 0);
		CHECK_RC(b.status, (int)len[0]);
	}
	gpc_mem_deregister(c, A.mr);
	gpc_mem_deregister(c, B.mr);
	free(bmem);
	printf("batch: %u blocks, 1 B .. 2 MiB, done\n", NB);
}

/* ---- single-region helpers for the other parts ---- */

struct buf {
	uint8_t *p;
	size_t len;
	struct gpc_mr *mr;
};

static void
buf_alloc(struct gpc_client *c, struct buf *b, size_t len)
{
	void *p = NULL;

	b->len = len;
	REQUIRE(gpc_mem_alloc(c, len, &p, &b->mr) == 0);
	b->p = p;
}

/* PUT blocks ids[0..n) (lengths lens) with keys keys[i] and options o;
 * the number of blocks that failed, or the call's error. */
static int
put_ids_opts(struct gpc_client *c, struct buf *b, uint64_t ns,
	     const uint8_t (*keys)[32], const uint64_t *ids,
	     const size_t *lens, unsigned n, const struct gpc_put_opts *o)
{
	struct gpc_iov *v = calloc(n, sizeof(*v));
	struct gpc_block *bl = calloc(n, sizeof(*bl));
	size_t off = 0;
	int rc, bad = 0;

	REQUIRE(v != NULL && bl != NULL);
	for (unsigned i = 0; i < n; i++) {
		REQUIRE(off + lens[i] <= b->len);
		v[i] = (struct gpc_iov){ b->p + off, lens[i], b->mr };
		test_fill(ids[i], b->p + off, lens[i]);
		bl[i] = (struct gpc_block){ keys[i], &v[i], 1, 1 };
		off += lens[i];
	}
	rc = gpc_put_ex(c, ns, bl, n, o);
	for (unsigned i = 0; rc == 0 && i < n; i++)
		if (bl[i].status != 0) {
			fprintf(stderr, "put id %llu: %s\n",
				(unsigned long long)ids[i],
				gpc_strerror(bl[i].status));
			bad++;
		}
	free(v);
	free(bl);
	return rc < 0 ? rc : bad;
}

/* The same with flags only (gpc_put). */
static int
put_ids(struct gpc_client *c, struct buf *b, uint64_t ns,
	const uint8_t (*keys)[32], const uint64_t *ids, const size_t *lens,
	unsigned n, unsigned flags)
{
	struct gpc_put_opts o = { .struct_size = sizeof(o), .flags = flags };

	return put_ids_opts(c, b, ns, keys, ids, lens, n, &o);
}

/*
 * GET ids[0..n) and compare. Returns the number of wrong blocks; *miss
 * (if not NULL) gets the number of misses, which count as wrong only
 * when miss is NULL.
 */
static unsigned
get_ids(struct gpc_client *c, struct buf *b, uint64_t ns,
	const uint8_t (*keys)[32], const uint64_t *ids, const size_t *lens,
	unsigned n, unsigned *miss)
{
	struct gpc_iov *v = calloc(n, sizeof(*v));
	struct gpc_block *bl = calloc(n, sizeof(*bl));
	size_t off = 0;
	unsigned bad = 0;
	int rc;

	REQUIRE(v != NULL && bl != NULL);
	if (miss)
		*miss = 0;
	memset(b->p, 0, b->len);
	for (unsigned i = 0; i < n; i++) {
		REQUIRE(off + lens[i] <= b->len);
		v[i] = (struct gpc_iov){ b->p + off, lens[i], b->mr };
		bl[i] = (struct gpc_block){ keys[i], &v[i], 1, 1 };
		off += lens[i];
	}
	rc = gpc_get(c, ns, bl, n);
	if (rc < 0) {
		fprintf(stderr, "get: %s\n", gpc_strerror(rc));
		bad = n;
	}
	for (unsigned i = 0; rc == 0 && i < n; i++) {
		if (bl[i].status == -GPC_ENOTFOUND && miss != NULL) {
			(*miss)++;
			continue;
		}
		if (bl[i].status != (int)lens[i] ||
		    !iov_equal(ids[i], lens[i], &v[i], 1)) {
			fprintf(stderr, "get id %llu (len %zu): status %d%s\n",
				(unsigned long long)ids[i], lens[i],
				bl[i].status, bl[i].status == (int)lens[i] ?
				", WRONG BYTES" : "");
			bad++;
		}
	}
	free(v);
	free(bl);
	return bad;
}

/* ---- LOOKUP of a key chain, DELETE ---- */

static void
test_chain(struct gpc_client *c)
{
	enum { NC = 12, NP = 8 };
	uint8_t keys[NC][32];
	uint64_t ids[NC];
	size_t lens[NC];
	struct buf b;
	unsigned present = 99;
	int st[NC];

	buf_alloc(c, &b, MB);
	for (unsigned i = 0; i < NC; i++) {
		uint32_t tok[16];

		for (unsigned j = 0; j < 16; j++)
			tok[j] = i * 16 + j + 1;
		CHECK_RC(gpc_key_chain(i ? keys[i - 1] : NULL, "model-x", 7,
				       tok, 16, keys[i]), 0);
		ids[i] = 5000 + i;
		lens[i] = 3000 + i * 100;
	}
	CHECK_RC(gpc_lookup(c, NS, &keys[0][0], NC, 0, &present), 0);
	CHECK_RC(present, 0);
	CHECK_RC(put_ids(c, &b, NS, keys, ids, lens, NP, 0), 0);
	CHECK_RC(gpc_lookup(c, NS, &keys[0][0], NC, 0, &present), 0);
	CHECK_RC(present, NP);
	CHECK_RC(gpc_lookup(c, NS, &keys[0][0], NP, 0, &present), 0);
	CHECK_RC(present, NP);
	CHECK_RC(gpc_lookup(c, NS, &keys[0][0], 3, GPC_LOOKUP_PREFETCH,
			    &present), 0);
	CHECK_RC(present, 3);
	CHECK_RC(gpc_lookup(c, NS + 7, &keys[0][0], NC, 0, &present), 0);
	CHECK_RC(present, 0); /* another namespace */
	/* a hole in the middle ends the prefix there */
	CHECK_RC(gpc_delete(c, NS, keys[4], 1, st), 0);
	CHECK_RC(st[0], 0);
	CHECK_RC(gpc_lookup(c, NS, &keys[0][0], NC, 0, &present), 0);
	CHECK_RC(present, 4);
	CHECK_RC(get_ids(c, &b, NS, keys + 5, ids + 5, lens + 5, 3, NULL), 0);
	{
		unsigned miss;

		CHECK_RC(get_ids(c, &b, NS, keys + 4, ids + 4, lens + 4, 1,
				 &miss), 0);
		CHECK_RC(miss, 1);
	}
	/* deleting again, or a key never put: not found */
	CHECK_RC(gpc_delete(c, NS, &keys[3][0], 2, st), 0);
	CHECK_RC(st[0], 0);
	CHECK_RC(st[1], -GPC_ENOTFOUND);
	CHECK_RC(gpc_lookup(c, NS, &keys[0][0], NC, 0, &present), 0);
	CHECK_RC(present, 3);
	CHECK_RC(gpc_delete(c, NS, keys[0], 1, st), 0);
	CHECK_RC(gpc_lookup(c, NS, &keys[0][0], NC, 0, &present), 0);
	CHECK_RC(present, 0);
	/* put the holes back: the prefix is whole again */
	{
		const uint8_t (*k)[32] = (const uint8_t (*)[32])keys;
		uint64_t hid[3] = { ids[0], ids[3], ids[4] };
		size_t hl[3] = { lens[0], lens[3], lens[4] };
		uint8_t hk[3][32];

		memcpy(hk[0], k[0], 32);
		memcpy(hk[1], k[3], 32);
		memcpy(hk[2], k[4], 32);
		CHECK_RC(put_ids(c, &b, NS, hk, hid, hl, 3, 0), 0);
	}
	CHECK_RC(gpc_lookup(c, NS, &keys[0][0], NC, 0, &present), 0);
	CHECK_RC(present, NP);
	CHECK_RC(get_ids(c, &b, NS, keys, ids, lens, NP, NULL), 0);
	gpc_mem_deregister(c, b.mr);
	printf("chain: lookup/delete done\n");
}

/* ---- PUT hints: a TTL expires a block; bad options are refused ---- */

static void
test_put_hints(struct gpc_client *c)
{
	enum { N = 4 };
	uint8_t k[N][32];
	uint64_t id[N];
	size_t l[N];
	struct gpc_put_opts o = { .struct_size = sizeof(o), .ttl_s = 1,
				  .priority = GPC_PRIO_HIGH };
	unsigned miss = 0, present = 9;
	struct buf b;

	buf_alloc(c, &b, (size_t)N * MB);
	for (unsigned i = 0; i < N; i++) {
		id[i] = 9000 + i;
		l[i] = 64u << 10;
		test_key(id[i], k[i]);
	}
	/* 0, 1: a TTL of 1 s; 2: low priority, no TTL; 3: an old caller's
	 * struct, without ttl_s and priority */
	CHECK_RC(put_ids_opts(c, &b, NS, k, id, l, 2, &o), 0);
	o = (struct gpc_put_opts){ .struct_size = sizeof(o),
				   .priority = GPC_PRIO_LOW };
	CHECK_RC(put_ids_opts(c, &b, NS, &k[2], &id[2], &l[2], 1, &o), 0);
	o = (struct gpc_put_opts){ .struct_size = offsetof(struct gpc_put_opts,
							   ttl_s),
				   .ttl_s = 1 };
	CHECK_RC(put_ids_opts(c, &b, NS, &k[3], &id[3], &l[3], 1, &o), 0);
	CHECK_RC(get_ids(c, &b, NS, k, id, l, N, NULL), 0);
	usleep(2100 * 1000); /* expiries are whole seconds */
	CHECK_RC(get_ids(c, &b, NS, k, id, l, N, &miss), 0);
	CHECK_RC(miss, 2);
	CHECK_RC(gpc_lookup(c, NS, &k[0][0], 1, 0, &present), 0);
	CHECK_RC(present, 0);
	CHECK_RC(get_ids(c, &b, NS, &k[2], &id[2], &l[2], 2, NULL), 0);
	/* out of range: refused before anything is sent */
	o = (struct gpc_put_opts){ .struct_size = sizeof(o),
				   .ttl_s = GPC_MAX_TTL + 1 };
	CHECK_RC(put_ids_opts(c, &b, NS, k, id, l, 1, &o), -EINVAL);
	o = (struct gpc_put_opts){ .struct_size = sizeof(o), .priority = 3 };
	CHECK_RC(put_ids_opts(c, &b, NS, k, id, l, 1, &o), -EINVAL);
	o = (struct gpc_put_opts){ .struct_size = 4 };
	CHECK_RC(put_ids_opts(c, &b, NS, k, id, l, 1, &o), -EINVAL);
	CHECK_RC(put_ids_opts(c, &b, NS, k, id, l, 1, NULL), -EINVAL);
	/* the funnel's last stage: any count, split as the wire needs */
	CHECK_RC(gpc_confirm_used(c, NS, 2), 0);
	CHECK_RC(gpc_confirm_used(c, NS, 0), 0);
	CHECK_RC(gpc_confirm_used(c, NS, (2ull << 20) + 1), 0); /* 3 messages */
	gpc_mem_deregister(c, b.mr);
	printf("hints: a 1 s TTL expired, bad options refused\n");
}

/* ---- PIN / UNPIN: a pinned block survives eviction ---- */

/* Pins count against a quota: alice has none, so her pins share the
 * pool of 25% of each shard's flash; 32 MiB of pins is more than that
 * (2 shards x ~30 MiB): some are refused with -GPC_EQUOTA, per key. */
static void
test_pin_quota(struct gpc_client *c)
{
	enum { NPB = 16, ROUNDS = 2 };
	uint8_t k[ROUNDS * NPB][32];
	uint64_t id[NPB];
	size_t l[NPB];
	unsigned pinned = 0, refused = 0;
	struct buf b;
	int st[ROUNDS * NPB];

	buf_alloc(c, &b, (size_t)NPB * MB);
	for (unsigned r = 0; r < ROUNDS; r++) {
		for (unsigned i = 0; i < NPB; i++) {
			id[i] = 8000 + r * NPB + i;
			l[i] = MB;
			test_key(id[i], k[r * NPB + i]);
		}
		CHECK_RC(put_ids(c, &b, NS, &k[r * NPB], id, l, NPB, 0), 0);
	}
	CHECK_RC(gpc_pin(c, NS, &k[0][0], ROUNDS * NPB, 1, st), 0);
	for (unsigned i = 0; i < ROUNDS * NPB; i++) {
		pinned += st[i] == 0;
		refused += st[i] == -GPC_EQUOTA;
	}
	CHECK_RC(pinned + refused, ROUNDS * NPB);
	CHECK(refused > 0 && pinned >= 2);
	CHECK_RC(gpc_pin(c, NS, &k[0][0], ROUNDS * NPB, 0, st), 0);
	for (unsigned i = 0; i < ROUNDS * NPB; i++)
		CHECK_RC(st[i], 0);
	gpc_mem_deregister(c, b.mr);
	printf("pin: %u of %u 1 MiB pins refused over the pool\n", refused,
	       ROUNDS * NPB);
}

/*
 * Write well over the store's capacity (2 shards x ~30 MiB): 12 batches
 * of 16 blocks of 1 MiB, ids from base (b holds 16 MiB). Returns how
 * many of the first 16 are gone, checked > 0 (else the pressure proves
 * nothing).
 */
static unsigned
overflow(struct gpc_client *c, struct buf *b, uint64_t base)
{
	enum { FB = 16, NBATCH = 12 };
	uint8_t fk[FB][32];
	uint64_t fid[FB];
	size_t fl[FB];
	unsigned miss = 0;

	for (unsigned k = 0; k < NBATCH; k++) {
		for (unsigned i = 0; i < FB; i++) {
			fid[i] = base + k * FB + i;
			fl[i] = MB;
			test_key(fid[i], fk[i]);
		}
		CHECK_RC(put_ids(c, b, NS, fk, fid, fl, FB, 0), 0);
	}
	for (unsigned i = 0; i < FB; i++) {
		fid[i] = base + i;
		test_key(fid[i], fk[i]);
	}
	CHECK_RC(get_ids(c, b, NS, fk, fid, fl, FB, &miss), 0);
	if (miss == 0)
		fprintf(stderr, "overflow: no eviction happened\n");
	CHECK(miss > 0);
	return miss;
}

static void
test_pin(struct gpc_client *c)
{
	enum { NPIN = 4, FB = 16 };
	uint8_t pk[NPIN][32], absent[32];
	uint64_t pid[NPIN];
	size_t pl[NPIN];
	unsigned miss, m;
	struct buf b;
	int st[NPIN];

	buf_alloc(c, &b, (size_t)FB * MB);
	for (unsigned i = 0; i < NPIN; i++) {
		pid[i] = 7000 + i;
		pl[i] = 64u << 10;
		test_key(pid[i], pk[i]);
	}
	CHECK_RC(put_ids(c, &b, NS, pk, pid, pl, NPIN, 0), 0);
	CHECK_RC(gpc_pin(c, NS, &pk[0][0], NPIN, 1, st), 0);
	for (unsigned i = 0; i < NPIN; i++)
		CHECK_RC(st[i], 0);
	test_key(7999, absent);
	CHECK_RC(gpc_pin(c, NS, absent, 1, 1, st), 0);
	CHECK_RC(st[0], -GPC_ENOTFOUND);
	miss = overflow(c, &b, 100000);
	CHECK_RC(get_ids(c, &b, NS, pk, pid, pl, NPIN, &m), 0);
	CHECK_RC(m, 0); /* pinned: all still there */
	CHECK_RC(gpc_pin(c, NS, &pk[0][0], NPIN, 0, st), 0);
	for (unsigned i = 0; i < NPIN; i++)
		CHECK_RC(st[i], 0);
	CHECK_RC(gpc_pin(c, NS, absent, 1, 0, st), 0);
	CHECK_RC(st[0], -GPC_ENOTFOUND);
	gpc_mem_deregister(c, b.mr);
	printf("pin: %u of the first %u filler blocks evicted, pinned kept\n",
	       miss, FB);
	test_pin_quota(c);
}

/* ---- WEIGHT: a namespace's blocks worth more rewrites ---- */

/* Blocks never read: those of a namespace of weight 8 outlive the
 * overflow (up to 7 rewrites unread; the overflow is about 3 capacities),
 * those of a namespace of the default weight leave. */
static void
test_weight(struct gpc_client *c)
{
	enum { N = 4, FB = 16 };
	const uint64_t heavy = NS + 50, plain = NS + 51;
	uint8_t k[N][32];
	uint64_t id[N];
	size_t l[N];
	unsigned miss_heavy = 9, miss_plain = 9;
	struct buf b;

	buf_alloc(c, &b, (size_t)FB * MB);
	CHECK_RC(gpc_set_weight(c, heavy, GPC_MAX_WEIGHT + 1), -EINVAL);
	CHECK_RC(gpc_set_weight(c, heavy, GPC_MAX_WEIGHT), 0);
	for (unsigned i = 0; i < N; i++) {
		id[i] = 8000 + i;
		l[i] = 64u << 10;
		test_key(id[i], k[i]);
	}
	CHECK_RC(put_ids(c, &b, heavy, k, id, l, N, 0), 0);
	CHECK_RC(put_ids(c, &b, plain, k, id, l, N, 0), 0);
	overflow(c, &b, 300000);
	CHECK_RC(get_ids(c, &b, heavy, k, id, l, N, &miss_heavy), 0);
	CHECK_RC(get_ids(c, &b, plain, k, id, l, N, &miss_plain), 0);
	CHECK_RC(miss_heavy, 0);
	CHECK_RC(miss_plain, N);
	CHECK_RC(gpc_set_weight(c, heavy, 1), 0);
	gpc_mem_deregister(c, b.mr);
	printf("weight: %u of %u blocks of weight 8 kept unread, %u of %u of "
	       "weight 1\n", N - miss_heavy, N, N - miss_plain, N);
}

/* ---- STAT: the tenant's own figures ---- */

static void
test_stat(struct gpc_client *c)
{
	struct gpc_client *bob = nt_connect("bob");
	struct gpc_stat a = { .struct_size = sizeof(a) };
	struct gpc_stat b = { .struct_size = sizeof(b) };
	struct gpc_stat small = { .struct_size = offsetof(struct gpc_stat, gets) };

	REQUIRE(bob != NULL);
	CHECK_RC(gpc_stat(c, &a), 0);
	CHECK(a.puts >= NB);          /* test_batch's blocks */
	CHECK(a.hits > 0 && a.gets >= a.hits);
	CHECK(a.stored_bytes > 0 && a.served_bytes > 0);
	CHECK_RC(a.copy_bytes, 0);
	CHECK_RC(gpc_stat(bob, &b), 0); /* bob stored nothing */
	CHECK_RC(b.puts, 0);
	CHECK_RC(b.stored_bytes, 0);
	small.gets = 12345;             /* past struct_size: left alone */
	CHECK_RC(gpc_stat(c, &small), 0);
	CHECK(small.puts == a.puts && small.gets == 12345);
	CHECK_RC(gpc_stat(c, NULL), -EINVAL);
	gpc_close(bob);
}

/* ---- KV events ---- */

#define NSE 0x5e7e5e02ull /* another namespace of alice's */
#define NEV 40

/* Poll sub until it has seen want events or 5 s pass; counts per type
 * into st/rm for keys of keys[0..nk) in namespace ns, and anything else
 * into *other. */
static void
ev_collect(struct gpc_client *sub, uint64_t ns, const uint8_t (*keys)[32],
	   unsigned nk, unsigned want, unsigned *st, unsigned *rm,
	   unsigned *other, uint64_t *lost)
{
	struct gpc_event ev[64];
	uint64_t t0 = nt_now_ms(), l;
	unsigned got = 0, n;

	while (got < want && nt_now_ms() - t0 < 5000) {
		REQUIRE(gpc_events_poll(sub, ev, 64, &n, &l) == 0);
		*lost += l;
		for (unsigned i = 0; i < n; i++) {
			unsigned k = nk;

			for (unsigned j = 0; j < nk && ev[i].ns == ns; j++)
				if (memcmp(ev[i].key, keys[j], 32) == 0)
					k = j;
			got++;
			if (k == nk)
				(*other)++;
			else if (ev[i].type == GPC_EV_STORED)
				st[k]++;
			else if (ev[i].type == GPC_EV_REMOVED)
				rm[k]++;
			else
				(*other)++;
		}
		if (n == 0)
			usleep(1000);
	}
}

static void
test_events(struct gpc_client *c)
{
	struct gpc_client *sub = nt_connect("alice"), *bob = nt_connect("bob");
	static uint8_t keys[NEV][32], bk[4][32];
	uint64_t ids[NEV], lost = 0;
	size_t lens[NEV];
	unsigned st[NEV] = { 0 }, rm[NEV] = { 0 }, other = 0, n;
	struct gpc_event ev[8];
	int dst[4];
	struct buf b;

	REQUIRE(sub != NULL && bob != NULL);
	buf_alloc(c, &b, NEV * 8192);
	CHECK_RC(gpc_subscribe(sub, NS), 0);
	CHECK_RC(gpc_subscribe(bob, NS), 0); /* bob's NS is not alice's */
	for (unsigned i = 0; i < NEV; i++) {
		ids[i] = 900000 + i;
		lens[i] = 8192;
		test_key(ids[i], keys[i]);
	}
	CHECK_RC(put_ids(c, &b, NS, (const uint8_t (*)[32])keys, ids, lens,
			 NEV, 0), 0);
	/* another namespace: no events for it */
	for (unsigned i = 0; i < 4; i++)
		test_key(950000 + i, bk[i]);
	CHECK_RC(put_ids(c, &b, NSE, (const uint8_t (*)[32])bk, ids, lens, 4,
			 0), 0);
	ev_collect(sub, NS, (const uint8_t (*)[32])keys, NEV, NEV, st, rm,
		   &other, &lost);
	for (unsigned i = 0; i < NEV; i++)
		CHECK_RC(st[i], 1);
	/* the same keys again with put-if-absent: touches, no events */
	CHECK_RC(put_ids(c, &b, NS, (const uint8_t (*)[32])keys, ids, lens,
			 NEV, GPC_PUT_IF_ABSENT), 0);
	CHECK_RC(gpc_delete(c, NS, &keys[0][0], 4, dst), 0);
	ev_collect(sub, NS, (const uint8_t (*)[32])keys, NEV, 4, st, rm,
		   &other, &lost);
	for (unsigned i = 0; i < NEV; i++) {
		CHECK_RC(st[i], 1);
		CHECK_RC(rm[i], i < 4 ? 1 : 0);
	}
	usleep(50000); /* nothing else comes */
	ev_collect(sub, NS, (const uint8_t (*)[32])keys, NEV, 1, st, rm,
		   &other, &lost);
	CHECK_RC(other, 0);
	CHECK_RC(lost, 0);
	/* bob subscribed to a namespace of the same number: his own */
	REQUIRE(gpc_events_poll(bob, ev, 8, &n, NULL) == 0);
	CHECK_RC(n, 0);
	gpc_mem_deregister(c, b.mr);
	gpc_close(bob);
	gpc_close(sub);
	printf("events: %u stored and 4 removed events, none foreign\n", NEV);
}

/* ---- several client processes at once ---- */

#define NCHILD 4
#define CB 48

static uint64_t
child_id(unsigned idx, unsigned j)
{
	return 200000 + idx * 1000 + j;
}

static int
child_main(uint16_t port, unsigned idx)
{
	uint8_t keys[CB][32];
	uint64_t ids[CB];
	size_t lens[CB];
	struct gpc_iov v[CB];
	struct gpc_block bl[CB];
	struct gpc_req *req[3];
	struct gpc_client *c;
	struct buf b;
	unsigned present = 0, bad = 0;
	size_t off = 0;
	int rc;

	alarm(25);
	scratch = malloc(2 * MB);
	REQUIRE(scratch != NULL);
	rc = nt_connect_port(port, "alice", NT_ALICE_SECRET, &c);
	if (rc < 0) {
		fprintf(stderr, "child %u: connect: %s\n", idx, gpc_strerror(rc));
		return 1;
	}
	buf_alloc(c, &b, 8 * MB);
	for (unsigned j = 0; j < CB; j++) {
		ids[j] = child_id(idx, j);
		lens[j] = test_len(ids[j], 128u << 10);
		test_key(ids[j], keys[j]);
		v[j] = (struct gpc_iov){ b.p + off, lens[j], b.mr };
		test_fill(ids[j], b.p + off, lens[j]);
		bl[j] = (struct gpc_block){ keys[j], &v[j], 1, 1 };
		off += lens[j];
	}
	/* three requests in flight at once, the last one durable */
	for (unsigned r = 0; r < 3; r++)
		CHECK_RC(gpc_put_submit(c, NS, bl + r * 16, 16,
					r == 2 ? GPC_PUT_DURABLE : 0,
					&req[r]), 0);
	for (unsigned r = 0; r < 3; r++) {
		CHECK_RC(gpc_wait(c, req[r]), 0);
		gpc_req_free(req[r]);
	}
	for (unsigned j = 0; j < CB; j++)
		bad += bl[j].status != 0 && bl[j].status != -GPC_EBUSY;
	CHECK_RC(bad, 0);
	/* blocks answered BUSY go again through the blocking call */
	for (unsigned j = 0; j < CB; j++)
		if (bl[j].status == -GPC_EBUSY)
			CHECK_RC(put_ids(c, &b, NS, &keys[j], &ids[j], &lens[j],
					 1, 0), 0);
	CHECK_RC(gpc_lookup(c, NS, &keys[0][0], CB, 0, &present), 0);
	CHECK_RC(present, CB);
	CHECK_RC(get_ids(c, &b, NS, keys, ids, lens, CB, NULL), 0);
	gpc_mem_deregister(c, b.mr);
	gpc_close(c);
	free(scratch);
	return test_fail ? 1 : 0;
}

static void
test_clients(struct gpc_client *c)
{
	static uint8_t keys[NCHILD * CB][32];
	static uint64_t ids[NCHILD * CB];
	static size_t lens[NCHILD * CB];
	char port[16], idx[NCHILD][8];
	uint64_t t0 = nt_now_ms();
	struct buf b;

	snprintf(port, sizeof(port), "%u", nt_port);
	for (unsigned i = 0; i < NCHILD; i++) {
		const char *args[] = { "--child", port, idx[i], NULL };

		snprintf(idx[i], sizeof(idx[i]), "%u", i);
		nt_spawn(i, args);
	}
	for (unsigned i = 0; i < NCHILD; i++) {
		char what[32];

		snprintf(what, sizeof(what), "client process %u", i);
		CHECK(nt_exit0(nt_child_wait(i, 30000), what));
	}
	/* and every child's blocks are visible to this process too */
	buf_alloc(c, &b, 24 * MB);
	for (unsigned i = 0; i < NCHILD; i++)
		for (unsigned j = 0; j < CB; j++) {
			unsigned k = i * CB + j;

			ids[k] = child_id(i, j);
			lens[k] = test_len(ids[k], 128u << 10);
			test_key(ids[k], keys[k]);
		}
	CHECK_RC(get_ids(c, &b, NS, keys, ids, lens, NCHILD * CB, NULL), 0);
	gpc_mem_deregister(c, b.mr);
	printf("clients: %u processes x %u blocks, %llu ms\n", NCHILD, CB,
	       (unsigned long long)(nt_now_ms() - t0));
}

/* ---- waiting costs no CPU: gpc_wait and gpc_wait_any sleep ---- */

static uint64_t
thread_cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct waiter {
	struct gpc_client *c;
	struct gpc_req *r;
	int rc;
	uint64_t cpu_ms, wall_ms;
};

static void *
waiter_main(void *arg)
{
	struct waiter *w = arg;
	uint64_t t0 = nt_now_ms(), c0 = thread_cpu_ms();

	w->rc = gpc_wait(w->c, w->r);
	w->cpu_ms = thread_cpu_ms() - c0;
	w->wall_ms = nt_now_ms() - t0;
	return NULL;
}

static void *
cont_later(void *arg)
{
	nt_sleep_ms(*(const unsigned *)arg);
	kill(nt_daemon, SIGCONT);
	return NULL;
}

struct late {
	struct gpc_client *c;
	struct gpc_req *r;
	int rc;
	_Atomic uint64_t done_ns; /* when gpc_wait returned */
};

/* SIGSTOP the daemon and wait until it is stopped (kill returns before
 * its threads are), so that nothing more is answered. */
static void
daemon_stop_now(void)
{
	char path[64], st[512];

	REQUIRE(kill(nt_daemon, SIGSTOP) == 0);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)nt_daemon);
	for (unsigned i = 0; i < 5000; i++) {
		FILE *f = fopen(path, "r");
		char *p = NULL;

		if (f != NULL) {
			p = fgets(st, sizeof(st), f);
			fclose(f);
		}
		if (p != NULL && (p = strrchr(st, ')')) != NULL && p[2] == 'T')
			return;
		nt_sleep_ms(1);
	}
	REQUIRE(!"the daemon did not stop");
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *
late_main(void *arg)
{
	struct late *l = arg;

	l->rc = gpc_wait(l->c, l->r);
	atomic_store(&l->done_ns, mono_ns());
	return NULL;
}

/*
 * A thread sleeping in gpc_wait must wake when another thread's progress
 * (here gpc_test) takes its answer: UCX's tcp transport polls its
 * sockets edge-triggered, so that progress leaves the sleeper's event fd
 * silent, and unless the progress signals the worker the sleeper sleeps
 * out its round (10 ms). Trials: the daemon stopped, A asleep in
 * gpc_wait, then the daemon continued and this thread polling gpc_test
 * until the answer is in; how long A takes after that.
 */
static void
test_wait_woken(struct gpc_client *c, struct buf *b, const uint8_t *key,
		size_t len)
{
	enum { TRIALS = 30 };
	uint64_t late[TRIALS];
	unsigned taken = 0;

	for (unsigned t = 0; t < TRIALS; t++) {
		struct gpc_iov v = { b->p, len, b->mr };
		struct gpc_block bl = { key, &v, 1, 1 };
		struct late l = { .c = c };
		uint64_t seen;
		pthread_t th;

		daemon_stop_now();
		CHECK_RC(gpc_get_submit(c, NS, &bl, 1, &l.r), 0);
		REQUIRE(pthread_create(&th, NULL, late_main, &l) == 0);
		nt_sleep_ms(30); /* A polls 50 us, then sleeps */
		kill(nt_daemon, SIGCONT);
		while (gpc_test(c, l.r) != 1 && atomic_load(&l.done_ns) == 0)
			sched_yield();
		seen = mono_ns();
		pthread_join(th, NULL);
		if (atomic_load(&l.done_ns) > seen) /* else A took it */
			late[taken++] = atomic_load(&l.done_ns) - seen;
		CHECK_RC(l.rc, 0);
		CHECK_RC(bl.status, (int)len);
		gpc_req_free(l.r);
	}
	if (taken == 0) {
		printf("wait woken: the sleeper took every answer itself\n");
		return;
	}
	qsort(late, taken, sizeof(late[0]), cmp_u64);
	printf("wait woken: after another thread took its answer (%u of %u "
	       "trials), it returned %.2f ms later (median; max %.2f)\n",
	       taken, TRIALS, (double)late[taken / 2] / 1e6,
	       (double)late[taken - 1] / 1e6);
	CHECK(late[taken / 2] < 2000000u);
}

/*
 * With the daemon stopped (SIGSTOP) nothing can answer: gpc_wait_any
 * must time out, and two threads waiting on one client for the two
 * GETs must both finish, with the right bytes, once it continues. Each
 * waiting thread must have slept: a wait that polls (as gpc_wait did
 * before 0.3, yielding the CPU) burns its whole wall time in CPU.
 */
static void
test_wait_sleeps(struct gpc_client *c)
{
	enum { N = 2, STOP_MS = 400 };
	static uint8_t keys[N][32];
	uint64_t ids[N] = { 9600, 9601 };
	size_t lens[N] = { 256u << 10, 256u << 10 };
	struct gpc_iov v[N];
	struct gpc_block bl[N];
	struct gpc_req *r[N];
	struct waiter w[N];
	pthread_t th[N], ct;
	unsigned stop_ms = STOP_MS;
	uint64_t t0, c0, cpu, wall;
	struct buf b;

	for (unsigned i = 0; i < N; i++)
		test_key(ids[i], keys[i]);
	buf_alloc(c, &b, 2 * MB);
	CHECK_RC(put_ids(c, &b, NS, keys, ids, lens, N, 0), 0);
	memset(b.p, 0, b.len);
	for (unsigned i = 0; i < N; i++) {
		v[i] = (struct gpc_iov){ b.p + i * MB, lens[i], b.mr };
		bl[i] = (struct gpc_block){ keys[i], &v[i], 1, 1 };
	}
	daemon_stop_now();
	for (unsigned i = 0; i < N; i++)
		CHECK_RC(gpc_get_submit(c, NS, &bl[i], 1, &r[i]), 0);
	CHECK_RC(gpc_wait_any(c, r, N, 0), -ETIMEDOUT);
	t0 = nt_now_ms();
	c0 = thread_cpu_ms();
	CHECK_RC(gpc_wait_any(c, r, N, 200000), -ETIMEDOUT);
	cpu = thread_cpu_ms() - c0;
	wall = nt_now_ms() - t0;
	CHECK(wall >= 190);
	CHECK(cpu * 4 < wall);
	printf("wait_any: timed out after %llu ms, %llu ms of CPU\n",
	       (unsigned long long)wall, (unsigned long long)cpu);
	for (unsigned i = 0; i < N; i++) {
		w[i] = (struct waiter){ .c = c, .r = r[i] };
		REQUIRE(pthread_create(&th[i], NULL, waiter_main, &w[i]) == 0);
	}
	REQUIRE(pthread_create(&ct, NULL, cont_later, &stop_ms) == 0);
	for (unsigned i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	pthread_join(ct, NULL);
	for (unsigned i = 0; i < N; i++) {
		CHECK_RC(w[i].rc, 0);
		CHECK_RC(bl[i].status, (int)lens[i]);
		CHECK(iov_equal(ids[i], lens[i], &v[i], 1));
		CHECK(w[i].wall_ms >= STOP_MS - 50);
		CHECK(w[i].cpu_ms * 4 < w[i].wall_ms);
		printf("wait: thread %u done after %llu ms, %llu ms of CPU\n",
		       i, (unsigned long long)w[i].wall_ms,
		       (unsigned long long)w[i].cpu_ms);
		CHECK_RC(gpc_wait_any(c, &r[i], 1, 0), 0);
		gpc_req_free(r[i]);
	}
	CHECK_RC(gpc_wait_any(c, r, 0, 1000), -EINVAL);
	test_wait_woken(c, &b, keys[0], lens[0]);
	gpc_mem_deregister(c, b.mr);
	/* a caller built against 0.2 passes the struct without spin_us */
	{
		char url[64];
		struct gpc_connect_opts o = {
			.struct_size = offsetof(struct gpc_connect_opts,
						spin_us),
			.tenant = "alice", .secret = NT_ALICE_SECRET,
			.secret_len = strlen(NT_ALICE_SECRET) };
		struct gpc_client *old = NULL;

		snprintf(url, sizeof(url), "gpc://127.0.0.1:%u", nt_port);
		CHECK_RC(gpc_connect(url, &o, &old), 0);
		gpc_close(old);
		o.struct_size = offsetof(struct gpc_connect_opts, timeout_ms);
		CHECK_RC(gpc_connect(url, &o, &old), -EINVAL);
	}
}

/* ---- GPC_PUT_DURABLE and a SIGTERM restart ---- */

static void
test_restart(struct gpc_client **cp)
{
	enum { ND = 32, NV = 16 };
	static uint8_t keys[ND + NV][32];
	uint64_t ids[ND + NV];
	size_t lens[ND + NV];
	struct gpc_client *c = *cp;
	struct buf b;

	for (unsigned i = 0; i < ND + NV; i++) {
		ids[i] = 9000 + i;
		lens[i] = i == 0 ? 1 : i == 1 ? 2 * MB : test_len(ids[i], 256u << 10);
		test_key(ids[i], keys[i]);
	}
	buf_alloc(c, &b, 16 * MB);
	CHECK_RC(put_ids(c, &b, NS, keys, ids, lens, ND, GPC_PUT_DURABLE), 0);
	CHECK_RC(put_ids(c, &b, NS, keys + ND, ids + ND, lens + ND, NV, 0), 0);
	CHECK_RC(get_ids(c, &b, NS, keys, ids, lens, ND + NV, NULL), 0);
	gpc_mem_deregister(c, b.mr);
	gpc_close(c);
	CHECK(nt_exit0(nt_daemon_stop(20000), "gpucached after SIGTERM"));
	nt_daemon_restart();
	*cp = c = nt_connect("alice");
	buf_alloc(c, &b, 16 * MB);
	/* durable ones for sure; the others too: SIGTERM seals and flushes */
	CHECK_RC(get_ids(c, &b, NS, keys, ids, lens, ND, NULL), 0);
	CHECK_RC(get_ids(c, &b, NS, keys + ND, ids + ND, lens + ND, NV, NULL),
		 0);
	gpc_mem_deregister(c, b.mr);
	printf("restart: %u durable + %u buffered blocks back after SIGTERM\n",
	       ND, NV);
}

/* Pins survive a SIGTERM restart: four blocks pinned before it are all
 * there after the log wrapped past them, and unpin then succeeds. */
static void
test_pin_restart(struct gpc_client **cp)
{
	enum { NPIN = 4, FB = 16 };
	uint8_t pk[NPIN][32];
	uint64_t pid[NPIN];
	size_t pl[NPIN];
	struct gpc_client *c = *cp;
	unsigned miss, m;
	struct buf b;
	int st[NPIN];

	for (unsigned i = 0; i < NPIN; i++) {
		pid[i] = 7100 + i;
		pl[i] = 64u << 10;
		test_key(pid[i], pk[i]);
	}
	buf_alloc(c, &b, (size_t)FB * MB);
	CHECK_RC(put_ids(c, &b, NS, pk, pid, pl, NPIN, 0), 0);
	CHECK_RC(gpc_pin(c, NS, &pk[0][0], NPIN, 1, st), 0);
	for (unsigned i = 0; i < NPIN; i++)
		CHECK_RC(st[i], 0);
	gpc_mem_deregister(c, b.mr);
	gpc_close(c);
	CHECK(nt_exit0(nt_daemon_stop(20000), "gpucached after SIGTERM"));
	nt_daemon_restart();
	*cp = c = nt_connect("alice");
	buf_alloc(c, &b, (size_t)FB * MB);
	miss = overflow(c, &b, 200000);
	CHECK_RC(get_ids(c, &b, NS, pk, pid, pl, NPIN, &m), 0);
	CHECK_RC(m, 0);
	CHECK_RC(gpc_pin(c, NS, &pk[0][0], NPIN, 0, st), 0);
	for (unsigned i = 0; i < NPIN; i++)
		CHECK_RC(st[i], 0);
	gpc_mem_deregister(c, b.mr);
	printf("pin restart: %u pinned blocks back and kept after SIGTERM, "
	       "%u of %u first fillers evicted\n", NPIN - m, miss, FB);
}

int
main(int argc, char **argv)
{
	struct gpc_client *c;
	uint64_t t0;

	if (argc >= 5 && strcmp(argv[2], "--child") == 0)
		return child_main((uint16_t)atoi(argv[3]),
				  (unsigned)atoi(argv[4]));
	nt_dev_mb = 40; /* small, so that the pin test can wrap the log */
	nt_setup("net_server", argc, argv, 100);
	scratch = malloc(2 * MB + 4096);
	REQUIRE(scratch != NULL);
	t0 = nt_now_ms();
	nt_daemon_start();
	printf("gpucached ready on port %u in %llu ms\n", nt_port,
	       (unsigned long long)(nt_now_ms() - t0));
	c = nt_connect("alice");
	CHECK_RC(gpc_shards(c), 2);
	test_batch(c);
	test_stat(c);
	test_chain(c);
	test_events(c);
	test_clients(c);
	test_put_hints(c);
	test_pin(c);
	test_weight(c);
	test_wait_sleeps(c);
	test_restart(&c);
	test_pin_restart(&c);
	gpc_close(c);
	CHECK(nt_exit0(nt_daemon_stop(20000), "gpucached after SIGTERM"));
	free(scratch);
	printf("total %llu ms\n", (unsigned long long)(nt_now_ms() - t0));
	return test_summary("net_server");
}
