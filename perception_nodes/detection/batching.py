"""Newest-frame slots for a multi-camera detector, and how a batch is gathered from them.

Each camera has one slot holding its newest unprocessed frame: a newer frame
replaces an older one (the older is counted as superseded, never queued), so a
slow model never works on stale images. A worker takes a batch of up to
``max_batch`` frames, oldest arrival first (so every camera gets its turn when
there are more cameras than the batch holds).

Gathering: cameras are not shutter-synchronised, so when the worker goes idle the
first frame of a step often arrives alone. Taking it at once would run a batch of
one, and the others would follow as a second pass (and, under load, supersede each
other while they wait). ``take`` therefore waits up to ``gather_s`` after the oldest
pending frame arrived for the other *live* cameras (those that delivered a frame
within ``live_s``) to deliver theirs. A camera that stopped is not waited for once
it is no longer live; a busy worker never waits, because its slots are full already,
and gathering ends as soon as a waiting camera delivers a second frame (the worker
is behind that camera, so waiting longer would only drop frames).
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Generic, TypeVar

Frame = TypeVar("Frame")


class FrameSlots(Generic[Frame]):
    """Thread-safe newest-frame-per-camera slots (producer: the image callbacks; consumer: one worker)."""

    def __init__(self, gather_s: float = 0.0, live_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 priorities: dict[str, int] | None = None):
        if gather_s < 0 or live_s <= 0:
            raise ValueError(f"gather_s must be >= 0 and live_s > 0 (got {gather_s}, {live_s})")
        if priorities and min(priorities.values()) < 1:
            raise ValueError(f"camera priorities must be >= 1, got {priorities}")
        # When more cameras wait than one pass takes, a frame of a priority-p camera counts as having waited p
        # times as long: higher priorities go first, and every camera still gets its turn as its wait grows.
        self.priorities = dict(priorities or {})
        self.gather_s, self.live_s = float(gather_s), float(live_s)
        self._clock = clock
        self._pending: dict[str, tuple[float, Frame]] = {}  # camera -> (arrival, frame)
        self._last_arrival: dict[str, float] = {}
        self._condition = threading.Condition()
        self._closed = False
        self._superseded_while_gathering = False

    def put(self, camera: str, frame: Frame) -> bool:
        """Store ``frame`` as ``camera``'s newest; returns True when it replaced an unprocessed frame."""
        now = self._clock()
        with self._condition:
            superseded = camera in self._pending
            # A replaced frame keeps its place in line (the camera has been waiting since then).
            arrival = self._pending[camera][0] if superseded else now
            self._pending[camera] = (arrival, frame)
            self._last_arrival[camera] = now
            self._superseded_while_gathering |= superseded
            self._condition.notify_all()
        return superseded

    def close(self) -> None:
        """Wake and release a waiting worker; later ``take`` calls return at once."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def reopen(self) -> None:
        with self._condition:
            self._closed = False
            self._pending.clear()

    def pending(self) -> int:
        with self._condition:
            return len(self._pending)

    def _live_cameras(self, now: float) -> set[str]:
        return {cam for cam, t in self._last_arrival.items() if now - t <= self.live_s}

    def take(self, max_batch: int, timeout_s: float = 0.5) -> list[tuple[str, Frame]]:
        """Up to ``max_batch`` (camera, frame) pairs, longest (priority-weighted) wait first; [] after ``timeout_s``
        with none or on close."""
        deadline = self._clock() + timeout_s
        with self._condition:
            while not self._pending and not self._closed:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return []
                self._condition.wait(remaining)
            if self._closed:
                return []
            if self.gather_s > 0:
                gather_until = min(arrival for arrival, _ in self._pending.values()) + self.gather_s
                self._superseded_while_gathering = False
                # A second frame from a camera already waiting means the worker is behind: run now.
                while not self._closed and len(self._pending) < max_batch and not self._superseded_while_gathering:
                    now = self._clock()
                    missing = self._live_cameras(now) - set(self._pending)
                    if not missing or now >= gather_until:
                        break
                    self._condition.wait(gather_until - now)
                if self._closed:
                    return []
            now = self._clock()
            order = sorted(self._pending, key=lambda cam: -(now - self._pending[cam][0]) * self.priorities.get(cam, 1)
                           )[: max(1, int(max_batch))]
            return [(cam, self._pending.pop(cam)[1]) for cam in order]
