"""Lifting per-camera tracks onto the ground plane of the map (pure numpy/OpenCV, no ROS).

A box's bottom edge is where the object meets the ground nearest the camera,
not its centre: for a car seen from a pole that is a corner of its footprint,
metres in front of the footprint's centre. So the ray through the bottom-centre
of the box is intersected with the ground (z = 0 in the map), and the centre is
put behind that point, along the horizontal viewing direction, by the
footprint's extent in that direction: ``L/2 |cos phi| + W/2 |sin phi|`` with
``phi`` the angle between the heading and the view (class size priors; the
heading of the map track the box belongs to when it has one, otherwise the
extent averaged over headings). A box cut by the bottom image border has no
visible ground contact: its top edge is lifted to the class's height instead,
with a covariance to match; boxes cut at the sides get a wider lateral spread.

Covariance is propagated to first order: the ground point's Jacobian with
respect to the pixel (finite differences through the full camera model,
distortion included) maps the pixel noise, to which the calibration's angular
uncertainty adds ``f * sigma_angle`` pixels; the footprint term adds the
spread of the extent along the view.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from perception_nodes.geometry import Transform
from perception_nodes.taxonomy import SITE_CLASS_NAMES

# Site class sizes: (length, width, height) mean and standard deviation in metres. The synthetic world's
# vehicles and people are drawn from these ranges (a site with other vehicles sets its own priors).
DEFAULT_SIZE_PRIORS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "car": ((4.4, 1.8, 1.5), (0.3, 0.08, 0.08)),
    "truck": ((7.5, 2.5, 3.15), (0.8, 0.1, 0.2)),
    "person": ((0.3, 0.42, 1.75), (0.06, 0.06, 0.1)),  # the legs: what the box's bottom edge shows
    "bicycle": ((1.7, 0.55, 1.7), (0.1, 0.05, 0.1)),
    "other": ((1.0, 1.0, 1.0), (0.5, 0.5, 0.5)),
}


@dataclass
class CameraGeometry:
    """One camera as the localizer knows it: intrinsics from CameraInfo, pose from TF at the image stamp."""

    camera_id: str
    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    T_map_optical: Transform
    # Extra angular uncertainty of this camera's calibration (rad), e.g. raised by calibration health.
    angle_sigma_rad: float = 0.002

    @property
    def position(self) -> np.ndarray:
        return self.T_map_optical.t

    def normalized(self, pixels: np.ndarray) -> np.ndarray:
        """Undistorted normalised image coordinates (N, 2) of distorted pixels (N, 2)."""
        pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 1, 2)
        if len(pixels) == 0:
            return np.zeros((0, 2))
        if not np.any(self.D):
            out = (pixels.reshape(-1, 2) - self.K[:2, 2]) / [self.K[0, 0], self.K[1, 1]]
            return out
        return cv2.undistortPoints(pixels, self.K, self.D).reshape(-1, 2)

    def rays(self, pixels: np.ndarray) -> np.ndarray:
        """Unit ray directions in the map (N, 3) through distorted pixels."""
        xy = self.normalized(pixels)
        rays = np.column_stack([xy, np.ones(len(xy))])
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        return rays @ self.T_map_optical.R.T

    def sees_ground(self, xy: np.ndarray, margin: float = 0.1) -> np.ndarray:
        """(N,) whether ground points (N, 2) lie in front of the camera and inside its image, the image widened
        by ``margin`` of its size on every side. Tested in undistorted normalised coordinates against the image
        outline's, so that a point far outside the field of view never wraps into the image through the
        distortion polynomial."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if len(xy) == 0:
            return np.zeros(0, dtype=bool)
        w, h = float(self.width), float(self.height)
        outline = np.array([[0, 0], [w / 2, 0], [w, 0], [w, h / 2], [w, h], [w / 2, h], [0, h], [0, h / 2]])
        bounds = self.normalized(outline)
        lo, hi = bounds.min(axis=0), bounds.max(axis=0)
        pad = margin * (hi - lo)
        optical = self.T_map_optical.inverse().apply(np.column_stack([xy, np.zeros(len(xy))]))
        depth = optical[:, 2]
        front = depth > 0.1
        uv = optical[:, :2] / np.where(front, depth, 1.0)[:, None]
        return front & np.all((uv >= lo - pad) & (uv <= hi + pad), axis=1)

    def intersect_plane(self, pixels: np.ndarray, z: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(points (N, 3), valid (N,)) where the pixels' rays meet the horizontal plane at height ``z``."""
        rays = self.rays(pixels)
        origin = self.position
        dz = rays[:, 2]
        depth = (np.asarray(z, dtype=np.float64) - origin[2]) / np.where(np.abs(dz) > 1e-9, dz, -1e-9)
        valid = (depth > 0.1) & (depth < 1e4)
        points = origin + rays * np.where(valid, depth, 0.0)[:, None]
        return points, valid

    def project(self, points_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distorted pixels (N, 2), depth (N,)) of map points."""
        optical = self.T_map_optical.inverse().apply(np.asarray(points_map, dtype=np.float64).reshape(-1, 3))
        depth = optical[:, 2]
        rvec = np.zeros(3)
        pixels, _ = cv2.projectPoints(np.where(depth[:, None] > 1e-6, optical, [0, 0, 1.0]).reshape(-1, 1, 3),
                                      rvec, np.zeros(3), self.K, self.D)
        return pixels.reshape(-1, 2), depth


@dataclass
class LiftParams:
    """Noise model of lifting."""

    pixel_sigma: float = 1.5           # px, box edge noise of a good detection
    edge_sigma_fraction: float = 0.04  # box edge noise as a fraction of the box size (detector jitter)
    border_margin_px: float = 2.0      # a box edge this close to the image border is cut by it
    max_range_m: float = 120.0         # ground points farther than this are rejected
    size_priors: dict = field(default_factory=lambda: dict(DEFAULT_SIZE_PRIORS))
    # Vehicles with a heading: slide the centre across the view until the class's mean cuboid, projected, has
    # the box's horizontal centre (a slanted car's box is not centred on its footprint). Only across: along the
    # view the bottom edge says more than a fitted outline does at range. Off by default: it sharpens map
    # positions (LocA, HOTA) but, with the headings tracks have (a stale one on a car turning into a stall),
    # costs stall occupancy and zone events (perception eval localization, the with_lateral_fit ablation).
    lateral_fit: bool = False


@dataclass
class LiftedBoxes:
    """Ground-plane observations of one camera's boxes at one stamp (arrays over the N boxes)."""

    xy: np.ndarray           # (N, 2) estimated footprint centre in the map, m
    cov: np.ndarray          # (N, 2, 2) m^2
    valid: np.ndarray        # (N,) the box could be lifted (ray below the horizon, in range)
    range_m: np.ndarray      # (N,) horizontal distance camera -> object
    view_dir: np.ndarray     # (N, 2) unit horizontal viewing direction
    truncated: np.ndarray    # (N,) uint8 bit mask: 1 left, 2 right, 4 top, 8 bottom border


TRUNCATED_LEFT, TRUNCATED_RIGHT, TRUNCATED_TOP, TRUNCATED_BOTTOM = 1, 2, 4, 8


def _class_priors(class_ids: np.ndarray, params: LiftParams) -> tuple[np.ndarray, np.ndarray]:
    names = [SITE_CLASS_NAMES[int(c)] if 0 <= int(c) < len(SITE_CLASS_NAMES) else "other" for c in class_ids]
    priors = [params.size_priors.get(n, params.size_priors["other"]) for n in names]
    mean = np.array([p[0] for p in priors], dtype=np.float64).reshape(-1, 3)
    sd = np.array([p[1] for p in priors], dtype=np.float64).reshape(-1, 3)
    return mean, sd


def footprint_extent(length: np.ndarray, width: np.ndarray, heading: np.ndarray, view_dir: np.ndarray,
                     heading_known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(extent, its sd) of a footprint along the viewing direction: its support function when the heading is
    known, else its mean over all headings (2/pi (L/2 + W/2)) with the spread over headings."""
    view_angle = np.arctan2(view_dir[:, 1], view_dir[:, 0])
    phi = heading - view_angle
    known = length / 2 * np.abs(np.cos(phi)) + width / 2 * np.abs(np.sin(phi))
    mean_unknown = 2.0 / np.pi * (length / 2 + width / 2)
    # sd of L/2|cos| + W/2|sin| over uniform headings, to first order: a fraction of the half-extents' spread.
    sd_unknown = 0.3 * np.abs(length - width) / 2 + 0.05
    extent = np.where(heading_known, known, mean_unknown)
    sd = np.where(heading_known, 0.1 * extent + 0.05, sd_unknown)
    return extent, sd


def lift_boxes(camera: CameraGeometry, boxes_xyxy: np.ndarray, class_ids: np.ndarray,
               heading: np.ndarray | None = None, heading_known: np.ndarray | None = None,
               params: LiftParams | None = None) -> LiftedBoxes:
    """Lift one camera's boxes (N, 4 xyxy, distorted pixels) to footprint centres on the map's ground plane."""
    params = params or LiftParams()
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    class_ids = np.asarray(class_ids, dtype=np.int64).reshape(n)
    heading = np.zeros(n) if heading is None else np.asarray(heading, dtype=np.float64).reshape(n)
    heading_known = np.zeros(n, bool) if heading_known is None else np.asarray(heading_known, bool).reshape(n)
    if n == 0:
        return LiftedBoxes(np.zeros((0, 2)), np.zeros((0, 2, 2)), np.zeros(0, bool), np.zeros(0), np.zeros((0, 2)),
                           np.zeros(0, np.uint8))
    x1, y1, x2, y2 = boxes.T
    margin = params.border_margin_px
    truncated = ((x1 <= margin) * TRUNCATED_LEFT + (x2 >= camera.width - margin) * TRUNCATED_RIGHT
                 + (y1 <= margin) * TRUNCATED_TOP + (y2 >= camera.height - margin) * TRUNCATED_BOTTOM).astype(np.uint8)
    bottom_cut = (truncated & TRUNCATED_BOTTOM) > 0
    size_mean, size_sd = _class_priors(class_ids, params)
    u = (x1 + x2) / 2
    v = np.where(bottom_cut, y1, y2)
    plane_z = np.where(bottom_cut, size_mean[:, 2], 0.0)
    pixels = np.column_stack([u, v])
    ground, valid = camera.intersect_plane(pixels, plane_z)
    # Jacobian of the ground point with respect to the pixel, by finite differences through the camera model.
    step = 0.5
    ground_u, valid_u = camera.intersect_plane(pixels + [step, 0.0], plane_z)
    ground_v, valid_v = camera.intersect_plane(pixels + [0.0, step], plane_z)
    valid &= valid_u & valid_v
    J = np.stack([(ground_u[:, :2] - ground[:, :2]) / step, (ground_v[:, :2] - ground[:, :2]) / step], axis=2)
    offset = ground[:, :2] - camera.position[:2]
    range_m = np.linalg.norm(offset, axis=1)
    valid &= np.isfinite(range_m) & (range_m < params.max_range_m) & (range_m > 0.05)
    view_dir = offset / np.maximum(range_m, 1e-9)[:, None]
    # An image row is a line of equal depth: the box's bottom row holds the footprint's corner of least depth,
    # so the centre is deeper by the footprint's extent along the camera's (horizontal) optical axis, and lies
    # on the bottom-centre pixel's vertical plane: along the view by extent / cos(view, axis).
    axis = camera.T_map_optical.R[:2, 2]
    axis = axis / max(float(np.linalg.norm(axis)), 1e-9)
    extent, extent_sd = footprint_extent(size_mean[:, 0], size_mean[:, 1], heading,
                                         np.broadcast_to(axis, view_dir.shape), heading_known)
    cos_view = np.maximum(view_dir @ axis, 0.5)
    shift = extent / cos_view
    extent_sd = extent_sd / cos_view
    # The top of a bottom-cut box is the far edge of the roof: the centre lies in front of it, not behind.
    xy = ground[:, :2] + view_dir * np.where(bottom_cut, -shift, shift)[:, None]
    # Pixel noise: a floor plus a share of the box size (edges jitter with the box), widened for cut edges.
    w, h = np.maximum(x2 - x1, 1.0), np.maximum(y2 - y1, 1.0)
    f = float(camera.K[0, 0])
    angle_px = f * camera.angle_sigma_rad
    sigma_u = np.hypot(params.pixel_sigma + params.edge_sigma_fraction * w * 0.5, angle_px)
    sigma_v = np.hypot(params.pixel_sigma + params.edge_sigma_fraction * h, angle_px)
    side_cut = (truncated & (TRUNCATED_LEFT | TRUNCATED_RIGHT)) > 0
    sigma_u = np.where(side_cut, np.maximum(sigma_u, 0.35 * w), sigma_u)
    sigma_v = np.where(bottom_cut, sigma_v + 0.15 * h, sigma_v)
    pixel_cov = np.zeros((n, 2, 2))
    pixel_cov[:, 0, 0], pixel_cov[:, 1, 1] = sigma_u ** 2, sigma_v ** 2
    cov = J @ pixel_cov @ np.transpose(J, (0, 2, 1))
    along = np.einsum("ni,nj->nij", view_dir, view_dir)
    lateral = np.eye(2) - along
    extent_var = extent_sd ** 2 + np.where(bottom_cut, (size_sd[:, 2] * range_m / max(camera.position[2], 1.0)) ** 2, 0.0)
    # The centre's lateral place within the box: a share of the object's width.
    cov = cov + along * extent_var[:, None, None] + lateral * ((0.12 * size_mean[:, 1]) ** 2)[:, None, None]
    if params.lateral_fit:
        fit = heading_known & valid & (size_mean[:, 0] > 2.0) & ~side_cut
        if fit.any():
            xy[fit] = _fit_lateral(camera, xy[fit], (u[fit]), heading[fit], size_mean[fit], view_dir[fit])
    valid &= np.all(np.isfinite(xy), axis=1) & np.all(np.isfinite(cov.reshape(n, 4)), axis=1)
    return LiftedBoxes(xy, cov, valid, range_m, view_dir, truncated)


_UNIT_CUBOID = np.array([[sx * 0.5, sy * 0.5, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (0.0, 1.0)])


def _cuboid_centre_u(camera: CameraGeometry, xy: np.ndarray, heading: np.ndarray, size: np.ndarray):
    """(horizontal centre (N,) of the projected cuboids' boxes, all corners in front (N,)) of cuboids of ``size``
    (length, width, height) standing on the ground at footprint centres ``xy`` with ``heading``."""
    c, s = np.cos(heading)[:, None], np.sin(heading)[:, None]
    local = _UNIT_CUBOID[None] * size[:, None, :]
    world = np.stack([xy[:, None, 0] + c * local[..., 0] - s * local[..., 1],
                      xy[:, None, 1] + s * local[..., 0] + c * local[..., 1], local[..., 2]], axis=-1)
    pixels, depth = camera.project(world.reshape(-1, 3))
    u = pixels[:, 0].reshape(-1, 8)
    return (u.min(axis=1) + u.max(axis=1)) / 2.0, (depth.reshape(-1, 8) > 0.5).all(axis=1)


def _fit_lateral(camera: CameraGeometry, xy: np.ndarray, u_box: np.ndarray, heading: np.ndarray, size: np.ndarray,
                 view_dir: np.ndarray, iterations: int = 2, step_m: float = 0.1, max_move_m: float = 1.0) -> np.ndarray:
    """Centres moved across the viewing direction (Newton steps) until their cuboids' projected boxes have the
    observed horizontal centres ``u_box``; a cuboid partly behind the camera keeps its centre."""
    across = np.column_stack([-view_dir[:, 1], view_dir[:, 0]])
    xy = xy.copy()
    for _ in range(iterations):
        u0, front0 = _cuboid_centre_u(camera, xy, heading, size)
        u1, front1 = _cuboid_centre_u(camera, xy + step_m * across, heading, size)
        slope = (u1 - u0) / step_m
        ok = front0 & front1 & (np.abs(slope) > 1e-3)
        move = np.clip(np.where(ok, (u_box - u0) / np.where(ok, slope, 1.0), 0.0), -max_move_m, max_move_m)
        xy += move[:, None] * across
    return xy


class MapHeadingPrior:
    """Headings the site map implies where a track has none yet: a vehicle in a stall stands along the stall's
    long side; one on a lane drives along it (the footprint's extent is the same either way round)."""

    def __init__(self, semantic_map, lane_max_distance_m: float = 3.0):
        from perception_nodes.geometry import points_in_polygon

        self._inside = points_in_polygon
        self.stalls = []
        for stall in semantic_map.stalls:
            poly = np.asarray(stall.polygon, dtype=np.float64)
            edges = np.roll(poly, -1, axis=0) - poly
            longest = edges[int(np.argmax(np.linalg.norm(edges, axis=1)))]
            self.stalls.append((poly, float(np.arctan2(longest[1], longest[0]))))
        self.segments = []
        for lane in semantic_map.lanes:
            line = np.asarray(lane.polyline, dtype=np.float64)
            for a, b in zip(line[:-1], line[1:]):
                self.segments.append((a, b, float(np.arctan2(b[1] - a[1], b[0] - a[0]))))
        self.lane_max_distance_m = lane_max_distance_m

    def lookup(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(heading (N,), found (N,)) at ground points (N, 2)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        heading = np.zeros(len(xy))
        found = np.zeros(len(xy), dtype=bool)
        for poly, angle in self.stalls:
            inside = self._inside(xy, poly) & ~found
            heading[inside], found[inside] = angle, True
        best = np.full(len(xy), self.lane_max_distance_m)
        for a, b, angle in self.segments:
            ab = b - a
            u = np.clip((xy - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0)
            d = np.linalg.norm(a + u[:, None] * ab - xy, axis=1)
            closer = (d < best) & ~found
            heading[closer], best[closer] = angle, d[closer]
        on_lane = best < self.lane_max_distance_m
        return heading, found | on_lane


VEHICLE_CLASS_IDS = (0, 1)


def lift_with_priors(camera: CameraGeometry, boxes_xyxy, class_ids, heading, heading_known,
                     prior: MapHeadingPrior | None, params: LiftParams | None = None) -> LiftedBoxes:
    """:func:`lift_boxes`, with the map's heading prior for vehicles whose track has no heading yet."""
    lifted = lift_boxes(camera, boxes_xyxy, class_ids, heading, heading_known, params)
    class_ids = np.asarray(class_ids).reshape(-1)
    heading_known = np.zeros(len(class_ids), bool) if heading_known is None else np.asarray(heading_known, bool)
    unknown = ~heading_known & np.isin(class_ids, VEHICLE_CLASS_IDS) & lifted.valid
    if prior is None or not unknown.any():
        return lifted
    prior_heading, found = prior.lookup(lifted.xy)
    use = unknown & found
    if not use.any():
        return lifted
    heading = np.zeros(len(class_ids)) if heading is None else np.array(heading, dtype=np.float64)
    heading[use] = prior_heading[use]
    known = heading_known | use
    return lift_boxes(camera, boxes_xyxy, class_ids, heading, known, params)
