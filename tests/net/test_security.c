/*
 * test_security.c - what gpucached must refuse, driven by a raw protocol
 * client on src/net that sends what libgpucache never would:
 *
 *  - bad descriptors are rejected before any RMA: beyond the registered
 *    range (length mismatch), before it, address overflow, zero length,
 *    a region id never registered (or deregistered), a region registered
 *    on another connection (same tenant or not). GET: the client memory
 *    is untouched; PUT: nothing is stored.
 *  - malformed messages (CRCs, magic, version, counts, lengths, shard,
 *    opcodes) drop the connection with no answer, and the server keeps
 *    serving everybody else.
 *  - authentication: a wrong secret or an unknown tenant gets -GPC_EAUTH
 *    and the connection is closed; anything but HELLO/AUTH before it is
 *    dropped unanswered; a MAC is bound to its nonce and shard.
 *  - tenants: bob can neither GET nor LOOKUP alice's keys while alice
 *    still hits them, and bob's PUT of alice's key never changes what
 *    alice reads.
 *
 * argv[1]: gpucached.
 */
#include "common/bytes.h"
#include "common/crc.h"
#include "net/auth.h"
#include "net/wire.h"
#include "nettest.h"

#include <sys/mman.h>

#define NS 0x5ec0de01ull
#define PAT 0x5A
#define MB (1u << 20)

/* ---- the raw client: one worker, any number of connections ---- */

#define RAW_MAXMSG 32

struct raw_msg {
	struct wire_hdr h;
	uint8_t *body;
};

struct raw {
	struct net_ep *ep;
	bool closed;            /* the server dropped us (error callback) */
	unsigned shard;
	unsigned nmsg, garbage;
	struct raw_msg msg[RAW_MAXMSG];
	uint8_t nonce[WIRE_NONCE_LEN];
};

static struct net_ctx *rctx;
static struct net_worker *rw;
static uint64_t next_req = 1;

static void
raw_on_msg(void *arg, struct net_ep *ep, const uint8_t *buf, size_t len)
{
	struct raw *r = net_ep_user(ep);
	struct raw_msg *m;

	(void)arg;
	if (r == NULL)
		return;
	if (r->nmsg == RAW_MAXMSG) {
		r->garbage++;
		return;
	}
	m = &r->msg[r->nmsg];
	if (wire_msg_decode(buf, len, &m->h) < 0) {
		r->garbage++;
		return;
	}
	m->body = malloc(m->h.body_len + 1);
	REQUIRE(m->body != NULL);
	memcpy(m->body, buf + WIRE_HDR_SIZE, m->h.body_len);
	r->nmsg++;
}

static void
raw_on_err(void *arg, struct net_ep *ep, int err)
{
	struct raw *r = net_ep_user(ep);

	(void)arg, (void)err;
	if (r != NULL) {
		r->closed = true;
		r->ep = NULL; /* the net layer closes it */
	}
	net_ep_set_user(ep, NULL);
}

static void
raw_pump(unsigned ms)
{
	uint64_t t0 = nt_now_ms();

	do {
		if (net_progress(rw) == 0)
			sched_yield();
	} while (nt_now_ms() - t0 < ms);
}

static void
raw_open(struct raw *r, unsigned shard)
{
	memset(r, 0, sizeof(*r));
	r->shard = shard;
	REQUIRE(net_connect(rw, "127.0.0.1", (uint16_t)(nt_port + shard),
			    &r->ep) == 0);
	net_ep_set_user(r->ep, r);
}

static void
raw_clear(struct raw *r)
{
	for (unsigned i = 0; i < r->nmsg; i++)
		free(r->msg[i].body);
	r->nmsg = 0;
	r->garbage = 0;
}

static void
raw_close(struct raw *r)
{
	if (!r->closed && r->ep != NULL) {
		net_ep_set_user(r->ep, NULL);
		net_ep_close(r->ep);
	}
	r->ep = NULL;
	r->closed = true;
	raw_clear(r);
}

/* Send bytes as they are (crafted messages). */
static void
raw_send_bytes(struct raw *r, const uint8_t *buf, size_t len)
{
	REQUIRE(!r->closed);
	REQUIRE(net_send_nb(r->ep, NET_AM_TO_SERVER, buf, len, NULL, 0, NULL,
			    NULL) == 0);
}

/* A well-formed message; its request id. */
static uint64_t
raw_send(struct raw *r, uint8_t op, uint8_t flags, uint32_t count,
	 const void *body, size_t blen)
{
	uint8_t *buf = malloc(WIRE_HDR_SIZE + blen + 1);
	struct wire_hdr h = { .opcode = op, .flags = flags,
			      .req_id = next_req++, .body_len = (uint32_t)blen,
			      .count = count, .shard = r->shard };

	REQUIRE(buf != NULL);
	h.body_crc = wire_body_crc(body, blen);
	wire_hdr_encode(&h, buf);
	if (blen)
		memcpy(buf + WIRE_HDR_SIZE, body, blen);
	raw_send_bytes(r, buf, WIRE_HDR_SIZE + blen);
	free(buf);
	return h.req_id;
}

/* Wait for the answer to id: the message, or NULL (closed / timeout). */
static struct raw_msg *
raw_wait(struct raw *r, uint64_t id, unsigned ms)
{
	uint64_t t0 = nt_now_ms();

	for (;;) {
		for (unsigned i = 0; i < r->nmsg; i++)
			if (r->msg[i].h.req_id == id)
				return &r->msg[i];
		if (r->closed || nt_now_ms() - t0 > ms)
			return NULL;
		if (net_progress(rw) == 0)
			sched_yield();
	}
}

/* HELLO then AUTH with the MAC for (secret, mac_shard): AUTH's status,
 * or 1 if there was no answer. */
static int
raw_auth_as(struct raw *r, const char *tenant, const char *secret,
	    unsigned mac_shard)
{
	uint8_t body[2 + 64], mac[AUTH_MAC_LEN];
	size_t tl = strlen(tenant);
	struct raw_msg *m;

	put_le16(body, (uint16_t)tl);
	memcpy(body + 2, tenant, tl);
	m = raw_wait(r, raw_send(r, WIRE_OP_HELLO, 0, 0, body, 2 + tl), 5000);
	if (m == NULL)
		return 1;
	CHECK_RC(m->h.status, 0);
	CHECK_RC(m->h.opcode, WIRE_OP_HELLO | WIRE_OP_RESP);
	CHECK_RC(m->h.body_len, WIRE_NONCE_LEN + 8);
	if (m->h.body_len < WIRE_NONCE_LEN + 8)
		return 1;
	CHECK_RC(get_le32(m->body + WIRE_NONCE_LEN), 2); /* nshards */
	CHECK_RC(get_le32(m->body + WIRE_NONCE_LEN + 4), r->shard);
	memcpy(r->nonce, m->body, WIRE_NONCE_LEN);
	REQUIRE(auth_mac((const uint8_t *)secret, strlen(secret), r->nonce,
			 tenant, mac_shard, mac) == 0);
	m = raw_wait(r, raw_send(r, WIRE_OP_AUTH, 0, 0, mac, sizeof(mac)),
		     5000);
	return m == NULL ? 1 : m->h.status;
}

static void
raw_authed(struct raw *r, unsigned shard, const char *tenant)
{
	raw_open(r, shard);
	REQUIRE(raw_auth_as(r, tenant, nt_secret(tenant), shard) == 0);
	raw_clear(r);
}

/* REG region id over [addr, addr + len) with the rkey of m: status. */
static int
raw_reg(struct raw *r, uint32_t id, uint64_t addr, uint64_t len,
	struct net_mem *m)
{
	struct wire_wr w;
	struct raw_msg *a;
	void *rk;
	size_t rkl;

	REQUIRE(net_mem_pack(rctx, m, &rk, &rkl) == 0);
	wire_wr_init(&w);
	wire_wr_u32(&w, id);
	wire_wr_u32(&w, (uint32_t)rkl);
	wire_wr_u64(&w, addr);
	wire_wr_u64(&w, len);
	wire_wr_bytes(&w, rk, rkl);
	free(rk);
	a = raw_wait(r, raw_send(r, WIRE_OP_REG, 0, 0, w.buf, w.len), 5000);
	wire_wr_fini(&w);
	return a == NULL ? 1 : a->h.status;
}

static int
raw_dereg(struct raw *r, uint32_t id)
{
	uint8_t b[4];
	struct raw_msg *a;

	put_le32(b, id);
	a = raw_wait(r, raw_send(r, WIRE_OP_DEREG, 0, 0, b, 4), 5000);
	return a == NULL ? 1 : a->h.status;
}

/* PUT/GET bodies: u64 ns, then blocks of descriptors. */
struct xb {
	struct wire_wr w;
	unsigned count;
};

static void
xb_init(struct xb *x)
{
	wire_wr_init(&x->w);
	wire_wr_u64(&x->w, NS);
	x->count = 0;
}

static void
xb_block(struct xb *x, const uint8_t *key, uint32_t ndesc)
{
	wire_wr_bytes(&x->w, key, WIRE_KEY_LEN);
	wire_wr_u32(&x->w, ndesc);
	wire_wr_u32(&x->w, 0);
	x->count++;
}

static void
xb_desc(struct xb *x, uint32_t region, uint64_t addr, uint64_t len)
{
	wire_wr_u32(&x->w, region);
	wire_wr_u32(&x->w, 0);
	wire_wr_u64(&x->w, addr);
	wire_wr_u64(&x->w, len);
}

/*
 * Send a PUT or GET batch and wait for its answer: 1 with the statuses
 * in st[0..n), 0 if none came (dropped / closed).
 */
static int
raw_xfer(struct raw *r, uint8_t op, struct xb *x, int32_t *st, unsigned n)
{
	struct raw_msg *a;

	REQUIRE(x->w.err == 0);
	a = raw_wait(r, raw_send(r, op, 0, x->count, x->w.buf, x->w.len),
		     5000);
	wire_wr_fini(&x->w);
	if (a == NULL)
		return 0;
	CHECK_RC(a->h.status, 0);
	CHECK_RC(a->h.count, n);
	CHECK_RC(a->h.body_len, 4 * n);
	for (unsigned i = 0; i < n; i++)
		st[i] = a->h.body_len >= 4 * (i + 1)
				? (int32_t)get_le32(a->body + 4 * i)
				: 1;
	return 1;
}

/* One block, one descriptor: the block's status, or 1 if no answer. */
static int
raw_one(struct raw *r, uint8_t op, const uint8_t *key, uint32_t region,
	uint64_t addr, uint64_t len)
{
	struct xb x;
	int32_t st = 1;

	xb_init(&x);
	xb_block(&x, key, 1);
	xb_desc(&x, region, addr, len);
	return raw_xfer(r, op, &x, &st, 1) ? st : 1;
}

/* A key on the given shard (le64(key) % 2 == shard). */
static void
shard_key(uint64_t id, unsigned shard, uint8_t *key)
{
	test_key(id, key);
	key[0] = (uint8_t)((key[0] & ~1u) | shard);
}

static size_t
count_not(const uint8_t *p, size_t len, uint8_t pat)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += p[i] != pat;
	return n;
}

/* ---- libgpucache side: what alice (or bob) sees ---- */

struct lib {
	struct gpc_client *c;
	uint8_t *p;
	struct gpc_mr *mr;
};

static void
lib_open(struct lib *l, const char *tenant)
{
	void *p = NULL;

	l->c = nt_connect(tenant);
	REQUIRE(gpc_mem_alloc(l->c, 4 * MB, &p, &l->mr) == 0);
	l->p = p;
}

static void
lib_close(struct lib *l)
{
	gpc_mem_deregister(l->c, l->mr);
	gpc_close(l->c);
}

/* GET key (len bytes of room): status; the bytes at l->p. */
static int
lib_get(struct lib *l, const uint8_t *key, size_t len)
{
	struct gpc_iov v = { l->p, len, l->mr };
	struct gpc_block b = { key, &v, 1, 1 };
	int rc;

	memset(l->p, PAT, len);
	rc = gpc_get(l->c, NS, &b, 1);
	return rc < 0 ? rc : b.status;
}

static int
lib_put(struct lib *l, const uint8_t *key, uint64_t id, size_t len)
{
	struct gpc_iov v = { l->p, len, l->mr };
	struct gpc_block b = { key, &v, 1, 1 };
	int rc;

	test_fill(id, l->p, len);
	rc = gpc_put(l->c, NS, &b, 1, 0);
	return rc < 0 ? rc : b.status;
}

static bool
lib_is(struct lib *l, const uint8_t *key, uint64_t id, size_t len)
{
	uint8_t *want = malloc(len);
	bool ok;

	REQUIRE(want != NULL);
	test_fill(id, want, len);
	ok = lib_get(l, key, len) == (int)len && memcmp(l->p, want, len) == 0;
	free(want);
	return ok;
}

/* ---- descriptors ---- */

static struct lib alice, bob;

static void
test_descriptors(void)
{
	enum { BL = 4096 };
	struct raw r1, r2, rb;
	void *m1p = NULL, *m2p = NULL, *mbp = NULL;
	struct net_mem *m1, *m2, *mb;
	uint8_t *M1, *M2, *MB_;
	uint64_t a1;
	uint8_t kg[32], kp[32], kx[32];
	int32_t st[2];
	struct xb x;
	int rc;

	/* r1, r2: alice on shard 0; rb: bob on shard 0 */
	raw_authed(&r1, 0, "alice");
	raw_authed(&r2, 0, "alice");
	raw_authed(&rb, 0, "bob");
	REQUIRE(net_mem_map(rctx, &m1p, 2 * MB, &m1) == 0);
	REQUIRE(net_mem_map(rctx, &m2p, MB, &m2) == 0);
	REQUIRE(net_mem_map(rctx, &mbp, MB, &mb) == 0);
	M1 = m1p, M2 = m2p, MB_ = mbp;
	a1 = (uint64_t)(uintptr_t)M1;
	/* r1 registers only the first half of M1 as region 1 */
	CHECK_RC(raw_reg(&r1, 1, a1, MB, m1), 0);
	CHECK_RC(raw_reg(&r1, 1, a1, MB, m1), -EEXIST);
	CHECK_RC(raw_reg(&r1, 3, a1, MB, m1), 0);
	CHECK_RC(raw_dereg(&r1, 3), 0);
	CHECK_RC(raw_dereg(&r1, 3), -ENOENT);
	CHECK_RC(raw_reg(&r2, 5, (uint64_t)(uintptr_t)M2, MB, m2), 0);
	CHECK_RC(raw_reg(&rb, 9, (uint64_t)(uintptr_t)MB_, MB, mb), 0);

	/* a good PUT through the raw client, seen by libgpucache */
	shard_key(40000, 0, kg);
	test_fill(40000, M1, BL);
	CHECK_RC(raw_one(&r1, WIRE_OP_PUT, kg, 1, a1, BL), 0);
	CHECK(lib_is(&alice, kg, 40000, BL));

	/* GET with bad descriptors: -EINVAL, not one byte written */
	{
		static const struct {
			const char *what;
			uint32_t region;
			int64_t off;   /* from M1 */
			uint64_t len;
			int want;
		} bad[] = {
			{ "crosses the end", 1, MB - 100, BL, -EINVAL },
			{ "past the end (mapped)", 1, MB, BL, -EINVAL },
			{ "starts before", 1, -16, BL, -EINVAL },
			{ "one byte past", 1, 1, MB, -EINVAL },
			{ "never registered", 99, 0, BL, -EINVAL },
			{ "deregistered", 3, 0, BL, -EINVAL },
			{ "other conn's id", 5, 0, BL, -EINVAL },
			{ "bob's conn's id", 9, 0, BL, -EINVAL },
			{ "too short", 1, 0, 100, -ENOBUFS },
		};

		for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			memset(M1, PAT, 2 * MB);
			memset(M2, PAT, MB);
			memset(MB_, PAT, MB);
			rc = raw_one(&r1, WIRE_OP_GET, kg, bad[i].region,
				     a1 + (uint64_t)bad[i].off, bad[i].len);
			if (rc != bad[i].want)
				fprintf(stderr, "GET %s: %d\n", bad[i].what, rc);
			CHECK_RC(rc, bad[i].want);
			CHECK_RC(count_not(M1, 2 * MB, PAT), 0);
			CHECK_RC(count_not(M2, MB, PAT), 0);
			CHECK_RC(count_not(MB_, MB, PAT), 0);
		}
		/* the other connection's own address, under its own id */
		memset(M2, PAT, MB);
		CHECK_RC(raw_one(&r1, WIRE_OP_GET, kg, 5,
				 (uint64_t)(uintptr_t)M2, BL), -EINVAL);
		CHECK_RC(count_not(M2, MB, PAT), 0);
		/* an address that passes decoding but not the range check */
		CHECK_RC(raw_one(&r1, WIRE_OP_GET, kg, 1, UINT64_MAX - BL, BL),
			 -EINVAL);
		CHECK_RC(count_not(M1, 2 * MB, PAT), 0);
	}
	/* a block whose second descriptor is bad moves no byte at all */
	memset(M1, PAT, 2 * MB);
	xb_init(&x);
	xb_block(&x, kg, 2);
	xb_desc(&x, 1, a1, BL / 2);
	xb_desc(&x, 1, a1 + MB - 10, BL / 2);
	CHECK_RC(raw_xfer(&r1, WIRE_OP_GET, &x, st, 1), 1);
	CHECK_RC(st[0], -EINVAL);
	CHECK_RC(count_not(M1, 2 * MB, PAT), 0);
	/* a batch: the good block is served, the bad one refused */
	xb_init(&x);
	xb_block(&x, kg, 1);
	xb_desc(&x, 1, a1 + 8192, BL);
	xb_block(&x, kg, 1);
	xb_desc(&x, 5, (uint64_t)(uintptr_t)M2, BL);
	memset(M1, PAT, 2 * MB);
	memset(M2, PAT, MB);
	CHECK_RC(raw_xfer(&r1, WIRE_OP_GET, &x, st, 2), 1);
	CHECK_RC(st[0], BL);
	CHECK_RC(st[1], -EINVAL);
	CHECK_RC(count_not(M2, MB, PAT), 0);
	{
		uint8_t *want = malloc(BL);

		REQUIRE(want != NULL);
		test_fill(40000, want, BL);
		CHECK(memcmp(M1 + 8192, want, BL) == 0);
		free(want);
	}

	/* PUT with bad descriptors: -EINVAL and nothing stored */
	{
		static const struct {
			const char *what;
			uint32_t region;
			int64_t off;
			uint64_t len;
		} bad[] = {
			{ "crosses the end", 1, MB - 100, BL },
			{ "past the end (mapped)", 1, MB, BL },
			{ "starts before", 1, -16, BL },
			{ "one byte past", 1, 1, MB },
			{ "never registered", 99, 0, BL },
			{ "deregistered", 3, 0, BL },
			{ "other conn's id", 5, 0, BL },
			{ "bob's conn's id", 9, 0, BL },
		};

		for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			unsigned present = 9;

			shard_key(41000 + i, 0, kp);
			test_fill(41000 + i, M1, 2 * MB);
			rc = raw_one(&r1, WIRE_OP_PUT, kp, bad[i].region,
				     a1 + (uint64_t)bad[i].off, bad[i].len);
			if (rc != -EINVAL)
				fprintf(stderr, "PUT %s: %d\n", bad[i].what, rc);
			CHECK_RC(rc, -EINVAL);
			CHECK_RC(lib_get(&alice, kp, MB + BL), -GPC_ENOTFOUND);
			CHECK_RC(gpc_lookup(alice.c, NS, kp, 1, 0, &present),
				 0);
			CHECK_RC(present, 0);
		}
		shard_key(41100, 0, kp);
		CHECK_RC(raw_one(&r1, WIRE_OP_PUT, kp, 1, UINT64_MAX - BL, BL),
			 -EINVAL);
		CHECK_RC(lib_get(&alice, kp, BL), -GPC_ENOTFOUND);
	}
	/* a PUT whose second descriptor is bad stores nothing */
	shard_key(41200, 0, kp);
	xb_init(&x);
	xb_block(&x, kp, 2);
	xb_desc(&x, 1, a1, BL / 2);
	xb_desc(&x, 99, a1 + BL / 2, BL / 2);
	CHECK_RC(raw_xfer(&r1, WIRE_OP_PUT, &x, st, 1), 1);
	CHECK_RC(st[0], -EINVAL);
	CHECK_RC(lib_get(&alice, kp, BL), -GPC_ENOTFOUND);
	/* nor does it replace an existing block */
	test_fill(40001, M1, BL);
	xb_init(&x);
	xb_block(&x, kg, 2);
	xb_desc(&x, 1, a1, BL / 2);
	xb_desc(&x, 1, a1 + MB - 1, BL / 2);
	CHECK_RC(raw_xfer(&r1, WIRE_OP_PUT, &x, st, 1), 1);
	CHECK_RC(st[0], -EINVAL);
	CHECK(lib_is(&alice, kg, 40000, BL));

	/* the connection survived all of that: good requests still work */
	shard_key(41300, 0, kx);
	test_fill(41300, M1 + 100, BL);
	CHECK_RC(raw_one(&r1, WIRE_OP_PUT, kx, 1, a1 + 100, BL), 0);
	CHECK(lib_is(&alice, kx, 41300, BL));
	CHECK(!r1.closed);

	/* zero length and addr + len overflow: the message is malformed,
	 * the connection is dropped, nothing moves */
	{
		static const struct {
			const char *what;
			uint8_t op;
			uint64_t addr_off, len;
			bool abs;
		} bad[] = {
			{ "GET zero length", WIRE_OP_GET, 0, 0, false },
			{ "PUT zero length", WIRE_OP_PUT, 0, 0, false },
			{ "GET overflow", WIRE_OP_GET, UINT64_MAX - 100, 4096, true },
			{ "PUT overflow", WIRE_OP_PUT, UINT64_MAX - 100, 4096, true },
			{ "GET len 2^64-1", WIRE_OP_GET, 0, UINT64_MAX, false },
			{ "PUT over 64 MiB", WIRE_OP_PUT, 0, 65 * MB, false },
		};

		for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			struct raw r;
			uint64_t id1;
			uint8_t kb[32];

			raw_authed(&r, 0, "alice");
			CHECK_RC(raw_reg(&r, 1, a1, MB, m1), 0);
			raw_clear(&r);
			memset(M1, PAT, 2 * MB);
			shard_key(bad[i].op == WIRE_OP_GET ? 40000 : 42000 + i,
				  0, kb);
			xb_init(&x);
			xb_block(&x, kb, 1);
			xb_desc(&x, 1, bad[i].abs ? bad[i].addr_off
						  : a1 + bad[i].addr_off,
				bad[i].len);
			id1 = raw_send(&r, bad[i].op, 0, 1, x.w.buf, x.w.len);
			wire_wr_fini(&x.w);
			/* a valid follow-up, which must not be answered */
			{
				uint8_t kb2[8 + 32];

				put_le64(kb2, NS);
				memcpy(kb2 + 8, kg, 32);
				raw_send(&r, WIRE_OP_LOOKUP, 0, 1, kb2,
					 sizeof(kb2));
			}
			CHECK(raw_wait(&r, id1, 1500) == NULL);
			raw_pump(50);
			if (r.nmsg != 0)
				fprintf(stderr, "%s: answered\n", bad[i].what);
			CHECK_RC(r.nmsg, 0);
			CHECK_RC(count_not(M1, 2 * MB, PAT), 0);
			if (bad[i].op == WIRE_OP_PUT)
				CHECK_RC(lib_get(&alice, kb, BL),
					 -GPC_ENOTFOUND);
			raw_close(&r);
		}
	}
	CHECK(lib_is(&alice, kg, 40000, BL));
	raw_close(&r1);
	raw_close(&r2);
	raw_close(&rb);
	raw_pump(20);
	net_mem_unmap(rctx, m1);
	net_mem_unmap(rctx, m2);
	net_mem_unmap(rctx, mb);
	printf("descriptors: done\n");
}

/* ---- malformed messages ---- */

enum mal {
	MAL_HDR_CRC, MAL_BODY_CRC, MAL_MAGIC, MAL_VERSION, MAL_SHORT,
	MAL_BODY_LEN, MAL_COUNT0, MAL_COUNT_BIG, MAL_COUNT_MORE,
	MAL_COUNT_LESS, MAL_NDESC0, MAL_NDESC_BIG, MAL_KEYS_COUNT,
	MAL_KEYS_TRAIL, MAL_SHARD, MAL_OP0, MAL_OP_BIG, MAL_OP_RESP,
	MAL_HELLO_AGAIN, MAL_AUTH_AGAIN, MAL_DEREG_LEN, MAL_REG_RKEY0,
	MAL_REG_RKEY_BIG, MAL_REG_TRUNC, MAL_BODY_OVER, MAL_N
};

static const char *const mal_name[MAL_N] = {
	"header CRC", "body CRC", "magic", "version 2", "20-byte message",
	"body_len != bytes", "PUT count 0", "PUT count 1025",
	"PUT count 3, 2 blocks", "PUT count 1, 2 blocks", "ndesc 0",
	"ndesc 65", "LOOKUP count 5, 4 keys", "DELETE trailing byte",
	"wrong shard", "opcode 0", "opcode 12", "response opcode",
	"HELLO again", "AUTH again", "DEREG 3-byte body", "REG rkey_len 0",
	"REG rkey_len 4097", "REG truncated rkey", "body over 1 MiB",
};

static uint64_t mal_id; /* request id of the last message built */

/* Build a message of kind k; returns its length in buf. */
static size_t
mal_build(enum mal k, unsigned shard, uint8_t *buf, size_t cap)
{
	struct wire_wr w;
	struct wire_hdr h = { .opcode = WIRE_OP_PUT, .req_id = next_req++,
			      .shard = shard };
	uint8_t key[32];
	uint32_t nblk = 1, ndesc = 1;
	size_t n;

	mal_id = h.req_id;
	shard_key(43000 + k, shard, key);
	wire_wr_init(&w);
	switch (k) {
	case MAL_COUNT_MORE: nblk = 2; h.count = 3; break;
	case MAL_COUNT_LESS: nblk = 2; h.count = 1; break;
	case MAL_COUNT0: h.count = 0; break;
	case MAL_COUNT_BIG: h.count = WIRE_MAX_BATCH + 1; break;
	case MAL_NDESC0: ndesc = 0; h.count = 1; break;
	case MAL_NDESC_BIG: ndesc = WIRE_MAX_IOV + 1; h.count = 1; break;
	default: h.count = 1; break;
	}
	switch (k) {
	case MAL_KEYS_COUNT: case MAL_KEYS_TRAIL:
		h.opcode = k == MAL_KEYS_COUNT ? WIRE_OP_LOOKUP : WIRE_OP_DELETE;
		h.count = k == MAL_KEYS_COUNT ? 5 : 1;
		wire_wr_u64(&w, NS);
		for (unsigned i = 0; i < (k == MAL_KEYS_COUNT ? 4u : 1u); i++)
			wire_wr_bytes(&w, key, 32);
		if (k == MAL_KEYS_TRAIL)
			wire_wr_u8(&w, 0);
		break;
	case MAL_HELLO_AGAIN:
		h.opcode = WIRE_OP_HELLO;
		h.count = 0;
		wire_wr_u16(&w, 5);
		wire_wr_bytes(&w, "alice", 5);
		break;
	case MAL_AUTH_AGAIN:
		h.opcode = WIRE_OP_AUTH;
		h.count = 0;
		wire_wr_bytes(&w, key, 32);
		break;
	case MAL_DEREG_LEN:
		h.opcode = WIRE_OP_DEREG;
		h.count = 0;
		wire_wr_bytes(&w, key, 3);
		break;
	case MAL_REG_RKEY0: case MAL_REG_RKEY_BIG: case MAL_REG_TRUNC:
		h.opcode = WIRE_OP_REG;
		h.count = 0;
		wire_wr_u32(&w, 77);
		wire_wr_u32(&w, k == MAL_REG_RKEY0 ? 0
				: k == MAL_REG_RKEY_BIG ? WIRE_MAX_RKEY + 1
							: 64);
		wire_wr_u64(&w, 0x10000);
		wire_wr_u64(&w, 4096);
		wire_wr_bytes(&w, key, k == MAL_REG_TRUNC ? 16 : 32);
		break;
	case MAL_BODY_OVER:
		h.count = 1;
		wire_wr_u64(&w, NS);
		break;
	default:
		wire_wr_u64(&w, NS);
		for (uint32_t b = 0; b < nblk; b++) {
			wire_wr_bytes(&w, key, 32);
			wire_wr_u32(&w, ndesc);
			wire_wr_u32(&w, 0);
			for (uint32_t d = 0; d < ndesc; d++) {
				wire_wr_u32(&w, 1);
				wire_wr_u32(&w, 0);
				wire_wr_u64(&w, 0x10000);
				wire_wr_u64(&w, 16);
			}
		}
		break;
	}
	REQUIRE(w.err == 0);
	if (k == MAL_BODY_OVER) {
		/* a body over WIRE_MAX_BODY, consistent otherwise */
		n = WIRE_MAX_BODY + 64;
		REQUIRE(WIRE_HDR_SIZE + n <= cap);
		memset(buf + WIRE_HDR_SIZE, 0, n);
		memcpy(buf + WIRE_HDR_SIZE, w.buf, w.len);
	} else {
		n = w.len;
		REQUIRE(WIRE_HDR_SIZE + n <= cap);
		if (n)
			memcpy(buf + WIRE_HDR_SIZE, w.buf, n);
	}
	wire_wr_fini(&w);
	if (k == MAL_SHARD)
		h.shard = shard ^ 1;
	if (k == MAL_OP0)
		h.opcode = 0;
	if (k == MAL_OP_BIG)
		h.opcode = WIRE_OP_MAX;
	if (k == MAL_OP_RESP)
		h.opcode = WIRE_OP_PUT | WIRE_OP_RESP;
	h.body_len = (uint32_t)n;
	h.body_crc = wire_body_crc(buf + WIRE_HDR_SIZE, n);
	if (k == MAL_BODY_LEN)
		h.body_len = (uint32_t)n - 8;
	if (k == MAL_BODY_CRC)
		h.body_crc ^= 1;
	wire_hdr_encode(&h, buf);
	if (k == MAL_HDR_CRC)
		buf[44] ^= 0x80;
	if (k == MAL_MAGIC) {
		buf[0] = 'X';
		put_le32(buf + 44, crc32c(buf, 44));
	}
	if (k == MAL_VERSION) {
		put_le16(buf + 4, 2);
		put_le32(buf + 44, crc32c(buf, 44));
	}
	if (k == MAL_SHORT)
		return 20;
	return WIRE_HDR_SIZE + n;
}

static void
test_malformed(void)
{
	static struct raw r[MAL_N];
	uint64_t bad_id[MAL_N];
	size_t cap = WIRE_HDR_SIZE + WIRE_MAX_BODY + 4096;
	uint8_t *buf = malloc(cap), kl[8 + 32];
	unsigned answered = 0, closed = 0;

	REQUIRE(buf != NULL);
	put_le64(kl, NS);
	shard_key(40000, 0, kl + 8);
	/* all at once, so that one wait covers them */
	for (unsigned k = 0; k < MAL_N; k++) {
		unsigned shard = k % 2;

		raw_authed(&r[k], shard, "alice");
		shard_key(40000, shard, kl + 8);
		raw_send_bytes(&r[k], buf, mal_build((enum mal)k, shard, buf,
						      cap));
		bad_id[k] = mal_id;
		/* a valid LOOKUP after it: must go unanswered too */
		raw_send(&r[k], WIRE_OP_LOOKUP, 0, 1, kl, sizeof(kl));
	}
	for (uint64_t t0 = nt_now_ms(); nt_now_ms() - t0 < 1500;) {
		unsigned c = 0;

		for (unsigned k = 0; k < MAL_N; k++)
			c += r[k].closed;
		if (c == MAL_N)
			break;
		raw_pump(10);
	}
	for (unsigned k = 0; k < MAL_N; k++) {
		for (unsigned i = 0; i < r[k].nmsg; i++) {
			bool bad = r[k].msg[i].h.req_id == bad_id[k];

			/*
			 * A body over UCX's rendezvous threshold reaches the
			 * server after its data, so the small LOOKUP sent
			 * after it may be served first; only an answer to
			 * the bad message itself counts then.
			 */
			if (!bad && k == MAL_BODY_OVER)
				continue;
			fprintf(stderr, "malformed '%s': %s answered (status "
				"%d)\n", mal_name[k], bad ? "it was" :
				"the LOOKUP after it was",
				r[k].msg[i].h.status);
			answered++;
		}
		closed += r[k].closed;
		raw_close(&r[k]);
	}
	CHECK_RC(answered, 0);
	printf("malformed: %u kinds, none answered, %u closed by the server "
	       "within 1.5 s\n", MAL_N, closed);
	free(buf);
	/* the server is alive and serves others */
	CHECK(nt_daemon_alive());
	{
		struct raw g;
		uint8_t kg[32];
		struct raw_msg *m;

		raw_authed(&g, 0, "alice");
		shard_key(40000, 0, kg);
		put_le64(kl, NS);
		memcpy(kl + 8, kg, 32);
		m = raw_wait(&g, raw_send(&g, WIRE_OP_LOOKUP, 0, 1, kl,
					  sizeof(kl)), 5000);
		CHECK(m != NULL && m->h.status == 0 && m->h.aux == 1);
		raw_close(&g);
	}
	CHECK(lib_is(&alice, kl + 8, 40000, 4096));
}

/*
 * REG with rkey bytes that no UCX produced: the server may refuse them
 * or accept them, but must survive, and later use of such a region must
 * not crash it either. The address is memory of ours (with TCP, UCX
 * emulates RMA by messages that our own worker applies to it).
 */
static void
test_rkey_garbage(void)
{
	enum { NR = 48 };
	static struct raw r[NR];
	uint8_t *own = aligned_alloc(4096, MB), k[32];
	uint64_t s = 77, base = (uint64_t)(uintptr_t)own;
	unsigned refused = 0, accepted = 0, dropped = 0;

	REQUIRE(own != NULL);
	for (unsigned i = 0; i < NR; i++) {
		uint8_t body[24 + 256];
		size_t rl = 1 + test_rand(&s) % 200;
		struct raw_msg *m;

		raw_authed(&r[i], i % 2, "alice");
		for (size_t j = 0; j < sizeof(body); j += 8) {
			uint64_t v = test_rand(&s);

			memcpy(body + j, &v, 8);
		}
		if (i % 4 == 1)
			memset(body + 24, 0xff, rl < 16 ? rl : 16);
		if (i % 4 == 2)
			memset(body + 24, 0, rl);
		put_le32(body, 1);
		put_le32(body + 4, (uint32_t)rl);
		put_le64(body + 8, base);
		put_le64(body + 16, MB);
		m = raw_wait(&r[i], raw_send(&r[i], WIRE_OP_REG, 0, 0, body,
					     24 + rl), 3000);
		if (m == NULL) {
			dropped++;
			continue;
		}
		if (m->h.status != 0) {
			refused++;
			continue;
		}
		accepted++;
		/* use it: the RMA may fail, the server must not */
		shard_key(40000, i % 2, k);
		(void)raw_one(&r[i], i % 8 < 4 ? WIRE_OP_GET : WIRE_OP_PUT, k,
			      1, base, 4096);
	}
	for (unsigned i = 0; i < NR; i++)
		raw_close(&r[i]);
	raw_pump(20);
	free(own);
	printf("garbage rkeys: %u refused, %u accepted, %u dropped\n",
	       refused, accepted, dropped);
	CHECK(nt_daemon_alive());
	shard_key(40000, 0, k);
	CHECK(lib_is(&alice, k, 40000, 4096));
}

/*
 * A forged rkey: the packed key of ANOTHER process's UCX memory (that
 * process never talks to the server), presented by alice in her own REG.
 * What the server does with it must stay inside alice's connection: the
 * other process's memory is neither written (GET) nor read into a block
 * (PUT). Victim and attacker are child processes.
 *
 *   --victim: map 1 MiB with UCX, fill it with 0xC3, write
 *             "ADDR RKEYHEX" on fd 3; on a line from stdin, write the
 *             number of bytes that changed.
 *   --attacker PORT ADDR RKEYHEX: REG it, GET a block of alice's into it,
 *             PUT a block from it, read that block back; write
 *             "reg get put stolen" on fd 3.
 */
#define VPAT 0xC3

static int
victim_main(void)
{
	struct net_ctx *ctx;
	struct net_mem *m;
	void *p = NULL, *rk;
	size_t rkl, changed = 0;
	char line[16];
	FILE *out = fdopen(3, "w");

	alarm(60);
	if (out == NULL || net_ctx_create(false, &ctx) < 0 ||
	    net_mem_map(ctx, &p, MB, &m) < 0 ||
	    net_mem_pack(ctx, m, &rk, &rkl) < 0)
		return 1;
	memset(p, VPAT, MB);
	fprintf(out, "%llx ", (unsigned long long)(uintptr_t)p);
	for (size_t i = 0; i < rkl; i++)
		fprintf(out, "%02x", ((uint8_t *)rk)[i]);
	fprintf(out, "\n");
	fflush(out);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 1;
	for (size_t i = 0; i < MB; i++)
		changed += ((uint8_t *)p)[i] != VPAT;
	fprintf(out, "%zu\n", changed);
	fclose(out);
	free(rk);
	net_mem_unmap(ctx, m);
	net_ctx_destroy(ctx);
	return 0;
}

static int
attacker_main(uint16_t port, const char *addr_s, const char *rk_s)
{
	uint64_t addr = strtoull(addr_s, NULL, 16);
	size_t rkl = strlen(rk_s) / 2;
	uint8_t *rk = malloc(rkl + 1), kg[32], kp[32], *own;
	struct net_mem *om;
	void *op = NULL, *mine;
	struct raw r;
	struct wire_wr w;
	struct raw_msg *a;
	int reg, get, put, back;
	size_t stolen = 0;

	alarm(60);
	nt_port = port;
	REQUIRE(rk != NULL);
	for (size_t i = 0; i < rkl; i++)
		REQUIRE(sscanf(rk_s + 2 * i, "%2hhx", &rk[i]) == 1);
	/* where UCX over TCP would apply emulated RMA: our own mapping at
	 * the victim's address, so that only we could be hurt */
	mine = mmap((void *)(uintptr_t)addr, MB, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (mine != MAP_FAILED)
		memset(mine, 0, MB);
	REQUIRE(net_ctx_create(false, &rctx) == 0);
	REQUIRE(net_worker_create(rctx, NET_AM_TO_CLIENT, raw_on_msg,
				  raw_on_err, NULL, &rw) == 0);
	REQUIRE(net_mem_map(rctx, &op, MB, &om) == 0);
	own = op;
	raw_authed(&r, 0, "alice");
	CHECK_RC(raw_reg(&r, 2, (uint64_t)(uintptr_t)own, MB, om), 0);
	/* alice's own block, via her own memory */
	shard_key(44000, 0, kg);
	test_fill(44000, own, 4096);
	CHECK_RC(raw_one(&r, WIRE_OP_PUT, kg, 2, (uint64_t)(uintptr_t)own,
			 4096), 0);
	/* the forged registration */
	wire_wr_init(&w);
	wire_wr_u32(&w, 1);
	wire_wr_u32(&w, (uint32_t)rkl);
	wire_wr_u64(&w, addr);
	wire_wr_u64(&w, MB);
	wire_wr_bytes(&w, rk, rkl);
	a = raw_wait(&r, raw_send(&r, WIRE_OP_REG, 0, 0, w.buf, w.len), 5000);
	wire_wr_fini(&w);
	reg = a == NULL ? 1 : a->h.status;
	get = put = back = 1;
	if (reg == 0) {
		get = raw_one(&r, WIRE_OP_GET, kg, 1, addr + 4096, 4096);
		shard_key(44001, 0, kp);
		put = raw_one(&r, WIRE_OP_PUT, kp, 1, addr + 65536, 4096);
		memset(own, 0, MB);
		back = raw_one(&r, WIRE_OP_GET, kp, 2,
			       (uint64_t)(uintptr_t)own, 4096);
		if (back == 4096)
			for (size_t i = 0; i < 4096; i++)
				stolen += own[i] == VPAT;
	}
	{
		FILE *out = fdopen(3, "w");

		if (out != NULL) {
			fprintf(out, "%d %d %d %zu\n", reg, get, put, stolen);
			fclose(out);
		}
	}
	raw_close(&r);
	raw_pump(20);
	free(rk);
	net_mem_unmap(rctx, om);
	net_worker_destroy(rw);
	net_ctx_destroy(rctx);
	if (mine != MAP_FAILED)
		munmap(mine, MB);
	return 0;
}

static void
test_forged_rkey(void)
{
	char line[8192], port[16], *sp;
	int vout, vin, aout, st;
	FILE *vf, *af;
	int reg = 9, get = 9, put = 9;
	size_t stolen = 0, changed = 0;

	{
		const char *args[] = { "--victim", NULL };

		nt_spawn_io(0, args, &vout, &vin, NULL);
	}
	vf = fdopen(vout, "r");
	REQUIRE(vf != NULL);
	REQUIRE(fgets(line, sizeof(line), vf) != NULL);
	line[strcspn(line, "\n")] = '\0';
	sp = strchr(line, ' ');
	REQUIRE(sp != NULL);
	*sp = '\0';
	snprintf(port, sizeof(port), "%u", nt_port);
	{
		const char *args[] = { "--attacker", port, line, sp + 1, NULL };

		nt_spawn_io(1, args, &aout, NULL, NULL);
	}
	af = fdopen(aout, "r");
	REQUIRE(af != NULL);
	if (fgets(line, sizeof(line), af) == NULL ||
	    sscanf(line, "%d %d %d %zu", &reg, &get, &put, &stolen) != 4)
		fprintf(stderr, "forged rkey: the attacker said nothing\n");
	st = nt_child_wait(1, 20000);
	fclose(af);
	REQUIRE(write(vin, "c\n", 2) == 2);
	if (fgets(line, sizeof(line), vf) == NULL ||
	    sscanf(line, "%zu", &changed) != 1)
		changed = (size_t)-1;
	close(vin);
	nt_child_wait(0, 10000);
	fclose(vf);
	printf("forged rkey of another process (%s): REG %d, GET %d, PUT %d; "
	       "%zu victim bytes written, %zu read into a block\n",
	       getenv("UCX_TLS") ? getenv("UCX_TLS") : "default", reg, get,
	       put, changed, stolen);
	(void)st;
	if (changed != 0 || stolen != 0)
		fprintf(stderr, "SERVER BUG: with a forged rkey a tenant "
			"reaches memory of a process that is not its peer\n");
	CHECK_RC(changed, 0);
	CHECK_RC(stolen, 0);
	CHECK(nt_daemon_alive());
}

/* ---- authentication ---- */

static void
expect_dropped(struct raw *r, const char *what)
{
	uint8_t kl[8 + 32];
	uint64_t id;

	put_le64(kl, NS);
	shard_key(40000, r->shard, kl + 8);
	if (!r->closed) {
		id = raw_send(r, WIRE_OP_LOOKUP, 0, 1, kl, sizeof(kl));
		CHECK(raw_wait(r, id, 1000) == NULL);
	}
	if (r->nmsg != 0)
		fprintf(stderr, "%s: got %u answers\n", what, r->nmsg);
	CHECK_RC(r->nmsg, 0);
}

static void
test_auth(void)
{
	struct raw r, r2;
	struct raw_msg *m;
	uint8_t mac[AUTH_MAC_LEN], nonce1[32], kl[8 + 32];
	struct gpc_client *c = NULL;
	int rc;

	/* wrong secret: -GPC_EAUTH, then nothing */
	raw_open(&r, 0);
	rc = raw_auth_as(&r, "alice", "not-alices-secret-at-all", 0);
	CHECK_RC(rc, -GPC_EAUTH);
	raw_clear(&r);
	expect_dropped(&r, "after a wrong secret");
	raw_close(&r);
	/* unknown tenant: a nonce all the same, then -GPC_EAUTH */
	raw_open(&r, 1);
	rc = raw_auth_as(&r, "mallory", "mallory-secret-0123456789", 1);
	CHECK_RC(rc, -GPC_EAUTH);
	raw_clear(&r);
	expect_dropped(&r, "after an unknown tenant");
	raw_close(&r);
	/* the right secret, but the MAC of another shard */
	raw_open(&r, 0);
	CHECK_RC(raw_auth_as(&r, "alice", NT_ALICE_SECRET, 1), -GPC_EAUTH);
	raw_clear(&r);
	expect_dropped(&r, "after another shard's MAC");
	raw_close(&r);
	/* a MAC replayed on another connection (fresh nonce) */
	raw_open(&r, 0);
	raw_open(&r2, 0);
	{
		uint8_t hb[2 + 5];

		put_le16(hb, 5);
		memcpy(hb + 2, "alice", 5);
		m = raw_wait(&r, raw_send(&r, WIRE_OP_HELLO, 0, 0, hb, 7), 5000);
		REQUIRE(m != NULL && m->h.body_len >= 32);
		memcpy(nonce1, m->body, 32);
		m = raw_wait(&r2, raw_send(&r2, WIRE_OP_HELLO, 0, 0, hb, 7),
			     5000);
		REQUIRE(m != NULL && m->h.body_len >= 32);
		CHECK(memcmp(nonce1, m->body, 32) != 0); /* fresh nonces */
		REQUIRE(auth_mac((const uint8_t *)NT_ALICE_SECRET,
				 strlen(NT_ALICE_SECRET), nonce1, "alice", 0,
				 mac) == 0);
		m = raw_wait(&r2, raw_send(&r2, WIRE_OP_AUTH, 0, 0, mac, 32),
			     5000);
		CHECK(m != NULL && m->h.status == -GPC_EAUTH);
		raw_clear(&r2);
		expect_dropped(&r2, "after a replayed MAC");
		/* the MAC is good on its own connection */
		m = raw_wait(&r, raw_send(&r, WIRE_OP_AUTH, 0, 0, mac, 32),
			     5000);
		CHECK(m != NULL && m->h.status == 0);
	}
	raw_close(&r);
	raw_close(&r2);

	/* many failed AUTHs at once: every one is answered -GPC_EAUTH
	 * before its connection goes (the answer must not be lost to the
	 * close), and then closed */
	{
		enum { NB = 32 };
		static struct raw rr[NB];
		uint64_t ids[NB];
		unsigned answered = 0, closed = 0;
		uint8_t hb[2 + 5];

		put_le16(hb, 5);
		memcpy(hb + 2, "alice", 5);
		for (unsigned i = 0; i < NB; i++) {
			raw_open(&rr[i], i % 2);
			m = raw_wait(&rr[i], raw_send(&rr[i], WIRE_OP_HELLO, 0,
						      0, hb, 7), 5000);
			REQUIRE(m != NULL && m->h.status == 0);
			raw_clear(&rr[i]);
		}
		memset(mac, 0x5c, sizeof(mac));
		for (unsigned i = 0; i < NB; i++)
			ids[i] = raw_send(&rr[i], WIRE_OP_AUTH, 0, 0, mac, 32);
		for (uint64_t t0 = nt_now_ms(); nt_now_ms() - t0 < 3000;) {
			unsigned nc = 0;

			for (unsigned i = 0; i < NB; i++)
				nc += rr[i].closed;
			if (nc == NB)
				break;
			raw_pump(10);
		}
		for (unsigned i = 0; i < NB; i++) {
			for (unsigned j = 0; j < rr[i].nmsg; j++)
				answered += rr[i].msg[j].h.req_id == ids[i] &&
					    rr[i].msg[j].h.status == -GPC_EAUTH;
			closed += rr[i].closed;
			raw_close(&rr[i]);
		}
		if (answered != NB)
			fprintf(stderr, "failed AUTH: %u of %u answered "
				"-GPC_EAUTH before the close\n", answered, NB);
		CHECK_RC(answered, NB);
		CHECK_RC(closed, NB);
	}

	/* before AUTH: anything but HELLO/AUTH is dropped unanswered */
	put_le64(kl, NS);
	shard_key(40000, 0, kl + 8);
	{
		static const char *const what[] = {
			"PUT as first message", "PUT after HELLO",
			"LOOKUP after HELLO", "REG after HELLO",
			"AUTH without HELLO", "GET as first message",
			"STAT after HELLO", "HELLO with a space",
		};
		static struct raw rr[8];
		uint8_t hb[2 + 5], body[512];
		struct xb x;

		put_le16(hb, 5);
		memcpy(hb + 2, "alice", 5);
		for (unsigned i = 0; i < 8; i++) {
			raw_open(&rr[i], 0);
			if (i == 1 || i == 2 || i == 3 || i == 6) {
				m = raw_wait(&rr[i], raw_send(&rr[i],
							      WIRE_OP_HELLO, 0,
							      0, hb, 7),
					     5000);
				CHECK(m != NULL && m->h.status == 0);
				raw_clear(&rr[i]);
			}
			xb_init(&x);
			xb_block(&x, kl + 8, 1);
			xb_desc(&x, 1, 0x10000, 4096);
			switch (i) {
			case 0: case 1: case 5:
				raw_send(&rr[i], i == 5 ? WIRE_OP_GET
							: WIRE_OP_PUT,
					 0, 1, x.w.buf, x.w.len);
				break;
			case 2:
				raw_send(&rr[i], WIRE_OP_LOOKUP, 0, 1, kl,
					 sizeof(kl));
				break;
			case 3:
				memset(body, 0, sizeof(body));
				put_le32(body, 1);
				put_le32(body + 4, 64);
				put_le64(body + 8, 0x10000);
				put_le64(body + 16, 4096);
				raw_send(&rr[i], WIRE_OP_REG, 0, 0, body, 24 + 64);
				break;
			case 4:
				raw_send(&rr[i], WIRE_OP_AUTH, 0, 0, body, 32);
				break;
			case 6:
				raw_send(&rr[i], WIRE_OP_STAT, 0, 0, NULL, 0);
				break;
			case 7:
				put_le16(body, 7);
				memcpy(body + 2, "ali ce", 7);
				raw_send(&rr[i], WIRE_OP_HELLO, 0, 0, body, 9);
				break;
			}
			wire_wr_fini(&x.w);
			/* then a proper HELLO: also unanswered */
			raw_send(&rr[i], WIRE_OP_HELLO, 0, 0, hb, 7);
		}
		raw_pump(1000);
		for (unsigned i = 0; i < 8; i++) {
			if (rr[i].nmsg != 0)
				fprintf(stderr, "%s: answered (status %d)\n",
					what[i], rr[i].msg[0].h.status);
			CHECK_RC(rr[i].nmsg, 0);
			raw_close(&rr[i]);
		}
	}
	/* libgpucache: a wrong secret or an unknown tenant fail cleanly */
	rc = nt_connect_port(nt_port, "alice", "wrong-secret-0123456789", &c);
	CHECK_RC(rc, -GPC_EAUTH);
	rc = nt_connect_port(nt_port, "mallory", "mallory-secret-0123456789",
			     &c);
	CHECK_RC(rc, -GPC_EAUTH);
	rc = nt_connect_port(nt_port, "bob", NT_ALICE_SECRET, &c);
	CHECK_RC(rc, -GPC_EAUTH);
	CHECK(nt_daemon_alive());
	CHECK(lib_is(&alice, kl + 8, 40000, 4096));
	printf("auth: done\n");
}

/* ---- tenants ---- */

static void
test_tenants(void)
{
	enum { NK = 16 };
	uint8_t keys[NK][32];
	size_t lens[NK];
	unsigned present = 99, bad = 0;
	int st[NK];

	for (unsigned i = 0; i < NK; i++) {
		test_key(50000 + i, keys[i]);
		lens[i] = i == 0 ? 1 : test_len(50000 + i, 256u << 10);
		CHECK_RC(lib_put(&alice, keys[i], 50000 + i, lens[i]), 0);
	}
	/* bob: misses, nothing written, no prefix */
	for (unsigned i = 0; i < NK; i++) {
		int rc = lib_get(&bob, keys[i], lens[i]);

		bad += rc != -GPC_ENOTFOUND;
		bad += count_not(bob.p, lens[i], PAT) != 0;
	}
	CHECK_RC(bad, 0);
	CHECK_RC(gpc_lookup(bob.c, NS, &keys[0][0], NK, 0, &present), 0);
	CHECK_RC(present, 0);
	CHECK_RC(gpc_lookup(bob.c, NS, &keys[0][0], NK, GPC_LOOKUP_PREFETCH,
			    &present), 0);
	CHECK_RC(present, 0);
	CHECK_RC(gpc_pin(bob.c, NS, &keys[0][0], NK, 1, st), 0);
	for (unsigned i = 0; i < NK; i++)
		CHECK_RC(st[i], -GPC_ENOTFOUND);
	CHECK_RC(gpc_delete(bob.c, NS, &keys[0][0], NK, st), 0);
	for (unsigned i = 0; i < NK; i++)
		CHECK_RC(st[i], -GPC_ENOTFOUND);
	/* alice: still all there */
	CHECK_RC(gpc_lookup(alice.c, NS, &keys[0][0], NK, 0, &present), 0);
	CHECK_RC(present, NK);
	bad = 0;
	for (unsigned i = 0; i < NK; i++)
		bad += !lib_is(&alice, keys[i], 50000 + i, lens[i]);
	CHECK_RC(bad, 0);
	/* bob writes the same keys: his own blocks, alice's unchanged */
	for (unsigned i = 0; i < NK; i++)
		CHECK_RC(lib_put(&bob, keys[i], 60000 + i, lens[i] + 7), 0);
	bad = 0;
	for (unsigned i = 0; i < NK; i++) {
		bad += !lib_is(&alice, keys[i], 50000 + i, lens[i]);
		bad += !lib_is(&bob, keys[i], 60000 + i, lens[i] + 7);
	}
	CHECK_RC(bad, 0);
	/* bob deletes his: alice unaffected */
	CHECK_RC(gpc_delete(bob.c, NS, &keys[0][0], NK, st), 0);
	for (unsigned i = 0; i < NK; i++)
		CHECK_RC(st[i], 0);
	CHECK_RC(gpc_lookup(bob.c, NS, &keys[0][0], NK, 0, &present), 0);
	CHECK_RC(present, 0);
	CHECK_RC(gpc_lookup(alice.c, NS, &keys[0][0], NK, 0, &present), 0);
	CHECK_RC(present, NK);
	bad = 0;
	for (unsigned i = 0; i < NK; i++)
		bad += !lib_is(&alice, keys[i], 50000 + i, lens[i]);
	CHECK_RC(bad, 0);
	/* the raw client as bob: same key, same namespace, still a miss */
	{
		struct raw r;
		void *mp = NULL;
		struct net_mem *m;
		uint8_t k[32];

		shard_key(50100, 0, k);
		CHECK_RC(lib_put(&alice, k, 50100, 4096), 0);
		raw_authed(&r, 0, "bob");
		REQUIRE(net_mem_map(rctx, &mp, MB, &m) == 0);
		memset(mp, PAT, MB);
		CHECK_RC(raw_reg(&r, 1, (uint64_t)(uintptr_t)mp, MB, m), 0);
		CHECK_RC(raw_one(&r, WIRE_OP_GET, k, 1,
				 (uint64_t)(uintptr_t)mp, 4096),
			 -GPC_ENOTFOUND);
		CHECK_RC(count_not(mp, MB, PAT), 0);
		raw_close(&r);
		raw_pump(20);
		net_mem_unmap(rctx, m);
		CHECK(lib_is(&alice, k, 50100, 4096));
	}
	printf("tenants: done\n");
}

int
main(int argc, char **argv)
{
	uint64_t t0;

	if (argc >= 3 && strcmp(argv[2], "--victim") == 0)
		return victim_main();
	if (argc >= 6 && strcmp(argv[2], "--attacker") == 0)
		return attacker_main((uint16_t)atoi(argv[3]), argv[4], argv[5]) ||
		       test_fail;
	nt_setup("net_security", argc, argv, 80);
	t0 = nt_now_ms();
	nt_daemon_start();
	REQUIRE(net_ctx_create(false, &rctx) == 0);
	REQUIRE(net_worker_create(rctx, NET_AM_TO_CLIENT, raw_on_msg,
				  raw_on_err, NULL, &rw) == 0);
	lib_open(&alice, "alice");
	lib_open(&bob, "bob");
	test_descriptors();
	test_malformed();
	test_forged_rkey();
	test_auth();
	test_tenants();
	test_rkey_garbage(); /* last: it may bring the daemon down */
	CHECK(nt_daemon_alive());
	lib_close(&alice);
	lib_close(&bob);
	net_worker_destroy(rw);
	net_ctx_destroy(rctx);
	CHECK(nt_exit0(nt_daemon_stop(20000), "gpucached after SIGTERM"));
	printf("total %llu ms\n", (unsigned long long)(nt_now_ms() - t0));
	return test_summary("net_security");
}
