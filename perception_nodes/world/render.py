"""Rasterises the synthetic world into camera images with per-object ground truth.

Each camera renders a static background once (ground plane with asphalt texture,
lane and stall markings, walkways, grass, sky) by intersecting every pixel's ray
with the ground. Per frame, actors and landmarks are drawn as shaded cuboids in
far-to-near order (painter's algorithm), which also yields a label image from
which each actor's visible pixel count, and so its visible fraction, is read.
Lens distortion, lighting and sensor noise are applied last.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from perception_nodes.geometry import matrix_from_rpy
from perception_nodes.world.actors import Actor, Part
from perception_nodes.world import conditions as cond
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
_DECALS = ("plate", "stripe", "window", "lamp")  # "lamp": emissive (head/tail lights, lit windows, lamp heads)
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


def _undistort_pixels(pixels: np.ndarray, camera: CameraModel, iterations: int = 30) -> np.ndarray:
    """Undistorted pixel positions of distorted ones: the plumb_bob radius inverted by Newton's method (the
    plain fixed-point iteration OpenCV uses oscillates at the corners of strong wide-angle lenses), then the
    tangential terms by fixed-point refinement."""
    spec = camera.spec
    k1, k2, p1, p2, k3 = camera.D
    xd = (pixels[..., 0].astype(np.float64) - spec.cx) / spec.fx
    yd = (pixels[..., 1].astype(np.float64) - spec.cy) / spec.fy
    rd = np.hypot(xd, yd)
    r = rd.copy()
    for _ in range(iterations):
        r2 = r * r
        f = r * (1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 ** 3) - rd
        df = 1 + 3 * k1 * r2 + 5 * k2 * r2 * r2 + 7 * k3 * r2 ** 3
        r = np.maximum(r - f / np.where(np.abs(df) > 1e-6, df, 1e-6), 0.0)
    scale = np.where(rd > 1e-12, r / np.maximum(rd, 1e-12), 1.0)
    x, y = xd * scale, yd * scale
    if p1 or p2:
        for _ in range(10):
            r2 = x * x + y * y
            radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 ** 3
            x = (xd - (2 * p1 * x * y + p2 * (r2 + 2 * x * x))) / radial
            y = (yd - (p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)) / radial
    return np.stack([x * spec.fx + spec.cx, y * spec.fy + spec.cy], axis=-1).astype(np.float32)


class CameraRenderer:
    """Renders frames for one camera of a scene."""

    def __init__(self, scene: Scene, camera: CameraModel):
        self.scene = scene
        self.camera = camera
        self.conditions = scene.conditions
        # The camera's place in the scene seeds its per-frame noise (and the conditions' rain and blur).
        self._camera_index = [spec.id for spec in scene.cameras].index(camera.spec.id)
        self._albedo = None  # the background before lighting, for light that moves (headlights); conditions only
        # What is rasterised: the camera's pinhole image, or with a lens under conditions a pinhole canvas large
        # enough for every pixel the lens bends in (replicating the border smears strong wide-angle lenses).
        self.view = camera
        if camera.has_distortion and self.conditions is not None:
            self.view, self._remap = self._lens_canvas()
        else:
            self._remap = self._distortion_maps() if camera.has_distortion else None
        self.background = self._render_background()
        self._static = self._static_structures()

    # -- static parts -----------------------------------------------------------------
    def _render_background(self) -> np.ndarray:
        origin, rays = self.view.pixel_rays_map()
        h, w = rays.shape[:2]
        rays = rays.reshape(-1, 3)
        image = np.zeros((rays.shape[0], 3), dtype=np.float32)
        elevation = np.clip(rays[:, 2], -1, 1)
        sky = elevation >= -0.02
        if self.conditions is None:
            image[sky] = (np.array([235, 200, 160], np.float32) - 60 * np.clip(elevation[sky], 0, 1)[:, None])
        else:  # the sky darkens towards the zenith in proportion to its colour (a night sky stays dark)
            sky_color = self.conditions.sky_color().astype(np.float32)
            image[sky] = (sky_color - 60 * np.clip(elevation[sky], 0, 1)[:, None] * (sky_color / 235.0))
        ground = ~sky
        t = -origin[2] / rays[ground, 2]
        pts = origin[:2] + rays[ground, :2] * t[:, None]
        half_x, half_y = self.scene.lot_size[0] / 2.0, self.scene.lot_size[1] / 2.0
        in_lot = (np.abs(pts[:, 0]) <= half_x) & (np.abs(pts[:, 1]) <= half_y)
        fine = _hash_noise(np.floor(pts[:, 0] * 3), np.floor(pts[:, 1] * 3))
        coarse = _hash_noise(np.floor(pts[:, 0] / 3) + 1000, np.floor(pts[:, 1] / 3))
        if self.conditions is None:
            asphalt = 92 + 16 * fine + 10 * coarse
            color = np.stack([asphalt + 4, asphalt + 2, asphalt], axis=1)
        else:
            color = cond.ground_albedo(self.conditions.ground, pts, fine, coarse)
        grass = np.stack([40 + 25 * fine, 110 + 40 * fine, 60 + 20 * coarse], axis=1)
        color[~in_lot] = grass[~in_lot]
        walk_distances, lane_distances = [], []  # kept for the conditions' extra markings
        for walkway in self.scene.walkways:
            d, _ = _distance_to_polyline(pts, walkway)
            walk_distances.append(d)
            on = in_lot & (d < 1.3)
            concrete = 160 + 20 * fine
            color[on] = np.stack([concrete, concrete + 2, concrete + 4], axis=1)[on]
            edge = in_lot & (np.abs(d - 1.3) < 0.07)
            color[edge] = (200, 200, 205)
        for lane in self.scene.lanes:
            d, arc = _distance_to_polyline(pts, lane)
            lane_distances.append((d, arc))
            dash = in_lot & (d < 0.08) & (np.mod(arc, 4.0) < 2.0)
            color[dash] = (40, 200, 230)  # yellow centre dashes (BGR)
        for x0, y0, stall, count in self.scene.parking_rows:
            depth = 5.0 if y0 >= 0 else -5.0
            y_lo, y_hi = min(y0, y0 + depth), max(y0, y0 + depth)
            in_row = in_lot & (pts[:, 1] >= y_lo) & (pts[:, 1] <= y_hi) & (pts[:, 0] >= x0 - 0.1) & (pts[:, 0] <= x0 + stall * count + 0.1)
            line = in_row & (np.abs(np.mod(pts[:, 0] - x0 + 0.06, stall) - 0.06) < 0.06)
            color[line] = (235, 235, 235)
        if self.conditions is not None:
            if self.conditions.markings:
                cond.extra_markings(in_lot, color, lane_distances, walk_distances)
            return self._lit_background(image, ground, color, pts, t, (h, w))
        # Distant ground fades into haze so the horizon is not aliased noise.
        haze = np.clip((t - 80.0) / 200.0, 0, 1)[:, None]
        image[ground] = color * (1 - haze) + np.array([200, 190, 180], np.float32) * haze
        return np.clip(image.reshape(h, w, 3), 0, 255).astype(np.uint8)

    def _lit_background(self, image, ground, color, pts, t, shape) -> np.ndarray:
        """The ground under the scene's conditions: ambient and lamp light, fog; kept unclipped as float so lamp
        pools and fog survive to the sensor model."""
        c = self.conditions
        albedo = np.zeros_like(image)
        albedo[ground] = color
        lamps = self._ground_lamp_light(ground, pts, shape)
        light = c.ambient + lamps
        lit = color * light[:, None]
        if c.lamps_lit:  # the lamps' warm tint only where they dominate
            share = (lamps / np.maximum(light, 1e-6))[:, None]
            lit = lit * (share * cond.LAMP_COLOR / 255.0 + (1 - share))
        haze = np.clip((t - 80.0) / 200.0, 0, 1)[:, None]
        haze_color = np.array([200, 190, 180], np.float32) * c.ambient
        lit = lit * (1 - haze) + haze_color * haze
        if c.fog_density > 0:
            transmission = cond.fog_transmission(c, t)[:, None]
            lit = lit * transmission + c.fog_color() * (1 - transmission)
            image[~ground] = c.fog_color()
        image[ground] = lit
        self._albedo = albedo.reshape(*shape, 3)
        return image.reshape(*shape, 3)

    def _ground_lamp_light(self, ground: np.ndarray, pts: np.ndarray, shape, stride: int = 4) -> np.ndarray:
        """The lamps' light on the ground pixels, computed on every ``stride``-th pixel and interpolated (it
        varies over metres, not pixels)."""
        c = self.conditions
        if not c.lamps_lit or not c.street_lamps:
            return np.zeros(len(pts))
        h, w = shape
        grid = np.zeros((h * w, 3))
        grid[ground, :2] = pts
        grid[~ground, :2] = 1e6  # sky: far from every lamp
        coarse = grid.reshape(h, w, 3)[::stride, ::stride].reshape(-1, 3)
        light = cond.lamp_irradiance(c, coarse).reshape((h + stride - 1) // stride, (w + stride - 1) // stride)
        full = cv2.resize(light.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        return full.reshape(-1)[ground].astype(np.float64)

    def _static_structures(self) -> list:
        """Lamp posts and buildings of the conditions, drawn like landmarks: (position, parts) each."""
        c = self.conditions
        if c is None:
            return []
        out = []
        for lamp in c.street_lamps:
            out.append((np.array([lamp.position[0], lamp.position[1], lamp.height / 2.0]),
                        cond.lamp_post_parts(lamp, c.lamps_lit)))
        for building in c.buildings:
            out.append((np.array([building.position[0], building.position[1], building.size[2] / 2.0]),
                        cond.building_parts(building, c.lit_windows, c.daylight < 0.5, self.scene.seed)))
        return out

    def _distortion_maps(self):
        w, h = self.camera.size
        u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        distorted = np.stack([u, v], axis=-1).reshape(-1, 1, 2)
        undistorted = cv2.undistortPoints(distorted, self.camera.K, self.camera.D, P=self.camera.K).reshape(h, w, 2)
        return undistorted[..., 0].astype(np.float32), undistorted[..., 1].astype(np.float32)

    def _lens_canvas(self):
        """(pinhole canvas camera, remap from it into the distorted image) for a camera with a lens."""
        spec = self.camera.spec
        w, h = self.camera.size
        u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        undistorted = _undistort_pixels(np.stack([u, v], axis=-1), self.camera)
        lo = np.clip(np.floor(undistorted.reshape(-1, 2).min(axis=0)) - 2, [-w, -h], [0, 0])
        hi = np.clip(np.ceil(undistorted.reshape(-1, 2).max(axis=0)) + 2, [w, h], [2 * w, 2 * h])
        ox, oy = -int(lo[0]), -int(lo[1])
        view = CameraModel(replace(spec, width=int(hi[0]) + ox, height=int(hi[1]) + oy, cx=spec.cx + ox,
                                   cy=spec.cy + oy, distortion=(0.0, 0.0, 0.0, 0.0, 0.0)))
        return view, (undistorted[..., 0] + np.float32(ox), undistorted[..., 1] + np.float32(oy))

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
        pixels = self.view.project_pinhole(optical[rows])
        if self.conditions is not None:
            return self._lit_faces(parts, rows, pixels, visible, centers, normals, shades, cam_pos, out)
        for k, part_index in enumerate(rows):
            color = parts[part_index].color
            out[part_index] = [(pixels[k][_FACE_INDICES[face]], tuple(float(c) * shades[face] for c in color), False)
                               for face in np.flatnonzero(visible[part_index])]
        return out

    def _lit_faces(self, parts, rows, pixels, visible, centers, normals, shades, cam_pos, out):
        """Faces under the conditions: sun/sky shade times ambient plus the lamps' light at the face, emissive
        parts as they are, all seen through the fog."""
        c = self.conditions
        flat = centers.reshape(-1, 3)
        upward = np.tile(np.clip(normals[:, 2], 0, 1), len(parts))
        lamps = cond.lamp_irradiance(c, flat, upward).reshape(len(parts), 6)
        distance = np.linalg.norm(centers - cam_pos, axis=2)
        transmission = cond.fog_transmission(c, distance) if c.fog_density > 0 else np.ones_like(distance)
        fog = c.fog_color()
        for k, part_index in enumerate(rows):
            part = parts[part_index]
            base = np.asarray(part.color, dtype=np.float64)
            faces = []
            for face in np.flatnonzero(visible[part_index]):
                emissive = part.kind == "lamp"
                color = base if emissive else base * (shades[face] * c.ambient + lamps[part_index, face])
                tr = transmission[part_index, face]
                color = color * tr + fog * (1 - tr)
                faces.append((pixels[k][_FACE_INDICES[face]], tuple(float(v) for v in color), emissive))
            out[part_index] = faces
        return out

    def render(self, actors_at_t, frame_index: int, time_s: float, with_image: bool = True):
        """Render one frame. ``actors_at_t`` is a list of (Actor, position, yaw).

        Returns (bgr8 image, list of GroundTruthBox); without ``with_image`` only the boxes (the same ones: the
        occlusion labels are rasterised all the same) and None for the image.
        """
        cam = self.camera
        w, h = self.view.size
        image = self.background.copy() if with_image else None
        labels = np.zeros((h, w), dtype=np.int32)
        cam_pos = cam.T_map_optical.t
        lights_on = self.conditions is not None and self.conditions.lights_on
        emissive = np.zeros((h, w, 3), np.float32) if (image is not None and self.conditions is not None) else None
        if lights_on and image is not None:
            self._add_headlight_pools(image, actors_at_t)
        drawables = []
        for index, (actor, position, yaw) in enumerate(actors_at_t):
            parts = actor.parts + cond.vehicle_lamp_parts(actor, lights_on) if lights_on else actor.parts
            drawables.append((float(np.linalg.norm(position - cam_pos)), index + 1, parts, matrix_from_rpy(0, 0, yaw), position))
        for lm in self.scene.landmarks:
            pos = np.array([lm.position[0], lm.position[1], lm.size[2] / 2.0])
            drawables.append((float(np.linalg.norm(pos - cam_pos)), 0, (Part((0, 0, 0), lm.size, lm.color),), np.eye(3), pos))
        for pos, parts in self._static:
            drawables.append((float(np.linalg.norm(pos - cam_pos)), 0, parts, np.eye(3), pos))
        drawables.sort(key=lambda d: -d[0])
        silhouettes: dict[int, list[np.ndarray]] = {}  # label -> the actor's front faces, for its unoccluded area
        for _, label, parts, R, position in drawables:
            faces_of = self._actor_faces(parts, R, position, cam_pos)
            order = list(range(len(parts)))
            bodies = sorted((k for k in order if parts[k].kind not in _DECALS),
                            key=lambda k: -np.linalg.norm(R @ np.asarray(parts[k].center) + position - cam_pos))
            for k in bodies + [k for k in order if parts[k].kind in _DECALS]:
                for pixels, color, glows in faces_of[k]:
                    poly = np.round(pixels * 16).astype(np.int32)
                    if image is not None:
                        cv2.fillConvexPoly(image, poly, color, lineType=cv2.LINE_8, shift=4)
                    if emissive is not None:
                        cv2.fillConvexPoly(emissive, poly, color if glows else (0, 0, 0), lineType=cv2.LINE_8, shift=4)
                    cv2.fillConvexPoly(labels, poly, label, lineType=cv2.LINE_8, shift=4)
                    if label:
                        silhouettes.setdefault(label, []).append(poly)
        if self._remap is not None:
            if image is not None:
                image = cv2.remap(image, *self._remap, interpolation=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
            if emissive is not None:
                emissive = cv2.remap(emissive, *self._remap, interpolation=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT)
            labels = cv2.remap(labels.astype(np.float32), *self._remap, interpolation=cv2.INTER_NEAREST).astype(np.int32)
        visible = np.bincount(labels.ravel(), minlength=len(actors_at_t) + 1)
        boxes = []
        for index, (actor, position, yaw) in enumerate(actors_at_t):
            box = self._ground_truth(actor, position, yaw, int(visible[index + 1]), silhouettes.get(index + 1, []))
            if box is not None:
                boxes.append(box)
        if image is None:
            return None, boxes
        if self.conditions is not None:
            return self._apply_conditions_sensor(image, emissive, frame_index, time_s), boxes
        return self._apply_sensor(image, frame_index, time_s), boxes

    def _add_headlight_pools(self, image: np.ndarray, actors_at_t) -> None:
        """The ground lit ahead of each vehicle with its lights on (before the actors hide parts of it)."""
        cam = self.view
        h, w = image.shape[:2]
        light = None
        for actor, position, yaw in actors_at_t:
            if actor.class_name not in ("car", "truck"):
                continue
            pool = cond.headlight_pool(position, yaw, actor.size[0])
            optical = cam.to_optical(pool)
            if np.any(optical[:, 2] < NEAR_PLANE_M):
                continue
            pixels = cam.project_pinhole(optical)
            if light is None:
                light = np.zeros((h, w), np.float32)
            poly = np.round(pixels * 16).astype(np.int32)
            cv2.fillPoly(light, [poly], 1.0, lineType=cv2.LINE_AA, shift=4)
        if light is None:
            return
        small = cv2.resize(light, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
        light = cv2.resize(cv2.GaussianBlur(small, (0, 0), max(1.0, 0.025 * w / 4)), (w, h),
                           interpolation=cv2.INTER_LINEAR)
        image += self._albedo * light[..., None] * 0.45 * (cond.HEADLIGHT_COLOR / 255.0)

    def _apply_conditions_sensor(self, image: np.ndarray, emissive: np.ndarray, frame_index: int,
                                 time_s: float) -> np.ndarray:
        """Optics and video chain under conditions: bloom, glare, rain, auto-exposure with its amplified sensor
        noise, exposure blur, then the stream's JPEG."""
        scene, c = self.scene, self.conditions
        rng = np.random.default_rng([scene.seed, self._camera_index, frame_index, 0xC0])
        out = image.astype(np.float32) * np.float32(
            scene.brightness * (1.0 + scene.brightness_variation * np.sin(2 * np.pi * time_s / scene.lighting_period_s)))
        out = cond.add_bloom(out, emissive)
        out = cond.add_glare(out, cond.sun_pixel(self.camera, c), c.glare)
        out = cond.add_rain(out, c.rain, rng)
        gain = cond.auto_exposure_gain(out, c)
        out *= np.float32(gain)
        if scene.noise_sigma > 0:
            noise = rng.standard_normal(out.shape, dtype=np.float32)
            noise *= np.float32(scene.noise_sigma * gain)
            out += noise
        out = cond.add_motion_blur(out, c.motion_blur_px, rng)
        np.clip(out, 0, 255, out=out)
        return cond.jpeg_round_trip(out.astype(np.uint8), c.jpeg_quality)

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
        rng = np.random.default_rng([scene.seed, self._camera_index, frame_index])
        noise = rng.standard_normal(image.shape, dtype=np.float32)
        # In place, in the same order and types as image * gain + noise * sigma, clipped (identical frames).
        out = image.astype(np.float32)
        out *= gain
        noise *= np.float32(scene.noise_sigma)
        out += noise
        np.clip(out, 0, 255, out=out)
        return out.astype(np.uint8)
