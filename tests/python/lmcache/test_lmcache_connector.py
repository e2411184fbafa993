"""gpucache.connectors.lmcache against the real lmcache package (0.5.6)
and a live gpucached: created by LMCache's own CreateConnector through its
remote storage plugin framework ("plugin://gpucache"), on LMCache's real
CPU backend and memory objects; a hit returns exactly the bytes stored
(LMCache would read a backend it cannot match as all misses, so every test
checks bytes, not just a status)."""

from __future__ import annotations

import asyncio
import ctypes

import pytest
import torch
from lmcache.utils import CacheEngineKey
from lmcache.v1.config import LMCacheEngineConfig
from lmcache.v1.metadata import LMCacheMetadata
from lmcache.v1.storage_backend.connector import CreateConnector
from lmcache.v1.storage_backend.local_cpu_backend import LocalCPUBackend

from gpucache.connectors.lmcache import GpucacheConnector
from gpucache.testing import Daemon

CHUNK = 16
SHAPE = (2, 2, CHUNK, 2, 16)  # K/V, layers, tokens, heads, head size


@pytest.fixture
def loop():
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def make(daemon, loop, model="tiny"):
    tenant, secret = daemon.tenant()
    p = "remote_storage_plugin.gpucache."
    cfg = LMCacheEngineConfig.from_defaults(
        chunk_size=CHUNK, local_cpu=False, max_local_cpu_size=0.05,
        remote_url="plugin://gpucache", remote_storage_plugins=["gpucache"],
        extra_config={p + "module_path": "gpucache.connectors.lmcache",
                      p + "class_name": "GpucacheConnector", p + "url": daemon.url,
                      p + "tenant": tenant, p + "secret_hex": secret.hex()})
    md = LMCacheMetadata(model_name=model, world_size=1, local_world_size=1, worker_id=0,
                         local_worker_id=0, kv_dtype=torch.float16, kv_shape=SHAPE,
                         chunk_size=CHUNK)
    backend = LocalCPUBackend(cfg, md)
    conn = CreateConnector("plugin://gpucache", loop, backend, cfg, md, plugin_name="gpucache")
    inner = getattr(conn, "connector", None) or getattr(conn, "_connector", None) or conn
    assert isinstance(inner, GpucacheConnector), type(inner)  # LMCache loaded ours
    return conn, inner, backend


def filled(backend, conn, seed: int, tokens: int = CHUNK):
    shapes = [torch.Size([2, 2, tokens, 32])]
    obj = backend.allocate(shapes, conn.meta_dtypes if hasattr(conn, "meta_dtypes") else
                           [torch.float16], None)
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 256, (len(obj.byte_array),), dtype=torch.uint8, generator=g)
    obj.raw_data.reshape(-1).view(torch.uint8)[:len(data)].copy_(data)
    return obj, raw(obj)


def raw(obj) -> bytes:
    return ctypes.string_at(obj.raw_data.data_ptr(), len(obj.byte_array))


def keys_of(model: str, hashes: list[int]) -> list[CacheEngineKey]:
    return [CacheEngineKey(model, 1, 0, h, torch.float16) for h in hashes]


def test_put_get_contains_bytes_exact(daemon, loop):
    conn, inner, backend = make(daemon, loop)
    keys = keys_of("tiny", [0x1234, -5, 2**200 + 7, 99])
    objs = [filled(backend, inner, i) for i in range(3)]
    run = loop.run_until_complete
    assert inner.batched_contains(keys) == 0
    run(inner.batched_put(keys[:2], [o for o, _ in objs[:2]]))
    run(inner.put(keys[2], objs[2][0]))
    assert inner.batched_contains(keys) == 3
    assert run(inner.batched_async_contains("l1", keys)) == 3
    assert run(inner.exists(keys[0])) and not inner.exists_sync(keys[3])
    got = run(inner.batched_get(keys))
    assert got[3] is None
    assert inner.stats["used"] == 3  # the prefix of hits: the funnel's end
    for (o, want), g in zip(objs, got[:3]):
        assert g is not None and raw(g) == want
        assert g.raw_data.data_ptr() != o.raw_data.data_ptr()  # a fresh object, filled
    one = run(inner.get(keys[1]))
    assert raw(one) == objs[1][1]
    # the same chunk hash of another model is a miss
    other = keys_of("another-model", [0x1234])
    assert inner.batched_contains(other) == 0 and run(inner.get(other[0])) is None
    assert inner.remove_sync(keys[0]) and inner.batched_contains(keys) == 0
    run(inner.close())


def test_partial_last_chunk(daemon, loop):
    conn, inner, backend = make(daemon, loop, "tiny-partial")
    key = keys_of("tiny-partial", [42])[0]
    obj, want = filled(backend, inner, 9, tokens=5)
    run = loop.run_until_complete
    run(inner.put(key, obj))
    got = run(inner.get(key))
    assert got is not None and raw(got) == want
    assert list(got.meta.shape)[2] == 5  # reshaped to the 5 tokens stored
    run(inner.close())


def test_lost_daemon_is_a_miss(tmp_path, loop):
    d = Daemon(tmp_path / "gpucached").start()
    conn, inner, backend = make(d, loop, "tiny-kill")
    keys = keys_of("tiny-kill", [1, 2])
    objs = [filled(backend, inner, i)[0] for i in range(2)]
    run = loop.run_until_complete
    run(inner.batched_put(keys, objs))
    assert inner.batched_contains(keys) == 2
    d.kill()
    assert run(inner.batched_get(keys)) == [None, None]
    assert inner.batched_contains(keys) == 0
    run(inner.close())
