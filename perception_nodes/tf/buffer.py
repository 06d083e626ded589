"""A transform tree buffer with tf2's semantics, in pure Python.

- Frames form a tree. Each sample of a frame's transform names its parent, as
  tf2 stores it: giving a frame a new parent keeps its history, and a lookup at
  a time before the switch still walks the old parent.
- Static edges hold for all time; dynamic edges keep a history of
  ``cache_duration_s`` and are interpolated between samples (linear
  translation, slerp rotation). Asking outside a dynamic edge's history raises
  :class:`ExtrapolationException`; tf2 never extrapolates.
- ``lookup_transform(target, source, time_ns)`` returns target <- source at
  that time, chaining edges through the common ancestor. ``time_ns == 0`` means
  "the latest time every edge on the path has data for".
  ``lookup_transform_full`` takes the source at one time and the target at
  another through a frame fixed in the world; ``lookup_velocity`` differentiates.
- ``timeout_s`` waits (without spinning anything) for data to arrive from
  another thread, e.g. a listener's subscription callback;
  ``wait_for_transform_async`` returns a future that completes when the
  transform becomes available.
- Frame ids are normalised as tf2 does: one leading ``/`` is stripped, and an
  empty id raises :class:`InvalidArgumentException`.
Times are integer nanoseconds. Exception types and messages follow tf2's.
"""
from __future__ import annotations

import bisect
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from perception_nodes.errors import PerceptionError
from perception_nodes.geometry import Transform, matrix_from_quaternion, slerp


class TransformException(PerceptionError):
    """Base of the transform errors (tf2.TransformException)."""


class LookupException(TransformException):
    """A frame is unknown (tf2.LookupException)."""


class ConnectivityException(TransformException):
    """Both frames exist but are in different trees (tf2.ConnectivityException)."""


class ExtrapolationException(TransformException):
    """The time is outside the data of an edge on the path (tf2.ExtrapolationException)."""


class InvalidArgumentException(TransformException):
    """A frame id is empty, or a transform's values are not finite / not a rotation (tf2.InvalidArgumentException)."""


class TimeoutException(TransformException):
    """A wait for a transform ran out (tf2.TimeoutException)."""


def strip_frame_id(frame_id: str, argument: str = "frame_id") -> str:
    """tf2's frame id rule: one leading '/' is removed; what is left must not be empty."""
    frame = str(frame_id)
    if frame.startswith("/"):
        frame = frame[1:]
    if not frame:
        raise InvalidArgumentException(f'Invalid argument "{frame_id}" passed to {argument} - in tf2 frame_ids '
                                       f"cannot be empty")
    return frame


@dataclass(frozen=True)
class StampedTransform:
    """parent <- child at ``stamp_ns`` (geometry_msgs/TransformStamped without ROS)."""

    parent: str
    child: str
    stamp_ns: int
    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float]  # x, y, z, w

    def transform(self) -> Transform:
        return Transform.from_quaternion(self.translation, self.rotation)

    @staticmethod
    def from_transform(parent: str, child: str, stamp_ns: int, transform: Transform) -> "StampedTransform":
        return StampedTransform(parent, child, int(stamp_ns), tuple(float(v) for v in transform.t),
                                tuple(float(v) for v in transform.quaternion))


@dataclass(frozen=True)
class Velocity:
    """Linear (m/s) and angular (rad/s) velocity of a frame, expressed in the observation frame."""

    linear: tuple[float, float, float]
    angular: tuple[float, float, float]
    stamp_ns: int


def _seconds(ns: int) -> str:
    return f"{ns / 1e9:.6f}"


class _Edge:
    """Samples of one child frame's transform to its parent (the parent is per sample, as in tf2's TimeCache)."""

    def __init__(self, static: bool):
        self.static = static
        self.stamps: list[int] = []
        self.samples: list[StampedTransform] = []
        self.authority = "default_authority"

    def insert(self, sample: StampedTransform, cache_ns: int) -> None:
        if self.static:
            self.stamps, self.samples = [sample.stamp_ns], [sample]
            return
        index = bisect.bisect_left(self.stamps, sample.stamp_ns)
        if index < len(self.stamps) and self.stamps[index] == sample.stamp_ns:
            self.samples[index] = sample  # same stamp: the newer message wins
        else:
            self.stamps.insert(index, sample.stamp_ns)
            self.samples.insert(index, sample)
        horizon = self.stamps[-1] - cache_ns
        drop = bisect.bisect_left(self.stamps, horizon)
        if drop:
            del self.stamps[:drop], self.samples[:drop]

    @property
    def latest_parent(self) -> str:
        return self.samples[-1].parent

    def parent_at(self, stamp_ns: int) -> str:
        """The parent at a time: that of the latest sample at or before it (the earliest before all of them;
        time 0: the latest), as tf2's TimeCache::getParent."""
        if self.static or stamp_ns == 0:
            return self.samples[-1].parent
        index = bisect.bisect_right(self.stamps, stamp_ns) - 1
        return self.samples[max(index, 0)].parent

    def latest_ns(self) -> int | None:
        return None if self.static else self.stamps[-1]

    def oldest_ns(self) -> int | None:
        return None if self.static else self.stamps[0]

    def at(self, stamp_ns: int, child: str, source: str, target: str) -> Transform:
        if self.static:
            return self.samples[0].transform()
        first, last = self.stamps[0], self.stamps[-1]
        if stamp_ns < first or stamp_ns > last:
            if len(self.stamps) == 1:
                raise ExtrapolationException(
                    f"Lookup would require extrapolation at time {_seconds(stamp_ns)}, but only time "
                    f"{_seconds(first)} is in the buffer, when looking up transform from frame [{source}] to frame "
                    f"[{target}]")
            if stamp_ns > last:
                raise ExtrapolationException(
                    f"Lookup would require extrapolation into the future.  Requested time {_seconds(stamp_ns)} but "
                    f"the latest data is at time {_seconds(last)}, when looking up transform from frame [{source}] "
                    f"to frame [{target}]")
            raise ExtrapolationException(
                f"Lookup would require extrapolation into the past.  Requested time {_seconds(stamp_ns)} but the "
                f"earliest data is at time {_seconds(first)}, when looking up transform from frame [{source}] to "
                f"frame [{target}]")
        index = bisect.bisect_left(self.stamps, stamp_ns)
        if self.stamps[index] == stamp_ns:
            return self.samples[index].transform()
        a, b = self.samples[index - 1], self.samples[index]
        if a.parent != b.parent:  # the parent changed between the samples: no interpolation across it (tf2)
            return a.transform()
        fraction = (stamp_ns - a.stamp_ns) / (b.stamp_ns - a.stamp_ns)
        translation = np.asarray(a.translation) + fraction * (np.asarray(b.translation) - np.asarray(a.translation))
        rotation = slerp(a.rotation, b.rotation, fraction)
        return Transform(matrix_from_quaternion(rotation), translation)


class TransformBuffer:
    """Thread-safe transform tree (tf2's BufferCore semantics without ROS)."""

    def __init__(self, cache_duration_s: float = 10.0):
        if cache_duration_s <= 0:
            raise ValueError("cache_duration_s must be > 0")
        self.cache_ns = int(cache_duration_s * 1e9)
        self._edges: dict[str, _Edge] = {}
        self._condition = threading.Condition()
        self._waiters: list[tuple[str, str, int, Future]] = []

    # -- writing --------------------------------------------------------------------------
    def set_transform(self, transform: StampedTransform, static: bool = False,
                      authority: str = "default_authority") -> None:
        """Add a transform; InvalidArgumentException (a TransformException) for an empty or self-referencing frame
        id, or values that are not finite or not a rotation. A leading '/' on a frame id is removed."""
        parent = strip_frame_id(transform.parent, "setTransform argument parent frame_id")
        child = strip_frame_id(transform.child, "setTransform argument child_frame_id")
        if parent == child:
            raise InvalidArgumentException(f'TF_SELF_TRANSFORM: Ignoring transform from authority "{authority}" with '
                                           f'frame_id and child_frame_id "{child}" because they are the same')
        values = (*transform.translation, *transform.rotation)
        if not np.all(np.isfinite(values)):
            raise InvalidArgumentException(f'TF_NAN_INPUT: Ignoring transform for child_frame_id "{child}" from '
                                           f'authority "{authority}" because of a nan value in the transform {values}')
        if abs(np.linalg.norm(transform.rotation) - 1.0) > 0.01:
            raise InvalidArgumentException(f'TF_DENORMALIZED_QUATERNION: Ignoring transform for child_frame_id '
                                           f'"{child}" from authority "{authority}" because of an invalid quaternion '
                                           f"in the transform {tuple(transform.rotation)}")
        if (parent, child) != (transform.parent, transform.child):
            transform = StampedTransform(parent, child, transform.stamp_ns, transform.translation, transform.rotation)
        with self._condition:
            if self._creates_cycle(parent, child):
                raise InvalidArgumentException(f"{parent} <- {child} would close a loop in the tree")
            edge = self._edges.get(child)
            if edge is None or edge.static != static:
                edge = _Edge(static)
                self._edges[child] = edge
            edge.authority = authority
            edge.insert(transform, self.cache_ns)
            ready = self._ready_waiters()
            self._condition.notify_all()
        for future, result in ready:  # outside the lock: done callbacks may look up again
            if not future.done():
                future.set_result(result)

    def _creates_cycle(self, parent: str, child: str) -> bool:
        frame, seen = parent, set()
        while frame in self._edges and frame not in seen:
            seen.add(frame)
            frame = self._edges[frame].latest_parent
            if frame == child:
                return True
        return False

    def clear(self) -> None:
        """Forget dynamic transforms (e.g. after time jumped backwards); statics stay."""
        with self._condition:
            self._edges = {child: edge for child, edge in self._edges.items() if edge.static}

    # -- reading ----------------------------------------------------------------------------
    def frames(self) -> set[str]:
        with self._condition:
            return self._known()

    def _known(self) -> set[str]:
        return set(self._edges) | {s.parent for e in self._edges.values() for s in e.samples}

    def _chain(self, frame: str, stamp_ns: int) -> list[str]:
        chain = [frame]
        while chain[-1] in self._edges and len(chain) <= len(self._edges) + 1:
            chain.append(self._edges[chain[-1]].parent_at(stamp_ns))
        return chain

    def _path(self, target: str, source: str, stamp_ns: int) -> tuple[list[str], list[str]]:
        known = self._known()
        for frame, argument in ((target, "target_frame"), (source, "source_frame")):
            if frame not in known:
                raise LookupException(f'"{frame}" passed to lookupTransform argument {argument} does not exist. ')
        up_source, up_target = self._chain(source, stamp_ns), self._chain(target, stamp_ns)
        common = next((f for f in up_source if f in set(up_target)), None)
        if common is None:
            raise ConnectivityException(f"Could not find a connection between '{target}' and '{source}' because they "
                                        f"are not part of the same tree.Tf has two or more unconnected trees.")
        return up_source[: up_source.index(common)], up_target[: up_target.index(common)]

    def _latest_common_ns(self, target: str, source: str) -> int:
        from_source, from_target = self._path(target, source, 0)
        latest = [self._edges[f].latest_ns() for f in from_source + from_target]
        dynamic = [t for t in latest if t is not None]
        return min(dynamic) if dynamic else 0

    def _lookup_locked(self, target: str, source: str, time_ns: int) -> tuple[Transform, int]:
        target = strip_frame_id(target, "lookupTransform argument target_frame")
        source = strip_frame_id(source, "lookupTransform argument source_frame")
        if target == source:
            if target not in self._known():
                raise LookupException(f'"{target}" passed to lookupTransform argument target_frame does not exist. ')
            return Transform.identity(), time_ns
        stamp = time_ns if time_ns else self._latest_common_ns(target, source)
        from_source, from_target = self._path(target, source, stamp)
        # common <- source and common <- target, each a product of edges at `stamp`.
        common_from_source = Transform.identity()
        for frame in reversed(from_source):
            common_from_source = common_from_source @ self._edges[frame].at(stamp, frame, source, target)
        common_from_target = Transform.identity()
        for frame in reversed(from_target):
            common_from_target = common_from_target @ self._edges[frame].at(stamp, frame, source, target)
        return common_from_target.inverse() @ common_from_source, stamp

    def _wait(self, attempt, timeout_s: float):
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._condition:
            while True:
                try:
                    return attempt()
                except InvalidArgumentException:
                    raise
                except TransformException as exc:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        if timeout_s > 0:  # like tf2_ros: the last error, saying how long it waited
                            raise type(exc)(f"{exc} (waited {timeout_s:.3f} s)") from exc
                        raise
                    self._condition.wait(remaining)

    def lookup_transform(self, target: str, source: str, time_ns: int = 0, timeout_s: float = 0.0) -> StampedTransform:
        """target <- source at ``time_ns`` (0: latest common time), waiting up to ``timeout_s`` for data."""
        def attempt():
            transform, stamp = self._lookup_locked(target, source, int(time_ns))
            return StampedTransform.from_transform(strip_frame_id(target), strip_frame_id(source), stamp, transform)
        return self._wait(attempt, timeout_s)

    def lookup_transform_full(self, target: str, target_time_ns: int, source: str, source_time_ns: int,
                              fixed_frame: str, timeout_s: float = 0.0) -> StampedTransform:
        """target at ``target_time_ns`` <- source at ``source_time_ns``, through ``fixed_frame`` (a frame that does
        not move over the interval, e.g. map): where a camera saw an object at one time, seen from another time."""
        def attempt():
            fixed_from_source, _ = self._lookup_locked(fixed_frame, source, int(source_time_ns))
            target_from_fixed, stamp = self._lookup_locked(target, fixed_frame, int(target_time_ns))
            return StampedTransform.from_transform(strip_frame_id(target), strip_frame_id(source), stamp,
                                                   target_from_fixed @ fixed_from_source)
        return self._wait(attempt, timeout_s)

    def can_transform(self, target: str, source: str, time_ns: int = 0, timeout_s: float = 0.0) -> bool:
        try:
            self.lookup_transform(target, source, time_ns, timeout_s)
            return True
        except TransformException:
            return False

    def can_transform_full(self, target: str, target_time_ns: int, source: str, source_time_ns: int,
                           fixed_frame: str, timeout_s: float = 0.0) -> bool:
        try:
            self.lookup_transform_full(target, target_time_ns, source, source_time_ns, fixed_frame, timeout_s)
            return True
        except TransformException:
            return False

    def lookup_velocity(self, tracking_frame: str, observation_frame: str, time_ns: int = 0,
                        averaging_interval_s: float = 0.1) -> Velocity:
        """Velocity of ``tracking_frame`` relative to ``observation_frame``, expressed in ``observation_frame``,
        from its poses half an averaging interval either side of ``time_ns`` (kept inside the data, as tf2's
        lookupVelocity does)."""
        if averaging_interval_s <= 0:
            raise InvalidArgumentException(f"averaging interval must be > 0, got {averaging_interval_s}")
        with self._condition:
            tracking = strip_frame_id(tracking_frame)
            observation = strip_frame_id(observation_frame)
            stamp = int(time_ns) if time_ns else self._latest_common_ns(observation, tracking)
            half = int(averaging_interval_s * 1e9 / 2)
            from_source, from_target = self._path(observation, tracking, stamp)
            spans = [(self._edges[f].oldest_ns(), self._edges[f].latest_ns()) for f in from_source + from_target]
            oldest = max((a for a, _ in spans if a is not None), default=stamp - half)
            latest = min((b for _, b in spans if b is not None), default=stamp + half)
            start, end = max(stamp - half, oldest), min(stamp + half, latest)
            if end <= start:
                raise ExtrapolationException(f"Lookup would require extrapolation: no data around "
                                             f"{_seconds(stamp)} to compute the velocity of [{tracking}] in "
                                             f"[{observation}]")
            before, _ = self._lookup_locked(observation, tracking, start)
            after, _ = self._lookup_locked(observation, tracking, end)
        dt = (end - start) / 1e9
        linear = (after.t - before.t) / dt
        delta = after.R @ before.R.T
        angle = float(np.arccos(np.clip((np.trace(delta) - 1.0) / 2.0, -1.0, 1.0)))
        if angle < 1e-12:
            angular = np.zeros(3)
        else:
            axis = np.array([delta[2, 1] - delta[1, 2], delta[0, 2] - delta[2, 0], delta[1, 0] - delta[0, 1]])
            angular = axis / (2.0 * np.sin(angle)) * angle / dt
        return Velocity(tuple(float(v) for v in linear), tuple(float(v) for v in angular), (start + end) // 2)

    # -- waiting without blocking ---------------------------------------------------------------
    def wait_for_transform_async(self, target: str, source: str, time_ns: int = 0) -> Future:
        """A future that completes (with the transform) once target <- source at ``time_ns`` can be looked up;
        it never blocks a thread. Cancel it to stop waiting."""
        future: Future = Future()
        try:
            result = self.lookup_transform(target, source, time_ns)
        except InvalidArgumentException as exc:
            future.set_exception(exc)
            return future
        except TransformException:
            with self._condition:
                self._waiters.append((target, source, int(time_ns), future))
            return future
        future.set_result(result)
        return future

    def _ready_waiters(self) -> list[tuple[Future, StampedTransform]]:
        ready, pending = [], []
        for target, source, time_ns, future in self._waiters:
            if future.cancelled():
                continue
            try:
                transform, stamp = self._lookup_locked(target, source, time_ns)
            except TransformException:
                pending.append((target, source, time_ns, future))
                continue
            ready.append((future, StampedTransform.from_transform(strip_frame_id(target), strip_frame_id(source),
                                                                  stamp, transform)))
        self._waiters = pending
        return ready

    # -- introspection --------------------------------------------------------------------------
    def all_frames_as_string(self) -> str:
        """tf2's allFramesAsString: one line per frame with its parent."""
        with self._condition:
            return "".join(f"Frame {child} exists with parent {edge.latest_parent}.\n"
                           for child, edge in sorted(self._edges.items()))

    def all_frames_as_yaml(self, current_time_ns: int | None = None) -> str:
        """tf2's allFramesAsYAML: per frame its parent, broadcaster, rate and the span of its data (seconds)."""
        with self._condition:
            lines = []
            for child, edge in sorted(self._edges.items()):
                oldest, latest = edge.oldest_ns() or 0, edge.latest_ns() or 0
                span = (latest - oldest) / 1e9
                rate = (len(edge.stamps) - 1) / span if span > 0 else 10000.0
                lines += [f"{child}: ", f"  parent: '{edge.latest_parent}'",
                          f"  broadcaster: '{edge.authority}'", f"  rate: {rate:.3f}",
                          f"  most_recent_transform: {latest / 1e9:.6f}",
                          f"  oldest_transform: {oldest / 1e9:.6f}"]
                if current_time_ns is not None:
                    lines.append(f"  transform_delay: {(current_time_ns - latest) / 1e9 if latest else 0.0:.6f}")
                lines.append(f"  buffer_length: {span:.3f}")
            return "\n".join(lines) + ("\n" if lines else "")
