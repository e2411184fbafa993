"""Read what a client needs (shard-0 port, listen address, tenant secrets)
out of a gpucached.conf, following the syntax of docs/operations.md: INI,
``key = value`` or ``key: value``, ``;``/``#`` comment lines, an inline
comment starts at `` ;``, secrets plain or ``hex:``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ServerConfig:
    port: int = 7070
    listen: str = "0.0.0.0"
    metrics_addr: str = "127.0.0.1"
    metrics_port: int = 7080
    tenants: dict[str, bytes] = field(default_factory=dict)

    def url(self, host: str | None = None) -> str:
        """The gpc:// URL of shard 0, as seen from this host."""
        if host is None:
            host = "127.0.0.1" if self.listen in ("0.0.0.0", "::") else self.listen
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"gpc://{host}:{self.port}"


_SECTION = re.compile(r"^\[\s*([A-Za-z]+)(?:\s+([^\]]+?))?\s*\]$")


def parse_secret(value: str) -> bytes:
    if value.startswith("hex:"):
        return bytes.fromhex(value[4:])
    return value.encode()


def load(path: str | Path) -> ServerConfig:
    """Parse a gpucached.conf; raise ValueError naming the line if a line
    this reader needs does not parse."""
    cfg = ServerConfig()
    section, name = "", None
    text = Path(path).read_text(encoding="utf-8-sig")
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        cut = line.find(" ;")
        if cut >= 0:
            line = line[:cut].rstrip()
        m = _SECTION.match(line)
        if m:
            section, name = m.group(1), m.group(2)
            continue
        sep = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if sep < 0:
            raise ValueError(f"{path}:{lineno}: no '=' in line")
        key, value = line[:sep].strip(), line[sep + 1 :].strip()
        if section == "server":
            if key == "port":
                cfg.port = int(value)
            elif key == "listen":
                cfg.listen = value
            elif key == "metrics_addr":
                cfg.metrics_addr = value
            elif key == "metrics_port":
                cfg.metrics_port = int(value)
        elif section == "tenant" and name and key == "secret":
            cfg.tenants[name] = parse_secret(value)
    return cfg
