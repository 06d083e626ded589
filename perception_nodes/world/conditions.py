"""Conditions a real site's cameras see: time of day, lamps, weather, glare, optics and the video chain.

A scene opts in with a ``conditions:`` block (``config/scenes/dusk.yaml`` ...); scenes without one render exactly
as before. Everything here is a function of the scene, its seed, the camera and the frame index, so a (scene,
seed) pair always yields the same frames; the ground truth keeps its meaning (a box is where the object is,
however dark or foggy: the evaluation policy decides what is scored).

``randomize_scene`` draws a whole site from a seed (conditions, camera heights, pitch, field of view, lens,
resolution, ground, traffic colours) for training; the named evaluation scenes are fixed files that no training
step uses (``config/detector_eval.yaml``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from perception_nodes.errors import ConfigError

GROUND_KINDS = ("asphalt", "concrete", "gravel", "pavers")
# Sky colours (BGR) at full day, at dusk and at night; daylight in between is interpolated.
_SKY_DAY = np.array([235.0, 200.0, 160.0])
_SKY_DUSK = np.array([150.0, 120.0, 200.0])
_SKY_NIGHT = np.array([40.0, 22.0, 14.0])
LAMP_COLOR = np.array([150.0, 215.0, 255.0])       # sodium-ish warm white (BGR)
HEADLIGHT_COLOR = np.array([235.0, 245.0, 255.0])
TAIL_LIGHT_COLOR = np.array([30.0, 30.0, 230.0])
WINDOW_LIT_COLOR = np.array([120.0, 200.0, 250.0])
WINDOW_DARK_COLOR = np.array([70.0, 60.0, 50.0])


@dataclass(frozen=True)
class StreetLamp:
    """A lamp post: its foot on the map (m), the lamp's height (m) and its strength (1: a typical car park)."""

    position: tuple[float, float]
    height: float = 7.0
    intensity: float = 1.0


@dataclass(frozen=True)
class Building:
    """A block beside the lot (its windows light up at night): centre and footprint on the map, height (m)."""

    position: tuple[float, float]
    size: tuple[float, float, float]
    color: tuple[int, int, int] = (120, 125, 130)


@dataclass(frozen=True)
class Conditions:
    """What the cameras' light and video chain are like (all effects off by default).

    ``daylight``: 1 full day, about 0.3 dusk, 0 night (moonlight). ``headlights``: vehicles' lights on (None:
    when daylight < 0.5). ``rain``/``glare``: 0..1 strength. ``fog_density``: extinction per metre (visibility
    is about 3 / density). ``motion_blur_px``: longest exposure streak in a frame (pole vibration, wind).
    ``jpeg_quality``: the stream's JPEG quality (0: uncompressed). ``exposure_gain_max``: how far the camera's
    auto-exposure may amplify a dark frame (and its sensor noise).
    """

    daylight: float = 1.0
    street_lamps: tuple[StreetLamp, ...] = ()
    buildings: tuple[Building, ...] = ()
    lit_windows: float = 0.6
    headlights: bool | None = None
    rain: float = 0.0
    fog_density: float = 0.0
    glare: float = 0.0
    sun_azimuth_deg: float = 0.0
    sun_elevation_deg: float = 8.0
    motion_blur_px: float = 0.0
    jpeg_quality: int = 0
    ground: str = "asphalt"
    markings: bool = False
    exposure_gain_max: float = 4.0

    @property
    def lights_on(self) -> bool:
        return self.daylight < 0.5 if self.headlights is None else bool(self.headlights)

    @property
    def ambient(self) -> float:
        """Light on a surface facing the sky, relative to full day (moonlight and sky glow at night)."""
        overcast = 1.0 - 0.35 * self.rain
        return (0.04 + 0.96 * self.daylight ** 1.5) * overcast

    @property
    def lamps_lit(self) -> bool:
        return self.daylight < 0.6

    def sky_color(self) -> np.ndarray:
        d = self.daylight
        sky = _SKY_DUSK + (_SKY_DAY - _SKY_DUSK) * (d - 0.3) / 0.7 if d >= 0.3 else \
            _SKY_NIGHT + (_SKY_DUSK - _SKY_NIGHT) * d / 0.3
        grey = sky.mean()
        return sky + (grey * 0.8 - sky) * 0.6 * self.rain  # overcast: greyer, darker

    def fog_color(self) -> np.ndarray:
        return np.full(3, 205.0) * max(self.ambient, 0.06)


def _number(data: dict, key: str, where: str, default, lo: float, hi: float) -> float:
    value = data.get(key, default)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: '{key}' must be a number, got {value!r}") from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(f"{where}: '{key}' = {value} must be in [{lo}, {hi}]")
    return value


def _pair(value, where: str, key: str) -> tuple[float, float]:
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise ConfigError(f"{where}: '{key}' must be [x, y] in metres")
    return float(value[0]), float(value[1])


def lamps_along(lanes, spacing_m: float, offset_m: float = 4.0, height_m: float = 7.0,
                lot_size: tuple[float, float] | None = None) -> tuple[StreetLamp, ...]:
    """Lamp posts every ``spacing_m`` along each lane, ``offset_m`` to its left (inside the lot when given)."""
    lamps = []
    for lane in lanes:
        pts = np.asarray(lane, dtype=float)
        for a, b in zip(pts[:-1], pts[1:]):
            length = float(np.linalg.norm(b - a))
            if length < 1e-6:
                continue
            direction = (b - a) / length
            normal = np.array([-direction[1], direction[0]])
            for s in np.arange(spacing_m / 2.0, length, spacing_m):
                xy = a + direction * s + normal * offset_m
                if lot_size is not None and (abs(xy[0]) > lot_size[0] / 2 or abs(xy[1]) > lot_size[1] / 2):
                    continue
                lamps.append(StreetLamp((round(float(xy[0]), 2), round(float(xy[1]), 2)), height_m))
    return tuple(lamps)


def parse_conditions(data, where: str, lanes=(), lot_size=None) -> Conditions:
    """A scene file's ``conditions:`` mapping, validated. ``street_lamps: {spacing_m: 15}`` places posts along
    the lanes; a list gives them one by one (``{position: [x, y], height: 7, intensity: 1}``)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping (daylight, street_lamps, rain, fog_density, ...)")
    known = {f for f in Conditions.__dataclass_fields__}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    lamps_data = data.get("street_lamps") or ()
    if isinstance(lamps_data, dict):
        lamps = lamps_along(lanes, _number(lamps_data, "spacing_m", where, 15.0, 2.0, 500.0),
                            _number(lamps_data, "offset_m", where, 4.0, -50.0, 50.0),
                            _number(lamps_data, "height_m", where, 7.0, 2.0, 30.0), lot_size)
    elif isinstance(lamps_data, (list, tuple)):
        lamps = tuple(StreetLamp(_pair(lamp.get("position"), where, "street_lamps.position"),
                                 _number(lamp, "height", where, 7.0, 2.0, 30.0),
                                 _number(lamp, "intensity", where, 1.0, 0.0, 10.0))
                      for lamp in lamps_data if isinstance(lamp, dict))
        if len(lamps) != len(lamps_data):
            raise ConfigError(f"{where}: every street lamp must be a mapping with a 'position'")
    else:
        raise ConfigError(f"{where}: 'street_lamps' must be a list of lamps or {{spacing_m: ...}}")
    buildings = []
    for i, b in enumerate(data.get("buildings") or ()):
        if not isinstance(b, dict) or not isinstance(b.get("size"), (list, tuple)) or len(b["size"]) != 3:
            raise ConfigError(f"{where}: buildings[{i}] needs 'position: [x, y]' and 'size: [l, w, h]'")
        buildings.append(Building(_pair(b.get("position"), where, f"buildings[{i}].position"),
                                  tuple(float(v) for v in b["size"]),
                                  tuple(int(v) for v in b.get("color", Building.color))))
    ground = str(data.get("ground", "asphalt"))
    if ground not in GROUND_KINDS:
        raise ConfigError(f"{where}: 'ground' must be one of {GROUND_KINDS}, got {ground!r}")
    headlights = data.get("headlights")
    if headlights is not None and not isinstance(headlights, bool):
        raise ConfigError(f"{where}: 'headlights' must be true, false or left out (on when dark)")
    return Conditions(
        daylight=_number(data, "daylight", where, 1.0, 0.0, 1.0), street_lamps=lamps, buildings=tuple(buildings),
        lit_windows=_number(data, "lit_windows", where, 0.6, 0.0, 1.0), headlights=headlights,
        rain=_number(data, "rain", where, 0.0, 0.0, 1.0),
        fog_density=_number(data, "fog_density", where, 0.0, 0.0, 0.2),
        glare=_number(data, "glare", where, 0.0, 0.0, 1.0),
        sun_azimuth_deg=_number(data, "sun_azimuth_deg", where, 0.0, -360.0, 360.0),
        sun_elevation_deg=_number(data, "sun_elevation_deg", where, 8.0, -10.0, 90.0),
        motion_blur_px=_number(data, "motion_blur_px", where, 0.0, 0.0, 40.0),
        jpeg_quality=int(_number(data, "jpeg_quality", where, 0, 0, 100)), ground=ground,
        markings=bool(data.get("markings", False)),
        exposure_gain_max=_number(data, "exposure_gain_max", where, 4.0, 1.0, 16.0))


# -- light on the map --------------------------------------------------------------------------------------------
def lamp_irradiance(conditions: Conditions, points: np.ndarray, normals_up: np.ndarray | float = 1.0) -> np.ndarray:
    """Light the street lamps throw on map points (N, 3), relative to full day on flat ground (0 when unlit).

    Inverse square with the cosine to a surface facing up (``normals_up`` 1) or sideways (about 0.5)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    total = np.zeros(len(points))
    if not conditions.lamps_lit or not conditions.street_lamps:
        return total
    for lamp in conditions.street_lamps:
        d = np.array([lamp.position[0], lamp.position[1], lamp.height]) - points
        # The post itself and anything right under the head are not lit by a point source: no closer than 2 m.
        r2 = np.maximum(np.einsum("ij,ij->i", d, d), 4.0)
        cos = np.clip(d[:, 2] / np.sqrt(r2), 0.0, 1.0)
        # A 7 m lamp gives about 0.4 of daylight right below it and falls off like a real car-park pool.
        total += lamp.intensity * 20.0 * (cos * normals_up + (1 - normals_up) * 0.5) / r2
    return np.minimum(total, 1.2) * (1.0 - conditions.daylight / 0.6)


def fog_transmission(conditions: Conditions, distance_m: np.ndarray) -> np.ndarray:
    return np.exp(-conditions.fog_density * np.asarray(distance_m, dtype=np.float64))


def ground_albedo(kind: str, pts: np.ndarray, fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """(N, 3) BGR ground colour of the lot surface by kind, textured with the given noise fields."""
    if kind == "concrete":
        base = 150 + 14 * fine + 12 * coarse
        color = np.stack([base + 2, base + 3, base], axis=1)
        seams = (np.abs(np.mod(pts[:, 0], 5.0) - 2.5) > 2.47) | (np.abs(np.mod(pts[:, 1], 5.0) - 2.5) > 2.47)
        color[seams] *= 0.7
        return color
    if kind == "gravel":
        base = 118 + 40 * fine + 14 * coarse
        return np.stack([base - 12, base, base + 10], axis=1)
    if kind == "pavers":
        bx, by = np.floor(pts[:, 0] / 0.4), np.floor(pts[:, 1] / 0.2 + 0.5 * (np.floor(pts[:, 0] / 0.4) % 2))
        tone = 110 + 35 * ((bx * 7 + by * 13) % 5) / 5.0 + 8 * fine
        color = np.stack([tone * 0.8, tone * 0.85, tone], axis=1)
        joint = (np.mod(pts[:, 0], 0.4) < 0.025) | (np.mod(pts[:, 1] + 0.1 * (bx % 2), 0.2) < 0.02)
        color[joint] *= 0.6
        return color
    base = 92 + 16 * fine + 10 * coarse
    return np.stack([base + 4, base + 2, base], axis=1)


def extra_markings(in_lot: np.ndarray, color: np.ndarray, lane_distances, walk_distances) -> None:
    """Paint crossings where walkways meet lanes, solid lane edges and arrows, in place. ``lane_distances``:
    (distance, arc length) of every ground point to each lane; ``walk_distances``: distance to each walkway."""
    white = np.array([235.0, 235.0, 235.0])
    crossing_zone = np.zeros(len(color), bool)
    for dw in walk_distances:
        crossing_zone |= dw < 1.3
    for d, arc in lane_distances:
        color[in_lot & (np.abs(d - 3.2) < 0.08)] = white
        # An arrow every 12 m: a shaft along the lane and a head, on the lane's right half.
        k = np.mod(arc, 12.0)
        arrow = in_lot & (d > 1.2) & (d < 1.6) & (k > 5.0) & (k < 6.6)
        head = in_lot & (k >= 6.6) & (k < 7.6) & (np.abs(d - 1.4) < 0.7 * (7.6 - k))
        color[arrow | head] = white
        color[in_lot & crossing_zone & (d < 3.0) & (np.mod(arc, 1.0) < 0.5)] = white


# -- actors' lights ----------------------------------------------------------------------------------------------
def vehicle_lamp_parts(actor, lights_on: bool):
    """Head and tail lights of a car or truck as small emissive cuboids on its front and back."""
    from perception_nodes.world.actors import Part

    if actor.class_name not in ("car", "truck") or not lights_on:
        return ()
    length, width, height = actor.size
    z = -height / 2.0 + (0.65 if actor.class_name == "car" else 0.9)
    out = []
    for side in (-1, 1):
        y = side * width * 0.36
        out.append(Part((length / 2.0 + 0.01, y, z), (0.04, 0.26, 0.14), tuple(HEADLIGHT_COLOR), "lamp"))
        out.append(Part((-length / 2.0 - 0.01, y, z), (0.04, 0.22, 0.12), tuple(TAIL_LIGHT_COLOR), "lamp"))
    return tuple(out)


def headlight_pool(position: np.ndarray, yaw: float, length: float) -> np.ndarray:
    """The ground patch (map, (K, 3)) a vehicle's headlights light: a fan 1-14 m ahead of its front."""
    c, s = math.cos(yaw), math.sin(yaw)
    ahead, side = np.array([c, s]), np.array([-s, c])
    front = position[:2] + ahead * length / 2.0
    pts = [front + side * 0.8, front + ahead * 14.0 + side * 3.5, front + ahead * 16.0,
           front + ahead * 14.0 - side * 3.5, front - side * 0.8]
    return np.array([[p[0], p[1], 0.02] for p in pts])


def building_parts(building: Building, lit_share: float, lit: bool, seed: int):
    """A building's body and its window grid (lit at random, deterministically, when ``lit``)."""
    from perception_nodes.world.actors import Part

    length, width, height = building.size
    parts = [Part((0.0, 0.0, 0.0), building.size, building.color, "building")]
    rng = np.random.default_rng([seed, int(building.position[0] * 10) & 0xFFFF, int(building.position[1] * 10) & 0xFFFF])
    floors = max(1, int(height // 3.0))
    for floor in range(floors):
        z = -height / 2.0 + 1.6 + floor * 3.0
        for axis, extent, across in ((0, length, width), (1, width, length)):
            for i in range(max(1, int(extent // 3.0))):
                u = -extent / 2.0 + 1.5 + i * 3.0
                on = lit and rng.random() < lit_share
                color = tuple(WINDOW_LIT_COLOR if on else WINDOW_DARK_COLOR)
                kind = "lamp" if on else "window"
                size = (1.4, across + 0.04, 1.3) if axis == 0 else (across + 0.04, 1.4, 1.3)
                center = (u, 0.0, z) if axis == 0 else (0.0, u, z)
                parts.append(Part(center, size, color, kind))
    return tuple(parts)


def lamp_post_parts(lamp: StreetLamp, lit: bool):
    from perception_nodes.world.actors import Part

    head = tuple(LAMP_COLOR) if lit else (170, 170, 170)
    return (Part((0.0, 0.0, 0.0), (0.18, 0.18, lamp.height), (95, 95, 100), "post"),
            Part((0.0, 0.0, lamp.height / 2.0 - 0.1), (0.7, 0.35, 0.18), head, "lamp" if lit else "post"))


# -- image effects -----------------------------------------------------------------------------------------------
def add_bloom(image: np.ndarray, emissive: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Light bleeding around bright sources (lamps, headlights, lit windows): ``emissive`` blurred and added."""
    if not np.any(emissive):
        return image
    h, w = image.shape[:2]
    sigma = max(2.0, 0.006 * max(w, h))
    # The wide halo is blurred at a quarter of the size: it is smooth, and a full-size blur of an HD frame is slow.
    small = cv2.resize(emissive, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    halo = cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma), (w, h), interpolation=cv2.INTER_LINEAR)
    glow = cv2.GaussianBlur(emissive, (0, 0), sigma) * 1.6 + halo * 1.2
    return image + glow * strength


def add_rain(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Falling streaks (slanted, semi-transparent), drops' blur and the lower contrast of a wet, grey day."""
    if strength <= 0:
        return image
    h, w = image.shape[:2]
    streaks = np.zeros((h, w), np.float32)
    count = int(strength * 0.0025 * w * h / 10)
    angle = math.radians(rng.uniform(-20, 20))
    for _ in range(count):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        length = rng.uniform(0.02, 0.06) * h
        x2, y2 = x + math.sin(angle) * length, y + math.cos(angle) * length
        cv2.line(streaks, (int(x), int(y)), (int(x2), int(y2)), float(rng.uniform(0.3, 1.0)), 1, cv2.LINE_AA)
    image = cv2.GaussianBlur(image, (0, 0), 0.6 + 0.8 * strength)
    mean = image.mean(axis=(0, 1), keepdims=True)
    image = mean + (image - mean) * (1.0 - 0.3 * strength)
    return image + streaks[..., None] * (60.0 * strength)


def sun_pixel(camera, conditions: Conditions) -> np.ndarray | None:
    """Where the sun's direction lands in the image (pixels, possibly outside it); None behind the camera."""
    az, el = math.radians(conditions.sun_azimuth_deg), math.radians(conditions.sun_elevation_deg)
    direction = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    optical = camera.T_optical_map.R @ direction
    if optical[2] <= 0.05:
        return None
    return camera.project_pinhole(optical[None, :])[0]


def add_glare(image: np.ndarray, sun: np.ndarray | None, strength: float) -> np.ndarray:
    """Veiling glare from a low sun: a bright bloom at (or beyond the edge towards) the sun, flare ghosts along
    the line through the image centre, and a haze that lifts the blacks."""
    if strength <= 0 or sun is None:
        return image
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    scale = float(max(w, h))
    r2 = ((xx - sun[0]) ** 2 + (yy - sun[1]) ** 2) / (scale * scale)
    glow = 255.0 * strength * (np.exp(-r2 / 0.004) + 0.5 * np.exp(-r2 / 0.12) + 0.25 * np.exp(-r2 / 0.6))
    centre = np.array([w / 2.0, h / 2.0])
    for k, (t, radius, tint) in enumerate(((0.5, 0.03, (0.6, 0.9, 1.0)), (1.3, 0.05, (1.0, 0.7, 0.5)),
                                          (1.8, 0.02, (0.7, 1.0, 0.7)))):
        ghost = sun + (centre - sun) * t
        rg = ((xx - ghost[0]) ** 2 + (yy - ghost[1]) ** 2) / (scale * scale)
        blob = 70.0 * strength * np.exp(-rg / (radius * radius))
        image = image + blob[..., None] * np.array(tint, np.float32)
    veil = 60.0 * strength
    return image * (1.0 - 0.2 * strength) + veil + glow[..., None] * np.array([0.9, 0.97, 1.0], np.float32)


def add_motion_blur(image: np.ndarray, max_px: float, rng: np.random.Generator) -> np.ndarray:
    """One exposure streak per frame, of random direction and length up to ``max_px`` (pole vibration)."""
    length = rng.uniform(0.0, max_px) if max_px > 0 else 0.0
    if length < 1.0:
        return image
    size = int(math.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    angle = rng.uniform(0, math.pi)
    c = size // 2
    dx, dy = math.cos(angle) * length / 2.0, math.sin(angle) * length / 2.0
    cv2.line(kernel, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1,
             cv2.LINE_AA)
    kernel /= max(kernel.sum(), 1e-6)
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    if quality <= 0:
        return image
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else image


def auto_exposure_gain(image: np.ndarray, conditions: Conditions, target_mean: float = 105.0) -> float:
    """The gain a camera's auto-exposure applies to a dark frame (1 in daylight), capped by its sensor."""
    mean = float(image.mean())
    return float(np.clip(target_mean / max(mean, 1.0), 1.0, conditions.exposure_gain_max))


# -- randomised sites --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Randomization:
    """Ranges ``randomize_scene`` draws from (``config/detector_training.yaml``, per mixture component)."""

    daylight: tuple[float, float] = (0.0, 1.0)
    rain: tuple[float, float] = (0.0, 0.0)
    rain_probability: float = 0.0
    fog_density: tuple[float, float] = (0.0, 0.0)
    fog_probability: float = 0.0
    glare: tuple[float, float] = (0.0, 0.0)
    glare_probability: float = 0.0
    motion_blur_px: tuple[float, float] = (0.0, 4.0)
    jpeg_quality: tuple[int, int] = (35, 95)
    jpeg_probability: float = 0.5
    camera_height_scale: tuple[float, float] = (0.7, 1.5)
    pitch_offset_deg: tuple[float, float] = (-6.0, 8.0)
    hfov_deg: tuple[float, float] = (55.0, 100.0)
    distortion_k1: tuple[float, float] = (-0.3, 0.0)
    resolutions: tuple[tuple[int, int], ...] = ((640, 480), (800, 600), (1280, 720), (1920, 1080))
    fleet_probability: float = 0.3
    markings_probability: float = 0.5
    grounds: tuple[str, ...] = GROUND_KINDS
    lamp_spacing_m: tuple[float, float] = (12.0, 24.0)
    noise_sigma: tuple[float, float] = (1.5, 5.0)
    traffic_scale: tuple[float, float] = (0.7, 1.4)

    @classmethod
    def from_dict(cls, data: dict, where: str) -> "Randomization":
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: must be a mapping of ranges")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        values = {}
        for key, value in data.items():
            default = getattr(cls(), key)
            if key == "resolutions":
                values[key] = tuple((int(w), int(h)) for w, h in value)
            elif key == "grounds":
                bad = [g for g in value if g not in GROUND_KINDS]
                if bad:
                    raise ConfigError(f"{where}: unknown grounds {bad}; known: {GROUND_KINDS}")
                values[key] = tuple(value)
            elif isinstance(default, tuple):
                if not (isinstance(value, (list, tuple)) and len(value) == 2 and float(value[0]) <= float(value[1])):
                    raise ConfigError(f"{where}: '{key}' must be [low, high] with low <= high")
                values[key] = (type(default[0])(value[0]), type(default[0])(value[1]))
            else:
                values[key] = float(value)
                if not 0.0 <= values[key] <= 1.0:
                    raise ConfigError(f"{where}: '{key}' must be a probability in [0, 1]")
        return cls(**values)


def randomize_scene(base, seed: int, ranges: Randomization = Randomization()):
    """A site drawn from ``seed``: ``base``'s lot and traffic under random conditions, cameras and video chain.

    The cameras keep their place and heading on the lot (so they still look at it); their height, pitch, field
    of view, lens and resolution change. The result is an ordinary ``Scene`` (named ``<base>~r<seed>``)."""
    rng = np.random.default_rng([int(seed), 0x5EED])

    def uniform(lo_hi):
        return float(rng.uniform(*lo_hi)) if lo_hi[1] > lo_hi[0] else float(lo_hi[0])

    daylight = uniform(ranges.daylight)
    rain = uniform(ranges.rain) if rng.random() < ranges.rain_probability else 0.0
    fog = uniform(ranges.fog_density) if rng.random() < ranges.fog_probability else 0.0
    glare = uniform(ranges.glare) if daylight > 0.4 and rng.random() < ranges.glare_probability else 0.0
    jpeg = int(rng.integers(ranges.jpeg_quality[0], ranges.jpeg_quality[1] + 1)) \
        if rng.random() < ranges.jpeg_probability else 0
    lamps = lamps_along(base.lanes, uniform(ranges.lamp_spacing_m), float(rng.uniform(3.5, 6.0)),
                        float(rng.uniform(5.0, 9.0)), base.lot_size)
    half_x, half_y = base.lot_size[0] / 2.0, base.lot_size[1] / 2.0
    buildings = []
    for _ in range(int(rng.integers(0, 4))):
        along_x = rng.random() < 0.5
        size = (float(rng.uniform(10, 25)), float(rng.uniform(6, 12)), float(rng.uniform(4, 13)))
        if along_x:
            pos = (float(rng.uniform(-half_x, half_x)), float(np.sign(rng.random() - 0.5) * (half_y + 4 + size[1] / 2)))
        else:
            size = (size[1], size[0], size[2])
            pos = (float(np.sign(rng.random() - 0.5) * (half_x + 4 + size[0] / 2)), float(rng.uniform(-half_y, half_y)))
        buildings.append(Building(pos, size, tuple(int(v) for v in rng.integers(70, 190, 3))))
    conditions = Conditions(
        daylight=daylight, street_lamps=lamps, buildings=tuple(buildings), lit_windows=float(rng.uniform(0.2, 0.8)),
        rain=rain, fog_density=fog, glare=glare, sun_azimuth_deg=float(rng.uniform(-180, 180)),
        sun_elevation_deg=float(rng.uniform(2, 20)), motion_blur_px=uniform(ranges.motion_blur_px),
        jpeg_quality=jpeg, ground=str(rng.choice(list(ranges.grounds))),
        markings=bool(rng.random() < ranges.markings_probability))
    if glare > 0:
        # Aim the low sun into a random camera's view (glare on a pole camera is the low sun ahead of it).
        cam = base.cameras[int(rng.integers(len(base.cameras)))]
        conditions = replace(conditions, sun_azimuth_deg=cam.yaw_deg + float(rng.uniform(-35, 35)))
    cameras = []
    for cam in base.cameras:
        width, height = ranges.resolutions[int(rng.integers(len(ranges.resolutions)))]
        hfov = uniform(ranges.hfov_deg)
        f = width / 2.0 / math.tan(math.radians(hfov) / 2.0)
        k1 = uniform(ranges.distortion_k1) if rng.random() < 0.6 else 0.0
        z = max(2.5, cam.position[2] * uniform(ranges.camera_height_scale))
        pitch = float(np.clip(cam.pitch_deg + uniform(ranges.pitch_offset_deg), 8.0, 70.0))
        cameras.append(replace(cam, width=width, height=height, fx=f, fy=f, cx=(width - 1) / 2.0,
                               cy=(height - 1) / 2.0, distortion=(k1, k1 * k1 * 0.1, 0.0, 0.0, 0.0),
                               position=(cam.position[0], cam.position[1], z), pitch_deg=pitch))
    appearance = "fleet" if rng.random() < ranges.fleet_probability else "varied"
    return replace(base, name=f"{base.name}~r{seed}", seed=int(seed), cameras=tuple(cameras), conditions=conditions,
                   appearance=appearance, noise_sigma=uniform(ranges.noise_sigma),
                   actor_count=max(1, int(round(base.actor_count * uniform(ranges.traffic_scale)))),
                   brightness=1.0, brightness_variation=min(base.brightness_variation, 0.1),
                   camera_bump=None)
