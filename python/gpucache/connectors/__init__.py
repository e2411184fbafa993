"""Inference-engine connectors, one module per engine (each imports its
engine, so import the one you use): ``gpucache.connectors.vllm``."""
