"""Extrinsic calibration: a camera's pose from ground markers (pure Python + OpenCV).

Given >= 4 markers with known map coordinates and their pixel positions, the
pose is estimated with ``cv2.solvePnPRansac`` (outlier markers are rejected)
and refined with Levenberg-Marquardt on the inliers. The result converts into
the calibration file's ``extrinsics`` (camera body position + yaw/pitch/roll),
which the URDF and the TF tree are generated from.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from perception_nodes.errors import ConfigError, PerceptionError
from perception_nodes.fileio import read_yaml_mapping
from perception_nodes.geometry import Transform, camera_mount_angles, rotation_angle_deg


class CalibrationError(PerceptionError):
    """The markers do not determine a pose (too few, degenerate, or no consistent solution)."""


@dataclass
class ExtrinsicsResult:
    T_map_optical: Transform
    reprojection_rms_px: float
    reprojection_max_px: float
    inliers: np.ndarray  # indices of the markers used
    markers: int

    @property
    def T_map_body(self) -> Transform:
        return self.T_map_optical @ Transform.body_from_optical().inverse()

    def extrinsics(self, parent_frame: str = "map") -> dict:
        yaw, pitch, roll = camera_mount_angles(self.T_map_body)
        return {"parent_frame": parent_frame, "position": [float(v) for v in self.T_map_body.t],
                "yaw_deg": float(yaw), "pitch_deg": float(pitch), "roll_deg": float(roll),
                "reprojection_rms_px": float(self.reprojection_rms_px), "markers_used": int(len(self.inliers))}


def solve_extrinsics(map_points, pixels, K, D, ransac_threshold_px: float = 3.0) -> ExtrinsicsResult:
    """Estimate map <- optical from marker correspondences."""
    object_points = np.asarray(map_points, dtype=np.float64).reshape(-1, 3)
    image_points = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    if object_points.shape[0] != image_points.shape[0]:
        raise CalibrationError(f"{object_points.shape[0]} map points but {image_points.shape[0]} pixels")
    if object_points.shape[0] < 4:
        raise CalibrationError(f"need at least 4 markers, got {object_points.shape[0]}")
    if not (np.all(np.isfinite(object_points)) and np.all(np.isfinite(image_points))):
        raise CalibrationError("marker coordinates must be finite numbers")
    spread = np.linalg.svd(object_points - object_points.mean(axis=0), compute_uv=False)
    if spread[1] < 1e-3:
        raise CalibrationError("markers are (nearly) collinear: the pose is not determined")
    K = np.asarray(K, dtype=np.float64)
    D = np.asarray(D, dtype=np.float64)
    ok, rvec, tvec, inliers = cv2.solvePnPRansac(object_points, image_points, K, D, flags=cv2.SOLVEPNP_SQPNP,
                                                 reprojectionError=ransac_threshold_px, iterationsCount=500,
                                                 confidence=0.999)
    if not ok or inliers is None or len(inliers) < 4:
        raise CalibrationError("no pose is consistent with at least 4 markers")
    inliers = inliers.ravel()
    # RANSAC scored markers against a pose from a minimal sample; judge them again
    # against the refined pose so good markers are not lost to that sample's noise.
    for _ in range(3):
        rvec, tvec = cv2.solvePnPRefineLM(object_points[inliers], image_points[inliers], K, D, rvec, tvec)
        projected, _ = cv2.projectPoints(object_points, rvec, tvec, K, D)
        residuals = np.linalg.norm(projected.reshape(-1, 2) - image_points, axis=1)
        refined = np.flatnonzero(residuals < ransac_threshold_px)
        if len(refined) < 4 or np.array_equal(refined, inliers):
            break
        inliers = refined
    projected, _ = cv2.projectPoints(object_points[inliers], rvec, tvec, K, D)
    residuals = np.linalg.norm(projected.reshape(-1, 2) - image_points[inliers], axis=1)
    R, _ = cv2.Rodrigues(rvec)
    T_optical_map = Transform(R, tvec.ravel())
    return ExtrinsicsResult(T_optical_map.inverse(), float(np.sqrt(np.mean(residuals ** 2))),
                            float(residuals.max()), inliers, int(object_points.shape[0]))


def load_markers(path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Markers YAML: ``markers: [{id: a, map: [x, y, z], pixel: [u, v]}, ...]`` (metres, pixels)."""
    entries = read_yaml_mapping(path, "markers file").get("markers")
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected 'markers: [{{id, map: [x, y, z], pixel: [u, v]}}, ...]'")
    points, pixels, ids = [], [], []
    for index, entry in enumerate(entries):
        try:
            points.append([float(v) for v in entry["map"]])
            pixels.append([float(v) for v in entry["pixel"]])
            ids.append(str(entry.get("id", index)))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{path}: marker {index} needs map [x, y, z] and pixel [u, v]") from None
        if len(points[-1]) != 3 or len(pixels[-1]) != 2:
            raise ConfigError(f"{path}: marker {index} needs map [x, y, z] and pixel [u, v]")
    return np.asarray(points), np.asarray(pixels), ids


def synthetic_markers(camera, lot_size, count: int, rng: np.random.Generator, margin_px: float = 20.0,
                      spacing_m: float = 1.0, max_distance_m: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    """Ground markers (z = 0) of a synthetic lot that ``camera`` (a CameraModel) sees, with exact pixels.

    Markers lie on a ``spacing_m`` survey grid over the lot, inside the image
    (``margin_px`` from its border) and at most ``max_distance_m`` from the
    camera: far markers span few pixels per metre and add little.
    """
    half_x, half_y = lot_size[0] / 2.0, lot_size[1] / 2.0
    xs, ys = np.meshgrid(np.arange(-half_x, half_x + 1e-9, spacing_m), np.arange(-half_y, half_y + 1e-9, spacing_m))
    ground = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1)
    pixels, depth = camera.project(ground)
    w, h = camera.size
    visible = (depth > 0.5) & (pixels[:, 0] > margin_px) & (pixels[:, 0] < w - margin_px) & \
              (pixels[:, 1] > margin_px) & (pixels[:, 1] < h - margin_px) & (depth < max_distance_m)
    candidates = np.flatnonzero(visible)
    if candidates.size < count:
        raise CalibrationError(f"camera {camera.spec.id} sees only {candidates.size} ground markers, {count} wanted")
    chosen = rng.choice(candidates, size=count, replace=False)
    return ground[chosen], pixels[chosen]


def pose_errors(estimated: Transform, truth: Transform) -> tuple[float, float]:
    """(position error m, rotation error deg) between two poses of the same frame."""
    return float(np.linalg.norm(estimated.t - truth.t)), rotation_angle_deg(estimated.R, truth.R)
