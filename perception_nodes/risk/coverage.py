"""Which cameras see which zones of the site map (pure numpy): the risk node's "coverage lost over a zone"."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception_nodes.geometry import points_in_polygon


@dataclass(frozen=True)
class CoverageLoss:
    zone: str
    share_now: float   # of the zone's ground the live cameras see
    share_all: float   # of the zone's ground all cameras see


class CoverageModel:
    """Ground samples of every zone and, per camera, which of them it sees (in front, inside the image, within
    ``max_range_m``).

    ``add_camera`` takes anything with ``camera_id``, ``width``, ``height``, ``position`` and ``project`` (the
    localizer's CameraGeometry); cameras can arrive one by one as their CameraInfo and pose are known.
    """

    def __init__(self, zones, spacing_m: float = 1.0, max_range_m: float = 45.0, max_samples: int = 4000):
        self.max_range_m = max_range_m
        self._samples: dict[str, np.ndarray] = {}
        for zone in zones:
            poly = np.asarray(zone.polygon, dtype=np.float64)
            lo, hi = poly.min(axis=0), poly.max(axis=0)
            step = max(spacing_m, float(np.sqrt((hi - lo).prod() / max_samples)))
            xs = np.arange(lo[0] + step / 2, hi[0], step)
            ys = np.arange(lo[1] + step / 2, hi[1], step)
            grid = np.array(np.meshgrid(xs, ys)).reshape(2, -1).T if len(xs) and len(ys) else np.zeros((0, 2))
            inside = grid[points_in_polygon(grid, poly)] if len(grid) else grid
            self._samples[zone.name] = inside if len(inside) else poly.mean(axis=0, keepdims=True)
        self._seen: dict[str, dict[str, np.ndarray]] = {}  # camera -> zone -> bool per sample

    @property
    def cameras(self) -> list[str]:
        return sorted(self._seen)

    def add_camera(self, camera) -> None:
        seen = {}
        for name, xy in self._samples.items():
            points = np.column_stack([xy, np.zeros(len(xy))])
            pixels, depth = camera.project(points)
            ground_range = np.linalg.norm(xy - np.asarray(camera.position)[:2], axis=1)
            seen[name] = ((depth > 0.1) & (pixels[:, 0] >= 0) & (pixels[:, 0] < camera.width)
                          & (pixels[:, 1] >= 0) & (pixels[:, 1] < camera.height) & (ground_range <= self.max_range_m))
        self._seen[camera.camera_id] = seen

    def share(self, zone: str, cameras) -> float:
        """Share of the zone's ground samples seen by at least one of ``cameras``."""
        samples = self._samples[zone]
        union = np.zeros(len(samples), dtype=bool)
        for camera in cameras:
            seen = self._seen.get(camera, {}).get(zone)
            if seen is not None:
                union |= seen
        return float(union.mean()) if len(union) else 0.0

    def lost(self, zones, live_cameras, min_share: float) -> list[CoverageLoss]:
        """Zones whose coverage by ``live_cameras`` fell below ``min_share`` of what all known cameras see."""
        out = []
        live = [c for c in live_cameras if c in self._seen]
        for zone in zones:
            if zone not in self._samples:
                continue
            share_all = self.share(zone, self._seen)
            if share_all <= 0.0:
                continue  # no camera ever saw it: nothing was lost (the site check says it is blind)
            share_now = self.share(zone, live)
            if share_now < min_share * share_all:
                out.append(CoverageLoss(zone, share_now, share_all))
        return out
