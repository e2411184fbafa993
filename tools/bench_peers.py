"""bench_peers.py - gpucached beside Mooncake Store, same transport, same
block sizes, same batches (what `make bench-peers` runs; see
scripts/bench-peers.sh and docs/benchmarks.md).

Both sides run as separate processes on loopback TCP, so every byte
crosses a socket: gpucached (its own process, file devices under a temp
dir, UCX_TLS=tcp) against the gpucache Python client; Mooncake Store's
master, a second process that holds the store's memory segment, and a
client process (this one) that contributes no segment of its own, so its
puts and gets cannot be local copies. Each side's client registers its
buffers once and moves blocks with its zero-copy batch calls
(gpucache: put/get over registered numpy memory; Mooncake:
batch_put_from / batch_get_into over register_buffer'd memory). Every
block read back is compared with what was written.

Prints a table and, last, RESULT put_vs_mooncake=<r> get_vs_mooncake=<r>
(gpucached GB/s over Mooncake GB/s, geometric mean over block sizes).
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

UCX_TCP = {"UCX_TLS": "tcp", "UCX_NET_DEVICES": "lo", "UCX_TCP_TX_SEG_SIZE": "256K",
           "UCX_TCP_RX_SEG_SIZE": "1M"}


def size_arg(s: str) -> int:
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1]] if s[-1] in mult else int(s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(math.ceil(p / 100 * len(xs))) - 1)]


def run_side(name: str, put, get, src: np.ndarray, dst: np.ndarray, bs: int, batch: int,
             rounds: int) -> dict:
    """Time put then get of every block of src (batch blocks per call)."""
    n = src.nbytes // bs
    res = {}
    for op, fn in (("put", put), ("get", get)):
        lat = []
        t0 = time.perf_counter()
        for r in range(rounds):
            for i in range(0, n, batch):
                idx = list(range(i, min(n, i + batch)))
                t = time.perf_counter()
                fn(r, idx)
                lat.append(time.perf_counter() - t)
        wall = time.perf_counter() - t0
        res[op] = {"gbps": rounds * src.nbytes / wall / 1e9, "p50_ms": pct(lat, 50) * 1e3,
                   "p99_ms": pct(lat, 99) * 1e3}
    if not np.array_equal(src, dst):
        raise SystemExit(f"{name}: blocks read back differ from what was written")
    return res


def bench_gpucached(sizes: list[int], total: int, batch: int, rounds: int,
                    devices: list[str]) -> dict:
    os.environ.update(UCX_TCP)
    from gpucache import namespace
    from gpucache.testing import Daemon

    out = {}
    with tempfile.TemporaryDirectory(prefix="gpc-peers-") as tmp:
        extra = tuple(a for dev in devices for a in ("--set", f"store.device={dev}"))
        d = Daemon(tmp, shards=2, dev_size="2G", dram_buffer="256M", chunk_size="0",
                   extra=extra)
        d.start()
        try:
            c = d.client()
            for bs in sizes:
                n = total // bs
                src = np.random.default_rng(bs).integers(0, 256, n * bs, dtype=np.uint8)
                dst = np.zeros_like(src)
                c.register(src)
                c.register(dst)
                ns = namespace(f"bench-peers/{bs}")
                keys = [r.to_bytes(4, "little") + i.to_bytes(28, "little")
                        for r in range(rounds) for i in range(n)]

                def put(r, idx, src=src, keys=keys, n=n, bs=bs, ns=ns):
                    c.put(ns, [keys[r * n + i] for i in idx],
                          [src[i * bs:(i + 1) * bs] for i in idx])

                def get(r, idx, dst=dst, keys=keys, n=n, bs=bs, ns=ns):
                    got = c.get(ns, [keys[r * n + i] for i in idx],
                                [dst[i * bs:(i + 1) * bs] for i in idx])
                    if any(g != bs for g in got):
                        raise SystemExit(f"gpucached: a miss or short block: {got}")

                out[bs] = run_side("gpucached", put, get, src, dst, bs, batch, rounds)
            c.close()
        finally:
            rc = d.stop()
        if rc != 0:
            raise SystemExit(f"gpucached exited {rc}:\n{d.log_tail()}")
    return out


HOLDER = """
import sys, time
from mooncake.store import MooncakeDistributedStore
s = MooncakeDistributedStore()
rc = s.setup("127.0.0.1", "P2PHANDSHAKE", int(sys.argv[2]), 16 << 20, "tcp", "", sys.argv[1])
print("holder ready" if rc == 0 else f"holder setup failed {rc}", flush=True)
while True:
    time.sleep(1)
"""


def bench_mooncake(sizes: list[int], total: int, batch: int, rounds: int) -> dict:
    from mooncake.store import MooncakeDistributedStore

    bindir = Path(sys.executable).parent
    master = bindir / "mooncake_master"
    port, mport = free_port(), free_port()
    addr = f"127.0.0.1:{port}"
    procs = []
    out = {}
    with tempfile.TemporaryDirectory(prefix="mc-peers-") as tmp:
        try:
            procs.append(subprocess.Popen(
                [str(master), f"-rpc_port={port}", f"-metrics_port={mport}",
                 "-rpc_address=127.0.0.1"], stdout=open(f"{tmp}/master.log", "w"),
                stderr=subprocess.STDOUT))
            time.sleep(1.5)
            seg = 2 * total * rounds + (256 << 20)
            holder = subprocess.Popen([sys.executable, "-c", HOLDER, addr, str(seg)],
                                      stdout=subprocess.PIPE, stderr=open(f"{tmp}/h.log", "w"),
                                      text=True)
            procs.append(holder)
            line = holder.stdout.readline().strip()
            if line != "holder ready":
                raise SystemExit(f"mooncake segment holder: {line!r}")
            s = MooncakeDistributedStore()
            rc = s.setup("127.0.0.1", "P2PHANDSHAKE", 0, 16 << 20, "tcp", "", addr)
            if rc != 0:
                raise SystemExit(f"mooncake client setup failed: {rc}")
            for bs in sizes:
                n = total // bs
                src = np.random.default_rng(bs).integers(0, 256, n * bs, dtype=np.uint8)
                dst = np.zeros_like(src)
                for a in (src, dst):
                    if s.register_buffer(a.ctypes.data, a.nbytes) != 0:
                        raise SystemExit("mooncake register_buffer failed")
                keys = [f"{bs}-{r}-{i}" for r in range(rounds) for i in range(n)]
                sp, dp = src.ctypes.data, dst.ctypes.data

                def put(r, idx, keys=keys, n=n, bs=bs, sp=sp):
                    res = s.batch_put_from([keys[r * n + i] for i in idx],
                                           [sp + i * bs for i in idx], [bs] * len(idx))
                    if any(x != 0 for x in res):
                        raise SystemExit(f"mooncake put failed: {res}")

                def get(r, idx, keys=keys, n=n, bs=bs, dp=dp):
                    res = s.batch_get_into([keys[r * n + i] for i in idx],
                                           [dp + i * bs for i in idx], [bs] * len(idx))
                    if any(x != bs for x in res):
                        raise SystemExit(f"mooncake get failed: {res}")

                out[bs] = run_side("mooncake", put, get, src, dst, bs, batch, rounds)
                s.unregister_buffer(sp)
                s.unregister_buffer(dp)
            s.close()
        finally:
            for p in reversed(procs):
                p.kill()
                p.wait()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="256K,2M")
    ap.add_argument("--total", default="128M", help="bytes per block size and round")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--devices", default="",
                    help="gpucached's devices, comma-separated (default: 4 files "
                         "in a temp dir); e.g. zram devices, so its flash reads "
                         "run at DRAM speed like Mooncake's memory")
    a = ap.parse_args()
    sizes = [size_arg(x) for x in a.sizes.split(",")]
    total = size_arg(a.total)
    g = bench_gpucached(sizes, total, a.batch, a.rounds,
                        [x for x in a.devices.split(",") if x])
    m = bench_mooncake(sizes, total, a.batch, a.rounds)
    print(f"{'block':>6} {'side':>10} {'put GB/s':>9} {'p99 ms':>8} {'get GB/s':>9} {'p99 ms':>8}")
    rp, rg = [], []
    for bs in sizes:
        for name, r in (("gpucached", g[bs]), ("mooncake", m[bs])):
            print(f"{bs >> 10:>5}K {name:>10} {r['put']['gbps']:9.2f} {r['put']['p99_ms']:8.2f}"
                  f" {r['get']['gbps']:9.2f} {r['get']['p99_ms']:8.2f}")
        rp.append(g[bs]["put"]["gbps"] / m[bs]["put"]["gbps"])
        rg.append(g[bs]["get"]["gbps"] / m[bs]["get"]["gbps"])
    gm = lambda xs: math.exp(sum(math.log(x) for x in xs) / len(xs))  # noqa: E731
    print(f"batch {a.batch} blocks, {a.rounds} rounds of {a.total} per size, loopback tcp")
    print(f"RESULT put_vs_mooncake={gm(rp):.2f} get_vs_mooncake={gm(rg):.2f}")


if __name__ == "__main__":
    main()
