"""Keys and namespaces.

A key is 32 bytes chosen by the client: an engine's own block hash taken as
it is (vLLM's SHA-256 chain, SGLang's 64-hex page hash), or gpc_key_chain's
SHA-256 chain of token ids. A namespace is a 64-bit id of (model
fingerprint, KV layout: dtype, block tokens, layer or layer group, parallel
rank, layout); the tenant is added by the server from the authenticated
connection, never by the client.
"""

from __future__ import annotations

import ctypes
from typing import Sequence

from . import _lib
from .errors import check


def key_chain(tokens: Sequence[int], parent: bytes | None = None, salt: bytes = b"") -> bytes:
    """gpc_key_chain: SHA-256(parent || u32 len(salt) || salt || u32 n ||
    n x u32 token), integers little-endian; no parent means 32 zero bytes."""
    if parent is not None and len(parent) != _lib.KEY_LEN:
        raise ValueError(f"parent key is {len(parent)} bytes, not {_lib.KEY_LEN}")
    toks = (ctypes.c_uint32 * max(len(tokens), 1))(*tokens)
    out = ctypes.create_string_buffer(_lib.KEY_LEN)
    check(_lib.lib().gpc_key_chain(parent, salt, len(salt), toks, len(tokens), out), "key_chain")
    return out.raw


def chain_keys(tokens: Sequence[int], block_tokens: int, parent: bytes | None = None,
               salt: bytes = b"") -> list[bytes]:
    """Keys of every full block of ``tokens``, each chained to the one before."""
    if block_tokens <= 0:
        raise ValueError("block_tokens must be positive")
    keys = []
    for i in range(len(tokens) // block_tokens):
        parent = key_chain(tokens[i * block_tokens:(i + 1) * block_tokens], parent, salt)
        keys.append(parent)
    return keys


def namespace(desc: str | bytes) -> int:
    """gpc_namespace: a namespace id (XXH3-64) from any description bytes."""
    raw = desc.encode() if isinstance(desc, str) else bytes(desc)
    return int(_lib.lib().gpc_namespace(raw, len(raw)))


def layout_namespace(model: str, dtype: str, block_tokens: int, layer: str | int,
                     tp_rank: int = 0, pp_rank: int = 0, layout: str = "",
                     engine: str = "") -> tuple[int, str]:
    """The namespace of one piece of an engine's KV cache, and the
    canonical description it is hashed from: every field that changes the
    bytes of a block is in it, so two models or two layouts never alias."""
    desc = (f"gpucache-ns/1;engine={engine};model={model};dtype={dtype};"
            f"block={block_tokens};layer={layer};tp={tp_rank};pp={pp_rank};layout={layout}")
    return namespace(desc), desc
