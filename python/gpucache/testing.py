"""A real gpucached for tests: started on file devices under a temporary
directory, on loopback ports, with the transports scripts/demo-daemon.sh
uses (UCX_TLS=posix,cma,tcp), and stopped at the end. ``Daemon.start``
raises if gpucached cannot start: a test that needs the daemon fails
without it, it never passes or skips."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

from . import _lib

DEFAULT_UCX_TLS = "posix,cma,tcp"


def find_gpucached() -> str:
    exe = os.environ.get("GPUCACHED")
    if exe:
        return exe
    root = _lib._checkout_root()
    if root is not None:
        p = root / "build" / "src" / "server" / "gpucached"
        if p.exists():
            return str(p)
    raise RuntimeError("gpucached not found: set GPUCACHED or run `make build`")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _free_ports(n: int) -> int:
    for _ in range(200):
        base = random.randrange(20000, 60000 - n)
        if all(_port_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no free ports")


class Daemon:
    """One gpucached process on a data directory of its own."""

    def __init__(self, data_dir: str | Path, shards: int = 2, dev_size: str = "256M",
                 dram_buffer: str = "64M", chunk_size: str = "2M",
                 extra: tuple[str, ...] = ()) -> None:
        self.data_dir = Path(data_dir)
        self.shards = shards
        self.dev_size = dev_size
        self.dram_buffer = dram_buffer
        self.chunk_size = chunk_size
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.metrics_port = 0
        os.environ.setdefault("UCX_TLS", DEFAULT_UCX_TLS)

    @property
    def conf(self) -> Path:
        return self.data_dir / "gpucached.conf"

    @property
    def log(self) -> Path:
        return self.data_dir / "gpucached.log"

    @property
    def url(self) -> str:
        return f"gpc://127.0.0.1:{self.port}"

    @property
    def metrics_addr(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"

    def start(self, timeout: float = 30.0) -> Daemon:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        last = ""
        for _ in range(3):  # a port taken in between: try other ports
            base = _free_ports(self.shards + 1)
            self.port, self.metrics_port = base, base + self.shards
            if self._start_once(timeout):
                return self
            last = self.log_tail()
        raise RuntimeError(f"gpucached did not start:\n{last}")

    def _start_once(self, timeout: float) -> bool:
        exe = find_gpucached()
        cmd = [exe, "--data-dir", str(self.data_dir), "--port", str(self.port),
               "--shards", str(self.shards),
               "--set", f"store.device_size={self.dev_size}",
               "--set", f"store.dram_buffer={self.dram_buffer}",
               "--set", f"store.chunk_size={self.chunk_size}",
               "--set", f"server.metrics_port={self.metrics_port}",
               "--set", "server.listen=127.0.0.1", *self.extra]
        env = dict(os.environ)
        env.setdefault("UCX_TLS", DEFAULT_UCX_TLS)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b"gpucached: ready" in self.log.read_bytes():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        self.kill()
        return False

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (seal, flush, exit 0); the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def client(self, timeout_ms: int = 0):  # -> Client
        from .client import Client

        tenant, secret = self.tenant()
        return Client(self.url, tenant, secret, timeout_ms)

    def tenant(self) -> tuple[str, bytes]:
        """The tenant the first start wrote into gpucached.conf."""
        from . import config

        cfg = config.load(self.conf)
        return next(iter(cfg.tenants.items()))
