"""Risk engine (pure Python): objects on the map + the site's rules -> an explained assessment and a command.

Every rule is evaluated on its subjects (an object, a pair, an object in a zone) and each subject keeps a latch
with the rule's minimum dwell (the condition must hold that long before it fires), hysteresis (it releases only
past the release threshold) and hold time (it stays held that long after releasing). The level is the highest
severity of the active rules; the command follows the site's actions, escalates at once and relaxes only after
the lower command held for ``command_release_s``. Inputs that are stale, cameras whose loss leaves a zone with a
rule uncovered, or unhealthy upstream nodes put the engine in fail-safe: the configured level and command, with
the reason. Time is the objects' stamp only, so the same inputs give the same decisions in every run.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from enum import IntEnum

import numpy as np

from perception_nodes.geometry import points_in_polygon, rectangles_first_contact
from perception_nodes.risk.coverage import CoverageModel
from perception_nodes.risk.kinematics import (approach_geometry, approach_uncertainty, closest_approach,
                                              footprint_radius)
from perception_nodes.risk.rules import Command, RiskConfig, RiskLevel, Rule, RuleKind
from perception_nodes.taxonomy import SITE_CLASS_NAMES


class EvaluationState(IntEnum):
    """Mirrors RuleEvaluation.STATE_*."""

    UNKNOWN = 0
    INACTIVE = 1
    PENDING = 2
    ACTIVE = 3
    HOLDING = 4


@dataclass(frozen=True)
class ObjectState:
    """One localized object as the rules see it (map frame, SI units)."""

    global_id: int
    class_name: str
    xy: tuple[float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    position_cov: tuple = ((0.25, 0.0), (0.0, 0.25))  # 2x2, m^2
    velocity_cov: tuple = ((0.25, 0.0), (0.0, 0.25))  # 2x2, (m/s)^2
    length: float = 1.0
    width: float = 1.0
    heading: float | None = None          # None: unknown
    lane: str = ""
    against_lane: bool = False            # the localizer's LANE_AGAINST
    coasting: bool = False
    last_seen: float | None = None        # stamp of the newest image that observed it (None: unknown)

    @property
    def speed(self) -> float:
        return math.hypot(self.velocity[0], self.velocity[1])


@dataclass(frozen=True)
class InputStatus:
    """What the node knows about its inputs besides the objects themselves."""

    stale: str = ""                          # why the objects are stale (empty: fresh)
    unhealthy: tuple[str, ...] = ()          # upstream nodes in error, "name: message"
    live_cameras: tuple[str, ...] | None = None  # cameras publishing now; None: coverage not checked
    # cameras left out of live_cameras because their tracks arrive, but too old: (camera, age s) pairs
    late_cameras: tuple[tuple[str, float], ...] = ()


class Evaluation:
    """One rule on one subject: its state, the measured value and a sentence for people (built when read)."""

    __slots__ = ("rule", "state", "object_ids", "place", "measured", "condition_since_s", "_text", "_score")

    def __init__(self, rule: Rule, state: EvaluationState, object_ids: tuple[int, ...], place: str, measured: float,
                 condition_since_s: float, text):
        self.rule, self.state, self.object_ids, self.place = rule, state, object_ids, place
        self.measured, self.condition_since_s = measured, condition_since_s
        self._text = text  # a string, or a callable that makes it (most evaluations are never read)
        self._score = None

    @property
    def text(self) -> str:
        if callable(self._text):
            self._text = self._text()
        return self._text

    @property
    def counts(self) -> bool:
        return self.state in (EvaluationState.ACTIVE, EvaluationState.HOLDING)

    def score(self) -> float:
        """[0, 1]: the rule's severity share, scaled by how far past its threshold the measure is (0.5 at it)."""
        if self._score is None:
            rule = self.rule
            if rule.threshold <= 0:
                exceedance = 1.0
            elif rule.higher_is_worse:
                exceedance = (self.measured - rule.threshold) / rule.threshold
            else:
                exceedance = (rule.threshold - self.measured) / rule.threshold
            exceedance = 1.0 if not math.isfinite(exceedance) else exceedance
            self._score = min(max(0.5 + 0.5 * exceedance, 0.0), 1.0) * int(rule.severity) / int(RiskLevel.CRITICAL)
        return self._score


@dataclass
class Assessment:
    assessment_id: int
    stamp: float
    level: RiskLevel
    score: float
    reasons: list[Evaluation]          # counting evaluations, most severe first
    evaluations: list[Evaluation]      # every rule: its counting subjects, or the one nearest to firing
    fail_safe: bool
    fail_safe_reason: str
    time_to_collision: float | None
    objects_evaluated: int
    command: Command
    command_reason: str
    config: RiskConfig | None = None

    @property
    def explanation(self) -> str:
        """Why the level and command are what they are (built on first read: the node reads it off the executor)."""
        if getattr(self, "_explanation", None) is None:
            self._explanation = explain(self, self.config or RiskConfig())
        return self._explanation


@dataclass
class _Latch:
    since: float | None = None         # condition true since
    active: bool = False
    released_at: float | None = None   # past the release threshold since (while active)


@dataclass
class _Subject:
    key: tuple
    object_ids: tuple[int, ...]
    place: str
    measured: float
    trigger: bool     # the condition holds (at the trigger threshold)
    holding: bool     # still on the hazardous side of the release threshold
    text: object      # str, or a callable making it
    closeness: float = 0.0  # how near to firing (for the inactive summary): higher is nearer


@dataclass
class _CommandState:
    command: Command = Command.NONE
    lower: Command | None = None
    lower_since: float = 0.0


def _fmt(value: float, unit: str) -> str:
    return "inf" if not math.isfinite(value) else f"{value:.2f} {unit}"


_CLASS_CODES = {name: code for code, name in enumerate(SITE_CLASS_NAMES)}
MAX_DETECTION_INTERVAL_S = 2.0   # a longer gap between an object's detections is an absence, not its camera's rate


@functools.lru_cache(maxsize=256)
def _class_table(classes: tuple[str, ...]) -> np.ndarray:
    """Per class code (the last entry: a class the site does not know), whether it is in ``classes`` (empty: all)."""
    table = np.zeros(len(_CLASS_CODES) + 1, dtype=bool)
    if not classes:
        table[:] = True
    for name in classes:
        if name in _CLASS_CODES:
            table[_CLASS_CODES[name]] = True
    return table


class _Frame:
    """One snapshot's objects as arrays (built once per assessment, shared by every rule)."""

    def __init__(self, objects: list[ObjectState], lapsed_ids: frozenset = frozenset()):
        self.objects = objects
        n = len(objects)
        self.ids = np.array([o.global_id for o in objects], dtype=np.int64)
        self.classes = np.array([o.class_name for o in objects], dtype=object)
        self.codes = np.array([_CLASS_CODES.get(o.class_name, len(_CLASS_CODES)) for o in objects], dtype=np.int64)
        self.xy = np.array([o.xy for o in objects], dtype=np.float64).reshape(n, 2)
        self.velocity = np.array([o.velocity for o in objects], dtype=np.float64).reshape(n, 2)
        self.position_cov = np.array([o.position_cov for o in objects], dtype=np.float64).reshape(n, 2, 2)
        self.velocity_cov = np.array([o.velocity_cov for o in objects], dtype=np.float64).reshape(n, 2, 2)
        self.length = np.array([o.length for o in objects], dtype=np.float64)
        self.width = np.array([o.width for o in objects], dtype=np.float64)
        self.heading = np.array([np.nan if o.heading is None else o.heading for o in objects], dtype=np.float64)
        self.speed = np.linalg.norm(self.velocity, axis=1)
        self.radius = footprint_radius(self.length, self.width)
        # no detection confirms them now: coasting on the localizer's prediction, or lapsed (RiskEngine._unconfirmed)
        self.unconfirmed_ids = {o.global_id for o in objects if o.coasting} | set(lapsed_ids)
        self._masks: dict[tuple, np.ndarray] = {}
        self._inside: dict[str, np.ndarray] = {}

    def mask(self, classes: tuple[str, ...]) -> np.ndarray:
        if classes not in self._masks:
            self._masks[classes] = _class_table(classes)[self.codes]
        return self._masks[classes]

    def inside(self, name: str, polygon: np.ndarray) -> np.ndarray:
        if name not in self._inside:
            self._inside[name] = points_in_polygon(self.xy, polygon) if len(self.ids) else np.zeros(0, bool)
        return self._inside[name]

    def label(self, index: int) -> str:
        return f"{self.classes[index]} {self.ids[index]}"


class RiskEngine:
    """Stateful evaluation of a :class:`RiskConfig` on successive object snapshots."""

    def __init__(self, config: RiskConfig, site_map=None, coverage: CoverageModel | None = None,
                 vectorized: bool = True):
        """``vectorized``: pairs are evaluated as arrays; False evaluates each pair with the scalar
        :func:`closest_approach` (the reference the vectorised path is tested and benchmarked against)."""
        self.config = config
        self.vectorized = vectorized
        self.site_map = site_map
        self.coverage = coverage
        self._zones = {z.name: np.asarray(z.polygon, dtype=np.float64) for z in (site_map.zones if site_map else ())}
        self._lanes = {ln.name: ln.direction.value for ln in (site_map.lanes if site_map else ())}
        self._gates = {g.name: np.asarray(g.segment, dtype=np.float64) for g in (site_map.gates if site_map else ())}
        self._latches: dict[str, dict[tuple, _Latch]] = {r.id: {} for r in config.rules}
        # rule id -> {object id: when its timed condition (inside the zone, stopped at the gate) began}
        self._since: dict[str, dict[int, float]] = {r.id: {} for r in config.rules}
        self._command = _CommandState()
        self._last_stamp: float | None = None
        self._seen: dict[int, tuple[float, float]] = {}   # object id -> (newest detection, usual interval)
        self._next_id = 1
        site_wide = any(r.place == "" or r.kind in (RuleKind.WRONG_WAY, RuleKind.BLOCKED_EXIT) for r in config.rules)
        zoned = {r.place for r in config.rules if r.kind in (RuleKind.RESTRICTED_ZONE, RuleKind.DWELL,
                                                              RuleKind.SPEED_LIMIT) and r.place}
        self.watched_zones = sorted(set(self._zones) if site_wide else zoned)

    def reset(self) -> None:
        """Forget every latch and timer (time jumped backwards: a bag loop)."""
        for table in (*self._latches.values(), *self._since.values()):
            table.clear()
        self._command = _CommandState()
        self._last_stamp = None
        self._seen.clear()

    # -- rules -------------------------------------------------------------------------------
    def _timed(self, rule: Rule, ids, now: float) -> dict[int, float]:
        """Durations of a timed condition for the objects that meet it now (the others' timers restart)."""
        previous = self._since[rule.id]
        current = {int(g): previous.get(int(g), now) for g in ids}
        self._since[rule.id] = current
        return {g: now - t for g, t in current.items()}

    def _zone_subjects(self, rule: Rule, frame: _Frame, now: float) -> list[_Subject]:
        members = frame.mask(rule.classes) & frame.inside(rule.place, self._zones[rule.place])
        indices = np.flatnonzero(members)
        durations = self._timed(rule, frame.ids[indices], now)
        out = []
        for i in indices:
            gid = int(frame.ids[i])
            duration = durations[gid]
            if rule.kind == RuleKind.RESTRICTED_ZONE:
                text = f"{frame.label(i)} is in zone {rule.place}, closed to {'/'.join(rule.classes)}, for " \
                       f"{duration:.1f} s"
                out.append(_Subject((gid,), (gid,), rule.place, duration, True, True, text, 1.0))
            else:
                text = f"{frame.label(i)} has been in zone {rule.place} for {duration:.0f} s (allowed " \
                       f"{rule.threshold:.0f} s)"
                out.append(_Subject((gid,), (gid,), rule.place, duration, duration > rule.threshold,
                                    duration > rule.release, text, duration))
        return out

    def _speed_subjects(self, rule: Rule, frame: _Frame) -> list[_Subject]:
        members = frame.mask(rule.classes)
        if rule.place:
            members = members & frame.inside(rule.place, self._zones[rule.place])
        latched = self._latches[rule.id]
        relevant = members & ((frame.speed > rule.release) | np.isin(frame.ids, [k[0] for k in latched]))
        out = []
        where = f" in zone {rule.place}" if rule.place else ""
        for i in np.flatnonzero(relevant):
            gid, speed = int(frame.ids[i]), float(frame.speed[i])
            text = f"{frame.label(i)} at {speed:.1f} m/s{where} (limit {rule.threshold:.1f} m/s)"
            out.append(_Subject((gid,), (gid,), rule.place, speed, speed > rule.threshold, speed > rule.release,
                                text, speed / rule.threshold))
        if not out and members.any():
            i = int(np.flatnonzero(members)[np.argmax(frame.speed[members])])
            out.append(_Subject((int(frame.ids[i]),), (int(frame.ids[i]),), rule.place, float(frame.speed[i]), False,
                                False, f"fastest: {frame.label(i)} at {frame.speed[i]:.1f} m/s{where}",
                                float(frame.speed[i]) / rule.threshold))
        return out

    def _wrong_way_subjects(self, rule: Rule, frame: _Frame) -> list[_Subject]:
        out = []
        for i in np.flatnonzero(frame.mask(rule.classes)):
            obj = frame.objects[i]
            if not obj.lane or self._lanes.get(obj.lane, "both") == "both" or (rule.place and obj.lane != rule.place):
                continue
            against = obj.against_lane
            text = f"{frame.label(i)} drives against one-way lane {obj.lane} at {obj.speed:.1f} m/s"
            out.append(_Subject((obj.global_id,), (obj.global_id,), obj.lane, obj.speed if against else 0.0,
                                against and obj.speed >= rule.threshold, against and obj.speed >= rule.release,
                                text, obj.speed if against else 0.0))
        return out

    def _blocked_exit_subjects(self, rule: Rule, frame: _Frame, now: float) -> list[_Subject]:
        a, b = self._gates[rule.place]
        ab = b - a
        u = np.clip((frame.xy - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0)
        near = np.linalg.norm(a + u[:, None] * ab - frame.xy, axis=1) <= rule.radius_m
        waiting = frame.mask(rule.classes) & near & (frame.speed < rule.stopped_speed_mps)
        indices = np.flatnonzero(waiting)
        durations = self._timed(rule, frame.ids[indices], now)
        out = []
        for i in indices:
            gid = int(frame.ids[i])
            duration = durations[gid]
            text = f"{frame.label(i)} has stood at exit {rule.place} for {duration:.0f} s (allowed " \
                   f"{rule.threshold:.0f} s)"
            out.append(_Subject((gid,), (gid,), rule.place, duration, duration > rule.threshold,
                                duration > rule.release, text, duration))
        return out

    def _pair_indices(self, rule: Rule, frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
        ia, ib = np.flatnonzero(frame.mask(rule.classes)), np.flatnonzero(frame.mask(rule.classes_b))
        first, second = (a.ravel() for a in np.meshgrid(ia, ib, indexing="ij"))
        keep = frame.ids[first] != frame.ids[second]
        # A pair whose members could swap roles (car-car) is evaluated once: the lower id first.
        both_ways = _class_table(rule.classes_b)[frame.codes[first]] & _class_table(rule.classes)[frame.codes[second]]
        keep &= ~(both_ways & (frame.ids[first] > frame.ids[second]))
        return first[keep], second[keep]

    def _latched_pairs(self, rule: Rule, frame: _Frame, first, second) -> np.ndarray:
        """Which of the pairs hold a latch of ``rule`` (as one integer each: no Python loop over the pairs)."""
        latched = self._latches[rule.id]
        if not latched:
            return np.zeros(len(first), bool)
        codes = frame.ids[first] * (1 << 32) + frame.ids[second]
        return np.isin(codes, [a * (1 << 32) + b for a, b in latched])

    def _pair_subjects(self, rule: Rule, frame: _Frame, first, second, measured, trigger, holding, closeness,
                       describe, latched=None) -> list[_Subject]:
        """Subjects for the pairs that fire, hold or are latched, and the one nearest to firing."""
        relevant = trigger | holding | (self._latched_pairs(rule, frame, first, second) if latched is None
                                        else latched)
        chosen = np.flatnonzero(relevant).tolist()
        if not chosen and len(first):
            chosen = [int(np.argmax(closeness))]
        ids_a, ids_b = frame.ids[first[chosen]].tolist(), frame.ids[second[chosen]].tolist()
        values, triggered, held, near = (measured[chosen].tolist(), trigger[chosen].tolist(), holding[chosen].tolist(),
                                         closeness[chosen].tolist())
        return [_Subject((a, b), (a, b), "", m, t, h, (lambda p=p: describe(p)), c)
                for p, a, b, m, t, h, c in zip(chosen, ids_a, ids_b, values, triggered, held, near)]

    def _separation_subjects(self, rule: Rule, frame: _Frame) -> list[_Subject]:
        first, second = self._pair_indices(rule, frame)
        offset = frame.xy[first] - frame.xy[second]
        heading = frame.heading[second]
        known = np.isfinite(heading)
        c, s = np.cos(np.nan_to_num(heading)), np.sin(np.nan_to_num(heading))
        along, across = c * offset[:, 0] + s * offset[:, 1], -s * offset[:, 0] + c * offset[:, 1]
        to_box = np.hypot(np.maximum(np.abs(along) - frame.length[second] / 2, 0.0),
                          np.maximum(np.abs(across) - frame.width[second] / 2, 0.0))
        to_disc = np.maximum(np.linalg.norm(offset, axis=1) - 0.5 * frame.width[second], 0.0)
        gap = np.maximum(np.where(known, to_box, to_disc) - 0.5 * frame.width[first], 0.0)
        moving = frame.speed[second] >= rule.min_speed_mps  # the vehicle moves: walking past a parked car is fine

        def describe(p):
            return f"{frame.label(first[p])} is {gap[p]:.1f} m from {frame.label(second[p])} " \
                   f"(keep {rule.threshold:.1f} m)"

        return self._pair_subjects(rule, frame, first, second, gap, moving & (gap < rule.threshold),
                                   moving & (gap < rule.release), np.where(moving, -gap, -1e9 - gap), describe)

    def _ttc_subjects(self, rule: Rule, frame: _Frame) -> list[_Subject]:
        first, second = self._pair_indices(rule, frame)
        disc = frame.radius[first] + frame.radius[second] + rule.margin_m
        latched = self._latched_pairs(rule, frame, first, second)
        # Nominal geometry for every pair (discs); footprints of known heading then give the time to collision
        # and the reach that the contact probability measures the miss against.
        geometry = approach_geometry(frame.xy[second] - frame.xy[first],
                                     frame.velocity[second] - frame.velocity[first], disc, rule.horizon_s)
        closing = geometry.closing_speed_mps
        if self.vectorized:
            # The covariance (the costly part, 2x2 per pair) only for the pairs whose time to collision can fire or
            # hold the rule, the latched ones and the one shown as nearest: the others' contact probability and
            # closing sigma cannot change a decision.
            ttc, miss, when = geometry.time_to_collision_s, geometry.distance_m, geometry.time_s
            ttc = self._footprint_ttc(rule, frame, first, second, ttc, closing)
            closeness = _ttc_closeness(ttc, miss)
            needed = latched | (ttc <= max(rule.threshold, rule.release))
            if len(first):
                needed[int(np.argmax(closeness))] = True
            pairs = np.flatnonzero(needed)
            probability, closing_sigma = np.zeros(len(first)), np.zeros(len(first))
            a, b = first[pairs], second[pairs]
            reach = disc.copy()
            reach[pairs] = self._footprint_reach(rule, frame, a, b, geometry.miss[pairs], disc[pairs])
            probability[pairs], closing_sigma[pairs] = approach_uncertainty(
                replace(geometry, radius=reach), pairs, frame.position_cov[a] + frame.position_cov[b],
                frame.velocity_cov[a] + frame.velocity_cov[b], rule.accel_sigma_mps2)
        else:
            reach = self._footprint_reach(rule, frame, first, second, geometry.miss, disc)
            scalar = [closest_approach(frame.xy[a], frame.velocity[a], frame.position_cov[a], frame.velocity_cov[a],
                                       frame.xy[b], frame.velocity[b], frame.position_cov[b], frame.velocity_cov[b],
                                       float(r), rule.horizon_s, rule.accel_sigma_mps2)
                      for a, b, r in zip(first, second, reach)]
            ttc = np.array([x.time_to_collision_s for x in scalar]).reshape(-1)
            probability = np.array([x.contact_probability for x in scalar]).reshape(-1)
            miss = np.array([x.distance_m for x in scalar]).reshape(-1)
            when = np.array([x.time_s for x in scalar]).reshape(-1)
            closing_sigma = np.array([x.closing_sigma_mps for x in scalar]).reshape(-1)
            ttc = self._footprint_ttc(rule, frame, first, second, ttc, closing)
            closeness = _ttc_closeness(ttc, miss)
        moving = frame.speed[second] >= rule.min_speed_b_mps
        # Closing for sure: faster than the minimum and than closing_z sigma of its own uncertainty (two parked
        # cars side by side, each with a little velocity noise, are not closing on each other).
        closing_sure = closing >= np.maximum(rule.min_closing_speed_mps, rule.closing_z * closing_sigma)
        trigger = moving & closing_sure & (probability >= rule.min_probability) & (ttc <= rule.threshold)
        holding = moving & (ttc <= rule.release) & (probability >= 0.5 * rule.min_probability)

        def describe(p):
            return f"{frame.label(first[p])} and {frame.label(second[p])}: time to collision {_fmt(ttc[p], 's')} " \
                   f"(alert at {rule.threshold:.1f} s), closest approach {miss[p]:.1f} m in {when[p]:.1f} s, " \
                   f"contact probability {probability[p]:.2f}"

        return self._pair_subjects(rule, frame, first, second, ttc, trigger, holding, closeness, describe, latched)

    @staticmethod
    def _footprint_reach(rule: Rule, frame: _Frame, first, second, miss, disc) -> np.ndarray:
        """Per pair: how far apart the centres may be, along the miss at the closest approach, for the footprints
        to touch: for two known headings the rectangles' extents along that direction (half length times |cos|
        plus half width times |sin| each) and the margin, else the discs' radii (``disc``)."""
        known = np.isfinite(frame.heading[first]) & np.isfinite(frame.heading[second])
        length = np.linalg.norm(miss, axis=1)
        direction = np.where(length[:, None] > 1e-9, miss / np.maximum(length, 1e-12)[:, None], [1.0, 0.0])
        extent = rule.margin_m
        for index in (first, second):
            heading = np.nan_to_num(frame.heading[index])
            c, s = np.cos(heading), np.sin(heading)
            extent = extent + 0.5 * frame.length[index] * np.abs(c * direction[:, 0] + s * direction[:, 1]) \
                + 0.5 * frame.width[index] * np.abs(-s * direction[:, 0] + c * direction[:, 1])
        return np.where(known, extent, disc)

    @staticmethod
    def _footprint_ttc(rule: Rule, frame: _Frame, first, second, ttc, closing) -> np.ndarray:
        """Time to collision of the pairs whose headings are both known, between their footprints (rectangles
        grown by half the rule's margin each) instead of discs: a disc cannot tell two cars parked side by side
        (a width apart) from one running into the other, nor fit a car queued behind another (a length apart).
        Within contact but not closing counts as no collision to come, as for discs."""
        known = np.flatnonzero(np.isfinite(frame.heading[first]) & np.isfinite(frame.heading[second]))
        out = np.array(ttc, dtype=np.float64, copy=True)
        if not len(known):
            return out
        out[known] = np.inf
        a, b = first[known], second[known]
        grow = 0.5 * rule.margin_m
        half_a = np.stack([frame.length[a] / 2 + grow, frame.width[a] / 2 + grow], axis=1)
        half_b = np.stack([frame.length[b] / 2 + grow, frame.width[b] / 2 + grow], axis=1)
        # Only pairs whose bounding circles come within contact inside the horizon can touch (exact, and most
        # pairs of a busy lot are not among them).
        offset, relative = frame.xy[b] - frame.xy[a], frame.velocity[b] - frame.velocity[a]
        bound = approach_geometry(offset, relative, np.hypot(*half_a.T) + np.hypot(*half_b.T), rule.horizon_s)
        near = np.flatnonzero(np.isfinite(bound.time_to_collision_s) | (bound.distance_now_m <= bound.radius))
        if not len(near):
            return out
        contact = rectangles_first_contact(offset[near], relative[near], frame.heading[a[near]], half_a[near],
                                           frame.heading[b[near]], half_b[near], rule.horizon_s)
        out[known[near]] = np.where((contact == 0.0) & (closing[known[near]] <= 0.0), np.inf, contact)
        return out

    def _subjects(self, rule: Rule, frame: _Frame, now: float) -> list[_Subject]:
        if rule.kind in (RuleKind.RESTRICTED_ZONE, RuleKind.DWELL):
            return self._zone_subjects(rule, frame, now)
        if rule.kind == RuleKind.SPEED_LIMIT:
            return self._speed_subjects(rule, frame)
        if rule.kind == RuleKind.SEPARATION:
            return self._separation_subjects(rule, frame)
        if rule.kind == RuleKind.TIME_TO_COLLISION:
            return self._ttc_subjects(rule, frame)
        if rule.kind == RuleKind.WRONG_WAY:
            return self._wrong_way_subjects(rule, frame)
        return self._blocked_exit_subjects(rule, frame, now)

    # -- latches -----------------------------------------------------------------------------
    def _step(self, rule: Rule, subject: _Subject, now: float) -> tuple[EvaluationState, float]:
        latches = self._latches[rule.id]
        latch = latches.get(subject.key)
        if latch is None:
            if not subject.trigger:
                return EvaluationState.INACTIVE, 0.0  # nothing to remember
            latch = latches[subject.key] = _Latch()
        if subject.trigger:
            latch.since = now if latch.since is None else latch.since
        elif not latch.active:
            latch.since = None
        if not latch.active:
            if subject.trigger and now - latch.since >= rule.min_dwell_s:
                latch.active, latch.released_at = True, None
            else:
                if not subject.trigger:
                    del latches[subject.key]
                    return EvaluationState.INACTIVE, 0.0
                return EvaluationState.PENDING, now - latch.since
        if subject.trigger or subject.holding:
            latch.released_at = None
            return EvaluationState.ACTIVE, now - (latch.since if latch.since is not None else now)
        latch.released_at = now if latch.released_at is None else latch.released_at
        if now - latch.released_at >= rule.hold_s:
            del latches[subject.key]
            return EvaluationState.INACTIVE, 0.0
        return EvaluationState.HOLDING, 0.0

    def _evaluate(self, rule: Rule, frame: _Frame, now: float) -> list[Evaluation]:
        subjects = self._subjects(rule, frame, now)
        present = {s.key for s in subjects}
        # A latched subject that vanished (object gone, pair apart) releases like one whose condition cleared.
        for key, latch in list(self._latches[rule.id].items()):
            if key not in present:
                if latch.active:
                    subjects.append(_Subject(key, key, rule.place, math.nan, False, False,
                                             f"objects {list(key)} no longer evaluated (gone or apart)"))
                else:
                    del self._latches[rule.id][key]
        evaluations, nearest = [], None
        for subject in subjects:
            unconfirmed = subject.trigger and not rule.coasting_triggers and \
                frame.unconfirmed_ids.intersection(subject.object_ids)
            if unconfirmed:
                subject.trigger = False  # unconfirmed now: may hold an alert, not start one
                said = subject.text
                subject.text = lambda said=said, ids=sorted(unconfirmed): (
                    f"{said() if callable(said) else said} (no detection confirms object(s) {ids} now: "
                    f"they may hold an alert, not start one)")
            state, since = self._step(rule, subject, now)
            evaluation = Evaluation(rule, state, subject.object_ids, subject.place, subject.measured, since,
                                    subject.text)
            if state != EvaluationState.INACTIVE:
                evaluations.append(evaluation)
            elif nearest is None or subject.closeness > nearest[0]:
                nearest = (subject.closeness, evaluation)
        if not evaluations:
            evaluations.append(nearest[1] if nearest else Evaluation(
                rule, EvaluationState.INACTIVE, (), rule.place, math.nan, 0.0,
                f"no {'/'.join(rule.classes) or 'object'} this rule applies to"
                + (f" in {rule.place}" if rule.place else "")))
        return evaluations

    # -- fail-safe ---------------------------------------------------------------------------
    def _fail_safe_reason(self, inputs: InputStatus) -> str:
        reasons = []
        if inputs.stale:
            reasons.append(inputs.stale)
        if inputs.unhealthy:
            reasons.append("upstream unhealthy: " + "; ".join(inputs.unhealthy))
        if inputs.live_cameras is not None and self.coverage is not None and self.config.rules:
            lost = self.coverage.lost(self.watched_zones, inputs.live_cameras, self.config.min_coverage_share)
            if lost:
                late = dict(inputs.late_cameras)
                missing = [f"{c} late ({late[c]:.1f} s old)" if c in late else f"{c} silent"
                           for c in sorted(set(self.coverage.cameras) - set(inputs.live_cameras))]
                reasons.append("camera coverage lost (" + ", ".join(missing) + ") over " + ", ".join(
                    f"zone {z.zone} ({z.share_now:.0%} of {z.share_all:.0%} seen)" for z in lost))
        return "; ".join(reasons)

    # -- the assessment ----------------------------------------------------------------------
    def assess(self, stamp: float, objects, inputs: InputStatus | None = None) -> Assessment:
        """Evaluate every rule on ``objects`` (non-tentative objects at fusion time ``stamp``)."""
        inputs = inputs or InputStatus()
        if not inputs.stale:  # a stale assessment is stamped by the node's clock, not the objects' time
            if self._last_stamp is not None and stamp < self._last_stamp:
                self.reset()
            self._last_stamp = stamp
        objects = sorted(objects, key=lambda o: o.global_id)
        fail_reason = self._fail_safe_reason(inputs)
        evaluations: list[Evaluation] = []
        if not inputs.stale:
            frame = _Frame(objects, self._unconfirmed(stamp, objects))
            for rule in self.config.rules:
                evaluations.extend(self._evaluate(rule, frame, stamp))
        reasons = sorted((e for e in evaluations if e.counts), key=lambda e: (-int(e.rule.severity), -e.score(),
                                                                              e.rule.id, e.object_ids))
        level = max((e.rule.severity for e in reasons), default=RiskLevel.CLEAR)
        score = max((e.score() for e in reasons), default=0.0)
        fail_safe = bool(fail_reason)
        if fail_safe:
            level = max(level, self.config.fail_safe_level)
            score = max(score, int(self.config.fail_safe_level) / int(RiskLevel.CRITICAL))
        ttcs = [e.measured for e in evaluations if e.rule.kind == RuleKind.TIME_TO_COLLISION
                and e.state != EvaluationState.INACTIVE and math.isfinite(e.measured)]
        command, command_reason = self._command_for(stamp, level, fail_safe, fail_reason, reasons)
        assessment = Assessment(self._next_id, stamp, RiskLevel(level), float(score), reasons, evaluations, fail_safe,
                                fail_reason, min(ttcs) if ttcs else None, len(objects), command, command_reason,
                                self.config)
        self._next_id += 1
        return assessment

    def _unconfirmed(self, stamp: float, objects) -> frozenset:
        """Ids of the objects no detection has confirmed for ``unconfirmed_after_s`` or twice the interval at which
        their detections usually come, whichever is longer (learned here from their ``last_seen`` stamps)."""
        floor = self.config.unconfirmed_after_s
        seen: dict[int, tuple[float, float]] = {}
        out = []
        for o in objects:
            if o.last_seen is None or not math.isfinite(o.last_seen):
                continue
            previous, interval = self._seen.get(o.global_id, (o.last_seen, 0.0))
            step = o.last_seen - previous
            if 1e-6 < step <= MAX_DETECTION_INTERVAL_S:   # a long gap is an absence, not the reporting rate
                interval = step if interval == 0.0 else 0.8 * interval + 0.2 * step
            seen[o.global_id] = (max(o.last_seen, previous), interval)
            if stamp - o.last_seen > max(floor, 2.0 * interval):
                out.append(o.global_id)
        self._seen = seen
        return frozenset(out)

    def _command_for(self, now: float, level: RiskLevel, fail_safe: bool, fail_reason: str, reasons):
        wanted = self.config.command_for(RiskLevel(level))
        if fail_safe:
            wanted = max(wanted, self.config.fail_safe_command)
        state = self._command
        if wanted >= state.command:
            state.command, state.lower = wanted, None
        elif state.lower != wanted:
            state.lower, state.lower_since = wanted, now
        elif now - state.lower_since >= self.config.command_release_s:
            state.command, state.lower = wanted, None
        if fail_safe:
            reason = f"fail-safe: {fail_reason}"
        elif reasons:
            reason = reasons[0].text
        else:
            reason = "no rule active"
        if state.command != wanted:
            reason += f" (holding {state.command.name} for {self.config.command_release_s:.1f} s before " \
                      f"{wanted.name})"
        return state.command, reason


def _ttc_closeness(ttc: np.ndarray, miss_m: np.ndarray) -> np.ndarray:
    """How near a pair is to firing a time-to-collision rule, to pick the one an idle rule shows: the soonest
    collision, else (no collision within the horizon) the closest approach."""
    return np.where(np.isfinite(ttc), -ttc, -1e9 - miss_m)


def explain(assessment: Assessment, config: RiskConfig) -> str:
    """Why the level and command are what they are, for a person."""
    lines = [f"assessment {assessment.assessment_id} at t={assessment.stamp:.3f} s: level "
             f"{assessment.level.name}, score {assessment.score:.2f}, command {assessment.command.name}"
             f" -> {config.target}; {assessment.objects_evaluated} objects, {len(config.rules)} rules"]
    if assessment.fail_safe:
        lines.append(f"FAIL-SAFE (level at least {config.fail_safe_level.name}, command "
                     f"{config.fail_safe_command.name}): {assessment.fail_safe_reason}")
    if assessment.reasons:
        top = assessment.reasons[0]
        lines.append(f"the level is {assessment.level.name} because rule {top.rule.id} ({top.rule.kind.value}, "
                     f"severity {top.rule.severity.name}) is {top.state.name.lower()}: {top.text}")
    elif not assessment.fail_safe:
        lines.append("the level is CLEAR: no rule is active")
    lines.append(f"the command is {assessment.command.name}: {assessment.command_reason}")
    lines.append("rules:")
    for e in assessment.evaluations:
        rule = e.rule
        release = "" if rule.release == rule.threshold else f", releases past {rule.release:g} {rule.unit}"
        lines.append(f"  {rule.id} [{rule.kind.value}, {rule.severity.name}] {e.state.name}: measured "
                     f"{_fmt(e.measured, rule.unit)}, threshold {rule.threshold:g} {rule.unit}{release}, dwell "
                     f"{rule.min_dwell_s:g} s, hold {rule.hold_s:g} s -- {e.text}")
    return "\n".join(lines)


__all__ = ["Assessment", "Evaluation", "EvaluationState", "InputStatus", "ObjectState", "RiskEngine", "explain"]
