"""Rasterises the synthetic world into camera images with per-object ground truth.

Each camera renders a static background once (ground plane with asphalt texture,
lane and stall markings, walkways, grass, sky) by intersecting every pixel's ray
with the ground. Per frame, actors and landmarks are drawn as shaded cuboids in
far-to-near order (painter's algorithm), which also yields a label image from
which each actor's visible pixel count, and so its visible fraction, is read.
Lens distortion, lighting and sensor noise are applied last.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from perception_nodes.geometry import matrix_from_rpy
from perception_nodes.world.actors import Actor, Part
from perception_nodes.world.camera import CameraModel
from perception_nodes.world.scene import Scene

LIGHT_DIRECTION = np.array([0.35, 0.25, 1.0]) / np.linalg.norm([0.35, 0.25, 1.0])
NEAR_PLANE_M = 0.2
# Corner order of a unit cuboid and its six faces (outward normals along the axes).
_CORNERS = np.array([[sx, sy, sz] for sx in (-0.5, 0.5) for sy in (-0.5, 0.5) for sz in (-0.5, 0.5)])
_FACES = (  # (corner indices in winding order, normal in the part frame)
    ((4, 5, 7, 6), (1, 0, 0)), ((0, 2, 3, 1), (-1, 0, 0)),
    ((2, 6, 7, 3), (0, 1, 0)), ((0, 1, 5, 4), (0, -1, 0)),
    ((1, 3, 7, 5), (0, 0, 1)), ((0, 4, 6, 2), (0, 0, -1)),
)
_DECALS = ("plate", "stripe", "window")
_FACE_INDICES = np.array([indices for indices, _ in _FACES])
_FACE_NORMALS = np.array([normal for _, normal in _FACES], dtype=np.float64)
_SIDE_FACES = _FACE_NORMALS[:, 2] == 0


@dataclass
class GroundTruthBox:
    """One actor as seen by one camera."""

    global_id: int
    class_id: int
    class_name: str
    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels, clipped to the image
    visible_fraction: float  # visible pixels / pixels of the unoccluded silhouette
    visible_pixels: int
    distance_m: float

    def to_dict(self) -> dict:
        return {"global_id": self.global_id, "class_id": self.class_id, "class_name": self.class_name,
                "bbox": [round(v, 2) for v in self.bbox], "visible_fraction": round(self.visible_fraction, 4),
                "visible_pixels": self.visible_pixels, "distance_m": round(self.distance_m, 3)}


def _hash_noise(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """Deterministic value noise in [0, 1) per integer cell."""
    h = (ix.astype(np.int64) * 73856093) ^ (iy.astype(np.int64) * 19349663)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h >> 8) & 0xFF).astype(np.float32) / 255.0


def _distance_to_polyline(points: np.ndarray, polyline) -> tuple[np.ndarray, np.ndarray]:
    """(distance, arc length of the nearest point) of (N, 2) points to a polyline."""
    best = np.full(points.shape[0], np.inf)
    arc = np.zeros(points.shape[0])
    start = 0.0
    pl = np.asarray(polyline, dtype=np.float64)
    for a, b in zip(pl[:-1], pl[1:]):
        ab = b - a
        length = float(np.linalg.norm(ab))
        u = np.clip(((points - a) @ ab) / max(length * length, 1e-12), 0.0, 1.0)
        d = np.linalg.norm(points - (a + u[:, None] * ab), axis=1)
        closer = d < best
        best[closer] = d[closer]
        arc[closer] = start + u[closer] * length
        start += length
    return best, arc


class CameraRenderer:
    """Renders frames for one camera of a scene."""

    def __init__(self, scene: Scene, camera: CameraModel):
        self.scene = scene
        self.camera = camera
        self.background = self._render_background()
        self._remap = self._distortion_maps() if camera.has_distortion else None

    # -- static parts -----------------------------------------------------------------
    def _render_background(self) -> np.ndarray:
        origin, rays = self.camera.pixel_rays_map()
        h, w = rays.shape[:2]
        rays = rays.reshape(-1, 3)
        image = np.zeros((rays.shape[0], 3), dtype=np.float32)
        elevation = np.clip(rays[:, 2], -1, 1)
        sky = elevation >= -0.02
        image[sky] = (np.array([235, 200, 160], np.float32) - 60 * np.clip(elevation[sky], 0, 1)[:, None])
        ground = ~sky
        t = -origin[2] / rays[ground, 2]
        pts = origin[:2] + rays[ground, :2] * t[:, None]
        half_x, half_y = self.scene.lot_size[0] / 2.0, self.scene.lot_size[1] / 2.0
        in_lot = (np.abs(pts[:, 0]) <= half_x) & (np.abs(pts[:, 1]) <= half_y)
        fine = _hash_noise(np.floor(pts[:, 0] * 3), np.floor(pts[:, 1] * 3))
        coarse = _hash_noise(np.floor(pts[:, 0] / 3) + 1000, np.floor(pts[:, 1] / 3))
        asphalt = 92 + 16 * fine + 10 * coarse
        color = np.stack([asphalt + 4, asphalt + 2, asphalt], axis=1)
        grass = np.stack([40 + 25 * fine, 110 + 40 * fine, 60 + 20 * coarse], axis=1)
        color[~in_lot] = grass[~in_lot]
        for walkway in self.scene.walkways:
            d, _ = _distance_to_polyline(pts, walkway)
            on = in_lot & (d < 1.3)
            concrete = 160 + 20 * fine
            color[on] = np.stack([concrete, concrete + 2, concrete + 4], axis=1)[on]
            edge = in_lot & (np.abs(d - 1.3) < 0.07)
            color[edge] = (200, 200, 205)
        for lane in self.scene.lanes:
            d, arc = _distance_to_polyline(pts, lane)
            dash = in_lot & (d < 0.08) & (np.mod(arc, 4.0) < 2.0)
            color[dash] = (40, 200, 230)  # yellow centre dashes (BGR)
        for x0, y0, stall, count in self.scene.parking_rows:
            depth = 5.0 if y0 >= 0 else -5.0
            y_lo, y_hi = min(y0, y0 + depth), max(y0, y0 + depth)
            in_row = in_lot & (pts[:, 1] >= y_lo) & (pts[:, 1] <= y_hi) & (pts[:, 0] >= x0 - 0.1) & (pts[:, 0] <= x0 + stall * count + 0.1)
            line = in_row & (np.abs(np.mod(pts[:, 0] - x0 + 0.06, stall) - 0.06) < 0.06)
            color[line] = (235, 235, 235)
        # Distant ground fades into haze so the horizon is not aliased noise.
        haze = np.clip((t - 80.0) / 200.0, 0, 1)[:, None]
        image[ground] = color * (1 - haze) + np.array([200, 190, 180], np.float32) * haze
        return np.clip(image.reshape(h, w, 3), 0, 255).astype(np.uint8)

    def _distortion_maps(self):
        w, h = self.camera.size
        u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        distorted = np.stack([u, v], axis=-1).reshape(-1, 1, 2)
        undistorted = cv2.undistortPoints(distorted, self.camera.K, self.camera.D, P=self.camera.K).reshape(h, w, 2)
        return undistorted[..., 0].astype(np.float32), undistorted[..., 1].astype(np.float32)

    # -- per frame --------------------------------------------------------------------
    def _actor_faces(self, parts, R: np.ndarray, t: np.ndarray, cam_pos: np.ndarray) -> list[list]:
        """The faces each part of one actor shows the camera (per part, in ``parts`` order): back faces, faces
        behind the near plane and decal tops left out, Lambert shade; all parts in one pass over stacked arrays."""
        sizes = np.array([p.size for p in parts], dtype=np.float64)
        offsets = np.array([p.center for p in parts], dtype=np.float64)
        corners = (_CORNERS[None] * sizes[:, None, :] + offsets[:, None, :]).reshape(-1, 3)
        world = corners @ R.T + t
        optical = self.camera.to_optical(world).reshape(len(parts), 8, 3)
        world = world.reshape(len(parts), 8, 3)
        normals = _FACE_NORMALS @ R.T
        centers = world[:, _FACE_INDICES].mean(axis=2)
        facing = np.einsum("fj,pfj->pf", normals, cam_pos - centers) > 0
        in_front = np.all(optical[:, _FACE_INDICES, 2] >= NEAR_PLANE_M, axis=2)
        visible = facing & in_front
        decal = np.array([p.kind in _DECALS for p in parts])
        visible[decal] &= _SIDE_FACES  # decals only cover side faces; their tops would poke through the body
        light = normals @ LIGHT_DIRECTION
        shades = [0.55 + 0.45 * max(0.0, float(v)) for v in light]
        out: list[list] = [[] for _ in parts]
        rows = np.flatnonzero(visible.any(axis=1))
        if not len(rows):
            return out
        pixels = self.camera.project_pinhole(optical[rows])
        for k, part_index in enumerate(rows):
            color = parts[part_index].color
            out[part_index] = [(pixels[k][_FACE_INDICES[face]], tuple(float(c) * shades[face] for c in color))
                               for face in np.flatnonzero(visible[part_index])]
        return out

    def render(self, actors_at_t, frame_index: int, time_s: float, with_image: bool = True):
        """Render one frame. ``actors_at_t`` is a list of (Actor, position, yaw).

        Returns (bgr8 image, list of GroundTruthBox); without ``with_image`` only the boxes (the same ones: the
        occlusion labels are rasterised all the same) and None for the image.
        """
        cam = self.camera
        w, h = cam.size
        image = self.background.copy() if with_image else None
        labels = np.zeros((h, w), dtype=np.int32)
        cam_pos = cam.T_map_optical.t
        drawables = []
        for index, (actor, position, yaw) in enumerate(actors_at_t):
            drawables.append((float(np.linalg.norm(position - cam_pos)), index + 1, actor.parts, matrix_from_rpy(0, 0, yaw), position))
        for lm in self.scene.landmarks:
            pos = np.array([lm.position[0], lm.position[1], lm.size[2] / 2.0])
            drawables.append((float(np.linalg.norm(pos - cam_pos)), 0, (Part((0, 0, 0), lm.size, lm.color),), np.eye(3), pos))
        drawables.sort(key=lambda d: -d[0])
        silhouettes: dict[int, list[np.ndarray]] = {}  # label -> the actor's front faces, for its unoccluded area
        for _, label, parts, R, position in drawables:
            faces_of = self._actor_faces(parts, R, position, cam_pos)
            order = list(range(len(parts)))
            bodies = sorted((k for k in order if parts[k].kind not in _DECALS),
                            key=lambda k: -np.linalg.norm(R @ np.asarray(parts[k].center) + position - cam_pos))
            for k in bodies + [k for k in order if parts[k].kind in _DECALS]:
                for pixels, color in faces_of[k]:
                    poly = np.round(pixels * 16).astype(np.int32)
                    if image is not None:
                        cv2.fillConvexPoly(image, poly, color, lineType=cv2.LINE_8, shift=4)
                    cv2.fillConvexPoly(labels, poly, label, lineType=cv2.LINE_8, shift=4)
                    if label:
                        silhouettes.setdefault(label, []).append(poly)
        if self._remap is not None:
            if image is not None:
                image = cv2.remap(image, *self._remap, interpolation=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
            labels = cv2.remap(labels.astype(np.float32), *self._remap, interpolation=cv2.INTER_NEAREST).astype(np.int32)
        visible = np.bincount(labels.ravel(), minlength=len(actors_at_t) + 1)
        boxes = []
        for index, (actor, position, yaw) in enumerate(actors_at_t):
            box = self._ground_truth(actor, position, yaw, int(visible[index + 1]), silhouettes.get(index + 1, []))
            if box is not None:
                boxes.append(box)
        return (self._apply_sensor(image, frame_index, time_s) if image is not None else None), boxes

    def _ground_truth(self, actor: Actor, position: np.ndarray, yaw: float, visible_pixels: int,
                      faces: list[np.ndarray]):
        """The actor's box: the extent of its parts' projected corners, i.e. tight around the drawn shape.

        Boxing the actor's outer cuboid instead would put a yaw-dependent margin around thin
        shapes (a person's head and legs are narrower than the cuboid), ground truth no detector
        can reproduce. The box is amodal: it covers the parts hidden behind other objects.
        """
        if visible_pixels == 0 or not faces:
            return None
        R = matrix_from_rpy(0, 0, yaw)
        corners = np.concatenate([(_CORNERS * np.asarray(p.size) + np.asarray(p.center)) for p in actor.parts])
        optical = self.camera.to_optical(corners @ R.T + position)
        if np.any(optical[:, 2] < NEAR_PLANE_M):
            return None  # straddles the camera: no meaningful box
        pixels = self.camera.distort_pixels(self.camera.project_pinhole(optical))
        w, h = self.camera.size
        x1, y1 = np.clip(pixels.min(axis=0), 0, [w, h])
        x2, y2 = np.clip(pixels.max(axis=0), 0, [w, h])
        if x2 - x1 < 1 or y2 - y1 < 1:
            return None
        return GroundTruthBox(actor.global_id, actor.class_id, actor.class_name, (float(x1), float(y1), float(x2), float(y2)),
                              min(1.0, visible_pixels / max(self._silhouette_area(faces), 1)), visible_pixels,
                              float(np.linalg.norm(position - self.camera.T_map_optical.t)))

    @staticmethod
    def _silhouette_area(faces: list[np.ndarray]) -> int:
        """Pixels the actor would cover with nothing in front of it (its faces rasterised alone)."""
        stacked = np.concatenate(faces)
        lo = stacked.min(axis=0) // 16 - 1
        hi = stacked.max(axis=0) // 16 + 2
        mask = np.zeros((int(hi[1] - lo[1]), int(hi[0] - lo[0])), dtype=np.uint8)
        offset = (lo * 16).astype(np.int32)
        for poly in faces:
            cv2.fillConvexPoly(mask, poly - offset, 1, lineType=cv2.LINE_8, shift=4)
        return int(np.count_nonzero(mask))

    def _apply_sensor(self, image: np.ndarray, frame_index: int, time_s: float) -> np.ndarray:
        scene = self.scene
        gain = scene.brightness * (1.0 + scene.brightness_variation * np.sin(2 * np.pi * time_s / scene.lighting_period_s))
        if scene.noise_sigma <= 0:
            return cv2.convertScaleAbs(image, alpha=gain)
        cam_index = [c.id for c in scene.cameras].index(self.camera.spec.id)
        rng = np.random.default_rng([scene.seed, cam_index, frame_index])
        noise = rng.standard_normal(image.shape, dtype=np.float32)
        # In place, in the same order and types as image * gain + noise * sigma, clipped (identical frames).
        out = image.astype(np.float32)
        out *= gain
        noise *= np.float32(scene.noise_sigma)
        out += noise
        np.clip(out, 0, 255, out=out)
        return out.astype(np.uint8)
