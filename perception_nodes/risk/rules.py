"""Risk rules as a site describes them (pure Python): the ``risk:`` section of a site manifest.

Each rule has an id, a kind, a severity, its thresholds, a release threshold
(hysteresis), a minimum dwell before it fires and a hold time before it
clears. :func:`parse_risk_config` checks a whole section against the site's map
(zones, lanes and gates must exist) and raises :class:`RiskConfigError` listing
every problem, each with its key and the fix. The schema is in
:data:`RISK_SCHEMA_HELP` and the README ("Risk").
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from enum import Enum, IntEnum

from perception_nodes.errors import ConfigError
from perception_nodes.taxonomy import SITE_CLASS_NAMES


class RiskConfigError(ConfigError):
    """The risk section of a site manifest is invalid; ``problems`` lists each one."""

    def __init__(self, where: str, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{where}: {len(self.problems)} problem(s) in the risk rules:\n{lines}")


class RiskLevel(IntEnum):
    """Mirrors RiskAssessment.LEVEL_*; 0 is unknown, never clear."""

    UNKNOWN = 0
    CLEAR = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5


class Command(IntEnum):
    """Mirrors ActuationCommand.COMMAND_*; 0 is no command, never continue."""

    NONE = 0
    CONTINUE = 1
    ALERT = 2
    SLOW_DOWN = 3
    STOP = 4
    EMERGENCY_STOP = 5


class RuleKind(str, Enum):
    RESTRICTED_ZONE = "restricted_zone"      # an object of a listed class inside a zone
    SPEED_LIMIT = "speed_limit"              # faster than a limit (in a zone, or anywhere)
    SEPARATION = "separation"                # two objects (class groups a and b) closer than a distance
    TIME_TO_COLLISION = "time_to_collision"  # a confident closing pair with TTC below a threshold
    WRONG_WAY = "wrong_way"                  # moving against a one-way lane
    DWELL = "dwell"                          # in a zone longer than allowed (loitering)
    BLOCKED_EXIT = "blocked_exit"            # stopped next to an exit gate longer than allowed


UNITS = {RuleKind.RESTRICTED_ZONE: "s", RuleKind.SPEED_LIMIT: "m/s", RuleKind.SEPARATION: "m",
         RuleKind.TIME_TO_COLLISION: "s", RuleKind.WRONG_WAY: "m/s", RuleKind.DWELL: "s",
         RuleKind.BLOCKED_EXIT: "s"}

VEHICLES = ("car", "truck")
_SEVERITIES = {level.name.lower(): level for level in (RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH,
                                                        RiskLevel.CRITICAL)}
_COMMANDS = {c.name.lower(): c for c in Command if c != Command.NONE}


@dataclass(frozen=True)
class Rule:
    """One rule. ``threshold`` is the trigger; ``release`` the value the measure must pass back over to release.

    Thresholds by kind: restricted_zone and dwell: seconds inside (restricted_zone: its min dwell), speed_limit
    and wrong_way: m/s, separation: metres between footprints, time_to_collision: seconds, blocked_exit: seconds
    stopped next to the gate.
    """

    id: str
    kind: RuleKind
    severity: RiskLevel
    threshold: float
    release: float
    min_dwell_s: float = 0.0
    hold_s: float = 1.0
    classes: tuple[str, ...] = ()          # subjects (kinds with one object); empty: every class
    classes_b: tuple[str, ...] = ()        # second member of a pair (separation, time_to_collision)
    place: str = ""                        # zone, gate, or empty (site-wide); wrong_way: a lane or empty (all)
    # time_to_collision only
    horizon_s: float = 6.0                 # look-ahead of the constant-velocity prediction
    margin_m: float = 0.5                  # added to the footprints' radii: what counts as contact
    min_probability: float = 0.5           # a pair counts only this sure of contact at closest approach
    min_closing_speed_mps: float = 0.3
    min_speed_b_mps: float = 0.0           # the pair counts only while its second member (the vehicle) moves this fast
    closing_z: float = 2.0                 # closing counts when this many standard deviations above zero
    accel_sigma_mps2: float = 0.0          # relative acceleration the prediction ignores (widens the contact doubt)
    # separation: a pair counts only while its second member (the vehicle) moves at least this fast (people walk
    # past parked cars)
    min_speed_mps: float = 0.5
    # blocked_exit
    radius_m: float = 3.0
    stopped_speed_mps: float = 0.5
    # An object no detection confirms now (coasting on its prediction: occluded, missed, or gone; or no detection
    # for ``RiskConfig.unconfirmed_after_s``) may keep an alert going but not start one unless this is set.
    coasting_triggers: bool = False

    @property
    def unit(self) -> str:
        return UNITS[self.kind]

    @property
    def higher_is_worse(self) -> bool:
        """Whether the measure exceeding the threshold is the hazard (speed, dwell) or falling below it (distance,
        TTC)."""
        return self.kind not in (RuleKind.SEPARATION, RuleKind.TIME_TO_COLLISION)


DEFAULT_ACTIONS = {RiskLevel.CLEAR: Command.CONTINUE, RiskLevel.LOW: Command.ALERT,
                   RiskLevel.MEDIUM: Command.SLOW_DOWN, RiskLevel.HIGH: Command.STOP,
                   RiskLevel.CRITICAL: Command.EMERGENCY_STOP}


@dataclass(frozen=True)
class RiskConfig:
    rules: tuple[Rule, ...] = ()
    actions: dict = field(default_factory=lambda: dict(DEFAULT_ACTIONS))  # RiskLevel -> Command
    target: str = "site"                       # what the command addresses (a gate, a vehicle)
    fail_safe_level: RiskLevel = RiskLevel.HIGH
    fail_safe_command: Command = Command.STOP
    command_release_s: float = 1.0             # a lower command must hold this long before it replaces a higher
    min_coverage_share: float = 0.8            # a zone keeps coverage while live cameras see this share of
    #                                            what all cameras see of it (a fifth of it blind is too much)
    # An object whose newest detection is older than this (or than twice the interval at which detections of it
    # usually come, when that is longer: slow cameras) counts as unconfirmed, as a coasting one: the localizer
    # keeps predicting a person for a moment after they got into a car. Set on the safety suite's tuning runs.
    unconfirmed_after_s: float = 0.3

    @property
    def version(self) -> str:
        """sha256 prefix of the rule set: the same rules give the same version in every process."""
        body = json.dumps({"rules": [_rule_dict(r) for r in self.rules],
                           "actions": {int(k): int(v) for k, v in sorted(self.actions.items())},
                           "target": self.target, "fail_safe": [int(self.fail_safe_level), int(self.fail_safe_command)],
                           "release": self.command_release_s, "coverage": self.min_coverage_share,
                           "unconfirmed": self.unconfirmed_after_s}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:12]

    def command_for(self, level: RiskLevel) -> Command:
        return self.actions.get(level, Command.NONE)


def _rule_dict(rule: Rule) -> dict:
    out = asdict(rule)
    out["kind"], out["severity"] = rule.kind.value, int(rule.severity)
    return out


RISK_SCHEMA_HELP = """\
risk:
  target: gate_1                   # what the commands address (default: site)
  fail_safe: {level: high, command: stop}   # issued when inputs are stale, uncovered or unhealthy
  actions: {clear: continue, low: alert, medium: slow_down, high: stop, critical: emergency_stop}
  command_release_s: 1.0           # a lower command must hold this long before it replaces a higher one
  min_coverage_share: 0.8          # zone coverage lost when live cameras see less than this share of what all see
  unconfirmed_after_s: 0.3         # no detection for this long (or 2 of its usual intervals): may not start an alert
  rules:                           # common keys: id, kind, severity (low|medium|high|critical),
                                   # min_dwell_s, hold_s, classes [car, truck, person, bicycle, other]
    - {id: no_people_on_driveway, kind: restricted_zone, zone: ZONE, classes: [person], min_dwell_s: 0.5}
    - {id: lot_speed, kind: speed_limit, zone: ZONE, limit_mps: 4.0, release_mps: 3.5}   # zone optional
    - {id: keep_apart, kind: separation, classes: [person], classes_b: [car, truck], distance_m: 1.5, release_m: 2.5,
       min_speed_mps: 0.5}          # the pair counts while the vehicle (classes_b) moves at least this fast
    - {id: ttc, kind: time_to_collision, classes: [person], classes_b: [car, truck], ttc_s: 3.0,
       release_ratio: 1.5, horizon_s: 6.0, margin_m: 0.5, min_probability: 0.5,
       min_speed_b_mps: 0.3}        # a person walking up to a parked car is not a collision course
    - {id: wrong_way, kind: wrong_way, lane: LANE, min_speed_mps: 1.0, min_dwell_s: 1.0}   # lane optional
    - {id: loitering, kind: dwell, zone: ZONE, classes: [person], max_dwell_s: 120}
    - {id: exit_blocked, kind: blocked_exit, gate: GATE, radius_m: 3.0, max_stopped_s: 30}
"""

# kind -> (trigger key, release key or None, default release as a function of the trigger)
_THRESHOLD_KEYS = {
    RuleKind.RESTRICTED_ZONE: ("min_dwell_s", None, lambda t: t),
    RuleKind.SPEED_LIMIT: ("limit_mps", "release_mps", lambda t: 0.9 * t),
    RuleKind.SEPARATION: ("distance_m", "release_m", lambda t: 1.5 * t),
    RuleKind.TIME_TO_COLLISION: ("ttc_s", None, lambda t: 1.5 * t),  # release_ratio, as openPASS's AEB
    RuleKind.WRONG_WAY: ("min_speed_mps", "release_mps", lambda t: 0.5 * t),
    RuleKind.DWELL: ("max_dwell_s", None, lambda t: t),
    RuleKind.BLOCKED_EXIT: ("max_stopped_s", None, lambda t: t),
}
_COMMON = {"id", "kind", "severity", "min_dwell_s", "hold_s", "classes", "coasting_triggers"}
_EXTRA = {
    RuleKind.RESTRICTED_ZONE: {"zone"},
    RuleKind.SPEED_LIMIT: {"zone", "limit_mps", "release_mps"},
    RuleKind.SEPARATION: {"classes_b", "distance_m", "release_m", "min_speed_mps"},
    RuleKind.TIME_TO_COLLISION: {"classes_b", "ttc_s", "release_ratio", "horizon_s", "margin_m", "min_probability",
                                 "min_closing_speed_mps", "min_speed_b_mps", "closing_z", "accel_sigma_mps2"},
    RuleKind.WRONG_WAY: {"lane", "min_speed_mps", "release_mps"},
    RuleKind.DWELL: {"zone", "max_dwell_s"},
    RuleKind.BLOCKED_EXIT: {"gate", "max_stopped_s", "radius_m", "stopped_speed_mps"},
}
_DEFAULT_SEVERITY = {RuleKind.RESTRICTED_ZONE: RiskLevel.HIGH, RuleKind.SPEED_LIMIT: RiskLevel.MEDIUM,
                     RuleKind.SEPARATION: RiskLevel.HIGH, RuleKind.TIME_TO_COLLISION: RiskLevel.CRITICAL,
                     RuleKind.WRONG_WAY: RiskLevel.MEDIUM, RuleKind.DWELL: RiskLevel.LOW,
                     RuleKind.BLOCKED_EXIT: RiskLevel.MEDIUM}


def _number(value, key: str, problems: list[str], minimum: float = 0.0, maximum: float = 1e6,
            positive: bool = False) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        problems.append(f"{key}: {value!r} is not a number")
        return None
    if value < minimum or value > maximum or (positive and value <= 0):
        problems.append(f"{key}: {value} is outside {'(' if positive else '['}{minimum}, {maximum}]")
        return None
    return float(value)


def _classes(value, key: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{key}: give a list of class names from {list(SITE_CLASS_NAMES)}")
        return ()
    unknown = [v for v in value if v not in SITE_CLASS_NAMES]
    if unknown:
        problems.append(f"{key}: unknown class(es) {unknown}; site classes are {list(SITE_CLASS_NAMES)}")
    return tuple(v for v in value if v in SITE_CLASS_NAMES)


def _rule(data, index: int, site_map, problems: list[str], seen: set[str]) -> Rule | None:
    where = f"risk.rules[{index}]"
    if not isinstance(data, dict):
        problems.append(f"{where}: give a mapping with at least id and kind")
        return None
    rule_id = data.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        problems.append(f"{where}.id: give each rule a non-empty id")
        return None
    where = f"risk.rules[{index}] ({rule_id})"
    if rule_id in seen:
        problems.append(f"{where}.id: duplicate rule id")
    seen.add(rule_id)
    try:
        kind = RuleKind(data.get("kind"))
    except ValueError:
        problems.append(f"{where}.kind: {data.get('kind')!r} is not one of {[k.value for k in RuleKind]}")
        return None
    unknown = sorted(set(data) - _COMMON - _EXTRA[kind])
    if unknown:
        problems.append(f"{where}: unknown key(s) {unknown} for kind {kind.value}; allowed: "
                        f"{sorted(_COMMON | _EXTRA[kind])}")
    before = len(problems)
    severity = _DEFAULT_SEVERITY[kind]
    if "severity" in data:
        severity = _SEVERITIES.get(str(data["severity"]).lower())
        if severity is None:
            problems.append(f"{where}.severity: {data['severity']!r} is not one of {list(_SEVERITIES)}")
    trigger_key, release_key, default_release = _THRESHOLD_KEYS[kind]
    trigger = data.get(trigger_key, {RuleKind.RESTRICTED_ZONE: 0.0, RuleKind.WRONG_WAY: 1.0}.get(kind))
    if trigger is None:
        problems.append(f"{where}.{trigger_key}: required for kind {kind.value}")
        return None
    trigger = _number(trigger, f"{where}.{trigger_key}", problems,
                      positive=kind not in (RuleKind.RESTRICTED_ZONE, RuleKind.WRONG_WAY))
    kwargs: dict = {}
    release = None
    if trigger is not None:
        release = default_release(trigger)
        if kind == RuleKind.TIME_TO_COLLISION and "release_ratio" in data:
            ratio = _number(data["release_ratio"], f"{where}.release_ratio", problems, minimum=1.0, maximum=10.0)
            release = trigger * ratio if ratio is not None else release
        if release_key and release_key in data:
            release = _number(data[release_key], f"{where}.{release_key}", problems)
            if release is not None:
                worse_high = kind not in (RuleKind.SEPARATION,)
                if (worse_high and release > trigger) or (not worse_high and release < trigger):
                    problems.append(f"{where}.{release_key}: {release} must be on the safe side of "
                                    f"{trigger_key} {trigger} ({'<=' if worse_high else '>='})")
    for key in ("min_dwell_s", "hold_s", "horizon_s", "margin_m", "radius_m", "stopped_speed_mps",
                "min_closing_speed_mps", "min_speed_mps", "min_speed_b_mps", "closing_z", "accel_sigma_mps2"):
        if key in data:
            value = _number(data[key], f"{where}.{key}", problems, maximum=3600.0,
                            positive=key in ("horizon_s", "radius_m"))
            if value is not None:
                kwargs[key] = value
    if "coasting_triggers" in data:
        if isinstance(data["coasting_triggers"], bool):
            kwargs["coasting_triggers"] = data["coasting_triggers"]
        else:
            problems.append(f"{where}.coasting_triggers: {data['coasting_triggers']!r} is not true or false")
    if "min_probability" in data:
        value = _number(data["min_probability"], f"{where}.min_probability", problems, maximum=1.0, positive=True)
        if value is not None:
            kwargs["min_probability"] = value
    if kind == RuleKind.RESTRICTED_ZONE:
        kwargs["min_dwell_s"] = trigger if trigger is not None else 0.0
    classes = _classes(data.get("classes"), f"{where}.classes", problems)
    if kind in (RuleKind.SEPARATION, RuleKind.TIME_TO_COLLISION):
        classes_b = _classes(data.get("classes_b", list(VEHICLES)), f"{where}.classes_b", problems)
        kwargs["classes_b"] = classes_b
        classes = classes or ("person",)
    if kind in (RuleKind.WRONG_WAY, RuleKind.BLOCKED_EXIT) and not classes:
        classes = VEHICLES
    if kind == RuleKind.RESTRICTED_ZONE and not classes:
        problems.append(f"{where}.classes: say which classes the zone is closed to")
    place = ""
    zones = {z.name for z in site_map.zones} if site_map is not None else set()
    lanes = {ln.name: ln for ln in site_map.lanes} if site_map is not None else {}
    gates = {g.name for g in site_map.gates} if site_map is not None else set()
    if kind in (RuleKind.RESTRICTED_ZONE, RuleKind.DWELL, RuleKind.SPEED_LIMIT):
        place = data.get("zone", "")
        if (place or kind != RuleKind.SPEED_LIMIT) and place not in zones:
            problems.append(f"{where}.zone: {place!r} is not a zone of the site map (zones: {sorted(zones)})")
    elif kind == RuleKind.WRONG_WAY:
        place = data.get("lane", "")
        if place and place not in lanes:
            problems.append(f"{where}.lane: {place!r} is not a lane of the site map (lanes: {sorted(lanes)})")
        elif place and lanes[place].direction.value == "both":
            problems.append(f"{where}.lane: lane {place!r} is two-way (direction: both); wrong way needs a "
                            f"one-way lane")
        elif not place and not any(ln.direction.value != "both" for ln in lanes.values()):
            problems.append(f"{where}: the site map has no one-way lane (set a lane's direction to forward or "
                            f"backward)")
    elif kind == RuleKind.BLOCKED_EXIT:
        place = data.get("gate", "")
        if place not in gates:
            problems.append(f"{where}.gate: {place!r} is not a gate of the site map (gates: {sorted(gates)})")
    if len(problems) > before or trigger is None or severity is None:
        return None
    return Rule(id=rule_id, kind=kind, severity=severity, threshold=trigger, release=release, classes=classes,
                place=place, **kwargs)


def parse_risk_config(data, site_map, where: str = "site manifest") -> RiskConfig:
    """A :class:`RiskConfig` from a manifest's ``risk`` mapping (None: no rules), checked against ``site_map``."""
    if data is None:
        return RiskConfig()
    problems: list[str] = []
    if not isinstance(data, dict):
        raise RiskConfigError(where, ["risk: give a mapping (see the README, 'Risk')"])
    allowed = {"target", "fail_safe", "actions", "command_release_s", "min_coverage_share", "unconfirmed_after_s",
               "rules"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        problems.append(f"risk: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    kwargs: dict = {}
    if "target" in data:
        if not isinstance(data["target"], str) or not data["target"]:
            problems.append("risk.target: give a non-empty name")
        else:
            kwargs["target"] = data["target"]
    fail_safe = data.get("fail_safe", {}) or {}
    if not isinstance(fail_safe, dict):
        problems.append("risk.fail_safe: give {level: ..., command: ...}")
        fail_safe = {}
    if "level" in fail_safe:
        level = _SEVERITIES.get(str(fail_safe["level"]).lower())
        if level is None:
            problems.append(f"risk.fail_safe.level: {fail_safe['level']!r} is not one of {list(_SEVERITIES)}")
        else:
            kwargs["fail_safe_level"] = level
    if "command" in fail_safe:
        command = _COMMANDS.get(str(fail_safe["command"]).lower())
        if command is None or command == Command.CONTINUE:
            problems.append(f"risk.fail_safe.command: {fail_safe['command']!r} must be one of "
                            f"{[c for c in _COMMANDS if c != 'continue']}")
        else:
            kwargs["fail_safe_command"] = command
    if "actions" in data:
        actions = dict(DEFAULT_ACTIONS)
        if not isinstance(data["actions"], dict):
            problems.append("risk.actions: give {level: command}")
        else:
            levels = {"clear": RiskLevel.CLEAR, **_SEVERITIES}
            for level_name, command_name in data["actions"].items():
                level, command = levels.get(str(level_name).lower()), _COMMANDS.get(str(command_name).lower())
                if level is None or command is None:
                    problems.append(f"risk.actions.{level_name}: levels {list(levels)}, commands {list(_COMMANDS)}")
                else:
                    actions[level] = command
        kwargs["actions"] = actions
    for key, maximum in (("command_release_s", 600.0), ("min_coverage_share", 1.0), ("unconfirmed_after_s", 60.0)):
        if key in data:
            value = _number(data[key], f"risk.{key}", problems, maximum=maximum)
            if value is not None:
                kwargs[key] = value
    rules_data = data.get("rules", [])
    rules = []
    if not isinstance(rules_data, list):
        problems.append("risk.rules: give a list of rules")
        rules_data = []
    seen: set[str] = set()
    for index, item in enumerate(rules_data):
        rule = _rule(item, index, site_map, problems, seen)
        if rule is not None:
            rules.append(rule)
    if problems:
        raise RiskConfigError(where, problems)
    return RiskConfig(rules=tuple(rules), **kwargs)


def suggested_rules(map_data: dict) -> dict:
    """A starting ``risk`` section for a site map in manifest layout (``{"zones": [...], "lanes": [...], "gates":
    [...]}``): collision and separation rules between people and vehicles, a speed limit over the largest parking
    zone, vehicles kept off walkways, restricted zones closed to everyone, wrong way on one-way lanes, blocked
    exits. A site reviews and tunes it; ``perception site from-scene`` writes it for synthetic scenes."""
    zones = map_data.get("zones") or []
    everyone = ["person", "bicycle", "car", "truck"]
    rules: list[dict] = [
        # Dwell times, the vehicle-vehicle threshold, its margin and certainty and the people rule's vehicle speed
        # were set on the safety suite's tuning seeds (nominal_lot 7 and 8, the scenario suite as a constraint):
        # shorter dwells alerted on single-frame velocity noise; 2 s between vehicles on every queue; a car pulling
        # into the stall beside a parked one is a few decimetres from contact, within the position error (contact
        # means bodies touching, and it must be 90 % sure); people walk beside vehicles creeping under 1 m/s.
        {"id": "person_vehicle_ttc", "kind": "time_to_collision", "classes": ["person", "bicycle"],
         "classes_b": list(VEHICLES), "ttc_s": 3.0, "release_ratio": 1.5, "min_speed_b_mps": 1.0, "min_dwell_s": 0.2,
         "hold_s": 1.0, "severity": "critical"},
        {"id": "vehicle_vehicle_ttc", "kind": "time_to_collision", "classes": list(VEHICLES),
         "classes_b": list(VEHICLES), "ttc_s": 1.5, "release_ratio": 1.5, "margin_m": 0.0, "min_probability": 0.9,
         "min_dwell_s": 0.5, "hold_s": 1.0, "severity": "high"},
        {"id": "person_vehicle_separation", "kind": "separation", "classes": ["person", "bicycle"],
         "classes_b": list(VEHICLES), "distance_m": 1.0, "release_m": 1.5, "min_speed_mps": 1.0,
         "min_dwell_s": 0.6, "hold_s": 1.0, "severity": "high"},
    ]
    parking = [z for z in zones if z.get("kind") == "parking"]
    if parking:
        def area(z):
            pts = z["polygon"]
            return abs(sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(pts, pts[1:] + pts[:1]))) / 2
        largest = max(parking, key=area)
        rules.append({"id": f"speed_limit_{largest['name']}", "kind": "speed_limit", "zone": largest["name"],
                      "classes": list(VEHICLES), "limit_mps": 6.0, "release_mps": 5.0, "min_dwell_s": 1.0,
                      "hold_s": 1.0, "severity": "medium"})
    for zone in zones:
        if zone.get("kind") == "walkway":
            rules.append({"id": f"no_vehicles_on_{zone['name']}", "kind": "restricted_zone", "zone": zone["name"],
                          "classes": list(VEHICLES), "min_dwell_s": 2.0, "hold_s": 1.0, "severity": "medium"})
        elif zone.get("kind") == "restricted":
            rules.append({"id": f"keep_out_of_{zone['name']}", "kind": "restricted_zone", "zone": zone["name"],
                          "classes": everyone, "min_dwell_s": 0.5, "hold_s": 1.0, "severity": "high"})
    if any(lane.get("direction", "both") != "both" for lane in map_data.get("lanes") or []):
        rules.append({"id": "wrong_way", "kind": "wrong_way", "classes": list(VEHICLES), "min_speed_mps": 1.0,
                      "min_dwell_s": 1.0, "hold_s": 1.0, "severity": "medium"})
    for gate in map_data.get("gates") or []:
        if gate.get("kind") in ("exit", "both"):
            rules.append({"id": f"blocked_{gate['name']}", "kind": "blocked_exit", "gate": gate["name"],
                          "max_stopped_s": 30.0, "radius_m": 3.0, "hold_s": 1.0, "severity": "low"})
    return {"target": "site", "fail_safe": {"level": "high", "command": "stop"}, "rules": rules}


def naive_rules(section: dict) -> dict:
    """The same rules without what makes them robust to perception noise: no hysteresis (release = trigger), no
    minimum dwell or hold, time to collision from point estimates (any contact probability, no closing-speed
    significance), coasting objects start alerts. The safety suite's baseline."""
    out = dict(section or {})
    rules = []
    for rule in (section or {}).get("rules", []):
        rule = dict(rule)
        kind = rule.get("kind")
        trigger_key, release_key, _ = _THRESHOLD_KEYS[RuleKind(kind)]
        if release_key:
            rule.pop(release_key, None)
            if trigger_key in rule:
                rule[release_key] = rule[trigger_key]
        if kind == RuleKind.TIME_TO_COLLISION.value:
            rule.update(release_ratio=1.0, min_probability=1e-6, closing_z=0.0)
        if kind != RuleKind.RESTRICTED_ZONE.value:
            rule["min_dwell_s"] = 0.0
        rule["hold_s"] = 0.0
        rule["coasting_triggers"] = True
        rules.append(rule)
    out["rules"] = rules
    out["command_release_s"] = 0.0
    return out
