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
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("gpucached"))
    try:
        d.start()
    except Exception as e:  # not skip: a test without its daemon fails
        pytest.fail(f"gpucached could not start: {e}", pytrace=False)
    yield d
    rc = d.stop()
    assert rc == 0, f"gpucached exited with {rc}:\n{d.log_tail()}"


@pytest.fixture
def client(daemon):
    c = daemon.client()
    yield c
    c.close()
