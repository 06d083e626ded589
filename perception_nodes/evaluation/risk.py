"""Risk harnesses: ``perception bench risk`` (the engine's decision time with N objects, against exact all-pairs
evaluation) and the object stream it and the node benchmark use."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from perception_nodes.risk import ObjectState, RiskEngine, parse_risk_config


def bench_stream(objects: int = 100, frames: int = 300, seed: int = 0, half_size=(30.0, 20.0),
                 parked_share: float = 0.0) -> list[list]:
    """``frames`` snapshots at 10 Hz of ``objects`` objects (40 % vehicles) moving about a lot in random directions,
    bouncing off its edges; ``parked_share`` of the vehicles stand still. With none parked it is a dense, busy
    scene (many pairs closing on each other) that the rules must evaluate every frame."""
    rng = np.random.default_rng(seed)
    vehicles = int(round(0.4 * objects))
    classes = ["car" if i % 5 else "truck" for i in range(vehicles)] + ["person"] * (objects - vehicles)
    half = np.asarray(half_size)
    xy = rng.uniform(-half, half, (objects, 2))
    speed = np.array([rng.uniform(0.0, 7.0) if c != "person" else rng.uniform(0.0, 1.8) for c in classes])
    speed[:int(round(parked_share * vehicles))] = 0.0
    angle = rng.uniform(-np.pi, np.pi, objects)
    sizes = {"car": (4.4, 1.8), "truck": (7.5, 2.5), "person": (0.3, 0.42)}
    out = []
    for _ in range(frames):
        velocity = np.column_stack([np.cos(angle), np.sin(angle)]) * speed[:, None]
        xy = xy + 0.1 * velocity
        bounce = np.abs(xy) > half
        velocity[bounce] *= -1
        angle = np.arctan2(velocity[:, 1], velocity[:, 0])
        xy = np.clip(xy, -half, half)
        angle += rng.normal(0.0, 0.05, objects)
        out.append([ObjectState(i + 1, c, (float(xy[i, 0]), float(xy[i, 1])), (float(velocity[i, 0]),
                                float(velocity[i, 1])), ((0.09, 0.0), (0.0, 0.09)), ((0.16, 0.0), (0.0, 0.16)),
                                *sizes[c], float(angle[i]) if speed[i] > 0.3 else None)
                    for i, c in enumerate(classes)])
    return out


def bench_engine(site_map, risk_section, objects: int = 100, frames: int = 300, parked_share: float = 0.0,
                 paced_hz: float = 0.0) -> dict:
    """Decision time per snapshot (p50/p99 ms) of the engine with the site's rules on ``objects`` objects, and the
    same with every pair evaluated by the scalar closest approach (the reference the arrays must agree with).

    With ``paced_hz`` the engine also runs once more with one decision per period, idle between, as the node runs
    it at the objects' rate (``paced``): a decision after an idle gap starts with cold caches, so it takes longer
    than the back-to-back loop shows."""
    stream = bench_stream(objects, frames, parked_share=parked_share)
    config = parse_risk_config(risk_section, site_map)

    def measure(vectorized: bool, period_s: float = 0.0) -> tuple[dict, list]:
        engine = RiskEngine(config, site_map, vectorized=vectorized)
        times, decisions = [], []
        begun = time.perf_counter()
        for index, snapshot in enumerate(stream):
            if period_s:
                time.sleep(max(0.0, begun + index * period_s - time.perf_counter()))
            started = time.perf_counter()
            a = engine.assess(index * 0.1, snapshot)
            times.append(time.perf_counter() - started)
            decisions.append((int(a.level), int(a.command), tuple(sorted((e.rule.id, e.object_ids)
                                                                         for e in a.reasons))))
        ms = np.asarray(times) * 1e3
        return {"decision_ms_p50": round(float(np.percentile(ms, 50)), 3),
                "decision_ms_p99": round(float(np.percentile(ms, 99)), 3),
                "decisions_per_s": round(len(ms) / float(ms.sum() / 1e3), 1)}, decisions

    ours, decided = measure(True)
    exact, reference = measure(False)
    paced = {}
    if paced_hz > 0:
        paced, paced_decisions = measure(True, 1.0 / paced_hz)
        paced = {**paced, "rate_hz": paced_hz, "same_decisions": paced_decisions == decided}
    active = [len(d[2]) for d in decided]
    return {**ours, "objects": objects, "frames": frames, "rules": len(config.rules), "parked_share": parked_share,
            **({"paced": paced} if paced else {}),
            "active_reasons_mean": round(float(np.mean(active)), 2),
            "same_decisions_as_scalar": decided == reference, "scalar_pairs": exact,
            "speedup_vs_scalar": round(exact["decision_ms_p99"] / max(ours["decision_ms_p99"], 1e-9), 2)}


# -- the safety suite ------------------------------------------------------------------------------------------------
# Ground truth: the site's rules evaluated on the world's true states (exact positions, velocities, headings and
# sizes, near-zero covariance) -- the hazards a perfect perception chain would report. The system: the same rules on
# what the localizer makes of noisy per-camera tracks, with the scene's scripted disturbances applied. An alert is
# a system episode (a rule active on one subject) of at least medium severity; it is a false alarm when no true
# hazard of the same family on the same objects overlaps it (within MATCH_SLACK_S).

SCENARIOS_DIR = "scenarios"
COLLISION_KINDS = ("time_to_collision", "separation")
MATCH_SLACK_S = 1.0
REQUIRED_LEAD_S = 2.1          # NHTSA forward-collision-warning: the alert at least this long before the closest approach
ALERT_SEVERITY = 3             # RiskLevel.MEDIUM: an alert slows, stops or warns; LOW only logs
TRUE_SIGMA_M = 0.02
CAMERA_DEADLINE_S = 3.0
MAX_TRACK_AGE_S = 2.0


def scenario_names() -> list[str]:
    from perception_nodes.paths import package_path

    return sorted(p.stem for p in (package_path("config/scenes") / SCENARIOS_DIR).glob("*.yaml"))


def _true_states(world, frame: int, scene_state) -> list[ObjectState]:
    out = []
    for o in world.object_states(frame):
        xy, v = o.position[:2], o.velocity[:2]
        lane, motion = scene_state.lane_motion(xy, v)
        out.append(ObjectState(o.global_id, o.class_name, (float(xy[0]), float(xy[1])), (float(v[0]), float(v[1])),
                               ((TRUE_SIGMA_M ** 2, 0.0), (0.0, TRUE_SIGMA_M ** 2)),
                               ((TRUE_SIGMA_M ** 2, 0.0), (0.0, TRUE_SIGMA_M ** 2)), float(o.size[0]), float(o.size[1]),
                               float(o.yaw), lane, int(motion) == 4))
    return out


def _system_states(objects, scene_state) -> list[ObjectState]:
    from perception_nodes.localization.lifting import DEFAULT_SIZE_PRIORS
    from perception_nodes.taxonomy import SITE_CLASS_NAMES

    out = []
    for o in objects:
        name = SITE_CLASS_NAMES[o.class_id] if o.class_id < len(SITE_CLASS_NAMES) else "other"
        (length, width, _), _ = DEFAULT_SIZE_PRIORS.get(name, DEFAULT_SIZE_PRIORS["other"])
        lane, motion = scene_state.lane_motion(o.xy, o.velocity)
        out.append(ObjectState(int(o.global_id), name, (float(o.xy[0]), float(o.xy[1])),
                               (float(o.velocity[0]), float(o.velocity[1])), o.cov[:2, :2], o.cov[2:, 2:], length, width,
                               float(o.heading) if o.heading_known else None, lane, int(motion) == 4,
                               int(o.state) == 3, float(o.last_seen)))
    return out


def _episodes(active_per_frame, times) -> list[dict]:
    """{rule, kind, severity, ids, start, end} per contiguous run of a (rule, subject) being active."""
    open_runs: dict[tuple, dict] = {}
    out = []
    for t, active in zip(times, active_per_frame):
        for key, info in active.items():
            run = open_runs.get(key)
            if run is None:
                open_runs[key] = {**info, "start": t, "end": t}
            else:
                run["end"] = t
        for key in [k for k in open_runs if k not in active]:
            out.append(open_runs.pop(key))
    out.extend(open_runs.values())
    return sorted(out, key=lambda e: (e["start"], e["rule"], e["ids"]))


def _active(assessment) -> dict:
    return {(e.rule.id, e.object_ids): {"rule": e.rule.id, "kind": e.rule.kind.value, "severity": int(e.rule.severity),
                                        "ids": e.object_ids} for e in assessment.reasons}


def _family(kind: str) -> str:
    return "collision" if kind in COLLISION_KINDS else kind


def _closest_approach_time(world, true_states, ids, start: float, end: float,
                           horizon: float) -> tuple[float, float]:
    """(time, gap m) of the smallest true centre distance of a pair in [start, end + horizon]: from the replay's
    true states, and from the world past the replay's last frame."""
    best = (start, np.inf)
    fps = world.scene.fps
    for f in range(int(start * fps), min(int((end + horizon) * fps) + 1, world.scene.frame_count)):
        if f < len(true_states):
            xy = {o.global_id: np.asarray(o.xy) for o in true_states[f]}
        else:
            xy = {o.global_id: o.position[:2] for o in world.object_states(f)}
        if ids[0] in xy and ids[1] in xy:
            d = float(np.linalg.norm(xy[ids[0]] - xy[ids[1]]))
            if d < best[1]:
                best = (f / fps, d)
    return best


@dataclass
class Replay:
    """What the perception chain delivered for one scene, frame by frame, before any rule runs: the risk node's
    inputs (localized objects as rule states, the live cameras), the true states, and predicted -> true ids. Rule
    sets are scored on it without rendering or localizing again."""

    world: object
    site_map: object
    coverage: object
    camera_ids: list
    times: list = field(default_factory=list)
    states: list = field(default_factory=list)          # per frame: ObjectState of the localized objects
    live: list = field(default_factory=list)            # per frame: live cameras (None before the first deadline)
    true_states: list = field(default_factory=list)     # per frame: ObjectState of the true objects
    id_maps: list = field(default_factory=list)         # per frame: predicted id -> true id
    camera_deadline_s: float = CAMERA_DEADLINE_S
    max_track_age_s: float = MAX_TRACK_AGE_S

    def default_rules(self) -> dict:
        from perception_nodes.sources.synthetic import site_manifest_for_scene

        return site_manifest_for_scene(self.world.scene, ".")["risk"]


def replay_scene(scene_ref, seed: int | None = None, frames: int | None = None, noise=None,
                 camera_deadline_s: float = CAMERA_DEADLINE_S, max_track_age_s: float = MAX_TRACK_AGE_S,
                 log=print) -> Replay:
    """One scene through the chain: noisy detections (with the scene's disturbances) -> per-camera trackers ->
    the localizer, delivered in arrival order (delayed detections late; each camera's stream keeps its order, so
    the messages after a delay wait behind its late ones), as the risk node would receive it."""
    from perception_nodes.evaluation.localization import _match, camera_geometry, record
    from perception_nodes.localization.localizer import Localizer, LocalizerConfig, TrackBatch
    from perception_nodes.localization.scene_state import SceneUnderstanding
    from perception_nodes.risk.coverage import CoverageModel
    from perception_nodes.world import World, load_scene

    scene = load_scene(scene_ref, seed=seed)
    world = World(scene)
    rec = record(scene_ref, seed, frames, "gt-noisy", appearance="none", log=log,
                 calibration=scene.camera_bump is not None, noise=noise)
    cameras = [camera_geometry(spec) for spec in scene.cameras]
    coverage = CoverageModel(rec.site_map.zones)
    for camera in cameras:
        coverage.add_camera(camera)
    out = Replay(world, rec.site_map, coverage, [c.camera_id for c in cameras],
                 camera_deadline_s=camera_deadline_s, max_track_age_s=max_track_age_s)
    localizer = Localizer(rec.site_map, LocalizerConfig())
    lanes = SceneUnderstanding(rec.site_map)
    order = np.random.default_rng(5)
    pending: list = []
    last_due: dict[str, float] = {}
    last_arrival: dict[str, float] = {}
    last_age: dict[str, float] = {}
    for f, messages in enumerate(rec.messages):
        t = f / rec.fps
        for camera_id, (sigma, shift) in (rec.calibration[f] if f < len(rec.calibration) else {}).items():
            localizer.set_camera_uncertainty(camera_id, sigma * 0.25, shift)
        for k, m in zip(order.permutation(len(messages)), messages):
            # A camera's stream keeps its order through a delay (a stalled link): a message waits behind the
            # camera's late ones and arrives with the last of them.
            arrival = max(m.stamp + m.delay_s, last_due.get(m.camera_id, -np.inf))
            last_due[m.camera_id] = arrival
            pending.append((arrival, k, m))
        due = sorted((p for p in pending if p[0] <= t + 1e-9), key=lambda p: (p[0], p[1]))
        pending = [p for p in pending if p[0] > t + 1e-9]
        for _, _, msg in due:
            localizer.fuse(cameras[msg.camera_index], TrackBatch(msg.camera_id, msg.stamp, msg.track_ids, msg.boxes,
                                                                 msg.classes, msg.scores, msg.embeddings))
            last_arrival[msg.camera_id] = t
            last_age[msg.camera_id] = t - msg.stamp
        objects = [o for o in localizer.snapshot(t) if int(o.state) != 1]
        out.times.append(t)
        out.states.append(_system_states(objects, lanes))
        out.live.append(tuple(c for c in out.camera_ids if t - last_arrival.get(c, -np.inf) <= camera_deadline_s
                              and last_age.get(c, 0.0) <= max_track_age_s) if t >= camera_deadline_s else None)
        out.true_states.append(_true_states(world, f, lanes))
        true_ids, _, true_xy, _ = rec.true_positions[f]
        rows, cols, _ = _match(np.asarray(true_xy).reshape(-1, 2), np.array([o.xy for o in objects]).reshape(-1, 2))
        out.id_maps.append({int(objects[c].global_id): int(true_ids[r]) for r, c in zip(rows, cols)})
    return out


def score_rules(replay: Replay, risk_section=None, with_baseline: bool = True) -> dict:
    """The rules on the replay's inputs and on its ground truth: hazards, alerts, lead times, false alarms,
    fail-safe; with the naive version of the same rules as the baseline."""
    from perception_nodes.risk.engine import InputStatus
    from perception_nodes.risk.rules import naive_rules

    risk_section = replay.default_rules() if risk_section is None else risk_section
    config = parse_risk_config(risk_section, replay.site_map)
    truth = RiskEngine(config, replay.site_map)
    truth_active = [_active(truth.assess(t, states)) for t, states in zip(replay.times, replay.true_states)]

    def system_run(cfg):
        engine = RiskEngine(cfg, replay.site_map, replay.coverage)
        active, fail_safe, ms = [], [], []
        for t, states, live in zip(replay.times, replay.states, replay.live):
            started = time.perf_counter()
            a = engine.assess(t, states, InputStatus(live_cameras=live))
            ms.append((time.perf_counter() - started) * 1e3)
            active.append(_active(a))
            fail_safe.append(a.fail_safe)
        return engine, active, fail_safe, ms

    engine, active, fail_safe, ms = system_run(config)
    args = (replay.coverage, engine.watched_zones, replay.camera_ids, replay.camera_deadline_s, replay.max_track_age_s)
    result = _score(replay.world, replay.true_states, config, replay.times, active, truth_active, fail_safe,
                    replay.id_maps, ms, *args)
    if with_baseline:
        naive_config = parse_risk_config(naive_rules(risk_section), replay.site_map)
        _, naive_active, naive_fail_safe, _ = system_run(naive_config)
        naive = _score(replay.world, replay.true_states, naive_config, replay.times, naive_active, truth_active,
                       naive_fail_safe,
                       replay.id_maps, [], *args)
        result["baseline"] = {k: naive[k] for k in ("pass", "missed", "lead_time_s", "alerts", "false_alarms",
                                                    "max_repeat_alerts_per_pair")}
    return result


def _score(world, true_states, config, times, system_active, truth_active, fail_safe, id_maps, decision_ms, coverage,
           watched, camera_ids, camera_deadline_s, max_track_age_s) -> dict:
    from collections import Counter

    scene = world.scene
    hazards = _episodes(truth_active, times)
    alerts = _episodes(system_active, times)
    frame_of = {t: f for f, t in enumerate(times)}
    for alert in alerts:  # the true objects behind the alert: the most frequent match over its frames
        f0, f1 = frame_of[alert["start"]], frame_of[alert["end"]]
        votes = Counter(tuple(sorted(id_maps[f].get(i, -1) for i in alert["ids"])) for f in range(f0, f1 + 1))
        alert["true_ids"] = votes.most_common(1)[0][0]
    horizon = max((r.horizon_s for r in config.rules), default=6.0)

    def matches(alert, hazard) -> bool:
        return (_family(alert["kind"]) == _family(hazard["kind"])
                and alert["true_ids"] == tuple(sorted(hazard["ids"]))
                and alert["start"] <= hazard["end"] + MATCH_SLACK_S and alert["end"] >= hazard["start"] - MATCH_SLACK_S)

    found = []
    for hazard in hazards:
        hits = [a for a in alerts if matches(a, hazard)]
        entry = {"rule": hazard["rule"], "kind": hazard["kind"], "severity": hazard["severity"],
                 "ids": list(hazard["ids"]), "start_s": round(hazard["start"], 2), "end_s": round(hazard["end"], 2),
                 "detected": bool(hits), "alert_s": round(min(a["start"] for a in hits), 2) if hits else None}
        if _family(hazard["kind"]) == "collision" and len(hazard["ids"]) == 2:
            closest_t, gap = _closest_approach_time(world, true_states, hazard["ids"], hazard["start"],
                                                    hazard["end"], horizon)
            entry["closest_approach_s"], entry["closest_distance_m"] = round(closest_t, 2), round(gap, 2)
            entry["truth_lead_s"] = round(closest_t - hazard["start"], 2)
            if hits:
                entry["lead_time_s"] = round(closest_t - entry["alert_s"], 2)
        found.append(entry)
    false_alarms = [a for a in alerts if a["severity"] >= ALERT_SEVERITY and not any(matches(a, h) for h in hazards)]
    critical = [h for h in found if h["severity"] >= 4]
    missed = [h for h in critical if not h["detected"]]

    def lead_ok(h) -> bool:
        if "truth_lead_s" not in h:
            return h["detected"]
        if not h["detected"]:
            return False
        # The alert may not come earlier than the truth allows: a hazard born 1.5 s before closest approach
        # (a person stepping out from behind a truck) asks for no more lead than the truth had, less a frame.
        return h["lead_time_s"] >= min(REQUIRED_LEAD_S, h["truth_lead_s"] - 1.0 / scene.fps - 0.5)

    duration_h = len(times) / scene.fps / 3600.0
    per_pair: dict = {}
    for a in alerts:
        per_pair.setdefault((a["rule"], a["true_ids"]), []).append(a)
    flicker = max((len(v) - 1 for v in per_pair.values()), default=0)
    fail_safe_times = [t for t, fs in zip(times, fail_safe) if fs]
    fail_safe_report = _fail_safe_report(scene, coverage, watched, camera_ids, config, times, fail_safe,
                                         camera_deadline_s, max_track_age_s)
    passed = all(lead_ok(h) for h in critical) and fail_safe_report["pass"]
    leads = [h["lead_time_s"] for h in critical if h.get("lead_time_s") is not None]
    dm = np.asarray(decision_ms) if decision_ms else np.zeros(1)
    return {"scene": scene.name, "seed": scene.seed, "duration_s": round(len(times) / scene.fps, 1),
            "pass": bool(passed), "hazards": found, "critical_hazards": len(critical), "missed": len(missed),
            "lead_time_s": min(leads) if leads else None,
            "alerts": len(alerts), "false_alarms": len(false_alarms),
            "false_alarm_examples": [{k: a[k] for k in ("rule", "ids", "true_ids", "start", "end")}
                                     for a in false_alarms[:5]],
            "false_alarms_by_rule": {rule: sum(1 for a in false_alarms if a["rule"] == rule)
                                     for rule in sorted({a["rule"] for a in false_alarms})},
            # on an object the localizer made up (matched to no true object: a phantom or a duplicate)
            "false_alarms_on_unmatched": sum(1 for a in false_alarms if -1 in a["true_ids"]),
            "false_alarms_per_hour": round(len(false_alarms) / duration_h, 2) if duration_h else None,
            "max_repeat_alerts_per_pair": flicker, "fail_safe": fail_safe_report,
            "fail_safe_time_s": round(len(fail_safe_times) / scene.fps, 1),
            "decision_ms_p99": round(float(np.percentile(dm, 99)), 3)}


def _fail_safe_report(scene, coverage, watched, camera_ids, config, times, fail_safe, camera_deadline_s,
                      max_track_age_s) -> dict:
    """When the scripted disturbances should have put the node in fail-safe (a dropout that uncovers a zone with
    a rule, a delay beyond the tracks' age limit), and how soon it did; and no fail-safe outside them."""
    expected = []
    for drop in scene.disturbances.camera_dropouts:
        live = [c for c in camera_ids if c != drop.camera]
        if coverage.lost(watched, live, config.min_coverage_share):
            expected.append((drop.start_s, drop.end_s, camera_deadline_s, f"camera {drop.camera} dropout"))
    for delay in scene.disturbances.detection_delays:
        if delay.delay_s > max_track_age_s:
            expected.append((delay.start_s, delay.end_s, delay.delay_s, f"detections {delay.delay_s:.1f} s late"))
    events = []
    ok = True
    fps = scene.fps
    for start, end, latency, what in expected:
        # Late by design: a dropout is noticed after the camera deadline; late detections once they arrive
        # (their age then exceeds the limit).
        allowed = latency + 2.0 / fps
        hit = next((t for t, fs in zip(times, fail_safe) if fs and start <= t <= end + latency), None)
        took = None if hit is None else round(hit - start, 2)
        good = hit is not None and took <= allowed + 1e-9
        ok &= good
        events.append({"what": what, "start_s": start, "fail_safe_after_s": took, "allowed_s": round(allowed, 2),
                       "pass": good})
    windows = [(s, e + lat + 3.0) for s, e, lat, _ in expected]
    spurious = sum(1 for t, fs in zip(times, fail_safe) if fs and not any(a <= t <= b for a, b in windows))
    ok &= spurious == 0
    return {"expected": events, "unexpected_fail_safe_frames": spurious, "pass": bool(ok)}


NOMINAL_SCENE = "nominal_lot"
NOMINAL_SEEDS = (41, 42)       # held out: the rules' defaults were set on nominal_lot seeds 7 and 8 (and parking 7)
NOMINAL_SECONDS = 180.0


def _replay_job(args):
    scene_ref, seed, frames, noise = args
    return replay_scene(scene_ref, seed, frames, noise, log=lambda *a: None)


def evaluate_safety(scenarios: list[str] | None = None, nominal_seeds=NOMINAL_SEEDS,
                    nominal_seconds: float = NOMINAL_SECONDS, risk_section=None, noise=None, jobs: int = 2,
                    log=print, candidates: dict | None = None) -> dict:
    """``perception eval safety``: every scenario (pass/fail, lead times, fail-safe) and the nominal runs (false
    alarms per hour, repeated alerts per pair), with the same rules and detection noise for all.

    ``candidates`` ({name: (risk section, noise)}) scores several configurations on shared replays (one per
    distinct detection noise) and returns {name: result}; otherwise one result for ``risk_section``/``noise``."""
    from concurrent.futures import ProcessPoolExecutor

    from perception_nodes.paths import package_path

    single = candidates is None
    candidates = candidates or {"candidate": (risk_section, noise)}
    names = scenarios or scenario_names()
    folder = package_path("config/scenes") / SCENARIOS_DIR
    scenes = [(str(folder / f"{name}.yaml"), None, None) for name in names]
    scenes += [(NOMINAL_SCENE, seed, int(nominal_seconds * 10.0)) for seed in nominal_seeds]
    noises = {}
    for _, candidate_noise in candidates.values():
        noises.setdefault(repr(candidate_noise), candidate_noise)
    work = [(ref, seed, frames, n) for n in noises.values() for ref, seed, frames in scenes]
    started = time.perf_counter()
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            replays = list(pool.map(_replay_job, work))
    else:
        replays = [_replay_job(w) for w in work]
    by_noise = {key: replays[i * len(scenes):(i + 1) * len(scenes)] for i, key in enumerate(noises)}
    out = {}
    for name, (candidate_risk, candidate_noise) in candidates.items():
        results = [score_rules(r, candidate_risk) for r in by_noise[repr(candidate_noise)]]
        out[name] = _summary(names, results, nominal_seeds, log if single else (lambda *a: None))
        out[name]["wall_s"] = round(time.perf_counter() - started, 1)
    return out["candidate"] if single else out


def _summary(names, results, nominal_seeds, log) -> dict:
    scenario_results = dict(zip(names, results[:len(names)]))
    nominal = results[len(names):]
    for name, r in scenario_results.items():
        log(f"[safety] {name}: {'PASS' if r['pass'] else 'FAIL'}; critical hazards {r['critical_hazards']}, missed "
            f"{r['missed']}, lead {r['lead_time_s']} s, false alarms {r['false_alarms']}, fail-safe "
            f"{[(e['what'], e['fail_safe_after_s']) for e in r['fail_safe']['expected']]}")
    hours = sum(r["duration_s"] for r in nominal) / 3600.0
    false_alarms = sum(r["false_alarms"] for r in nominal)
    for r in nominal:
        log(f"[safety] nominal seed {r['seed']} ({r['duration_s']} s): {r['alerts']} alerts, {r['false_alarms']} false "
            f"alarms, critical hazards {r['critical_hazards']} (missed {r['missed']})")
    return {
        "scenarios": {name: {"pass": r["pass"], "lead_time_s": r["lead_time_s"], "critical_hazards":
                             r["critical_hazards"], "missed": r["missed"], "false_alarms": r["false_alarms"],
                             "fail_safe": r["fail_safe"]["expected"]} for name, r in scenario_results.items()},
        "passed": sum(r["pass"] for r in scenario_results.values()), "scenario_count": len(names),
        "missed": sum(r["missed"] for r in scenario_results.values()),
        "critical_hazards": sum(r["critical_hazards"] for r in scenario_results.values()),
        "min_lead_time_s": min((r["lead_time_s"] for r in scenario_results.values() if r["lead_time_s"] is not None),
                               default=None),
        "false_alarms_per_hour": round(false_alarms / hours, 1) if hours else None,
        "nominal": {"scene": NOMINAL_SCENE, "seeds": list(nominal_seeds), "hours": round(hours, 3),
                    "false_alarms": false_alarms, "alerts": sum(r["alerts"] for r in nominal),
                    "false_alarms_by_rule": {rule: sum(r["false_alarms_by_rule"].get(rule, 0) for r in nominal)
                                             for rule in sorted({k for r in nominal for k in r["false_alarms_by_rule"]})},
                    "false_alarms_on_unmatched": sum(r["false_alarms_on_unmatched"] for r in nominal),
                    "critical_hazards": sum(r["critical_hazards"] for r in nominal),
                    "missed": sum(r["missed"] for r in nominal),
                    "max_repeat_alerts_per_pair": max((r["max_repeat_alerts_per_pair"] for r in nominal), default=0),
                    "examples": [e for r in nominal for e in r["false_alarm_examples"]][:6]},
        "baseline": _baseline_summary(scenario_results, nominal, hours),
        "decision_ms_p99": max(r["decision_ms_p99"] for r in results),
    }


def _baseline_summary(scenario_results: dict, nominal: list, hours: float) -> dict:
    """The naive rules (no hysteresis, dwell, hold or confidence) on the same localized objects, and our
    false-alarm rate as a ratio of theirs."""
    naive_fa = sum(r["baseline"]["false_alarms"] for r in nominal)
    ours_fa = sum(r["false_alarms"] for r in nominal)
    return {"passed": sum(r["baseline"]["pass"] for r in scenario_results.values()),
            "missed": sum(r["baseline"]["missed"] for r in scenario_results.values()),
            "false_alarms_per_hour": round(naive_fa / hours, 1) if hours else None,
            "max_repeat_alerts_per_pair": max((r["baseline"]["max_repeat_alerts_per_pair"] for r in nominal),
                                              default=0),
            "false_alarm_ratio_ours_vs_baseline": round(ours_fa / naive_fa, 3) if naive_fa else None}


def interleaved_decision_ms(site_map, sections: dict, objects: int = 100, frames: int = 150) -> dict:
    """Decision time p99 (ms) of several rule sets on the same lot-like stream, measured snapshot by snapshot in
    alternating order (so load on the machine hits them alike): {name: p99}."""
    stream = bench_stream(objects, frames, parked_share=0.6)
    engines = {name: RiskEngine(parse_risk_config(section, site_map), site_map) for name, section in sections.items()}
    times: dict[str, list] = {name: [] for name in engines}
    names = list(engines)
    for index, snapshot in enumerate(stream):
        for name in (names if index % 2 == 0 else names[::-1]):
            started = time.perf_counter()
            engines[name].assess(index * 0.1, snapshot)
            times[name].append((time.perf_counter() - started) * 1e3)
    return {name: round(float(np.percentile(values, 99)), 3) for name, values in times.items()}
