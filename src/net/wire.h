/*
 * wire.h - the GPUCache wire protocol, version 2 (docs/protocol.md is the
 * prose version; keep them in step).
 *
 * Every message is one UCX active message: a 48-byte header, then
 * body_len bytes of body. PUT requests and GET answers that carry a block
 * also have a data part: the block's bytes, sent by UCX rendezvous. All integers little-endian; encoders and
 * decoders go field by field. Decoders check lengths before every read
 * and never trust a count: a bad message is answered or dropped, never
 * asserted on.
 *
 * Header
 *  off size field
 *    0    4 magic "GPCW"
 *    4    2 version       1
 *    6    1 opcode        enum wire_op; responses have WIRE_OP_RESP set
 *    7    1 flags         WIRE_F_*
 *    8    8 req_id        chosen by the client, echoed in the response
 *   16    4 body_len      bytes after the header
 *   20    4 count         items in the batch
 *   24    4 status        responses: 0 or a negative error code
 *   28    4 shard         shard the message is meant for
 *   32    8 aux           op-specific (LOOKUP response: prefix length;
 *                         PUT: TTL in seconds, 0 none)
 *   40    4 body_crc      CRC32C of the body
 *   44    4 hdr_crc       CRC32C of bytes [0, 44)
 */
#ifndef GPC_NET_WIRE_H
#define GPC_NET_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION 2u
#define WIRE_HDR_SIZE 48u
#define WIRE_KEY_LEN 32u
#define WIRE_NONCE_LEN 32u
#define WIRE_MAC_LEN 32u
#define WIRE_MAX_TENANT 64u
#define WIRE_MAX_BODY (1u << 20)
#define WIRE_MAX_BATCH 1024u
#define WIRE_MAX_IOV 64u
#define WIRE_MAX_BLOCK (64u << 20)

enum wire_op {
	WIRE_OP_HELLO = 1,   /* c->s: tenant name; s->c: challenge */
	WIRE_OP_AUTH = 2,    /* c->s: HMAC of the challenge */
	/* 3 and 4 were REG and DEREG in version 1 (rkeys on the wire) */
	WIRE_OP_PUT = 5,     /* c->s: one block, its bytes as the data part */
	WIRE_OP_GET = 6,     /* answered with the block as the data part */
	WIRE_OP_LOOKUP = 7,
	WIRE_OP_DELETE = 8,
	WIRE_OP_PIN = 9,
	WIRE_OP_UNPIN = 10,
	WIRE_OP_STAT = 11,
	WIRE_OP_DATA = 12,   /* a piece of a PUT's or GET's block */
	WIRE_OP_SUBSCRIBE = 13, /* c->s: u64 ns; KV events of it follow */
	WIRE_OP_EVENT = 14,  /* s->c only: a batch of KV events */
	WIRE_OP_USED = 15,   /* c->s: u64 ns, u64 n: blocks the engine used */
	WIRE_OP_WEIGHT = 16, /* c->s: u64 ns, u64 w: the namespace's weight */
	WIRE_OP_MAX = 17,
	WIRE_OP_RESP = 0x80,
};

#define WIRE_F_DURABLE 0x01u  /* PUT: acknowledge once on flash */
#define WIRE_F_PREFETCH 0x02u /* LOOKUP: start reading the prefix */
#define WIRE_F_IF_ABSENT 0x04u /* PUT: a held key keeps its block */
#define WIRE_F_PRIO_LOW 0x08u  /* PUT: priority low (not with HIGH) */
#define WIRE_F_PRIO_HIGH 0x10u /* PUT: priority high */
#define WIRE_F_CHAIN_END 0x20u /* LOOKUP: this part holds the chain's last
				* key (its tail) */

struct wire_hdr {
	uint16_t version;
	uint8_t opcode;
	uint8_t flags;
	uint64_t req_id;
	uint32_t body_len;
	uint32_t count;
	int32_t status;
	uint32_t shard;
	uint64_t aux;
	uint32_t body_crc;
};

/*
 * PUT and GET body (40 + 8 bytes): u64 ns, key[32], u64 len. PUT: len is
 * the block's length; its bytes follow as DATA messages. GET: len is how
 * many bytes the client can take; the block comes as DATA messages, the
 * last of which (count 1, status = the block's length) is the answer; a
 * failure is a plain answer. A DATA message has the PUT's or GET's
 * req_id, aux = the piece's offset in the block, an empty body, and the
 * piece as its data part; a block's pieces come in order and cover it
 * exactly.
 */
#define WIRE_BLK_BODY 48u
struct wire_blk {
	uint64_t ns;
	uint8_t key[WIRE_KEY_LEN];
	uint64_t len;
};

/*
 * KV event record (48 bytes), count of them in an EVENT body; the EVENT
 * header's aux counts events the server dropped since its last EVENT on
 * this connection (a slow subscriber), req_id is 0.
 *   off size field
 *    0    1 type      WIRE_EV_STORED, WIRE_EV_REMOVED
 *    1    7 zero
 *    8    8 ns        the subscriber's namespace id, as it subscribed
 *   16   32 key
 */
#define WIRE_EV_SIZE 48u
#define WIRE_EV_STORED 1u
#define WIRE_EV_REMOVED 2u
#define WIRE_MAX_SUBS 16u /* namespaces one connection may subscribe to */
struct wire_ev {
	uint8_t type;
	uint64_t ns;
	uint8_t key[WIRE_KEY_LEN];
};
void wire_ev_encode(const struct wire_ev *e, uint8_t *buf);
/* 0, or -GPC_ECORRUPT (an unknown type, nonzero padding). */
int wire_ev_decode(const uint8_t *buf, struct wire_ev *out);

/*
 * USED body (16 bytes): u64 ns, u64 nblocks: of the blocks this client
 * fetched, how many its engine used (the hit funnel's last stage,
 * docs/metrics.md); 1..WIRE_MAX_USED per message. Returns 0,
 * -GPC_ECORRUPT (not 16 bytes) or -EINVAL (nblocks out of range).
 */
#define WIRE_USED_BODY 16u
#define WIRE_MAX_USED (1u << 20)
int wire_used_decode(const uint8_t *body, size_t len, uint64_t *ns,
		     uint64_t *nblocks);

/*
 * WEIGHT body (16 bytes): u64 ns, u64 weight: what the namespace's blocks
 * are worth a rewrite at reclaim, 0..WIRE_MAX_WEIGHT (1: the default;
 * docs/cache-policy.md). Returns 0, -GPC_ECORRUPT (not 16 bytes) or
 * -EINVAL (weight out of range).
 */
#define WIRE_WEIGHT_BODY 16u
#define WIRE_MAX_WEIGHT 8u
int wire_weight_decode(const uint8_t *body, size_t len, uint64_t *ns,
		       unsigned *weight);

/*
 * Encode the header for a body of h->body_len bytes (body_crc must be set,
 * see wire_body_crc). buf holds WIRE_HDR_SIZE bytes.
 */
void wire_hdr_encode(const struct wire_hdr *h, uint8_t *buf);
/*
 * Decode and check a message of len bytes: magic, header CRC, version,
 * body length equal to what arrived, body CRC. Returns 0, -GPC_ECORRUPT
 * or -GPC_EVERSION; *out is written only on success.
 */
int wire_msg_decode(const uint8_t *buf, size_t len, struct wire_hdr *out);
uint32_t wire_body_crc(const uint8_t *body, size_t len);

/* Bounded little-endian reader over a body. */
struct wire_rd {
	const uint8_t *p;
	size_t left;
	int err; /* sticky: -GPC_ECORRUPT after any overrun */
};

void wire_rd_init(struct wire_rd *r, const uint8_t *p, size_t len);
uint8_t wire_rd_u8(struct wire_rd *r);
uint16_t wire_rd_u16(struct wire_rd *r);
uint32_t wire_rd_u32(struct wire_rd *r);
uint64_t wire_rd_u64(struct wire_rd *r);
const uint8_t *wire_rd_bytes(struct wire_rd *r, size_t n);

/* Growable little-endian writer. */
struct wire_wr {
	uint8_t *buf;
	size_t len, cap;
	int err; /* sticky: -ENOMEM or -E2BIG past WIRE_MAX_BODY */
};

void wire_wr_init(struct wire_wr *w);
void wire_wr_fini(struct wire_wr *w);
void wire_wr_u8(struct wire_wr *w, uint8_t v);
void wire_wr_u16(struct wire_wr *w, uint16_t v);
void wire_wr_u32(struct wire_wr *w, uint32_t v);
void wire_wr_u64(struct wire_wr *w, uint64_t v);
void wire_wr_bytes(struct wire_wr *w, const void *p, size_t n);

/*
 * A PUT's hints (docs/cache-policy.md): its header's aux is the TTL in
 * seconds (0: none, at most WIRE_MAX_TTL), its flags the priority
 * (WIRE_F_PRIO_LOW or WIRE_F_PRIO_HIGH, not both). Returns 0, or -EINVAL
 * for a TTL or priority out of range (answered to that PUT, which then
 * stores nothing).
 */
#define WIRE_PRIO_NORMAL 0u
#define WIRE_PRIO_LOW 1u
#define WIRE_PRIO_HIGH 2u
#define WIRE_MAX_TTL (10u * 366 * 86400) /* ten years */
struct wire_put_hint {
	uint32_t ttl_s;
	uint8_t prio; /* WIRE_PRIO_* */
};
int wire_put_hint_decode(const struct wire_hdr *h, struct wire_put_hint *out);

/* A PUT or GET body: exactly WIRE_BLK_BODY bytes, len 1..WIRE_MAX_BLOCK.
 * Returns 0 or -GPC_ECORRUPT. */
int wire_blk_decode(const uint8_t *body, size_t len, struct wire_blk *out);
void wire_blk_encode(struct wire_wr *w, const struct wire_blk *b);
/*
 * Batches: a PUT or GET of count 1..WIRE_MAX_XFER blocks of one shard
 * has the body u64 ns, then count x (key[32], u64 len), len 1..
 * WIRE_MAX_BLOCK (a GET's cap; count 1 is the plain body). A daemon that
 * takes count > 1 says so with WIRE_FEAT_GET_BATCH / WIRE_FEAT_PUT_BATCH
 * in the u32 of features after its HELLO answer's shard index.
 * A GET's answer: DATA pieces of the found blocks, one after another,
 * each piece with the batch's count x i32 statuses as its body (a
 * block's length, or -errno) and its offset in them as aux; the last
 * has count set and status = the bytes of all; with no block found, a
 * plain answer with the statuses. A PUT's DATA: each block's bytes at
 * aux = its offset in the blocks one after another (no piece spans two
 * blocks); its answer: count x i32 statuses (docs/protocol.md).
 */
#define WIRE_MAX_XFER 64u
#define WIRE_FEAT_GET_BATCH 0x1u
#define WIRE_FEAT_PUT_BATCH 0x2u
/* After the features word, a u32: the largest DATA piece of a PUT the
 * daemon would have (it checksums each as it lands); 0 or absent: any.
 * A client splits larger blocks, into at most WIRE_MAX_IOV pieces. */
/* Decode a batch body of count blocks into out[0..count) (each with the
 * batch's ns). 0 or -GPC_ECORRUPT. */
int wire_blkv_decode(const uint8_t *body, size_t len, uint32_t count,
		     struct wire_blk *out);
/*
 * Key-list body (LOOKUP, DELETE, PIN, UNPIN): u64 ns, then count keys.
 * *keys points into body. 0 or -GPC_ECORRUPT.
 */
int wire_keys_decode(const uint8_t *body, size_t len, uint32_t count,
		     uint64_t *ns, const uint8_t **keys);
/*
 * HELLO body: u16 name_len, name (1..WIRE_MAX_TENANT bytes, printable
 * ASCII). Copies it NUL-terminated into name[WIRE_MAX_TENANT + 1].
 */
int wire_hello_decode(const uint8_t *body, size_t len, char *name);
/* Is [addr, addr + len) inside [base, base + size)? Overflow-safe. */
static inline bool
wire_range_inside(uint64_t addr, uint64_t len, uint64_t base, uint64_t size)
{
	return len > 0 && addr >= base && addr - base <= size &&
	       len <= size - (addr - base);
}

#endif
