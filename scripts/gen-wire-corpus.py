#!/usr/bin/env python3
"""Write the seed corpus of tests/fuzz/fuzz_wire.c (protocol version 2).

Each seed is a well-formed message (CRCs right), so the fuzzer starts from
inputs that get past the header checks and into every body decoder; a few
raw bodies (first 4 bytes: the count for check_body) and edge cases too.
Run from the repository root: scripts/gen-wire-corpus.py
"""
import os
import struct

VERSION = 2
OPS = dict(HELLO=1, AUTH=2, PUT=5, GET=6, LOOKUP=7, DELETE=8, PIN=9,
           UNPIN=10, STAT=11, DATA=12, SUBSCRIBE=13, EVENT=14, USED=15,
           WEIGHT=16)
RESP = 0x80


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def msg(op, body=b"", flags=0, req_id=1, count=0, status=0, shard=0, aux=0):
    bcrc = crc32c(body) if body else 0
    h = b"GPCW" + struct.pack("<HBBQIIiIQI", VERSION, op, flags, req_id,
                              len(body), count, status, shard, aux, bcrc)
    return h + struct.pack("<I", crc32c(h)) + body


def key(i):
    return bytes((i * 7 + j) & 0xFF for j in range(32))


def blk(ns, k, n):
    return struct.pack("<Q", ns) + k + struct.pack("<Q", n)


seeds = {
    "hello": msg(OPS["HELLO"], struct.pack("<H", 5) + b"alice"),
    "hello_resp": msg(OPS["HELLO"] | RESP, bytes(32) + struct.pack("<II", 2, 0)),
    "auth": msg(OPS["AUTH"], bytes(range(32)), req_id=2),
    "put": msg(OPS["PUT"], blk(7, key(1), 131072), count=1, flags=1),
    "put_resp_busy": msg(OPS["PUT"] | RESP, count=1, status=-1032),
    # a PUT's hints: TTL in aux, priority in flags (0x08 low, 0x10 high)
    "put_hints": msg(OPS["PUT"], blk(7, key(7), 4096), count=1, flags=0x10,
                     aux=3600),
    "put_hints_bad": msg(OPS["PUT"], blk(7, key(8), 4096), count=1,
                         flags=0x18, aux=10 * 366 * 86400 + 1),
    "used": msg(OPS["USED"], struct.pack("<QQ", 7, 12)),
    "used_zero": msg(OPS["USED"], struct.pack("<QQ", 7, 0)),
    "weight": msg(OPS["WEIGHT"], struct.pack("<QQ", 7, 8)),
    "weight_bad": msg(OPS["WEIGHT"], struct.pack("<QQ", 7, 9)),
    "data": msg(OPS["DATA"], req_id=3, aux=65536),
    "data_resp": msg(OPS["DATA"] | RESP, req_id=4, aux=4096),
    "get": msg(OPS["GET"], blk(7, key(2), 1 << 26), count=1),
    "get_resp": msg(OPS["GET"] | RESP, count=1, status=131072),
    "lookup3": msg(OPS["LOOKUP"], struct.pack("<Q", 7) + key(1) + key(2) + key(3),
                   count=3, flags=2),
    # the part of a chain with its last key: CHAIN_END (0x20)
    "lookup_end": msg(OPS["LOOKUP"], struct.pack("<Q", 7) + key(1) + key(2),
                      count=2, flags=0x22),
    "lookup_resp": msg(OPS["LOOKUP"] | RESP, count=3, aux=2),
    "delete1": msg(OPS["DELETE"], struct.pack("<Q", 7) + key(4), count=1),
    "stat": msg(OPS["STAT"]),
    "subscribe": msg(OPS["SUBSCRIBE"], struct.pack("<Q", 7)),
    "event2": msg(OPS["EVENT"] | RESP, req_id=0, count=2, aux=3,
                  body=bytes([1]) + bytes(7) + struct.pack("<Q", 7) + key(1) +
                  bytes([2]) + bytes(7) + struct.pack("<Q", 7) + key(2)),
    "op3_v1_reg": msg(3, struct.pack("<IIQQ", 1, 8, 4096, 4096) + bytes(8)),
    "raw_blk": struct.pack("<HBB", 1, 0, 0) + blk(1, key(5), 1),
    "raw_keys3": struct.pack("<HBB", 3, 0, 0) + struct.pack("<Q", 9) + key(6) * 3,
    "raw_hello": struct.pack("<HBB", 0, 0, 0) + struct.pack("<H", 3) + b"bob",
    "range_edge": struct.pack("<QQQQ", 2**64 - 8, 16, 0, 2**64 - 1),
}

if __name__ == "__main__":
    d = os.path.join("tests", "fuzz", "corpus", "wire")
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print(f"{len(seeds)} seeds in {d}")
