"""Per-key log throttling for a node's logger.

rclpy's ``throttle_duration_sec`` keeps its state per call site for the whole
process, which breaks when several nodes share a process (tests, composed
nodes); this keeps the state per helper instance instead.
"""
from __future__ import annotations

import threading
import time


class ThrottledLogger:
    def __init__(self, logger, period_s: float = 5.0):
        self._logger = logger
        self._period_s = period_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def _emit(self, level: str, key: str, message: str) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._period_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            suppressed = self._suppressed.pop(key, 0)
            self._last[key] = now
        if suppressed:
            message = f"{message} ({suppressed} similar messages suppressed)"
        getattr(self._logger, level)(message)
        return True

    def warn(self, key: str, message: str) -> bool:
        return self._emit("warning", key, message)

    def error(self, key: str, message: str) -> bool:
        return self._emit("error", key, message)
