"""Synthetic multi-camera world with ground truth (pure Python, no ROS).

>>> world = World(load_scene("default", seed=3))
>>> image, boxes = world.render(camera_index=0, frame_index=10)
"""
from __future__ import annotations

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)  # noqa: F821 - source tree + install space (see the package __init__)

from dataclasses import dataclass, replace

import numpy as np

from perception_nodes.world.actors import Actor, generate_actors
from perception_nodes.world.camera import CameraModel
from perception_nodes.world.render import CameraRenderer, GroundTruthBox
from perception_nodes.world.scene import CLASS_NAMES, CameraSpec, Scene, available_scenes, load_scene

__all__ = ["World", "ObjectState", "GroundTruthBox", "Scene", "CameraSpec", "CLASS_NAMES",
           "load_scene", "available_scenes", "Actor", "CameraModel"]


@dataclass
class ObjectState:
    """Ground truth of one actor at one instant, in the map frame."""

    global_id: int
    class_id: int
    class_name: str
    position: np.ndarray  # m; centre of the object's bounding box
    velocity: np.ndarray  # m/s
    yaw: float  # rad, heading about +z
    size: tuple[float, float, float]  # length, width, height (m)

    def to_dict(self) -> dict:
        return {"global_id": self.global_id, "class_id": self.class_id, "class_name": self.class_name,
                "position": [round(float(v), 4) for v in self.position],
                "velocity": [round(float(v), 4) for v in self.velocity],
                "yaw": round(self.yaw, 5), "size": [round(v, 3) for v in self.size]}


_GIVEN_WAY: dict[str, tuple] = {}


def _given_way(scene: Scene) -> tuple[list[Actor], object]:
    """The scene's actors after giving way, kept for the last two scenes of this process (a harness builds the
    same world more than once, and the step simulation is the expensive part of building it). Keyed by the whole
    scene, so a changed field is another world."""
    from perception_nodes.world.yielding import give_way

    key = repr(scene)
    if key not in _GIVEN_WAY:
        while len(_GIVEN_WAY) >= 2:
            _GIVEN_WAY.pop(next(iter(_GIVEN_WAY)))
        _GIVEN_WAY[key] = give_way(generate_actors(scene), 0.0, scene.duration_s, 1.0 / scene.fps)
    given, report = _GIVEN_WAY[key]
    return list(given), report


class World:
    """A scene's actors and cameras; renders any camera at any frame index deterministically."""

    def __init__(self, scene: Scene):
        self.scene = scene
        self.yield_report = None  # what giving way did (world/yielding.py), for scenes whose actors give way
        if scene.yielding:
            self.actors, self.yield_report = _given_way(scene)
        else:
            self.actors = generate_actors(scene)
        self.cameras = [CameraModel(spec) for spec in scene.cameras]
        self._renderers: dict[int, CameraRenderer] = {}

    def time_of(self, frame_index: int) -> float:
        return frame_index / self.scene.fps

    def states(self, frame_index: int) -> list[tuple[Actor, np.ndarray, float, np.ndarray]]:
        t = self.time_of(frame_index)
        out = []
        for actor in self.actors:
            present, position, yaw, velocity = actor.state(t)
            if present:
                out.append((actor, position, yaw, velocity))
        return out

    def object_states(self, frame_index: int) -> list[ObjectState]:
        return [ObjectState(a.global_id, a.class_id, a.class_name, p, v, yaw, a.size)
                for a, p, yaw, v in self.states(frame_index)]

    def renderer(self, camera_index: int, bumped: bool = False) -> CameraRenderer:
        key = (camera_index, bumped)
        if key not in self._renderers:
            camera = self.bumped_camera(camera_index) if bumped else self.cameras[camera_index]
            self._renderers[key] = CameraRenderer(self.scene, camera)
        return self._renderers[key]

    def is_bumped(self, camera_index: int, frame_index: int) -> bool:
        """Whether the scene's camera bump has moved this camera by this frame."""
        bump = self.scene.camera_bump
        return bump is not None and self.cameras[camera_index].spec.id == bump.camera and \
            self.time_of(frame_index) >= bump.time_s

    def bumped_camera(self, camera_index: int) -> CameraModel:
        """The camera as the bump left it (the calibration files keep the pose before)."""
        bump = self.scene.camera_bump
        spec = self.cameras[camera_index].spec
        return CameraModel(replace(spec, yaw_deg=spec.yaw_deg + bump.yaw_deg, pitch_deg=spec.pitch_deg + bump.pitch_deg,
                                   roll_deg=spec.roll_deg + bump.roll_deg))

    def true_camera(self, camera_index: int, frame_index: int) -> CameraModel:
        """The camera's actual pose at a frame (bumped or not)."""
        return self.bumped_camera(camera_index) if self.is_bumped(camera_index, frame_index) else \
            self.cameras[camera_index]

    def stall_occupancy(self, frame_index: int) -> dict[str, int | None]:
        """Per stall id: the global id of the vehicle whose footprint centre is in it, else None."""
        from perception_nodes.geometry import point_in_polygon

        vehicles = [(a.global_id, p[:2]) for a, p, _, _ in self.states(frame_index) if a.class_name in ("car", "truck")]
        out = {}
        for stall in self.scene.stalls:
            out[stall.id] = next((gid for gid, xy in vehicles if point_in_polygon(xy, stall.polygon)), None)
        return out

    def render(self, camera_index: int, frame_index: int,
               with_image: bool = True) -> tuple[np.ndarray | None, list[GroundTruthBox]]:
        """(bgr8 image, ground-truth boxes) of one camera at one frame; without ``with_image``, (None, the same
        boxes) at a fraction of the cost."""
        if not 0 <= camera_index < len(self.cameras):
            raise IndexError(f"camera index {camera_index} out of range (scene has {len(self.cameras)})")
        states = [(a, p, yaw) for a, p, yaw, _ in self.states(frame_index)]
        renderer = self.renderer(camera_index, self.is_bumped(camera_index, frame_index))
        return renderer.render(states, frame_index, self.time_of(frame_index), with_image)
