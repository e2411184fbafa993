"""Fixtures of the vLLM suite: a local config.json of a tiny Llama, which
vLLM's ModelConfig reads instead of fetching a model from a hub."""

from __future__ import annotations

import json

import pytest
from test_vllm_connector import HEADS, LAYERS


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tinyllama")
    (d / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
        "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": HEADS,
        "num_hidden_layers": len(LAYERS), "vocab_size": 256, "max_position_embeddings": 512,
        "rms_norm_eps": 1e-5, "torch_dtype": "float32"}))
    return str(d)
