"""A transform tree buffer with tf2's semantics, in pure Python.

- Frames form a tree; each frame has one parent, set by the latest transform
  that names it as the child.
- Static edges hold for all time; dynamic edges keep a history of
  ``cache_duration_s`` and are interpolated between samples (linear
  translation, slerp rotation). Asking outside a dynamic edge's history raises
  :class:`ExtrapolationException`; tf2 never extrapolates.
- ``lookup_transform(target, source, time_ns)`` returns target <- source at
  that time, chaining edges through the common ancestor. ``time_ns == 0`` means
  "the latest time every edge on the path has data for".
- ``timeout_s`` waits (without spinning anything) for data to arrive from
  another thread, e.g. a listener's subscription callback.
Times are integer nanoseconds.
"""
from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass

import numpy as np

from perception_nodes.errors import PerceptionError
from perception_nodes.geometry import Transform, matrix_from_quaternion, slerp


class TransformException(PerceptionError):
    """Base of the transform errors (tf2_ros.TransformException)."""


class LookupException(TransformException):
    """A frame is unknown (tf2_ros.LookupException)."""


class ConnectivityException(TransformException):
    """Both frames exist but are in different trees (tf2_ros.ConnectivityException)."""


class ExtrapolationException(TransformException):
    """The time is outside the data of an edge on the path (tf2_ros.ExtrapolationException)."""


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


class _Edge:
    """Samples of one child frame's transform to its parent."""

    def __init__(self, parent: str, static: bool):
        self.parent = parent
        self.static = static
        self.stamps: list[int] = []
        self.samples: list[StampedTransform] = []

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

    def latest_ns(self) -> int | None:
        return None if self.static else self.stamps[-1]

    def at(self, stamp_ns: int, child: str) -> Transform:
        if self.static:
            return self.samples[0].transform()
        first, last = self.stamps[0], self.stamps[-1]
        if stamp_ns < first or stamp_ns > last:
            when = "past" if stamp_ns < first else "future"
            raise ExtrapolationException(
                f"lookup of {self.parent} <- {child} at {stamp_ns / 1e9:.6f} s would extrapolate into the {when}: "
                f"data spans [{first / 1e9:.6f}, {last / 1e9:.6f}] s")
        index = bisect.bisect_left(self.stamps, stamp_ns)
        if self.stamps[index] == stamp_ns:
            return self.samples[index].transform()
        a, b = self.samples[index - 1], self.samples[index]
        fraction = (stamp_ns - a.stamp_ns) / (b.stamp_ns - a.stamp_ns)
        translation = np.asarray(a.translation) + fraction * (np.asarray(b.translation) - np.asarray(a.translation))
        rotation = slerp(a.rotation, b.rotation, fraction)
        return Transform(matrix_from_quaternion(rotation), translation)


class TransformBuffer:
    """Thread-safe transform tree (tf2_ros.Buffer semantics without ROS)."""

    def __init__(self, cache_duration_s: float = 10.0):
        if cache_duration_s <= 0:
            raise ValueError("cache_duration_s must be > 0")
        self.cache_ns = int(cache_duration_s * 1e9)
        self._edges: dict[str, _Edge] = {}
        self._condition = threading.Condition()

    # -- writing --------------------------------------------------------------------------
    def set_transform(self, transform: StampedTransform, static: bool = False) -> None:
        if not transform.parent or not transform.child:
            raise TransformException("a transform needs non-empty parent and child frame ids")
        if transform.parent == transform.child:
            raise TransformException(f"frame {transform.child} cannot be its own parent")
        values = (*transform.translation, *transform.rotation)
        if not np.all(np.isfinite(values)) or np.linalg.norm(transform.rotation) < 1e-9:
            raise TransformException(f"transform {transform.parent} <- {transform.child} has invalid values {values}")
        with self._condition:
            if self._creates_cycle(transform.parent, transform.child):
                raise TransformException(f"{transform.parent} <- {transform.child} would close a loop in the tree")
            edge = self._edges.get(transform.child)
            if edge is None or edge.parent != transform.parent or edge.static != static:
                edge = _Edge(transform.parent, static)  # re-parenting replaces the old history
                self._edges[transform.child] = edge
            edge.insert(transform, self.cache_ns)
            self._condition.notify_all()

    def _creates_cycle(self, parent: str, child: str) -> bool:
        frame = parent
        while frame in self._edges:
            frame = self._edges[frame].parent
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
            return set(self._edges) | {e.parent for e in self._edges.values()}

    def _chain(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._edges:
            chain.append(self._edges[chain[-1]].parent)
        return chain

    def _path(self, target: str, source: str) -> tuple[list[str], list[str]]:
        known = set(self._edges) | {e.parent for e in self._edges.values()}
        for frame in (target, source):
            if frame not in known:
                raise LookupException(f'"{frame}" passed to lookup_transform does not exist')
        up_source, up_target = self._chain(source), self._chain(target)
        common = next((f for f in up_source if f in set(up_target)), None)
        if common is None:
            raise ConnectivityException(f'"{target}" and "{source}" are not part of the same tree '
                                    f"(roots {up_target[-1]} and {up_source[-1]})")
        return up_source[: up_source.index(common)], up_target[: up_target.index(common)]

    def _latest_common_ns(self, frames: list[str]) -> int:
        latest = [self._edges[f].latest_ns() for f in frames]
        dynamic = [t for t in latest if t is not None]
        return min(dynamic) if dynamic else 0

    def _lookup_locked(self, target: str, source: str, time_ns: int) -> tuple[Transform, int]:
        if target == source:
            if target not in self.frames():
                raise LookupException(f'"{target}" passed to lookup_transform does not exist')
            return Transform.identity(), time_ns
        from_source, from_target = self._path(target, source)
        stamp = time_ns if time_ns else self._latest_common_ns(from_source + from_target)
        # common <- source and common <- target, each a product of edges at `stamp`.
        common_from_source = Transform.identity()
        for frame in reversed(from_source):
            common_from_source = common_from_source @ self._edges[frame].at(stamp, frame)
        common_from_target = Transform.identity()
        for frame in reversed(from_target):
            common_from_target = common_from_target @ self._edges[frame].at(stamp, frame)
        return common_from_target.inverse() @ common_from_source, stamp

    def lookup_transform(self, target: str, source: str, time_ns: int = 0, timeout_s: float = 0.0) -> StampedTransform:
        """target <- source at ``time_ns`` (0: latest common time), waiting up to ``timeout_s`` for data."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._condition:
            while True:
                try:
                    transform, stamp = self._lookup_locked(target, source, int(time_ns))
                    return StampedTransform.from_transform(target, source, stamp, transform)
                except TransformException as exc:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        if timeout_s > 0:  # like tf2_ros: the last error, saying how long we waited
                            raise type(exc)(f"{exc} (waited {timeout_s:.3f} s)") from exc
                        raise
                    self._condition.wait(remaining)

    def can_transform(self, target: str, source: str, time_ns: int = 0) -> bool:
        try:
            self.lookup_transform(target, source, time_ns)
            return True
        except TransformException:
            return False

    def all_frames_as_yaml(self) -> str:
        """Frame -> parent listing for debugging (tf2's allFramesAsYAML)."""
        with self._condition:
            lines = [f"{child}:\n  parent: '{edge.parent}'\n  static: {str(edge.static).lower()}\n"
                     f"  latest_stamp_ns: {edge.latest_ns() or 0}" for child, edge in sorted(self._edges.items())]
        return "\n".join(lines)


