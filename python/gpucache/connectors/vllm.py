"""GPUCache as a vLLM v1 KV connector (``KVConnectorBase_V1``).

Tested against vllm 0.33.0 (the newest that installs from PyPI here; see
docs/integrations.md), on CPU. Loaded with no change to vLLM::

    --kv-transfer-config '{"kv_connector": "GpucacheConnector",
        "kv_connector_module_path": "gpucache.connectors.vllm",
        "kv_role": "kv_both", "kv_load_failure_policy": "recompute",
        "kv_connector_extra_config": {"config": "/var/lib/gpucache/gpucached.conf"}}'

``kv_connector_extra_config`` keys: ``config`` (a gpucached.conf: port and
secret), or ``url`` + ``tenant`` + ``secret`` / ``secret_hex``; optional
``host`` (default 127.0.0.1), ``model_fingerprint`` (default: model name,
revision and dtype), ``timeout_ms`` and ``weight`` (0..8, set on every
layer's namespace: what this model's blocks are worth a flash rewrite,
docs/cache-policy.md; default the tier's, 1).

What maps to what:

- keys: vLLM's own block hashes as they are (``request.block_hashes``:
  32-byte SHA-256 chains with ``sha256`` / ``sha256_cbor``; the hash of a
  block's last hash-block when the hash block is smaller than the KV
  block). Hashes of another length are folded to 32 bytes by SHA-256.
- namespaces: one per (model fingerprint, KV dtype, block tokens, layer
  name, TP rank of TP size, KV spec and layout); the tenant is added by
  gpucached from the authenticated connection. A layer name is unique
  across PP stages, so the PP rank needs no field of its own.
- scheduler: ``get_num_new_matched_tokens`` is a LOOKUP (with prefetch) of
  the prompt's block chain in every layer's namespace of every TP rank;
  the shortest present prefix counts, never the last prompt token.
  ``update_state_after_alloc`` records which pages the found blocks go to;
  ``build_connector_meta`` hands the worker that load plan and, for every
  scheduled request, the blocks that become full in this step (and are
  not known to be stored yet) to save.
- worker: ``register_kv_caches`` registers each KV tensor's storage once
  (no copies: a block's bytes go straight from and to the paged tensor,
  gathered as an iovec when K and V, or head groups, live apart);
  ``start_load_kv`` submits one batched GET per layer, asynchronously;
  ``wait_for_layer_load`` waits for that layer's; ``save_kv_layer``
  submits one batched PUT per layer as soon as its attention ran;
  ``wait_for_save`` waits for them all before the step ends, so no page
  is reused while a PUT reads it.
- a failed load (a miss after the LOOKUP, an error, a lost daemon) puts
  the block ids in ``get_block_ids_with_load_errors``: with
  ``kv_load_failure_policy="recompute"`` vLLM recomputes them; wrong KV is
  never kept. A failed save is logged and is a future miss.
- the hit funnel's last stage (``confirm_used``, docs/metrics.md): once
  every layer's GET of a load is done, the leading blocks of each request
  that loaded in every layer (what vLLM keeps; from the first failed
  block on it recomputes) count as used, one per block per layer, the
  tier's unit. One small message per step with loads (sync) or per
  request (async), against the first layer's namespace (so the tier's
  per-namespace ``used`` figure is the model's, there); a failure to
  send it is logged and changes nothing.

Loads, by default, finish within the step that needs them, layer by
layer (the scheduler marks the step ``has_sync_kv_loads``, so the model
runner calls ``start_load_kv`` before the forward and each layer waits
only for its own GET). With ``"load_async": true`` in the extra config,
``get_num_new_matched_tokens`` answers ``load_kv_async=True``: the request
waits outside the batch while its GETs run, ``get_finished`` reports it
once every layer's GET is done, and only then is it scheduled.

Hybrid models (more than one KV cache group: sliding window beside full
attention, Mamba) and MLA are refused at start-up with a clear error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from vllm.distributed.kv_transfer.kv_connector.v1.base import (
    KVConnectorBase_V1,
    KVConnectorMetadata,
    KVConnectorRole,
)

import gpucache
from gpucache.connectors import connect, weight_of
from gpucache.errors import GpucacheError

if TYPE_CHECKING:
    from vllm.config import VllmConfig
    from vllm.forward_context import ForwardContext
    from vllm.v1.attention.backend import AttentionMetadata
    from vllm.v1.core.kv_cache_manager import KVCacheBlocks
    from vllm.v1.core.sched.output import SchedulerOutput
    from vllm.v1.kv_cache_interface import KVCacheConfig
    from vllm.v1.request import Request

logger = logging.getLogger("gpucache.connectors.vllm")

TESTED_VLLM = "0.33.0"


@dataclass
class BlockTransfer:
    """Blocks of one request to move: vLLM page ids and their keys."""

    req_id: str
    block_ids: list[int]
    keys: list[bytes]
    async_load: bool = False


@dataclass
class GpucacheConnectorMetadata(KVConnectorMetadata):
    loads: list[BlockTransfer] = field(default_factory=list)
    saves: list[BlockTransfer] = field(default_factory=list)


@dataclass
class _ReqState:
    request: Any
    block_ids: list[int] = field(default_factory=list)
    stored_blocks: int = 0  # leading blocks known to be in gpucached
    local_tokens: int = 0  # tokens vLLM had computed when it asked us
    load: BlockTransfer | None = None
    load_sent: bool = False  # an asynchronous load was handed to the worker


def _key32(h: Any) -> bytes:
    b = bytes(h)
    return b if len(b) == gpucache.KEY_LEN else hashlib.sha256(b).digest()


@dataclass
class _LayerLayout:
    """Where block b of one layer's paged tensor lies: for each segment s,
    ``base + seg_off[s] + b * block_stride``, ``page`` bytes long."""

    base: int
    seg_off: list[int]
    block_stride: int
    page: int

    def iov(self, block: int) -> list[tuple[int, int]]:
        start = self.base + block * self.block_stride
        return [(start + off, self.page) for off in self.seg_off]


def layer_layout(kv: torch.Tensor, num_blocks: int) -> _LayerLayout:
    """Describe a standardized per-layer KV view (blocks at dim 0, vLLM
    0.33: [B, H, N, C], or [2, B, ...] of older layouts) as byte segments
    of each block, without copying anything."""
    bdim = 0
    if kv.shape[0] != num_blocks and kv.ndim > 1 and kv.shape[1] == num_blocks:
        bdim = 1  # [2, num_blocks, ...]: K and V apart
    if kv.shape[bdim] != num_blocks:
        raise ValueError(
            f"KV tensor {tuple(kv.shape)} has no dim of {num_blocks} blocks "
            "(kernel blocks smaller than the manager's are not supported)"
        )
    el = kv.element_size()
    bstride = kv.stride(bdim) * el
    others = [d for d in range(kv.ndim) if d != bdim]
    outer = [d for d in others if kv.stride(d) * el >= bstride and kv.shape[d] > 1]
    inner = [d for d in others if d not in outer]
    page = el
    for d in inner:
        page *= kv.shape[d]
    span = el + sum((kv.shape[d] - 1) * kv.stride(d) * el for d in inner)
    if span != page:
        raise ValueError(f"KV tensor {tuple(kv.shape)} / {kv.stride()}: a block is not dense")
    offs = [0]
    for d in outer:
        offs = [o + i * kv.stride(d) * el for o in offs for i in range(kv.shape[d])]
    if len(offs) > 64:
        raise ValueError(f"a block of {tuple(kv.shape)} has {len(offs)} pieces (max 64)")
    return _LayerLayout(kv.data_ptr(), sorted(offs), bstride, page)


# A second Python process computes vLLM's block hashes of fixed tokens
# the way a fresh vLLM process does; they must equal this process's.
_KEYS_PROBE = """
import sys
from vllm.utils.hashing import get_hash_fn_by_name
from vllm.v1.core import kv_cache_utils as u
fn = get_hash_fn_by_name(sys.argv[1])
u.init_none_hash(fn)
h = None
for block in ((1, 2, 3, 4), (5, 6, 7, 8)):
    h = u.hash_block_tokens(fn, h, block)
sys.stdout.write(bytes(h).hex())
"""
_keys_checked: set[str] = set()


def _check_keys_across_processes(vllm_config: VllmConfig) -> None:
    """Start-up self-test (once per process and hash algorithm): two fresh
    processes, started as vLLM starts its own (this interpreter, this
    environment), must compute equal block hashes for equal tokens, or no
    engine process finds another's blocks (the field's most reported bug).
    Raises ValueError when they differ; logs and goes on when the probe
    cannot run. ``"self_test": false`` in the extra config skips it."""
    algo = str(getattr(vllm_config.cache_config, "prefix_caching_hash_algo", "sha256"))
    if algo in _keys_checked:
        return
    try:
        procs = [subprocess.Popen([sys.executable, "-c", _KEYS_PROBE, algo],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=dict(os.environ)) for _ in range(2)]
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=300)
            if p.returncode != 0:
                raise subprocess.SubprocessError(err.strip().splitlines()[-1:] or "failed")
            outs.append(out.strip())
    except (OSError, subprocess.SubprocessError) as e:
        logger.warning("GpucacheConnector: block-hash self-test could not run: %s", e)
        return
    if outs[0] != outs[1]:
        raise ValueError(
            f"GpucacheConnector: block hashes ({algo}) differ between two processes for "
            "the same tokens, so no other engine process would find this one's blocks: "
            "set PYTHONHASHSEED to one value everywhere, or use sha256 / sha256_cbor")
    _keys_checked.add(algo)
    logger.info("GpucacheConnector: block hashes (%s) agree across processes", algo)


class GpucacheConnector(KVConnectorBase_V1):
    """vLLM v1 KV connector backed by a gpucached tier."""

    def __init__(self, vllm_config: VllmConfig, role: KVConnectorRole,
                 kv_cache_config: KVCacheConfig | None = None) -> None:
        super().__init__(vllm_config=vllm_config, role=role, kv_cache_config=kv_cache_config)
        extra = dict(self._kv_transfer_config.kv_connector_extra_config or {})
        self._block_size = vllm_config.cache_config.block_size
        self._extra = extra
        self._weight = weight_of(extra)
        self._check_supported(kv_cache_config)
        self._check_reproducible_keys(vllm_config)
        if role == KVConnectorRole.SCHEDULER and extra.get("self_test", True):
            _check_keys_across_processes(vllm_config)
        self._layer_names = self._known_layers(kv_cache_config)
        hbs = getattr(kv_cache_config, "hash_block_size", None) or self._block_size
        if self._block_size % hbs:
            raise ValueError(f"block size {self._block_size} is not a multiple of hash "
                             f"block size {hbs}")
        self._hash_ratio = self._block_size // hbs
        pc = vllm_config.parallel_config
        self._tp_size = pc.tensor_parallel_size
        self._tp_rank = self._my_tp_rank() if role == KVConnectorRole.WORKER else 0
        self._ns_base = self._namespace_base(vllm_config, kv_cache_config)
        self._client = connect(extra)
        # scheduler side
        self._reqs: dict[str, _ReqState] = {}
        # worker side
        self._layouts: dict[str, _LayerLayout] = {}
        self._layer_ns: dict[str, int] = {}
        self._loads: dict[str, tuple[Any, list[int]]] = {}
        self._async_loads: dict[str, list[tuple[Any, list[int]]]] = {}
        self._load_async = bool(extra.get("load_async", False))
        self._saves: list[tuple[str, Any, list[int]]] = []
        self._failed: set[int] = set()
        self._sync_plan: list[list[int]] = []  # this step's loads, per request
        self._step_bad: set[int] = set()  # their blocks that failed in a layer
        self._lock = threading.Lock()
        self.stats = {"lookup_blocks": 0, "loaded_blocks": 0, "loaded_tokens": 0,
                      "saved_blocks": 0, "failed_load_blocks": 0, "failed_save_blocks": 0,
                      "used_blocks": 0}

    # ---------------- set-up ----------------

    @staticmethod
    def _check_supported(kv_cache_config: Any) -> None:
        if kv_cache_config is None:
            return
        groups = list(kv_cache_config.kv_cache_groups)
        if len(groups) > 1:
            raise ValueError(
                "GpucacheConnector: hybrid models (several KV cache groups, e.g. sliding "
                "window beside full attention) are not supported")
        for g in groups:
            name = type(g.kv_cache_spec).__name__
            if name not in ("FullAttentionSpec",):
                raise ValueError(f"GpucacheConnector: KV cache spec {name} is not supported "
                                 "(full attention only)")

    @staticmethod
    def _check_reproducible_keys(vllm_config: VllmConfig) -> None:
        """The configuration check (see _check_keys_across_processes for
        the measured one)."""
        """Start-up self-test: the block hashes must be equal in every
        process for equal tokens, or every lookup misses. vLLM seeds its
        non-cryptographic hashes per process unless PYTHONHASHSEED is set."""
        algo = getattr(vllm_config.cache_config, "prefix_caching_hash_algo", "sha256")
        if str(algo).startswith("xxhash") and os.environ.get("PYTHONHASHSEED") is None:
            raise ValueError(
                f"GpucacheConnector: prefix_caching_hash_algo={algo} gives block hashes "
                "that differ from process to process unless PYTHONHASHSEED is set: set "
                "it to the same value everywhere, or use sha256 / sha256_cbor")

    @staticmethod
    def _known_layers(kv_cache_config: Any) -> list[str]:
        if kv_cache_config is None:
            return []
        return [n for g in kv_cache_config.kv_cache_groups for n in g.layer_names]

    @staticmethod
    def _my_tp_rank() -> int:
        try:
            from vllm.distributed.parallel_state import get_tensor_model_parallel_rank

            return int(get_tensor_model_parallel_rank())
        except Exception:  # parallel state not initialized: one rank
            return 0

    def _namespace_base(self, vllm_config: VllmConfig, kv_cache_config: Any) -> str:
        mc = vllm_config.model_config
        fp = self._extra.get("model_fingerprint")
        if fp is None:
            fp = f"{getattr(mc, 'model', '')}@{getattr(mc, 'revision', None) or ''}"
        spec = ""
        if kv_cache_config is not None and kv_cache_config.kv_cache_groups:
            s = kv_cache_config.kv_cache_groups[0].kv_cache_spec
            spec = (f"{type(s).__name__}:heads={getattr(s, 'num_kv_heads', '')}"
                    f":head={getattr(s, 'head_size', '')}:page={s.page_size_bytes}")
        layout = getattr(kv_cache_config, "kv_cache_layout", None) or "default"
        return (f"{fp}|dtype={vllm_config.cache_config.cache_dtype}/{getattr(mc, 'dtype', '')}"
                f"|spec={spec}|layout={layout}")

    def namespace(self, layer: str, tp_rank: int | None = None) -> int:
        rank = self._tp_rank if tp_rank is None else tp_rank
        ns, _ = gpucache.layout_namespace(
            self._ns_base, "", self._block_size, layer, rank, 0,
            f"tp_size={self._tp_size}", engine="vllm")
        return ns


    def _keys(self, request: Any, nblocks: int) -> list[bytes]:
        hashes = request.block_hashes
        r = self._hash_ratio
        return [_key32(hashes[(i + 1) * r - 1]) for i in range(nblocks)]

    def _full_hashed_blocks(self, request: Any, ntokens: int) -> int:
        return min(ntokens // self._block_size, len(request.block_hashes) // self._hash_ratio)

    # ---------------- scheduler side ----------------

    def get_num_new_matched_tokens(self, request: Request,
                                   num_computed_tokens: int) -> tuple[int | None, bool]:
        st = self._reqs.setdefault(request.request_id, _ReqState(request))
        st.local_tokens = num_computed_tokens
        # never the last prompt token: vLLM must compute at least one
        n = self._full_hashed_blocks(request, request.num_prompt_tokens - 1)
        if n * self._block_size <= num_computed_tokens or not self._layer_names:
            return 0, False
        keys = self._keys(request, n)
        try:
            present = n
            for layer in self._layer_names:
                for rank in range(self._tp_size):
                    if present * self._block_size <= num_computed_tokens:
                        return 0, False
                    present = min(present, self._client.lookup(
                        self.namespace(layer, rank), keys[:present], prefetch=True))
        except GpucacheError as e:
            logger.warning("gpucache lookup failed, computing instead: %s", e)
            return 0, False
        self.stats["lookup_blocks"] += present
        st.stored_blocks = max(st.stored_blocks, present)
        if present * self._block_size <= num_computed_tokens:
            return 0, False
        return present * self._block_size - num_computed_tokens, self._load_async

    def update_state_after_alloc(self, request: Request, blocks: KVCacheBlocks,
                                 num_external_tokens: int) -> None:
        st = self._reqs.setdefault(request.request_id, _ReqState(request))
        if num_external_tokens <= 0 or st.load_sent:
            return
        ids = blocks.get_block_ids()[0]
        total = st.local_tokens + num_external_tokens
        first = st.local_tokens // self._block_size
        last = total // self._block_size
        keys = self._keys(request, last)
        st.load = BlockTransfer(request.request_id, list(ids[first:last]), keys[first:last],
                                self._load_async)

    def build_connector_meta(self, scheduler_output: SchedulerOutput) -> KVConnectorMetadata:
        meta = GpucacheConnectorMetadata()
        computed: dict[str, int] = {}
        for nr in scheduler_output.scheduled_new_reqs:
            st = self._reqs.get(nr.req_id)
            if st is None:
                continue
            st.block_ids = list(nr.block_ids[0])
            computed[nr.req_id] = nr.num_computed_tokens
        cr = scheduler_output.scheduled_cached_reqs
        resumed = getattr(cr, "resumed_req_ids", set()) or set()
        for i, rid in enumerate(cr.req_ids):
            st = self._reqs.get(rid)
            if st is None:
                continue
            new = cr.new_block_ids[i]
            if rid in resumed:
                st.block_ids = list(new[0]) if new else []
            elif new:
                st.block_ids.extend(new[0])
            computed[rid] = cr.num_computed_tokens[i]
        # loads: every planned one, also of requests that wait for it
        # (an asynchronous load runs while the request is not scheduled)
        for st in self._reqs.values():
            if st.load is not None:
                meta.loads.append(st.load)
                st.load_sent = st.load.async_load
                st.load = None
        for rid, ncomp in computed.items():
            st = self._reqs[rid]
            done = ncomp + scheduler_output.num_scheduled_tokens.get(rid, 0)
            nfull = min(self._full_hashed_blocks(st.request, done), len(st.block_ids))
            if nfull > st.stored_blocks:
                keys = self._keys(st.request, nfull)
                meta.saves.append(BlockTransfer(rid, st.block_ids[st.stored_blocks:nfull],
                                                keys[st.stored_blocks:nfull]))
                st.stored_blocks = nfull
        return meta

    def request_finished(self, request: Request,
                         block_ids: list[int]) -> tuple[bool, dict[str, Any] | None]:
        self._reqs.pop(request.request_id, None)
        return False, None

    # ---------------- worker side ----------------

    def register_kv_caches(self, kv_caches: dict[str, torch.Tensor]) -> None:
        num_blocks = self._kv_cache_config.num_blocks if self._kv_cache_config else None
        seen: set[int] = set()
        for name, kv in kv_caches.items():
            if num_blocks is None:
                num_blocks = kv.shape[0]
            lay = layer_layout(kv, num_blocks)
            storage = kv.untyped_storage()
            addr = storage.data_ptr()
            if addr not in seen:
                seen.add(addr)
                self._client.register((addr, storage.nbytes()))
            self._layouts[name] = lay
            self._layer_ns[name] = self.namespace(name)
        if self._weight is not None:
            for ns in set(self._layer_ns.values()):
                self._client.set_weight(ns, self._weight)
        if not self._layer_names:
            self._layer_names = list(kv_caches)

    def _iovs(self, layer: str, block_ids: list[int]) -> list[list[tuple[int, int]]]:
        lay = self._layouts[layer]
        return [lay.iov(b) for b in block_ids]

    def start_load_kv(self, forward_context: ForwardContext, **kwargs: Any) -> None:
        meta = self._get_connector_metadata()
        assert isinstance(meta, GpucacheConnectorMetadata)
        if not meta.loads:
            return
        for t in meta.loads:
            if t.async_load:
                self._start_async_load(t)
        sync = [t for t in meta.loads if not t.async_load]
        if not sync:
            return
        ids = [b for t in sync for b in t.block_ids]
        keys = [k for t in sync for k in t.keys]
        self._sync_plan = [list(t.block_ids) for t in sync]
        self._step_bad = set()
        for layer in self._layouts:
            try:
                req = self._client.get_async(self._layer_ns[layer], keys, self._iovs(layer, ids))
            except GpucacheError as e:
                logger.warning("gpucache load of %s failed: %s", layer, e)
                req = None
            self._loads[layer] = (req, ids)
        self.stats["loaded_tokens"] += len(ids) * self._block_size

    def _start_async_load(self, t: BlockTransfer) -> None:
        """One batched GET per layer for one request; get_finished reports
        the request once every layer's GET is done."""
        reqs = []
        for layer in self._layouts:
            try:
                req = self._client.get_async(self._layer_ns[layer], t.keys,
                                             self._iovs(layer, t.block_ids))
            except GpucacheError as e:
                logger.warning("gpucache load of %s failed: %s", layer, e)
                req = None
            reqs.append((req, list(t.block_ids)))
        self._async_loads[t.req_id] = reqs
        self.stats["loaded_tokens"] += len(t.block_ids) * self._block_size

    def _finish_async(self, reqs: list[tuple[Any, list[int]]]) -> None:
        all_bad: set[int] = set()
        for req, ids in reqs:
            bad = list(ids)
            if req is not None:
                try:
                    bad = [b for b, g in zip(ids, req.wait()) if g is None]
                except GpucacheError as e:
                    logger.warning("gpucache load failed: %s", e)
            self._failed.update(bad)
            all_bad.update(bad)
            self.stats["failed_load_blocks"] += len(bad)
            self.stats["loaded_blocks"] += len(ids) - len(bad)
        if reqs:
            self._confirm_used([reqs[0][1]], all_bad)

    def _confirm_used(self, plans: list[list[int]], bad: set[int]) -> None:
        """Tell the tier which loaded blocks vLLM uses: per request, the
        leading blocks that loaded in every layer, times the layers."""
        used = 0
        for ids in plans:
            for b in ids:
                if b in bad:
                    break
                used += 1
        n = used * len(self._layouts)
        if n == 0 or not self._layer_ns:
            return
        try:
            self._client.confirm_used(next(iter(self._layer_ns.values())), n)
            self.stats["used_blocks"] += n
        except GpucacheError as e:
            logger.warning("gpucache: confirming %d used blocks failed: %s", n, e)

    def _finish_load(self, layer: str) -> None:
        req, ids = self._loads.pop(layer, (None, []))
        if not ids:
            return
        bad: list[int] = list(ids)
        if req is not None:
            try:
                got = req.wait()
                bad = [b for b, g in zip(ids, got) if g is None]
            except GpucacheError as e:
                logger.warning("gpucache load of %s failed: %s", layer, e)
        if bad:
            self._failed.update(bad)
            self._step_bad.update(bad)
            self.stats["failed_load_blocks"] += len(bad)
        self.stats["loaded_blocks"] += len(ids) - len(bad)
        if not self._loads and self._sync_plan:  # every layer of the step done
            plan, self._sync_plan = self._sync_plan, []
            self._confirm_used(plan, self._step_bad)

    def wait_for_layer_load(self, layer_name: str) -> None:
        self._finish_load(layer_name)

    def save_kv_layer(self, layer_name: str, kv_layer: torch.Tensor,
                      attn_metadata: AttentionMetadata, **kwargs: Any) -> None:
        meta = self._get_connector_metadata()
        assert isinstance(meta, GpucacheConnectorMetadata)
        if not meta.saves or layer_name not in self._layouts:
            return
        ids = [b for t in meta.saves for b in t.block_ids]
        keys = [k for t in meta.saves for k in t.keys]
        try:
            req = self._client.put_async(self._layer_ns[layer_name], keys,
                                         self._iovs(layer_name, ids), if_absent=True)
        except GpucacheError as e:
            logger.warning("gpucache save of %s failed: %s", layer_name, e)
            self.stats["failed_save_blocks"] += len(ids)
            return
        self._saves.append((layer_name, req, ids))

    def wait_for_save(self) -> None:
        for layer in list(self._loads):
            self._finish_load(layer)
        saves, self._saves = self._saves, []
        for layer, req, ids in saves:
            try:
                req.wait()
                self.stats["saved_blocks"] += len(ids)
            except GpucacheError as e:
                logger.warning("gpucache save of %s failed: %s", layer, e)
                self.stats["failed_save_blocks"] += len(ids)

    def get_block_ids_with_load_errors(self) -> set[int]:
        for layer in list(self._loads):
            self._finish_load(layer)
        failed, self._failed = self._failed, set()
        return failed

    def get_finished(self, finished_req_ids: set[str]) -> tuple[set[str] | None,
                                                                set[str] | None]:
        """Requests whose asynchronous load is complete (their failed
        blocks, if any, are in get_block_ids_with_load_errors, which vLLM
        asks right after, in the same pass)."""
        done = set()
        for rid, reqs in list(self._async_loads.items()):
            if all(r is None or r.done() for r, _ in reqs):
                self._finish_async(reqs)
                del self._async_loads[rid]
                done.add(rid)
        return None, (done or None)

    def shutdown(self) -> None:
        self.wait_for_save()
        for reqs in self._async_loads.values():
            self._finish_async(reqs)
        self._async_loads.clear()
        self._client.close()
