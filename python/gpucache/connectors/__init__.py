"""Inference-engine connectors, one module per engine (each imports its
engine, so import the one you use): ``gpucache.connectors.vllm``.

What they share lives here and imports no engine."""

from __future__ import annotations

import os
from typing import Any

import gpucache


def confirm_leading(client: gpucache.Client, ns: int, ok: list[bool]) -> int:
    """The hit funnel's last stage (docs/metrics.md) for engines that use a
    fetched prefix up to its first gap: confirm the leading run of ``ok``
    blocks as used. Best effort: a failure here never fails the load.
    Returns the number confirmed."""
    lead = 0
    while lead < len(ok) and ok[lead]:
        lead += 1
    if lead:
        try:
            client.confirm_used(ns, lead)
        except gpucache.GpucacheError:
            return 0
    return lead


def weight_of(opts: dict[str, Any]) -> int | None:
    """The connector option ``weight`` (0..MAX_WEIGHT, an int or its
    digits; docs/cache-policy.md): what the engine's blocks are worth a
    flash rewrite, set on each namespace the connector uses. None when not
    given (the tier's default, 1). A bad value raises ValueError at once."""
    if "weight" not in opts:
        return None
    w = opts["weight"]
    if isinstance(w, str) and w.strip().isdigit():
        w = int(w)
    if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= gpucache.MAX_WEIGHT:
        raise ValueError(f"connector option weight is an int in [0, {gpucache.MAX_WEIGHT}], "
                         f"not {opts['weight']!r}")
    return w


def connect(opts: dict[str, Any]) -> gpucache.Client:
    """A client from an engine's connector options: ``config`` (a
    gpucached.conf: port and tenant secret; with ``tenant`` and ``host``),
    or ``url``, ``tenant`` and ``secret`` / ``secret_hex``; and
    ``timeout_ms``. UCX transports default to what the daemon's tests use
    (shared memory, then tcp) unless UCX_TLS is set."""
    os.environ.setdefault("UCX_TLS", "posix,cma,tcp")
    timeout = int(opts.get("timeout_ms", 0))
    if "config" in opts:
        return gpucache.Client.from_config(opts["config"], opts.get("tenant"),
                                           opts.get("host"), timeout)
    secret = opts.get("secret")
    if "secret_hex" in opts:
        secret = bytes.fromhex(opts["secret_hex"])
    return gpucache.Client(opts.get("url", "gpc://127.0.0.1:7070"),
                           opts.get("tenant", "default"), secret, timeout)
