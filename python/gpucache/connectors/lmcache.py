"""GPUCache as an LMCache remote storage plugin (a ``RemoteConnector``).

Tested against lmcache 0.5.6 (PyPI), on CPU. Loaded through LMCache's
remote storage plugin framework, with no change to LMCache::

    remote_url: "plugin://gpucache"
    remote_storage_plugins: ["gpucache"]
    extra_config:
      remote_storage_plugin.gpucache.module_path: gpucache.connectors.lmcache
      remote_storage_plugin.gpucache.class_name: GpucacheConnector
      remote_storage_plugin.gpucache.config: /var/lib/gpucache/gpucached.conf

Other ``remote_storage_plugin.gpucache.*`` keys: ``url``, ``tenant``,
``secret`` / ``secret_hex``, ``host``, ``timeout_ms``, ``weight`` (0..8: what
these blocks are worth a flash rewrite, set on each namespace when first
used; a failure to set it is logged, never raised; docs/cache-policy.md).

What maps to what:

- key: LMCache's chunk hash (``CacheEngineKey.chunk_hash``, an integer)
  as 32 little-endian bytes; the namespace is every other field of the key
  (model, world size, worker id, dtype, tags) and the engine's chunk
  shapes, dtypes and memory format, so two models, ranks or layouts never
  alias; the tenant comes from the connection.
- the value is the memory object's bytes, moved straight in and out of
  LMCache's registered CPU buffer (no copy, no header): a shorter value is
  a partial last chunk, reshaped with LMCache's own
  ``reshape_partial_chunk``.
- exists / batched_contains / batched_async_contains: one LOOKUP (longest
  present prefix); get / batched_get: one batched GET; put / batched_put:
  one batched PUT; remove_sync: DELETE. ``list`` is not offered by
  gpucached and answers an empty list.
- a failed get answers None (a miss), never a partly written object.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, List, Optional

from lmcache.utils import CacheEngineKey
from lmcache.v1.memory_management import MemoryObj
from lmcache.v1.storage_backend.connector.base_connector import RemoteConnector

import gpucache
from gpucache.connectors import confirm_leading, connect, weight_of
from gpucache.errors import BatchError, GpucacheError

logger = logging.getLogger("gpucache.connectors.lmcache")

TESTED_LMCACHE = "0.5.6"


def chunk_key(key: CacheEngineKey) -> bytes:
    """LMCache's chunk hash as 32 bytes, as it is."""
    return (int(key.chunk_hash) & ((1 << 256) - 1)).to_bytes(32, "little")


class GpucacheConnector(RemoteConnector):
    """LMCache remote connector backed by a gpucached tier."""

    def __init__(self, loop: asyncio.AbstractEventLoop, local_cpu_backend: Any,
                 config: Any, plugin_name: Optional[str] = None) -> None:
        super().__init__(local_cpu_backend.config, local_cpu_backend.metadata)
        self.loop = loop
        self.local_cpu_backend = local_cpu_backend
        extra = (config.extra_config if config is not None else None) or {}
        prefix = f"remote_storage_plugin.{plugin_name or 'gpucache'}."
        opts = {k[len(prefix):]: v for k, v in extra.items() if k.startswith(prefix)}
        self._weight = weight_of(opts)
        self._client = connect(opts)
        self._ns: dict[tuple, int] = {}
        buf = getattr(getattr(local_cpu_backend, "memory_allocator", None), "buffer", None)
        if buf is not None and hasattr(buf, "data_ptr"):
            storage = buf.untyped_storage()
            self._client.register((storage.data_ptr(), storage.nbytes()))
        self._layout = (f"shapes={[tuple(s) for s in self.meta_shapes]};"
                        f"dtypes={[str(d) for d in self.meta_dtypes]};fmt={self.meta_fmt}")
        self.stats = {"get": 0, "hit": 0, "put": 0, "failed": 0, "used": 0}


    # ---- keys, namespaces, memory ----

    def namespace(self, key: CacheEngineKey) -> int:
        ident = (key.model_name, key.world_size, key.worker_id, str(key.dtype), key.tags)
        ns = self._ns.get(ident)
        if ns is None:
            desc = (f"model={key.model_name};world={key.world_size};worker={key.worker_id};"
                    f"tags={key.tags}")
            ns, _ = gpucache.layout_namespace(desc, str(key.dtype), 0, "all", key.worker_id,
                                              0, self._layout, engine="lmcache")
            if self._weight is not None:
                try:
                    self._client.set_weight(ns, self._weight)
                except GpucacheError as e:  # a hint: never fails the data path
                    logger.warning("gpucache: weight %d not set on a namespace: %s",
                                self._weight, e)
            self._ns[ident] = ns
        return ns

    def _groups(self, keys: List[CacheEngineKey]) -> dict[int, list[int]]:
        """Indices of keys, by namespace, in order."""
        out: dict[int, list[int]] = {}
        for i, k in enumerate(keys):
            out.setdefault(self.namespace(k), []).append(i)
        return out

    def _buf(self, obj: MemoryObj) -> tuple[int, int]:
        raw = obj.raw_data
        n = len(obj.byte_array)
        addr = raw.data_ptr()
        try:
            self._client._region_of(addr, n)
        except ValueError:  # outside the allocator's buffer: register it
            self._client.register((addr, n))
        return addr, n

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await self.loop.run_in_executor(None, fn, *args)

    # ---- contains ----

    def _prefix(self, keys: List[CacheEngineKey]) -> int:
        """How many leading keys are present (one LOOKUP per namespace run)."""
        if not keys:
            return 0
        n = 0
        while n < len(keys):
            ns = self.namespace(keys[n])
            run = n
            while run < len(keys) and self.namespace(keys[run]) == ns:
                run += 1
            try:
                got = self._client.lookup(ns, [chunk_key(k) for k in keys[n:run]],
                                          prefetch=True)
            except GpucacheError as e:
                logger.warning("gpucache lookup failed: %s", e)
                return n
            n += got
            if n < run:
                return n
        return n

    def exists_sync(self, key: CacheEngineKey) -> bool:
        return self._prefix([key]) == 1

    async def exists(self, key: CacheEngineKey) -> bool:
        return await self._run(self.exists_sync, key)

    def support_batched_contains(self) -> bool:
        return True

    def batched_contains(self, keys: List[CacheEngineKey]) -> int:
        return self._prefix(list(keys))

    def support_batched_async_contains(self) -> bool:
        return True

    async def batched_async_contains(self, lookup_id: str, keys: List[CacheEngineKey],
                                     pin: bool = False) -> int:
        return await self._run(self._prefix, list(keys))

    # ---- get ----

    def _get_many(self, keys: List[CacheEngineKey]) -> List[Optional[MemoryObj]]:
        objs: List[Optional[MemoryObj]] = []
        for _ in keys:
            objs.append(self.local_cpu_backend.allocate(self.meta_shapes, self.meta_dtypes,
                                                        self.meta_fmt))
        got: List[Optional[int]] = [None] * len(keys)
        for ns, idx in self._groups(keys).items():
            idx = [i for i in idx if objs[i] is not None]
            if not idx:
                continue
            try:
                res = self._client.get(ns, [chunk_key(keys[i]) for i in idx],
                                       [self._buf(objs[i]) for i in idx])
            except BatchError as e:
                res = [s if s > 0 else None for s in e.statuses]
            except GpucacheError as e:
                logger.warning("gpucache get failed: %s", e)
                res = [None] * len(idx)
            for i, r in zip(idx, res):
                got[i] = r
            # LMCache uses the chunks of a prefix up to the first miss
            self.stats["used"] += confirm_leading(self._client, ns,
                                                  [r is not None for r in res])
        out: List[Optional[MemoryObj]] = []
        for obj, n in zip(objs, got):
            self.stats["get"] += 1
            if obj is None or n is None:
                if obj is not None:
                    obj.ref_count_down()
                out.append(None)
                continue
            try:
                out.append(self.reshape_partial_chunk(obj, n))
                self.stats["hit"] += 1
            except ValueError as e:  # a length that is no chunk: never use it
                logger.warning("gpucache: bad chunk length: %s", e)
                obj.ref_count_down()
                self.stats["failed"] += 1
                out.append(None)
        return out

    async def get(self, key: CacheEngineKey) -> Optional[MemoryObj]:
        return (await self._run(self._get_many, [key]))[0]

    def support_batched_get(self) -> bool:
        return True

    async def batched_get(self, keys: List[CacheEngineKey]) -> List[Optional[MemoryObj]]:
        return await self._run(self._get_many, list(keys))

    # ---- put ----

    def _put_many(self, keys: List[CacheEngineKey], objs: List[MemoryObj]) -> None:
        for ns, idx in self._groups(keys).items():
            try:
                self._client.put(ns, [chunk_key(keys[i]) for i in idx],
                                 [self._buf(objs[i]) for i in idx], if_absent=True)
                self.stats["put"] += len(idx)
            except GpucacheError as e:
                logger.warning("gpucache put failed: %s", e)
                self.stats["failed"] += len(idx)
                raise

    async def put(self, key: CacheEngineKey, memory_obj: MemoryObj) -> None:
        await self._run(self._put_many, [key], [memory_obj])

    def support_batched_put(self) -> bool:
        return True

    async def batched_put(self, keys: List[CacheEngineKey], memory_objs: List[MemoryObj]) -> None:
        await self._run(self._put_many, list(keys), list(memory_objs))

    # ---- the rest ----

    def remove_sync(self, key: CacheEngineKey) -> bool:
        try:
            return self._client.delete(self.namespace(key), [chunk_key(key)]) == [0]
        except GpucacheError:
            return False

    async def list(self) -> List[str]:
        return []

    async def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"GpucacheConnector({self._client.url})"
