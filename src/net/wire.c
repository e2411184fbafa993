/*
 * wire.c - encoders and checked decoders of the wire protocol (wire.h).
 * Pure functions of their arguments, any thread. Every read goes through
 * the bounded reader, whose error is sticky, so a decoder checks once at
 * the end that nothing overran and that the body was consumed exactly.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/crc.h"
#include "gpucache/gpucache.h"
#include "wire.h"

static const uint8_t WIRE_MAGIC[4] = "GPCW";

uint32_t
wire_body_crc(const uint8_t *body, size_t len)
{
	return len ? crc32c(body, len) : 0;
}

void
wire_hdr_encode(const struct wire_hdr *h, uint8_t *b)
{
	memcpy(b, WIRE_MAGIC, 4);
	put_le16(b + 4, WIRE_VERSION);
	b[6] = h->opcode;
	b[7] = h->flags;
	put_le64(b + 8, h->req_id);
	put_le32(b + 16, h->body_len);
	put_le32(b + 20, h->count);
	put_le32(b + 24, (uint32_t)h->status);
	put_le32(b + 28, h->shard);
	put_le64(b + 32, h->aux);
	put_le32(b + 40, h->body_crc);
	put_le32(b + 44, crc32c(b, 44));
}

int
wire_msg_decode(const uint8_t *b, size_t len, struct wire_hdr *out)
{
	struct wire_hdr h;

	if (len < WIRE_HDR_SIZE || memcmp(b, WIRE_MAGIC, 4) != 0 ||
	    get_le32(b + 44) != crc32c(b, 44))
		return -GPC_ECORRUPT;
	h.version = get_le16(b + 4);
	if (h.version != WIRE_VERSION)
		return -GPC_EVERSION;
	h.opcode = b[6];
	h.flags = b[7];
	h.req_id = get_le64(b + 8);
	h.body_len = get_le32(b + 16);
	h.count = get_le32(b + 20);
	h.status = (int32_t)get_le32(b + 24);
	h.shard = get_le32(b + 28);
	h.aux = get_le64(b + 32);
	h.body_crc = get_le32(b + 40);
	if (h.body_len != len - WIRE_HDR_SIZE || h.body_len > WIRE_MAX_BODY ||
	    h.body_crc != wire_body_crc(b + WIRE_HDR_SIZE, h.body_len))
		return -GPC_ECORRUPT;
	*out = h;
	return 0;
}

void
wire_rd_init(struct wire_rd *r, const uint8_t *p, size_t len)
{
	r->p = p;
	r->left = len;
	r->err = 0;
}

const uint8_t *
wire_rd_bytes(struct wire_rd *r, size_t n)
{
	const uint8_t *p = r->p;

	if (n == 0 && !r->err)
		return p; /* nothing to read: no pointer arithmetic on NULL */
	if (r->err || n > r->left) {
		r->err = -GPC_ECORRUPT;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

uint8_t
wire_rd_u8(struct wire_rd *r)
{
	const uint8_t *p = wire_rd_bytes(r, 1);

	return p ? p[0] : 0;
}

uint16_t
wire_rd_u16(struct wire_rd *r)
{
	const uint8_t *p = wire_rd_bytes(r, 2);

	return p ? get_le16(p) : 0;
}

uint32_t
wire_rd_u32(struct wire_rd *r)
{
	const uint8_t *p = wire_rd_bytes(r, 4);

	return p ? get_le32(p) : 0;
}

uint64_t
wire_rd_u64(struct wire_rd *r)
{
	const uint8_t *p = wire_rd_bytes(r, 8);

	return p ? get_le64(p) : 0;
}

void
wire_wr_init(struct wire_wr *w)
{
	memset(w, 0, sizeof(*w));
}

void
wire_wr_fini(struct wire_wr *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

void
wire_wr_bytes(struct wire_wr *w, const void *p, size_t n)
{
	if (w->err || n == 0)
		return;
	if (w->len + n > WIRE_MAX_BODY) {
		w->err = -E2BIG;
		return;
	}
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 256;
		uint8_t *nb;

		while (cap < w->len + n)
			cap *= 2;
		nb = realloc(w->buf, cap);
		if (nb == NULL) {
			w->err = -ENOMEM;
			return;
		}
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void
wire_wr_u8(struct wire_wr *w, uint8_t v)
{
	wire_wr_bytes(w, &v, 1);
}

void
wire_wr_u16(struct wire_wr *w, uint16_t v)
{
	uint8_t b[2];

	put_le16(b, v);
	wire_wr_bytes(w, b, 2);
}

void
wire_wr_u32(struct wire_wr *w, uint32_t v)
{
	uint8_t b[4];

	put_le32(b, v);
	wire_wr_bytes(w, b, 4);
}

void
wire_wr_u64(struct wire_wr *w, uint64_t v)
{
	uint8_t b[8];

	put_le64(b, v);
	wire_wr_bytes(w, b, 8);
}

int
wire_blk_decode(const uint8_t *body, size_t len, struct wire_blk *out)
{
	struct wire_rd r;
	const uint8_t *key;
	uint64_t ns, n;

	wire_rd_init(&r, body, len);
	ns = wire_rd_u64(&r);
	key = wire_rd_bytes(&r, WIRE_KEY_LEN);
	n = wire_rd_u64(&r);
	if (r.err || r.left != 0 || n == 0 || n > WIRE_MAX_BLOCK)
		return -GPC_ECORRUPT;
	out->ns = ns;
	memcpy(out->key, key, WIRE_KEY_LEN);
	out->len = n;
	return 0;
}

/* A body of exactly two u64s (USED, WEIGHT): a namespace and a value in
 * [lo, hi]. 0, -GPC_ECORRUPT (not 16 bytes) or -EINVAL (out of range);
 * the outputs are set on success only. */
static int
ns_and_value(const uint8_t *body, size_t len, uint64_t lo, uint64_t hi,
	     uint64_t *ns, uint64_t *value)
{
	struct wire_rd r;
	uint64_t a, v;

	wire_rd_init(&r, body, len);
	a = wire_rd_u64(&r);
	v = wire_rd_u64(&r);
	if (r.err || r.left != 0)
		return -GPC_ECORRUPT;
	if (v < lo || v > hi)
		return -EINVAL;
	*ns = a;
	*value = v;
	return 0;
}

int
wire_weight_decode(const uint8_t *body, size_t len, uint64_t *ns,
		   unsigned *weight)
{
	uint64_t w;
	int rc = ns_and_value(body, len, 0, WIRE_MAX_WEIGHT, ns, &w);

	if (rc == 0)
		*weight = (unsigned)w;
	return rc;
}

int
wire_used_decode(const uint8_t *body, size_t len, uint64_t *ns,
		 uint64_t *nblocks)
{
	return ns_and_value(body, len, 1, WIRE_MAX_USED, ns, nblocks);
}

int
wire_put_hint_decode(const struct wire_hdr *h, struct wire_put_hint *out)
{
	bool low = (h->flags & WIRE_F_PRIO_LOW) != 0;
	bool high = (h->flags & WIRE_F_PRIO_HIGH) != 0;

	if ((low && high) || h->aux > WIRE_MAX_TTL)
		return -EINVAL;
	out->ttl_s = (uint32_t)h->aux;
	out->prio = low ? WIRE_PRIO_LOW : high ? WIRE_PRIO_HIGH
					      : WIRE_PRIO_NORMAL;
	return 0;
}

void
wire_blk_encode(struct wire_wr *w, const struct wire_blk *b)
{
	wire_wr_u64(w, b->ns);
	wire_wr_bytes(w, b->key, WIRE_KEY_LEN);
	wire_wr_u64(w, b->len);
}

void
wire_ev_encode(const struct wire_ev *e, uint8_t *buf)
{
	memset(buf, 0, WIRE_EV_SIZE);
	buf[0] = e->type;
	put_le64(buf + 8, e->ns);
	memcpy(buf + 16, e->key, WIRE_KEY_LEN);
}

int
wire_ev_decode(const uint8_t *buf, struct wire_ev *out)
{
	static const uint8_t zero[7];

	if ((buf[0] != WIRE_EV_STORED && buf[0] != WIRE_EV_REMOVED) ||
	    memcmp(buf + 1, zero, sizeof(zero)) != 0)
		return -GPC_ECORRUPT;
	out->type = buf[0];
	out->ns = get_le64(buf + 8);
	memcpy(out->key, buf + 16, WIRE_KEY_LEN);
	return 0;
}

int
wire_keys_decode(const uint8_t *body, size_t len, uint32_t count,
		 uint64_t *ns, const uint8_t **keys)
{
	struct wire_rd r;

	if (count == 0 || count > WIRE_MAX_BATCH)
		return -GPC_ECORRUPT;
	wire_rd_init(&r, body, len);
	*ns = wire_rd_u64(&r);
	*keys = wire_rd_bytes(&r, (size_t)count * WIRE_KEY_LEN);
	return (r.err || r.left != 0) ? -GPC_ECORRUPT : 0;
}

int
wire_blkv_decode(const uint8_t *body, size_t len, uint32_t count,
		 struct wire_blk *out)
{
	struct wire_rd r;
	uint64_t ns;

	if (count == 0 || count > WIRE_MAX_XFER)
		return -GPC_ECORRUPT;
	wire_rd_init(&r, body, len);
	ns = wire_rd_u64(&r);
	for (uint32_t i = 0; i < count && !r.err; i++) {
		const uint8_t *key = wire_rd_bytes(&r, WIRE_KEY_LEN);
		uint64_t cap = wire_rd_u64(&r);

		if (r.err || cap == 0 || cap > WIRE_MAX_BLOCK)
			return -GPC_ECORRUPT;
		out[i].ns = ns;
		memcpy(out[i].key, key, WIRE_KEY_LEN);
		out[i].len = cap;
	}
	return (r.err || r.left != 0) ? -GPC_ECORRUPT : 0;
}

int
wire_hello_decode(const uint8_t *body, size_t len, char *name)
{
	struct wire_rd r;
	uint16_t n;
	const uint8_t *p;

	wire_rd_init(&r, body, len);
	n = wire_rd_u16(&r);
	if (r.err || n == 0 || n > WIRE_MAX_TENANT)
		return -GPC_ECORRUPT;
	p = wire_rd_bytes(&r, n);
	if (r.err || r.left != 0)
		return -GPC_ECORRUPT;
	for (uint16_t i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			return -GPC_ECORRUPT;
	memcpy(name, p, n);
	name[n] = '\0';
	return 0;
}
