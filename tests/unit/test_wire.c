/*
 * test_wire.c - the wire codec (header round trip, every header byte
 * guarded by the CRCs, body limits), the PUT/GET body, the overflow-safe
 * range check libgpucache applies to its iovecs, the HMAC of authentication, and the chained block-key test
 * vectors of docs/protocol.md.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/bytes.h"
#include "gpucache/gpucache.h"
#include "net/auth.h"
#include "net/net.h"
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
test_blk(void)
{
	struct wire_blk b = { .ns = 5, .key = { 1, 2, 3 }, .len = 100 }, o;
	struct wire_wr w;

	wire_wr_init(&w);
	wire_blk_encode(&w, &b);
	CHECK(w.len == WIRE_BLK_BODY);
	CHECK_RC(wire_blk_decode(w.buf, w.len, &o), 0);
	CHECK(o.ns == 5 && o.len == 100 && memcmp(o.key, b.key, 32) == 0);
	CHECK_RC(wire_blk_decode(w.buf, w.len - 1, &o), -GPC_ECORRUPT);
	wire_wr_u8(&w, 0); /* one byte too many */
	CHECK_RC(wire_blk_decode(w.buf, w.len, &o), -GPC_ECORRUPT);
	wire_wr_fini(&w);
	b.len = 0; /* empty block */
	wire_wr_init(&w);
	wire_blk_encode(&w, &b);
	CHECK_RC(wire_blk_decode(w.buf, w.len, &o), -GPC_ECORRUPT);
	wire_wr_fini(&w);
	b.len = (uint64_t)WIRE_MAX_BLOCK + 1; /* over the value limit */
	wire_wr_init(&w);
	wire_blk_encode(&w, &b);
	CHECK_RC(wire_blk_decode(w.buf, w.len, &o), -GPC_ECORRUPT);
	wire_wr_fini(&w);
	/* USED: u64 ns, u64 nblocks in 1..WIRE_MAX_USED */
	{
		struct wire_wr u;
		uint64_t ns = 0, n = 0;

		wire_wr_init(&u);
		wire_wr_u64(&u, 77);
		wire_wr_u64(&u, 12);
		CHECK_RC(wire_used_decode(u.buf, u.len, &ns, &n), 0);
		CHECK(ns == 77 && n == 12);
		CHECK_RC(wire_used_decode(u.buf, u.len - 1, &ns, &n),
			 -GPC_ECORRUPT);
		wire_wr_u8(&u, 0);
		CHECK_RC(wire_used_decode(u.buf, u.len, &ns, &n),
			 -GPC_ECORRUPT);
		wire_wr_fini(&u);
		wire_wr_init(&u);
		wire_wr_u64(&u, 77);
		wire_wr_u64(&u, 0);
		CHECK_RC(wire_used_decode(u.buf, u.len, &ns, &n), -EINVAL);
		put_le64(u.buf + 8, (uint64_t)WIRE_MAX_USED + 1);
		CHECK_RC(wire_used_decode(u.buf, u.len, &ns, &n), -EINVAL);
		put_le64(u.buf + 8, WIRE_MAX_USED);
		CHECK_RC(wire_used_decode(u.buf, u.len, &ns, &n), 0);
		CHECK(n == WIRE_MAX_USED);
		wire_wr_fini(&u);
	}
	/* WEIGHT: u64 ns, u64 weight in 0..WIRE_MAX_WEIGHT */
	{
		struct wire_wr u;
		uint64_t ns = 0;
		unsigned wt = 99;

		wire_wr_init(&u);
		wire_wr_u64(&u, 78);
		wire_wr_u64(&u, 0);
		CHECK_RC(wire_weight_decode(u.buf, u.len, &ns, &wt), 0);
		CHECK(ns == 78 && wt == 0);
		put_le64(u.buf + 8, WIRE_MAX_WEIGHT);
		CHECK_RC(wire_weight_decode(u.buf, u.len, &ns, &wt), 0);
		CHECK(wt == WIRE_MAX_WEIGHT);
		put_le64(u.buf + 8, WIRE_MAX_WEIGHT + 1);
		CHECK_RC(wire_weight_decode(u.buf, u.len, &ns, &wt), -EINVAL);
		put_le64(u.buf + 8, 1ull << 32); /* not truncated to 0 */
		CHECK_RC(wire_weight_decode(u.buf, u.len, &ns, &wt), -EINVAL);
		CHECK_RC(wire_weight_decode(u.buf, u.len - 1, &ns, &wt),
			 -GPC_ECORRUPT);
		wire_wr_u8(&u, 0);
		CHECK_RC(wire_weight_decode(u.buf, u.len, &ns, &wt),
			 -GPC_ECORRUPT);
		wire_wr_fini(&u);
	}
	/* a PUT's hints: TTL in aux, priority in flags */
	{
		struct wire_hdr h = { .opcode = WIRE_OP_PUT, .aux = 3600,
				      .flags = WIRE_F_PRIO_HIGH };
		struct wire_put_hint p;

		CHECK_RC(wire_put_hint_decode(&h, &p), 0);
		CHECK(p.ttl_s == 3600 && p.prio == WIRE_PRIO_HIGH);
		h.flags = WIRE_F_PRIO_LOW | WIRE_F_DURABLE;
		h.aux = WIRE_MAX_TTL;
		CHECK_RC(wire_put_hint_decode(&h, &p), 0);
		CHECK(p.ttl_s == WIRE_MAX_TTL && p.prio == WIRE_PRIO_LOW);
		h.aux = 0;
		h.flags = 0;
		CHECK_RC(wire_put_hint_decode(&h, &p), 0);
		CHECK(p.ttl_s == 0 && p.prio == WIRE_PRIO_NORMAL);
		h.aux = (uint64_t)WIRE_MAX_TTL + 1;
		CHECK_RC(wire_put_hint_decode(&h, &p), -EINVAL);
		h.aux = UINT64_MAX;
		CHECK_RC(wire_put_hint_decode(&h, &p), -EINVAL);
		h.aux = 1;
		h.flags = WIRE_F_PRIO_LOW | WIRE_F_PRIO_HIGH;
		CHECK_RC(wire_put_hint_decode(&h, &p), -EINVAL);
	}
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

/* server.data_send = auto: which data parts go out as UCX iovecs, from
 * an endpoint's lanes as UCX 1.13's ucp_ep_print_info prints them (the
 * first three as printed here for tcp, posix with error handling, and
 * shared memory without it) */
static void
test_iov_max(void)
{
	static const char tcp[] =
		"#\n# UCP endpoint \n#\n#               peer: <no debug data>\n"
		"#                 lane[0]: cm rdmacm\n"
		"#                 lane[1]:  0:tcp/lo.0 md[0]                -> "
		"md[0]/tcp/sysdev[255] rma_bw#0 am am_bw#0 wireup\n#\n"
		"#                 am_send: 0..<egr/short>..8185..<egr/zcopy>.."
		"20553..<rndv>..(inf)\n";
	static const char shm[] =
		"#                 lane[0]: cm rdmacm\n"
		"#                 lane[1]:  1:posix/memory.0 md[1]          -> "
		"md[1]/posix/sysdev[255] am am_bw#0 keepalive\n"
		"#                 lane[2]:  0:tcp/lo.0 md[0]                -> "
		"md[0]/tcp/sysdev[255] rma_bw#0 wireup\n";
	static const char rdma[] =
		"#                 lane[0]: cm rdmacm\n"
		"#                 lane[1]:  2:rc_mlx5/mlx5_0:1 md[2]        -> "
		"md[2]/ib/sysdev[0] rma_bw#0 am am_bw#0 wireup\n";
	static const char am_only[] =
		"#                 lane[1]:  0:tcp/lo.0 md[0] -> md[0]/tcp am "
		"am_bw#0\n";

	CHECK(net_iov_max_for(tcp) == NET_IOV_MAX_SOCKET);
	CHECK(net_iov_max_for(shm) == SIZE_MAX);
	CHECK(net_iov_max_for(rdma) == 0);
	CHECK(net_iov_max_for(am_only) == NET_IOV_MAX_SOCKET);
	/* what it does not understand gets the zero-copy write */
	CHECK(net_iov_max_for(NULL) == 0);
	CHECK(net_iov_max_for("") == 0);
	CHECK(net_iov_max_for("am_bw#0") == 0);
	CHECK(net_iov_max_for("lane[1]: am_bw#0 0:posix/") == 0);
	CHECK(net_iov_max_for("lane[1]:  0:/x am_bw#0") == 0);
}

int
main(void)
{
	test_header();
	test_blk();
	test_auth_and_keys();
	test_iov_max();
	return test_summary("test_wire");
}
