"""Site manifest: the one file that describes a deployment (pure Python, no ROS, no world).

``config/sites/<site>.yaml`` (or any path) names the site's map frame, its
cameras (source, rate, calibration, image QoS, priority), its semantic map in
the map frame (zones, parking stalls, lanes, entrances/exits, landmarks), the
detector model and the map from that model's classes to the site taxonomy.
The node graph, the TF tree and every later stage (localization, retrieval,
risk) read the site from here. The schema is documented in the README
("Site manifest") and in :data:`SCHEMA_HELP`.

:func:`load_manifest` collects every problem of a file before it raises, so a
user fixes them in one pass: each says the file, the key and the fix.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from perception_nodes.errors import ConfigError
from perception_nodes.fileio import atomic_write_text, read_yaml_mapping
from perception_nodes.paths import package_path
from perception_nodes.sources import SourceType
from perception_nodes.taxonomy import SITE_CLASS_NAMES, UnmappedPolicy

SCHEMA_VERSION = 1
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt", "rtp")
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # a ROS name token: camera ids become namespaces and frame ids


class ManifestError(ConfigError):
    """A site manifest is invalid; ``problems`` lists every problem found (file, key, fix)."""

    def __init__(self, path: str, problems: list[str]):
        self.path, self.problems = str(path), list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{path}: {len(self.problems)} problem(s) in the site manifest:\n{lines}")


class ImageQos(str, Enum):
    """How a camera's images travel: RELIABLE depth 1 (our default) or BEST_EFFORT (sensor_data, as many drivers)."""

    RELIABLE = "reliable"
    SENSOR_DATA = "sensor_data"


class ZoneKind(str, Enum):
    PARKING = "parking"
    DRIVING = "driving"
    WALKWAY = "walkway"
    RESTRICTED = "restricted"
    LOADING = "loading"
    ENTRANCE = "entrance"
    EXIT = "exit"
    OTHER = "other"


class LaneDirection(str, Enum):
    """Allowed travel along a lane's polyline: in point order, against it, or both ways."""

    FORWARD = "forward"
    BACKWARD = "backward"
    BOTH = "both"


class GateKind(str, Enum):
    ENTRANCE = "entrance"
    EXIT = "exit"
    BOTH = "both"


@dataclass(frozen=True)
class CameraSource:
    type: SourceType
    target: str = ""  # device index/path, file, directory or URL; synthetic: the scene name or path
    seed: int | None = None  # synthetic only
    loop: bool = True


@dataclass(frozen=True)
class SiteCamera:
    id: str
    source: CameraSource
    calibration: Path
    rate_hz: float = 0.0  # 0: the source's own rate
    image_qos: ImageQos = ImageQos.RELIABLE
    priority: int = 1  # served this many times as often as a priority-1 camera when the detector is overloaded


@dataclass(frozen=True)
class Zone:
    name: str
    kind: ZoneKind
    polygon: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Stall:
    id: str
    polygon: tuple[tuple[float, float], ...]
    zone: str = ""


@dataclass(frozen=True)
class Lane:
    name: str
    polyline: tuple[tuple[float, float], ...]
    direction: LaneDirection = LaneDirection.BOTH


@dataclass(frozen=True)
class Gate:
    name: str
    kind: GateKind
    segment: tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class Landmark:
    name: str
    position: tuple[float, float, float]
    kind: str = "pillar"


@dataclass(frozen=True)
class Marking:
    """A line painted on the ground (stall separators, lane edges): calibration health checks cameras against
    them."""

    name: str
    polyline: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class SemanticMap:
    zones: tuple[Zone, ...] = ()
    stalls: tuple[Stall, ...] = ()
    lanes: tuple[Lane, ...] = ()
    gates: tuple[Gate, ...] = ()
    landmarks: tuple[Landmark, ...] = ()
    markings: tuple[Marking, ...] = ()

    def points(self) -> list[tuple[float, float]]:
        """Every (x, y) the map's geometry names: its extent on the ground."""
        out = [pt for zone in self.zones for pt in zone.polygon]
        out += [pt for stall in self.stalls for pt in stall.polygon]
        out += [pt for lane in self.lanes for pt in lane.polyline]
        out += [pt for gate in self.gates for pt in gate.segment]
        out += [pt for marking in self.markings for pt in marking.polyline]
        out += [(lm.position[0], lm.position[1]) for lm in self.landmarks]
        return [(float(x), float(y)) for x, y in out]


@dataclass(frozen=True)
class DetectorChoice:
    model: str = ""  # name@version in the model registry; empty: the params file's model
    manifest: str = ""  # a user's model registry (models/manifest.yaml layout); empty: the package's
    class_map: dict[str, str] | None = None  # model class name -> site class name; None: same-name classes
    unmapped: UnmappedPolicy = UnmappedPolicy.DROP


@dataclass(frozen=True)
class SiteManifest:
    name: str
    path: Path
    map_frame: str
    calibration_dir: Path
    cameras: tuple[SiteCamera, ...]
    detector: DetectorChoice = field(default_factory=DetectorChoice)
    map: SemanticMap = field(default_factory=SemanticMap)
    description: str = ""
    # The ``risk`` section as written (rules, actions, fail-safe): perception_nodes.risk.rules checks it against
    # the map (the risk stage sits above the site, so the site does not import it).
    risk: dict | None = None

    def camera(self, camera_id: str) -> SiteCamera:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise ConfigError(f"site {self.name!r} has no camera {camera_id!r} (has {[c.id for c in self.cameras]})")


SCHEMA_HELP = """\
site: NAME                       # required; letters, digits, '_' and '-'
description: TEXT                # optional
map_frame: map                   # REP-105 map frame of the site (default: map)
calibration_dir: DIR             # site.yaml + <camera>.yaml (camera_info_manager + extrinsics); relative to this file
cameras:                         # at least one
  - id: cam0                     # a ROS name token: namespace /<id>, frames <id>_optical_frame ...
    source: SOURCE               # 'synthetic:SCENE', a device index or /dev/videoN, a video file, an image
                                 # directory, or a stream URL (rtsp:// http:// udp:// tcp:// srt://); or a mapping
                                 # {type: synthetic|device|video|images|stream, target: ..., loop: bool, seed: N}
    rate_hz: 10                  # publish rate; 0: the source's own rate
    calibration: FILE            # default: <calibration_dir>/<id>.yaml
    image_qos: reliable          # reliable (RELIABLE, depth 1) or sensor_data (BEST_EFFORT, depth 1)
    priority: 1                  # 1..10: weight when the detector cannot serve every camera
detector:
  model: NAME@VERSION            # a model in the registry (default: the params file's model)
  manifest: FILE                 # a model registry of your own (models/manifest.yaml layout); optional
  class_map: {MODEL_CLASS: SITE_CLASS}   # site classes: car, truck, person, bicycle, other
  unmapped: drop                 # drop or other: what happens to model classes the map leaves out
map:                             # the semantic map, metres in map_frame
  zones:     [{name: N, kind: parking|driving|walkway|restricted|loading|entrance|exit|other, polygon: [[x, y], ...]}]
  stalls:    [{id: S, polygon: [[x, y], ...], zone: N}]
  lanes:     [{name: N, polyline: [[x, y], ...], direction: forward|backward|both}]
  gates:     [{name: N, kind: entrance|exit|both, segment: [[x, y], [x, y]]}]
  landmarks: [{name: N, position: [x, y, z], kind: pillar}]
  markings: [{name: N, polyline: [[x, y], [x, y], ...]}]   # painted ground lines (calibration health)
risk:                            # rules, actions and fail-safe of the risk node; see 'perception site check'
                                 # and the README ("Risk") for its schema
"""


def sites_dir() -> Path:
    return package_path("config/sites")


def available_sites() -> list[str]:
    try:
        return sorted(p.stem for p in sites_dir().glob("*.yaml"))
    except ConfigError:
        return []


def resolve_site_path(name_or_path: str | os.PathLike) -> Path:
    """A site name (config/sites/NAME.yaml) or a manifest path -> the file; ConfigError when neither exists."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or os.sep in text:
        if not path.is_file():
            raise ConfigError(f"site manifest {path} does not exist")
        return path
    candidate = sites_dir() / f"{text}.yaml"
    if not candidate.is_file():
        raise ConfigError(f"unknown site {text!r}; available: {', '.join(available_sites()) or 'none'} "
                          f"(or give a manifest path; create one with 'perception site new {text} --camera ID=SOURCE')")
    return candidate


def parse_source(value, base: Path) -> CameraSource:
    """A camera's ``source`` (string shorthand or mapping) -> CameraSource; ValueError says what is wrong."""
    if isinstance(value, dict):
        unknown = set(value) - {"type", "target", "loop", "seed"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)} (known: type, target, loop, seed)")
        try:
            kind = SourceType(str(value.get("type", "")))
        except ValueError:
            raise ValueError(f"type must be one of {[t.value for t in SourceType]}") from None
        target = str(value.get("target", "") or "")
        if kind in (SourceType.VIDEO, SourceType.IMAGES) and target:
            target = str((base / target).resolve()) if not Path(target).is_absolute() else target
        seed = value.get("seed")
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            raise ValueError("seed must be a non-negative integer")
        if kind is not SourceType.SYNTHETIC and not target:
            raise ValueError(f"a {kind.value} source needs a target")
        return CameraSource(kind, target or "default", seed, bool(value.get("loop", kind is not SourceType.STREAM)))
    if isinstance(value, int) and not isinstance(value, bool):
        return CameraSource(SourceType.DEVICE, str(value), loop=False)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a string (synthetic:SCENE, a device, a file, a directory or a URL) or a mapping")
    text = value.strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if text.startswith("synthetic:"):
        scene, _, seed = text[len("synthetic:"):].partition("@")
        if seed and not seed.isdigit():
            raise ValueError(f"synthetic source {text!r}: the seed after '@' must be a number")
        return CameraSource(SourceType.SYNTHETIC, scene or "default", int(seed) if seed else None)
    if scheme:
        if scheme == "file":
            text = text[len("file://"):]
        elif scheme not in STREAM_SCHEMES:
            raise ValueError(f"unsupported URL scheme {scheme!r} (streams: {', '.join(STREAM_SCHEMES)})")
        else:
            return CameraSource(SourceType.STREAM, text, loop=False)
    if text.isdigit() or text.startswith("/dev/video"):
        return CameraSource(SourceType.DEVICE, text, loop=False)
    path = Path(text) if Path(text).is_absolute() else (base / text).resolve()
    if path.is_dir():
        return CameraSource(SourceType.IMAGES, str(path))
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return CameraSource(SourceType.VIDEO, str(path))
    raise ValueError(f"{text!r} is neither synthetic:SCENE, a device, an existing image directory, a video file "
                     f"({', '.join(VIDEO_SUFFIXES)}) nor a stream URL")


def source_to_yaml(source: CameraSource) -> str | dict:
    """The shortest manifest form of a source."""
    if source.type is SourceType.SYNTHETIC:
        return f"synthetic:{source.target}" + (f"@{source.seed}" if source.seed is not None else "")
    return {"type": source.type.value, "target": source.target, "loop": source.loop}


class _Problems:
    """Collects every problem of a manifest instead of stopping at the first."""

    def __init__(self):
        self.items: list[str] = []

    def add(self, key: str, problem: str, fix: str = "") -> None:
        self.items.append(f"{key}: {problem}" + (f" (fix: {fix})" if fix else ""))


def _points(value, key: str, problems: _Problems, minimum: int) -> tuple[tuple[float, float], ...]:
    try:
        points = tuple((float(p[0]), float(p[1])) for p in value)
        if any(len(p) != 2 for p in value):
            raise ValueError
    except (TypeError, ValueError, IndexError, KeyError):
        problems.add(key, "must be a list of [x, y] points in metres", "write [[x1, y1], [x2, y2], ...]")
        return ()
    if len(points) < minimum:
        problems.add(key, f"needs at least {minimum} points, has {len(points)}")
        return ()
    if not all(math.isfinite(c) for p in points for c in p):
        problems.add(key, "has a NaN or infinite coordinate")
        return ()
    return points


def _polygon_area(points) -> float:
    return 0.5 * abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1])))


def _segments_cross(a, b, c, d) -> bool:
    def orient(p, q, r):
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    return orient(a, b, c) * orient(a, b, d) < 0 and orient(c, d, a) * orient(c, d, b) < 0


def _polygon(value, key: str, problems: _Problems) -> tuple[tuple[float, float], ...]:
    points = _points(value, key, problems, 3)
    if not points:
        return ()
    if _polygon_area(list(points)) < 1e-6:
        problems.add(key, "has zero area (points on one line or repeated)")
        return ()
    edges = list(zip(points, points[1:] + points[:1]))
    for i in range(len(edges)):
        for j in range(i + 2, len(edges)):
            if i == 0 and j == len(edges) - 1:
                continue  # neighbours through the closing edge
            if _segments_cross(*edges[i], *edges[j]):
                problems.add(key, f"edges {i} and {j} cross: the polygon intersects itself",
                             "list the corners in order around the outline")
                return ()
    return points


def _enum(enum_type, value, key: str, problems: _Problems, default):
    if value is None:
        return default
    try:
        return enum_type(str(value))
    except ValueError:
        problems.add(key, f"{value!r} is not one of {[e.value for e in enum_type]}")
        return default


def _names(items: list, key: str, field_name: str, problems: _Problems) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        name = getattr(item, field_name)
        if name in seen:
            problems.add(f"{key}[{i}].{field_name}", f"{name!r} is used twice", "give each a unique name")
        seen.add(name)


def _semantic_map(data, problems: _Problems) -> SemanticMap:
    if data is None:
        return SemanticMap()
    if not isinstance(data, dict):
        problems.add("map", "must be a mapping with zones, stalls, lanes, gates, landmarks")
        return SemanticMap()
    unknown = set(data) - {"zones", "stalls", "lanes", "gates", "landmarks", "markings"}
    if unknown:
        problems.add("map", f"unknown keys {sorted(unknown)}",
                     "known: zones, stalls, lanes, gates, landmarks, markings")

    def entries(name):
        value = data.get(name) or []
        if not isinstance(value, list):
            problems.add(f"map.{name}", "must be a list")
            return []
        return [(f"map.{name}[{i}]", e) for i, e in enumerate(value) if _is_mapping(e, f"map.{name}[{i}]", problems)]

    zones = tuple(Zone(str(e.get("name", "")) or f"zone{i}", _enum(ZoneKind, e.get("kind"), f"{k}.kind", problems,
                                                                 ZoneKind.OTHER),
                       _polygon(e.get("polygon"), f"{k}.polygon", problems))
                  for i, (k, e) in enumerate(entries("zones")))
    stalls = tuple(Stall(str(e.get("id", "")) or f"stall{i}", _polygon(e.get("polygon"), f"{k}.polygon", problems),
                         str(e.get("zone", "") or "")) for i, (k, e) in enumerate(entries("stalls")))
    lanes = tuple(Lane(str(e.get("name", "")) or f"lane{i}", _points(e.get("polyline"), f"{k}.polyline", problems, 2),
                       _enum(LaneDirection, e.get("direction"), f"{k}.direction", problems, LaneDirection.BOTH))
                  for i, (k, e) in enumerate(entries("lanes")))
    gates = []
    for i, (k, e) in enumerate(entries("gates")):
        segment = _points(e.get("segment"), f"{k}.segment", problems, 2)
        if segment and len(segment) != 2:
            problems.add(f"{k}.segment", "must be exactly two points (the gate line)")
        gates.append(Gate(str(e.get("name", "")) or f"gate{i}", _enum(GateKind, e.get("kind"), f"{k}.kind", problems,
                                                                       GateKind.BOTH), tuple(segment[:2])))
    landmarks = []
    for i, (k, e) in enumerate(entries("landmarks")):
        position = e.get("position")
        try:
            xyz = tuple(float(v) for v in position)
            if len(xyz) == 2:
                xyz = (*xyz, 0.0)
            if len(xyz) != 3 or not all(math.isfinite(v) for v in xyz):
                raise ValueError
        except (TypeError, ValueError):
            problems.add(f"{k}.position", "must be [x, y] or [x, y, z] in metres")
            xyz = (0.0, 0.0, 0.0)
        landmarks.append(Landmark(str(e.get("name", "")) or f"landmark{i}", xyz, str(e.get("kind", "pillar"))))
    markings = tuple(Marking(str(e.get("name", "")) or f"marking{i}",
                             _points(e.get("polyline"), f"{k}.polyline", problems, 2))
                     for i, (k, e) in enumerate(entries("markings")))
    semantic = SemanticMap(zones, stalls, lanes, tuple(gates), tuple(landmarks), markings)
    _names(list(zones), "map.zones", "name", problems)
    _names(list(stalls), "map.stalls", "id", problems)
    _names(list(lanes), "map.lanes", "name", problems)
    _names(list(gates), "map.gates", "name", problems)
    _names(list(landmarks), "map.landmarks", "name", problems)
    zone_names = {z.name for z in zones}
    for i, stall in enumerate(stalls):
        if stall.zone and stall.zone not in zone_names:
            problems.add(f"map.stalls[{i}].zone", f"names zone {stall.zone!r}, which map.zones does not have")
    return semantic


def _is_mapping(value, key: str, problems: _Problems) -> bool:
    if not isinstance(value, dict):
        problems.add(key, "must be a mapping")
        return False
    return True


def _detector(data, base: Path, problems: _Problems) -> DetectorChoice:
    if data is None:
        return DetectorChoice()
    if not _is_mapping(data, "detector", problems):
        return DetectorChoice()
    unknown = set(data) - {"model", "manifest", "class_map", "unmapped"}
    if unknown:
        problems.add("detector", f"unknown keys {sorted(unknown)}", "known: model, manifest, class_map, unmapped")
    model = str(data.get("model", "") or "")
    registry = str(data.get("manifest", "") or "")
    if registry:
        path = Path(registry) if Path(registry).is_absolute() else (base / registry)
        if not path.is_file():
            problems.add("detector.manifest", f"model registry {path} does not exist")
        registry = str(path.resolve())
    class_map = data.get("class_map")
    if class_map is not None:
        if not isinstance(class_map, dict) or not class_map:
            problems.add("detector.class_map", "must map model class names to site classes",
                         "e.g. {car: car, bus: truck, motorcycle: bicycle}")
            class_map = None
        else:
            class_map = {str(k): str(v) for k, v in class_map.items()}
            for model_class, site in class_map.items():
                if site.lower() not in SITE_CLASS_NAMES:
                    problems.add(f"detector.class_map.{model_class}", f"{site!r} is not a site class",
                                 f"one of {list(SITE_CLASS_NAMES)}")
    unmapped = _enum(UnmappedPolicy, data.get("unmapped"), "detector.unmapped", problems, UnmappedPolicy.DROP)
    return DetectorChoice(model, registry, class_map, unmapped)


def _camera(data, index: int, base: Path, calibration_dir: Path, problems: _Problems) -> SiteCamera | None:
    key = f"cameras[{index}]"
    if not _is_mapping(data, key, problems):
        return None
    unknown = set(data) - {"id", "source", "rate_hz", "calibration", "image_qos", "priority"}
    if unknown:
        problems.add(key, f"unknown keys {sorted(unknown)}",
                     "known: id, source, rate_hz, calibration, image_qos, priority")
    cam_id = str(data.get("id", "") or "")
    if not _ID.match(cam_id):
        problems.add(f"{key}.id", f"{cam_id!r} is not a valid camera id",
                     "start with a letter; letters, digits and '_' only (it becomes a ROS namespace)")
    key = f"cameras[{index}] ({cam_id})" if cam_id else key
    try:
        source = parse_source(data.get("source"), base)
    except ValueError as exc:
        problems.add(f"{key}.source", str(exc))
        source = CameraSource(SourceType.SYNTHETIC)
    rate = data.get("rate_hz", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (0.0 <= float(rate) <= 240.0):
        problems.add(f"{key}.rate_hz", f"{rate!r} must be a number from 0 (the source's rate) to 240")
        rate = 0.0
    priority = data.get("priority", 1)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 10:
        problems.add(f"{key}.priority", f"{priority!r} must be an integer from 1 to 10")
        priority = 1
    qos = _enum(ImageQos, data.get("image_qos"), f"{key}.image_qos", problems, ImageQos.RELIABLE)
    calibration = data.get("calibration")
    path = (Path(calibration) if Path(str(calibration)).is_absolute() else base / str(calibration)) if calibration \
        else calibration_dir / f"{cam_id}.yaml"
    if not path.is_file():
        problems.add(f"{key}.calibration", f"calibration file {path} does not exist",
                     "'perception site new' writes a template; 'perception calibrate extrinsics' fills it")
    return SiteCamera(cam_id, source, path.resolve(), float(rate), qos, int(priority))


def load_manifest(name_or_path: str | os.PathLike) -> SiteManifest:
    """Load and validate a site manifest; ManifestError lists every problem found."""
    path = resolve_site_path(name_or_path)
    data = read_yaml_mapping(path, "site manifest")
    base = path.parent.resolve()
    problems = _Problems()
    known = {"site", "description", "map_frame", "calibration_dir", "cameras", "detector", "map", "schema_version",
             "risk"}
    unknown = set(data) - known
    if unknown:
        problems.add("(top level)", f"unknown keys {sorted(unknown)}", f"known: {', '.join(sorted(known))}")
    name = str(data.get("site", "") or "")
    if not re.match(r"^[A-Za-z0-9_-]+$", name):
        problems.add("site", f"{name!r} is not a site name", "letters, digits, '_' and '-'")
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        problems.add("schema_version", f"{version!r} is not supported", f"this version reads {SCHEMA_VERSION}")
    map_frame = str(data.get("map_frame", "map") or "")
    if not _ID.match(map_frame):
        problems.add("map_frame", f"{map_frame!r} is not a valid frame id")
    calibration_value = data.get("calibration_dir")
    calibration_dir = (base / str(calibration_value)).resolve() if calibration_value else base / f"{name}_calibration"
    if not calibration_value:
        problems.add("calibration_dir", "is required", "the folder with site.yaml and one <camera>.yaml per camera")
    elif not (calibration_dir / "site.yaml").is_file():
        problems.add("calibration_dir", f"{calibration_dir}/site.yaml does not exist",
                     "'perception site new' writes it; 'perception calibrate export' for a synthetic scene")
    cameras_data = data.get("cameras")
    cameras: list[SiteCamera] = []
    if not isinstance(cameras_data, list) or not cameras_data:
        problems.add("cameras", "must list at least one camera", "see 'perception site new --help'")
    else:
        for index, entry in enumerate(cameras_data):
            camera = _camera(entry, index, base, calibration_dir, problems)
            if camera is not None:
                cameras.append(camera)
        _names(cameras, "cameras", "id", problems)
    if cameras and (calibration_dir / "site.yaml").is_file():
        try:
            site_file = read_yaml_mapping(calibration_dir / "site.yaml", "site file")
            listed = site_file.get("cameras") or []
            ids = [c.id for c in cameras]
            if sorted(map(str, listed)) != sorted(ids):
                problems.add("calibration_dir", f"{calibration_dir}/site.yaml lists cameras {listed}, the manifest "
                             f"{ids}", "list the same cameras in both (the TF tree is built from site.yaml)")
            site_frame = site_file.get("map_frame", "map")
            if str(site_frame) != map_frame:
                problems.add("map_frame", f"{map_frame!r} differs from {calibration_dir}/site.yaml's "
                             f"{site_frame!r}", "use one map frame in both")
        except ConfigError as exc:
            problems.add("calibration_dir", str(exc))
    detector = _detector(data.get("detector"), base, problems)
    semantic = _semantic_map(data.get("map"), problems)
    risk = data.get("risk")
    if risk is not None and not isinstance(risk, dict):
        problems.add("risk", "must be a mapping", "see the README, 'Risk'")
    if problems.items:
        raise ManifestError(str(path), problems.items)
    return SiteManifest(name, path.resolve(), map_frame, calibration_dir, tuple(cameras), detector, semantic,
                        str(data.get("description", "") or ""), risk if isinstance(risk, dict) else None)


def manifest_summary(site: SiteManifest) -> dict:
    """What ``perception site check`` prints: the site at a glance."""
    semantic = site.map
    return {"site": site.name, "path": str(site.path), "map_frame": site.map_frame,
            "cameras": {c.id: {"source": c.source.type.value, "target": c.source.target, "rate_hz": c.rate_hz,
                               "image_qos": c.image_qos.value, "priority": c.priority,
                               "calibration": str(c.calibration)} for c in site.cameras},
            "detector": {"model": site.detector.model or "(params file)",
                         "class_map": site.detector.class_map or "(same-name classes)",
                         "unmapped": site.detector.unmapped.value},
            "map": {"zones": len(semantic.zones), "stalls": len(semantic.stalls), "lanes": len(semantic.lanes),
                    "gates": len(semantic.gates), "landmarks": len(semantic.landmarks)}}


# -- writing a new site --------------------------------------------------------------------------------------------
def _template_calibration(camera_id: str, map_frame: str, width: int = 640, height: int = 480,
                          hfov_deg: float = 70.0) -> str:
    fx = width / 2.0 / math.tan(math.radians(hfov_deg) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    return f"""\
# TEMPLATE calibration of camera {camera_id}: every number below is a placeholder.
# Intrinsics: replace with your camera's (camera_calibration / OpenCV calibrateCamera); they assume
# {width}x{height} and a {hfov_deg:.0f} degree horizontal field of view.
# Extrinsics (the camera's pose in the map): measure >= 4 ground markers and run
#   perception calibrate extrinsics --markers markers.yaml --camera-info <this file> --out <this file>
image_width: {width}
image_height: {height}
camera_name: {camera_id}
camera_matrix: {{rows: 3, cols: 3, data: [{fx:.3f}, 0.0, {cx}, 0.0, {fx:.3f}, {cy}, 0.0, 0.0, 1.0]}}
distortion_model: plumb_bob
distortion_coefficients: {{rows: 1, cols: 5, data: [0.0, 0.0, 0.0, 0.0, 0.0]}}
rectification_matrix: {{rows: 3, cols: 3, data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]}}
projection_matrix: {{rows: 3, cols: 4, data: [{fx:.3f}, 0.0, {cx}, 0.0, 0.0, {fx:.3f}, {cy}, 0.0, 0.0, 0.0, 1.0, 0.0]}}
extrinsics:
  parent_frame: {map_frame}
  position: [0.0, 0.0, 6.0]      # metres in {map_frame}: x east, y north, z up (pole height)
  yaw_deg: 0.0                   # heading about z (0: looking along +x)
  pitch_deg: 30.0                # tilt down
  roll_deg: 0.0
"""


def write_new_site(name: str, cameras: list[tuple[str, str]], out_dir: str | os.PathLike, map_frame: str = "map",
                   model: str = "", rate_hz: float = 0.0, force: bool = False) -> list[Path]:
    """Write ``OUT/NAME.yaml`` and ``OUT/NAME/calibration/`` (templates) for cameras [(id, source)].

    The manifest is validated after writing; ManifestError (with every problem) if a camera's source is invalid.
    """
    import yaml

    out = Path(out_dir)
    manifest_path = out / f"{name}.yaml"
    if manifest_path.exists() and not force:
        raise ConfigError(f"{manifest_path} exists; choose another name or pass --force to overwrite")
    if not cameras:
        raise ConfigError("a site needs at least one camera: --camera ID=SOURCE")
    calibration_dir = out / name / "calibration"
    problems = _Problems()
    entries = []
    for cam_id, source in cameras:
        if not _ID.match(cam_id):
            problems.add(f"--camera {cam_id}={source}", f"{cam_id!r} is not a valid camera id",
                         "start with a letter; letters, digits and '_'")
        try:
            parsed = parse_source(source, Path.cwd())
        except ValueError as exc:
            problems.add(f"--camera {cam_id}={source}", str(exc))
            continue
        entries.append({"id": cam_id, "source": source_to_yaml(parsed), "rate_hz": float(rate_hz),
                        "image_qos": ImageQos.RELIABLE.value, "priority": 1})
    if problems.items:
        raise ManifestError(str(manifest_path), problems.items)
    written = []
    for cam_id, _ in cameras:
        target = calibration_dir / f"{cam_id}.yaml"
        if not target.exists() or force:
            atomic_write_text(target, _template_calibration(cam_id, map_frame))
            written.append(target)
    site_yaml = calibration_dir / "site.yaml"
    atomic_write_text(site_yaml, "# The cameras of the TF tree (urdf/site.urdf.xacro reads this file).\n"
                      + yaml.safe_dump({"map_frame": map_frame, "cameras": [c for c, _ in cameras]}, sort_keys=False))
    written.append(site_yaml)
    body = {"site": name, "description": f"Site {name}", "map_frame": map_frame,
            "calibration_dir": os.path.relpath(calibration_dir, out), "cameras": entries,
            "detector": {"model": model} if model else {},
            "map": {"zones": [], "stalls": [], "lanes": [], "gates": [], "landmarks": []}}
    if not body["detector"]:
        del body["detector"]
    header = (f"# Site manifest of {name} (written by 'perception site new'). Schema: README 'Site manifest'.\n"
              "# Next: calibrate each camera (the files under calibration/ are templates), draw the map,\n"
              f"# then: perception site check {manifest_path}  and  perception up --site {manifest_path}\n")
    atomic_write_text(manifest_path, header + yaml.safe_dump(body, sort_keys=False))
    written.append(manifest_path)
    load_manifest(manifest_path)
    return written
