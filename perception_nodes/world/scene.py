"""Scene description: the YAML files under config/scenes/, validated into dataclasses."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from perception_nodes.errors import ConfigError
from perception_nodes.world.conditions import Conditions, parse_conditions
from perception_nodes.fileio import read_yaml_mapping
from perception_nodes.paths import package_path

CLASS_NAMES = ("car", "truck", "person", "bicycle")
DEFAULT_SCENE = "default"


@dataclass(frozen=True)
class CameraSpec:
    """One camera: intrinsics (pixels), distortion (plumb_bob) and mounted pose in the map.

    ``position`` is the optical centre in the map frame (m). ``yaw_deg`` turns the
    camera about the map z axis (0: looking along +x), ``pitch_deg`` tilts it
    down (positive looks at the ground), ``roll_deg`` rolls about the viewing axis.
    """

    id: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...]
    position: tuple[float, float, float]
    yaw_deg: float
    pitch_deg: float
    roll_deg: float = 0.0

    @property
    def optical_frame(self) -> str:
        return f"{self.id}_optical_frame"


@dataclass(frozen=True)
class Landmark:
    position: tuple[float, float]
    size: tuple[float, float, float]
    color: tuple[int, int, int]  # BGR


@dataclass(frozen=True)
class ParkingSpec:
    """A parking lot's life (opt-in per scene, ``parking:`` in the scene file; ``world/parking.py``).

    Vehicles drive in along a lane, wait at the entry gate (a queue forms when they come close together),
    drive to a free stall, park for a dwell time, reverse out and leave; ``initially_parked`` stalls are taken
    at the start. A share of the parked cars' drivers walk from the car to the nearest walkway and away.
    """

    vehicles: int = 10               # arrivals during the scene
    initially_parked: int = 4        # stalls taken at t = 0 (their vehicles leave during the scene or stay)
    dwell_s: tuple[float, float] = (8.0, 40.0)
    gate_wait_s: float = 2.0         # stop at the entry gate (barrier) before driving on
    truck_share: float = 0.15
    drivers_walk: float = 0.5        # share of arriving cars whose driver gets out and walks away
    approach_speed: float = 4.0      # m/s on the lane
    manoeuvre_speed: float = 1.5     # m/s into and out of a stall


@dataclass(frozen=True)
class CameraBump:
    """One camera knocked off its calibrated pose at ``time_s`` (the TF tree keeps the calibrated pose)."""

    camera: str
    time_s: float
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0

    @property
    def magnitude_deg(self) -> float:
        return math.sqrt(self.yaw_deg ** 2 + self.pitch_deg ** 2 + self.roll_deg ** 2)


@dataclass(frozen=True)
class Interval:
    """A scripted disturbance between ``start_s`` and ``end_s`` (scene time)."""

    start_s: float
    end_s: float

    def contains(self, t: float) -> bool:
        return self.start_s <= t < self.end_s


@dataclass(frozen=True)
class CameraDropout(Interval):
    camera: str = ""                  # the camera that delivers nothing in the interval


@dataclass(frozen=True)
class DetectionDelay(Interval):
    delay_s: float = 0.0              # every camera's detections arrive this much later in the interval


@dataclass(frozen=True)
class DetectionNoise(Interval):
    """The ``gt-noisy`` detector's noise in the interval (a noise burst, glare): overrides NoiseModel fields."""

    jitter: float | None = None
    miss_rate: float | None = None
    false_positives_per_frame: float | None = None


@dataclass(frozen=True)
class Disturbances:
    """Scripted failures of the sensing chain, with their true times (opt-in per scene, ``disturbances:``).

    The world itself is unchanged by them: harnesses (``perception eval safety``) apply them to what the cameras
    deliver, and score how the system noticed; a synthetic camera plays the dropouts and delays live."""

    camera_dropouts: tuple[CameraDropout, ...] = ()
    detection_delays: tuple[DetectionDelay, ...] = ()
    detection_noise: tuple[DetectionNoise, ...] = ()

    def delay_at(self, t: float) -> float:
        """How late what is captured at scene time ``t`` arrives (the longest delay in force; 0 outside them)."""
        return max((d.delay_s for d in self.detection_delays if d.contains(t)), default=0.0)


@dataclass(frozen=True)
class Stall:
    """A parking stall painted on the lot: id (as the site manifest names it), row, corner polygon (m)."""

    id: str
    row: int
    polygon: tuple[tuple[float, float], ...]

    @property
    def center(self) -> tuple[float, float]:
        xs, ys = zip(*self.polygon)
        return sum(xs) / len(xs), sum(ys) / len(ys)


@dataclass(frozen=True)
class Scene:
    name: str
    description: str
    seed: int
    fps: float
    duration_s: float
    lot_size: tuple[float, float]
    lanes: tuple[tuple[tuple[float, float], ...], ...]
    walkways: tuple[tuple[tuple[float, float], ...], ...]
    parking_rows: tuple[tuple[float, float, float, int], ...]  # x0, y, stall width, count
    landmarks: tuple[Landmark, ...]
    cameras: tuple[CameraSpec, ...]
    actor_count: int
    class_mix: dict[str, float]
    brightness: float
    brightness_variation: float
    lighting_period_s: float
    noise_sigma: float
    scripted_actors: tuple[dict, ...] = field(default_factory=tuple)
    source_path: str = ""
    parking: ParkingSpec | None = None
    camera_bump: CameraBump | None = None
    lane_directions: tuple[str, ...] = ()   # per lane: forward|backward|both for the site map (default both)
    disturbances: Disturbances = field(default_factory=Disturbances)
    # "varied": actors in any colour (the shipped detector's world); "fleet": a realistic fleet (actors.fleet_parts)
    appearance: str = "varied"
    # Light, weather, optics and the video chain (world/conditions.py); None renders the plain daylight world.
    conditions: Conditions | None = None
    # Actors give way (world/yielding.py): vehicles keep their distance, yield to people and at crossings. Off:
    # every actor keeps its plan's timing and may drive through another (the scenes the figures were made on).
    yielding: bool = False

    @property
    def stalls(self) -> tuple[Stall, ...]:
        """The painted stalls of the parking rows: 5 m deep, away from the lane (as the renderer paints them)."""
        out = []
        for row, (x0, y0, width, count) in enumerate(self.parking_rows):
            depth = 5.0 if y0 >= 0 else -5.0
            for i in range(count):
                left, right = round(x0 + i * width, 3), round(x0 + (i + 1) * width, 3)
                out.append(Stall(f"row{row}_{i:02d}", row,
                                 ((left, y0), (right, y0), (right, y0 + depth), (left, y0 + depth))))
        return tuple(out)

    @property
    def frame_count(self) -> int:
        return int(round(self.duration_s * self.fps))

    def camera(self, camera_id: str) -> CameraSpec:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise ConfigError(f"scene {self.name!r} has no camera {camera_id!r} (has {[c.id for c in self.cameras]})")

    def with_seed(self, seed: int) -> "Scene":
        return replace(self, seed=int(seed))


def scenes_dir() -> Path:
    return package_path("config/scenes")


def available_scenes() -> list[str]:
    return sorted(p.stem for p in scenes_dir().glob("*.yaml"))


def resolve_scene_path(name_or_path: str | os.PathLike | None) -> Path:
    name = str(name_or_path or DEFAULT_SCENE)
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"scene file {path} does not exist")
        return path
    candidate = scenes_dir() / f"{name}.yaml"
    if not candidate.is_file():
        raise ConfigError(f"unknown scene {name!r}; available: {', '.join(available_scenes())}")
    return candidate


def _number(data: dict, key: str, where: str, default=None, minimum=None, maximum=None) -> float:
    value = data.get(key, default)
    if value is None:
        raise ConfigError(f"{where}: '{key}' is required")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: '{key}' must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{where}: '{key}' must be finite")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{where}: '{key}' = {value} is below {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{where}: '{key}' = {value} is above {maximum}")
    return value


def _polyline(points, where: str) -> tuple[tuple[float, float], ...]:
    try:
        pts = tuple((float(p[0]), float(p[1])) for p in points)
    except (TypeError, ValueError, IndexError):
        raise ConfigError(f"{where}: a path must be a list of [x, y] points") from None
    if len(pts) < 2:
        raise ConfigError(f"{where}: a path needs at least two points")
    return pts


def _camera(data: dict, index: int) -> CameraSpec:
    where = f"cameras[{index}]"
    if not isinstance(data, dict) or not data.get("id"):
        raise ConfigError(f"{where}: needs an 'id'")
    width = int(_number(data, "width", where, 640, 16, 8192))
    height = int(_number(data, "height", where, 480, 16, 8192))
    hfov = data.get("hfov_deg")
    if hfov is not None:
        fx = fy = width / 2.0 / math.tan(math.radians(_number(data, "hfov_deg", where, None, 10, 170)) / 2.0)
    else:
        fx = _number(data, "fx", where, None, 1)
        fy = _number(data, "fy", where, fx, 1)
    distortion = tuple(float(v) for v in data.get("distortion", [0, 0, 0, 0, 0]))
    if len(distortion) != 5:
        raise ConfigError(f"{where}: 'distortion' must have 5 plumb_bob coefficients [k1, k2, p1, p2, k3]")
    position = data.get("position")
    if not (isinstance(position, (list, tuple)) and len(position) == 3):
        raise ConfigError(f"{where}: 'position' must be [x, y, z] in metres")
    return CameraSpec(
        id=str(data["id"]), width=width, height=height, fx=fx, fy=fy,
        cx=_number(data, "cx", where, (width - 1) / 2.0), cy=_number(data, "cy", where, (height - 1) / 2.0),
        distortion=distortion, position=tuple(float(v) for v in position),
        yaw_deg=_number(data, "yaw_deg", where, 0.0), pitch_deg=_number(data, "pitch_deg", where, 0.0, -90, 90),
        roll_deg=_number(data, "roll_deg", where, 0.0),
    )


def _merged(base: dict, over: dict) -> dict:
    """``over`` laid on ``base``: mappings merge key by key, everything else (lists included) is replaced."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _read_scene_data(path: Path, seen: tuple = ()) -> dict:
    """A scene file's mapping, with ``extends: OTHER`` (a scene name or a path beside it) resolved first."""
    data = read_yaml_mapping(path, "scene file")
    base = data.pop("extends", None)
    if base is None:
        return data
    base_path = path.parent / f"{base}.yaml" if (path.parent / f"{base}.yaml").is_file() else resolve_scene_path(base)
    if base_path.resolve() in seen or base_path.resolve() == path.resolve():
        raise ConfigError(f"{path}: 'extends: {base}' makes a cycle")
    return _merged(_read_scene_data(base_path, seen + (path.resolve(),)), data)


def load_scene(name_or_path: str | os.PathLike | None = None, seed: int | None = None) -> Scene:
    """Load and validate a scene by name (config/scenes/NAME.yaml) or path."""
    path = resolve_scene_path(name_or_path)
    data = _read_scene_data(path)
    where = str(path)
    lot = data.get("lot", {}) or {}
    lighting = data.get("lighting", {}) or {}
    traffic = data.get("traffic", {}) or {}
    cams = data.get("cameras")
    if not cams:
        raise ConfigError(f"{where}: 'cameras' must list at least one camera")
    cameras = tuple(_camera(c, i) for i, c in enumerate(cams))
    ids = [c.id for c in cameras]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{where}: camera ids must be unique, got {ids}")
    mix = {str(k): float(v) for k, v in (traffic.get("classes") or {"car": 1}).items()}
    unknown = set(mix) - set(CLASS_NAMES)
    if unknown:
        raise ConfigError(f"{where}: unknown classes {sorted(unknown)}; known: {list(CLASS_NAMES)}")
    if sum(mix.values()) <= 0:
        raise ConfigError(f"{where}: traffic.classes weights must sum to more than 0")
    landmarks = tuple(
        Landmark(position=(float(m["position"][0]), float(m["position"][1])),
                 size=tuple(float(v) for v in m.get("size", [0.6, 0.6, 2.0])),
                 color=tuple(int(v) for v in m.get("color", [0, 140, 255])))
        for m in lot.get("landmarks", []) or [])
    rows = tuple((float(r[0]), float(r[1]), float(r[2]), int(r[3])) for r in lot.get("parking_rows", []) or [])
    scene = Scene(
        name=str(data.get("name", path.stem)), description=str(data.get("description", "")),
        seed=int(data.get("seed", 0) if seed is None else seed),
        fps=_number(data, "fps", where, 10.0, 0.1, 240), duration_s=_number(data, "duration_s", where, 30.0, 0.1),
        lot_size=tuple(float(v) for v in lot.get("size_m", [60.0, 40.0])),
        lanes=tuple(_polyline(p, f"{where}: lot.lanes") for p in lot.get("lanes", []) or []),
        walkways=tuple(_polyline(p, f"{where}: lot.walkways") for p in lot.get("walkways", []) or []),
        parking_rows=rows, landmarks=landmarks, cameras=cameras,
        actor_count=int(_number(traffic, "count", f"{where}: traffic", 10, 0, 500)), class_mix=mix,
        brightness=_number(lighting, "brightness", f"{where}: lighting", 1.0, 0.01, 4),
        brightness_variation=_number(lighting, "variation", f"{where}: lighting", 0.0, 0, 1),
        lighting_period_s=_number(lighting, "period_s", f"{where}: lighting", 60.0, 0.1),
        noise_sigma=_number(data.get("noise", {}) or {}, "sigma", f"{where}: noise", 2.0, 0, 100),
        scripted_actors=tuple(_scripted(a, f"{where}: traffic.scripted[{i}]")
                              for i, a in enumerate(traffic.get("scripted", []) or [])),
        source_path=str(path),
    )
    directions = lot.get("lane_directions", []) or []
    if len(directions) not in (0, len(scene.lanes)) or any(d not in ("forward", "backward", "both")
                                                           for d in directions):
        raise ConfigError(f"{where}: lot.lane_directions must give forward, backward or both for each of the "
                          f"{len(scene.lanes)} lanes")
    scene = replace(scene, lane_directions=tuple(directions))
    appearance = str((traffic.get("appearance") or "varied"))
    if appearance not in ("varied", "fleet"):
        raise ConfigError(f"{where}: traffic.appearance must be 'varied' or 'fleet', got {appearance!r}")
    scene = replace(scene, appearance=appearance)
    yielding = traffic.get("yielding", False)
    if not isinstance(yielding, bool):
        raise ConfigError(f"{where}: traffic.yielding must be true or false, got {yielding!r}")
    scene = replace(scene, yielding=yielding)
    if data.get("disturbances") is not None:
        scene = replace(scene, disturbances=_disturbances(data["disturbances"], f"{where}: disturbances", ids,
                                                          scene.duration_s))
    if not scene.lanes and not scene.walkways and scene.actor_count:
        raise ConfigError(f"{where}: actors need at least one lane or walkway")
    if data.get("parking") is not None:
        scene = replace(scene, parking=_parking(data["parking"], f"{where}: parking", scene))
    if data.get("conditions") is not None:
        scene = replace(scene, conditions=parse_conditions(data["conditions"], f"{where}: conditions", scene.lanes,
                                                           scene.lot_size))
    if data.get("camera_bump") is not None:
        scene = replace(scene, camera_bump=_camera_bump(data["camera_bump"], f"{where}: camera_bump", ids))
    return scene


def _parking(data, where: str, scene: Scene) -> ParkingSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping (vehicles, initially_parked, dwell_s, ...)")
    if not scene.parking_rows or not scene.lanes:
        raise ConfigError(f"{where}: needs lot.parking_rows and lot.lanes")
    dwell = data.get("dwell_s", ParkingSpec.dwell_s)
    if not (isinstance(dwell, (list, tuple)) and len(dwell) == 2 and 0 < float(dwell[0]) <= float(dwell[1])):
        raise ConfigError(f"{where}: 'dwell_s' must be [min, max] seconds with 0 < min <= max")
    spec = ParkingSpec(
        vehicles=int(_number(data, "vehicles", where, ParkingSpec.vehicles, 0, 500)),
        initially_parked=int(_number(data, "initially_parked", where, ParkingSpec.initially_parked, 0, 500)),
        dwell_s=(float(dwell[0]), float(dwell[1])),
        gate_wait_s=_number(data, "gate_wait_s", where, ParkingSpec.gate_wait_s, 0, 60),
        truck_share=_number(data, "truck_share", where, ParkingSpec.truck_share, 0, 1),
        drivers_walk=_number(data, "drivers_walk", where, ParkingSpec.drivers_walk, 0, 1),
        approach_speed=_number(data, "approach_speed", where, ParkingSpec.approach_speed, 0.5, 20),
        manoeuvre_speed=_number(data, "manoeuvre_speed", where, ParkingSpec.manoeuvre_speed, 0.2, 5),
    )
    if spec.initially_parked > len(scene.stalls):
        raise ConfigError(f"{where}: initially_parked {spec.initially_parked} exceeds the {len(scene.stalls)} stalls")
    return spec


def _camera_bump(data, where: str, camera_ids: list[str]) -> CameraBump:
    if not isinstance(data, dict) or data.get("camera") not in camera_ids:
        raise ConfigError(f"{where}: needs 'camera' (one of {camera_ids}), 'time_s' and yaw/pitch/roll in degrees")
    return CameraBump(str(data["camera"]), _number(data, "time_s", where, None, 0),
                      _number(data, "yaw_deg", where, 0.0, -30, 30), _number(data, "pitch_deg", where, 0.0, -30, 30),
                      _number(data, "roll_deg", where, 0.0, -30, 30))


def _scripted(spec, where: str) -> dict:
    """A scripted actor: ``{class, path, speed, enter_time, lateral_offset}`` (constant speed along a path) or
    ``{class, start, enter_time, legs: [{to: [x, y], speed: v, reverse: bool} | {wait: s}, ...]}`` (a speed
    profile with stops and reversing)."""
    if not isinstance(spec, dict) or spec.get("class") not in ("car", "truck", "person", "bicycle"):
        raise ConfigError(f"{where}: needs 'class' (car, truck, person or bicycle)")
    if "legs" in spec:
        start = spec.get("start")
        if not (isinstance(start, (list, tuple)) and len(start) == 2):
            raise ConfigError(f"{where}: a scripted actor with legs needs 'start: [x, y]'")
        legs = spec["legs"]
        if not isinstance(legs, list) or not legs:
            raise ConfigError(f"{where}: 'legs' must list at least one leg")
        for k, leg in enumerate(legs):
            if not isinstance(leg, dict):
                raise ConfigError(f"{where}: legs[{k}] must be {{to: [x, y], speed: v}} or {{wait: s}}")
            if "wait" in leg:
                _number(leg, "wait", f"{where}: legs[{k}]", None, 0, 3600)
            elif not (isinstance(leg.get("to"), (list, tuple)) and len(leg["to"]) == 2):
                raise ConfigError(f"{where}: legs[{k}] needs 'to: [x, y]' and 'speed' (or 'wait')")
            else:
                _number(leg, "speed", f"{where}: legs[{k}]", None, 1e-6, 60)
        return dict(spec)
    if "path" not in spec or "speed" not in spec:
        raise ConfigError(f"{where}: needs 'path' and 'speed' (or 'start' and 'legs')")
    _number(spec, "speed", where, None, 1e-6, 60)
    return dict(spec)


def _disturbances(data, where: str, camera_ids: list[str], duration_s: float) -> Disturbances:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping (camera_dropouts, detection_delays, detection_noise)")
    unknown = set(data) - {"camera_dropouts", "detection_delays", "detection_noise"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")

    def interval(item, what: str, k: int) -> tuple[float, float]:
        here = f"{where}: {what}[{k}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{here}: must be a mapping with start_s and end_s")
        start = _number(item, "start_s", here, None, 0, duration_s)
        end = _number(item, "end_s", here, duration_s, start, 1e9)
        return start, end

    dropouts = []
    for k, item in enumerate(data.get("camera_dropouts", []) or []):
        start, end = interval(item, "camera_dropouts", k)
        if item.get("camera") not in camera_ids:
            raise ConfigError(f"{where}: camera_dropouts[{k}].camera must be one of {camera_ids}")
        dropouts.append(CameraDropout(start, end, str(item["camera"])))
    delays = []
    for k, item in enumerate(data.get("detection_delays", []) or []):
        start, end = interval(item, "detection_delays", k)
        delays.append(DetectionDelay(start, end, _number(item, "delay_s", f"{where}: detection_delays[{k}]", None,
                                                         0, 60)))
    noise = []
    for k, item in enumerate(data.get("detection_noise", []) or []):
        start, end = interval(item, "detection_noise", k)
        here = f"{where}: detection_noise[{k}]"
        noise.append(DetectionNoise(start, end, *(_number(item, key, here, None, 0, 100) if key in item else None
                                                  for key in ("jitter", "miss_rate", "false_positives_per_frame"))))
    return Disturbances(tuple(dropouts), tuple(delays), tuple(noise))
