/*
 * test_wire.c - the wire codec (header round trip, every header byte
 * guarded by the CRCs, body limits), the overflow-safe descriptor range
 * check, the HMAC of authentication, and the chained block-key test
 * vectors of docs/protocol.md.
 */
#include <string.h>

#include "common/bytes.h"
#include "gpucache/gpucache.h"
#include "net/auth.h"
#include "net/wire.h"
#include "test.h"

static void
test_header(void)
{
	uint8_t msg[WIRE_HDR_SIZE + 8] = { 0 };
	struct wire_hdr h = { .opcode = WIRE_OP_GET, .flags = 1, .req_id = 77,
			      .body_len = 8, .count = 3, .status = -5,
			      .shard = 2, .aux = 99 }, o;

	memset(msg + WIRE_HDR_SIZE, 0xab, 8);
	h.body_crc = wire_body_crc(msg + WIRE_HDR_SIZE, 8);
	wire_hdr_encode(&h, msg);
	CHECK_RC(wire_msg_decode(msg, sizeof(msg), &o), 0);
	CHECK(o.req_id == 77 && o.count == 3 && o.status == -5 &&
	      o.shard == 2 && o.aux == 99 && o.opcode == WIRE_OP_GET);
	for (unsigned i = 0; i < sizeof(msg); i++) {
		msg[i] ^= 0x04;
		CHECK(wire_msg_decode(msg, sizeof(msg), &o) < 0);
		msg[i] ^= 0x04;
	}
	CHECK(wire_msg_decode(msg, sizeof(msg) - 1, &o) < 0); /* truncated */
	CHECK(wire_msg_decode(msg, 10, &o) < 0);
}

static void
test_batch(void)
{
	struct wire_block b[2];
	struct wire_desc d[4];
	struct wire_wr w;
	uint8_t key[32] = { 1 };
	uint64_t ns;

	wire_wr_init(&w);
	wire_wr_u64(&w, 5);
	wire_wr_bytes(&w, key, 32);
	wire_wr_u32(&w, 1);
	wire_wr_u32(&w, 0);
	wire_wr_u32(&w, 7);
	wire_wr_u32(&w, 0);
	wire_wr_u64(&w, UINT64_MAX - 10); /* addr + len overflows */
	wire_wr_u64(&w, 100);
	CHECK_RC(wire_batch_decode(w.buf, w.len, 1, &ns, b, d, 4), -GPC_ECORRUPT);
	w.len -= 16;
	wire_wr_u64(&w, 4096);
	wire_wr_u64(&w, 0); /* zero length */
	CHECK_RC(wire_batch_decode(w.buf, w.len, 1, &ns, b, d, 4), -GPC_ECORRUPT);
	w.len -= 8;
	wire_wr_u64(&w, 100);
	CHECK_RC(wire_batch_decode(w.buf, w.len, 1, &ns, b, d, 4), 0);
	CHECK(ns == 5 && b[0].ndesc == 1 && b[0].total == 100 &&
	      d[0].region == 7 && d[0].addr == 4096);
	CHECK_RC(wire_batch_decode(w.buf, w.len, 2, &ns, b, d, 4), -GPC_ECORRUPT);
	CHECK_RC(wire_batch_decode(w.buf, w.len - 1, 1, &ns, b, d, 4),
		 -GPC_ECORRUPT);
	wire_wr_fini(&w);
	CHECK(wire_range_inside(100, 10, 100, 10));
	CHECK(!wire_range_inside(100, 11, 100, 10));
	CHECK(!wire_range_inside(99, 1, 100, 10));
	CHECK(!wire_range_inside(UINT64_MAX - 1, 4, 0, UINT64_MAX));
	CHECK(!wire_range_inside(105, 0, 100, 10));
}

static void
test_auth_and_keys(void)
{
	static const char *want[3] = {
		"5fd2e9b58245e21b737f2ba1d78382176cb91020359055bb87bec34fdeba50ad",
		"bc66f86ae1b9dbfd7d12078a16f1fe6d56160e2b15d7d4e3742e85c51d7216eb",
		"6caa4a4a9d887f41b3905effff7e15e2c3e3fcdf3ff5d6bd7326cbff01266b74",
	};
	uint32_t t0[] = { 1, 2, 3, 4 }, t1[] = { 5, 6, 7, 8 }, t2[] = { 9 };
	uint8_t k[3][32], nonce[32] = { 9 }, m1[32], m2[32];
	char hex[65];

	CHECK_RC(gpc_key_chain(NULL, "model-x", 7, t0, 4, k[0]), 0);
	CHECK_RC(gpc_key_chain(k[0], "model-x", 7, t1, 4, k[1]), 0);
	CHECK_RC(gpc_key_chain(k[1], "model-x", 7, t2, 1, k[2]), 0);
	for (int i = 0; i < 3; i++) {
		for (int j = 0; j < 32; j++)
			snprintf(hex + 2 * j, 3, "%02x", k[i][j]);
		CHECK(strcmp(hex, want[i]) == 0);
	}
	CHECK_RC(auth_mac((const uint8_t *)"0123456789abcdef", 16, nonce,
			  "alice", 0, m1), 0);
	CHECK_RC(auth_mac((const uint8_t *)"0123456789abcdef", 16, nonce,
			  "alice", 1, m2), 0);
	CHECK(!auth_mac_equal(m1, m2)); /* bound to the shard */
	CHECK_RC(auth_mac((const uint8_t *)"0123456789abcdef", 16, nonce,
			  "alice", 0, m2), 0);
	CHECK(auth_mac_equal(m1, m2));
}

int
main(void)
{
	test_header();
	test_batch();
	test_auth_and_keys();
	return test_summary("test_wire");
}
