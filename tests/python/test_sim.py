"""`gpucache sim`: its baselines are exact on hand-made traces, and the
store it runs (the real engine) holds as many blocks as the capacity says,
no more, and, cut into whole segments, not many fewer (docs/cache-policy.md,
"How it is measured")."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

BLOCK_TOKENS = 512


def tool() -> str:
    d = os.environ.get("GPUCACHED")
    build = Path(d).resolve().parents[2] if d else Path(__file__).resolve().parents[2] / "build"
    p = build / "tools" / "gpucache"
    assert p.exists(), f"no {p}: build first (make build)"
    return str(p)


def write_trace(path: Path, chains: list[list[int]]) -> Path:
    with open(path, "w") as f:
        for i, ids in enumerate(chains):
            rec = {"timestamp": i, "input_length": BLOCK_TOKENS * len(ids),
                   "output_length": 1, "hash_ids": ids}
            f.write(json.dumps(rec) + "\n")
    return path


def sim(trace: Path, *args: str) -> str:
    out = subprocess.run([tool(), "sim", str(trace), *args], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def rates(out: str) -> dict[str, float]:
    """The hit ratio of each policy, from "capacity C tokens (B blocks):
    lru 12.34% belady ...%"."""
    line = [x for x in out.splitlines() if x.startswith("capacity ")][-1]
    return {k: float(v) / 100 for k, v in re.findall(r"(\w+) ([0-9.]+)%", line)}


def test_baselines_are_exact(tmp_path):
    # 2 blocks of room. LRU: [0,1] is evicted by [2,3] before it comes
    # back, and [2,3] by [0,1]: no hit. Belady keeps [0,1], which comes
    # back, over [2,3], which does not: 2 hits of 8 blocks.
    t = write_trace(tmp_path / "t.jsonl", [[0, 1], [2, 3], [0, 1], [4, 5]])
    r = rates(sim(t, "--capacity", str(2 * BLOCK_TOKENS), "--policy", "lru,belady"))
    assert r["lru"] == 0.0
    assert r["belady"] == pytest.approx(2 / 8, abs=1e-4)
    # prefix semantics: a request hits its leading run of present blocks
    t = write_trace(tmp_path / "p.jsonl", [[0, 1, 2], [9, 1, 2], [0, 1, 2]])
    r = rates(sim(t, "--capacity", str(100 * BLOCK_TOKENS), "--policy", "lru,belady"))
    assert r["lru"] == pytest.approx(3 / 9, abs=1e-4)  # [9, ...] hits nothing
    assert r["belady"] == pytest.approx(3 / 9, abs=1e-4)


def records_fit(chunk: int, block: int) -> int:
    """Records of a block a chunk holds beside their summary (format.h:
    a 4 KiB chunk header, a record is a 4 KiB header and the block in
    whole sectors, the summary 64 bytes an entry in whole sectors and a
    sector of footer)."""
    sec = 4096
    rec = sec + -(-block // sec) * sec
    n = (chunk - sec) // rec
    while n > 0 and n * rec + -(-n * 64 // sec) * sec + sec > chunk - sec:
        n -= 1
    return n


@pytest.mark.parametrize("blocks,block", [(243, "16K"), (335, "16K"), (539, "16K"),
                                          (608, "16K"), (866, "16K"), (1953, "16K"),
                                          (2332, "16K"), (2680, "4K"), (700, "64K")])
def test_store_as_big_as_asked(tmp_path, blocks, block):
    # A scan of chains never seen twice fills the store; what it holds at
    # the end is what its geometry (gpucache sim --geometry, which
    # bench-cache gives gpucached) makes room for.
    chains = [list(range(4 * i, 4 * i + 4)) for i in range(blocks)]  # 4 x the room
    t = write_trace(tmp_path / "scan.jsonl", chains)
    cap = str(blocks * BLOCK_TOKENS)
    out = sim(t, "--capacity", cap, "--policy", "all", "--block-bytes", block)
    m = re.search(r"store of (\d+) blocks \((\d+) held at the end\)", out)
    assert m, out
    store, held = int(m.group(1)), int(m.group(2))
    assert store <= blocks, "the store holds more than the capacity"
    assert store >= 0.97 * blocks, f"the store holds {store} blocks of {blocks}"
    per_seg = store // 48 + 1  # at least 48 segments
    assert store - per_seg <= held <= store + per_seg, (store, held)
    assert re.search(r"wrong (\d+)$", out.strip()).group(1) == "0"  # every block read back checked
    geo = subprocess.run([tool(), "sim", "--geometry", "--capacity", cap, "--block-bytes", block],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    g = dict(kv.split("=") for kv in geo.split())
    chunk, dev = int(g["chunk_size"]), int(g["device_size"])
    assert dev % (1 << 20) == 0 and chunk % 4096 == 0
    # gpucached cuts the device into whole chunks after its first MiB, each
    # holding whole records: segments x records per chunk is the store
    nseg = (dev - (1 << 20)) // chunk
    size = {"4K": 4096, "16K": 16384, "64K": 65536}[block]
    assert nseg * records_fit(chunk, size) == store


def test_store_too_small_is_refused(tmp_path):
    t = write_trace(tmp_path / "t.jsonl", [[0, 1]])
    out = subprocess.run([tool(), "sim", str(t), "--capacity", str(8 * BLOCK_TOKENS),
                          "--policy", "lru,ours"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "too small" in out.stderr


def test_write_amp_max_trades_flash_writes_for_hits(tmp_path):
    # A hot set of 100 blocks (20 chains), asked for every round between
    # 40 chains seen once, in a store of 300: keeping the hot set means
    # rewriting it as the log turns, which store.write_amp_max (here
    # --write-amp-max) pays for; at 1 the policy rewrites nothing.
    chains, new = [], 10**6
    for _ in range(30):
        for h in range(20):
            chains.append(list(range(5 * h, 5 * h + 5)))
            for _ in range(2):
                chains.append(list(range(new, new + 5)))
                new += 5
    t = write_trace(tmp_path / "hot.jsonl", chains)
    got = {}
    for w in ("1", "1.5"):
        out = sim(t, "--capacity", str(300 * BLOCK_TOKENS), "--policy", "ours",
                  "--block-bytes", "16K", "--write-amp-max", w)
        r = [x for x in out.splitlines() if x.startswith("RESULT sim ")][-1]
        got[w] = {k: float(v) for k, v in (kv.split("=") for kv in r.split()[2:])}
        assert got[w]["wrong"] == 0
    assert got["1.5"]["ours"] > got["1"]["ours"] + 0.05
    assert got["1.5"]["write_amp"] > got["1"]["write_amp"] + 0.1
    bad = subprocess.run([tool(), "sim", str(t), "--write-amp-max", "0.5"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "bad arguments" in bad.stderr
