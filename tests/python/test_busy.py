"""A daemon with room for 4 requests per connection: a batch larger than
that starts its first blocks and answers the rest BUSY, and the metrics
count every block of it, started or refused (docs/metrics.md)."""

from __future__ import annotations

import numpy as np
import pytest

import gpucache
from gpucache import client as client_mod
from gpucache import metrics
from gpucache._lib import EBUSY as BUSY_CODE
from gpucache.testing import Daemon

NS = gpucache.namespace("tests/python/test_busy")
ROOM = 4
BUSY = -BUSY_CODE  # the status of a block answered BUSY


@pytest.fixture(scope="module")
def small_daemon(start_daemon):
    return start_daemon("gpucached-busy",
                        ("--set", f"server.max_inflight_conn={ROOM}"))


def counts(d: Daemon, op: str) -> tuple[float, float]:
    m = metrics.stat(d.metrics_addr)
    return (metrics.total(m, "gpucache_requests_total", op=op),
            metrics.total(m, "gpucache_busy_rejections_total", op=op))


def test_batch_blocks_count_one_request_each(small_daemon, monkeypatch):
    """put and get re-send the blocks answered BUSY until all are in; the
    daemon's counters must show each block's every answer: n that went
    through, plus one request and one busy rejection per BUSY block."""
    n, size = 32, 4096
    keys = gpucache.chain_keys(list(range(n * 4)), 4, salt=b"busy")
    src = np.random.default_rng(7).integers(0, 256, size=(n, size), dtype=np.uint8)
    dst = np.zeros((n, size), np.uint8)
    answered_busy = []
    plain = client_mod._Batch.busy_subset

    def busy_subset(self):
        busy = plain(self)
        answered_busy.append(len(busy))
        return busy

    monkeypatch.setattr(client_mod._Batch, "busy_subset", busy_subset)
    with small_daemon.client() as c:
        c.register(src)
        c.register(dst)
        for op in ("put", "get"):
            answered_busy.clear()
            req0, busy0 = counts(small_daemon, op)
            if op == "put":
                c.put(NS, keys, [src[i] for i in range(n)])
            else:
                assert c.get(NS, keys, [dst[i] for i in range(n)]) == [size] * n
            refused = sum(answered_busy)
            # a shard's message of 16 blocks had room for ROOM of them
            assert refused >= 16 - ROOM
            req1, busy1 = counts(small_daemon, op)
            assert busy1 - busy0 == refused
            assert req1 - req0 == n + refused
    assert np.array_equal(src, dst)
