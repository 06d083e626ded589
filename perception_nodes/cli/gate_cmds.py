"""`perception gate --candidate C --baseline B`: the safety suite and the stage evaluations for two
configurations, the versioned thresholds applied, a report for people, exit 1 on no-ship."""
from __future__ import annotations

from perception_nodes.cli.common import emit

DEFAULT_THRESHOLDS = "config/gate.yaml"


def _localization(noise, scene: str, seed: int, frames: int) -> dict:
    from perception_nodes.evaluation.localization import (FusionParams, Variant, camera_geometry, record,
                                                          run_variant, score_variant)
    from perception_nodes.world.scene import CLASS_NAMES

    rec = record(scene, seed, frames, "gt-noisy", appearance="none", noise=noise, log=lambda *a: None)
    cameras = [camera_geometry(spec) for spec in rec.scene.cameras]
    variant = Variant("ours", FusionParams(), use_appearance=False)
    outputs, lifted, events, update_times, _ = run_variant(rec, variant, rec.site_map, cameras)
    score = score_variant(rec, outputs, lifted, events, rec.site_map, CLASS_NAMES)
    return {"localization.hota": score["hota"], "localization.idf1": score["idf1"],
            "localization.position_p50_m": score["position_error_m"]["p50"]}


def _detection(spec: dict, seeds: list[int], frame_step: int) -> dict:
    from perception_nodes.detection.dataset import EvalPolicy
    from perception_nodes.detection.registry import ModelRegistry
    from perception_nodes.evaluation.detection import evaluate_detection

    entry, path = ModelRegistry().verified_path(spec["model"])
    imgsz = int(spec.get("imgsz") or entry.input_size)
    result = evaluate_detection(path, entry.ref, "default", None, seeds, frame_step, imgsz, EvalPolicy(), entry=entry)
    return {"detection.map50": result["map50"], "detection.map50_95": result["map50_95"]}


def run_gate(args) -> int:
    from perception_nodes.cli.risk_cmds import load_candidate
    from perception_nodes.evaluation.gate import judge, load_thresholds, report_text
    from perception_nodes.evaluation.localization import bench_localizer
    from perception_nodes.evaluation.risk import evaluate_safety
    from perception_nodes.paths import package_path

    thresholds = load_thresholds(args.thresholds or package_path(DEFAULT_THRESHOLDS))
    configs = {}
    for role, path in (("candidate", args.candidate), ("baseline", args.baseline)):
        risk, noise, raw = load_candidate(path)
        configs[role] = (risk, noise, raw)
    print(f"[gate] safety suite for candidate {args.candidate} and baseline {args.baseline}", flush=True)
    seeds = [int(s) for s in args.nominal_seeds.split(",") if s]
    safety = evaluate_safety([s for s in args.scenarios.split(",") if s] if args.scenarios else None, seeds,
                             args.nominal_seconds, jobs=args.jobs, log=lambda *a: None,
                             candidates={role: (c[0], c[1]) for role, c in configs.items()})
    from perception_nodes.evaluation.risk import interleaved_decision_ms
    from perception_nodes.site.manifest import load_manifest

    site = load_manifest(args.latency_site)
    # Decision time of both rule sets on the same snapshots, interleaved: separate runs differ by more than the
    # thresholds on a loaded 2-core machine.
    decision_p99 = interleaved_decision_ms(site.map, {role: c[0] if c[0] is not None else site.risk
                                                      for role, c in configs.items()})
    both_models = all(c[2].get("model") for c in configs.values())  # the detection stage compares two models
    metrics = {}
    for role, (_, noise, raw) in configs.items():
        s = safety[role]
        m = {"safety.passed": s["passed"], "safety.missed": s["missed"], "safety.min_lead_time_s": s["min_lead_time_s"],
             "safety.false_alarms_per_hour": s["false_alarms_per_hour"],
             "latency.risk_decision_ms_p99": decision_p99[role]}
        print(f"[gate] {role}: safety {s['passed']}/{s['scenario_count']} pass, missed {s['missed']}, "
              f"false alarms {s['false_alarms_per_hour']}/h", flush=True)
        if args.localization_frames:
            m.update(_localization(noise, args.localization_scene, args.localization_seed, args.localization_frames))
            print(f"[gate] {role}: localization HOTA {m['localization.hota']} IDF1 {m['localization.idf1']}",
                  flush=True)
        if both_models and args.detection_seeds:
            m.update(_detection(raw, [int(x) for x in args.detection_seeds.split(",")], args.detection_frame_step))
        metrics[role] = m
    if args.latency:
        # Latency on this machine, measured once per run for both: the localizer does not change between the two.
        bench = bench_localizer(4, 50, 5.0)
        for role in metrics:
            metrics[role]["latency.localizer_ms_p99"] = bench["added_latency_ms_p99"]
    verdict = judge(thresholds, metrics["candidate"], metrics["baseline"])
    print(report_text(verdict, args.candidate, args.baseline))
    emit({**verdict, "candidate": args.candidate, "baseline": args.baseline,
          "safety": {role: {k: v for k, v in s.items() if k != "scenarios"} for role, s in safety.items()}})
    return 0 if verdict["ship"] else 1


def add_parsers(sub) -> None:
    gate = sub.add_parser("gate", help="ship/no-ship: the safety suite and stage evaluations for a candidate "
                                       "configuration against a baseline, with the versioned thresholds")
    gate.add_argument("--candidate", required=True, help="candidate YAML ('risk', 'detection_noise', 'model')")
    gate.add_argument("--baseline", required=True, help="baseline YAML (config/candidates/default.yaml: the shipped "
                                                        "configuration)")
    gate.add_argument("--thresholds", default=None, help=f"thresholds file (default {DEFAULT_THRESHOLDS})")
    gate.add_argument("--scenarios", default=None, help="comma-separated scenarios (default: all)")
    gate.add_argument("--nominal-seeds", default="41,42")
    gate.add_argument("--nominal-seconds", type=float, default=180.0)
    gate.add_argument("--localization-scene", default="parking")
    gate.add_argument("--localization-seed", type=int, default=21)
    gate.add_argument("--localization-frames", type=int, default=300, help="0: no localization stage")
    gate.add_argument("--detection-seeds", default="200", help="held-out seeds for the detection stage (run when "
                                                                "both configurations name a model)")
    gate.add_argument("--detection-frame-step", type=int, default=10)
    gate.add_argument("--no-latency", dest="latency", action="store_false", help="skip the localizer latency bench")
    gate.add_argument("--latency-site", default="parking", help="site whose map (and rules, for a candidate "
                      "without its own) the decision-time comparison uses")
    gate.add_argument("--jobs", type=int, default=2)
    gate.set_defaults(func=run_gate)
