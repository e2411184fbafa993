"""The gpucache package against a live gpucached: round trips are
bit-exact, misses are None, bad input raises with libgpucache's message."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import gpucache
from gpucache import config, metrics
from gpucache.errors import error

NS = gpucache.namespace("tests/python/test_client")


def rand_blocks(n: int, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size), dtype=np.uint8)


def keys_for(tag: str, n: int) -> list[bytes]:
    return gpucache.chain_keys(list(range(n * 4)), 4, salt=tag.encode())


def test_connect_from_config(daemon):
    cfg = config.load(daemon.conf)
    tenant, secret = next(iter(cfg.tenants.items()))
    assert tenant == "default" and len(secret) >= 16
    with gpucache.Client(daemon.url, tenant, secret) as c:
        assert c.shards == 2


def test_wrong_secret_raises_auth_error(daemon):
    with pytest.raises(gpucache.AuthError) as ei:
        gpucache.Client(daemon.url, "default", b"x" * 32)
    assert gpucache.strerror(1033) in str(ei.value)


def test_round_trip_numpy_bit_exact(client):
    n, size = 16, 64 * 1024
    src = rand_blocks(n, size, 1)
    dst = np.zeros_like(src)
    client.register(src)
    client.register(dst)
    keys = keys_for("numpy", n)
    client.put(NS, keys, [src[i] for i in range(n)])
    assert client.lookup(NS, keys) == n
    got = client.get(NS, keys, [dst[i] for i in range(n)])
    assert got == [size] * n
    assert np.array_equal(src, dst)


def test_async_put_get_and_iovec(client):
    n, size = 8, 32 * 1024
    src = rand_blocks(n, 2 * size, 2)
    dst = np.zeros_like(src)
    client.register(src)
    client.register(dst)
    keys = keys_for("iov", n)
    # each block gathered from two pieces, scattered back the same way
    req = client.put_async(NS, keys, [[src[i, :size], src[i, size:]] for i in range(n)])
    assert req.wait() is None
    assert req.done()
    req = client.get_async(NS, keys, [[dst[i, size:], dst[i, :size]] for i in range(n)])
    assert req.wait() == [2 * size] * n
    swapped = np.concatenate([dst[:, size:], dst[:, :size]], axis=1)
    assert np.array_equal(src, swapped)


def test_misses_and_prefix_lookup(client):
    n, size = 6, 8192
    src = rand_blocks(n, size, 3)
    dst = np.zeros_like(src)
    client.register(src)
    client.register(dst)
    keys = keys_for("prefix", n)
    client.put(NS, keys[:3], [src[i] for i in range(3)])
    assert client.lookup(NS, keys) == 3
    assert client.lookup(NS, keys[3:]) == 0
    got = client.get(NS, keys, [dst[i] for i in range(n)])
    assert got == [size, size, size, None, None, None]
    assert np.array_equal(dst[:3], src[:3]) and not dst[3:].any()
    # another namespace does not see them
    other = gpucache.namespace("tests/python/other")
    assert client.lookup(other, keys) == 0


def test_delete_and_pin(client):
    src = rand_blocks(2, 4096, 4)
    client.register(src)
    keys = keys_for("delete", 2)
    client.put(NS, keys, [src[0], src[1]])
    assert client.pin(NS, keys) == [0, 0]
    assert client.unpin(NS, keys) == [0, 0]
    st = client.delete(NS, keys[:1])
    assert st == [0]
    assert client.lookup(NS, keys) == 0
    assert client.lookup(NS, keys[1:]) == 1


def test_put_if_absent_keeps_the_first_value(client):
    src = rand_blocks(2, 4096, 8)
    out = np.zeros(4096, dtype=np.uint8)
    for a in (src, out):
        client.register(a)
    keys = keys_for("if-absent", 1)
    client.put(NS, keys, [src[0]], if_absent=True)
    client.put(NS, keys, [src[1]], if_absent=True)  # same key: not rewritten
    client.get(NS, keys, [out])
    assert np.array_equal(out, src[0])
    client.put(NS, keys, [src[1]])  # a plain put replaces it
    client.get(NS, keys, [out])
    assert np.array_equal(out, src[1])


def test_put_hints_ttl_and_priority(client):
    src = rand_blocks(3, 4096, 9)
    out = np.zeros((3, 4096), dtype=np.uint8)
    for a in (src, out):
        client.register(a)
    keys = keys_for("hints", 3)
    client.put(NS, keys[:1], [src[0]], ttl=1, priority="high")
    client.put(NS, keys[1:2], [src[1]], priority="low")
    client.put_async(NS, keys[2:], [src[2]], ttl=3600).wait()
    assert client.lookup(NS, keys) == 3
    time.sleep(2.1)  # expiries are whole seconds
    assert client.lookup(NS, keys) == 0  # the chain stops at the expired root
    assert client.get(NS, keys, [out[0], out[1], out[2]]) == [None, 4096, 4096]
    assert not out[0].any() and np.array_equal(out[1:], src[1:])
    for bad in ({"ttl": -1}, {"ttl": gpucache.MAX_TTL + 1}, {"ttl": 1.5},
                {"priority": "urgent"}):
        with pytest.raises(ValueError):
            client.put(NS, keys[:1], [src[0]], **bad)


def test_pin_over_quota_raises_quota_error():
    assert error(-1035, "pin").__class__ is gpucache.QuotaError
    assert "quota" in gpucache.strerror(1035)


def test_raw_pointer_and_alloc(client):
    size = 16384
    reg = client.alloc(2 * size)
    a = reg.array()
    a[:size] = np.arange(size, dtype=np.uint32).view(np.uint8)[:size]
    keys = keys_for("alloc", 1)
    client.put(NS, keys, [(reg.addr, size)])
    buf = ctypes.create_string_buffer(size)
    client.register((ctypes.addressof(buf), size))
    assert client.get(NS, keys, [(ctypes.addressof(buf), size)]) == [size]
    assert buf.raw == a[:size].tobytes()


def test_torch_tensor_if_installed(client):
    torch = pytest.importorskip("torch")  # the base venv has no torch; vllm's has
    t = torch.randn(4, 1024)
    out = torch.zeros_like(t)
    client.register(t)
    client.register(out)
    keys = keys_for("torch", 4)
    client.put(NS, keys, [t[i] for i in range(4)])
    assert client.get(NS, keys, [out[i] for i in range(4)]) == [4096] * 4
    assert torch.equal(t, out)
    # device memory is refused clearly, never registered as if it were host memory
    with pytest.raises(ValueError, match="only host"):
        client.register(torch.empty(16, device="meta"))


def test_bad_input_raises(client):
    src = rand_blocks(1, 4096, 5)
    unreg = np.zeros(4096, dtype=np.uint8)
    client.register(src)
    with pytest.raises(ValueError, match="not inside a registered region"):
        client.put(NS, keys_for("bad", 1), [unreg])
    with pytest.raises(ValueError, match="32 bytes"):
        client.put(NS, [b"short"], [src[0]])
    with pytest.raises(ValueError, match="keys but"):
        client.put(NS, keys_for("bad", 2), [src[0]])
    with pytest.raises(ValueError, match="not C-contiguous"):
        client.register(np.zeros((8, 8), dtype=np.uint8)[:, ::2])
    with pytest.raises(ValueError, match="read-only"):
        client.register(b"immutable bytes")
    # a region that the library itself refuses: its message comes through
    with pytest.raises(gpucache.GpucacheError) as ei:
        client.register((0, 4096))
    assert ei.value.code == 22 and os.strerror(22) in str(ei.value)


def test_too_small_get_buffer_is_an_error(client):
    src = rand_blocks(1, 8192, 6)
    dst = np.zeros(4096, dtype=np.uint8)
    client.register(src)
    client.register(dst)
    keys = keys_for("small", 1)
    client.put(NS, keys, [src[0]])
    with pytest.raises(gpucache.BatchError) as ei:
        client.get(NS, keys, [dst])
    assert ei.value.statuses[0] < 0 and ei.value.message


def test_key_chain_matches_spec_and_is_stable():
    import hashlib
    import struct

    toks = [7, 8, 9, 2**32 - 1]
    want = hashlib.sha256(
        bytes(32) + struct.pack("<I", 3) + b"abc" + struct.pack("<I", 4)
        + struct.pack("<4I", *toks)
    ).digest()
    assert gpucache.key_chain(toks, salt=b"abc") == want
    k2 = gpucache.key_chain([1], parent=want)
    assert k2 == hashlib.sha256(want + struct.pack("<II", 0, 1) + struct.pack("<I", 1)).digest()
    # another process computes the same keys (no per-process hash seed)
    code = ("import gpucache; print(gpucache.chain_keys(list(range(64)), 16, salt=b's')[-1].hex(),"
            " gpucache.namespace('m'))")
    env = dict(os.environ, PYTHONHASHSEED="random")
    outs = {subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True).stdout for _ in range(2)}
    assert len(outs) == 1
    assert outs.pop().split() == [gpucache.chain_keys(list(range(64)), 16, salt=b"s")[-1].hex(),
                                  str(gpucache.namespace("m"))]


def test_namespaces_do_not_alias():
    a, da = gpucache.layout_namespace("m", "bf16", 16, 0)
    b, db = gpucache.layout_namespace("m", "bf16", 16, 1)
    c, _ = gpucache.layout_namespace("m", "fp16", 16, 0)
    assert len({a, b, c}) == 3 and da != db


def test_stat_counts_our_traffic(daemon, client):
    before = metrics.stat(daemon.metrics_addr)
    src = rand_blocks(2, 4096, 7)
    client.register(src)
    keys = keys_for("stat", 2)
    client.put(NS, keys, [src[0], src[1]])
    client.get(NS, keys, [src[0], src[1]])
    client.confirm_used(NS, 2)  # the engine used both: the funnel's end
    client.confirm_used(NS, 0)
    with pytest.raises(ValueError):
        client.confirm_used(NS, -1)
    after = metrics.stat(daemon.metrics_addr)
    hits, used = "gpucache_tenant_hits_total", "gpucache_tenant_used_blocks_total"
    assert metrics.total(after, hits) - metrics.total(before, hits) == 2
    assert metrics.total(after, used) - metrics.total(before, used) == 2
    assert metrics.total(after, "gpucache_payload_copy_bytes_total") == 0


def test_stat_per_namespace(daemon, client):
    """Each namespace has its own funnel, puts and reuse distances,
    labelled with the namespace the client sent (summed over shards)."""
    ns_a, ns_b = gpucache.namespace("per-ns a"), gpucache.namespace("per-ns b")
    n = 256
    src = rand_blocks(n, 4096, 9)
    client.register(src)
    keys = keys_for("per-ns", n)
    client.put(ns_a, keys, src)
    for _ in range(3):  # every key again and again
        assert client.lookup(ns_a, keys) == n
    assert client.lookup(ns_b, keys) == 0
    client.get(ns_a, keys[:2], src[:2])
    client.confirm_used(ns_a, 2)
    m = metrics.stat(daemon.metrics_addr)

    def of(name, ns, **labels):
        return metrics.total(m, "gpucache_namespace_" + name, ns=str(ns), **labels)

    assert of("lookup_keys_total", ns_a) == 3 * n and of("lookup_found_total", ns_a) == 3 * n
    assert of("lookup_keys_total", ns_b) == n and of("lookup_found_total", ns_b) == 0
    assert of("puts_total", ns_a) == n and of("hits_total", ns_a) == 2
    assert of("used_blocks_total", ns_a) == 2 and of("puts_total", ns_b) == 0
    assert of("lookup_prefix_blocks_count", ns_a) >= 3  # a LOOKUP per shard
    # The policy's minis see a sample of the keys (by fingerprint): each
    # sampled key of ns_a is new at the first LOOKUP (beyond) and reused
    # at the next two, a chain's length apart; ns_b's keys (another
    # namespace: other blocks) are all new.
    far, reused = of("reuse_beyond_total", ns_a), of("reuse_distance_references_count", ns_a)
    assert far >= 1 and reused == 2 * far
    assert of("reuse_distance_references_bucket", ns_a, le="1023") == reused
    assert of("reuse_distance_references_count", ns_b) == 0
    assert of("reuse_beyond_total", ns_b) >= 1
    assert metrics.total(m, "gpucache_namespaces") >= 2
    assert metrics.total(m, "gpucache_namespace_untracked_total") == 0


def test_set_weight_reaches_every_shard(daemon, client):
    name = "gpucache_requests_total"
    before = metrics.total(metrics.stat(daemon.metrics_addr), name, op="weight")
    client.set_weight(NS, gpucache.MAX_WEIGHT)
    client.set_weight(NS, 1)
    for bad in (gpucache.MAX_WEIGHT + 1, -1, 2.0, True):
        with pytest.raises(ValueError):
            client.set_weight(NS, bad)
    after = metrics.total(metrics.stat(daemon.metrics_addr), name, op="weight")
    assert after - before == 2 * client.shards


def test_connector_weight_option():
    from gpucache.connectors import weight_of

    assert weight_of({}) is None
    assert weight_of({"weight": 0}) == 0 and weight_of({"weight": "8"}) == 8
    for bad in (9, -1, True, "x", 2.5):
        with pytest.raises(ValueError):
            weight_of({"weight": bad})


def test_hot_block_promoted_to_dram(tmp_path):
    """A block on flash is read from flash by its first GET; its second
    GET (it was read before) brings it up into the DRAM tier, counted as
    a promotion; the GETs after it read no flash."""
    from gpucache.testing import Daemon

    d = Daemon(tmp_path / "gpucached", shards=1, dev_size="64M", dram_buffer="4M",
               chunk_size="1M").start()
    try:
        c = d.client()
        blk = rand_blocks(1, 64 * 1024, 21)
        fill = rand_blocks(16, 1024 * 1024, 22)
        dst = np.zeros_like(blk)
        for a in (blk, fill, dst):
            c.register(a)
        key = keys_for("promote", 1)
        c.put(NS, key, [blk[0]])
        # 16 MiB more: the block's write buffer is long reused, it is on flash only
        c.put(NS, keys_for("promote-fill", 16), [fill[i] for i in range(16)])

        def figures():
            time.sleep(0.3)  # the shard publishes its figures every 100 ms
            m = metrics.stat(d.metrics_addr)
            return (metrics.total(m, "gpucache_store_flash_read_bytes_total"),
                    metrics.total(m, "gpucache_dram_tier_promotions_total"),
                    metrics.total(m, "gpucache_dram_tier_hits_total"))

        seen = [figures()]
        for _ in range(3):
            assert c.get(NS, key, [dst[0]]) == [blk.shape[1]]
            assert np.array_equal(dst, blk)
            dst[:] = 0
            seen.append(figures())
        reads = [b - a for (a, _, _), (b, _, _) in zip(seen, seen[1:])]
        assert reads[0] >= blk.shape[1] and reads[1] >= blk.shape[1] and reads[2] == 0
        assert [p for _, p, _ in seen] == [seen[0][1]] * 2 + [seen[0][1] + 1] * 2
        assert seen[3][2] == seen[2][2] + 1  # the third GET: a DRAM hit
        c.close()
    finally:
        assert d.stop() == 0, d.log_tail()


def test_notail_refuses_only_the_chain_tail_across_shards(tmp_path):
    """admission = notail on 2 shards: a LOOKUP's keys are split between
    the shards, and only the part with the chain's last key says it ends
    the chain: the tail alone is refused, the prefix before it is whole."""
    from gpucache.testing import Daemon

    d = Daemon(tmp_path / "gpucached", shards=2,
               extra=("--set", "store.admission=notail")).start()
    try:
        c = d.client()
        n = 16
        src = rand_blocks(n, 4096, 31)
        c.register(src)
        keys = keys_for("notail", n)
        # libgpucache's shard of a key: its first 8 bytes, little-endian, mod shards
        assert len({int.from_bytes(k[:8], "little") % 2 for k in keys}) == 2
        assert c.lookup(NS, keys) == 0
        c.put(NS, keys, [src[i] for i in range(n)])
        assert c.lookup(NS, keys) == n - 1
        c.close()
    finally:
        assert d.stop() == 0, d.log_tail()


def test_kv_events_of_a_subscribed_namespace(daemon, client):
    import time

    ns = gpucache.namespace("tests/python/events")
    router = daemon.client()
    router.subscribe(ns)
    src = rand_blocks(3, 4096, 9)
    client.register(src)
    keys = keys_for("events", 3)
    client.put(ns, keys, [src[i] for i in range(3)])
    client.put(NS, keys_for("not-subscribed", 1), [src[0]])
    client.delete(ns, keys[:1])
    seen: list[gpucache.KVEvent] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(seen) < 4:
        evs, lost = router.events()
        assert lost == 0
        seen += evs
        time.sleep(0.01)
    assert all(e.ns == ns for e in seen)
    assert sorted(e.key for e in seen if e.stored) == sorted(keys)
    assert [e.key for e in seen if not e.stored] == [keys[0]]
    router.close()


def test_closed_client_raises(daemon):
    c = daemon.client()
    c.close()
    with pytest.raises(gpucache.ClosedError):
        c.lookup(NS, keys_for("closed", 1))
