import numpy as np

from perception_nodes.stats import NodeCounters


def test_counters_and_percentiles():
    clock = iter(np.arange(0, 100, 0.1))
    counters = NodeCounters(window=1000, clock=lambda: next(clock))
    for ms in range(1, 101):
        counters.on_received()
        counters.on_processed(ms / 1000.0)
    counters.on_dropped(3, "queue_full")
    counters.on_error("decode")
    counters.count("custom", 5)
    snap = counters.snapshot()
    assert (snap.received, snap.processed, snap.dropped, snap.errors) == (100, 100, 3, 1)
    assert abs(snap.processing_ms_p50 - 50.5) < 1e-6 and abs(snap.processing_ms_p99 - 99.01) < 1e-6
    assert abs(snap.output_rate_hz - 10.0) < 1e-6
    assert snap.extra == {"dropped_queue_full": 3, "error_decode": 1, "custom": 5}


def test_window_keeps_only_recent_timings():
    counters = NodeCounters(window=10)
    for _ in range(100):
        counters.on_processed(1.0)
    for _ in range(10):
        counters.on_processed(0.001)
    assert counters.snapshot().processing_ms_p95 < 2.0
