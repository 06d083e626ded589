"""False-positive and false-negative proxies that need no ground truth (pure Python).

Per camera, from its tracker's output (``TrackProxies``):
- ``short_lived_ratio`` (FP proxy): of the tracks that ended in the window, the share that never confirmed or
  lived under ``short_s``: a detector inventing objects leaves flickering tracks.
- ``vanished_mid_view_ratio`` (FN proxy): of the confirmed tracks that ended, the share whose last observed box was
  away from the image border and not covered by another track: the object did not leave the view, the detector
  stopped seeing it.
- ``coasting_mid_view_ratio`` (FN proxy): of the confirmed track-frames, the share where the track went without a
  detection while its box was mid-view and uncovered.
- ``low_score_update_ratio`` (FN proxy): of the updates of confirmed tracks, the share made by a detection below
  the tracker's high-score threshold: as the detector degrades, the objects it still finds are found with less
  confidence, and the objects it misses are the ones that would have scored lower still. Unlike the two above it
  does not need tracks to end or coast, which stop happening when tracks no longer form at all.

Across cameras whose views overlap (``CrossCameraProxy``): ``cross_camera_miss_ratio`` (FN proxy) of camera B:
of the objects another camera puts on the ground inside B's view and range, the share B has nothing near.
Lifting uses the bottom centre of a box (coarse for a car, which is why the radius grows with range); a camera
whose calibration is off raises it too, so it is read beside the calibration health.

Shadow disagreement (1 - the shadow model's F1 against the primary) is computed by the detector runtime.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from perception_nodes.boxes import iou_matrix

TENTATIVE, CONFIRMED, LOST = 0, 1, 2  # Track.STATE_*


@dataclass
class TrackView:
    track_id: int
    state: int
    box_xyxy: tuple[float, float, float, float]
    hits: int
    frames_since_update: int
    score: float  # of the detection that last updated the track


@dataclass
class _Life:
    first_s: float
    last_update_s: float
    confirmed: bool = False
    mid_view_at_update: bool = False


@dataclass
class ProxyParams:
    window_s: float = 60.0
    border_px: float = 16.0  # a box within this of the image edge may be leaving the view
    short_s: float = 1.0  # an ended track observed for less than this was short-lived
    cover_ioa: float = 0.3  # a box this much inside another track's box is covered (occluded), not missed
    # The tracker's high-score threshold: a confirmed track updated by a detection below it was held by the
    # second (low-score) association, the detector barely seeing an object it saw well before.
    low_score: float = 0.5


class TrackProxies:
    """FP/FN proxies of one camera's tracks; ``update`` with every tracker output (tentative tracks included)."""

    def __init__(self, width: int, height: int, params: ProxyParams | None = None):
        self.width, self.height = int(width), int(height)
        self.params = params or ProxyParams()
        self._lives: dict[int, _Life] = {}
        self._ended: deque[tuple[float, bool, bool, bool]] = deque()  # (t, confirmed, short_lived, vanished_mid)
        # (t, confirmed track-frames, coasting mid-view, confirmed updates, of which by a low-score detection)
        self._frames: deque[tuple[float, int, int, int, int]] = deque()

    def _mid_view(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes away from the image border and not mostly inside another box of the same frame."""
        if len(boxes) == 0:
            return np.zeros(0, bool)
        b = self.params.border_px
        inside = (boxes[:, 0] > b) & (boxes[:, 1] > b) & (boxes[:, 2] < self.width - b) & \
            (boxes[:, 3] < self.height - b)
        covered = np.zeros(len(boxes), bool)
        if len(boxes) > 1:
            x1 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
            y1 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
            x2 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
            y2 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
            overlap = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
            area = np.clip((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6, None)
            ioa = overlap / area[:, None]
            np.fill_diagonal(ioa, 0.0)
            covered = ioa.max(1) >= self.params.cover_ioa
        return inside & ~covered

    def update(self, t_s: float, tracks: list[TrackView]) -> list[tuple[str, int, float]]:
        """Take one tracker output; returns the frames worth capturing: (reason, track id, frame time), for a
        confirmed track's first missed frame mid-view ("coasting_mid_view", this frame) and a short-lived track's
        last detection ("short_lived")."""
        events = []
        boxes = np.asarray([t.box_xyxy for t in tracks], dtype=np.float64).reshape(-1, 4)
        mid = self._mid_view(boxes)
        seen = set()
        confirmed_frames = coasting = updated = low_scored = 0
        for track, is_mid in zip(tracks, mid):
            seen.add(track.track_id)
            life = self._lives.get(track.track_id)
            if life is None:
                life = self._lives[track.track_id] = _Life(t_s, t_s)
            if track.state in (CONFIRMED, LOST):
                life.confirmed = True
                confirmed_frames += 1
                if track.frames_since_update > 0 and is_mid:
                    coasting += 1
                    if track.frames_since_update == 1:
                        events.append(("coasting_mid_view", track.track_id, t_s))
                elif track.frames_since_update == 0:
                    updated += 1
                    low_scored += track.score < self.params.low_score
            if track.frames_since_update == 0:
                life.last_update_s = t_s
                life.mid_view_at_update = bool(is_mid)
        for track_id in [i for i in self._lives if i not in seen]:
            life = self._lives.pop(track_id)
            short = (not life.confirmed) or (life.last_update_s - life.first_s) < self.params.short_s
            self._ended.append((t_s, life.confirmed, short, life.confirmed and life.mid_view_at_update))
            if short:
                events.append(("short_lived", track_id, life.last_update_s))
        self._frames.append((t_s, confirmed_frames, coasting, updated, low_scored))
        horizon = t_s - self.params.window_s
        while self._ended and self._ended[0][0] < horizon:
            self._ended.popleft()
        while self._frames and self._frames[0][0] < horizon:
            self._frames.popleft()
        return events

    def values(self) -> dict[str, float | None]:
        ended = list(self._ended)
        confirmed_ended = [e for e in ended if e[1]]
        track_frames = sum(f[1] for f in self._frames)
        updates = sum(f[3] for f in self._frames)
        return {"short_lived_ratio": (sum(e[2] for e in ended) / len(ended)) if ended else None,
                "vanished_mid_view_ratio": (sum(e[3] for e in confirmed_ended) / len(confirmed_ended))
                if confirmed_ended else None,
                "coasting_mid_view_ratio": (sum(f[2] for f in self._frames) / track_frames) if track_frames else None,
                "low_score_update_ratio": (sum(f[4] for f in self._frames) / updates) if updates else None,
                "ended_tracks": float(len(ended))}


VEHICLE_CLASSES = frozenset({0, 1})  # car, truck: one group (a truck seen as a car is still there)


def _group(class_id: int) -> int:
    return 0 if int(class_id) in VEHICLE_CLASSES else int(class_id)


@dataclass
class CrossCameraParams:
    max_range_m: float = 35.0  # objects farther from camera B than this are not held against it
    radius_m: float = 2.5  # "near" in the map, plus radius_per_m of each camera's range
    radius_per_m: float = 0.06
    margin_px: float = 24.0  # inside B's image by at least this much


@dataclass
class CrossCameraProxy:
    """Cross-camera disagreement where views overlap; ``cameras`` maps camera id -> CameraGeometry."""

    cameras: dict
    params: CrossCameraParams = field(default_factory=CrossCameraParams)
    window: int = 3000

    def __post_init__(self):
        self._outcomes: dict[str, deque] = {cam: deque(maxlen=self.window) for cam in self.cameras}

    def set_camera(self, camera_id: str, geometry) -> None:
        """Add or update a camera (its pose from TF can change)."""
        self.cameras[camera_id] = geometry
        self._outcomes.setdefault(camera_id, deque(maxlen=self.window))

    def ground_points(self, camera_id: str, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map points (N, 2) of the boxes' bottom centres and which are valid."""
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        pixels = np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2.0, boxes[:, 3]])
        points, valid = self.cameras[camera_id].intersect_plane(pixels, 0.0)
        return points[:, :2], valid

    def observe(self, detections: dict[str, tuple[np.ndarray, np.ndarray]], focus: str | None = None) -> None:
        """One instant of every camera: camera id -> (boxes xyxy (N, 4), class ids (N,)). With ``focus``, only
        the pairs that involve that camera are judged (it is the one that just delivered)."""
        lifted = {}
        for cam, (boxes, classes) in detections.items():
            if cam not in self.cameras:
                continue
            points, valid = self.ground_points(cam, boxes)
            lifted[cam] = (points[valid], np.asarray(classes).reshape(-1)[valid])
        for b, geometry in self.cameras.items():
            if b not in lifted:
                continue
            b_points, b_classes = lifted[b]
            for a, (a_points, a_classes) in lifted.items():
                if a == b or len(a_points) == 0 or (focus is not None and focus not in (a, b)):
                    continue
                pixels, depth = geometry.project(np.column_stack([a_points, np.zeros(len(a_points))]))
                m = self.params.margin_px
                visible = (depth > 0) & (pixels[:, 0] > m) & (pixels[:, 1] > m) & \
                    (pixels[:, 0] < geometry.width - m) & (pixels[:, 1] < geometry.height - m)
                range_b = np.linalg.norm(a_points - geometry.position[:2], axis=1)
                visible &= range_b <= self.params.max_range_m
                if not visible.any():
                    continue
                range_a = np.linalg.norm(a_points - self.cameras[a].position[:2], axis=1)
                for index in np.flatnonzero(visible):
                    radius = self.params.radius_m + self.params.radius_per_m * (range_a[index] + range_b[index])
                    same = np.array([_group(c) == _group(a_classes[index]) for c in b_classes], bool)
                    near = len(b_points) and same.any() and \
                        np.min(np.linalg.norm(b_points[same] - a_points[index], axis=1)) <= radius
                    self._outcomes[b].append(0 if near else 1)

    def values(self) -> dict[str, float | None]:
        return {cam: (float(np.mean(v)) if v else None) for cam, v in self._outcomes.items()}


def detection_truth(rows: np.ndarray, truth_boxes, truth_classes, evaluated, iou_threshold: float = 0.5
                    ) -> tuple[int, int, int, int]:
    """(false positives, detections, false negatives, evaluated truths) of one frame: one-to-one matching by IoU
    within the same class against the evaluated truths; an unmatched detection on an ignored truth (too small or
    too hidden to be scored) counts neither way."""
    from scipy.optimize import linear_sum_assignment

    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    boxes = np.asarray(truth_boxes, dtype=np.float64).reshape(-1, 4)
    classes = np.asarray(truth_classes).reshape(-1).astype(int)
    evaluated = np.asarray(evaluated, bool).reshape(-1)
    scored, scored_classes, ignored = boxes[evaluated], classes[evaluated], boxes[~evaluated]
    matched = np.zeros(len(rows), bool)
    found = 0
    if len(rows) and len(scored):
        iou = iou_matrix(rows[:, :4], scored)
        iou[rows[:, 5][:, None].astype(int) != scored_classes[None, :]] = 0.0
        r, c = linear_sum_assignment(-iou)
        ok = iou[r, c] >= iou_threshold
        matched[r[ok]] = True
        found = int(ok.sum())
    on_ignored = np.zeros(len(rows), bool)
    if len(rows) and len(ignored):
        on_ignored = iou_matrix(rows[:, :4], ignored).max(1) >= iou_threshold
    false_pos = int(np.sum(~matched & ~on_ignored))
    return false_pos, int(matched.sum()) + false_pos, int(len(scored)) - found, int(len(scored))
