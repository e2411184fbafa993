/*
 * fuzz_wire.c - libFuzzer target for the wire protocol decoders
 * (src/net/wire.c): every byte a peer can send goes through one of them.
 *
 * One input is used three ways:
 *  1. as a whole message: wire_msg_decode, and when it decodes, the
 *     header must re-encode to the same 48 bytes and the body goes to the
 *     decoder its opcode names (and to all the others);
 *  2. as raw bodies: the first 4 bytes choose a count, the rest is a body
 *     for every body decoder;
 *  3. as numbers for wire_range_inside, checked against 128-bit arithmetic,
 *     and as a script of writes for wire_wr_* that wire_rd_* must read back.
 * A successful decode is checked against the bytes it came from (sizes,
 * offsets, totals, no overflow), so a decoder that accepts what it should
 * not, or reads the wrong bytes, aborts as surely as one that overruns.
 *
 * Also built by meson with tests/fuzz/standalone.c (any compiler) to
 * replay the seed corpus as a plain test.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "gpucache/gpucache.h"
#include "net/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* Like assert, but never compiled out: a failed invariant is a finding. */
#define FUZZ_CHECK(cond)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: invariant failed: %s\n",     \
				__FILE__, __LINE__, #cond);                  \
			abort();                                             \
		}                                                            \
	} while (0)

/* Field by field: struct padding is not part of a header. */
static bool
hdr_eq(const struct wire_hdr *a, const struct wire_hdr *b)
{
	return a->version == b->version && a->opcode == b->opcode &&
	       a->flags == b->flags && a->req_id == b->req_id &&
	       a->body_len == b->body_len && a->count == b->count &&
	       a->status == b->status && a->shard == b->shard &&
	       a->aux == b->aux && a->body_crc == b->body_crc;
}

static void
check_blk(const uint8_t *body, size_t len)
{
	struct wire_blk b;
	struct wire_wr w;

	memset(&b, 0x55, sizeof(b));
	if (wire_blk_decode(body, len, &b))
		return;
	FUZZ_CHECK(len == WIRE_BLK_BODY);
	FUZZ_CHECK(b.ns == get_le64(body));
	FUZZ_CHECK(memcmp(b.key, body + 8, WIRE_KEY_LEN) == 0);
	FUZZ_CHECK(b.len == get_le64(body + 8 + WIRE_KEY_LEN));
	FUZZ_CHECK(b.len >= 1 && b.len <= WIRE_MAX_BLOCK);
	wire_wr_init(&w); /* and it encodes back to the same bytes */
	wire_blk_encode(&w, &b);
	FUZZ_CHECK(w.err == 0 && w.len == len && memcmp(w.buf, body, len) == 0);
	wire_wr_fini(&w);
}

/* A PUT's hints come from its header: a TTL in range and one priority,
 * or -EINVAL. */
static void
check_put_hint(const struct wire_hdr *h)
{
	struct wire_put_hint p;
	int rc;

	memset(&p, 0x55, sizeof(p));
	rc = wire_put_hint_decode(h, &p);
	if (rc != 0) {
		FUZZ_CHECK(rc == -EINVAL);
		FUZZ_CHECK(h->aux > WIRE_MAX_TTL ||
			   (h->flags & (WIRE_F_PRIO_LOW | WIRE_F_PRIO_HIGH)) ==
				   (WIRE_F_PRIO_LOW | WIRE_F_PRIO_HIGH));
		return;
	}
	FUZZ_CHECK(h->aux <= WIRE_MAX_TTL && p.ttl_s == h->aux);
	FUZZ_CHECK(p.prio == ((h->flags & WIRE_F_PRIO_LOW) ? WIRE_PRIO_LOW
			      : (h->flags & WIRE_F_PRIO_HIGH) ? WIRE_PRIO_HIGH
							       : WIRE_PRIO_NORMAL));
}

/* A USED body: 16 bytes, a count in range. */
static void
check_used(const uint8_t *body, size_t len)
{
	uint64_t ns = 0x5555, n = 0x5555;
	int rc = wire_used_decode(body, len, &ns, &n);

	if (rc == -GPC_ECORRUPT) {
		FUZZ_CHECK(len != WIRE_USED_BODY);
		return;
	}
	FUZZ_CHECK(len == WIRE_USED_BODY);
	if (rc != 0) {
		FUZZ_CHECK(rc == -EINVAL);
		n = get_le64(body + 8);
		FUZZ_CHECK(n == 0 || n > WIRE_MAX_USED);
		return;
	}
	FUZZ_CHECK(ns == get_le64(body) && n == get_le64(body + 8));
	FUZZ_CHECK(n >= 1 && n <= WIRE_MAX_USED);
}

/* WEIGHT: 16 bytes, a weight 0..WIRE_MAX_WEIGHT, or refused. */
static void
check_weight(const uint8_t *body, size_t len)
{
	uint64_t ns = 0x5555;
	unsigned w = 0x5555;
	int rc = wire_weight_decode(body, len, &ns, &w);

	FUZZ_CHECK((rc == -GPC_ECORRUPT) == (len != WIRE_WEIGHT_BODY));
	if (rc == 0)
		FUZZ_CHECK(ns == get_le64(body) && w == get_le64(body + 8) &&
			   w <= WIRE_MAX_WEIGHT);
	else if (rc != -GPC_ECORRUPT)
		FUZZ_CHECK(rc == -EINVAL && get_le64(body + 8) > WIRE_MAX_WEIGHT);
}

static void
check_keys(const uint8_t *body, size_t len, uint32_t count)
{
	const uint8_t *keys = NULL;
	uint64_t ns = 0;

	if (wire_keys_decode(body, len, count, &ns, &keys))
		return;
	FUZZ_CHECK(count >= 1 && count <= WIRE_MAX_BATCH);
	FUZZ_CHECK(len == 8 + (size_t)count * WIRE_KEY_LEN);
	FUZZ_CHECK(ns == get_le64(body) && keys == body + 8);
}

/* A GET body of count blocks: what it accepts is exactly ns, then count
 * (key, cap) in range, and count 1 reads as the plain GET's body. */
static void
check_getv(const uint8_t *body, size_t len, uint32_t count)
{
	struct wire_blk b[WIRE_MAX_XFER], one;

	if (wire_blkv_decode(body, len, count, b))
		return;
	FUZZ_CHECK(count >= 1 && count <= WIRE_MAX_XFER);
	FUZZ_CHECK(len == 8 + (size_t)count * (WIRE_KEY_LEN + 8));
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *it = body + 8 + (size_t)i * (WIRE_KEY_LEN + 8);

		FUZZ_CHECK(b[i].ns == get_le64(body));
		FUZZ_CHECK(memcmp(b[i].key, it, WIRE_KEY_LEN) == 0);
		FUZZ_CHECK(b[i].len == get_le64(it + WIRE_KEY_LEN));
		FUZZ_CHECK(b[i].len >= 1 && b[i].len <= WIRE_MAX_BLOCK);
	}
	if (count == 1)
		FUZZ_CHECK(wire_blk_decode(body, len, &one) == 0 &&
			   memcmp(&one, &b[0], sizeof(one)) == 0);
}

static void
check_hello(const uint8_t *body, size_t len)
{
	char name[WIRE_MAX_TENANT + 1];
	size_t n;

	memset(name, 0x55, sizeof(name));
	if (wire_hello_decode(body, len, name))
		return;
	n = strnlen(name, sizeof(name));
	FUZZ_CHECK(n < sizeof(name));
	FUZZ_CHECK(n >= 1 && n <= WIRE_MAX_TENANT && len == 2 + n);
	FUZZ_CHECK(get_le16(body) == n && memcmp(name, body + 2, n) == 0);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(name[i] > 0x20 && name[i] < 0x7f);
}

/* An EVENT body: each whole 48-byte record through the client's decoder;
 * a record it accepts encodes back to the same bytes. */
static void
check_events(const uint8_t *body, size_t len)
{
	for (size_t off = 0; off + WIRE_EV_SIZE <= len; off += WIRE_EV_SIZE) {
		struct wire_ev e;
		uint8_t back[WIRE_EV_SIZE];

		memset(&e, 0x55, sizeof(e));
		if (wire_ev_decode(body + off, &e))
			continue;
		FUZZ_CHECK(e.type == WIRE_EV_STORED || e.type == WIRE_EV_REMOVED);
		wire_ev_encode(&e, back);
		FUZZ_CHECK(memcmp(back, body + off, WIRE_EV_SIZE) == 0);
	}
}

/* Every body decoder on one body. */
static void
check_body(const uint8_t *body, size_t len, uint32_t count)
{
	check_blk(body, len);
	check_keys(body, len, count);
	check_getv(body, len, count);
	check_hello(body, len);
	check_events(body, len);
	check_used(body, len);
	check_weight(body, len);
}

static void
check_msg(const uint8_t *data, size_t size)
{
	struct wire_hdr h, h2;
	uint8_t hdr[WIRE_HDR_SIZE];
	uint8_t op;

	if (wire_msg_decode(data, size, &h))
		return;
	FUZZ_CHECK(size >= WIRE_HDR_SIZE);
	FUZZ_CHECK(h.version == WIRE_VERSION);
	FUZZ_CHECK(h.body_len == size - WIRE_HDR_SIZE);
	FUZZ_CHECK(h.body_len <= WIRE_MAX_BODY);
	FUZZ_CHECK(h.body_crc == wire_body_crc(data + WIRE_HDR_SIZE, h.body_len));
	wire_hdr_encode(&h, hdr);
	FUZZ_CHECK(memcmp(hdr, data, WIRE_HDR_SIZE) == 0);
	FUZZ_CHECK(wire_msg_decode(data, size, &h2) == 0);
	FUZZ_CHECK(hdr_eq(&h, &h2));
	op = h.opcode & (uint8_t)~WIRE_OP_RESP;
	switch (op) {
	case WIRE_OP_PUT:
		check_put_hint(&h);
		check_blk(data + WIRE_HDR_SIZE, h.body_len);
		break;
	case WIRE_OP_GET:
		check_blk(data + WIRE_HDR_SIZE, h.body_len);
		break;
	case WIRE_OP_LOOKUP:
	case WIRE_OP_DELETE:
	case WIRE_OP_PIN:
	case WIRE_OP_UNPIN:
		check_keys(data + WIRE_HDR_SIZE, h.body_len, h.count);
		break;
	case WIRE_OP_HELLO:
		check_hello(data + WIRE_HDR_SIZE, h.body_len);
		break;
	case WIRE_OP_EVENT:
		check_events(data + WIRE_HDR_SIZE, h.body_len);
		break;
	case WIRE_OP_USED:
		check_used(data + WIRE_HDR_SIZE, h.body_len);
		break;
	case WIRE_OP_WEIGHT:
		check_weight(data + WIRE_HDR_SIZE, h.body_len);
		break;
	default:
		check_body(data + WIRE_HDR_SIZE, h.body_len, h.count);
		break;
	}
}

/* A header built from the input, with a correct CRC, must decode back. */
static void
check_encode(const uint8_t *data, size_t size)
{
	uint8_t buf[WIRE_HDR_SIZE + 64];
	struct wire_hdr h, out;
	size_t blen;

	if (size < 40)
		return;
	memset(&h, 0, sizeof(h));
	h.version = WIRE_VERSION;
	h.opcode = data[0];
	h.flags = data[1];
	h.req_id = get_le64(data + 2);
	h.count = get_le32(data + 10);
	h.status = (int32_t)get_le32(data + 14);
	h.shard = get_le32(data + 18);
	h.aux = get_le64(data + 22);
	blen = data[30] % 65;
	if (blen > size - 31)
		blen = size - 31;
	memcpy(buf + WIRE_HDR_SIZE, data + 31, blen);
	h.body_len = (uint32_t)blen;
	h.body_crc = wire_body_crc(buf + WIRE_HDR_SIZE, blen);
	wire_hdr_encode(&h, buf);
	FUZZ_CHECK(wire_msg_decode(buf, WIRE_HDR_SIZE + blen, &out) == 0);
	FUZZ_CHECK(hdr_eq(&h, &out));
	/* one flipped bit anywhere must be caught */
	buf[data[31] % (WIRE_HDR_SIZE + blen)] ^=
		(uint8_t)(1u << (data[1] & 7));
	FUZZ_CHECK(wire_msg_decode(buf, WIRE_HDR_SIZE + blen, &out) != 0);
}

static void
check_range(const uint8_t *data, size_t size)
{
	uint64_t a, l, b, s;
	unsigned __int128 end, lim;
	bool in, want;

	if (size < 32)
		return;
	a = get_le64(data);
	l = get_le64(data + 8);
	b = get_le64(data + 16);
	s = get_le64(data + 24);
	/* bias towards the edges: small numbers and near-overflow values */
	if (data[0] & 1)
		l &= 0xffff;
	if (data[1] & 1)
		a = b + (a & 0xffff);
	in = wire_range_inside(a, l, b, s);
	end = (unsigned __int128)a + l;
	lim = (unsigned __int128)b + s;
	want = l > 0 && a >= b && end <= lim;
	FUZZ_CHECK(in == want);
}

/*
 * Length of a bytes step of the script at writer offset pos, 0..8. Zero-
 * length steps once made wire_wr_bytes call memcpy(NULL, p, 0) (found by
 * this target, fixed in src/net/wire.c); they stay in the mix.
 */
static size_t
step_len(uint64_t v, size_t pos)
{
	(void)pos; /* zero-length writes and reads are fine everywhere now */
	return (size_t)(v % 9);
}

/*
 * The writer and the reader agree: a sequence of writes chosen by the
 * input reads back the same, then one read more fails and stays failed.
 */
static void
check_rw(const uint8_t *data, size_t size)
{
	struct wire_wr w;
	struct wire_rd r;
	size_t i;

	wire_wr_init(&w);
	for (i = 0; i + 9 <= size && i < 2048; i += 9) {
		uint64_t v = get_le64(data + i + 1);

		switch (data[i] % 5) {
		case 0: wire_wr_u8(&w, (uint8_t)v); break;
		case 1: wire_wr_u16(&w, (uint16_t)v); break;
		case 2: wire_wr_u32(&w, (uint32_t)v); break;
		case 3: wire_wr_u64(&w, v); break;
		default: wire_wr_bytes(&w, data + i + 1, step_len(v, w.len)); break;
		}
	}
	if (w.err) {
		wire_wr_fini(&w);
		return;
	}
	wire_rd_init(&r, w.buf, w.len);
	for (i = 0; i + 9 <= size && i < 2048; i += 9) {
		uint64_t v = get_le64(data + i + 1);
		const uint8_t *p;
		size_t n;

		switch (data[i] % 5) {
		case 0: FUZZ_CHECK(wire_rd_u8(&r) == (uint8_t)v); break;
		case 1: FUZZ_CHECK(wire_rd_u16(&r) == (uint16_t)v); break;
		case 2: FUZZ_CHECK(wire_rd_u32(&r) == (uint32_t)v); break;
		case 3: FUZZ_CHECK(wire_rd_u64(&r) == v); break;
		default:
			n = step_len(v, w.len - r.left);
			p = wire_rd_bytes(&r, n);
			FUZZ_CHECK(n == 0 || (p != NULL && memcmp(p, data + i + 1, n) == 0));
			break;
		}
	}
	FUZZ_CHECK(r.err == 0 && r.left == 0);
	FUZZ_CHECK(wire_rd_u8(&r) == 0 && r.err == -GPC_ECORRUPT);
	FUZZ_CHECK(wire_rd_bytes(&r, 0) == NULL && wire_rd_u64(&r) == 0);
	wire_wr_fini(&w);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_msg(data, size);
	check_encode(data, size);
	check_range(data, size);
	check_rw(data, size);
	if (size >= 4) {
		uint32_t count = get_le16(data) % (WIRE_MAX_BATCH + 2);

		check_body(data + 4, size - 4, count);
	}
	return 0;
}
