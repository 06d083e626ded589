"""Observations, filters and hits of the retrieval index, and its error codes (pure data, no ROS)."""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np

from perception_nodes.errors import PerceptionError

MAX_K = 1000


class RetrievalErrorCode(enum.IntEnum):
    """Mirrors ``ServiceStatus`` codes (``OK`` = 0 is not an error and never raised)."""

    INVALID_REQUEST = 1
    NOT_FOUND = 2
    UNAVAILABLE = 3
    INTERNAL_ERROR = 4


class RetrievalError(PerceptionError):
    """A retrieval request that cannot be served; ``code`` says which ``ServiceStatus`` answers it."""

    def __init__(self, code: RetrievalErrorCode, message: str):
        super().__init__(message)
        self.code = RetrievalErrorCode(code)


def invalid(message: str) -> RetrievalError:
    return RetrievalError(RetrievalErrorCode.INVALID_REQUEST, message)


@dataclass(frozen=True)
class Observation:
    """What is known about one indexed crop. Times are nanoseconds since the epoch (the image's stamp)."""

    camera_id: str
    stamp_ns: int
    class_id: int
    class_name: str = ""
    track_id: int = 0                      # 0: not tracked
    global_id: int = 0                     # 0: not localized
    map_xy: tuple[float, float] | None = None   # m, map frame
    heading: float | None = None           # rad, direction of motion in the map (None: unknown or standing)
    zone: str = ""                         # the site zone the object was in ("" when none)
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # xyxy px in the source image
    quality: float = 0.0                   # the crop selector's score (bigger is better)
    thumbnail: str = ""                    # file name under the store's thumbnail directory ("" when none)

    def validate(self) -> None:
        if not self.camera_id:
            raise invalid("an observation needs a camera_id")
        if self.stamp_ns < 0:
            raise invalid(f"stamp must not be negative, got {self.stamp_ns}")
        if self.class_id < 0:
            raise invalid(f"class_id must not be negative, got {self.class_id}")
        if self.map_xy is not None and not all(math.isfinite(v) for v in self.map_xy):
            raise invalid(f"map position must be finite, got {self.map_xy}")


@dataclass(frozen=True)
class QueryFilter:
    """Restricts a query; empty or None fields do not restrict. Times are ns; the region is a map box (m)."""

    camera_ids: tuple[str, ...] = ()
    start_ns: int | None = None
    end_ns: int | None = None
    region: tuple[float, float, float, float] | None = None  # min_x, min_y, max_x, max_y
    class_ids: tuple[int, ...] = ()
    zones: tuple[str, ...] = ()

    def validate(self) -> None:
        if self.start_ns is not None and self.end_ns is not None and self.end_ns < self.start_ns:
            raise invalid(f"filter end_time ({self.end_ns} ns) is before start_time ({self.start_ns} ns)")
        if self.region is not None:
            if len(self.region) != 4 or not all(math.isfinite(v) for v in self.region):
                raise invalid(f"filter region must be 4 finite numbers, got {self.region}")
            if self.region[2] < self.region[0] or self.region[3] < self.region[1]:
                raise invalid(f"filter region max is below its min: {self.region}")
        if any(c < 0 for c in self.class_ids):
            raise invalid(f"filter class ids must not be negative, got {self.class_ids}")

    @property
    def restricts(self) -> bool:
        return bool(self.camera_ids or self.start_ns is not None or self.end_ns is not None or
                    self.region is not None or self.class_ids or self.zones)


@dataclass
class Hit:
    """One ranked result; ``moved_by`` lists the re-ranking stages that changed its rank, in order."""

    item_id: int
    score_initial: float
    score_final: float
    rank_initial: int
    observation: Observation
    moved_by: list[str] = field(default_factory=list)


def check_k(k: int) -> int:
    if not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= MAX_K:
        raise invalid(f"k must be in 1..{MAX_K}, got {k}")
    return int(k)


def check_vector(vector, dim: int) -> np.ndarray:
    """One L2-normalised float32 row, or a RetrievalError saying what is wrong with it."""
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    if v.size != dim:
        raise invalid(f"embedding has {v.size} values, the index holds {dim}-dimensional embeddings")
    if not np.all(np.isfinite(v)):
        raise invalid("embedding has non-finite values")
    norm = float(np.linalg.norm(v))
    if norm < 1e-12:
        raise invalid("embedding is all zeros (no appearance)")
    return v / norm
