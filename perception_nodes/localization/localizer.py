"""The localizer's core, without ROS: camera tracks in, objects on the map and the site's state out.

The node (``nodes/localizer.py``), the evaluation and the bench all drive this
class, so what is measured is what runs.
"""
from __future__ import annotations

import math

from dataclasses import dataclass, field, replace

import numpy as np

from perception_nodes.boxes import covered_fraction
from perception_nodes.errors import PerceptionError
from perception_nodes.localization.fusion import FusionParams, MapTracker, ObjectState, Observation, UpdateResult
from perception_nodes.localization.lifting import CameraGeometry, LiftParams, MapHeadingPrior, lift_boxes, \
    lift_with_priors
from perception_nodes.localization.scene_state import Event, SceneParams, SceneUnderstanding


class LocalizationError(PerceptionError):
    """A camera message the localizer cannot use (unknown camera, bad arrays)."""


@dataclass
class TrackBatch:
    """One camera's tracks at one stamp (arrays over N tracks)."""

    camera_id: str
    stamp: float
    track_ids: np.ndarray
    boxes_xyxy: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    embeddings: np.ndarray | None = None  # (N, D) or None

    def validate(self) -> "TrackBatch":
        n = len(self.track_ids)
        boxes = np.asarray(self.boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        if len(boxes) != n or len(self.class_ids) != n or len(self.scores) != n:
            raise LocalizationError(f"camera {self.camera_id}: {n} tracks but {len(boxes)} boxes, "
                                    f"{len(self.class_ids)} classes, {len(self.scores)} scores")
        if self.embeddings is not None and len(self.embeddings) != n:
            raise LocalizationError(f"camera {self.camera_id}: {len(self.embeddings)} embeddings for {n} tracks")
        if not np.isfinite(self.stamp):
            raise LocalizationError(f"camera {self.camera_id}: stamp is not finite")
        return self


@dataclass
class FuseReport:
    result: UpdateResult
    observations: int
    rejected_boxes: int      # NaN/inf/empty boxes, or rays that do not meet the ground in range
    lifted: object = None    # the LiftedBoxes, for evaluation


@dataclass
class LocalizerConfig:
    fusion: FusionParams = field(default_factory=FusionParams)
    lift: LiftParams = field(default_factory=LiftParams)
    scene: SceneParams = field(default_factory=SceneParams)
    use_heading: bool = True       # footprint lifting with the track's (or the map's) heading
    use_appearance: bool = True
    # A moving object coasting beyond the site map's outline by more than this has left the site (see in_view).
    site_margin_m: float = 0.0


class Localizer:
    """Lifts camera tracks through their camera, fuses them into map objects, keeps the site's state."""

    def __init__(self, semantic_map=None, config: LocalizerConfig | None = None):
        self.config = config or LocalizerConfig()
        self.map = semantic_map
        self.cameras: dict[str, CameraGeometry] = {}   # every camera that has reported, as last seen
        self.site_outline = _outline(semantic_map)
        self.tracker = MapTracker(self.config.fusion, coverage=self.in_view)
        self.scene = SceneUnderstanding(semantic_map, self.config.scene) if semantic_map is not None else None
        self.prior = MapHeadingPrior(semantic_map) if semantic_map is not None and self.config.use_heading else None
        self.angle_sigma: dict[str, float] = {}
        self.image_shift: dict[str, tuple[float, float]] = {}

    def in_view(self, xy: np.ndarray) -> np.ndarray:
        """(N,) whether map points (N, 2) lie on the site (within ``site_margin_m`` of its map's outline, where
        it has one) and any camera that has reported sees the ground there."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if self.site_outline is not None:
            # Hull facets as unit normals n and offsets b: n . p + b is the signed distance outside each facet.
            outside = (xy @ self.site_outline[:, :2].T + self.site_outline[:, 2]).max(axis=1)
            on_site = outside <= self.config.site_margin_m
        else:
            on_site = np.ones(len(xy), dtype=bool)
        seen = np.zeros(len(xy), dtype=bool)
        for camera in self.cameras.values():
            seen |= camera.sees_ground(xy)
        return seen & on_site

    def set_camera_uncertainty(self, camera_id: str, angle_sigma_rad: float,
                               image_shift_px: tuple[float, float] | None = None) -> None:
        """Down-weight a camera that calibration health found off its calibrated pose by about this angle;
        with ``image_shift_px`` (where its image lies against the calibration) its boxes are also moved back
        by that shift before lifting, which undoes most of a small rotation. 0 / None: back to normal."""
        self.angle_sigma[camera_id] = float(angle_sigma_rad)
        if image_shift_px is None or not all(math.isfinite(v) for v in image_shift_px):
            self.image_shift.pop(camera_id, None)
        else:
            self.image_shift[camera_id] = (float(image_shift_px[0]), float(image_shift_px[1]))

    def fuse(self, camera: CameraGeometry, batch: TrackBatch) -> FuseReport:
        """Lift one camera message and fuse it (``camera``: its intrinsics and pose at the batch's stamp)."""
        batch.validate()
        self.cameras[batch.camera_id] = camera
        if self.angle_sigma.get(batch.camera_id, 0.0) > camera.angle_sigma_rad:
            # A copy: the caller's geometry (shared, cached) stays as its calibration says.
            camera = replace(camera, angle_sigma_rad=self.angle_sigma[batch.camera_id])
        boxes = np.asarray(batch.boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        shift = self.image_shift.get(batch.camera_id)
        if shift is not None:
            boxes = boxes - np.array([shift[0], shift[1], shift[0], shift[1]])
        finite = np.all(np.isfinite(boxes), axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        classes = np.asarray(batch.class_ids, dtype=np.int64)
        safe_boxes = np.where(finite[:, None], boxes, [0.0, 0.0, 1.0, 1.0])
        if self.config.use_heading:
            hk = self.tracker.headings_of(batch.camera_id, batch.track_ids)
            heading = np.array([h for h, _ in hk], dtype=np.float64)
            known = np.array([k for _, k in hk], dtype=bool)
            lifted = lift_with_priors(camera, safe_boxes, classes, heading, known, self.prior, self.config.lift)
        else:
            lifted = _bottom_edge_lift(camera, safe_boxes, classes, self.config.lift)
        usable = lifted.valid & finite
        embeddings = batch.embeddings if self.config.use_appearance else None
        covered = covered_fraction(safe_boxes)
        observations = [Observation(batch.camera_id, int(batch.track_ids[i]), lifted.xy[i], lifted.cov[i],
                                    int(classes[i]), float(batch.scores[i]),
                                    None if embeddings is None or not len(embeddings[i]) else
                                    np.asarray(embeddings[i], dtype=np.float64),
                                    int(lifted.truncated[i]), float(lifted.range_m[i]), float(covered[i]))
                        for i in range(len(boxes)) if usable[i]]
        result = self.tracker.update(batch.stamp, observations)
        if result == UpdateResult.RESET and self.scene is not None:
            self.scene.reset()
        return FuseReport(result, len(observations), int((~usable).sum()), lifted)

    def snapshot(self, t: float | None = None, include_tentative: bool = False) -> list[ObjectState]:
        return self.tracker.snapshot(t, include_tentative)

    def update_scene(self, t: float, objects: list[ObjectState]) -> list[Event]:
        """Advance the stall/zone state with a snapshot (coasting objects included, at their predicted positions:
        freezing their memberships while they coast was measured, see README "Localization")."""
        if self.scene is None:
            return []
        ids = [o.global_id for o in objects]
        return self.scene.update(t, ids, [o.class_id for o in objects], np.array([o.xy for o in objects]).reshape(-1, 2),
                                 np.array([o.velocity for o in objects]).reshape(-1, 2))


def _outline(semantic_map) -> np.ndarray | None:
    """(F, 3) facets (unit normal, offset) of the convex hull of the map's geometry; None without one."""
    if semantic_map is None:
        return None
    points = np.unique(np.asarray(semantic_map.points(), dtype=np.float64).reshape(-1, 2), axis=0)
    if len(points) < 3:
        return None
    from scipy.spatial import ConvexHull, QhullError

    try:
        return ConvexHull(points).equations
    except QhullError:  # all on one line: no area to be inside of
        return None


def _bottom_edge_lift(camera: CameraGeometry, boxes: np.ndarray, classes: np.ndarray, params: LiftParams):
    """Ablation: the box's bottom-centre pixel put on the ground, no footprint and no border handling."""
    from perception_nodes.localization.lifting import LiftedBoxes

    lifted = lift_boxes(camera, boxes, classes, params=params)
    pixels = np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]])
    ground, valid = camera.intersect_plane(pixels, 0.0)
    return LiftedBoxes(ground[:, :2], lifted.cov, valid & lifted.valid, lifted.range_m, lifted.view_dir,
                       lifted.truncated)
