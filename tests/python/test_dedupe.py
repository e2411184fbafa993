"""Engines offloading one prefix at once: several clients put the same
blocks with if_absent at the same moment, each on its own connection.
Every block reads back bit-exact, and the daemon writes each once: every
other put of it finds it held or landing (docs/protocol.md, IF_ABSENT),
so the dedupe counter grows by all the puts but one per block."""

from __future__ import annotations

import threading
import time

import numpy as np

import gpucache
from gpucache import metrics

NS = gpucache.namespace("tests/python/test_dedupe")


def deduped(d, want: float = 0.0) -> float:
    """The daemon's dedupe count, once it has reached want (the shards
    publish their store's counters every 100 ms) or 3 s have passed."""
    deadline = time.monotonic() + 3.0
    while True:
        v = metrics.total(metrics.stat(d.metrics_addr),
                          "gpucache_store_puts_deduped_total")
        if v >= want or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def test_same_blocks_put_at_once_are_stored_once(daemon):
    clients, n, size, batch = 4, 48, 1 << 20, 8
    keys = gpucache.chain_keys(list(range(n * 16)), 16, salt=b"dedupe")
    src = np.random.default_rng(11).integers(0, 256, size=(n, size), dtype=np.uint8)
    start = threading.Barrier(clients)
    errors: list[BaseException] = []

    def offload() -> None:
        try:
            with daemon.client() as c:
                c.register(src)
                start.wait(timeout=30)
                # the same order everywhere: the same key lands at once
                for i in range(0, n, batch):
                    c.put(NS, keys[i:i + batch], [src[j] for j in range(i, i + batch)],
                          if_absent=True)
        except BaseException as e:  # reported below, not lost in a thread
            errors.append(e)

    time.sleep(0.3)  # counters of earlier tests published
    before = deduped(daemon)
    threads = [threading.Thread(target=offload) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    want = before + (clients - 1) * n
    assert deduped(daemon, want) == want
    dst = np.zeros((n, size), np.uint8)
    with daemon.client() as c:
        c.register(dst)
        assert c.get(NS, keys, [dst[i] for i in range(n)]) == [size] * n
    assert np.array_equal(src, dst)
