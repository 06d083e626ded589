"""The synthetic world as a camera source plugin, and what deployment files a synthetic scene implies.

This module (with evaluation, training and the CLI) is where the world is
imported: the camera node loads it through ``sources.SOURCE_PLUGINS`` only when
a camera's source type is ``synthetic``.
"""
from __future__ import annotations

import os
from pathlib import Path
import numpy as np

from perception_nodes.calibration import CameraCalibration, save_calibration
from perception_nodes.errors import SourceError
from perception_nodes.fileio import atomic_write_yaml
from perception_nodes.risk.rules import suggested_rules
from perception_nodes.sources import Frame, FrameSource
from perception_nodes.world import World, load_scene
from perception_nodes.world.scene import Scene


class SyntheticSource(FrameSource):
    """Camera ``camera_id`` of a synthetic scene, following a real-time frame clock.

    ``read(frame_index)`` renders the given frame; the driver picks the index
    from elapsed time so a slow consumer skips frames instead of queueing them.
    """

    clocked = True
    provides_ground_truth = True

    def __init__(self, scene: str, camera_id: str, seed: int | None = None, loop: bool = True):
        self.world = World(load_scene(scene, seed=seed))
        ids = [c.id for c in self.world.scene.cameras]
        if camera_id not in ids:
            raise SourceError(f"scene {self.world.scene.name!r} has no camera {camera_id!r}; cameras: {ids}")
        self.camera_index = ids.index(camera_id)
        self.native_fps = self.world.scene.fps
        self.loop = loop
        self.next_index = 0
        self._dropouts = tuple(d for d in self.world.scene.disturbances.camera_dropouts if d.camera == camera_id)

    def open(self) -> None:
        self.world.renderer(self.camera_index)  # build the background once, up front

    def read(self, frame_index: int | None = None) -> Frame | None:
        index = self.next_index if frame_index is None else frame_index
        count = self.world.scene.frame_count
        if index >= count:
            if not self.loop:
                return None
            index %= count
        self.next_index = index + 1
        # The scene's scripted camera dropouts play live: the camera delivers nothing in the interval, as a real
        # camera that drops out does (the safety harness applies the same intervals to what cameras deliver).
        t = self.world.time_of(index)
        for dropout in self._dropouts:
            if dropout.contains(t):
                return Frame(np.zeros((0, 0, 3), np.uint8), index, None,
                             withheld=f"scripted dropout {dropout.start_s:g}-{dropout.end_s:g} s of scene time")
        image, boxes = self.world.render(self.camera_index, index)
        # Scripted detection delays play live as a latency spike in delivery: the frame reaches the chain late,
        # with its capture stamp, so every stage after it (detections, tracks, objects) is that much older.
        return Frame(image, index, boxes, delay_s=self.world.scene.disturbances.delay_at(t))

    def describe(self) -> str:
        return f"synthetic scene {self.world.scene.name} camera {self.world.scene.cameras[self.camera_index].id}"

    def calibration(self) -> CameraCalibration:
        """The true calibration of this camera (used when no calibration file is given)."""
        return CameraCalibration.from_camera_spec(self.world.scene.cameras[self.camera_index])


def export_scene_calibration(scene: Scene, out: str | os.PathLike, map_frame: str = "map") -> list[Path]:
    """Write the true calibration of a synthetic scene's cameras (each file atomically)."""
    from perception_nodes.site.tree import SITE_FILE

    folder = Path(out)
    written = [save_calibration(CameraCalibration.from_camera_spec(cam, map_frame), folder / f"{cam.id}.yaml")
               for cam in scene.cameras]
    header = (f"# Calibration of scene '{scene.name}' (true poses of its synthetic cameras).\n"
              f"# Regenerate: perception calibrate export --scene {scene.name} --out <this folder>\n")
    atomic_write_yaml(folder / SITE_FILE, {"map_frame": map_frame, "cameras": [c.id for c in scene.cameras]}, header)
    return written + [folder / SITE_FILE]


def _boundary_crossing(inner, outer, half_w: float, half_h: float):
    """Where the segment inner->outer leaves the lot rectangle (centred on the origin), or None."""
    (x0, y0), (x1, y1) = inner, outer
    best = None
    for axis, limit in ((0, half_w), (0, -half_w), (1, half_h), (1, -half_h)):
        a, b = (x0, x1) if axis == 0 else (y0, y1)
        if a == b or not (min(a, b) <= limit <= max(a, b)):
            continue
        t = (limit - a) / (b - a)
        point = (x0 + t * (x1 - x0), y0 + t * (y1 - y0))
        if abs(point[0]) <= half_w + 1e-6 and abs(point[1]) <= half_h + 1e-6 and (best is None or t < best[0]):
            best = (t, point, axis)
    return best


def _rectangle_along(a, b, width: float) -> list[list[float]]:
    (x0, y0), (x1, y1) = a, b
    length = max(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5, 1e-9)
    nx, ny = -(y1 - y0) / length * width / 2, (x1 - x0) / length * width / 2
    return [[round(x0 + nx, 3), round(y0 + ny, 3)], [round(x1 + nx, 3), round(y1 + ny, 3)],
            [round(x1 - nx, 3), round(y1 - ny, 3)], [round(x0 - nx, 3), round(y0 - ny, 3)]]


def _scene_reference(scene: Scene) -> str:
    """The scene's name when it is one of config/scenes, else its file's absolute path."""
    from perception_nodes.world.scene import scenes_dir

    path = Path(scene.source_path)
    return scene.name if path.parent.resolve() == scenes_dir().resolve() and path.stem == scene.name \
        else str(path.resolve())


def write_site_for_scene(scene: Scene, out: str | os.PathLike) -> Path:
    """Write a scene's site manifest (OUT/<scene>.yaml) and its true calibration (OUT/<scene>/calibration/)."""
    import yaml

    from perception_nodes.fileio import atomic_write_text

    folder = Path(out)
    calibration = folder / scene.name / "calibration"
    export_scene_calibration(scene, calibration)
    manifest = folder / f"{scene.name}.yaml"
    atomic_write_text(manifest, f"# Site of synthetic scene '{scene.name}' (written by: perception site from-scene "
                                f"{scene.name} --out {folder}).\n"
                      + yaml.safe_dump(site_manifest_for_scene(scene, os.path.relpath(calibration, folder)),
                                       sort_keys=False, default_flow_style=None))
    return manifest


def site_for_scene(scene_name_or_path: str, work_dir: str | os.PathLike) -> Path:
    """The manifest of a synthetic scene: config/sites/<name>.yaml when the package has it, else one written
    into ``work_dir`` from the scene file (for a scene of the user's own)."""
    from perception_nodes.site.manifest import sites_dir
    from perception_nodes.world.scene import resolve_scene_path

    path = resolve_scene_path(scene_name_or_path)
    shipped = sites_dir() / f"{path.stem}.yaml"
    from perception_nodes.world.scene import scenes_dir

    if path.parent.resolve() == scenes_dir().resolve() and shipped.is_file():
        return shipped
    return write_site_for_scene(load_scene(path), work_dir)


def _offset_segment_in_lot(a, b, offset: float, half_w: float, half_h: float):
    """Segment a-b moved sideways by ``offset`` and clipped to the lot (None when outside it)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    direction = b - a
    length = float(np.linalg.norm(direction))
    if length < 1e-9:
        return None
    normal = np.array([-direction[1], direction[0]]) / length
    a, b = a + normal * offset, b + normal * offset
    lo, hi = 0.0, 1.0
    for axis, half in ((0, half_w), (1, half_h)):
        d = b[axis] - a[axis]
        for bound, sign in ((-half, -1.0), (half, 1.0)):
            if abs(d) < 1e-12:
                if sign * a[axis] > half:
                    return None
                continue
            t = (bound - a[axis]) / d
            if sign * d > 0:
                hi = min(hi, t)
            else:
                lo = max(lo, t)
    if hi - lo <= 1e-6:
        return None
    return [[round(float(v), 3) for v in a + (b - a) * lo], [round(float(v), 3) for v in a + (b - a) * hi]]


def site_manifest_for_scene(scene: Scene, calibration_dir: str, map_frame: str = "map") -> dict:
    """The site manifest of a synthetic scene: its cameras as synthetic sources, its lot as the semantic map.

    Stalls come from the scene's parking rows (5 m deep, away from the lane, as the renderer paints them),
    lanes from its vehicle paths (traffic uses them both ways), walkway zones 2 m wide along its walkways,
    gates where the lanes cross the lot's edge, landmarks from its pillars.
    """
    half_w, half_h = scene.lot_size[0] / 2.0, scene.lot_size[1] / 2.0
    zones = [{"name": "lot", "kind": "parking",
              "polygon": [[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]]}]
    for row, (x0, y0, width, count) in enumerate(scene.parking_rows):
        depth = 5.0 if y0 >= 0 else -5.0
        zones.append({"name": f"row{row}", "kind": "parking",
                      "polygon": [[x0, y0], [x0 + width * count, y0], [x0 + width * count, y0 + depth],
                                  [x0, y0 + depth]]})
    stalls = [{"id": stall.id, "zone": f"row{stall.row}", "polygon": [list(p) for p in stall.polygon]}
              for stall in scene.stalls]
    for w, path in enumerate(scene.walkways):
        for s, (a, b) in enumerate(zip(path, path[1:])):
            zones.append({"name": f"walkway{w}_{s}", "kind": "walkway", "polygon": _rectangle_along(a, b, 2.0)})
    lanes, gates = [], []
    for i, path in enumerate(scene.lanes):
        direction = scene.lane_directions[i] if scene.lane_directions else "both"
        lanes.append({"name": f"lane{i}", "polyline": [list(p) for p in path], "direction": direction})
        for end, (inner, outer) in (("start", (path[1], path[0])), ("end", (path[-2], path[-1]))):
            crossing = _boundary_crossing(inner, outer, half_w, half_h)
            if crossing is None:
                continue
            _, (x, y), axis = crossing
            segment = [[round(x, 3), round(y - 3.0, 3)], [round(x, 3), round(y + 3.0, 3)]] if axis == 0 else \
                [[round(x - 3.0, 3), round(y, 3)], [round(x + 3.0, 3), round(y, 3)]]
            gates.append({"name": f"lane{i}_{end}", "kind": "both", "segment": segment})
    landmarks = [{"name": f"pillar{i}", "position": [m.position[0], m.position[1], 0.0], "kind": "pillar"}
                 for i, m in enumerate(scene.landmarks)]
    # The white stall separators the renderer paints (x0 + k * width across each row's depth).
    markings = []
    for row, (x0, y0, width, count) in enumerate(scene.parking_rows):
        depth = 5.0 if y0 >= 0 else -5.0
        markings += [{"name": f"row{row}_line{k:02d}", "polyline": [[x0 + k * width, y0], [x0 + k * width, y0 + depth]]}
                     for k in range(count + 1)]
    # The yellow centre dashes of the lanes (the marking runs through dashes and gaps; inside the lot).
    for i, path in enumerate(scene.lanes):
        for s, (a, b) in enumerate(zip(path, path[1:])):
            segment = _offset_segment_in_lot(a, b, 0.0, half_w, half_h)
            if segment is not None:
                markings.append({"name": f"lane{i}_{s}_centre", "polyline": segment})
    # The white edge lines of the walkways (1.3 m either side of the path, inside the lot).
    for w, path in enumerate(scene.walkways):
        for s, (a, b) in enumerate(zip(path, path[1:])):
            for side in (-1.0, 1.0):
                segment = _offset_segment_in_lot(a, b, side * 1.3, half_w, half_h)
                if segment is not None:
                    markings.append({"name": f"walkway{w}_{s}_edge{'LR'[side > 0]}", "polyline": segment})
    return {"schema_version": 1, "site": scene.name, "description": f"Synthetic scene '{scene.name}': "
            f"{scene.description}", "map_frame": map_frame, "calibration_dir": calibration_dir,
            "cameras": [{"id": c.id, "source": f"synthetic:{_scene_reference(scene)}", "rate_hz": 0.0, "image_qos": "reliable",
                         "priority": 1} for c in scene.cameras],
            "detector": {"class_map": {"car": "car", "truck": "truck", "person": "person", "bicycle": "bicycle"},
                         "unmapped": "drop"},
            "map": _rounded({"zones": zones, "stalls": stalls, "lanes": lanes, "gates": gates,
                             "landmarks": landmarks, "markings": markings}),
            "risk": suggested_rules({"zones": zones, "lanes": lanes, "gates": gates})}


def _rounded(value, digits: int = 3):
    """Coordinates to the millimetre (no float noise like -7.199999999 in a file people read)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, (list, tuple)):
        return [_rounded(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    return value
