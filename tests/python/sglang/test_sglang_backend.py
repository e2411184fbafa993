"""gpucache.connectors.sglang against the real sglang package (0.5.23) and
a live gpucached: created by SGLang's own StorageBackendFactory ("dynamic"
backend), on SGLang's real host KV pools (CPU), keys from SGLang's own page
hash; a hit returns exactly the bytes stored, page by page."""

from __future__ import annotations

import ctypes

import pytest
import torch
from sglang.srt.mem_cache.hicache_storage import HiCacheStorageConfig
from sglang.srt.mem_cache.memory_pool import MHATokenToKVPool
from sglang.srt.mem_cache.pool_host.mha import MHATokenToKVPoolHost
from sglang.srt.mem_cache.storage.backend_factory import StorageBackendFactory
from sglang.srt.mem_cache.utils import get_storage_hash_str

from gpucache import metrics
from gpucache.connectors.sglang import GpucacheHiCacheStorage
from gpucache.testing import Daemon

PAGE, LAYERS, HEADS, HEAD = 16, 4, 2, 16


def host_pool(layout: str) -> MHATokenToKVPoolHost:
    dev = MHATokenToKVPool(512, PAGE, torch.float16, HEADS, HEAD, LAYERS, "cpu", False,
                           start_layer=0, end_layer=LAYERS)
    return MHATokenToKVPoolHost(dev.get_device_pool_infos()[0].buffer_info, 2, 0, PAGE, layout,
                                pin_memory=False, device_capacity_tokens=dev.size,
                                start_layer=dev.start_layer, end_layer=dev.end_layer)


def backend(daemon, pool, model="tiny") -> GpucacheHiCacheStorage:
    tenant, secret = daemon.tenant()
    cfg = HiCacheStorageConfig(
        tp_rank=0, tp_size=1, pp_rank=0, pp_size=1, attn_cp_rank=0, attn_cp_size=1,
        is_mla_model=False, enable_storage_metrics=False,
        is_page_first_layout=pool.layout.startswith("page_first"), model_name=model,
        extra_config={"backend_name": "gpucache", "module_path": "gpucache.connectors.sglang",
                      "class_name": "GpucacheHiCacheStorage", "interface_v1": 1,
                      "url": daemon.url, "tenant": tenant, "secret_hex": secret.hex()})
    b = StorageBackendFactory.create_backend("dynamic", cfg, pool)
    assert isinstance(b, GpucacheHiCacheStorage)  # SGLang loaded ours
    b.register_mem_pool_host(pool)  # as HiCacheController does
    return b


def page_bytes(pool, idx: torch.Tensor, page: int) -> list[bytes]:
    ptrs, sizes = pool.get_page_buffer_meta(idx[page * PAGE:(page + 1) * PAGE])
    return [ctypes.string_at(p, s) for p, s in zip(ptrs, sizes)]


def fill_random(pool, idx: torch.Tensor, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    buf = pool.kv_buffer
    if pool.layout == "layer_first":  # [2, layers, tokens, heads, dim]
        buf[:, :, idx] = torch.randn(buf[:, :, idx].shape, generator=g).to(buf.dtype)
    else:  # page_first: [2, tokens, layers, heads, dim]
        buf[:, idx] = torch.randn(buf[:, idx].shape, generator=g).to(buf.dtype)


@pytest.mark.parametrize("layout", ["page_first", "layer_first"])
def test_zero_copy_round_trip_bit_exact(daemon, layout):
    pool = host_pool(layout)
    b = backend(daemon, pool, f"tiny-{layout}")
    npages = 5
    tokens = list(range(1000, 1000 + npages * PAGE))
    keys = get_storage_hash_str(tokens, None, page_size=PAGE)
    assert len(keys) == npages and all(len(k) == 64 for k in keys)
    src = pool.alloc(npages * PAGE)
    fill_random(pool, src, 1)
    want = [page_bytes(pool, src, i) for i in range(npages)]

    assert b.batch_exists(keys) == 0
    assert b.batch_set_v1(keys[:3], src[:3 * PAGE]) == [True] * 3
    assert b.batch_exists(keys) == 3  # the longest present prefix
    assert b.exists(keys[0]) and not b.exists(keys[3])
    assert b.batch_set_v1(keys[3:], src[3 * PAGE:]) == [True] * 2
    assert b.batch_exists(keys) == npages

    dst = pool.alloc(npages * PAGE)
    fill_random(pool, dst, 2)  # other bytes where the hit lands
    assert page_bytes(pool, dst, 0) != want[0]
    used0 = metrics.total(metrics.stat(daemon.metrics_addr),
                          "gpucache_tenant_used_blocks_total")
    assert b.batch_get_v1(keys, dst) == [True] * npages
    for i in range(npages):
        assert page_bytes(pool, dst, i) == want[i], f"page {i}"
    # the funnel's last stage: the pages HiCache loads (the prefix) used
    assert b.stats["used_pages"] == npages
    used1 = metrics.total(metrics.stat(daemon.metrics_addr),
                          "gpucache_tenant_used_blocks_total")
    assert used1 - used0 == npages
    # a miss is a miss: unknown key, and the same keys of another model
    miss = get_storage_hash_str(list(range(7, 7 + PAGE)), None, page_size=PAGE)
    assert b.batch_get_v1(miss, dst[:PAGE]) == [False]
    assert b.stats["used_pages"] == npages  # nothing loaded, nothing used
    other = backend(daemon, pool, "another-model")
    assert other.batch_exists(keys) == 0
    b.close()
    other.close()


def test_older_copying_interface(daemon):
    pool = host_pool("page_first")
    b = backend(daemon, pool, "tiny-legacy")
    keys = get_storage_hash_str(list(range(2 * PAGE)), None, page_size=PAGE)
    vals = [torch.randn(2, LAYERS, PAGE, HEADS, HEAD).half() for _ in keys]
    assert b.batch_set(keys, vals)
    out = [torch.zeros_like(v) for v in vals]
    got = b.batch_get(keys, out)
    assert all(g is not None for g in got)
    assert all(torch.equal(a, o) for a, o in zip(vals, out))
    assert b.get(keys[0] + "x", torch.zeros_like(vals[0])) is None
    b.close()


def test_lost_daemon_is_a_miss_not_an_error(tmp_path):
    d = Daemon(tmp_path / "gpucached").start()
    pool = host_pool("page_first")
    b = backend(d, pool, "tiny-kill")
    keys = get_storage_hash_str(list(range(3 * PAGE)), None, page_size=PAGE)
    idx = pool.alloc(3 * PAGE)
    fill_random(pool, idx, 3)
    assert b.batch_set_v1(keys, idx) == [True] * 3
    d.kill()
    assert b.batch_get_v1(keys, pool.alloc(3 * PAGE)) == [False] * 3
    assert b.batch_exists(keys) == 0
    b.close()
