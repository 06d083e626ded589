"""Counters and rolling latency percentiles shared by every node's health report."""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class HealthSnapshot:
    """A consistent copy of a node's counters at one instant."""

    received: int
    processed: int
    dropped: int
    errors: int
    processing_ms_p50: float
    processing_ms_p95: float
    processing_ms_p99: float
    output_rate_hz: float
    extra: dict[str, int] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)


class NodeCounters:
    """Thread-safe counters for one node.

    ``received``/``processed``/``dropped``/``errors`` follow the NodeHealth.msg
    definitions; ``count(name)`` adds node-specific counters. Processing times
    and output instants are kept for the last ``window`` events.
    """

    def __init__(self, window: int = 512, clock=time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self._durations_ms: deque[float] = deque(maxlen=window)
        self._output_times: deque[float] = deque(maxlen=window)
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.errors = 0
        self._extra: dict[str, int] = {}
        self._values: dict[str, float] = {}

    def on_received(self, n: int = 1) -> None:
        with self._lock:
            self.received += n

    def on_dropped(self, n: int = 1, reason: str | None = None) -> None:
        with self._lock:
            self.dropped += n
            if reason:
                self._extra[f"dropped_{reason}"] = self._extra.get(f"dropped_{reason}", 0) + n

    def on_error(self, reason: str | None = None, n: int = 1) -> None:
        with self._lock:
            self.errors += n
            if reason:
                self._extra[f"error_{reason}"] = self._extra.get(f"error_{reason}", 0) + n

    def on_processed(self, duration_s: float) -> None:
        with self._lock:
            self.processed += 1
            self._durations_ms.append(duration_s * 1000.0)
            self._output_times.append(self._clock())

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._extra[name] = self._extra.get(name, 0) + n

    def set(self, name: str, value: int) -> None:
        """A gauge among the counters (e.g. an agreement in per mille): the latest value, not a sum."""
        with self._lock:
            self._extra[name] = int(value)

    def set_value(self, name: str, value: float) -> None:
        """A reading that is not a count (seconds, a ratio, a drift statistic): the latest value."""
        with self._lock:
            self._values[name] = float(value)

    def set_values(self, values: dict[str, float]) -> None:
        with self._lock:
            self._values.update({k: float(v) for k, v in values.items()})

    def snapshot(self) -> HealthSnapshot:
        with self._lock:
            durations = np.asarray(self._durations_ms, dtype=np.float64)
            times = list(self._output_times)
            extra = dict(self._extra)
            values = dict(self._values)
            received, processed, dropped, errors = self.received, self.processed, self.dropped, self.errors
        if durations.size:
            p50, p95, p99 = (float(v) for v in np.percentile(durations, [50, 95, 99]))
        else:
            p50 = p95 = p99 = 0.0
        rate = 0.0
        if len(times) >= 2 and times[-1] > times[0]:
            rate = (len(times) - 1) / (times[-1] - times[0])
        return HealthSnapshot(received, processed, dropped, errors, p50, p95, p99, rate, extra, values)
