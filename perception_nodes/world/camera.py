"""Pinhole + plumb_bob camera model of a synthetic camera, posed in the map."""
from __future__ import annotations

import numpy as np

from perception_nodes.geometry import Transform, camera_body_transform
from perception_nodes.world.scene import CameraSpec


def body_pose(spec: CameraSpec) -> Transform:
    """map <- camera body (REP-103 x forward, y left, z up)."""
    return camera_body_transform(spec.position, spec.yaw_deg, spec.pitch_deg, spec.roll_deg)


def optical_pose(spec: CameraSpec) -> Transform:
    """map <- optical frame (z forward, x right, y down)."""
    return body_pose(spec) @ Transform.body_from_optical()


class CameraModel:
    """Projects map points into one camera's image."""

    def __init__(self, spec: CameraSpec):
        self.spec = spec
        self.K = np.array([[spec.fx, 0, spec.cx], [0, spec.fy, spec.cy], [0, 0, 1]], dtype=np.float64)
        self.D = np.asarray(spec.distortion, dtype=np.float64)
        self.has_distortion = bool(np.any(self.D != 0))
        self.T_map_optical = optical_pose(spec)
        self.T_optical_map = self.T_map_optical.inverse()

    @property
    def size(self) -> tuple[int, int]:
        return self.spec.width, self.spec.height

    def to_optical(self, points_map: np.ndarray) -> np.ndarray:
        return self.T_optical_map.apply(points_map)

    def project_pinhole(self, points_optical: np.ndarray) -> np.ndarray:
        """Undistorted pixel coordinates of optical-frame points (z > 0 assumed)."""
        z = points_optical[..., 2:3]
        return (points_optical[..., :2] / z) * [self.spec.fx, self.spec.fy] + [self.spec.cx, self.spec.cy]

    def distort_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Apply plumb_bob distortion to undistorted pixel coordinates."""
        if not self.has_distortion:
            return pixels
        k1, k2, p1, p2, k3 = self.D
        x = (pixels[..., 0] - self.spec.cx) / self.spec.fx
        y = (pixels[..., 1] - self.spec.cy) / self.spec.fy
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 ** 3
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return np.stack([xd * self.spec.fx + self.spec.cx, yd * self.spec.fy + self.spec.cy], axis=-1)

    def project(self, points_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pixels with distortion, depth z in the optical frame) of map points."""
        optical = self.to_optical(points_map)
        z = optical[..., 2]
        safe = np.where(z[..., None] > 1e-6, optical, np.array([0.0, 0.0, 1.0]))
        return self.distort_pixels(self.project_pinhole(safe)), z

    def pixel_rays_map(self) -> tuple[np.ndarray, np.ndarray]:
        """(origin, unit ray directions in the map (H, W, 3)) for every undistorted pixel centre."""
        w, h = self.size
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        rays = np.stack([(u - self.spec.cx) / self.spec.fx, (v - self.spec.cy) / self.spec.fy, np.ones_like(u)], axis=-1)
        rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
        return self.T_map_optical.t, rays @ self.T_map_optical.R.T
