"""Risk core: rules from the manifest, each rule kind firing and releasing (dwell, hysteresis, hold), time to
collision under covariance, fail-safe, command debouncing, determinism (plain pytest, no ROS)."""
import math

import numpy as np
import pytest

from perception_nodes.risk import (Command, CoverageModel, EvaluationState, InputStatus, ObjectState, RiskConfig,
                                   RiskConfigError, RiskEngine, RiskLevel, parse_risk_config)
from perception_nodes.risk.kinematics import closest_approach
from perception_nodes.site.manifest import Gate, GateKind, Lane, LaneDirection, SemanticMap, Zone, ZoneKind

SITE = SemanticMap(
    zones=(Zone("lot", ZoneKind.PARKING, ((-30, -20), (30, -20), (30, 20), (-30, 20))),
           Zone("loading", ZoneKind.RESTRICTED, ((10, 10), (20, 10), (20, 20), (10, 20)))),
    lanes=(Lane("one_way", ((-20, 0), (20, 0)), LaneDirection.FORWARD), Lane("two_way", ((-20, 5), (20, 5)))),
    gates=(Gate("exit0", GateKind.EXIT, ((25, -2), (25, 2))),),
)
RULES = {
    "target": "gate_1",
    "rules": [
        {"id": "no_people_loading", "kind": "restricted_zone", "zone": "loading", "classes": ["person"],
         "min_dwell_s": 0.5, "hold_s": 1.0, "severity": "high"},
        {"id": "lot_speed", "kind": "speed_limit", "zone": "lot", "classes": ["car"], "limit_mps": 4.0,
         "release_mps": 3.0, "min_dwell_s": 0.2, "hold_s": 0.0},
        {"id": "keep_apart", "kind": "separation", "distance_m": 1.0, "release_m": 2.0, "hold_s": 0.0},
        {"id": "ttc", "kind": "time_to_collision", "ttc_s": 3.0, "hold_s": 0.5},
        {"id": "wrong_way", "kind": "wrong_way", "min_dwell_s": 0.5, "hold_s": 0.0},
        {"id": "exit_blocked", "kind": "blocked_exit", "gate": "exit0", "max_stopped_s": 5.0, "hold_s": 0.0},
    ],
}


def person(gid, xy, v=(0.0, 0.0), **kw):
    return ObjectState(gid, "person", tuple(xy), tuple(v), length=0.3, width=0.5, **kw)


def car(gid, xy, v=(0.0, 0.0), heading=0.0, **kw):
    return ObjectState(gid, "car", tuple(xy), tuple(v), length=4.4, width=1.8, heading=heading, **kw)


def engine(rules=None):
    return RiskEngine(parse_risk_config(rules or RULES, SITE), SITE)


def active_rules(assessment):
    return sorted({e.rule.id for e in assessment.reasons})


def test_rules_parse_with_defaults_and_a_stable_version():
    config = parse_risk_config(RULES, SITE)
    assert [r.id for r in config.rules] == [r["id"] for r in RULES["rules"]]
    ttc = config.rules[3]
    assert ttc.release == pytest.approx(4.5) and ttc.classes == ("person",) and ttc.classes_b == ("car", "truck")
    assert ttc.severity == RiskLevel.CRITICAL
    assert config.version == parse_risk_config(RULES, SITE).version
    changed = {**RULES, "rules": [dict(RULES["rules"][0], min_dwell_s=0.7)]}
    assert parse_risk_config(changed, SITE).version != config.version


def test_every_problem_of_a_rules_section_is_listed_with_its_key():
    bad = {"rules": [
        {"id": "a", "kind": "restricted_zone", "zone": "nowhere", "classes": ["person"]},
        {"id": "a", "kind": "speed_limit", "limit_mps": -1},
        {"id": "c", "kind": "teleport"},
        {"id": "d", "kind": "wrong_way", "lane": "two_way"},
        {"id": "e", "kind": "separation", "distance_m": 2.0, "release_m": 1.0, "classes": ["unicorn"]},
        {"id": "f", "kind": "blocked_exit", "gate": "exit0", "max_stopped_s": 5, "colour": "red"},
    ], "fail_safe": {"command": "continue"}}
    with pytest.raises(RiskConfigError) as err:
        parse_risk_config(bad, SITE)
    text = "\n".join(err.value.problems)
    for expected in ("zone: 'nowhere'", "duplicate rule id", "limit_mps", "teleport", "two-way", "release_m",
                     "unicorn", "colour", "fail_safe.command"):
        assert expected in text, expected


def test_zero_never_reads_safe():
    assert RiskLevel(0) == RiskLevel.UNKNOWN and Command(0) == Command.NONE
    from perception_nodes.msg import ActuationCommand, RiskAssessment

    assert RiskAssessment().level == RiskAssessment.LEVEL_UNKNOWN == RiskLevel.UNKNOWN
    assert ActuationCommand().command == ActuationCommand.COMMAND_NONE == Command.NONE
    assert ActuationCommand.COMMAND_STOP == Command.STOP and RiskAssessment.LEVEL_CRITICAL == RiskLevel.CRITICAL


def test_a_person_in_a_restricted_zone_fires_after_its_dwell_and_clears_after_its_hold():
    eng = engine()
    levels = []
    for step in range(30):
        t = step * 0.1
        inside = step < 15
        objs = [person(1, (15, 15) if inside else (0, -15))]
        a = eng.assess(t, objs)
        levels.append((t, a.level, active_rules(a)))
    fired = [t for t, level, rules in levels if "no_people_loading" in rules]
    assert fired[0] == pytest.approx(0.5)           # min dwell 0.5 s
    assert fired[-1] == pytest.approx(2.4)          # left at 1.5 s, held 1.0 s
    assert levels[0][1] == RiskLevel.CLEAR and levels[10][1] == RiskLevel.HIGH


def test_speed_limit_hysteresis_stops_toggling_around_the_threshold():
    eng = engine()
    toggles, last = 0, None
    for step in range(100):
        speed = 4.0 + 0.6 * math.sin(step * 0.7)      # oscillates 3.4..4.6 around the 4.0 limit
        a = eng.assess(step * 0.1, [car(1, (0, -10), (speed, 0.0))])
        on = "lot_speed" in active_rules(a)
        toggles += last is not None and on != last
        last = on
    assert last and toggles == 1  # fires once and stays (never falls below the 3.0 release)


def test_separation_uses_the_vehicle_footprint_not_its_centre():
    eng = engine()
    # 2.6 m from the car's centre along its length = 0.4 m from its front bumper, minus the person's half-width
    a = eng.assess(0.0, [car(1, (0, -10), (1.0, 0.0)), person(2, (2.6, -10))])
    assert "keep_apart" in active_rules(a)
    reason = next(e for e in a.reasons if e.rule.id == "keep_apart")
    assert reason.measured == pytest.approx(0.15) and set(reason.object_ids) == {1, 2}
    b = engine().assess(0.0, [car(1, (0, -10), (1.0, 0.0)), person(2, (0.0, -7.0))])  # 2.1 m from the side - 0.25
    assert "keep_apart" not in active_rules(b)
    parked = engine().assess(0.0, [car(1, (0, -10)), person(2, (2.6, -10), (1.4, 0.0))])  # walking past a parked car
    assert "keep_apart" not in active_rules(parked)


def test_closest_approach_and_contact_probability():
    eye = np.eye(2)
    head_on = closest_approach((0, 0), (0, 0), eye * 0.01, eye * 0.01, (10, 0), (-2, 0), eye * 0.01, eye * 0.01,
                               contact_radius=1.0, horizon_s=10)
    assert head_on.time_to_collision_s == pytest.approx(4.5) and head_on.distance_m == pytest.approx(0.0)
    assert head_on.contact_probability > 0.8 and head_on.closing_speed_mps == pytest.approx(2.0)
    miss = closest_approach((0, 0), (0, 0), eye * 0.01, eye * 0.01, (10, 3), (-2, 0), eye * 0.01, eye * 0.01,
                            1.0, 10)
    assert math.isinf(miss.time_to_collision_s) and miss.distance_m == pytest.approx(3.0)
    assert miss.contact_probability < 0.01
    vague = closest_approach((0, 0), (0, 0), eye * 4.0, eye * 1.0, (10, 3), (-2, 0), eye * 4.0, eye * 1.0, 1.0, 10)
    assert 0.05 < vague.contact_probability < 0.5  # the same miss, seen through large covariance
    apart = closest_approach((0, 0), (0, 0), eye, eye, (10, 0), (2, 0), eye, eye, 1.0, 10)
    assert math.isinf(apart.time_to_collision_s) and apart.time_s == 0.0 and apart.closing_speed_mps < 0


def test_ttc_alerts_a_closing_pair_before_closest_approach_and_ignores_an_unsure_one():
    eng = engine()
    first_alert = None
    for step in range(60):
        t = step * 0.1
        # a car drives at 5 m/s towards a person standing 25 m ahead on its path: contact at ~4.5 s
        objs = [car(1, (-25 + 5 * t, -10), (5.0, 0.0)), person(2, (0, -10))]
        a = eng.assess(t, objs)
        if "ttc" in active_rules(a) and first_alert is None:
            first_alert = t
            assert a.level == RiskLevel.CRITICAL and a.command == Command.EMERGENCY_STOP
            assert a.time_to_collision <= 3.0
    contact = (25 - (2.2 + 0.25 + 0.5 + 0.25 + 0.5)) / 5.0  # footprint radii + margin
    assert first_alert is not None and contact - first_alert >= 2.1 - 1e-9
    unsure = np.eye(2) * 9.0  # 3 m position sigma: a 2 m miss is not a confident contact
    eng2 = engine()
    for step in range(30):
        t = step * 0.1
        a = eng2.assess(t, [car(1, (-25 + 5 * t, -12.5), (5.0, 0.0), position_cov=unsure),
                            person(2, (0, -10), position_cov=unsure)])
        assert "ttc" not in active_rules(a)


def test_wrong_way_only_on_one_way_lanes():
    eng = engine()
    for step in range(10):
        a = eng.assess(step * 0.1, [car(1, (0, 0), (-3.0, 0), heading=math.pi, lane="one_way", against_lane=True),
                                    car(2, (0, 5), (-3.0, 0), heading=math.pi, lane="two_way", against_lane=True)])
    reasons = [e for e in a.reasons if e.rule.id == "wrong_way"]
    assert [e.object_ids for e in reasons] == [(1,)] and reasons[0].place == "one_way"


def test_blocked_exit_after_standing_there_too_long():
    eng = engine()
    states = [active_rules(eng.assess(t * 0.5, [car(1, (24, 0))])) for t in range(14)]
    assert "exit_blocked" not in states[10] and "exit_blocked" in states[11]  # 5.5 s > 5 s


def test_stale_inputs_coverage_loss_and_unhealthy_upstream_fail_safe():
    eng = engine()
    a = eng.assess(0.0, [], InputStatus(stale="objects 1.2 s old (deadline 0.5 s)"))
    assert a.fail_safe and a.level == RiskLevel.HIGH and a.command == Command.STOP
    assert "1.2 s old" in a.fail_safe_reason and "FAIL-SAFE" in a.explanation
    b = engine().assess(0.0, [], InputStatus(unhealthy=("/localizer: camera cam1 silent",)))
    assert b.fail_safe and "/localizer" in b.fail_safe_reason

    class Cam:  # looks straight down from 20 m at x0: sees a 40 m square
        def __init__(self, cid, x0):
            self.camera_id, self.width, self.height, self.position, self.x0 = cid, 100, 100, (x0, 0, 20), x0

        def project(self, pts):
            pts = np.asarray(pts)
            return np.column_stack([(pts[:, 0] - self.x0 + 20) * 2.5, (pts[:, 1] + 20) * 2.5]), np.full(len(pts), 20.)

    coverage = CoverageModel(SITE.zones)
    coverage.add_camera(Cam("west", -15))
    coverage.add_camera(Cam("east", 15))
    eng3 = RiskEngine(parse_risk_config(RULES, SITE), SITE, coverage)
    assert not eng3.assess(0.0, [], InputStatus(live_cameras=("west", "east"))).fail_safe
    lost = eng3.assess(0.1, [], InputStatus(live_cameras=("west",)))
    assert lost.fail_safe and "east silent" in lost.fail_safe_reason and "zone loading" in lost.fail_safe_reason
    # Tracks that arrive, but too old (a latency spike), are named as late, with their age.
    late = eng3.assess(0.2, [], InputStatus(live_cameras=("west",), late_cameras=(("east", 2.51),)))
    assert late.fail_safe and "east late (2.5 s old)" in late.fail_safe_reason and "silent" not in late.fail_safe_reason


def test_commands_escalate_at_once_and_relax_only_after_the_release_time():
    eng = engine({**RULES, "command_release_s": 1.0})
    commands = []
    for step in range(40):
        t = step * 0.1
        inside = 5 <= step < 12
        a = eng.assess(t, [person(1, (15, 15) if inside else (0, -15))])
        commands.append(a.command)
    assert commands[0] == Command.CONTINUE
    assert commands[10] == Command.STOP          # inside from 0.5 s, dwell 0.5 s
    first_stop = commands.index(Command.STOP)
    last_stop = len(commands) - 1 - commands[::-1].index(Command.STOP)
    assert first_stop == 10
    # left at 1.2 s, rule held to 2.2 s, command held 1.0 s more
    assert last_stop == 31 and commands[32] == Command.CONTINUE


def test_the_same_inputs_give_the_same_decisions_and_time_going_back_resets():
    rng = np.random.default_rng(3)
    frames = [[car(g, tuple(rng.uniform(-20, 20, 2)), tuple(rng.uniform(-5, 5, 2))) for g in range(1, 8)]
              + [person(g, tuple(rng.uniform(-20, 20, 2)), tuple(rng.uniform(-1, 1, 2))) for g in range(8, 20)]
              for _ in range(30)]

    def run():
        eng = engine()
        return [(a.level, a.command, a.explanation) for a in (eng.assess(i * 0.1, f) for i, f in enumerate(frames))]

    assert run() == run()
    eng = engine()
    for step in range(8):
        eng.assess(step * 0.1, [person(1, (15, 15))])
    assert eng.assess(0.0, [person(1, (15, 15))]).level == RiskLevel.CLEAR  # dwell restarts after the jump back


def test_explanation_names_the_rule_the_measure_and_the_threshold():
    eng = engine()
    for step in range(6):
        a = eng.assess(step * 0.1, [person(4, (15, 15))])
    assert a.assessment_id == 6 and a.level == RiskLevel.HIGH
    assert "because rule no_people_loading (restricted_zone, severity HIGH)" in a.explanation
    assert "person 4 is in zone loading" in a.explanation
    inactive = next(e for e in a.evaluations if e.rule.id == "ttc")
    assert inactive.state == EvaluationState.INACTIVE
    assert RiskConfig().command_for(RiskLevel.CLEAR) == Command.CONTINUE


def test_array_pair_evaluation_matches_the_scalar_reference_on_a_busy_lot():
    from perception_nodes.evaluation.risk import bench_stream
    from perception_nodes.risk.kinematics import approach_geometry, approach_uncertainty

    rng = np.random.default_rng(5)
    dp, dv = rng.normal(0, 8, (50, 2)), rng.normal(0, 3, (50, 2))
    cp = np.array([np.eye(2) * s for s in rng.uniform(0.01, 2, 50)])
    cv = np.array([np.eye(2) * s for s in rng.uniform(0.01, 1, 50)])
    radius = rng.uniform(0.5, 4, 50)
    many = approach_geometry(dp, dv, radius, 6.0)
    probability, _ = approach_uncertainty(many, np.arange(50), cp, cv)
    for k in range(50):
        one = closest_approach((0, 0), (0, 0), cp[k], cv[k], dp[k], dv[k], np.zeros((2, 2)), np.zeros((2, 2)),
                               radius[k], 6.0)
        assert many.time_to_collision_s[k] == pytest.approx(one.time_to_collision_s)
        assert probability[k] == pytest.approx(one.contact_probability, abs=1e-9)
        assert many.distance_m[k] == pytest.approx(one.distance_m)
    config = parse_risk_config(RULES, SITE)
    fast, reference = RiskEngine(config, SITE), RiskEngine(config, SITE, vectorized=False)
    fired = 0
    for i, snapshot in enumerate(bench_stream(40, 40, seed=2)):
        a, b = fast.assess(i * 0.1, snapshot), reference.assess(i * 0.1, snapshot)
        assert (a.level, a.command) == (b.level, b.command)
        assert [(e.rule.id, e.object_ids) for e in a.reasons] == [(e.rule.id, e.object_ids) for e in b.reasons]
        # Every evaluation too, the idle rules' nearest pair included (the arrays skip the covariance of pairs
        # that cannot fire), with the same sentence.
        assert [(e.rule.id, e.object_ids, e.state, e.text) for e in a.evaluations] == \
            [(e.rule.id, e.object_ids, e.state, e.text) for e in b.evaluations]
        fired += len(a.reasons)
    assert fired > 0


def test_cars_parked_side_by_side_are_no_collision_course_but_one_closing_end_on_is():
    """Footprints of known heading, not discs: two cars a stall apart (2.6 m, discs overlap) and a car pulling in
    beside one never fire; a car closing on a stopped one end-on fires when its front is 1.5 s from the other's
    rear (not when the discs would touch); discs within contact but not closing do not fire either."""
    rules = {"rules": [{"id": "vv", "kind": "time_to_collision", "classes": ["car"], "classes_b": ["car"],
                        "ttc_s": 1.5, "margin_m": 0.5, "min_dwell_s": 0.0, "hold_s": 0.0}]}
    eng = engine(rules)
    for step in range(40):
        t = step * 0.1
        pulling_in = car(3, (2.6, 6.0 - 1.5 * min(t, 2.5)), (0.0, -1.5 if t < 2.5 else 0.0), heading=-math.pi / 2)
        objs = [car(1, (0.0, 2.25), heading=-math.pi / 2), car(2, (-2.6, 2.25), heading=-math.pi / 2), pulling_in]
        assert "vv" not in active_rules(eng.assess(t, objs))
    eng = engine(rules)
    first = None
    for step in range(60):
        t = step * 0.1
        a = eng.assess(t, [car(1, (-20 + 4 * t, 0.0), (4.0, 0.0)), car(2, (0.0, 0.0))])
        if "vv" in active_rules(a) and first is None:
            first = t
    gap_at_alert = 20 - 4 * first - (4.4 + 0.5)  # bumper to bumper, both grown by half the margin
    assert first is not None and gap_at_alert == pytest.approx(1.5 * 4.0, abs=0.4 + 1e-9)
    discs = engine(rules)  # unknown headings: discs, overlapping but not closing
    for step in range(20):
        objs = [car(1, (0.0, 0.0), heading=None), car(2, (2.6, 0.0), (0.0, 0.5), heading=None)]
        assert "vv" not in active_rules(discs.assess(step * 0.1, objs))


def test_a_coasting_object_keeps_an_alert_going_but_does_not_start_one():
    """An object no detection confirms now (coasting on its prediction) cannot start an alert; once one is active it
    holds through a coasting gap; ``coasting_triggers: true`` (the naive baseline) lets it start one."""
    def walk(eng, coasting_until):
        first = None
        for step in range(40):
            t = step * 0.1
            a = eng.assess(t, [car(1, (-25 + 5 * t, -10), (5.0, 0.0)), person(2, (0, -10), coasting=t < coasting_until)])
            if "ttc" in active_rules(a) and first is None:
                first = t
        return first
    assert walk(engine(), coasting_until=9.9) is None
    assert walk(engine(), coasting_until=1.5) is not None and walk(engine(), coasting_until=1.5) >= 1.5
    eager = dict(RULES, rules=[dict(r, coasting_triggers=True) if r["id"] == "ttc" else r for r in RULES["rules"]])
    assert walk(engine(eager), coasting_until=9.9) is not None
    held = engine()
    for step in range(40):  # alert on while confirmed, then the person coasts: the alert stays
        t = step * 0.1
        a = held.assess(t, [car(1, (-25 + 5 * t, -10), (5.0, 0.0)), person(2, (0, -10), coasting=t >= 2.5)])
        if t >= 2.5:
            assert "ttc" in active_rules(a)
    with pytest.raises(RiskConfigError, match="coasting_triggers"):
        engine({"rules": [{"id": "x", "kind": "time_to_collision", "ttc_s": 3.0, "coasting_triggers": "yes"}]})


def test_an_object_no_detection_confirmed_lately_does_not_start_an_alert():
    """A person whose newest detection is older than ``unconfirmed_after_s`` (the localizer still predicts them a
    moment after they got into a car) cannot start an alert; detections arriving at a slow camera's usual interval
    do not count as a lapse; an alert already on is held."""
    def walk(eng, seen_of, until=4.0):
        first = None
        for step in range(int(until * 10)):
            t = step * 0.1
            a = eng.assess(t, [car(1, (-25 + 5 * t, -10), (5.0, 0.0), last_seen=t),
                               person(2, (0, -10), last_seen=seen_of(t))])
            if "ttc" in active_rules(a) and first is None:
                first = t
        return first, a

    fresh, _ = walk(engine(), lambda t: t)
    assert fresh is not None
    lapsed, last = walk(engine(), lambda t: min(t, 0.5) if t < 3.0 else t - 0.4)   # nothing new after 0.5 s
    assert lapsed is None
    why = [e.text for e in last.evaluations if e.rule.id == "ttc"]   # what explain shows for the rule
    assert why and "no detection confirms object(s) [2]" in why[0], why
    # a camera at 2 Hz: the newest detection is up to 0.4 s old between frames, which is its rate, not a lapse
    slow, _ = walk(engine(), lambda t: math.floor(t * 2.0 + 1e-9) / 2.0)
    assert slow is not None and slow <= fresh + 0.5
    # detections 0.25 s old every frame: within the default 0.3 s, a lapse under a stricter 0.05 s
    late = lambda t: t if t < 0.5 else t - 0.25   # noqa: E731
    assert walk(engine(), late)[0] is not None
    assert walk(engine(dict(RULES, unconfirmed_after_s=0.05)), late)[0] is None
    # on while seen, then no detection: the alert stays
    held = engine()
    for step in range(40):
        t = step * 0.1
        a = held.assess(t, [car(1, (-25 + 5 * t, -10), (5.0, 0.0), last_seen=t),
                            person(2, (0, -10), last_seen=min(t, 2.5))])
        if t >= 2.7:
            assert "ttc" in active_rules(a)
    with pytest.raises(RiskConfigError, match="unconfirmed_after_s"):
        engine(dict(RULES, unconfirmed_after_s=-1.0))


def test_engine_bench_paced_run_decides_as_the_back_to_back_one():
    from perception_nodes.evaluation.risk import bench_engine
    from perception_nodes.site.manifest import load_manifest

    site = load_manifest("parking")
    result = bench_engine(site.map, site.risk, objects=20, frames=8, parked_share=0.6, paced_hz=100.0)
    assert result["same_decisions_as_scalar"]
    paced = result["paced"]
    assert paced["rate_hz"] == 100.0 and paced["same_decisions"]
    assert paced["decision_ms_p50"] > 0 and paced["decision_ms_p99"] >= paced["decision_ms_p50"]
    assert "paced" not in bench_engine(site.map, site.risk, objects=20, frames=4, parked_share=0.6)
