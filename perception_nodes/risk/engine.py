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

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from perception_nodes.geometry import points_in_polygon
from perception_nodes.risk.coverage import CoverageModel
from perception_nodes.risk.kinematics import closest_approach, footprint_radius, point_to_footprint
from perception_nodes.risk.rules import Command, RiskConfig, RiskLevel, Rule, RuleKind


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

    @property
    def speed(self) -> float:
        return math.hypot(self.velocity[0], self.velocity[1])


@dataclass(frozen=True)
class InputStatus:
    """What the node knows about its inputs besides the objects themselves."""

    stale: str = ""                          # why the objects are stale (empty: fresh)
    unhealthy: tuple[str, ...] = ()          # upstream nodes in error, "name: message"
    live_cameras: tuple[str, ...] | None = None  # cameras publishing now; None: coverage not checked


@dataclass
class Evaluation:
    rule: Rule
    state: EvaluationState
    object_ids: tuple[int, ...]
    place: str
    measured: float
    condition_since_s: float
    text: str

    @property
    def counts(self) -> bool:
        return self.state in (EvaluationState.ACTIVE, EvaluationState.HOLDING)

    def score(self) -> float:
        rule = self.rule
        if rule.threshold <= 0:
            exceedance = 1.0
        elif rule.higher_is_worse:
            exceedance = (self.measured - rule.threshold) / rule.threshold
        else:
            exceedance = (rule.threshold - self.measured) / rule.threshold
        exceedance = 1.0 if not math.isfinite(exceedance) else exceedance
        return float(np.clip(0.5 + 0.5 * exceedance, 0.0, 1.0)) * int(rule.severity) / int(RiskLevel.CRITICAL)


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
    explanation: str = ""


@dataclass
class _Latch:
    since: float | None = None         # condition true since
    active: bool = False
    released_at: float | None = None   # past the release threshold since (while active)
    seen: float = 0.0


@dataclass
class _Subject:
    key: tuple
    object_ids: tuple[int, ...]
    place: str
    measured: float
    trigger: bool     # the condition holds (at the trigger threshold)
    holding: bool     # still on the hazardous side of the release threshold
    text: str
    closeness: float = 0.0  # how near to firing (for the inactive summary): higher is nearer


@dataclass
class _CommandState:
    command: Command = Command.NONE
    lower: Command | None = None
    lower_since: float = 0.0


def _fmt(value: float, unit: str) -> str:
    return "inf" if not math.isfinite(value) else f"{value:.2f} {unit}"


class RiskEngine:
    """Stateful evaluation of a :class:`RiskConfig` on successive object snapshots."""

    def __init__(self, config: RiskConfig, site_map=None, coverage: CoverageModel | None = None):
        self.config = config
        self.site_map = site_map
        self.coverage = coverage
        self._zones = {z.name: np.asarray(z.polygon, dtype=np.float64) for z in (site_map.zones if site_map else ())}
        self._lanes = {ln.name: ln.direction.value for ln in (site_map.lanes if site_map else ())}
        self._gates = {g.name: np.asarray(g.segment, dtype=np.float64) for g in (site_map.gates if site_map else ())}
        self._latches: dict[tuple, _Latch] = {}
        self._since: dict[tuple, float] = {}   # (rule id, object) -> when its timed condition (inside, stopped) began
        self._command = _CommandState()
        self._last_stamp: float | None = None
        self._next_id = 1
        site_wide = any(r.place == "" or r.kind in (RuleKind.WRONG_WAY, RuleKind.BLOCKED_EXIT) for r in config.rules)
        zoned = {r.place for r in config.rules if r.kind in (RuleKind.RESTRICTED_ZONE, RuleKind.DWELL,
                                                              RuleKind.SPEED_LIMIT) and r.place}
        self.watched_zones = sorted(set(self._zones) if site_wide else zoned)

    def reset(self) -> None:
        """Forget every latch and timer (time jumped backwards: a bag loop)."""
        self._latches.clear()
        self._since.clear()
        self._command = _CommandState()
        self._last_stamp = None

    # -- rules -------------------------------------------------------------------------------
    def _members(self, objects, classes) -> list[ObjectState]:
        return [o for o in objects if not classes or o.class_name in classes]

    def _timed(self, rule: Rule, gid: int, now: float, condition: bool) -> float:
        key = (rule.id, gid)
        if not condition:
            self._since.pop(key, None)
            return -1.0
        return now - self._since.setdefault(key, now)

    def _zone_subjects(self, rule: Rule, objects, now: float) -> list[_Subject]:
        members = self._members(objects, rule.classes)
        polygon = self._zones[rule.place]
        inside = points_in_polygon(np.array([o.xy for o in members]).reshape(-1, 2), polygon) if members else []
        out = []
        for obj, is_in in zip(members, inside):
            duration = self._timed(rule, obj.global_id, now, bool(is_in))
            if rule.kind == RuleKind.RESTRICTED_ZONE:
                text = f"{obj.class_name} {obj.global_id} is in zone {rule.place}, closed to " \
                       f"{'/'.join(rule.classes)}, for {max(duration, 0):.1f} s"
                out.append(_Subject((obj.global_id,), (obj.global_id,), rule.place, max(duration, 0.0), bool(is_in),
                                    bool(is_in), text, 1.0 if is_in else 0.0))
            else:
                text = f"{obj.class_name} {obj.global_id} has been in zone {rule.place} for {max(duration, 0):.0f} s " \
                       f"(allowed {rule.threshold:.0f} s)"
                out.append(_Subject((obj.global_id,), (obj.global_id,), rule.place, max(duration, 0.0),
                                    duration > rule.threshold, duration > rule.release, text, duration))
        return out

    def _speed_subjects(self, rule: Rule, objects) -> list[_Subject]:
        members = self._members(objects, rule.classes)
        if rule.place and members:
            inside = points_in_polygon(np.array([o.xy for o in members]), self._zones[rule.place])
            members = [o for o, i in zip(members, inside) if i]
        out = []
        for obj in members:
            where = f" in zone {rule.place}" if rule.place else ""
            text = f"{obj.class_name} {obj.global_id} at {obj.speed:.1f} m/s{where} (limit {rule.threshold:.1f} m/s)"
            out.append(_Subject((obj.global_id,), (obj.global_id,), rule.place, obj.speed, obj.speed > rule.threshold,
                                obj.speed > rule.release, text, obj.speed / rule.threshold))
        return out

    def _wrong_way_subjects(self, rule: Rule, objects) -> list[_Subject]:
        out = []
        for obj in self._members(objects, rule.classes):
            if not obj.lane or self._lanes.get(obj.lane, "both") == "both" or (rule.place and obj.lane != rule.place):
                continue
            against = obj.against_lane
            text = f"{obj.class_name} {obj.global_id} drives against one-way lane {obj.lane} at {obj.speed:.1f} m/s"
            out.append(_Subject((obj.global_id,), (obj.global_id,), obj.lane, obj.speed if against else 0.0,
                                against and obj.speed >= rule.threshold, against and obj.speed >= rule.release,
                                text, obj.speed if against else 0.0))
        return out

    def _blocked_exit_subjects(self, rule: Rule, objects, now: float) -> list[_Subject]:
        a, b = self._gates[rule.place]
        ab = b - a
        out = []
        for obj in self._members(objects, rule.classes):
            p = np.asarray(obj.xy)
            u = float(np.clip((p - a) @ ab / max(float(ab @ ab), 1e-12), 0, 1))
            near = float(np.linalg.norm(a + u * ab - p)) <= rule.radius_m
            duration = self._timed(rule, obj.global_id, now, near and obj.speed < rule.stopped_speed_mps)
            if duration < 0:
                continue
            text = f"{obj.class_name} {obj.global_id} has stood at exit {rule.place} for {duration:.0f} s " \
                   f"(allowed {rule.threshold:.0f} s)"
            out.append(_Subject((obj.global_id,), (obj.global_id,), rule.place, duration, duration > rule.threshold,
                                duration > rule.release, text, duration))
        return out

    def _pairs(self, rule: Rule, objects):
        group_a = self._members(objects, rule.classes)
        group_b = self._members(objects, rule.classes_b)
        return [(a, b) for a in group_a for b in group_b if a.global_id != b.global_id
                and not (a.global_id > b.global_id and a.class_name in rule.classes_b and b.class_name in rule.classes)]

    def _separation_subjects(self, rule: Rule, objects) -> list[_Subject]:
        out = []
        for a, b in self._pairs(rule, objects):
            if max(a.speed, b.speed) < rule.min_speed_mps:
                continue
            coarse = math.dist(a.xy, b.xy) - 0.5 * (a.length + b.length) - 0.5 * (a.width + b.width)
            if coarse > rule.release:
                continue
            gap = max(point_to_footprint(a.xy, b.xy, b.heading, b.length, b.width) - 0.5 * a.width, 0.0)
            text = f"{a.class_name} {a.global_id} is {gap:.1f} m from {b.class_name} {b.global_id} " \
                   f"(keep {rule.threshold:.1f} m)"
            out.append(_Subject((a.global_id, b.global_id), (a.global_id, b.global_id), "", gap, gap < rule.threshold,
                                gap < rule.release, text, -gap))
        return out

    def _ttc_subjects(self, rule: Rule, objects) -> list[_Subject]:
        pairs = self._pairs(rule, objects)
        if not pairs:
            return []
        pa = np.array([a.xy for a, _ in pairs])
        pb = np.array([b.xy for _, b in pairs])
        dv = np.array([b.velocity for _, b in pairs]) - np.array([a.velocity for a, _ in pairs])
        dp = pb - pa
        # A cheap bound first: a pair whose closest approach within the horizon is beyond reach cannot fire.
        speed2 = np.einsum("ij,ij->i", dv, dv)
        t_star = np.clip(-np.einsum("ij,ij->i", dp, dv) / np.maximum(speed2, 1e-12), 0.0, rule.horizon_s)
        miss = np.linalg.norm(dp + dv * t_star[:, None], axis=1)
        reach = np.array([footprint_radius(a.length, a.width) + footprint_radius(b.length, b.width)
                          for a, b in pairs]) + rule.margin_m
        out = []
        for index in np.flatnonzero(miss <= reach + 3.0):
            a, b = pairs[index]
            approach = closest_approach(a.xy, a.velocity, a.position_cov, a.velocity_cov, b.xy, b.velocity,
                                        b.position_cov, b.velocity_cov, float(reach[index]), rule.horizon_s)
            ttc = approach.time_to_collision_s
            closing = approach.closing_speed_mps >= rule.min_closing_speed_mps
            confident = approach.contact_probability >= rule.min_probability
            trigger = closing and confident and ttc <= rule.threshold
            holding = ttc <= rule.release and approach.contact_probability >= 0.5 * rule.min_probability
            text = f"{a.class_name} {a.global_id} and {b.class_name} {b.global_id}: time to collision " \
                   f"{_fmt(ttc, 's')} (alert at {rule.threshold:.1f} s), closest approach " \
                   f"{approach.distance_m:.1f} m in {approach.time_s:.1f} s, contact probability " \
                   f"{approach.contact_probability:.2f}"
            out.append(_Subject((a.global_id, b.global_id), (a.global_id, b.global_id), "", ttc, trigger, holding,
                                text, -ttc if math.isfinite(ttc) else -1e9 + approach.contact_probability))
        return out

    def _subjects(self, rule: Rule, objects, now: float) -> list[_Subject]:
        if rule.kind in (RuleKind.RESTRICTED_ZONE, RuleKind.DWELL):
            return self._zone_subjects(rule, objects, now)
        if rule.kind == RuleKind.SPEED_LIMIT:
            return self._speed_subjects(rule, objects)
        if rule.kind == RuleKind.SEPARATION:
            return self._separation_subjects(rule, objects)
        if rule.kind == RuleKind.TIME_TO_COLLISION:
            return self._ttc_subjects(rule, objects)
        if rule.kind == RuleKind.WRONG_WAY:
            return self._wrong_way_subjects(rule, objects)
        return self._blocked_exit_subjects(rule, objects, now)

    # -- latches -----------------------------------------------------------------------------
    def _step(self, rule: Rule, subject: _Subject, now: float) -> tuple[EvaluationState, float]:
        latch = self._latches.setdefault((rule.id, subject.key), _Latch())
        latch.seen = now
        if subject.trigger:
            latch.since = now if latch.since is None else latch.since
        elif not latch.active:
            latch.since = None
        if not latch.active:
            if subject.trigger and now - latch.since >= rule.min_dwell_s:
                latch.active, latch.released_at = True, None
            else:
                return (EvaluationState.PENDING if subject.trigger else EvaluationState.INACTIVE,
                        now - latch.since if latch.since is not None else 0.0)
        if subject.trigger or subject.holding:
            latch.released_at = None
            return EvaluationState.ACTIVE, now - (latch.since if latch.since is not None else now)
        latch.released_at = now if latch.released_at is None else latch.released_at
        if now - latch.released_at >= rule.hold_s:
            latch.active, latch.since, latch.released_at = False, None, None
            return EvaluationState.INACTIVE, 0.0
        return EvaluationState.HOLDING, 0.0

    def _evaluate(self, rule: Rule, objects, now: float) -> list[Evaluation]:
        subjects = self._subjects(rule, objects, now)
        present = {s.key for s in subjects}
        # A subject that vanished (object gone, pair apart) releases like one whose condition cleared.
        for (rule_id, key), latch in list(self._latches.items()):
            if rule_id == rule.id and key not in present:
                if latch.active:
                    subjects.append(_Subject(key, key, rule.place, math.nan, False, False,
                                             f"objects {list(key)} no longer evaluated (gone or apart)"))
                else:
                    del self._latches[(rule_id, key)]
        evaluations, nearest = [], None
        for subject in subjects:
            state, since = self._step(rule, subject, now)
            evaluation = Evaluation(rule, state, tuple(int(i) for i in subject.object_ids), subject.place,
                                    subject.measured, since, subject.text)
            if state != EvaluationState.INACTIVE:
                evaluations.append(evaluation)
            elif nearest is None or subject.closeness > nearest[0]:
                nearest = (subject.closeness, evaluation)
            if state == EvaluationState.INACTIVE and not subject.trigger and (rule.id, subject.key) in self._latches \
                    and not self._latches[(rule.id, subject.key)].active:
                del self._latches[(rule.id, subject.key)]
        if not evaluations:
            evaluations.append(nearest[1] if nearest else Evaluation(
                rule, EvaluationState.INACTIVE, (), rule.place, math.nan, 0.0, "no object this rule applies to"))
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
                silent = sorted(set(self.coverage.cameras) - set(inputs.live_cameras))
                reasons.append("camera coverage lost (" + ", ".join(silent) + " silent) over " + ", ".join(
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
        present = {o.global_id for o in objects}
        for key in [k for k in self._since if k[1] not in present]:
            del self._since[key]
        fail_reason = self._fail_safe_reason(inputs)
        evaluations: list[Evaluation] = []
        if not inputs.stale:
            for rule in self.config.rules:
                evaluations.extend(self._evaluate(rule, objects, stamp))
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
                                fail_reason, min(ttcs) if ttcs else None, len(objects), command, command_reason)
        self._next_id += 1
        assessment.explanation = explain(assessment, self.config)
        return assessment

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
