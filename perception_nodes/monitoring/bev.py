"""Pictures of a run for people: a bird's-eye view of the site and annotated camera mosaics (OpenCV, no ROS).

The bird's-eye view draws the site manifest's map (zones, stalls coloured by occupancy, lanes with their
direction, painted markings), each camera's field of view on the ground (intrinsics from its calibration file,
pose from the same URDF/TF tree the site publisher builds), and the localized objects: footprint from extent and
heading, global id, 2-sigma covariance ellipse and a velocity arrow (one second of travel). ``perception render``
turns a bag of a run into PNG frames and a video of both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception_nodes.localization.lifting import CameraGeometry
from perception_nodes.site.manifest import SiteManifest

CLASS_COLOURS = {"car": (230, 160, 40), "truck": (40, 120, 230), "person": (60, 200, 60), "bicycle": (200, 60, 200)}  # BGR
STATE_COASTING = 3  # LocalizedObject.STATE_COASTING: drawn hollow


@dataclass
class ObjectView:
    """What the picture needs of one LocalizedObject."""

    global_id: int
    class_name: str
    x: float
    y: float
    heading: float
    length: float
    width: float
    vx: float = 0.0
    vy: float = 0.0
    covariance: tuple[float, float, float] = (0.0, 0.0, 0.0)  # xx, xy, yy (m^2)
    state: int = 2

    @classmethod
    def from_msg(cls, o) -> "ObjectView":
        cov = o.position_covariance
        return cls(int(o.global_id), o.class_name, float(o.position.x), float(o.position.y), float(o.heading),
                   float(o.extent.x), float(o.extent.y), float(o.velocity.x), float(o.velocity.y),
                   (float(cov[0]), float(cov[1]), float(cov[4])), int(o.state))


def site_cameras(site: SiteManifest) -> list[CameraGeometry]:
    """Every camera of the site as its calibration places it: intrinsics from its calibration file, pose from
    the URDF the site publisher publishes (map -> <cam>_mount -> <cam>_link -> <cam>_optical_frame)."""
    from perception_nodes.calibration import load_calibration
    from perception_nodes.site.tree import expand_xacro, fixed_joints
    from perception_nodes.tf.buffer import TransformBuffer

    buffer = TransformBuffer()
    for transform in fixed_joints(expand_xacro(site.calibration_dir)):
        buffer.set_transform(transform, static=True)
    cameras = []
    for cam in site.cameras:
        calibration = load_calibration(cam.calibration)
        pose = buffer.lookup_transform(site.map_frame, f"{cam.id}_optical_frame").transform()
        cameras.append(CameraGeometry(cam.id, calibration.width, calibration.height, calibration.K, calibration.D,
                                      pose))
    return cameras


class BirdsEyeView:
    """The site seen from above; the map and the cameras are drawn once, objects on every frame."""

    def __init__(self, site: SiteManifest, cameras: list[CameraGeometry], px_per_m: float = 10.0,
                 margin_m: float = 4.0, far_m: float = 40.0):
        import cv2

        self.site, self.cameras, self.scale = site, cameras, float(px_per_m)
        semantic = site.map
        points = semantic.points() + [tuple(c.position[:2]) for c in cameras]
        if not points:
            points = [(-20.0, -20.0), (20.0, 20.0)]
        xy = np.asarray(points, dtype=np.float64)
        self.x0, self.y0 = xy.min(0) - margin_m
        x1, y1 = xy.max(0) + margin_m
        self.size = (int(math.ceil((x1 - self.x0) * self.scale)), int(math.ceil((y1 - self.y0) * self.scale)))
        background = np.full((self.size[1], self.size[0], 3), 245, np.uint8)
        for zone in semantic.zones:
            poly = self.px(zone.polygon)
            overlay = background.copy()
            cv2.fillPoly(overlay, [poly], (225, 235, 250))
            background = cv2.addWeighted(overlay, 0.6, background, 0.4, 0)
            cv2.polylines(background, [poly], True, (180, 150, 120), 1, cv2.LINE_AA)
            cv2.putText(background, zone.name, tuple(int(v) for v in poly.mean(0)), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (150, 120, 90), 1, cv2.LINE_AA)
        for lane in semantic.lanes:
            line = self.px(lane.polyline)
            cv2.polylines(background, [line], False, (200, 200, 200), max(1, int(self.scale * 2)), cv2.LINE_AA)
            if getattr(lane.direction, "value", "both") != "both":
                forward = lane.direction.value == "forward"
                a, b = (line[-2], line[-1]) if forward else (line[1], line[0])
                cv2.arrowedLine(background, tuple(int(v) for v in a), tuple(int(v) for v in b), (120, 120, 120), 1,
                                cv2.LINE_AA, tipLength=0.2)
        for marking in semantic.markings:
            cv2.polylines(background, [self.px(marking.polyline)], False, (255, 255, 255), 1, cv2.LINE_AA)
        for camera in cameras:
            self._draw_frustum(background, camera, far_m)
        self.background = background

    def px(self, points) -> np.ndarray:
        """Map metres (x east, y north) -> image pixels (north up)."""
        xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        u = (xy[:, 0] - self.x0) * self.scale
        v = self.size[1] - (xy[:, 1] - self.y0) * self.scale
        return np.column_stack([u, v]).round().astype(np.int32)

    def _draw_frustum(self, canvas, camera: CameraGeometry, far_m: float) -> None:
        import cv2

        corners = np.array([[0, camera.height - 1], [camera.width - 1, camera.height - 1],
                            [camera.width - 1, camera.height * 0.45], [0, camera.height * 0.45]], dtype=np.float64)
        ground, valid = camera.intersect_plane(corners, 0.0)
        origin = camera.position[:2]
        ends = []
        for k in range(4):
            point = ground[k, :2]
            direction = point - origin
            distance = float(np.linalg.norm(direction))
            if not valid[k] or distance > far_m:
                ray = camera.rays(corners[k:k + 1])[0, :2]
                direction = ray / max(np.linalg.norm(ray), 1e-9)
                point, distance = origin + direction * far_m, far_m
            ends.append(point)
        poly = self.px(np.vstack([origin, ends[1], ends[2], ends[3], ends[0]]))
        overlay = canvas.copy()
        cv2.fillPoly(overlay, [poly], (200, 230, 200))
        canvas[:] = cv2.addWeighted(overlay, 0.25, canvas, 0.75, 0)
        cv2.polylines(canvas, [poly], True, (90, 160, 90), 1, cv2.LINE_AA)
        o = self.px([origin])[0]
        cv2.circle(canvas, tuple(int(v) for v in o), 4, (40, 100, 40), -1, cv2.LINE_AA)
        cv2.putText(canvas, camera.camera_id, (int(o[0]) + 5, int(o[1]) - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (40, 100, 40), 1, cv2.LINE_AA)

    def render(self, objects: list[ObjectView], caption: str = "", occupied: dict[str, bool] | None = None):
        import cv2

        canvas = self.background.copy()
        for stall in self.site.map.stalls:
            taken = (occupied or {}).get(stall.id)
            colour = (120, 120, 120) if taken is None else ((60, 60, 220) if taken else (80, 180, 80))
            cv2.polylines(canvas, [self.px(stall.polygon)], True, colour, 2 if taken else 1, cv2.LINE_AA)
        for obj in objects:
            colour = CLASS_COLOURS.get(obj.class_name, (90, 90, 90))
            c, s = math.cos(obj.heading), math.sin(obj.heading)
            half_l, half_w = max(obj.length, 0.4) / 2, max(obj.width, 0.4) / 2
            corners = [(obj.x + c * dx - s * dy, obj.y + s * dx + c * dy)
                       for dx, dy in ((half_l, half_w), (half_l, -half_w), (-half_l, -half_w), (-half_l, half_w))]
            poly = self.px(corners)
            if obj.state == STATE_COASTING:
                cv2.polylines(canvas, [poly], True, colour, 1, cv2.LINE_AA)
            else:
                cv2.fillPoly(canvas, [poly], colour, cv2.LINE_AA)
            self._ellipse(canvas, obj, colour)
            centre = self.px([(obj.x, obj.y)])[0]
            tip = self.px([(obj.x + obj.vx, obj.y + obj.vy)])[0]
            if math.hypot(obj.vx, obj.vy) > 0.2:
                cv2.arrowedLine(canvas, tuple(int(v) for v in centre), tuple(int(v) for v in tip), (30, 30, 30), 1,
                                cv2.LINE_AA, tipLength=0.3)
            cv2.putText(canvas, str(obj.global_id), (int(centre[0]) + 6, int(centre[1]) + 4),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, (20, 20, 20), 1, cv2.LINE_AA)
        if caption:
            cv2.putText(canvas, caption, (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
        for row, (name, colour) in enumerate(CLASS_COLOURS.items()):
            y = 36 + 16 * row
            cv2.rectangle(canvas, (8, y - 9), (20, y + 1), colour, -1)
            cv2.putText(canvas, name, (26, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (20, 20, 20), 1, cv2.LINE_AA)
        cv2.putText(canvas, "hollow: coasting; ellipse: 2 sigma; arrow: 1 s of travel; stalls red taken, green free",
                    (8, self.size[1] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
        return canvas

    def _ellipse(self, canvas, obj: ObjectView, colour) -> None:
        import cv2

        xx, xy, yy = obj.covariance
        matrix = np.array([[xx, xy], [xy, yy]])
        if not np.all(np.isfinite(matrix)) or xx <= 0 or yy <= 0:
            return
        values, vectors = np.linalg.eigh(matrix)
        axes = 2.0 * np.sqrt(np.clip(values, 0, None)) * self.scale  # 2 sigma
        angle = -math.degrees(math.atan2(vectors[1, 1], vectors[0, 1]))  # image y points south
        centre = tuple(int(v) for v in self.px([(obj.x, obj.y)])[0])
        cv2.ellipse(canvas, centre, (max(1, int(axes[1])), max(1, int(axes[0]))), angle, 0, 360, colour, 1,
                    cv2.LINE_AA)


def annotate(image: np.ndarray, tracks: list[tuple[tuple[float, float, float, float], int, str]],
             caption: str = "") -> np.ndarray:
    """A camera frame with its tracks (box, track id, class) drawn on it."""
    import cv2

    canvas = image.copy()
    for (x1, y1, x2, y2), track_id, class_name in tracks:
        colour = CLASS_COLOURS.get(class_name, (90, 90, 90))
        cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2), int(y2)), colour, 2)
        cv2.putText(canvas, f"{class_name} {track_id}", (int(x1), max(12, int(y1) - 3)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, colour, 1, cv2.LINE_AA)
    if caption:
        cv2.putText(canvas, caption, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    return canvas


def mosaic(tiles: list[np.ndarray], columns: int = 2, tile_width: int = 480) -> np.ndarray:
    """Tiles side by side, ``columns`` per row, each scaled to ``tile_width``."""
    import cv2

    if not tiles:
        raise ValueError("no tiles")
    scaled = [cv2.resize(t, (tile_width, int(round(t.shape[0] * tile_width / t.shape[1])))) for t in tiles]
    height = max(t.shape[0] for t in scaled)
    scaled = [cv2.copyMakeBorder(t, 0, height - t.shape[0], 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
              for t in scaled]
    while len(scaled) % columns:
        scaled.append(np.zeros_like(scaled[0]))
    rows = [np.hstack(scaled[i:i + columns]) for i in range(0, len(scaled), columns)]
    return np.vstack(rows)


class VideoOut:
    """An MP4 (OpenCV's mp4v) of frames of one size; frames of another size are scaled to it."""

    def __init__(self, path: str | Path, fps: float):
        self.path, self.fps, self._writer, self._size, self.frames = Path(path), float(fps), None, None, 0

    def write(self, frame: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            self._size = (frame.shape[1] - frame.shape[1] % 2, frame.shape[0] - frame.shape[0] % 2)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size)
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
