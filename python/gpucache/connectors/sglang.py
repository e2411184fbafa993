"""GPUCache as an SGLang HiCache storage backend (``HiCacheStorage``).

Tested against sglang 0.5.23 (PyPI), on CPU, with its own host KV pools.
Loaded dynamically, with no change to SGLang::

    --enable-hierarchical-cache --hicache-mem-layout page_first \\
    --hicache-storage-backend dynamic \\
    --hicache-storage-backend-extra-config '{"backend_name": "gpucache",
        "module_path": "gpucache.connectors.sglang",
        "class_name": "GpucacheHiCacheStorage", "interface_v1": 1,
        "config": "/var/lib/gpucache/gpucached.conf"}'

Extra-config keys besides SGLang's own: ``config`` (a gpucached.conf), or
``url`` + ``tenant`` + ``secret`` / ``secret_hex``; optional ``host``,
``model_fingerprint`` (default: SGLang's model name), ``timeout_ms`` and
``weight`` (0..8, set on the namespace when the host pool registers: what
these blocks are worth a flash rewrite; docs/cache-policy.md).

What maps to what:

- keys: SGLang's 64-hex page hashes (SHA-256 chains) taken as they are, as
  32 bytes; a key of another form is folded to 32 bytes by SHA-256.
- namespace: (model, TP/PP/DP/attention-CP rank and sizes, MLA or not, the
  host pool's layout, page size, dtype, heads, head size, layers); the
  tenant comes from the connection.
- ``batch_exists`` is a LOOKUP: the longest present prefix, in one call.
- ``batch_get_v1`` / ``batch_set_v1`` (zero copy, ``interface_v1``: 1): the
  host pool's page buffers (``get_page_buffer_meta``) are one iovec per
  page, moved straight into and out of the registered host pool.
- ``get`` / ``set`` / ``batch_get`` / ``batch_set`` (SGLang's older,
  copying interface) register the caller's tensors for the call.
- a failed get is False for that page (SGLang then stops the prefetch
  there); a miss is a miss, never wrong bytes.

MLA pools (one writer rank) and layouts whose page has more than 64
pieces (layer_first with more than 32 layers) are refused clearly.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, List, Optional

import torch
from sglang.srt.mem_cache.hicache_storage import (
    HiCacheStorage,
    HiCacheStorageConfig,
    HiCacheStorageExtraInfo,
)

import gpucache
from gpucache.connectors import confirm_leading, connect, weight_of
from gpucache.errors import BatchError, GpucacheError

logger = logging.getLogger("gpucache.connectors.sglang")

TESTED_SGLANG = "0.5.23"
_MAX_IOV = 64


def page_key(key: str) -> bytes:
    """SGLang's 64-hex page hash as its 32 bytes; anything else folded."""
    if len(key) == 2 * gpucache.KEY_LEN:
        try:
            return bytes.fromhex(key)
        except ValueError:
            pass
    return hashlib.sha256(key.encode()).digest()


class GpucacheHiCacheStorage(HiCacheStorage):
    """HiCache L3 storage on a gpucached tier."""

    def __init__(self, storage_config: HiCacheStorageConfig, kwargs: Any = None) -> None:
        self.storage_config = storage_config
        extra = dict(storage_config.extra_config or {})
        self._extra = extra
        self._weight = weight_of(extra)
        if storage_config.is_mla_model:
            raise ValueError("GpucacheHiCacheStorage: MLA models are not supported yet")
        self._client = connect(extra)
        self.mem_pool_host = None
        self._ns: Optional[int] = None
        self._nbuf = 0
        self.stats = {"exists": 0, "hit_pages": 0, "get_pages": 0, "set_pages": 0,
                      "failed_pages": 0, "used_pages": 0}


    # ---- set-up ----

    def register_mem_pool_host(self, mem_pool_host: Any) -> None:
        super().register_mem_pool_host(mem_pool_host)
        buf = getattr(mem_pool_host, "kv_buffer", None)
        if buf is None:
            raise ValueError("GpucacheHiCacheStorage: the host pool has no kv_buffer")
        storage = buf.untyped_storage()
        self._client.register((storage.data_ptr(), storage.nbytes()))
        probe = mem_pool_host.get_page_buffer_meta(
            torch.arange(mem_pool_host.page_size, dtype=torch.int64))[0]
        self._nbuf = len(probe)
        if self._nbuf > _MAX_IOV:
            raise ValueError(f"GpucacheHiCacheStorage: a page of layout "
                             f"{mem_pool_host.layout} has {self._nbuf} pieces (max {_MAX_IOV}); "
                             "use --hicache-mem-layout page_first")
        c = self.storage_config
        model = self._extra.get("model_fingerprint") or c.model_name or ""
        desc = (f"model={model};tp={c.tp_rank}/{c.tp_size};pp={c.pp_rank}/{c.pp_size};"
                f"dp={c.dp_rank};cp={c.attn_cp_rank}/{c.attn_cp_size};"
                f"split_heads={c.should_split_heads}")
        p = mem_pool_host
        layout = (f"{p.layout};heads={getattr(p, 'head_num', '')};"
                  f"head={getattr(p, 'head_dim', '')};layers={getattr(p, 'layer_num', '')}")
        self._ns, self.namespace_desc = gpucache.layout_namespace(
            desc, str(p.dtype), p.page_size, "all", c.tp_rank, c.pp_rank, layout,
            engine="sglang")
        if self._weight is not None:
            self._client.set_weight(self._ns, self._weight)

    def _require_pool(self) -> int:
        if self._ns is None:
            raise RuntimeError("GpucacheHiCacheStorage: no host pool registered")
        return self._ns

    def _page_iovs(self, n: int, host_indices: torch.Tensor) -> list[list[tuple[int, int]]]:
        ptrs, sizes = self.mem_pool_host.get_page_buffer_meta(host_indices)
        if len(ptrs) != n * self._nbuf:
            raise ValueError(f"{n} keys but {len(ptrs)} page buffers")
        nb = self._nbuf
        return [[(int(ptrs[i * nb + j]), int(sizes[i * nb + j])) for j in range(nb)]
                for i in range(n)]

    # ---- zero-copy interface (v1) ----

    def batch_exists(self, keys: List[str],
                     extra_info: Optional[HiCacheStorageExtraInfo] = None) -> int:
        if not keys:
            return 0
        ns = self._require_pool()
        self.stats["exists"] += 1
        try:
            n = self._client.lookup(ns, [page_key(k) for k in keys], prefetch=True)
        except GpucacheError as e:
            logger.warning("gpucache lookup failed: %s", e)
            return 0
        self.stats["hit_pages"] += n
        return n

    def batch_get_v1(self, keys: List[str], host_indices: torch.Tensor,
                     extra_info: Optional[HiCacheStorageExtraInfo] = None) -> List[bool]:
        if not keys:
            return []
        ns = self._require_pool()
        try:
            got = self._client.get(ns, [page_key(k) for k in keys],
                                   self._page_iovs(len(keys), host_indices))
            ok = [g is not None for g in got]
        except BatchError as e:
            ok = [s > 0 for s in e.statuses]
        except GpucacheError as e:
            logger.warning("gpucache get failed: %s", e)
            ok = [False] * len(keys)
        self.stats["get_pages"] += sum(ok)
        self.stats["failed_pages"] += len(ok) - sum(ok)
        # HiCache loads the prefix up to the first page that failed
        self.stats["used_pages"] += confirm_leading(self._client, ns, ok)
        return ok

    def batch_set_v1(self, keys: List[str], host_indices: torch.Tensor,
                     extra_info: Optional[HiCacheStorageExtraInfo] = None) -> List[bool]:
        if not keys:
            return []
        ns = self._require_pool()
        try:
            self._client.put(ns, [page_key(k) for k in keys],
                             self._page_iovs(len(keys), host_indices), if_absent=True)
            ok = [True] * len(keys)
        except BatchError as e:
            ok = [s == 0 for s in e.statuses]
        except GpucacheError as e:
            logger.warning("gpucache put failed: %s", e)
            ok = [False] * len(keys)
        self.stats["set_pages"] += sum(ok)
        return ok

    # ---- SGLang's older interface (copies through the caller's tensors) ----

    def _with_registered(self, tensors: list, fn: Any) -> Any:
        regs = []
        try:
            for t in tensors:
                regs.append(self._client.register(t))
            return fn()
        finally:
            for r in regs:
                r.deregister()

    def get(self, key: str, target_location: Optional[Any] = None,
            target_sizes: Optional[Any] = None) -> torch.Tensor | None:
        if target_location is None:
            return None
        out = self.batch_get([key], [target_location])
        return out[0]

    def batch_get(self, keys: List[str], target_locations: Optional[Any] = None,
                  target_sizes: Optional[Any] = None) -> List[torch.Tensor | None]:
        if not keys or target_locations is None:
            return [None] * len(keys)
        ns = self._require_pool()
        tl = list(target_locations)
        try:
            got = self._with_registered(
                tl, lambda: self._client.get(ns, [page_key(k) for k in keys], tl))
        except GpucacheError as e:
            logger.warning("gpucache get failed: %s", e)
            return [None] * len(keys)
        return [t if g is not None else None for t, g in zip(tl, got)]

    def set(self, key: str, value: Optional[Any] = None, target_location: Optional[Any] = None,
            target_sizes: Optional[Any] = None) -> bool:
        return self.batch_set([key], [value])

    def batch_set(self, keys: List[str], values: Optional[Any] = None,
                  target_locations: Optional[Any] = None,
                  target_sizes: Optional[Any] = None) -> bool:
        if not keys or values is None:
            return False
        ns = self._require_pool()
        vals = [v.contiguous() for v in values]
        try:
            self._with_registered(
                vals, lambda: self._client.put(ns, [page_key(k) for k in keys], vals,
                                               if_absent=True))
        except GpucacheError as e:
            logger.warning("gpucache put failed: %s", e)
            return False
        return True

    def exists(self, key: str) -> bool:
        return self.batch_exists([key]) == 1

    def clear(self) -> bool:
        logger.warning("GpucacheHiCacheStorage.clear: gpucached has no bulk delete; "
                       "blocks age out by eviction")
        return False

    def get_stats(self) -> dict:
        return dict(self.stats)

    def close(self) -> None:
        self._client.close()
