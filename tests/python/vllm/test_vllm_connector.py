"""gpucache.connectors.vllm against the real vllm package (0.33.0) and a
live gpucached: built by vLLM's own factory from vLLM's config classes,
driven by vLLM's real Scheduler; paged KV in vLLM's per-layer layout goes
round trip bit-exact, block by block; a load from a killed daemon is
reported through get_block_ids_with_load_errors and vLLM's scheduler
turns it into recompute."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch
from vllm.config import CacheConfig, DeviceConfig, KVTransferConfig, ModelConfig, VllmConfig
from vllm.distributed.kv_transfer.kv_connector.factory import KVConnectorFactory
from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorRole
from vllm.sampling_params import SamplingParams
from vllm.utils.hashing import sha256_cbor
from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.kv_cache_interface import (
    FullAttentionSpec,
    KVCacheConfig,
    KVCacheGroupSpec,
    KVCacheTensor,
)
from vllm.v1.outputs import KVConnectorOutput, ModelRunnerOutput
from vllm.v1.request import Request
from vllm.v1.structured_output import StructuredOutputManager

from gpucache import metrics
from gpucache.connectors.vllm import GpucacheConnector, GpucacheConnectorMetadata

BLOCK = 16
NUM_BLOCKS = 64
HEADS, HEAD = 2, 16
LAYERS = [f"model.layers.{i}.self_attn.attn" for i in range(2)]

init_none_hash(sha256_cbor)


def make_config(model_dir: str, daemon, fingerprint: str = "tiny-test",
                connector: bool = True, load_async: bool = False,
                **more: Any) -> VllmConfig:
    tenant, secret = daemon.tenant()
    mc = ModelConfig(model=model_dir, skip_tokenizer_init=True, dtype="float32",
                     max_model_len=512)
    kvt = KVTransferConfig(
        kv_connector="GpucacheConnector",
        kv_connector_module_path="gpucache.connectors.vllm",
        kv_role="kv_both", kv_load_failure_policy="recompute",
        kv_connector_extra_config={"url": daemon.url, "tenant": tenant,
                                   "secret_hex": secret.hex(),
                                   "model_fingerprint": fingerprint,
                                   "load_async": load_async, **more})
    cfg = VllmConfig(model_config=mc, cache_config=CacheConfig(block_size=BLOCK),
                     device_config=DeviceConfig(device="cpu"),
                     kv_transfer_config=kvt if connector else None)
    cfg.cache_config.num_gpu_blocks = NUM_BLOCKS
    return cfg


def make_kv_config() -> KVCacheConfig:
    spec = FullAttentionSpec(block_size=BLOCK, num_kv_heads=HEADS, head_size=HEAD,
                             dtype=torch.float32)
    size = spec.page_size_bytes * NUM_BLOCKS
    return KVCacheConfig(
        num_blocks=NUM_BLOCKS,
        kv_cache_tensors=[KVCacheTensor(size=size, layers=[n], layer_stride=0,
                                        block_stride=spec.page_size_bytes) for n in LAYERS],
        kv_cache_groups=[KVCacheGroupSpec(layer_names=list(LAYERS), kv_cache_spec=spec)])


def make_kv(layout: str) -> dict[str, torch.Tensor]:
    """Zeroed paged KV per layer: 'blocks-first' is vLLM 0.33's standardized
    [B, 2, N, H, C]; 'kv-first' keeps K and V apart ([2, B, N, H, C])."""
    shape = (NUM_BLOCKS, 2, BLOCK, HEADS, HEAD)
    out = {}
    for n in LAYERS:
        if layout == "kv-first":
            t = torch.zeros((2, NUM_BLOCKS, BLOCK, HEADS, HEAD))
        else:
            t = torch.zeros(shape)
        out[n] = t
    return out


def block_of(kv: torch.Tensor, b: int) -> torch.Tensor:
    return kv[b] if kv.shape[0] == NUM_BLOCKS else kv[:, b]


def make_scheduler(cfg: VllmConfig) -> Scheduler:
    return Scheduler(vllm_config=cfg, kv_cache_config=make_kv_config(),
                     structured_output_manager=StructuredOutputManager(cfg),
                     block_size=BLOCK)


def make_request(rid: str, tokens: list[int]) -> Request:
    return Request(request_id=rid, prompt_token_ids=tokens,
                   sampling_params=SamplingParams(max_tokens=4), pooling_params=None,
                   block_hasher=get_request_block_hasher(BLOCK, sha256_cbor))


def worker(cfg: VllmConfig, kv: dict[str, torch.Tensor]) -> GpucacheConnector:
    w = KVConnectorFactory.create_connector(cfg, KVConnectorRole.WORKER, make_kv_config())
    assert isinstance(w, GpucacheConnector)
    w.register_kv_caches(kv)
    return w


def run_step(w: GpucacheConnector, meta, kv: dict[str, torch.Tensor], compute=None) -> set[int]:
    """What vLLM's model runner does around one forward pass."""
    w.bind_connector_metadata(meta)
    w.start_load_kv(None)
    for n in LAYERS:
        w.wait_for_layer_load(n)
        if compute is not None:
            compute(n)  # the layer's attention writes its new KV
        w.save_kv_layer(n, kv[n], None)
    w.wait_for_save()
    errors = w.get_block_ids_with_load_errors()
    w.clear_connector_metadata()
    return errors


PROMPT = list(range(1, 51))  # 50 tokens: 3 full blocks, the last one partial


def prefill_and_save(cfg, layout, seed):
    """Process 1: prefill PROMPT (random KV stands in for the model's) and
    save its full blocks through the connector. Returns the saved blocks."""
    sched = make_scheduler(cfg)
    assert isinstance(sched.connector, GpucacheConnector)  # vLLM loaded ours
    kv = make_kv(layout)
    w = worker(cfg, kv)
    req = make_request("A", PROMPT)
    sched.add_request(req)
    out = sched.schedule()
    assert out.num_scheduled_tokens["A"] == len(PROMPT)  # nothing cached yet
    meta = out.kv_connector_metadata
    assert isinstance(meta, GpucacheConnectorMetadata) and not meta.loads
    ids = out.scheduled_new_reqs[0].block_ids[0]
    gen = torch.Generator().manual_seed(seed)

    def compute(n):
        for b in ids:
            block_of(kv[n], b).copy_(torch.randn(block_of(kv[n], b).shape, generator=gen))

    assert run_step(w, meta, kv, compute) == set()
    assert w.stats["saved_blocks"] == 3 * len(LAYERS)
    saved = {n: [block_of(kv[n], b).clone() for b in ids[:3]] for n in LAYERS}
    w.shutdown()
    sched.connector.shutdown()
    return saved


@pytest.mark.parametrize("layout", ["blocks-first", "kv-first"])
def test_round_trip_through_scheduler_bit_exact(daemon, model_dir, layout):
    cfg = make_config(model_dir, daemon, f"tiny-{layout}")
    saved = prefill_and_save(cfg, layout, seed=1)

    # process 2: fresh scheduler, fresh (zero) KV pages
    sched = make_scheduler(cfg)
    kv = make_kv(layout)
    w = worker(cfg, kv)
    sched.add_request(make_request("B", PROMPT))
    out = sched.schedule()
    # 48 tokens come from gpucached; vLLM computes the last 2 only
    assert out.num_scheduled_tokens["B"] == len(PROMPT) - 3 * BLOCK
    # a load within the step: vLLM's model runner then calls start_load_kv
    # before the forward, so wait_for_layer_load finds every layer's GET
    assert out.has_sync_kv_loads
    meta = out.kv_connector_metadata
    assert [len(t.block_ids) for t in meta.loads] == [3]
    ids = meta.loads[0].block_ids
    assert run_step(w, meta, kv) == set()
    for n in LAYERS:
        for i, b in enumerate(ids):
            assert torch.equal(block_of(kv[n], b), saved[n][i]), (n, i)
    assert w.stats["loaded_blocks"] == 3 * len(LAYERS)
    assert w.stats["loaded_tokens"] == 3 * BLOCK
    # the funnel's last stage: every loaded block was used, in every layer
    assert w.stats["used_blocks"] == 3 * len(LAYERS)
    used = metrics.total(metrics.stat(daemon.metrics_addr),
                         "gpucache_tenant_used_blocks_total")
    assert used >= 3 * len(LAYERS)
    # another model (fingerprint) with the same tokens finds nothing
    other = make_scheduler(make_config(model_dir, daemon, "another-model"))
    other.add_request(make_request("C", PROMPT))
    assert other.schedule().num_scheduled_tokens["C"] == len(PROMPT)
    for c in (w, sched.connector, other.connector):
        c.shutdown()


def test_weight_set_on_every_layer_namespace(daemon, model_dir):
    name = "gpucache_requests_total"
    before = metrics.total(metrics.stat(daemon.metrics_addr), name, op="weight")
    cfg = make_config(model_dir, daemon, "tiny-weight", weight=3)
    w = worker(cfg, make_kv("blocks-first"))
    after = metrics.total(metrics.stat(daemon.metrics_addr), name, op="weight")
    assert after - before == len(LAYERS) * w._client.shards
    w.shutdown()
    with pytest.raises(ValueError):
        worker(make_config(model_dir, daemon, "tiny-weight", weight=9), make_kv("blocks-first"))


def test_async_load_through_scheduler_bit_exact(daemon, model_dir):
    cfg = make_config(model_dir, daemon, "tiny-async", load_async=True)
    saved = prefill_and_save(cfg, "blocks-first", seed=4)

    sched = make_scheduler(cfg)
    kv = make_kv("blocks-first")
    w = worker(cfg, kv)
    sched.add_request(make_request("B", PROMPT))
    out = sched.schedule()
    # the request waits outside the batch while its blocks load
    assert "B" not in out.num_scheduled_tokens and not out.has_sync_kv_loads
    meta = out.kv_connector_metadata
    assert [len(t.block_ids) for t in meta.loads] == [3] and meta.loads[0].async_load
    ids = meta.loads[0].block_ids
    w.bind_connector_metadata(meta)
    w.start_load_kv(None)
    w.wait_for_save()
    recving: set[str] = set()
    for _ in range(1000):
        _, r = w.get_finished(set())
        recving |= r or set()
        if recving:
            break
        time.sleep(0.01)
    assert recving == {"B"}
    assert w.get_block_ids_with_load_errors() == set()
    assert w.stats["used_blocks"] == 3 * len(LAYERS)
    w.clear_connector_metadata()
    for n in LAYERS:
        for i, b in enumerate(ids):
            assert torch.equal(block_of(kv[n], b), saved[n][i]), (n, i)
    # vLLM's scheduler takes the report and schedules only the 2 tokens left
    mro = ModelRunnerOutput(req_ids=[], req_id_to_index={},
                            kv_connector_output=KVConnectorOutput(finished_recving={"B"}))
    sched.update_from_output(out, mro)
    out2 = sched.schedule()
    assert out2.num_scheduled_tokens["B"] == len(PROMPT) - 3 * BLOCK
    assert not out2.kv_connector_metadata.loads  # loaded once, not again
    for c in (w, sched.connector):
        c.shutdown()


def test_hybrid_model_refused(daemon, model_dir):
    cfg = make_config(model_dir, daemon)
    kvc = make_kv_config()
    swa = FullAttentionSpec(block_size=BLOCK, num_kv_heads=HEADS, head_size=HEAD,
                            dtype=torch.float32)
    kvc.kv_cache_groups.append(KVCacheGroupSpec(layer_names=["x"], kv_cache_spec=swa))
    with pytest.raises(ValueError, match="hybrid"):
        KVConnectorFactory.create_connector(cfg, KVConnectorRole.SCHEDULER, kvc)


def test_failed_load_is_reported_and_recomputed(tmp_path, model_dir):
    from gpucache.testing import Daemon

    d = Daemon(tmp_path / "gpucached").start()
    cfg = make_config(model_dir, d, "tiny-kill")
    prefill_and_save(cfg, "blocks-first", seed=2)

    sched = make_scheduler(cfg)
    kv = make_kv("blocks-first")
    w = worker(cfg, kv)
    sched.add_request(make_request("B", PROMPT))
    out = sched.schedule()
    assert out.num_scheduled_tokens["B"] == len(PROMPT) - 3 * BLOCK
    meta = out.kv_connector_metadata
    ids = meta.loads[0].block_ids
    d.kill()  # the daemon dies between the lookup and the load
    errors = run_step(w, meta, kv)
    assert errors == set(ids)
    assert w.stats["failed_load_blocks"] == 3 * len(LAYERS)
    assert w.stats["used_blocks"] == 0  # nothing loaded: nothing confirmed
    # vLLM's own load-error path: the scheduler rolls the request back
    req = sched.requests["B"]
    mro = ModelRunnerOutput(req_ids=["B"], req_id_to_index={"B": 0}, sampled_token_ids=[[]],
                            kv_connector_output=KVConnectorOutput(invalid_block_ids=errors))
    sched.update_from_output(out, mro)
    assert req.num_computed_tokens == 0
    out2 = sched.schedule()
    assert out2.num_scheduled_tokens["B"] == len(PROMPT)  # recomputed in full
    assert not out2.kv_connector_metadata.loads
    w._client.close()


def test_failed_async_load_is_reported_and_recomputed(tmp_path, model_dir):
    from gpucache.testing import Daemon

    d = Daemon(tmp_path / "gpucached").start()
    cfg = make_config(model_dir, d, "tiny-kill-async", load_async=True)
    prefill_and_save(cfg, "blocks-first", seed=5)

    sched = make_scheduler(cfg)
    w = worker(cfg, make_kv("blocks-first"))
    sched.add_request(make_request("B", PROMPT))
    out = sched.schedule()
    assert "B" not in out.num_scheduled_tokens
    meta = out.kv_connector_metadata
    ids = meta.loads[0].block_ids
    d.kill()
    w.bind_connector_metadata(meta)
    w.start_load_kv(None)
    w.wait_for_save()
    _, recving = w.get_finished(set())
    for _ in range(1000):
        if recving:
            break
        time.sleep(0.01)
        _, recving = w.get_finished(set())
    # finished (so vLLM releases it) and its blocks reported in the same pass
    assert recving == {"B"}
    errors = w.get_block_ids_with_load_errors()
    assert errors == set(ids)
    w.clear_connector_metadata()
    mro = ModelRunnerOutput(req_ids=[], req_id_to_index={},
                            kv_connector_output=KVConnectorOutput(
                                finished_recving={"B"}, invalid_block_ids=errors))
    sched.update_from_output(out, mro)
    out2 = sched.schedule()
    assert out2.num_scheduled_tokens["B"] == len(PROMPT)  # recomputed in full
    w._client.close()


def test_per_process_hash_seed_refused(daemon, model_dir, monkeypatch):
    cfg = make_config(model_dir, daemon)
    cfg.cache_config.prefix_caching_hash_algo = "xxhash"
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    with pytest.raises(ValueError, match="PYTHONHASHSEED"):
        KVConnectorFactory.create_connector(cfg, KVConnectorRole.SCHEDULER, make_kv_config())
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    KVConnectorFactory.create_connector(cfg, KVConnectorRole.SCHEDULER,
                                        make_kv_config()).shutdown()


def test_block_hashes_checked_across_processes(daemon, model_dir, monkeypatch):
    """The start-up self-test runs two processes: equal hashes pass, and a
    probe that gives another hash (what a per-process seed does) is
    refused with the reason."""
    import gpucache.connectors.vllm as gv

    cfg = make_config(model_dir, daemon)
    cfg.cache_config.prefix_caching_hash_algo = "sha256"
    gv._keys_checked.discard("sha256")
    KVConnectorFactory.create_connector(cfg, KVConnectorRole.SCHEDULER,
                                        make_kv_config()).shutdown()
    assert "sha256" in gv._keys_checked
    gv._keys_checked.discard("sha256")
    monkeypatch.setattr(gv, "_KEYS_PROBE", "import os; print(os.getpid())")
    with pytest.raises(ValueError, match="differ between two processes"):
        KVConnectorFactory.create_connector(cfg, KVConnectorRole.SCHEDULER, make_kv_config())


def test_used_blocks_are_the_leading_loaded_ones():
    """What counts as used: per request, the blocks before its first
    failed one (vLLM recomputes from there), times the layers."""
    from types import SimpleNamespace

    sent = []
    fake = SimpleNamespace(
        _layouts={n: None for n in LAYERS}, _layer_ns={n: 7 for n in LAYERS},
        _client=SimpleNamespace(confirm_used=lambda ns, n: sent.append((ns, n))),
        stats={"used_blocks": 0})
    GpucacheConnector._confirm_used(fake, [[1, 2, 3, 4], [9, 10], [20]], {3, 20})
    assert sent == [(7, (2 + 2 + 0) * len(LAYERS))]
    assert fake.stats["used_blocks"] == 8
    GpucacheConnector._confirm_used(fake, [[5]], {5})  # nothing used: no message
    assert len(sent) == 1
