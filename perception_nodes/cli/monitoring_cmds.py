"""`perception drift reference` (a model's reference distributions, stored with the model version),
`perception eval drift` (the drift monitor on streams of known conditions, against Evidently's defaults) and
`perception eval proxies` (the FP/FN proxies against the true error rates of degraded runs)."""
from __future__ import annotations

import sys

from perception_nodes.cli.common import emit

BASELINE = "evidently_defaults"


def _model(args) -> str:
    from perception_nodes.graph import configured_detector_model

    return args.model or configured_detector_model()


def run_reference(args) -> int:
    from perception_nodes.detection.registry import ModelRegistry
    from perception_nodes.evaluation.detection import parse_seeds
    from perception_nodes.evaluation.drift import StreamDetector, build_reference
    from perception_nodes.fileio import atomic_write_text

    ref = _model(args)
    registry = ModelRegistry()
    entry = registry.resolve(ref)
    detector = StreamDetector(entry.ref)
    try:
        reference = build_reference(detector, entry.ref, args.scene, parse_seeds(args.seeds), args.frame_step,
                                    command="perception " + " ".join(sys.argv[1:]))
    finally:
        detector.close()
    name = f"{entry.name}-{entry.version}.drift.json"  # per registered model: variants may share one file
    path = entry.file.parent / name
    atomic_write_text(path, reference.to_json())
    entry.drift_reference = name
    registry.add(entry)
    emit({"model": entry.ref, "reference": str(path), **reference.provenance,
          "features": sorted(reference.numerical) + sorted(reference.categorical)
          + (["embedding"] if reference.embedding_components is not None else [])})
    return 0


def baseline_config():
    """Evidently's defaults as the peer: every feature at 0.1 (normalised Wasserstein, Jensen-Shannon), no floor."""
    from perception_nodes.monitoring.drift import DriftConfig, FeatureRule

    config = DriftConfig()
    for name, rule in list(config.rules.items()):
        if name != "view_shift_px":
            config.rules[name] = FeatureRule(0.1, rule.min_samples, 0.0)
    return config


def run_eval(args) -> int:
    from perception_nodes.detection.registry import ModelRegistry
    from perception_nodes.errors import ConfigError
    from perception_nodes.evaluation.detection import parse_seeds
    from perception_nodes.evaluation.drift import StreamDetector, evaluate_drift
    from perception_nodes.monitoring.drift import DriftConfig, DriftReference, default_config_path

    entry = ModelRegistry().resolve(_model(args))
    path = entry.drift_reference_path()
    if path is None:
        raise ConfigError(f"{entry.ref} has no drift reference; make one with "
                          f"'perception drift reference --model {entry.ref}'")
    reference = DriftReference.load(path)
    config = DriftConfig.load(args.config or default_config_path())
    detector = StreamDetector(entry.ref)
    try:
        result = evaluate_drift(detector, reference, {"configured": config, BASELINE: baseline_config()},
                                args.scene, parse_seeds(args.quiet_seeds), args.quiet_seconds, args.night_scene,
                                args.night_seed, args.night_seconds, args.bump_seed, args.bump_deg, args.bump_at,
                                args.bump_seconds, args.sample_hz, args.eval_period)
    finally:
        detector.close()
    result["model"] = entry.ref
    base = result["baselines"][BASELINE]
    print(f"[drift] reference conditions: {result['quiet']['false_flags']} false flags "
          f"(baseline {base['quiet']['false_flags']}); night flagged at {result['night']['flagged_at_s']} s "
          f"(baseline {base['night']['flagged_at_s']}); {args.bump_deg} deg bump flagged after "
          f"{result['bumped']['flagged_after_s']} s (baseline {base['bumped']['flagged_after_s']})")
    result["false_flags_ratio_to_baseline"] = (round(result["quiet"]["false_flags"] / base["quiet"]["false_flags"], 3)
                                               if base["quiet"]["false_flags"] else None)
    emit(result)
    return 0


def run_eval_proxies(args) -> int:
    from perception_nodes.evaluation.proxies import Condition, evaluate_proxies

    conditions = [Condition.parse(c) for c in args.conditions.split(",") if c]
    result = evaluate_proxies(_model(args), conditions, args.seed, args.seconds, args.shadow_model,
                              args.shadow_every)
    for proxy, c in result["rank_correlation"].items():
        print(f"[proxies] {proxy} vs true {c['against']}: Spearman {c['spearman']} over {c['points']} "
              f"(condition, camera) points")
    emit(result)
    return 0


def run_view_reference(args) -> int:
    """Each camera's reference view, stored with the site's calibration, so the detector's drift monitor catches a
    camera that was already moved when the graph started (without one it compares with its first frames)."""
    import time

    from perception_nodes.graph import camera_parameters
    from perception_nodes.monitoring.drift import save_view_reference, view_reference_from_frames, view_reference_path
    from perception_nodes.site.manifest import load_manifest
    from perception_nodes.sources import SourceType, make_source

    site = load_manifest(args.site)
    if args.frames < 1 or args.every_s <= 0:
        print("--frames must be >= 1 and --every-s > 0", file=sys.stderr)
        return 2
    cameras = [c for c in site.cameras if not args.cameras or c.id in args.cameras.split(",")]
    written = {}
    for camera in cameras:
        params = camera_parameters(camera, seed=args.seed)
        # One pass through a recording: a looped file would offer the same frames again as if they were new.
        source = make_source(params["source_type"], params.get("source", ""), scene=params.get("scene", "default"),
                             camera_id=camera.id, seed=params.get("seed"),
                             loop=camera.source.type is SourceType.SYNTHETIC)
        frames = []
        source.open()
        try:
            step = max(1, round(args.every_s * source.native_fps)) if source.native_fps else 0
            while len(frames) < args.frames:
                if source.clocked:  # renders the frame of a given time: no need to render the ones between
                    frame = source.read(len(frames) * step)
                else:
                    for _ in range(max(1, step) - 1):  # a file or device: read through to the next sample
                        source.read()
                    frame = source.read()
                    if not step:
                        time.sleep(args.every_s)
                if frame is None:
                    break
                frames.append(frame.image)
        finally:
            source.close()
        if len(frames) < args.frames:
            print(f"{camera.id}: only {len(frames)} of {args.frames} frames from {source.describe()}; "
                  "nothing written", file=sys.stderr)
            return 1
        path = save_view_reference(view_reference_path(site.calibration_dir, camera.id),
                                   view_reference_from_frames(frames))
        written[camera.id] = str(path)
        print(f"[drift] {camera.id}: reference view from {len(frames)} frames, {args.every_s:g} s apart -> {path}")
    emit({"site": str(site.path), "frames": args.frames, "every_s": args.every_s, "written": written})
    return 0


def add_parsers(sub, eval_sub) -> None:
    drift = sub.add_parser("drift", help="drift references of models")
    drift_sub = drift.add_subparsers(dest="drift_command", required=True)
    ref = drift_sub.add_parser("reference", help="build a model's reference feature distributions from its "
                                                 "validation frames and register them with the model version")
    ref.add_argument("--model", default=None, help="name@version (default: the model config/perception.yaml runs)")
    ref.add_argument("--scene", default="default")
    ref.add_argument("--seeds", default="200-201", help="the seeds the model's card was validated on")
    ref.add_argument("--frame-step", type=int, default=5)
    ref.set_defaults(func=run_reference)
    view = drift_sub.add_parser("view-reference", help="store each camera's reference view with the site's "
                                                       "calibration (run after calibrating a camera)")
    view.add_argument("--site", default="default", help="site name under config/sites/ or a manifest path")
    view.add_argument("--cameras", default="", help="comma-separated camera ids (default: every camera)")
    view.add_argument("--frames", type=int, default=10, help="frames per camera; their median is the view")
    view.add_argument("--every-s", type=float, default=2.0, help="seconds between the frames (moving objects "
                                                                 "then drop out of the median)")
    view.add_argument("--seed", type=int, default=None, help="synthetic cameras: the scene seed")
    view.set_defaults(func=run_view_reference)

    ev = eval_sub.add_parser("drift", help="drift monitor on known conditions: reference-condition runs (no flag "
                                           "allowed), night, a moved camera; Evidently's defaults as the baseline")
    ev.add_argument("--model", default=None)
    ev.add_argument("--config", default=None, help="drift rules (default: config/drift.yaml)")
    ev.add_argument("--scene", default="default", help="the reference conditions' scene")
    ev.add_argument("--quiet-seeds", default="311,312")
    ev.add_argument("--quiet-seconds", type=float, default=600.0)
    ev.add_argument("--night-scene", default="night")
    ev.add_argument("--night-seed", type=int, default=311)
    ev.add_argument("--night-seconds", type=float, default=120.0)
    ev.add_argument("--bump-seed", type=int, default=311)
    ev.add_argument("--bump-deg", type=float, default=1.0)
    ev.add_argument("--bump-at", type=float, default=60.0, help="scene time of the bump, s")
    ev.add_argument("--bump-seconds", type=float, default=150.0)
    ev.add_argument("--sample-hz", type=float, default=1.0, help="frames per camera per second of scene")
    ev.add_argument("--eval-period", type=float, default=5.0)
    ev.set_defaults(func=run_eval)

    from perception_nodes.evaluation.proxies import DEFAULT_CONDITIONS

    px = eval_sub.add_parser("proxies", help="FP/FN proxies (no ground truth) against the true FP/FN rates of "
                                             "degraded runs: Spearman rank correlation per proxy")
    px.add_argument("--model", default=None)
    px.add_argument("--conditions", default=",".join(DEFAULT_CONDITIONS),
                    help="comma list of SCENE[+imgszN][+noiseN][+bumpN]")
    px.add_argument("--seed", type=int, default=320)
    px.add_argument("--seconds", type=float, default=20.0)
    px.add_argument("--shadow-model", default="yolov8n-lot@4", help="the shadow model for shadow disagreement "
                                                                     "('' : none)")
    px.add_argument("--shadow-every", type=int, default=5, help="run the shadow on every N-th frame")
    px.set_defaults(func=run_eval_proxies)
