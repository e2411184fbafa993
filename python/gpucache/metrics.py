"""The daemon's own figures: gpucached serves Prometheus text metrics over
HTTP (server.metrics_addr:metrics_port). libgpucache 0.1 exports no STAT
call, so ``stat`` reads that endpoint."""

from __future__ import annotations

import re
import urllib.request

_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse(text: str) -> dict[str, float]:
    """Prometheus text to {'name{labels}': value}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def stat(addr: str = "127.0.0.1:7080", timeout: float = 5.0) -> dict[str, float]:
    """Every metric of the gpucached whose metrics endpoint is ``addr``."""
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=timeout) as r:
        return parse(r.read().decode())


def total(metrics: dict[str, float], name: str, **labels: str) -> float:
    """Sum of a metric over every label set that has ``labels``."""
    s = 0.0
    for k, v in metrics.items():
        base, _, rest = k.partition("{")
        if base != name:
            continue
        if all(f'{lk}="{lv}"' in rest for lk, lv in labels.items()):
            s += v
    return s
