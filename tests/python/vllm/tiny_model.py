"""A tiny random-weight decoder (torch, CPU or CUDA) whose KV lives in
vLLM's paged per-layer layout ([num_blocks, 2, block, kv_heads, head]),
driven by vLLM's real Scheduler and the GpucacheConnector the way vLLM's
model runner drives a connector: start_load_kv before the forward,
wait_for_layer_load before each layer's attention, save_kv_layer after it,
wait_for_save at the end of the step.

Run as a script it is the "fresh process": ``python tiny_model.py
CONFIG.json`` prefills the prompt twice, once recomputing everything and
once loading the prefix from gpucached, decodes greedily, and prints JSON.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_vllm_connector as tv  # noqa: E402

VOCAB, HIDDEN, NLAYERS, HEADS, KV_HEADS, HEAD_DIM, FFN = 512, 1024, 2, 4, 2, 16, 4096
assert NLAYERS == len(tv.LAYERS) and KV_HEADS == tv.HEADS and HEAD_DIM == tv.HEAD


class TinyLM:
    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)

        def w(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=g) / math.sqrt(shape[0])

        self.emb = torch.randn(VOCAB, HIDDEN, generator=g)
        self.layers = [dict(wq=w(HIDDEN, HEADS * HEAD_DIM), wk=w(HIDDEN, KV_HEADS * HEAD_DIM),
                            wv=w(HIDDEN, KV_HEADS * HEAD_DIM), wo=w(HEADS * HEAD_DIM, HIDDEN),
                            w1=w(HIDDEN, FFN), w2=w(FFN, HIDDEN)) for _ in range(NLAYERS)]
        self.head = w(HIDDEN, VOCAB)

    @staticmethod
    def _norm(x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)

    @staticmethod
    def _rope(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        freq = 1.0 / (10000 ** (torch.arange(half, dtype=torch.float32) / half))
        ang = pos[:, None].float() * freq[None, :]
        cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
        a, b = x[..., :half], x[..., half:]
        return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)

    def forward(self, tokens: list[int], start: int, kv: dict[str, torch.Tensor],
                table: list[int], connector=None) -> torch.Tensor:
        """Compute tokens at positions start.. (the KV of positions < start
        is already in the pages); return the logits of the last one."""
        n = len(tokens)
        pos = torch.arange(start, start + n)
        bt = torch.tensor(table)
        x = self.emb[torch.tensor(tokens)]
        ctx = torch.arange(start + n)
        for name, p in zip(tv.LAYERS, self.layers):
            if connector is not None:
                connector.wait_for_layer_load(name)
            h = self._norm(x)
            q = self._rope((h @ p["wq"]).view(n, HEADS, HEAD_DIM), pos)
            k = self._rope((h @ p["wk"]).view(n, KV_HEADS, HEAD_DIM), pos)
            v = (h @ p["wv"]).view(n, KV_HEADS, HEAD_DIM)
            page = kv[name]
            page[bt[pos // tv.BLOCK], 0, pos % tv.BLOCK] = k
            page[bt[pos // tv.BLOCK], 1, pos % tv.BLOCK] = v
            K = page[bt[ctx // tv.BLOCK], 0, ctx % tv.BLOCK]  # [ctx, kvh, d]
            V = page[bt[ctx // tv.BLOCK], 1, ctx % tv.BLOCK]
            rep = HEADS // KV_HEADS
            K, V = K.repeat_interleave(rep, 1), V.repeat_interleave(rep, 1)
            s = torch.einsum("qhd,khd->hqk", q, K) / math.sqrt(HEAD_DIM)
            s = s.masked_fill(ctx[None, None, :] > pos[None, :, None], float("-inf"))
            o = torch.einsum("hqk,khd->qhd", s.softmax(-1), V).reshape(n, -1)
            x = x + o @ p["wo"]
            x = x + torch.relu(self._norm(x) @ p["w1"]) @ p["w2"]
            if connector is not None:
                connector.save_kv_layer(name, page, None)
        return (self._norm(x[-1:]) @ self.head)[0]


def generate(cfg, prompt: list[int], ndecode: int, use_connector: bool) -> dict:
    """One request: schedule it with vLLM's Scheduler, prefill (loading
    what gpucached has when use_connector), then decode greedily. Returns
    tokens, logits of each step, time to first token, tokens computed."""
    model = TinyLM()
    kv = tv.make_kv("blocks-first")
    sched = tv.make_scheduler(cfg)
    w = tv.worker(cfg, kv) if use_connector else None  # set-up, once per engine
    t0 = time.perf_counter()  # TTFT: from the request's arrival to its first token
    sched.add_request(tv.make_request("R", prompt))
    out = sched.schedule()
    computed = out.num_scheduled_tokens["R"]
    start = len(prompt) - computed
    table = list(out.scheduled_new_reqs[0].block_ids[0])
    if w is not None:
        w.bind_connector_metadata(out.kv_connector_metadata)
        w.start_load_kv(None)
    logits = model.forward(prompt[start:], start, kv, table, w)
    errors: set[int] = set()
    if w is not None:
        w.wait_for_save()
        errors = w.get_block_ids_with_load_errors()
        w.clear_connector_metadata()
    toks, all_logits = [int(logits.argmax())], [logits]
    ttft = time.perf_counter() - t0
    used = set(table)
    free = [b for b in range(tv.NUM_BLOCKS) if b not in used]
    seq = list(prompt) + toks
    for _ in range(ndecode - 1):
        if (len(seq) - 1) // tv.BLOCK >= len(table):
            table.append(free.pop(0))
        logits = model.forward([seq[-1]], len(seq) - 1, kv, table)
        toks.append(int(logits.argmax()))
        all_logits.append(logits)
        seq.append(toks[-1])
    res = {"tokens": toks, "logits": torch.stack(all_logits).tolist(), "ttft_s": ttft,
           "computed_prefill_tokens": computed, "load_errors": sorted(errors),
           "stats": dict(w.stats) if w is not None else {}}
    if w is not None:
        w.shutdown()
    if sched.connector is not None:
        sched.connector.shutdown()
    return res


def main() -> None:
    from types import SimpleNamespace

    args = json.loads(Path(sys.argv[1]).read_text())
    daemon = SimpleNamespace(url=args["url"],
                             tenant=lambda: (args["tenant"], bytes.fromhex(args["secret"])))
    cfg = tv.make_config(args["model_dir"], daemon, args["fingerprint"])
    plain = tv.make_config(args["model_dir"], daemon, connector=False)
    base = generate(plain, args["prompt"], args["ndecode"], use_connector=False)
    with_cache = generate(cfg, args["prompt"], args["ndecode"], use_connector=True)
    print("RESULT " + json.dumps({"recompute": base, "gpucache": with_cache}))


if __name__ == "__main__":
    main()
