"""gpucache: Python bindings of libgpucache (the GPUCache client library,
bound with ctypes in gpucache._lib) and the inference-engine connectors
(gpucache.connectors)."""

from ._lib import KEY_LEN, MAX_TTL, MAX_WEIGHT, find_library, strerror
from .client import Client, KVEvent, MemoryRegion, Request, buffer_address
from .errors import (
    AuthError,
    BatchError,
    BusyError,
    ClosedError,
    GpucacheError,
    NotFoundError,
    QuotaError,
)
from .keys import chain_keys, key_chain, layout_namespace, namespace

__all__ = [
    "KEY_LEN",
    "MAX_TTL",
    "MAX_WEIGHT",
    "AuthError",
    "BatchError",
    "BusyError",
    "Client",
    "ClosedError",
    "GpucacheError",
    "KVEvent",
    "MemoryRegion",
    "NotFoundError",
    "QuotaError",
    "Request",
    "buffer_address",
    "chain_keys",
    "find_library",
    "key_chain",
    "layout_namespace",
    "namespace",
    "strerror",
]
__version__ = "0.1.0"
