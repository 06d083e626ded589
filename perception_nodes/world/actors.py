"""Moving objects of the synthetic world: classes, appearance and motion.

Everything is derived from the scene seed, so a (scene, seed) pair always yields
the same actors. Through traffic follows polylines (vehicles on lanes, people and
bicycles on walkways) at a constant speed, entering at one end and leaving at the
other. Actors with ``keyframes`` (a parking lot's life, ``world/parking.py``)
follow timed waypoints instead: they stop, wait, reverse and start again.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception_nodes.world.scene import CLASS_NAMES, Scene

# length, width, height in metres (ranges sampled per actor)
CLASS_SIZES = {
    "car": ((4.0, 4.8), (1.7, 1.9), (1.4, 1.6)),
    "truck": ((6.5, 8.5), (2.4, 2.6), (2.9, 3.4)),
    "person": ((0.35, 0.5), (0.45, 0.6), (1.6, 1.9)),
    "bicycle": ((1.6, 1.8), (0.5, 0.6), (1.6, 1.8)),  # with its rider
}
CLASS_SPEEDS = {"car": (3.0, 7.0), "truck": (2.0, 4.5), "person": (0.9, 1.6), "bicycle": (2.5, 5.0)}
PALETTE = np.array([
    [40, 40, 200], [200, 60, 40], [40, 160, 40], [20, 200, 230], [230, 230, 230], [30, 30, 30],
    [160, 40, 160], [0, 120, 255], [120, 120, 120], [200, 200, 60], [90, 60, 20], [255, 140, 140],
], dtype=np.int32)  # BGR


@dataclass(frozen=True)
class Part:
    """A coloured cuboid of an actor, in the actor frame (x forward, y left, z up)."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    color: tuple[int, int, int]
    kind: str = "body"  # body | plate | stripe | window | wheel


@dataclass(frozen=True)
class Actor:
    global_id: int
    class_name: str
    size: tuple[float, float, float]
    parts: tuple[Part, ...]
    path: np.ndarray  # (N, 2) polyline in the map
    lateral_offset: float
    speed: float
    enter_time: float
    # Timed waypoints (K, 3): t (s), x, y (m) of the footprint centre, linearly interpolated; the actor is present
    # from the first to the last. ``reverse[k]`` marks segment k as driven backwards (the heading stays opposite
    # to the motion); a segment without motion keeps the previous heading.
    keyframes: np.ndarray | None = None
    reverse: tuple[bool, ...] = ()
    # Giving way (``world/yielding.py``): (K, 2) breakpoints (time, plan time), piecewise linear, of how far along
    # its plan the actor is; None when it follows its plan on time. Before the first and after the last breakpoint
    # the plan runs at its own pace.
    clock: np.ndarray | None = None
    # The vehicle a driver gets out of and back into: where actors give way, the driver's plan waits for it.
    rides_with: int | None = None

    @property
    def class_id(self) -> int:
        return CLASS_NAMES.index(self.class_name)

    @property
    def path_length(self) -> float:
        return float(np.sum(np.linalg.norm(np.diff(self.path, axis=0), axis=1)))

    def state(self, t: float):
        """(present, position (3,), yaw, velocity (3,)) at time t. Position is the footprint centre at z = height/2."""
        if self.clock is None:
            return self._plan_state(t)
        plan_t, rate = self._plan_clock(t)
        present, position, yaw, velocity = self._plan_state(plan_t)
        return present, position, yaw, (velocity * rate if present else velocity)

    def _plan_clock(self, t: float) -> tuple[float, float]:
        """(plan time, its rate) at time t."""
        clock = self.clock
        if t <= clock[0, 0]:
            return t - clock[0, 0] + clock[0, 1], 1.0
        if t >= clock[-1, 0]:
            return t - clock[-1, 0] + clock[-1, 1], 1.0
        k = int(np.searchsorted(clock[:, 0], t, side="right") - 1)
        (t0, p0), (t1, p1) = clock[k], clock[k + 1]
        rate = (p1 - p0) / (t1 - t0)
        return p0 + rate * (t - t0), rate

    def _time_of_plan(self, plan_t: float) -> float:
        """The first time the plan clock reaches ``plan_t``."""
        clock = self.clock
        if plan_t <= clock[0, 1]:
            return plan_t - clock[0, 1] + clock[0, 0]
        if plan_t >= clock[-1, 1]:
            return plan_t - clock[-1, 1] + clock[-1, 0]
        k = int(np.searchsorted(clock[:, 1], plan_t, side="left") - 1)
        (t0, p0), (t1, p1) = clock[k], clock[k + 1]
        return t0 + (plan_t - p0) * (t1 - t0) / (p1 - p0)

    def plan_positions(self, times) -> np.ndarray:
        """(N, 2) plan positions at plan times (clamped to the plan's span); vectorised."""
        start, end = self.plan_span
        times = np.clip(np.asarray(times, dtype=np.float64), start, end)
        if self.keyframes is not None:
            frames = self.keyframes
            return np.stack([np.interp(times, frames[:, 0], frames[:, 1]), np.interp(times, frames[:, 0], frames[:, 2])],
                            axis=-1)
        seg = np.diff(self.path, axis=0)
        lengths = np.linalg.norm(seg, axis=1)
        cum = np.concatenate([[0.0], np.cumsum(lengths)])
        arc = (times - self.enter_time) * self.speed
        i = np.clip(np.searchsorted(cum, arc, side="right") - 1, 0, len(seg) - 1)
        direction = seg[i] / np.maximum(lengths[i], 1e-9)[..., None]
        normal = np.stack([-direction[..., 1], direction[..., 0]], axis=-1)
        return self.path[i] + direction * (arc - cum[i])[..., None] + normal * self.lateral_offset

    def plan_track(self, times) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position (N, 2), heading (N,), velocity (N, 2)) of the plan at plan times (clamped to its span);
        vectorised."""
        times = np.asarray(times, dtype=np.float64)
        _, end = self.plan_span
        if self.keyframes is not None:
            frames = self.keyframes
            starts = frames[:-1, 0]
            headings = np.array([self._heading(k) for k in range(len(frames) - 1)] or [0.0])
            key = times
        else:
            seg = np.diff(self.path, axis=0)
            starts = np.concatenate([[0.0], np.cumsum(np.linalg.norm(seg, axis=1))[:-1]])
            headings = np.arctan2(seg[:, 1], seg[:, 0])
            key = (times - self.enter_time) * self.speed
        yaw = headings[np.clip(np.searchsorted(starts, key, side="right") - 1, 0, len(headings) - 1)]
        xy = self.plan_positions(times)
        ahead = np.minimum(times + 1e-3, end)  # the velocity of the segment being driven
        velocity = (self.plan_positions(ahead) - xy) / np.maximum(ahead - times, 1e-9)[:, None]
        return xy, yaw, velocity

    def _plan_state(self, t: float):
        if self.keyframes is not None:
            return self._keyframe_state(t)
        s = (t - self.enter_time) * self.speed
        if s < 0 or s > self.path_length:
            return False, None, 0.0, None
        seg = np.diff(self.path, axis=0)
        lengths = np.linalg.norm(seg, axis=1)
        cum = np.concatenate([[0.0], np.cumsum(lengths)])
        i = int(min(np.searchsorted(cum, s, side="right") - 1, len(seg) - 1))
        direction = seg[i] / max(lengths[i], 1e-9)
        xy = self.path[i] + direction * (s - cum[i])
        normal = np.array([-direction[1], direction[0]])
        xy = xy + normal * self.lateral_offset
        yaw = float(np.arctan2(direction[1], direction[0]))
        velocity = np.array([direction[0] * self.speed, direction[1] * self.speed, 0.0])
        return True, np.array([xy[0], xy[1], self.size[2] / 2.0]), yaw, velocity

    @property
    def time_span(self) -> tuple[float, float]:
        """(first, last) time the actor is in the world."""
        start, end = self.plan_span
        if self.clock is None:
            return start, end
        return self._time_of_plan(start), self._time_of_plan(end)

    @property
    def plan_span(self) -> tuple[float, float]:
        """(first, last) time of the actor's plan, before any giving way."""
        if self.keyframes is not None:
            return float(self.keyframes[0, 0]), float(self.keyframes[-1, 0])
        return self.enter_time, self.enter_time + self.path_length / max(self.speed, 1e-9)

    def _keyframe_state(self, t: float):
        frames = self.keyframes
        if t < frames[0, 0] or t > frames[-1, 0]:
            return False, None, 0.0, None
        k = int(min(max(np.searchsorted(frames[:, 0], t, side="right") - 1, 0), len(frames) - 2))
        (t0, x0, y0), (t1, x1, y1) = frames[k], frames[k + 1]
        fraction = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
        xy = np.array([x0 + (x1 - x0) * fraction, y0 + (y1 - y0) * fraction])
        velocity = np.zeros(3)
        if t1 > t0:
            velocity[:2] = [(x1 - x0) / (t1 - t0), (y1 - y0) / (t1 - t0)]
        return True, np.array([xy[0], xy[1], self.size[2] / 2.0]), self._heading(k), velocity

    def _heading(self, segment: int) -> float:
        """Heading on a keyframe segment: along its motion (opposite when reversing), else the last one's."""
        frames = self.keyframes
        for k in range(segment, -1, -1):
            dx, dy = frames[k + 1, 1:] - frames[k, 1:]
            if dx * dx + dy * dy > 1e-12:
                yaw = float(np.arctan2(dy, dx))
                if k < len(self.reverse) and self.reverse[k]:
                    yaw = float(np.arctan2(-dy, -dx))
                return yaw
        for k in range(segment + 1, len(frames) - 1):  # parked from the start: the way it will leave
            dx, dy = frames[k + 1, 1:] - frames[k, 1:]
            if dx * dx + dy * dy > 1e-12:
                return float(np.arctan2(-dy, -dx) if k < len(self.reverse) and self.reverse[k] else np.arctan2(dy, dx))
        return 0.0


def _plate_parts(rng: np.random.Generator, length: float, width: float, global_id: int) -> list[Part]:
    """A white plate with a black bar code of the id, front and back."""
    parts = []
    bits = [(global_id >> b) & 1 for b in range(6)]
    for sign in (1.0, -1.0):
        x = sign * (length / 2.0 + 0.01)
        parts.append(Part((x, 0.0, 0.45), (0.02, 0.52, 0.13), (245, 245, 245), "plate"))
        for b, bit in enumerate(bits):
            if bit:
                y = -0.2 + b * 0.08
                parts.append(Part((x + sign * 0.005, y, 0.45), (0.02, 0.04, 0.09), (10, 10, 10), "plate"))
    return parts


def _color(rng: np.random.Generator, jitter: int = 25) -> tuple[int, int, int]:
    base = PALETTE[rng.integers(len(PALETTE))] + rng.integers(-jitter, jitter + 1, size=3)
    return tuple(int(v) for v in np.clip(base, 0, 255))


def make_parts(class_name: str, size, rng: np.random.Generator, global_id: int,
               appearance: str = "varied") -> tuple[Part, ...]:
    """An actor's coloured cuboids. ``appearance``: ``varied`` (any colour: the detector's training world) or
    ``fleet`` (realistic colours and body types, ``fleet_parts``)."""
    if appearance == "fleet":
        return fleet_parts(class_name, size, rng, global_id)
    length, width, height = size
    body = _color(rng)
    if class_name == "car":
        accent = _color(rng)
        parts = [
            Part((0.0, 0.0, -height * 0.2), (length, width, height * 0.6), body),
            Part((-0.1 * length, 0.0, height * 0.3), (length * 0.55, width * 0.92, height * 0.4), body),
            Part((-0.1 * length, 0.0, height * 0.3), (length * 0.56, width * 0.94, height * 0.28), (50, 40, 30), "window"),
            Part((0.0, 0.0, -height * 0.05), (length * 1.002, width * 1.01, height * 0.08), accent, "stripe"),
        ]
        parts += [Part((p.center[0], p.center[1], p.center[2] - height / 2.0 + 0.0), p.size, p.color, p.kind)
                  for p in _plate_parts(rng, length, width, global_id)]
    elif class_name == "truck":
        cargo = _color(rng)
        cab_len = 2.0
        parts = [
            Part((length / 2.0 - cab_len / 2.0, 0.0, -height * 0.15), (cab_len, width, height * 0.7), body),
            Part((length / 2.0 - cab_len / 2.0 + 0.3, 0.0, height * 0.05), (cab_len * 0.72, width * 1.01, height * 0.22), (50, 40, 30), "window"),
            Part((-cab_len / 2.0 + 0.05, 0.0, 0.05 * height), (length - cab_len - 0.1, width, height * 0.9), cargo),
            Part((-cab_len / 2.0 + 0.05, 0.0, 0.1 * height), (length - cab_len - 0.08, width * 1.01, 0.25), _color(rng), "stripe"),
        ]
        parts += [Part((p.center[0], p.center[1], p.center[2] - height / 2.0), p.size, p.color, p.kind)
                  for p in _plate_parts(rng, length, width, global_id)]
    elif class_name == "person":
        trousers, skin = _color(rng), tuple(int(v) for v in rng.integers([60, 90, 120], [140, 170, 220]))
        legs_h, torso_h = height * 0.47, height * 0.38
        parts = [
            Part((0.0, 0.0, -height / 2.0 + legs_h / 2.0), (length * 0.7, width * 0.8, legs_h), trousers),
            Part((0.0, 0.0, -height / 2.0 + legs_h + torso_h / 2.0), (length, width, torso_h), body),
            Part((0.0, 0.0, height / 2.0 - (height - legs_h - torso_h) / 2.0), (0.22, 0.2, height - legs_h - torso_h), skin),
        ]
    elif class_name == "bicycle":
        rider = _color(rng)
        parts = [
            Part((length * 0.3, 0.0, -height / 2.0 + 0.35), (0.7, 0.08, 0.7), (25, 25, 25), "wheel"),
            Part((-length * 0.3, 0.0, -height / 2.0 + 0.35), (0.7, 0.08, 0.7), (25, 25, 25), "wheel"),
            Part((0.0, 0.0, -height / 2.0 + 0.6), (length * 0.7, 0.1, 0.12), body),
            Part((-0.1, 0.0, -height / 2.0 + 1.05), (0.35, width, 0.6), rider),
            Part((-0.05, 0.0, height / 2.0 - 0.13), (0.22, 0.2, 0.24), (90, 130, 190)),
        ]
    else:  # pragma: no cover - guarded by scene validation
        raise ValueError(class_name)
    return tuple(parts)


# A real fleet's paint: most vehicles white, black, grey or silver (share, BGR).
FLEET_PAINT = (
    (0.30, (232, 234, 236)), (0.20, (26, 26, 30)), (0.15, (118, 120, 124)), (0.15, (180, 182, 186)),
    (0.06, (80, 44, 28)), (0.05, (36, 36, 150)), (0.05, (150, 176, 190)), (0.04, (40, 70, 40)),
)
# Clothing that overlaps between people: dark tops and trousers, a few high-visibility vests.
FLEET_TOPS = ((0.25, (30, 30, 30)), (0.2, (70, 40, 25)), (0.15, (120, 120, 120)), (0.15, (225, 225, 225)),
              (0.1, (40, 70, 40)), (0.1, (30, 230, 230)), (0.05, (20, 120, 250)))
FLEET_TROUSERS = ((0.35, (28, 28, 28)), (0.25, (80, 50, 30)), (0.15, (110, 110, 110)), (0.15, (140, 90, 50)),
                  (0.1, (110, 150, 170)))
# Car body types: (lower body height share, cabin length share, cabin offset share, cabin height scale)
BODY_TYPES = {"sedan": (0.55, 0.50, -0.08, 1.0), "hatchback": (0.55, 0.58, -0.18, 1.0),
              "suv": (0.58, 0.68, -0.10, 1.0), "van": (0.50, 0.86, -0.05, 1.0),
              "pickup": (0.58, 0.34, 0.14, 1.0)}


def _pick(rng: np.random.Generator, table, jitter: int = 6) -> tuple[int, int, int]:
    shares = np.array([share for share, _ in table], dtype=np.float64)
    base = np.array(table[int(rng.choice(len(table), p=shares / shares.sum()))][1])
    return tuple(int(v) for v in np.clip(base + rng.integers(-jitter, jitter + 1, size=3), 0, 255))


def _fleet_plate(length: float, global_id: int) -> list[Part]:
    """A plate front and back with two rows of six bits: a pattern unique to each of 4096 vehicles."""
    parts = []
    for sign in (1.0, -1.0):
        x = sign * (length / 2.0 + 0.01)
        parts.append(Part((x, 0.0, 0.45), (0.02, 0.52, 0.13), (235, 235, 235), "plate"))
        for b in range(12):
            if (global_id >> b) & 1:
                y, z = -0.2 + (b % 6) * 0.08, 0.48 if b < 6 else 0.42
                parts.append(Part((x + sign * 0.005, y, z), (0.02, 0.05, 0.05), (10, 10, 10), "plate"))
    return parts


def fleet_parts(class_name: str, size, rng: np.random.Generator, global_id: int) -> tuple[Part, ...]:
    """A fleet-like actor: common paints, a few body types, an own plate pattern, clothing people share.

    Colour alone does not tell two white sedans apart; their body type, roof, trim and plate may."""
    length, width, height = size
    if class_name == "car":
        body = _pick(rng, FLEET_PAINT)
        kind = str(rng.choice(list(BODY_TYPES), p=[0.4, 0.2, 0.25, 0.08, 0.07]))
        low_share, cabin_len, cabin_off, _ = BODY_TYPES[kind]
        low_h = height * low_share
        cabin_h = height - low_h
        bottom = -height / 2.0
        roof = body if rng.random() > 0.15 else (20, 20, 22)      # a black roof on some
        parts = [
            Part((0.0, 0.0, bottom + low_h / 2.0), (length, width, low_h), body),
            Part((cabin_off * length, 0.0, bottom + low_h + cabin_h / 2.0),
                 (length * cabin_len, width * 0.92, cabin_h), roof),
            Part((cabin_off * length, 0.0, bottom + low_h + cabin_h * 0.45),
                 (length * cabin_len * 1.01, width * 0.94, cabin_h * 0.6), (50, 40, 30), "window"),
        ]
        if kind == "pickup":  # the open bed behind the cab: its rim
            parts.append(Part((-0.28 * length, 0.0, bottom + low_h + 0.1), (length * 0.4, width * 0.95, 0.2),
                              tuple(max(0, c - 30) for c in body)))
        if rng.random() < 0.35:  # a trim line a little darker or lighter than the paint
            shade = int(rng.choice([-40, 40]))
            parts.append(Part((0.0, 0.0, bottom + low_h * 0.55), (length * 1.002, width * 1.01, height * 0.05),
                              tuple(int(np.clip(c + shade, 0, 255)) for c in body), "stripe"))
        if rng.random() < 0.2 and kind != "van":  # roof rack or roof box
            parts.append(Part((cabin_off * length, 0.0, height / 2.0 - 0.02),
                              (length * cabin_len * 0.8, width * 0.7, 0.04), (30, 30, 30), "stripe"))
        parts += [Part((p.center[0], p.center[1], p.center[2] - height / 2.0), p.size, p.color, p.kind)
                  for p in _fleet_plate(length, global_id)]
        return tuple(parts)
    if class_name == "truck":
        cab = _pick(rng, FLEET_PAINT[:4])
        company = [(40, 40, 170), (150, 80, 20), (30, 140, 40), (20, 160, 230)][int(rng.integers(4))]
        cargo = _pick(rng, ((0.6, (230, 230, 230)), (0.4, (175, 178, 182))))
        cab_len = 2.0
        parts = [
            Part((length / 2.0 - cab_len / 2.0, 0.0, -height * 0.15), (cab_len, width, height * 0.7), cab),
            Part((length / 2.0 - cab_len / 2.0 + 0.3, 0.0, height * 0.05),
                 (cab_len * 0.72, width * 1.01, height * 0.22), (50, 40, 30), "window"),
            Part((-cab_len / 2.0 + 0.05, 0.0, 0.05 * height), (length - cab_len - 0.1, width, height * 0.9), cargo),
            Part((-cab_len / 2.0 + 0.05, 0.0, 0.1 * height), (length - cab_len - 0.08, width * 1.01, 0.25), company,
                 "stripe"),
        ]
        parts += [Part((p.center[0], p.center[1], p.center[2] - height / 2.0), p.size, p.color, p.kind)
                  for p in _fleet_plate(length, global_id)]
        return tuple(parts)
    if class_name == "person":
        top, trousers = _pick(rng, FLEET_TOPS), _pick(rng, FLEET_TROUSERS)
        skin = tuple(int(v) for v in rng.integers([60, 90, 120], [140, 170, 220]))
        legs_h, torso_h = height * 0.47, height * 0.38
        parts = [
            Part((0.0, 0.0, -height / 2.0 + legs_h / 2.0), (length * 0.7, width * 0.8, legs_h), trousers),
            Part((0.0, 0.0, -height / 2.0 + legs_h + torso_h / 2.0), (length, width, torso_h), top),
            Part((0.0, 0.0, height / 2.0 - (height - legs_h - torso_h) / 2.0), (0.22, 0.2, height - legs_h - torso_h),
                 skin),
        ]
        if rng.random() < 0.3:  # a backpack or bag on the back
            parts.append(Part((-length * 0.55, 0.0, -height / 2.0 + legs_h + torso_h * 0.55),
                              (0.15, width * 0.6, torso_h * 0.6), _pick(rng, FLEET_TROUSERS)))
        return tuple(parts)
    if class_name == "bicycle":
        frame, rider = _pick(rng, FLEET_PAINT), _pick(rng, FLEET_TOPS)
        return (
            Part((length * 0.3, 0.0, -height / 2.0 + 0.35), (0.7, 0.08, 0.7), (25, 25, 25), "wheel"),
            Part((-length * 0.3, 0.0, -height / 2.0 + 0.35), (0.7, 0.08, 0.7), (25, 25, 25), "wheel"),
            Part((0.0, 0.0, -height / 2.0 + 0.6), (length * 0.7, 0.1, 0.12), frame),
            Part((-0.1, 0.0, -height / 2.0 + 1.05), (0.35, width, 0.6), rider),
            Part((-0.05, 0.0, height / 2.0 - 0.13), (0.22, 0.2, 0.24), (90, 130, 190)),
        )
    raise ValueError(class_name)  # pragma: no cover - guarded by scene validation


def _paths_for(class_name: str, scene: Scene):
    if class_name in ("car", "truck"):
        return scene.lanes or scene.walkways
    if class_name == "person":
        return scene.walkways or scene.lanes
    return (scene.walkways + scene.lanes) if scene.walkways else scene.lanes


class Timeline:
    """Keyframes built leg by leg: drive to a point at a speed (forwards or reversing), wait."""

    def __init__(self, t: float, start):
        self.frames = [(t, float(start[0]), float(start[1]))]
        self.reverse: list[bool] = []

    @property
    def t(self) -> float:
        return self.frames[-1][0]

    @property
    def position(self) -> np.ndarray:
        return np.array(self.frames[-1][1:])

    def drive(self, points, speed: float, reverse: bool = False) -> None:
        for p in points:
            distance = float(np.linalg.norm(np.asarray(p) - self.position))
            if distance < 1e-6:
                continue
            self.frames.append((self.t + distance / speed, float(p[0]), float(p[1])))
            self.reverse.append(reverse)

    def wait(self, seconds: float) -> None:
        if seconds > 1e-6:
            self.frames.append((self.t + seconds, *self.frames[-1][1:]))
            self.reverse.append(False)

    def wait_until(self, t: float) -> None:
        self.wait(t - self.t)

    def keyframes(self) -> np.ndarray:
        return np.asarray(self.frames, dtype=np.float64)


def generate_actors(scene: Scene) -> list[Actor]:
    """The scene's actors for its seed: scripted ones first, then random traffic."""
    rng = np.random.default_rng([scene.seed, 0xA7])
    actors: list[Actor] = []
    for spec in scene.scripted_actors:
        class_name = spec["class"]
        size = tuple(float(np.mean(r)) for r in CLASS_SIZES[class_name])
        gid = len(actors) + 1
        parts = make_parts(class_name, size, rng, gid, scene.appearance)
        if "legs" in spec:  # a speed profile: drive to points at speeds (or reversing), stand still, go on
            timeline = Timeline(float(spec.get("enter_time", 0.0)), spec["start"])
            for leg in spec["legs"]:
                if "wait" in leg:
                    timeline.wait(float(leg["wait"]))
                else:
                    timeline.drive([leg["to"]], float(leg["speed"]), bool(leg.get("reverse", False)))
            frames = timeline.keyframes()
            actors.append(Actor(gid, class_name, size, parts, frames[:, 1:].copy(), 0.0,
                                float(max(leg.get("speed", 0.0) for leg in spec["legs"])), float(frames[0, 0]),
                                keyframes=frames, reverse=tuple(timeline.reverse)))
            continue
        actors.append(Actor(gid, class_name, size, parts, np.asarray(spec["path"], dtype=np.float64),
                            float(spec.get("lateral_offset", 0.0)), float(spec["speed"]),
                            float(spec.get("enter_time", 0.0))))
    names = list(scene.class_mix)
    weights = np.array([scene.class_mix[n] for n in names], dtype=np.float64)
    weights /= weights.sum()
    for _ in range(scene.actor_count):
        class_name = names[int(rng.choice(len(names), p=weights))]
        size = tuple(float(rng.uniform(*r)) for r in CLASS_SIZES[class_name])
        paths = _paths_for(class_name, scene)
        chosen = paths[int(rng.integers(len(paths)))]
        path = np.asarray(chosen, dtype=np.float64)
        # Where actors give way, traffic keeps to its lane's direction (two actors head-on in one lane could only
        # pass through each other); the draw is made either way so the other actors stay the same.
        if rng.random() < 0.5 and not (scene.yielding and chosen in scene.lanes and class_name != "person"):
            path = path[::-1].copy()
        speed = float(rng.uniform(*CLASS_SPEEDS[class_name]))
        length = float(np.sum(np.linalg.norm(np.diff(path, axis=0), axis=1)))
        traverse = length / speed
        # Spread entries so that some actors are already mid-path at t = 0.
        enter = float(rng.uniform(-0.8 * traverse, max(scene.duration_s - 0.2 * traverse, 0.0)))
        lateral = float(rng.uniform(-1.2, 1.2)) if class_name in ("car", "truck") else float(rng.uniform(-1.0, 1.0))
        gid = len(actors) + 1
        actors.append(Actor(gid, class_name, size, make_parts(class_name, size, rng, gid, scene.appearance), path, lateral,
                            speed, enter))
    if scene.parking is not None:
        from perception_nodes.world.parking import parking_actors

        actors.extend(parking_actors(scene, first_id=len(actors) + 1))
    return actors
