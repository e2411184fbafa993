"""Fixtures: a live gpucached per test module (started on a temporary
directory, stopped at the end). If gpucached cannot start, the fixture
fails the tests: none passes or skips without a daemon."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
os.environ.setdefault("UCX_TLS", "posix,cma,tcp")

from gpucache.testing import Daemon  # noqa: E402


@pytest.fixture(scope="module")
def start_daemon(tmp_path_factory):
    """start(name, extra): a gpucached of the module's own (extra: more
    gpucached arguments); each stops when the module is done, and must
    exit 0."""
    started: list[Daemon] = []

    def start(name: str = "gpucached", extra: tuple[str, ...] = ()) -> Daemon:
        d = Daemon(tmp_path_factory.mktemp(name), extra=extra)
        try:
            d.start()
        except Exception as e:  # not skip: a test without its daemon fails
            pytest.fail(f"gpucached could not start: {e}", pytrace=False)
        started.append(d)
        return d

    yield start
    for d in started:
        rc = d.stop()
        assert rc == 0, f"gpucached exited with {rc}:\n{d.log_tail()}"


@pytest.fixture(scope="module")
def daemon(start_daemon):
    return start_daemon()


@pytest.fixture
def client(daemon):
    c = daemon.client()
    yield c
    c.close()
