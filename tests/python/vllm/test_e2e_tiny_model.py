"""End to end on CPU without vLLM's model runner: a tiny random-weight
transformer with its KV in vLLM's paged layout prefills a long prompt and
saves its blocks through the connector; a fresh process loads the prefix
from gpucached instead of recomputing it and decodes greedily: same tokens,
same logits within float tolerance, the loaded tokens counted by the
connector and by gpucached's metrics. Prints TTFT with and without."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import test_vllm_connector as tv
import tiny_model
import torch

from gpucache import metrics

HERE = Path(__file__).resolve().parent
PROMPT_LEN, NDECODE = 480, 8


def test_prefix_loaded_in_fresh_process_decodes_the_same(daemon, model_dir, tmp_path):
    g = torch.Generator().manual_seed(7)
    prompt = torch.randint(0, tiny_model.VOCAB, (PROMPT_LEN,), generator=g).tolist()
    cfg = tv.make_config(model_dir, daemon, "tiny-e2e")
    first = tiny_model.generate(cfg, prompt, NDECODE, use_connector=True)
    assert first["computed_prefill_tokens"] == PROMPT_LEN  # nothing cached yet
    nblocks = PROMPT_LEN // tv.BLOCK
    assert first["stats"]["saved_blocks"] == nblocks * len(tv.LAYERS)

    hits0 = metrics.total(metrics.stat(daemon.metrics_addr), "gpucache_tenant_hits_total")
    tenant, secret = daemon.tenant()
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"url": daemon.url, "tenant": tenant, "secret": secret.hex(),
                                "model_dir": model_dir, "fingerprint": "tiny-e2e",
                                "prompt": prompt, "ndecode": NDECODE}))
    p = subprocess.run([sys.executable, str(HERE / "tiny_model.py"), str(args)],
                       capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.split("RESULT ", 1)[1])
    base, cached = res["recompute"], res["gpucache"]

    loaded = (PROMPT_LEN - 1) // tv.BLOCK * tv.BLOCK
    assert base["computed_prefill_tokens"] == PROMPT_LEN
    assert cached["computed_prefill_tokens"] == PROMPT_LEN - loaded
    assert cached["load_errors"] == []
    assert cached["stats"]["loaded_tokens"] == loaded
    assert cached["stats"]["loaded_blocks"] == loaded // tv.BLOCK * len(tv.LAYERS)
    hits1 = metrics.total(metrics.stat(daemon.metrics_addr), "gpucache_tenant_hits_total")
    assert hits1 - hits0 == loaded // tv.BLOCK * len(tv.LAYERS)

    for run in (base, cached):
        assert run["tokens"] == first["tokens"]
        torch.testing.assert_close(torch.tensor(run["logits"]), torch.tensor(first["logits"]),
                                   rtol=1e-4, atol=1e-4)
    print(f"\nE2E tiny model, {PROMPT_LEN}-token prompt: {loaded} prefill tokens loaded, "
          f"{PROMPT_LEN - loaded} computed; TTFT recompute {base['ttft_s'] * 1e3:.1f} ms, "
          f"with gpucached {cached['ttft_s'] * 1e3:.1f} ms")
