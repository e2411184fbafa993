/*
 * test_security.c - what gpucached (wire protocol version 2) must refuse,
 * driven by libgpucache and by a raw protocol client on src/net that
 * sends what libgpucache never would. Every rejection is checked twice:
 * the refusal itself (a status, or the connection dropped with nothing
 * answered) and that nothing wrong was stored or returned (a GET through
 * another connection misses or reads the old bytes; client memory keeps
 * its fill pattern).
 *
 *  - libgpucache refuses bad iovecs before sending (the shards' STAT
 *    counts no request): outside the gpc_mr, in another gpc_mr, zero
 *    length, addr + len overflow, mr or addr NULL, iovcnt 0 or 65, over
 *    64 MiB; in a batch, only the bad block.
 *  - PUT data: DATA past the announced length, out of order, without a
 *    data part, with a body, as a response, to another shard, sent
 *    inline (straight UCX, no rendezvous) drop the connection and store
 *    nothing; DATA for no PUT (or for one answered BUSY, or answered
 *    already) is ignored; a PUT whose DATA never comes stores nothing
 *    when its client leaves, never shows half a block, and never gets in
 *    the way of another connection's PUT of the key.
 *  - a PUT is completed only by DATA of its own connection: another
 *    connection (same tenant or not) naming its req_id changes nothing,
 *    and 32 connections using one req_id each store their own bytes.
 *  - GET: a block larger than the client's cap is -ENOBUFS with no byte
 *    sent; a miss sends no byte.
 *  - malformed messages (CRCs, magic, versions 1 and 3, lengths, counts,
 *    block lengths, shard, opcodes 0, 3 (REG), 4 (DEREG), 13, response
 *    opcodes, a data part on anything but DATA) drop the connection with
 *    no answer, and the server keeps serving everybody else.
 *  - authentication: a wrong secret or an unknown tenant gets -GPC_EAUTH
 *    and the connection is closed; anything but HELLO/AUTH before it
 *    (DATA included, and HELLO or AUTH with a data part) is dropped
 *    unanswered; a MAC is bound to its nonce and shard.
 *  - tenants: bob can neither GET nor LOOKUP alice's keys while alice
 *    still hits them, and bob's PUT of alice's key never changes what
 *    alice reads.
 *
 * Many raw connections are open at once (the malformed kinds, 32 failed
 * AUTHs, 32 PUTs sharing a req_id), on both shards. One check talks UCX
 * directly, since net.h always sends a data part by rendezvous: a DATA
 * piece sent inline. Everything runs against one daemon in about 2 s.
 *
 * argv[1]: gpucached.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ucp/api/ucp.h>

#include "common/bytes.h"
#include "common/crc.h"
#include "net/auth.h"
#include "net/wire.h"
#include "nettest.h"

#define NS 0x5ec0de01ull
#define PAT 0x5A
#define MB (1u << 20)

/* ---- the raw client: one worker, any number of connections ---- */

#define RAW_MAXMSG 160

struct raw_msg {
	struct wire_hdr h;
	uint8_t *body;
	bool data;              /* it came with a data part */
	size_t dlen;
};

struct raw {
	struct net_ep *ep;
	bool closed;            /* the server dropped us (error callback) */
	unsigned shard;
	unsigned nmsg, garbage;
	struct raw_msg msg[RAW_MAXMSG];
	uint8_t nonce[WIRE_NONCE_LEN];
	uint8_t *rbuf;          /* where a GET's data parts go, or NULL */
	size_t rcap;
	unsigned rx, tx;        /* data parts landing / going out */
	int rx_err;
};

static struct net_ctx *rctx;
static struct net_worker *rw;
static uint64_t next_req = 1;

static void
raw_rx_done(void *arg, int rc)
{
	struct raw *r = arg;

	r->rx--;
	if (rc < 0)
		r->rx_err = rc;
}

static void
raw_tx_done(void *arg, int rc)
{
	struct raw *r = arg;

	(void)rc;
	r->tx--;
}

/* A GET's data part: received into r->rbuf at aux when it fits there,
 * else left alone (dropped). */
static void
raw_take(struct raw *r, struct raw_msg *m, struct net_data *d)
{
	struct iovec v;

	m->data = true;
	m->dlen = net_data_len(d);
	if (r->rbuf == NULL || m->h.aux > r->rcap ||
	    m->dlen > r->rcap - m->h.aux)
		return;
	v = (struct iovec){ r->rbuf + m->h.aux, m->dlen };
	r->rx++;
	if (net_data_recv_nb(d, &v, 1, raw_rx_done, r) < 0) {
		r->rx--;
		r->rx_err = -EIO;
	}
}

static void
raw_on_msg(void *arg, struct net_ep *ep, const uint8_t *buf, size_t len,
	   struct net_data *d)
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
	m->data = false;
	m->dlen = 0;
	if (d != NULL)
		raw_take(r, m, d);
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

/* Wait until no data part of r is landing or going out: its buffers
 * (and r itself) may go then. */
static void
raw_quiesce(struct raw *r)
{
	uint64_t t0 = nt_now_ms();

	while ((r->rx > 0 || r->tx > 0) && nt_now_ms() - t0 < 10000)
		if (net_progress(rw) == 0)
			sched_yield();
	REQUIRE(r->rx == 0 && r->tx == 0);
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

/* Close (if the server has not) and wait for our sends to let go of
 * their buffers. */
static void
raw_close(struct raw *r)
{
	if (!r->closed && r->ep != NULL) {
		net_ep_set_user(r->ep, NULL);
		net_ep_close(r->ep);
	}
	r->ep = NULL;
	r->closed = true;
	raw_quiesce(r);
	raw_clear(r);
}

/*
 * Send a message with header h (body_len and body_crc are filled in) and
 * body; with data[0..dlen) as its data part when dlen > 0 (rendezvous,
 * zero-copy: data must stay put until raw_close or raw_quiesce). Nothing
 * is sent on a connection the server has dropped. Returns h->req_id.
 */
static uint64_t
raw_send_h(struct raw *r, const struct wire_hdr *h0, const void *body,
	   size_t blen, const void *data, size_t dlen)
{
	struct wire_hdr h = *h0;
	uint8_t *buf = malloc(WIRE_HDR_SIZE + blen + 1);

	REQUIRE(buf != NULL);
	h.body_len = (uint32_t)blen;
	h.body_crc = wire_body_crc(body, blen);
	wire_hdr_encode(&h, buf);
	if (blen)
		memcpy(buf + WIRE_HDR_SIZE, body, blen);
	if (!r->closed && dlen == 0) {
		REQUIRE(net_send_nb(r->ep, NET_AM_TO_SERVER, buf,
				    WIRE_HDR_SIZE + blen, NULL, 0, NULL,
				    NULL) == 0);
	} else if (!r->closed) {
		REQUIRE(net_send_data_nb(r->ep, NET_AM_TO_SERVER, buf,
					 WIRE_HDR_SIZE + blen, data, dlen,
					 raw_tx_done, r) == 0);
		r->tx++;
	}
	free(buf);
	return h.req_id;
}

/* Send bytes as they are (crafted messages), with a data part if dlen. */
static void
raw_send_bytes(struct raw *r, const uint8_t *buf, size_t len,
	       const void *data, size_t dlen)
{
	if (r->closed)
		return;
	if (dlen == 0) {
		REQUIRE(net_send_nb(r->ep, NET_AM_TO_SERVER, buf, len, NULL, 0,
				    NULL, NULL) == 0);
		return;
	}
	REQUIRE(net_send_data_nb(r->ep, NET_AM_TO_SERVER, buf, len, data,
				 dlen, raw_tx_done, r) == 0);
	r->tx++;
}

/* A well-formed message without a data part; its request id. */
static uint64_t
raw_send(struct raw *r, uint8_t op, uint8_t flags, uint32_t count,
	 const void *body, size_t blen)
{
	struct wire_hdr h = { .opcode = op, .flags = flags,
			      .req_id = next_req++, .count = count,
			      .shard = r->shard };

	return raw_send_h(r, &h, body, blen, NULL, 0);
}

/* DATA for request id: the piece data[0..dlen) at offset aux. */
static void
raw_data(struct raw *r, uint64_t id, uint64_t aux, const void *data,
	 size_t dlen)
{
	struct wire_hdr h = { .opcode = WIRE_OP_DATA, .req_id = id,
			      .shard = r->shard, .aux = aux };

	raw_send_h(r, &h, NULL, 0, data, dlen);
}

/* The answer to id (not one of its data parts): the message, or NULL
 * (closed / timeout). */
static struct raw_msg *
raw_wait(struct raw *r, uint64_t id, unsigned ms)
{
	uint64_t t0 = nt_now_ms();

	for (;;) {
		for (unsigned i = 0; i < r->nmsg; i++) {
			const struct raw_msg *m = &r->msg[i];
			bool data = m->h.opcode == (WIRE_OP_DATA | WIRE_OP_RESP);

			/* an answer, or a GET's last piece, which answers */
			if (m->h.req_id == id &&
			    ((!m->data && !data) ||
			     (m->data && data && m->h.count == 1)))
				return &r->msg[i];
		}
		if (r->closed || nt_now_ms() - t0 > ms)
			return NULL;
		if (net_progress(rw) == 0)
			sched_yield();
	}
}

/* A PUT or GET body: ns, key, len. */
static void
blk_body(const uint8_t *key, uint64_t len, uint8_t *out)
{
	struct wire_blk b = { .ns = NS, .len = len };
	struct wire_wr w;

	memcpy(b.key, key, WIRE_KEY_LEN);
	wire_wr_init(&w);
	wire_blk_encode(&w, &b);
	REQUIRE(w.err == 0 && w.len == WIRE_BLK_BODY);
	memcpy(out, w.buf, WIRE_BLK_BODY);
	wire_wr_fini(&w);
}

/* Send a PUT of key announcing len bytes (req_id id, or a fresh one if
 * 0) and no DATA; its request id. */
static uint64_t
raw_put_hdr(struct raw *r, uint64_t id, const uint8_t *key, uint64_t len)
{
	struct wire_hdr h = { .opcode = WIRE_OP_PUT, .count = 1,
			      .req_id = id ? id : next_req++,
			      .shard = r->shard };
	uint8_t b[WIRE_BLK_BODY];

	blk_body(key, len, b);
	return raw_send_h(r, &h, b, sizeof(b), NULL, 0);
}

/* DATA for id: data[from, len) in pieces of at most piece bytes. */
static void
raw_pieces(struct raw *r, uint64_t id, const uint8_t *data, size_t from,
	   size_t len, size_t piece)
{
	for (size_t off = from; off < len; off += piece)
		raw_data(r, id, off, data + off,
			 len - off < piece ? len - off : piece);
}

/* A whole PUT (in pieces of at most piece bytes): its status, or 1 if
 * there was no answer. */
static int
raw_put(struct raw *r, const uint8_t *key, const uint8_t *data, size_t len,
	size_t piece)
{
	uint64_t id = raw_put_hdr(r, 0, key, len);
	struct raw_msg *m;

	raw_pieces(r, id, data, 0, len, piece);
	m = raw_wait(r, id, 5000);
	raw_quiesce(r);
	return m == NULL ? 1 : m->h.status;
}

/* GET key saying cap bytes fit: its status (1: no answer); the data
 * parts land in buf[0..bcap), *ndata says how many came. */
static int
raw_get(struct raw *r, const uint8_t *key, uint64_t cap, uint8_t *buf,
	size_t bcap, unsigned *ndata)
{
	struct wire_hdr h = { .opcode = WIRE_OP_GET, .count = 1,
			      .req_id = next_req++, .shard = r->shard };
	uint8_t b[WIRE_BLK_BODY];
	struct raw_msg *m;
	int st;

	blk_body(key, cap, b);
	r->rbuf = buf;
	r->rcap = bcap;
	r->rx_err = 0;
	m = raw_wait(r, raw_send_h(r, &h, b, sizeof(b), NULL, 0), 5000);
	st = m == NULL ? 1 : m->h.status;
	raw_quiesce(r);
	r->rbuf = NULL;
	*ndata = 0;
	for (unsigned i = 0; i < r->nmsg; i++)
		*ndata += r->msg[i].h.req_id == h.req_id && r->msg[i].data;
	CHECK_RC(r->rx_err, 0);
	return st;
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
	CHECK_RC(m->h.body_len, WIRE_NONCE_LEN + 16);
	if (m->h.body_len < WIRE_NONCE_LEN + 16)
		return 1;
	CHECK_RC(get_le32(m->body + WIRE_NONCE_LEN), 2); /* nshards */
	CHECK_RC(get_le32(m->body + WIRE_NONCE_LEN + 4), r->shard);
	CHECK_RC(get_le32(m->body + WIRE_NONCE_LEN + 8),
		 WIRE_FEAT_GET_BATCH | WIRE_FEAT_PUT_BATCH);
	if (getenv("GPC_NET_PUT_PIECE") == NULL) /* put_piece: 256K */
		CHECK_RC(get_le32(m->body + WIRE_NONCE_LEN + 12), 256 * 1024);
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

/* A key on the given shard (le64(key) % 2 == shard). */
static void
shard_key(uint64_t id, unsigned shard, uint8_t *key)
{
	test_key(id, key);
	key[0] = (uint8_t)((key[0] & ~1u) | shard);
}

/* A LOOKUP of key 40000 (present from the start): its request id. */
static uint64_t
raw_probe(struct raw *r)
{
	uint8_t kl[8 + 32];

	put_le64(kl, NS);
	shard_key(40000, r->shard, kl + 8);
	return raw_send(r, WIRE_OP_LOOKUP, 0, 1, kl, sizeof(kl));
}

/* Is r still served? Its LOOKUP is answered. */
static bool
raw_alive(struct raw *r)
{
	struct raw_msg *m = raw_wait(r, raw_probe(r), 5000);

	return m != NULL && m->h.status == 0;
}

/*
 * Was each of r[0..n) dropped with nothing answered since its last
 * raw_clear? A LOOKUP goes after what was sent: it must go unanswered
 * too. Waits until all are closed or ms pass. Returns how many were not.
 */
static unsigned
raw_gone(struct raw *r, unsigned n, unsigned ms, const char *const *what)
{
	uint64_t t0 = nt_now_ms();
	unsigned bad = 0;

	for (unsigned i = 0; i < n; i++)
		if (!r[i].closed)
			raw_probe(&r[i]);
	while (nt_now_ms() - t0 < ms) {
		unsigned c = 0;

		for (unsigned i = 0; i < n; i++)
			c += r[i].closed;
		if (c == n)
			break;
		raw_pump(5);
	}
	for (unsigned i = 0; i < n; i++) {
		if (r[i].nmsg == 0)
			continue;
		fprintf(stderr, "%s: answered (opcode 0x%x status %d)\n",
			what[i], r[i].msg[0].h.opcode, r[i].msg[0].h.status);
		bad++;
	}
	return bad;
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

#define LIB_MEM (4 * MB)

static void
lib_open(struct lib *l, const char *tenant)
{
	void *p = NULL;

	l->c = nt_connect(tenant);
	REQUIRE(gpc_mem_alloc(l->c, LIB_MEM, &p, &l->mr) == 0);
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

/* Does key hold exactly the len bytes test_fill(id) makes? */
static bool
lib_is(struct lib *l, const uint8_t *key, uint64_t id, size_t len)
{
	uint8_t *want = malloc(len);
	int rc;
	bool ok;

	REQUIRE(want != NULL);
	test_fill(id, want, len);
	rc = lib_get(l, key, len + 64);
	ok = rc == (int)len && memcmp(l->p, want, len) == 0 &&
	     count_not(l->p + len, 64, PAT) == 0;
	free(want);
	return ok;
}

/* Is key absent for l: a GET misses (writing nothing), LOOKUP finds 0? */
static bool
lib_miss(struct lib *l, const uint8_t *key)
{
	unsigned present = 9;
	int rc = lib_get(l, key, 256 << 10);

	if (rc != -GPC_ENOTFOUND)
		fprintf(stderr, "lib_miss: GET = %d\n", rc);
	return rc == -GPC_ENOTFOUND && count_not(l->p, 256 << 10, PAT) == 0 &&
	       gpc_lookup(l->c, NS, key, 1, 0, &present) == 0 && present == 0;
}

static struct lib alice, bob;

/* ---- 1. libgpucache refuses bad iovecs before sending anything ---- */

enum { IOV_N = 14 };

static const char *const iov_name[IOV_N] = {
	"starts before its mr", "crosses the end of its mr",
	"just past the end of its mr", "inside another mr",
	"zero length", "addr + len wraps around", "addr near 2^64",
	"mr NULL", "addr NULL", "second iov bad", "iovcnt 0",
	"iovcnt 65", "iov NULL", "17 x 4 MiB (over 64 MiB)",
};

/* Case k's block for key: alice's memory named badly (p2 is the memory
 * of another registration of hers). */
static void
iov_case(unsigned k, struct gpc_iov *v, struct gpc_block *b,
	 const uint8_t *key, uint8_t *p2)
{
	uint8_t *a = alice.p;
	struct gpc_mr *mr = alice.mr;
	unsigned cnt = 1;

	v[0] = (struct gpc_iov){ a, 4096, mr };
	switch (k) {
	case 0: v[0].addr = a - 16; break;
	case 1: v[0].addr = a + LIB_MEM - 100; break;
	case 2: v[0].addr = a + LIB_MEM; break;
	case 3: v[0].addr = p2; break;
	case 4: v[0].len = 0; break;
	case 5: v[0] = (struct gpc_iov){ a + 100, (size_t)-50, mr }; break;
	case 6: v[0].addr = (void *)(UINTPTR_MAX - 100); break;
	case 7: v[0].mr = NULL; break;
	case 8: v[0].addr = NULL; break;
	case 9:
		v[0].len = 2048;
		v[1] = (struct gpc_iov){ a + LIB_MEM - 10, 2048, mr };
		cnt = 2;
		break;
	case 10: cnt = 0; break;
	case 11:
		for (unsigned i = 0; i <= WIRE_MAX_IOV; i++)
			v[i] = (struct gpc_iov){ a + 64 * i, 64, mr };
		cnt = WIRE_MAX_IOV + 1;
		break;
	case 12: break;
	case 13:
		for (unsigned i = 0; i < 17; i++)
			v[i] = (struct gpc_iov){ a, LIB_MEM, mr };
		cnt = 17;
		break;
	}
	*b = (struct gpc_block){ key, k == 12 ? NULL : v, cnt, 1 };
}

/* PUTs and GETs the engines of both shards have seen (STAT). */
static uint64_t
stat_ops(struct raw *r)
{
	uint64_t n = 0;

	for (unsigned s = 0; s < 2; s++) {
		struct raw_msg *m = raw_wait(&r[s], raw_send(&r[s],
				WIRE_OP_STAT, 0, 0, NULL, 0), 5000);

		REQUIRE(m != NULL && m->h.body_len >= 16);
		n += get_le64(m->body) + get_le64(m->body + 8);
	}
	return n;
}

static void
test_lib_iov_kinds(uint8_t *p2, const uint8_t *kg)
{
	struct gpc_iov v[WIRE_MAX_IOV + 1];
	struct gpc_block b;
	struct raw st[2];
	uint8_t key[32];
	unsigned bad = 0;
	uint64_t ops;

	raw_authed(&st[0], 0, "alice");
	raw_authed(&st[1], 1, "alice");
	for (unsigned k = 0; k < IOV_N; k++) {
		int want = k == 13 ? -GPC_ETOOBIG : -EINVAL;

		ops = stat_ops(st);
		/* PUT: refused */
		test_key(70000 + k, key);
		test_fill(70000 + k, alice.p, LIB_MEM);
		test_fill(70000 + k, p2, MB);
		iov_case(k, v, &b, key, p2);
		CHECK_RC(gpc_put(alice.c, NS, &b, 1, 0), 0);
		if (b.status != want)
			fprintf(stderr, "PUT %s: %d\n", iov_name[k], b.status);
		bad += b.status != want;
		/* GET: refused, not a byte written anywhere */
		memset(alice.p, PAT, LIB_MEM);
		memset(p2, PAT, MB);
		iov_case(k, v, &b, kg, p2);
		CHECK_RC(gpc_get(alice.c, NS, &b, 1), 0);
		if (b.status != want)
			fprintf(stderr, "GET %s: %d\n", iov_name[k], b.status);
		bad += b.status != want;
		bad += count_not(alice.p, LIB_MEM, PAT) != 0;
		bad += count_not(p2, MB, PAT) != 0;
		/* neither reached the server; nothing was stored */
		if (stat_ops(st) != ops)
			fprintf(stderr, "%s: sent\n", iov_name[k]);
		bad += stat_ops(st) != ops;
		bad += !lib_miss(&alice, key);
	}
	CHECK_RC(bad, 0);
	/* the count moves when something does reach the server */
	ops = stat_ops(st);
	CHECK(lib_is(&alice, kg, 70900, 4096));
	CHECK(stat_ops(st) > ops);
	raw_close(&st[0]);
	raw_close(&st[1]);
}

static void
test_lib_iov(void)
{
	struct gpc_iov v[3];
	struct gpc_block b, bb[3];
	struct gpc_mr *mr2;
	void *p2v = NULL;
	uint8_t *p2, kg[32], kb[3][32];

	REQUIRE(gpc_mem_alloc(alice.c, MB, &p2v, &mr2) == 0);
	p2 = p2v;
	test_key(70900, kg);
	CHECK_RC(lib_put(&alice, kg, 70900, 4096), 0);
	test_lib_iov_kinds(p2, kg);
	/* no key; no blocks at all */
	v[0] = (struct gpc_iov){ alice.p, 4096, alice.mr };
	b = (struct gpc_block){ NULL, v, 1, 1 };
	CHECK_RC(gpc_put(alice.c, NS, &b, 1, 0), 0);
	CHECK_RC(b.status, -EINVAL);
	CHECK_RC(gpc_put(alice.c, NS, &b, 0, 0), -EINVAL);
	CHECK_RC(gpc_get(alice.c, NS, &b, 0), -EINVAL);
	/* a batch: the bad block is refused, the good ones go */
	for (unsigned i = 0; i < 3; i++) {
		test_key(70950 + i, kb[i]);
		test_fill(70950 + i, alice.p + i * MB, 8192);
		v[i] = (struct gpc_iov){ alice.p + i * MB, 8192, alice.mr };
		bb[i] = (struct gpc_block){ kb[i], &v[i], 1, 1 };
	}
	v[1].addr = p2; /* not inside alice.mr */
	CHECK_RC(gpc_put(alice.c, NS, bb, 3, 0), 0);
	CHECK_RC(bb[0].status, 0);
	CHECK_RC(bb[1].status, -EINVAL);
	CHECK_RC(bb[2].status, 0);
	CHECK(lib_is(&alice, kb[0], 70950, 8192));
	CHECK(lib_miss(&alice, kb[1]));
	CHECK(lib_is(&alice, kb[2], 70952, 8192));
	memset(alice.p, PAT, LIB_MEM);
	memset(p2, PAT, MB);
	CHECK_RC(gpc_get(alice.c, NS, bb, 3), 0);
	CHECK_RC(bb[0].status, 8192);
	CHECK_RC(bb[1].status, -EINVAL);
	CHECK_RC(bb[2].status, 8192);
	CHECK_RC(count_not(p2, MB, PAT), 0);
	CHECK(lib_is(&alice, kg, 70900, 4096));
	gpc_mem_deregister(alice.c, mr2);
	printf("lib iovecs: %u kinds of bad block, done\n", IOV_N + 1);
}

/* ---- 2. a PUT's DATA: in order, no more than announced ---- */

enum { PD_N = 9, PD_LEN = 8192 };

static const char *const pd_name[PD_N] = {
	"one piece longer than announced", "pieces adding up to more",
	"a piece skipped (aux ahead)", "a piece repeated (aux behind)",
	"aux 2^64-1", "DATA without a data part", "DATA with a body",
	"DATA|RESP from a client", "DATA naming the other shard",
};

/* Scenario k on r: a PUT of key announcing PD_LEN bytes, then bad DATA
 * out of data[0..2 * PD_LEN). */
static void
pd_send(unsigned k, struct raw *r, const uint8_t *key, const uint8_t *data)
{
	uint64_t id = raw_put_hdr(r, 0, key, PD_LEN);
	struct wire_hdr h = { .opcode = WIRE_OP_DATA, .req_id = id,
			      .shard = r->shard };
	uint8_t junk[8] = { 0 };

	switch (k) {
	case 0: raw_data(r, id, 0, data, PD_LEN + 1); break;
	case 1:
		raw_data(r, id, 0, data, 4096);
		raw_data(r, id, 4096, data + 4096, 4097);
		break;
	case 2: raw_data(r, id, 4096, data + 4096, 4096); break;
	case 3:
		raw_data(r, id, 0, data, 4096);
		raw_data(r, id, 0, data, 4096);
		break;
	case 4:
		raw_data(r, id, 0, data, 4096);
		raw_data(r, id, UINT64_MAX, data, 1);
		break;
	case 5: raw_send_h(r, &h, NULL, 0, NULL, 0); break;
	case 6: raw_send_h(r, &h, junk, sizeof(junk), data, PD_LEN); break;
	case 7:
		h.opcode = WIRE_OP_DATA | WIRE_OP_RESP;
		raw_send_h(r, &h, NULL, 0, data, PD_LEN);
		break;
	case 8:
		h.shard ^= 1;
		raw_send_h(r, &h, NULL, 0, data, PD_LEN);
		break;
	}
}

/* DATA that breaks the rules: dropped, nothing stored. */
static void
test_put_data_bad(void)
{
	static struct raw r[PD_N];
	uint8_t key[PD_N][32], *data[PD_N];
	unsigned bad = 0;

	for (unsigned k = 0; k < PD_N; k++) {
		data[k] = malloc(2 * PD_LEN);
		REQUIRE(data[k] != NULL);
		test_fill(71000 + k, data[k], 2 * PD_LEN);
		shard_key(71000 + k, k % 2, key[k]);
		raw_authed(&r[k], k % 2, "alice");
	}
	for (unsigned k = 0; k < PD_N; k++)
		pd_send(k, &r[k], key[k], data[k]);
	CHECK_RC(raw_gone(r, PD_N, 3000, pd_name), 0);
	for (unsigned k = 0; k < PD_N; k++) {
		if (!r[k].closed)
			fprintf(stderr, "%s: not closed\n", pd_name[k]);
		bad += !r[k].closed;
		raw_close(&r[k]);
		free(data[k]);
	}
	CHECK_RC(bad, 0);
	/* through another connection: none of them was stored */
	bad = 0;
	for (unsigned k = 0; k < PD_N; k++) {
		bool miss = lib_miss(&alice, key[k]);

		if (!miss)
			fprintf(stderr, "%s: stored\n", pd_name[k]);
		bad += !miss;
	}
	CHECK_RC(bad, 0);
	CHECK(nt_daemon_alive());
	printf("put data: %u kinds of bad DATA, done\n", PD_N);
}

/* A PUT's hints from the network: a TTL past ten years or both
 * priorities is answered -EINVAL, its DATA dropped, nothing stored, the
 * connection kept; good ones store the block. */
static void
test_put_hints(void)
{
	enum { L = 8192 };
	static const struct { uint64_t aux; uint8_t flags; int want; } c[] = {
		{ (uint64_t)WIRE_MAX_TTL + 1, 0, -EINVAL },
		{ UINT64_MAX, WIRE_F_PRIO_LOW, -EINVAL },
		{ 60, WIRE_F_PRIO_LOW | WIRE_F_PRIO_HIGH, -EINVAL },
		{ WIRE_MAX_TTL, WIRE_F_PRIO_HIGH, 0 },
		{ 0, WIRE_F_PRIO_LOW, 0 },
	};
	uint8_t *d = malloc(L), b[WIRE_BLK_BODY], k[32];
	struct raw r;

	REQUIRE(d != NULL);
	raw_authed(&r, 0, "alice");
	for (unsigned i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct wire_hdr h = { .opcode = WIRE_OP_PUT, .count = 1,
				      .req_id = next_req++, .shard = 0,
				      .aux = c[i].aux, .flags = c[i].flags };
		struct raw_msg *m;

		test_fill(71200 + i, d, L);
		shard_key(71200 + i, 0, k);
		blk_body(k, L, b);
		raw_send_h(&r, &h, b, sizeof(b), NULL, 0);
		raw_pieces(&r, h.req_id, d, 0, L, 4096);
		m = raw_wait(&r, h.req_id, 5000);
		CHECK(m != NULL && m->h.status == c[i].want);
		raw_quiesce(&r);
		CHECK(raw_alive(&r));
		if (c[i].want == 0)
			CHECK(lib_is(&alice, k, 71200 + i, L));
		else
			CHECK(lib_miss(&alice, k));
		raw_clear(&r);
	}
	raw_close(&r);
	free(d);
}

/* DATA that names no PUT of its connection is ignored; pieces in order
 * that add up exactly are a PUT; DATA after its answer changes nothing. */
static void
test_put_data_good(void)
{
	enum { L = 10000 };
	struct raw r;
	uint8_t k1[32], k2[32], *d1 = malloc(L), *d2 = malloc(L);
	uint64_t id;
	struct raw_msg *m;

	REQUIRE(d1 != NULL && d2 != NULL);
	test_fill(71100, d1, L);
	test_fill(71101, d2, L);
	shard_key(71100, 0, k1);
	shard_key(71101, 0, k2);
	raw_authed(&r, 0, "alice");
	/* DATA for a request id never used */
	raw_data(&r, 0xdead0000beefull, 0, d2, 4096);
	raw_data(&r, next_req + 1000, 0, d2, L);
	CHECK(raw_alive(&r));
	CHECK_RC(r.nmsg, 1); /* the LOOKUP's answer only */
	raw_clear(&r);
	/* a proper PUT in three pieces */
	CHECK_RC(raw_put(&r, k1, d1, L, 4096), 0);
	CHECK(lib_is(&alice, k1, 71100, L));
	raw_clear(&r);
	/* answered: more DATA under its id (its pieces again with other
	 * bytes, a piece past the end) is ignored */
	id = raw_put_hdr(&r, 0, k2, L);
	raw_pieces(&r, id, d1, 0, L, L);
	m = raw_wait(&r, id, 5000);
	CHECK(m != NULL && m->h.status == 0);
	raw_pieces(&r, id, d2, 0, L, 4096);
	raw_data(&r, id, L, d2, 100);
	CHECK(raw_alive(&r));
	CHECK_RC(r.nmsg, 2);
	CHECK(lib_is(&alice, k2, 71100, L));
	raw_close(&r);
	free(d1);
	free(d2);
}

/* ---- GET: the client's cap ---- */

static void
test_get_cap(void)
{
	enum { L = 10000, CAP = 64 << 10 };
	struct raw r;
	uint8_t k[32], km[32], *buf = malloc(CAP), *want = malloc(L);
	unsigned nd = 9;
	uint8_t kl[8 + 32];

	REQUIRE(buf != NULL && want != NULL);
	shard_key(72000, 1, k);
	shard_key(72001, 1, km);
	test_fill(72000, want, L);
	CHECK_RC(lib_put(&alice, k, 72000, L), 0);
	raw_authed(&r, 1, "alice");
	/* one byte short: -ENOBUFS, nothing sent */
	memset(buf, PAT, CAP);
	CHECK_RC(raw_get(&r, k, L - 1, buf, CAP, &nd), -ENOBUFS);
	CHECK_RC(nd, 0);
	CHECK_RC(count_not(buf, CAP, PAT), 0);
	memset(buf, PAT, CAP);
	CHECK_RC(raw_get(&r, k, 1, buf, CAP, &nd), -ENOBUFS);
	CHECK_RC(nd, 0);
	CHECK_RC(count_not(buf, CAP, PAT), 0);
	/* the same from the read cache (after a prefetching LOOKUP) */
	put_le64(kl, NS);
	memcpy(kl + 8, k, 32);
	CHECK(raw_wait(&r, raw_send(&r, WIRE_OP_LOOKUP, WIRE_F_PREFETCH, 1, kl,
				    sizeof(kl)), 5000) != NULL);
	raw_pump(50);
	CHECK_RC(raw_get(&r, k, L - 1, buf, CAP, &nd), -ENOBUFS);
	CHECK_RC(nd, 0);
	CHECK_RC(count_not(buf, CAP, PAT), 0);
	/* a miss sends nothing */
	memset(buf, PAT, CAP);
	CHECK_RC(raw_get(&r, km, CAP, buf, CAP, &nd), -GPC_ENOTFOUND);
	CHECK_RC(nd, 0);
	CHECK_RC(count_not(buf, CAP, PAT), 0);
	/* exactly enough, and more than enough: the block, nothing else */
	memset(buf, PAT, CAP);
	CHECK_RC(raw_get(&r, k, L, buf, CAP, &nd), L);
	CHECK(nd >= 1);
	CHECK(memcmp(buf, want, L) == 0);
	CHECK_RC(count_not(buf + L, CAP - L, PAT), 0);
	memset(buf, PAT, CAP);
	CHECK_RC(raw_get(&r, k, CAP, buf, CAP, &nd), L);
	CHECK(memcmp(buf, want, L) == 0);
	CHECK_RC(count_not(buf + L, CAP - L, PAT), 0);
	CHECK(!r.closed);
	raw_close(&r);
	free(buf);
	free(want);
	printf("get cap: done\n");
}

/* ---- GET batches, as the wire carries them (docs/protocol.md) ---- */

/* Send a PUT or GET batch of n blocks of ns NS: keys[i] with lens[i]
 * (a PUT's length, a GET's cap), flags on the header; a PUT's DATA is
 * the caller's. Returns the request id. */
static uint64_t
raw_batch(struct raw *r, uint8_t op, uint8_t flags, unsigned n,
	  const uint8_t *const keys[], const uint64_t lens[])
{
	struct wire_wr w;
	uint64_t id;

	wire_wr_init(&w);
	wire_wr_u64(&w, NS);
	for (unsigned i = 0; i < n; i++) {
		wire_wr_bytes(&w, keys[i], 32);
		wire_wr_u64(&w, lens[i]);
	}
	REQUIRE(w.err == 0);
	id = raw_send(r, op, flags, n, w.buf, w.len);
	wire_wr_fini(&w);
	return id;
}


/* The pieces and the answer to batch id of n blocks: the last message
 * that ends it (the last piece, or a plain answer), or NULL. */
static struct raw_msg *
raw_wait_getv(struct raw *r, uint64_t id, uint32_t n, unsigned ms)
{
	uint64_t t0 = nt_now_ms();

	for (;;) {
		for (unsigned i = 0; i < r->nmsg; i++) {
			struct raw_msg *m = &r->msg[i];

			if (m->h.req_id == id && (!m->data || m->h.count == n))
				return m;
		}
		if (r->closed || nt_now_ms() - t0 > ms)
			return NULL;
		if (net_progress(rw) == 0)
			sched_yield();
	}
}

static void
test_get_batch_wire(void)
{
	enum { L0 = 10000, L2 = 3000, N = 4, CAP = 64 << 10 };
	static const size_t cap[N] = { L0, 4096, L2 + 7, L2 - 1 };
	uint8_t k[N][32], *buf = malloc(CAP), *want = malloc(L0 + L2);
	const uint8_t *ks[N], *kx[WIRE_MAX_XFER];
	uint64_t ls[N], lx[WIRE_MAX_XFER];
	struct raw r = { 0 };
	struct raw_msg *m;
	uint64_t id, got = 0;
	unsigned pieces = 0, bad = 0;

	REQUIRE(buf != NULL && want != NULL);
	for (unsigned i = 0; i < N; i++)
		shard_key(74000 + i, 0, k[i]);
	/* 0 and 2 stored, 1 missing, 3 is 2 again with a cap one short */
	memcpy(k[3], k[2], 32);
	test_fill(74000, want, L0);
	test_fill(74002, want + L0, L2);
	CHECK_RC(lib_put(&alice, k[0], 74000, L0), 0);
	CHECK_RC(lib_put(&alice, k[2], 74002, L2), 0);
	raw_authed(&r, 0, "alice");
	memset(buf, PAT, CAP);
	r.rbuf = buf;
	r.rcap = CAP;
	for (unsigned i = 0; i < N; i++) {
		ks[i] = k[i];
		ls[i] = cap[i];
	}
	id = raw_batch(&r, WIRE_OP_GET, 0, N, ks, ls);
	m = raw_wait_getv(&r, id, N, 5000);
	CHECK(m != NULL && m->data);
	for (uint64_t t0 = nt_now_ms(); r.rx > 0 && nt_now_ms() - t0 < 5000;)
		raw_pump(1);
	for (unsigned i = 0; m != NULL && i < r.nmsg; i++) {
		struct raw_msg *p = &r.msg[i];

		if (p->h.req_id != id)
			continue;
		pieces++;
		/* every piece: DATA|RESP, in order, the 4 statuses */
		bad += p->h.opcode != (WIRE_OP_DATA | WIRE_OP_RESP) ||
		       !p->data || p->h.aux != got || p->h.body_len != 4 * N;
		got += p->dlen;
		if (p->h.body_len == 4 * N)
			bad += (int32_t)get_le32(p->body) != L0 ||
			       (int32_t)get_le32(p->body + 4) != -GPC_ENOTFOUND ||
			       (int32_t)get_le32(p->body + 8) != L2 ||
			       (int32_t)get_le32(p->body + 12) != -ENOBUFS;
		bad += p->h.count != (p == m ? N : 0u);
	}
	CHECK_RC(bad, 0);
	CHECK(pieces >= 1);
	CHECK_RC(got, L0 + L2);
	CHECK(m != NULL && m->h.status == L0 + L2);
	CHECK_RC(r.rx_err, 0);
	CHECK(memcmp(buf, want, L0 + L2) == 0);
	CHECK_RC(count_not(buf + L0 + L2, CAP - L0 - L2, PAT), 0);

	/* nothing found: a plain answer with the statuses, no data */
	raw_clear(&r);
	id = raw_batch(&r, WIRE_OP_GET, 0, 2,
		       (const uint8_t *[]){ k[1], k[1] },
		       (const uint64_t[]){ 4096, 4096 });
	m = raw_wait_getv(&r, id, 2, 5000);
	CHECK(m != NULL && !m->data && m->h.status == 0 && m->h.count == 2 &&
	      m->h.body_len == 8);
	if (m != NULL && m->h.body_len == 8)
		CHECK(get_le32(m->body) == (uint32_t)-GPC_ENOTFOUND &&
		      get_le32(m->body + 4) == (uint32_t)-GPC_ENOTFOUND);
	/* caps adding up past what the answer's status can count: refused
	 * whole, the connection kept */
	raw_clear(&r);
	for (unsigned i = 0; i < WIRE_MAX_XFER; i++) {
		kx[i] = k[0];
		lx[i] = WIRE_MAX_BLOCK;
	}
	id = raw_batch(&r, WIRE_OP_GET, 0, WIRE_MAX_XFER, kx, lx);
	m = raw_wait_getv(&r, id, WIRE_MAX_XFER, 5000);
	CHECK(m != NULL && !m->data && m->h.status == -GPC_ETOOBIG);
	CHECK(!r.closed);
	raw_close(&r);
	free(buf);
	free(want);
	printf("get batch on the wire: %u piece(s)\n", pieces);
}

/* A put-if-absent PUT of len bytes of data under key with its first
 * 4096 sent, and taken in by the daemon (room reserved, the rest still to
 * land): a GET after it on the same connection has been answered.
 * Returns the PUT's id. */
static uint64_t
put_landing(struct raw *r, const uint8_t *key, const uint8_t *data,
	    uint64_t len)
{
	uint64_t id = raw_batch(r, WIRE_OP_PUT, WIRE_F_IF_ABSENT, 1,
				(const uint8_t *[]){ key },
				(const uint64_t[]){ len });
	uint64_t gid;
	struct raw_msg *m;

	raw_data(r, id, 0, data, 4096);
	gid = raw_batch(r, WIRE_OP_GET, 0, 1, (const uint8_t *[]){ key },
			(const uint64_t[]){ 4096 });
	m = raw_wait_getv(r, gid, 1, 5000);
	CHECK(m != NULL && !m->data);
	return id;
}

/* A PUT batch as the wire carries it: three blocks' DATA at their
 * offsets one after another (the middle one a single byte, the last in
 * two pieces), answered once with the three statuses; a put-if-absent
 * batch of a stored key and a new one stores only the new one, and one
 * of a key being put stores nothing. */
static void
test_put_batch_wire(void)
{
	enum { N = 3, L0 = 5000, L2 = 7000 };
	static const uint64_t len[N] = { L0, 1, L2 };
	uint8_t k[N][32], kn[32], kd[32], kx[32], ky[32], *d[N];
	struct raw r = { 0 }, r2 = { 0 };
	struct raw_msg *m;
	uint64_t id, id2, off = 0;
	bool stored;

	for (unsigned i = 0; i < N; i++) {
		shard_key(88000 + i, 0, k[i]);
		d[i] = malloc(len[i]);
		REQUIRE(d[i] != NULL);
		test_fill(88000 + i, d[i], len[i]);
	}
	shard_key(88010, 0, kn);
	raw_authed(&r, 0, "alice");
	id = raw_batch(&r, WIRE_OP_PUT, 0, N,
		       (const uint8_t *[]){ k[0], k[1], k[2] }, len);
	raw_data(&r, id, off, d[0], L0);
	raw_data(&r, id, off += L0, d[1], 1);
	raw_data(&r, id, off += 1, d[2], 4096);
	raw_data(&r, id, off + 4096, d[2] + 4096, L2 - 4096);
	m = raw_wait(&r, id, 5000);
	CHECK(m != NULL && m->h.status == 0 && m->h.count == N &&
	      m->h.body_len == 4 * N);
	for (unsigned i = 0; m != NULL && m->h.body_len == 4 * N && i < N; i++)
		CHECK_RC((int32_t)get_le32(m->body + 4 * i), 0);
	for (unsigned i = 0; i < N; i++)
		CHECK(lib_is(&alice, k[i], 88000 + i, len[i]));
	/* put-if-absent: k[0] stays as it is, kn is stored */
	raw_clear(&r);
	id = raw_batch(&r, WIRE_OP_PUT, WIRE_F_IF_ABSENT, 2,
		       (const uint8_t *[]){ k[0], kn },
		       (const uint64_t[]){ L2, L0 });
	raw_data(&r, id, 0, d[2], L2);
	raw_data(&r, id, L2, d[0], L0);
	m = raw_wait(&r, id, 5000);
	CHECK(m != NULL && m->h.status == 0 && m->h.body_len == 8);
	CHECK(lib_is(&alice, k[0], 88000, L0));
	CHECK(lib_is(&alice, kn, 88000, L0));
	/* put-if-absent naming a new key twice: the first stores it, the
	 * second finds it there (it did not overwrite it) */
	raw_clear(&r);
	shard_key(88011, 0, kd);
	id = raw_batch(&r, WIRE_OP_PUT, WIRE_F_IF_ABSENT, 2,
		       (const uint8_t *[]){ kd, kd },
		       (const uint64_t[]){ L0, L0 });
	raw_data(&r, id, 0, d[0], L0);
	raw_data(&r, id, L0, d[2], L0);
	m = raw_wait(&r, id, 5000);
	CHECK(m != NULL && m->h.status == 0 && m->h.body_len == 8);
	for (unsigned i = 0; m != NULL && m->h.body_len == 8 && i < 2; i++)
		CHECK_RC((int32_t)get_le32(m->body + 4 * i), 0);
	CHECK(lib_is(&alice, kd, 88000, L0));
	/* put-if-absent of a key whose bytes another message is landing
	 * (two engines offloading one prefix at once): found, nothing
	 * written; the first stores it once its bytes are in */
	raw_clear(&r);
	shard_key(88012, 0, kx);
	id = put_landing(&r, kx, d[0], L0);
	raw_authed(&r2, 0, "alice");
	id2 = raw_batch(&r2, WIRE_OP_PUT, WIRE_F_IF_ABSENT, 1,
			(const uint8_t *[]){ kx }, (const uint64_t[]){ L0 });
	raw_data(&r2, id2, 0, d[2], L0);
	m = raw_wait(&r2, id2, 5000);
	CHECK(m != NULL && m->h.status == 0);
	CHECK(lib_miss(&alice, kx)); /* the second did not store it */
	raw_data(&r, id, 4096, d[0] + 4096, L0 - 4096);
	m = raw_wait(&r, id, 5000);
	CHECK(m != NULL && m->h.status == 0);
	CHECK(lib_is(&alice, kx, 88000, L0));
	/* the landing PUT's client goes away mid-transfer: the key stays
	 * absent, and a put-if-absent after the daemon has seen it go
	 * stores it (nothing of the dead PUT is left to dedupe against) */
	raw_clear(&r);
	raw_clear(&r2);
	shard_key(88013, 0, ky);
	put_landing(&r, ky, d[0], L0);
	raw_close(&r);
	stored = false;
	for (uint64_t t0 = nt_now_ms(); !stored && nt_now_ms() - t0 < 5000;) {
		raw_clear(&r2);
		id2 = raw_batch(&r2, WIRE_OP_PUT, WIRE_F_IF_ABSENT, 1,
				(const uint8_t *[]){ ky },
				(const uint64_t[]){ L0 });
		raw_data(&r2, id2, 0, d[2], L0);
		m = raw_wait(&r2, id2, 5000);
		CHECK(m != NULL && m->h.status == 0);
		stored = m != NULL && lib_is(&alice, ky, 88002, L0);
	}
	CHECK(stored);
	CHECK(!r2.closed);
	raw_close(&r2);
	/* DATA past the batch's last byte belongs to no block: a broken
	 * client, closed at once (not left to server.client_timeout with
	 * its other block waiting) */
	raw_authed(&r, 0, "alice");
	id = raw_batch(&r, WIRE_OP_PUT, 0, 2,
		       (const uint8_t *[]){ k[0], kn },
		       (const uint64_t[]){ L0, L0 });
	raw_data(&r, id, 0, d[0], L0);
	raw_data(&r, id, 2 * L0, d[0], L0);
	m = raw_wait(&r, id, 1500); /* client_timeout is 3 s here */
	CHECK(m == NULL && r.closed);
	raw_close(&r);
	for (unsigned i = 0; i < N; i++)
		free(d[i]);
	printf("put batch on the wire: done\n");
}

/* ---- 3. a PUT takes DATA from its own connection only ---- */

static void
test_cross_conn(void)
{
	enum { L = 8192 };
	struct raw x, y, z;
	uint8_t k1[32], k2[32], *dx = malloc(L), *dy = malloc(L);
	uint64_t id1, id2;
	struct raw_msg *m;

	REQUIRE(dx != NULL && dy != NULL);
	test_fill(73000, dx, L);
	test_fill(73001, dy, L);
	shard_key(73000, 0, k1);
	shard_key(73002, 0, k2);
	raw_authed(&x, 0, "alice");
	raw_authed(&y, 0, "alice");
	raw_authed(&z, 0, "bob");
	/* x announces; y (alice too) and z (bob) send DATA under its id */
	id1 = raw_put_hdr(&x, 0, k1, L);
	CHECK(raw_wait(&x, raw_probe(&x), 5000) != NULL); /* it is in */
	raw_pieces(&y, id1, dy, 0, L, L);
	raw_pieces(&z, id1, dy, 0, L, 4096);
	CHECK(raw_alive(&y)); /* ignored: y and z are served still */
	CHECK(raw_alive(&z));
	raw_pump(50);
	CHECK_RC(y.nmsg, 1);
	CHECK_RC(z.nmsg, 1);
	CHECK_RC(x.nmsg, 1); /* the PUT is still waiting */
	CHECK(lib_miss(&alice, k1));
	CHECK(lib_miss(&bob, k1));
	/* x's own DATA completes it, with x's bytes */
	raw_pieces(&x, id1, dx, 0, L, 4096);
	m = raw_wait(&x, id1, 5000);
	CHECK(m != NULL && m->h.status == 0);
	CHECK(lib_is(&alice, k1, 73000, L));
	CHECK(lib_miss(&bob, k1));
	/* again, x leaving before its DATA: nothing stored */
	id2 = raw_put_hdr(&x, 0, k2, L);
	CHECK(raw_wait(&x, raw_probe(&x), 5000) != NULL);
	raw_pieces(&y, id2, dy, 0, L, L);
	CHECK(raw_alive(&y));
	raw_close(&x);
	raw_pieces(&y, id2, dy, 0, L, L);
	CHECK(raw_alive(&y));
	raw_pump(100);
	CHECK(lib_miss(&alice, k2));
	raw_close(&y);
	raw_close(&z);
	free(dx);
	free(dy);
	printf("cross-connection DATA: done\n");
}

/* Many connections, one req_id: each PUT takes its own bytes. */
static void
test_same_id(void)
{
	enum { NC = 32, L = 12288, ID = 7 };
	static struct raw r[NC];
	uint8_t key[NC][32], *d[NC];
	unsigned ok = 0, bad = 0;

	for (unsigned i = 0; i < NC; i++) {
		d[i] = malloc(L);
		REQUIRE(d[i] != NULL);
		test_fill(74000 + i, d[i], L);
		shard_key(74000 + i, i % 2, key[i]);
		raw_authed(&r[i], i % 2, i % 4 == 3 ? "bob" : "alice");
	}
	for (unsigned i = 0; i < NC; i++)
		raw_put_hdr(&r[i], ID, key[i], L);
	for (unsigned p = 0; p < 3; p++) /* interleaved pieces */
		for (unsigned i = 0; i < NC; i++)
			raw_data(&r[i], ID, p * 4096, d[i] + p * 4096, 4096);
	for (unsigned i = 0; i < NC; i++) {
		struct raw_msg *m = raw_wait(&r[i], ID, 5000);

		ok += m != NULL && m->h.status == 0;
	}
	CHECK_RC(ok, NC);
	for (unsigned i = 0; i < NC; i++) {
		struct lib *own = i % 4 == 3 ? &bob : &alice;
		struct lib *other = i % 4 == 3 ? &alice : &bob;

		bad += !lib_is(own, key[i], 74000 + i, L);
		bad += !lib_miss(other, key[i]);
		raw_close(&r[i]);
		free(d[i]);
	}
	CHECK_RC(bad, 0);
	printf("one req_id on %u connections: done\n", NC);
}

/* ---- PUTs answered BUSY, and PUTs whose DATA does not come ---- */

static void
test_busy(void)
{
	enum { NP = 65, L = 4096 };
	struct raw r;
	uint8_t key[NP][32], *d = malloc((size_t)NP * L);
	uint64_t id[NP];
	struct raw_msg *m;
	unsigned ok = 0, bad = 0;

	REQUIRE(d != NULL);
	raw_authed(&r, 0, "alice");
	for (unsigned i = 0; i < NP; i++) {
		shard_key(75000 + i, 0, key[i]);
		test_fill(75000 + i, d + (size_t)i * L, L);
		id[i] = raw_put_hdr(&r, 0, key[i], L);
	}
	/* 64 in flight per connection: the 65th is BUSY at once */
	m = raw_wait(&r, id[NP - 1], 5000);
	CHECK(m != NULL && m->h.status == -GPC_EBUSY);
	CHECK_RC(r.nmsg, 1);
	raw_clear(&r);
	/* all the DATA: the BUSY one's is dropped, the others complete */
	for (unsigned i = 0; i < NP; i++)
		raw_data(&r, id[i], 0, d + (size_t)i * L, L);
	for (unsigned i = 0; i + 1 < NP; i++) {
		m = raw_wait(&r, id[i], 5000);
		ok += m != NULL && m->h.status == 0;
	}
	CHECK_RC(ok, NP - 1);
	CHECK(raw_alive(&r));
	CHECK_RC(r.nmsg, NP); /* 64 answers and the LOOKUP's, nothing more */
	for (unsigned i = 0; i + 1 < NP; i++)
		bad += !lib_is(&alice, key[i], 75000 + i, L);
	CHECK_RC(bad, 0);
	CHECK(lib_miss(&alice, key[NP - 1]));
	raw_close(&r);
	free(d);
	printf("busy: done\n");
}

/* A batch with room for only some of its blocks (63 of a connection's
 * 64 slots held by PUTs waiting for DATA): the first starts, the others
 * are answered BUSY in its statuses and their DATA is dropped; the
 * same for a GET batch. */
static void
test_busy_batch(void)
{
	enum { NH = 63, L = 4096, N = 3 };
	struct raw r = { 0 };
	uint8_t hk[NH][32], k[N][32], *d = malloc(L), *buf = malloc(N * L);
	uint64_t hid[NH], id;
	struct raw_msg *m;
	unsigned ok = 0;

	REQUIRE(d != NULL && buf != NULL);
	test_fill(89000, d, L);
	raw_authed(&r, 0, "alice");
	for (unsigned i = 0; i < NH; i++) {
		shard_key(89100 + i, 0, hk[i]);
		hid[i] = raw_put_hdr(&r, 0, hk[i], L);
	}
	for (unsigned i = 0; i < N; i++)
		shard_key(89000 + i, 0, k[i]);
	id = raw_batch(&r, WIRE_OP_PUT, 0, N,
		       (const uint8_t *[]){ k[0], k[1], k[2] },
		       (const uint64_t[]){ L, L, L });
	for (unsigned i = 0; i < N; i++)
		raw_data(&r, id, (uint64_t)i * L, d, L);
	m = raw_wait(&r, id, 5000);
	CHECK(m != NULL && m->h.status == 0 && m->h.count == N &&
	      m->h.body_len == 4 * N);
	if (m != NULL && m->h.body_len == 4 * N) {
		CHECK_RC((int32_t)get_le32(m->body), 0);
		CHECK_RC((int32_t)get_le32(m->body + 4), -GPC_EBUSY);
		CHECK_RC((int32_t)get_le32(m->body + 8), -GPC_EBUSY);
	}
	CHECK(lib_is(&alice, k[0], 89000, L));
	CHECK(lib_miss(&alice, k[1]) && lib_miss(&alice, k[2]));
	/* the batch's slot is free again: a GET batch of three gets one */
	raw_clear(&r);
	memset(buf, PAT, N * L);
	r.rbuf = buf;
	r.rcap = N * L;
	id = raw_batch(&r, WIRE_OP_GET, 0, N,
		       (const uint8_t *[]){ k[0], k[0], k[0] },
		       (const uint64_t[]){ L, L, L });
	m = raw_wait_getv(&r, id, N, 5000);
	for (uint64_t t0 = nt_now_ms(); r.rx > 0 && nt_now_ms() - t0 < 5000;)
		raw_pump(1);
	CHECK(m != NULL && m->data && m->h.status == L &&
	      m->h.body_len == 4 * N);
	if (m != NULL && m->h.body_len == 4 * N) {
		CHECK_RC((int32_t)get_le32(m->body), L);
		CHECK_RC((int32_t)get_le32(m->body + 4), -GPC_EBUSY);
		CHECK_RC((int32_t)get_le32(m->body + 8), -GPC_EBUSY);
	}
	CHECK(memcmp(buf, d, L) == 0);
	CHECK_RC(count_not(buf + L, (N - 1) * L, PAT), 0);
	/* the PUTs that held the slots complete */
	r.rbuf = NULL;
	raw_clear(&r);
	for (unsigned i = 0; i < NH; i++)
		raw_data(&r, hid[i], 0, d, L);
	for (unsigned i = 0; i < NH; i++) {
		m = raw_wait(&r, hid[i], 5000);
		ok += m != NULL && m->h.status == 0;
	}
	CHECK_RC(ok, NH);
	CHECK(!r.closed);
	raw_close(&r);
	free(d);
	free(buf);
	printf("busy batches: done\n");
}

static void
test_pending(void)
{
	enum { L = 8192 };
	struct raw x, y;
	uint8_t k0[32], k1[32], k2[32], *d = malloc(L);
	uint64_t id;

	REQUIRE(d != NULL);
	shard_key(76000, 1, k0);
	shard_key(76001, 1, k1);
	shard_key(76002, 1, k2);
	/* announced, no DATA, client gone: nothing; the key is free */
	raw_authed(&x, 1, "alice");
	raw_put_hdr(&x, 0, k0, L);
	CHECK(raw_alive(&x));
	CHECK(lib_miss(&alice, k0));
	raw_close(&x);
	raw_pump(100);
	CHECK(lib_miss(&alice, k0));
	raw_authed(&y, 1, "alice");
	test_fill(76010, d, L);
	CHECK_RC(raw_put(&y, k0, d, L, 4096), 0);
	CHECK(lib_is(&alice, k0, 76010, L));
	/* half its DATA in: readers see the old block, whole */
	CHECK_RC(lib_put(&alice, k1, 76020, L), 0);
	raw_authed(&x, 1, "alice");
	test_fill(76021, d, L);
	id = raw_put_hdr(&x, 0, k1, L);
	raw_data(&x, id, 0, d, L / 2);
	CHECK(raw_alive(&x));
	CHECK(lib_is(&alice, k1, 76020, L));
	raw_close(&x);
	raw_pump(100);
	CHECK(lib_is(&alice, k1, 76020, L));
	/* another connection's PUT of the key while one hangs: it wins,
	 * and the hanging one's end does not undo it */
	raw_authed(&x, 1, "alice");
	id = raw_put_hdr(&x, 0, k2, L);
	raw_data(&x, id, 0, d, 4096);
	CHECK(raw_alive(&x));
	CHECK(lib_miss(&alice, k2));
	CHECK_RC(lib_put(&alice, k2, 76030, L), 0);
	CHECK(lib_is(&alice, k2, 76030, L));
	raw_close(&x);
	raw_pump(100);
	CHECK(lib_is(&alice, k2, 76030, L));
	test_fill(76031, d, L);
	CHECK_RC(raw_put(&y, k2, d, L, L), 0);
	CHECK(lib_is(&alice, k2, 76031, L));
	raw_close(&y);
	free(d);
	CHECK(nt_daemon_alive());
	printf("pending PUTs: done\n");
}

/* ---- a data part sent inline: straight UCX, which net.h never does ---- */

static struct {
	ucp_context_h ctx;
	ucp_worker_h w;
	ucp_ep_h ep;
	bool err;
	unsigned nmsg;
	uint64_t id[16];
	int32_t status[16];
	uint8_t nonce[WIRE_NONCE_LEN];
} ux;

static ucs_status_t
ux_on_msg(void *arg, const void *hdr, size_t hlen, void *data, size_t len,
	  const ucp_am_recv_param_t *p)
{
	struct wire_hdr h;

	(void)arg, (void)hdr;
	if (hlen != 0 || (p->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) ||
	    wire_msg_decode(data, len, &h) < 0)
		return UCS_OK;
	if (h.opcode == (WIRE_OP_HELLO | WIRE_OP_RESP) &&
	    h.body_len >= WIRE_NONCE_LEN)
		memcpy(ux.nonce, (const uint8_t *)data + WIRE_HDR_SIZE,
		       WIRE_NONCE_LEN);
	if (ux.nmsg < 16) {
		ux.id[ux.nmsg] = h.req_id;
		ux.status[ux.nmsg] = h.status;
	}
	ux.nmsg++;
	return UCS_OK;
}

static void
ux_on_err(void *arg, ucp_ep_h ep, ucs_status_t st)
{
	(void)arg, (void)ep, (void)st;
	ux.err = true;
}

static void
ux_open(void)
{
	ucp_params_t p = { .field_mask = UCP_PARAM_FIELD_FEATURES,
			   .features = UCP_FEATURE_AM };
	ucp_worker_params_t wp = {
		.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE,
		.thread_mode = UCS_THREAD_MODE_SINGLE,
	};
	ucp_am_handler_param_t hp = {
		.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID |
			      UCP_AM_HANDLER_PARAM_FIELD_CB |
			      UCP_AM_HANDLER_PARAM_FIELD_FLAGS,
		.id = NET_AM_TO_CLIENT, .flags = UCP_AM_FLAG_WHOLE_MSG,
		.cb = ux_on_msg,
	};
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(nt_port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	ucp_ep_params_t ep = {
		.field_mask = UCP_EP_PARAM_FIELD_FLAGS |
			      UCP_EP_PARAM_FIELD_SOCK_ADDR |
			      UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
			      UCP_EP_PARAM_FIELD_ERR_HANDLER,
		.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER,
		.sockaddr = { (struct sockaddr *)&sa, sizeof(sa) },
		.err_mode = UCP_ERR_HANDLING_MODE_PEER,
		.err_handler = { .cb = ux_on_err },
	};
	ucp_config_t *cfg;

	memset(&ux, 0, sizeof(ux));
	REQUIRE(ucp_config_read(NULL, NULL, &cfg) == UCS_OK);
	REQUIRE(ucp_init(&p, cfg, &ux.ctx) == UCS_OK);
	ucp_config_release(cfg);
	REQUIRE(ucp_worker_create(ux.ctx, &wp, &ux.w) == UCS_OK);
	REQUIRE(ucp_worker_set_am_recv_handler(ux.w, &hp) == UCS_OK);
	REQUIRE(ucp_ep_create(ux.w, &ep, &ux.ep) == UCS_OK);
}

static void
ux_close(void)
{
	ucp_request_param_t p = { .op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS,
				  .flags = UCP_EP_CLOSE_FLAG_FORCE };
	ucs_status_ptr_t sp = ucp_ep_close_nbx(ux.ep, &p);
	uint64_t t0 = nt_now_ms();

	while (UCS_PTR_IS_PTR(sp) && ucp_request_check_status(sp) ==
	       UCS_INPROGRESS && nt_now_ms() - t0 < 5000)
		ucp_worker_progress(ux.w);
	if (UCS_PTR_IS_PTR(sp))
		ucp_request_free(sp);
	ucp_worker_destroy(ux.w);
	ucp_cleanup(ux.ctx);
}

/* Send a message of opcode op (count items, body) with data[0..dlen) as
 * its data part if dlen, by the protocol flag (EAGER or RNDV); wait until
 * it is out. Its request id (id, or a fresh one if 0). */
static uint64_t
ux_send(uint8_t op, uint32_t count, uint64_t id, const void *body,
	size_t blen, const void *data, size_t dlen, unsigned flag)
{
	struct wire_hdr h = { .opcode = op, .count = count,
			      .req_id = id ? id : next_req++,
			      .body_len = (uint32_t)blen };
	ucp_request_param_t p = { .op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS,
				  .flags = UCP_AM_SEND_FLAG_REPLY | flag };
	uint8_t buf[WIRE_HDR_SIZE + 64];
	ucs_status_ptr_t sp;
	uint64_t t0 = nt_now_ms();

	REQUIRE(blen <= 64);
	h.body_crc = wire_body_crc(body, blen);
	wire_hdr_encode(&h, buf);
	if (blen)
		memcpy(buf + WIRE_HDR_SIZE, body, blen);
	if (dlen) /* the message as UCX's header, the piece as its data */
		sp = ucp_am_send_nbx(ux.ep, NET_AM_TO_SERVER, buf,
				     WIRE_HDR_SIZE + blen, data, dlen, &p);
	else
		sp = ucp_am_send_nbx(ux.ep, NET_AM_TO_SERVER, NULL, 0, buf,
				     WIRE_HDR_SIZE + blen, &p);
	while (UCS_PTR_IS_PTR(sp) && ucp_request_check_status(sp) ==
	       UCS_INPROGRESS && nt_now_ms() - t0 < 5000)
		ucp_worker_progress(ux.w);
	if (UCS_PTR_IS_PTR(sp))
		ucp_request_free(sp);
	return h.req_id;
}

/* The answer to id: its status, or 1 (none within ms, or dropped). */
static int
ux_wait(uint64_t id, unsigned ms)
{
	uint64_t t0 = nt_now_ms();

	for (;;) {
		for (unsigned i = 0; i < ux.nmsg && i < 16; i++)
			if (ux.id[i] == id)
				return ux.status[i];
		if (ux.err || nt_now_ms() - t0 > ms)
			return 1;
		ucp_worker_progress(ux.w);
	}
}

/* A PUT whose DATA comes inline, not by rendezvous: dropped, not stored
 * (with a rendezvous PUT first, so that the client is known to work). */
static void
test_inline(void)
{
	enum { L = 4096 };
	uint8_t hb[2 + 5], mac[AUTH_MAC_LEN], k1[32], k2[32], b[WIRE_BLK_BODY];
	uint8_t kl[8 + 32], *d = malloc(L);
	uint64_t id;
	unsigned before;

	REQUIRE(d != NULL);
	shard_key(77000, 0, k1);
	shard_key(77001, 0, k2);
	ux_open();
	put_le16(hb, 5);
	memcpy(hb + 2, "alice", 5);
	REQUIRE(ux_wait(ux_send(WIRE_OP_HELLO, 0, 0, hb, 7, NULL, 0, 0),
			5000) == 0);
	REQUIRE(auth_mac((const uint8_t *)NT_ALICE_SECRET,
			 strlen(NT_ALICE_SECRET), ux.nonce, "alice", 0,
			 mac) == 0);
	REQUIRE(ux_wait(ux_send(WIRE_OP_AUTH, 0, 0, mac, 32, NULL, 0, 0),
			5000) == 0);
	test_fill(77000, d, L);
	blk_body(k1, L, b);
	id = ux_send(WIRE_OP_PUT, 1, 0, b, sizeof(b), NULL, 0, 0);
	ux_send(WIRE_OP_DATA, 0, id, NULL, 0, d, L, UCP_AM_SEND_FLAG_RNDV);
	CHECK_RC(ux_wait(id, 5000), 0);
	CHECK(lib_is(&alice, k1, 77000, L));
	/* the same with the piece inline */
	before = ux.nmsg;
	test_fill(77001, d, L);
	blk_body(k2, L, b);
	id = ux_send(WIRE_OP_PUT, 1, 0, b, sizeof(b), NULL, 0, 0);
	ux_send(WIRE_OP_DATA, 0, id, NULL, 0, d, L, UCP_AM_SEND_FLAG_EAGER);
	put_le64(kl, NS);
	memcpy(kl + 8, k1, 32);
	CHECK_RC(ux_wait(ux_send(WIRE_OP_LOOKUP, 1, 0, kl, sizeof(kl), NULL,
				 0, 0), 1500), 1);
	CHECK_RC(ux.nmsg, before);
	ux_close();
	CHECK(lib_miss(&alice, k2));
	free(d);
	printf("inline DATA: done\n");
}

/* ---- malformed messages ---- */

enum mal {
	MAL_HDR_CRC, MAL_BODY_CRC, MAL_MAGIC, MAL_VERSION1, MAL_VERSION3,
	MAL_SHORT, MAL_BODY_LEN, MAL_PUT_COUNT0, MAL_PUT_COUNT2,
	MAL_GET_COUNT0, MAL_PUT_BODY_SHORT, MAL_PUT_BODY_TRAIL, MAL_PUT_LEN0,
	MAL_PUT_LEN_BIG, MAL_GET_CAP0, MAL_GET_CAP_BIG, MAL_PUT_V1,
	MAL_KEYS_COUNT, MAL_KEYS_TRAIL, MAL_SHARD, MAL_OP0, MAL_OP_MAX,
	MAL_OP_REG, MAL_OP_DEREG, MAL_OP_RESP, MAL_DATA_RESP, MAL_DATA_BARE,
	MAL_HELLO_AGAIN, MAL_AUTH_AGAIN, MAL_BODY_OVER, MAL_GETV_COUNT65,
	MAL_GETV_SHORT, MAL_GETV_TRAIL, MAL_GETV_CAP0, MAL_GETV_CAP_BIG,
	MAL_D_LOOKUP,
	MAL_D_PUT, MAL_D_GET, MAL_D_STAT, MAL_D_DELETE, MAL_D_DATA_BODY,
	MAL_N
};

static const char *const mal_name[MAL_N] = {
	"header CRC", "body CRC", "magic", "version 1", "version 3",
	"20-byte message", "body_len != bytes", "PUT count 0",
	"PUT count 2", "GET count 0", "PUT body 47 bytes",
	"PUT body 49 bytes", "PUT len 0", "PUT len 64 MiB + 1", "GET cap 0",
	"GET cap 64 MiB + 1", "PUT with a version 1 body",
	"LOOKUP count 5, 4 keys", "DELETE trailing byte", "wrong shard",
	"opcode 0", "opcode 13", "opcode 3 (REG)", "opcode 4 (DEREG)",
	"response opcode", "DATA|RESP with a data part",
	"DATA without a data part", "HELLO again", "AUTH again",
	"body over 1 MiB", "GET batch of 65", "GET count 3, 2 blocks",
	"GET count 2, a trailing byte", "GET batch, a cap 0",
	"GET batch, a cap of 64 MiB + 1", "LOOKUP with a data part",
	"PUT with its bytes as its own data part", "GET with a data part",
	"STAT with a data part", "DELETE with a data part",
	"DATA with a body and a data part",
};

static uint64_t mal_id; /* request id of the last message built */

/* The body of kind k (not its header) into w; the opcode and count. */
static void
mal_body(enum mal k, const uint8_t *key, struct wire_wr *w,
	 struct wire_hdr *h)
{
	uint8_t b[WIRE_BLK_BODY];
	uint64_t len = 4096;

	h->opcode = WIRE_OP_PUT;
	h->count = 1;
	switch (k) {
	case MAL_PUT_COUNT0: h->count = 0; break;
	case MAL_PUT_COUNT2: h->count = 2; break;
	case MAL_GET_COUNT0: h->opcode = WIRE_OP_GET; h->count = 0; break;
	case MAL_PUT_LEN0: len = 0; break;
	case MAL_PUT_LEN_BIG: len = WIRE_MAX_BLOCK + 1ull; break;
	case MAL_GET_CAP0: h->opcode = WIRE_OP_GET; len = 0; break;
	case MAL_GET_CAP_BIG:
		h->opcode = WIRE_OP_GET;
		len = WIRE_MAX_BLOCK + 1ull;
		break;
	case MAL_D_GET: h->opcode = WIRE_OP_GET; break;
	default: break;
	}
	switch (k) {
	case MAL_KEYS_COUNT: case MAL_KEYS_TRAIL: case MAL_D_LOOKUP:
	case MAL_D_DELETE:
		h->opcode = k == MAL_KEYS_COUNT || k == MAL_D_LOOKUP
				    ? WIRE_OP_LOOKUP : WIRE_OP_DELETE;
		h->count = k == MAL_KEYS_COUNT ? 5 : 1;
		wire_wr_u64(w, NS);
		for (unsigned i = 0; i < (k == MAL_KEYS_COUNT ? 4u : 1u); i++)
			wire_wr_bytes(w, key, 32);
		if (k == MAL_KEYS_TRAIL)
			wire_wr_u8(w, 0);
		break;
	case MAL_HELLO_AGAIN:
		h->opcode = WIRE_OP_HELLO;
		h->count = 0;
		wire_wr_u16(w, 5);
		wire_wr_bytes(w, "alice", 5);
		break;
	case MAL_AUTH_AGAIN:
		h->opcode = WIRE_OP_AUTH;
		h->count = 0;
		wire_wr_bytes(w, key, 32);
		break;
	case MAL_OP_REG: /* a version 1 REG: id, rkey_len, addr, len, rkey */
		h->opcode = 3;
		h->count = 0;
		wire_wr_u32(w, 1);
		wire_wr_u32(w, 32);
		wire_wr_u64(w, 0x10000);
		wire_wr_u64(w, 4096);
		wire_wr_bytes(w, key, 32);
		break;
	case MAL_OP_DEREG:
		h->opcode = 4;
		h->count = 0;
		wire_wr_u32(w, 1);
		break;
	case MAL_D_STAT:
		h->opcode = WIRE_OP_STAT;
		h->count = 0;
		break;
	case MAL_DATA_RESP: case MAL_DATA_BARE: case MAL_D_DATA_BODY:
		h->opcode = k == MAL_DATA_RESP ? WIRE_OP_DATA | WIRE_OP_RESP
					       : WIRE_OP_DATA;
		h->count = 0;
		if (k == MAL_D_DATA_BODY)
			wire_wr_u64(w, 0);
		break;
	case MAL_PUT_V1: /* ns, key, ndesc 1, 0, one descriptor */
		wire_wr_u64(w, NS);
		wire_wr_bytes(w, key, 32);
		wire_wr_u32(w, 1);
		wire_wr_u32(w, 0);
		wire_wr_u32(w, 1);
		wire_wr_u32(w, 0);
		wire_wr_u64(w, 0x10000);
		wire_wr_u64(w, 4096);
		break;
	case MAL_BODY_OVER:
		wire_wr_u64(w, NS);
		break;
	case MAL_GETV_COUNT65: case MAL_GETV_SHORT: case MAL_GETV_TRAIL:
	case MAL_GETV_CAP0: case MAL_GETV_CAP_BIG: {
		unsigned n = k == MAL_GETV_COUNT65 ? 65 : 2;

		h->opcode = WIRE_OP_GET;
		h->count = k == MAL_GETV_SHORT ? 3 : n;
		wire_wr_u64(w, NS);
		for (unsigned i = 0; i < n; i++) {
			wire_wr_bytes(w, key, 32);
			wire_wr_u64(w, i == 0 ? 4096
				    : k == MAL_GETV_CAP0 ? 0
				    : k == MAL_GETV_CAP_BIG ? WIRE_MAX_BLOCK + 1ull
							    : 4096);
		}
		if (k == MAL_GETV_TRAIL)
			wire_wr_u8(w, 0);
		break;
	}
	default:
		blk_body(key, len, b);
		wire_wr_bytes(w, b, k == MAL_PUT_BODY_SHORT ? sizeof(b) - 1
							    : sizeof(b));
		if (k == MAL_PUT_BODY_TRAIL)
			wire_wr_u8(w, 0);
		break;
	}
}

/* Does kind k go with a data part? */
static bool
mal_data(enum mal k)
{
	return k == MAL_DATA_RESP || k >= MAL_D_LOOKUP;
}

/* Build a message of kind k; returns its length in buf. */
static size_t
mal_build(enum mal k, unsigned shard, const uint8_t *key, uint8_t *buf,
	  size_t cap)
{
	struct wire_wr w;
	struct wire_hdr h = { .req_id = next_req++, .shard = shard };
	size_t n;

	mal_id = h.req_id;
	wire_wr_init(&w);
	mal_body(k, key, &w, &h);
	REQUIRE(w.err == 0);
	n = k == MAL_BODY_OVER ? WIRE_MAX_BODY + 64 : w.len;
	REQUIRE(WIRE_HDR_SIZE + n <= cap);
	memset(buf + WIRE_HDR_SIZE, 0, n);
	if (w.len)
		memcpy(buf + WIRE_HDR_SIZE, w.buf, w.len);
	wire_wr_fini(&w);
	if (k == MAL_SHARD)
		h.shard = shard ^ 1;
	if (k == MAL_OP0)
		h.opcode = 0;
	if (k == MAL_OP_MAX)
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
	if (k == MAL_VERSION1 || k == MAL_VERSION3) {
		put_le16(buf + 4, k == MAL_VERSION1 ? 1 : 3);
		put_le32(buf + 44, crc32c(buf, 44));
	}
	return k == MAL_SHORT ? 20 : WIRE_HDR_SIZE + n;
}

static void
test_malformed(void)
{
	static struct raw r[MAL_N];
	uint64_t bad_id[MAL_N];
	size_t cap = WIRE_HDR_SIZE + WIRE_MAX_BODY + 4096;
	uint8_t *buf = malloc(cap), *data = malloc(4096), key[MAL_N][32];
	unsigned answered = 0, closed = 0, stored = 0;

	REQUIRE(buf != NULL && data != NULL);
	test_fill(43000, data, 4096);
	/* all at once, so that one wait covers them */
	for (unsigned k = 0; k < MAL_N; k++) {
		unsigned shard = k % 2;

		raw_authed(&r[k], shard, "alice");
		shard_key(43000 + k, shard, key[k]);
		raw_send_bytes(&r[k], buf, mal_build((enum mal)k, shard, key[k],
						     buf, cap),
			       data, mal_data((enum mal)k) ? 4096 : 0);
		bad_id[k] = mal_id;
		/* a valid LOOKUP after it: must go unanswered too */
		raw_probe(&r[k]);
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
	printf("malformed: %u kinds, %u answered, %u closed by the server "
	       "within 1.5 s\n", MAL_N, answered, closed);
	for (unsigned k = 0; k < MAL_N; k++)
		stored += !lib_miss(&alice, key[k]);
	CHECK_RC(stored, 0);
	free(buf);
	free(data);
	/* the server is alive and serves others */
	CHECK(nt_daemon_alive());
	{
		struct raw g;

		raw_authed(&g, 0, "alice");
		CHECK(raw_alive(&g));
		raw_close(&g);
	}
	shard_key(40000, 0, key[0]);
	CHECK(lib_is(&alice, key[0], 40000, 4096));
}

/* ---- authentication ---- */

static void
expect_dropped(struct raw *r, const char *what)
{
	CHECK_RC(raw_gone(r, 1, 1500, &what), 0);
}

/* A 16-byte body of u64 ns and a u64 value (USED, WEIGHT): a value in
 * range (good) is answered 0, one out of it (bad) -EINVAL with the
 * connection kept, a body one byte longer drops the connection, and so
 * does the message before authentication. */
static void
check_u64_op(uint8_t op, uint64_t good, uint64_t bad, const char *what)
{
	struct wire_hdr h = { .opcode = op, .shard = 0 };
	uint8_t b[17];
	struct raw_msg *m;
	struct raw r;
	char why[64];

	raw_authed(&r, 0, "alice");
	put_le64(b, NS);
	put_le64(b + 8, good);
	h.req_id = next_req++;
	m = raw_wait(&r, raw_send_h(&r, &h, b, 16, NULL, 0), 5000);
	CHECK(m != NULL && m->h.status == 0);
	put_le64(b + 8, bad);
	h.req_id = next_req++;
	m = raw_wait(&r, raw_send_h(&r, &h, b, 16, NULL, 0), 5000);
	CHECK(m != NULL && m->h.status == -EINVAL);
	CHECK(raw_alive(&r));
	raw_clear(&r);
	h.req_id = next_req++;
	raw_send_h(&r, &h, b, 17, NULL, 0);
	snprintf(why, sizeof(why), "after a %s of 17 bytes", what);
	expect_dropped(&r, why);
	raw_close(&r);
	raw_open(&r, 0); /* not authenticated */
	put_le64(b + 8, good);
	h.req_id = next_req++;
	raw_send_h(&r, &h, b, 16, NULL, 0);
	snprintf(why, sizeof(why), "after a %s before AUTH", what);
	expect_dropped(&r, why);
	raw_close(&r);
}

/* USED (the funnel's last stage): counts 1..WIRE_MAX_USED. */
static void
test_used(void)
{
	_Static_assert(WIRE_USED_BODY == 16, "USED body");
	check_u64_op(WIRE_OP_USED, 3, (uint64_t)WIRE_MAX_USED + 1, "USED");
	check_u64_op(WIRE_OP_USED, 1, 0, "USED");
}

/* WEIGHT (a namespace's weight): 0..WIRE_MAX_WEIGHT. */
static void
test_weight(void)
{
	_Static_assert(WIRE_WEIGHT_BODY == 16, "WEIGHT body");
	check_u64_op(WIRE_OP_WEIGHT, WIRE_MAX_WEIGHT, WIRE_MAX_WEIGHT + 1,
		     "WEIGHT");
	check_u64_op(WIRE_OP_WEIGHT, 1, 1ull << 32, "WEIGHT");
}

/* Many failed AUTHs at once: every one is answered -GPC_EAUTH before
 * its connection goes (the answer must not be lost to the close), and
 * then closed. */
static void
test_auth_many(void)
{
	enum { NB = 32 };
	static struct raw rr[NB];
	uint64_t ids[NB];
	unsigned answered = 0, closed = 0;
	uint8_t hb[2 + 5], mac[AUTH_MAC_LEN];
	struct raw_msg *m;

	put_le16(hb, 5);
	memcpy(hb + 2, "alice", 5);
	for (unsigned i = 0; i < NB; i++) {
		raw_open(&rr[i], i % 2);
		m = raw_wait(&rr[i], raw_send(&rr[i], WIRE_OP_HELLO, 0, 0, hb,
					      7), 5000);
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
		fprintf(stderr, "failed AUTH: %u of %u answered -GPC_EAUTH "
			"before the close\n", answered, NB);
	CHECK_RC(answered, NB);
	CHECK_RC(closed, NB);
}

enum { PRE_N = 12 };

static const char *const pre_name[PRE_N] = {
	"PUT as first message", "PUT and its DATA after HELLO",
	"LOOKUP after HELLO", "opcode 3 (REG) after HELLO",
	"AUTH without HELLO", "GET as first message", "STAT after HELLO",
	"HELLO with a space", "DATA as first message", "DATA after HELLO",
	"HELLO with a data part", "AUTH (right MAC) with a data part",
};

/* Pre-AUTH case i on r (HELLO done first where the case says so). */
static void
pre_send(unsigned i, struct raw *r, const uint8_t *key, const uint8_t *data)
{
	struct wire_hdr h = { .opcode = WIRE_OP_PUT, .count = 1,
			      .req_id = next_req++, .shard = r->shard };
	uint8_t hb[2 + 5], b[64] = { 0 }, mac[AUTH_MAC_LEN];

	put_le16(hb, 5);
	memcpy(hb + 2, "alice", 5);
	blk_body(key, 4096, b);
	switch (i) {
	case 0: case 1: case 5:
		h.opcode = i == 5 ? WIRE_OP_GET : WIRE_OP_PUT;
		raw_send_h(r, &h, b, WIRE_BLK_BODY, NULL, 0);
		if (i == 1)
			raw_data(r, h.req_id, 0, data, 4096);
		break;
	case 2: raw_probe(r); break;
	case 3:
		put_le32(b, 1);
		put_le32(b + 4, 16);
		raw_send(r, 3, 0, 0, b, 24 + 16);
		break;
	case 4: raw_send(r, WIRE_OP_AUTH, 0, 0, b, 32); break;
	case 6: raw_send(r, WIRE_OP_STAT, 0, 0, NULL, 0); break;
	case 7:
		put_le16(b, 6);
		memcpy(b + 2, "ali ce", 6);
		raw_send(r, WIRE_OP_HELLO, 0, 0, b, 8);
		break;
	case 8: case 9: raw_data(r, 1, 0, data, 4096); break;
	case 10:
		h.opcode = WIRE_OP_HELLO;
		h.count = 0;
		raw_send_h(r, &h, hb, 7, data, 4096);
		break;
	case 11:
		REQUIRE(auth_mac((const uint8_t *)NT_ALICE_SECRET,
				 strlen(NT_ALICE_SECRET), r->nonce, "alice", 0,
				 mac) == 0);
		h.opcode = WIRE_OP_AUTH;
		h.count = 0;
		raw_send_h(r, &h, mac, sizeof(mac), data, 4096);
		break;
	}
}

/* Before AUTH: anything but HELLO/AUTH is dropped unanswered. What
 * follows goes unanswered too: the next step of a proper handshake (a
 * HELLO, or after one the right AUTH), then a LOOKUP. */
static void
test_pre_auth(void)
{
	static struct raw rr[PRE_N];
	uint8_t hb[2 + 5], key[32], mac[AUTH_MAC_LEN], *data = malloc(4096);
	struct raw_msg *m;
	bool hello;

	REQUIRE(data != NULL);
	test_fill(45000, data, 4096);
	shard_key(45000, 0, key);
	put_le16(hb, 5);
	memcpy(hb + 2, "alice", 5);
	for (unsigned i = 0; i < PRE_N; i++) {
		raw_open(&rr[i], 0);
		hello = i == 1 || i == 2 || i == 3 || i == 6 || i == 9 ||
			i == 11;
		if (hello) {
			m = raw_wait(&rr[i], raw_send(&rr[i], WIRE_OP_HELLO, 0,
						      0, hb, 7), 5000);
			REQUIRE(m != NULL && m->h.status == 0 &&
				m->h.body_len >= WIRE_NONCE_LEN);
			memcpy(rr[i].nonce, m->body, WIRE_NONCE_LEN);
			raw_clear(&rr[i]);
		}
		pre_send(i, &rr[i], key, data);
		if (hello) {
			REQUIRE(auth_mac((const uint8_t *)NT_ALICE_SECRET,
					 strlen(NT_ALICE_SECRET), rr[i].nonce,
					 "alice", 0, mac) == 0);
			raw_send(&rr[i], WIRE_OP_AUTH, 0, 0, mac, sizeof(mac));
		} else {
			raw_send(&rr[i], WIRE_OP_HELLO, 0, 0, hb, 7);
		}
	}
	CHECK_RC(raw_gone(rr, PRE_N, 1500, pre_name), 0);
	for (unsigned i = 0; i < PRE_N; i++)
		raw_close(&rr[i]);
	CHECK(lib_miss(&alice, key));
	free(data);
}

static void
test_auth(void)
{
	struct raw r, r2;
	struct raw_msg *m;
	uint8_t mac[AUTH_MAC_LEN], nonce1[32], k[32];
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
	test_auth_many();
	test_pre_auth();
	/* libgpucache: a wrong secret or an unknown tenant fail cleanly */
	rc = nt_connect_port(nt_port, "alice", "wrong-secret-0123456789", &c);
	CHECK_RC(rc, -GPC_EAUTH);
	rc = nt_connect_port(nt_port, "mallory", "mallory-secret-0123456789",
			     &c);
	CHECK_RC(rc, -GPC_EAUTH);
	rc = nt_connect_port(nt_port, "bob", NT_ALICE_SECRET, &c);
	CHECK_RC(rc, -GPC_EAUTH);
	CHECK(nt_daemon_alive());
	shard_key(40000, 0, k);
	CHECK(lib_is(&alice, k, 40000, 4096));
	printf("auth: done\n");
}

/* ---- tenants ---- */

/* The raw client as bob: same key, same namespace, still a miss, and
 * his PUT of it is his own; his STAT shows only what he did. */
/* A raw connection's own STAT: 8 counters of its tenant on its shard. */
static void
stat_own(struct raw *r, uint64_t v[8])
{
	struct raw_msg *m = raw_wait(r, raw_send(r, WIRE_OP_STAT, 0, 0, NULL,
						 0), 5000);

	REQUIRE(m != NULL && m->h.body_len == 64);
	for (unsigned i = 0; i < 8; i++)
		v[i] = get_le64(m->body + 8 * i);
}

static void
test_tenants_raw(void)
{
	enum { L = 4096, CAP = 64 << 10 };
	uint64_t sb0[8], sb1[8];
	struct raw r;
	uint8_t k[32], *buf = malloc(CAP), *d = malloc(L);
	unsigned nd = 9;

	REQUIRE(buf != NULL && d != NULL);
	shard_key(50100, 0, k);
	raw_authed(&r, 0, "bob");
	stat_own(&r, sb0);
	CHECK_RC(lib_put(&alice, k, 50100, L), 0);
	CHECK(lib_is(&alice, k, 50100, L));
	stat_own(&r, sb1); /* alice's PUT and GET do not show in bob's STAT */
	CHECK(memcmp(sb0, sb1, sizeof(sb0)) == 0);
	memset(buf, PAT, CAP);
	CHECK_RC(raw_get(&r, k, CAP, buf, CAP, &nd), -GPC_ENOTFOUND);
	CHECK_RC(nd, 0);
	CHECK_RC(count_not(buf, CAP, PAT), 0);
	test_fill(50101, d, L);
	CHECK_RC(raw_put(&r, k, d, L, L), 0);
	CHECK(lib_is(&alice, k, 50100, L));
	CHECK(lib_is(&bob, k, 50101, L));
	memset(buf, PAT, CAP);
	CHECK_RC(raw_get(&r, k, CAP, buf, CAP, &nd), L);
	CHECK(memcmp(buf, d, L) == 0);
	stat_own(&r, sb1); /* his own do */
	/* his miss, PUT, lib GET and raw GET, on this shard */
	CHECK(sb1[0] == sb0[0] + 1 && sb1[1] == sb0[1] + 3 &&
	      sb1[2] == sb0[2] + 2 && sb1[3] == sb0[3] + 1 &&
	      sb1[5] == sb0[5] + L && sb1[6] == sb0[6] + 2 * L && sb1[7] == 0);
	raw_close(&r);
	free(buf);
	free(d);
}

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
	test_tenants_raw();
	printf("tenants: done\n");
}

/* ---- clients that stall (server.client_timeout = 3 here) ---- */

/*
 * A PUT whose DATA never comes holds write-buffer space until the client
 * timeout drops its connection (the sweep once freed the request under
 * its own walk: ASan caught it); several stalled PUTs on one connection
 * too; a connection that never authenticates is dropped as well. The
 * daemon serves on, and nothing was stored.
 */
static void
test_stall(void)
{
	enum { L = 8192 };
	struct raw x, y, z;
	uint8_t k0[32], k1[32], k2[32];
	uint64_t t0 = nt_now_ms();

	shard_key(91000, 0, k0);
	shard_key(91001, 0, k1);
	shard_key(91002, 1, k2);
	raw_authed(&x, 0, "alice");
	raw_put_hdr(&x, 0, k0, L);
	raw_authed(&y, 0, "alice");
	raw_put_hdr(&y, 0, k1, L);
	raw_put_hdr(&y, 0, k2, L); /* on shard 0's connection, k2's shard
				    * aside: a stalled PUT all the same */
	raw_open(&z, 1);           /* never says HELLO */
	while (nt_now_ms() - t0 < 8000 && !(x.closed && y.closed && z.closed))
		raw_pump(50);
	CHECK(x.closed && y.closed && z.closed);
	CHECK(nt_now_ms() - t0 >= 2000); /* not before the timeout */
	CHECK(lib_miss(&alice, k0));
	CHECK(lib_miss(&alice, k1));
	CHECK(nt_daemon_alive());
	raw_close(&x);
	raw_close(&y);
	raw_close(&z);
	printf("stall: done in %llu ms\n",
	       (unsigned long long)(nt_now_ms() - t0));
}

/* ---- reload (SIGHUP) ---- */

#define NT_CAROL_SECRET "carol-secret-0123456789abcdef"

/* Replace the [tenant] sections of the daemon's config with tenants
 * (NULL-terminated names; secrets from nt_secret or carol's), SIGHUP it,
 * and wait until probe (a tenant name) connects or fails as wanted. */
static void
reload_tenants(const char *const *names, const char *probe, bool ok)
{
	char buf[8192], *cut;
	FILE *f = fopen(nt_conf, "r");
	size_t n;
	uint64_t t0;
	int rc = 1;

	REQUIRE(f != NULL);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	cut = strstr(buf, "[tenant ");
	REQUIRE(cut != NULL);
	*cut = '\0';
	f = fopen(nt_conf, "w");
	REQUIRE(f != NULL);
	fputs(buf, f);
	for (unsigned i = 0; names[i] != NULL; i++)
		fprintf(f, "[tenant %s]\nsecret = %s\n", names[i],
			strcmp(names[i], "carol") == 0 ? NT_CAROL_SECRET
						       : nt_secret(names[i]));
	REQUIRE(fclose(f) == 0);
	REQUIRE(kill(nt_daemon, SIGHUP) == 0);
	for (t0 = nt_now_ms(); nt_now_ms() - t0 < 5000; nt_sleep_ms(50)) {
		struct gpc_client *c = NULL;

		rc = nt_connect_port(nt_port, probe,
				     strcmp(probe, "carol") == 0
					     ? NT_CAROL_SECRET
					     : nt_secret(probe), &c);
		gpc_close(c);
		if ((rc == 0) == ok)
			break;
	}
	CHECK((rc == 0) == ok);
	if (!ok)
		CHECK_RC(rc, -GPC_EAUTH);
}

/*
 * SIGHUP reloads tenants: a new one can connect, a removed one cannot,
 * and reordering the sections moves nobody: alice still reads her blocks
 * (new and old connections), carol does not, and bob's STAT does not
 * pick up alice's counters (they are kept by each name's index).
 */
static void
test_reload(void)
{
	static const char *const t1[] = { "bob", "carol", "alice", NULL };
	static const char *const t2[] = { "carol", "alice", NULL };
	uint64_t b0[8], b1[8];
	struct lib carol, alice2;
	struct raw r;
	uint8_t k[32];

	shard_key(50200, 0, k);
	raw_authed(&r, 0, "bob");
	stat_own(&r, b0);
	raw_close(&r);
	CHECK_RC(lib_put(&alice, k, 50200, 8192), 0);
	reload_tenants(t1, "carol", true);
	{
		void *p = NULL;

		REQUIRE(nt_connect_port(nt_port, "carol", NT_CAROL_SECRET,
					&carol.c) == 0);
		REQUIRE(gpc_mem_alloc(carol.c, LIB_MEM, &p, &carol.mr) == 0);
		carol.p = p;
	}
	lib_open(&alice2, "alice");
	CHECK(lib_is(&alice, k, 50200, 8192));  /* connected before */
	CHECK(lib_is(&alice2, k, 50200, 8192)); /* connected after */
	CHECK_RC(lib_get(&carol, k, 8192), -GPC_ENOTFOUND);
	CHECK_RC(count_not(carol.p, 8192, PAT), 0);
	raw_authed(&r, 0, "bob");
	stat_own(&r, b1);
	raw_close(&r);
	CHECK(memcmp(b0, b1, sizeof(b0)) == 0);
	reload_tenants(t2, "bob", false);
	CHECK(lib_is(&alice2, k, 50200, 8192));
	lib_close(&alice2);
	lib_close(&carol);
	printf("reload: done\n");
}

int
main(int argc, char **argv)
{
	uint8_t k[32];
	uint64_t t0;

	nt_setup("net_security", argc, argv, 60);
	t0 = nt_now_ms();
	nt_server_extra = "client_timeout = 3\n"; /* test_stall */
	nt_daemon_start();
	REQUIRE(net_ctx_create(false, 0, &rctx) == 0);
	REQUIRE(net_worker_create(rctx, NET_AM_TO_CLIENT, raw_on_msg,
				  raw_on_err, NULL, &rw) == 0);
	lib_open(&alice, "alice");
	lib_open(&bob, "bob");
	/* key 40000 on both shards: what the probes look up */
	for (unsigned s = 0; s < 2; s++) {
		shard_key(40000, s, k);
		REQUIRE(lib_put(&alice, k, 40000, 4096) == 0);
	}
	test_lib_iov();
	test_put_data_bad();
	test_put_data_good();
	test_put_hints();
	test_used();
	test_weight();
	test_get_cap();
	test_get_batch_wire();
	test_put_batch_wire();
	test_cross_conn();
	test_same_id();
	test_busy();
	test_busy_batch();
	test_pending();
	test_inline();
	test_malformed();
	test_auth();
	test_tenants();
	test_stall();
	test_reload(); /* last: bob is gone after it */
	CHECK(nt_daemon_alive());
	lib_close(&alice);
	lib_close(&bob);
	net_worker_destroy(rw);
	net_ctx_destroy(rctx);
	CHECK(nt_exit0(nt_daemon_stop(20000), "gpucached after SIGTERM"));
	printf("total %llu ms\n", (unsigned long long)(nt_now_ms() - t0));
	return test_summary("net_security");
}
