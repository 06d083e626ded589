"""`perception train|export detector`, `perception eval detection` and `perception bench detector`."""
from __future__ import annotations

import time

from perception_nodes.cli.common import emit
from perception_nodes.detection.dataset import EVAL_MIN_HEIGHT_PX, EVAL_MIN_VISIBILITY, EvalPolicy
from perception_nodes.detection.registry import DEFAULT_DETECTOR as DEFAULT_MODEL
from perception_nodes.errors import ConfigError
from perception_nodes.evaluation.detection import evaluate_detection, evaluate_model, parse_seeds


def run_eval(args) -> int:
    from perception_nodes.cli.common import resolve_detector_model

    if args.all_scenes:
        return run_eval_all_scenes(args)
    entry, path = resolve_detector_model(args)
    result = evaluate_detection(path, entry.ref, args.scene, args.seed, parse_seeds(args.seeds), args.frame_step,
                                args.imgsz or entry.input_size, EvalPolicy(args.min_visibility, args.min_height_px),
                                entry=entry)
    if args.record:  # the registry's figures come from this held-out evaluation, per class included
        from perception_nodes.detection.registry import ModelRegistry

        registry = ModelRegistry()
        recorded = registry.resolve(entry.ref)
        recorded.metrics = {"map50": result["map50"], "map50_95": result["map50_95"],
                            "per_class": result["per_class"], "seeds": result["seeds"],
                            "frame_step": result["frame_step"], "scene": result["scene"]}
        registry.add(recorded)
    for name, values in result["per_class"].items():
        print(f"[eval] {name:8s} mAP@0.5 {values['map50']:.3f}  mAP@0.5:0.95 {values['map50_95']:.3f}")
    print(f"[eval] all      mAP@0.5 {result['map50']:.3f}  mAP@0.5:0.95 {result['map50_95']:.3f} "
          f"({result['images']} images, {result['evaluated_objects']} objects)")
    emit(result)
    return 0


def run_eval_all_scenes(args) -> int:
    """Every evaluation scene for the model and (unless it is the configured model) the configured one, the
    per-scene per-class table, the goals and the promotion rule's verdict; ``--promote`` applies it."""
    from perception_nodes.cli.common import resolve_detector_model
    from perception_nodes.detection.mixture import load_eval_set, scene_table
    from perception_nodes.detection.promotion import goal_check, overall, promote_in_config, promotion_decision
    from perception_nodes.detection.registry import ModelRegistry
    from perception_nodes.evaluation.detection import evaluate_all_scenes
    from perception_nodes.graph import configured_detector_model

    registry = ModelRegistry()
    eval_set = load_eval_set(args.eval_set)
    scenes = [s for s in args.scenes.split(",") if s] or None
    entry, path = resolve_detector_model(args, registry)
    print(f"[eval] {entry.ref}")
    candidate = evaluate_all_scenes(path, args.imgsz or entry.input_size, eval_set, entry=entry, scenes=scenes)
    against_ref = args.against or configured_detector_model()
    reference_entry, reference_path = (entry, path) if against_ref == "none" else registry.verified_path(against_ref)
    result = {"model": entry.ref, "frame_step": eval_set.frame_step, "eval_set": eval_set.source,
              "scenes": candidate["scenes"], "overall": overall(candidate["scenes"]),
              "goals": goal_check(candidate["scenes"], eval_set)}
    reference = None
    if reference_entry.ref != entry.ref:
        print(f"[eval] against {reference_entry.ref}")
        reference = evaluate_all_scenes(reference_path, args.imgsz or reference_entry.input_size, eval_set,
                                        entry=reference_entry, scenes=scenes)["scenes"]
        decision = promotion_decision(candidate["scenes"], reference, eval_set.tolerance)
        result.update(reference={"model": reference_entry.ref, "scenes": reference,
                                 "overall": overall(reference)}, promotion=decision)
    print(f"\n{entry.ref}, overall and per class mAP@0.5 / mAP@0.5:0.95"
          + (f", change against {reference_entry.ref}:" if reference else ":"))
    print(scene_table(candidate["scenes"], reference))
    if reference:
        print(f"{reference_entry.ref}:")
        print(scene_table(reference))
    met = [name for name, g in result["goals"].items() if g["map_met"] and g["classes_met"]]
    print(f"[eval] goals met on {len(met)}/{len(result['goals'])} scenes: {', '.join(met) or 'none'}")
    if reference:
        decision = result["promotion"]
        print(f"[eval] promotion rule (tolerance {decision['tolerance']}): "
              + ("PROMOTE" if decision["promote"] else "KEEP " + reference_entry.ref) +
              ("" if decision["promote"] else " (" + "; ".join(decision["reasons"]) + ")"))
        if args.promote:
            if not decision["promote"]:
                print("[eval] --promote: not promoted (the rule says keep)")
            else:
                fallback = registry.resolve(args.fallback or entry.ref)
                promote_in_config(args.config, entry.ref, fallback.ref)
                result["promoted"] = {"model": entry.ref, "fallback_model": fallback.ref, "config": args.config}
                print(f"[eval] promoted: {args.config} now runs {entry.ref} (fallback {fallback.ref})")
    emit(result)
    return 0


def run_train(args) -> int:
    from perception_nodes.detection.train import train_detector
    from perception_nodes.world import load_scene

    scene = load_scene(args.scene)
    eval_seeds = parse_seeds(args.eval_seeds)
    mixture = None
    evaluate = lambda weights: evaluate_model(weights, args.scene, eval_seeds, args.eval_frame_step,  # noqa: E731
                                              args.imgsz)
    if args.mixture:
        from perception_nodes.detection.mixture import load_mixture
        from perception_nodes.evaluation.detection import evaluate_all_scenes

        mixture = load_mixture(args.mixture)
        evaluate = lambda weights: evaluate_all_scenes(weights, args.imgsz)  # noqa: E731
    base_model, init_ref = "yolov8n.yaml", None
    if args.init:
        from perception_nodes.detection.registry import ModelRegistry

        entry, path = ModelRegistry().verified_path(args.init)
        base_model, init_ref = str(path), entry.ref
    summary = train_detector(
        scene, args.name, args.version, args.work, parse_seeds(args.train_seeds), parse_seeds(args.val_seeds), eval_seeds,
        args.frame_step, args.epochs, args.imgsz, args.batch, args.hours, args.threads,
        base_model=base_model, init_ref=init_ref, extra_data=[b for b in args.extra_data.split(",") if b],
        evaluate=evaluate, mixture=mixture, resume=args.resume, workers=args.threads)
    emit(summary)
    return 0


def run_export(args) -> int:
    from perception_nodes.detection.export import export_onnx, register_openvino
    from perception_nodes.detection.registry import ModelRegistry

    registry = ModelRegistry()
    source = registry.resolve(args.model)
    seeds = parse_seeds(args.eval_seeds)
    started = time.perf_counter()
    if args.format == "openvino":
        evaluate = None if args.no_eval else (
            lambda weights, entry: evaluate_model(weights, args.scene, seeds, args.eval_frame_step,
                                                  source.input_size, entry=entry))
        if args.precision == "int8":
            from perception_nodes.detection.export import quantize_int8
            from perception_nodes.evaluation.detection import calibration_frames

            if args.calibration_mixture:
                from perception_nodes.detection.mixture import load_mixture
                from perception_nodes.evaluation.detection import mixture_calibration_frames

                frames = mixture_calibration_frames(load_mixture(args.calibration_mixture), args.calibration_frames)
            else:
                frames = calibration_frames(args.scene, parse_seeds(args.calibration_seeds), args.calibration_frames)
            validation = None
            if args.accuracy_control:
                from perception_nodes.evaluation.detection import AccuracyValidation, labelled_frames

                overlap = set(parse_seeds(args.validation_seeds)) & set(seeds)
                if overlap:
                    raise SystemExit(f"--validation-seeds overlap the evaluation seeds {sorted(overlap)}: the "
                                     "held-out check would no longer be held out")
                images, truth = labelled_frames(args.scene, parse_seeds(args.validation_seeds),
                                                args.validation_frame_step)
                validation = AccuracyValidation(images, truth, source.input_size)
            entry = quantize_int8(args.model, frames, registry, evaluate, validation=validation,
                                  max_drop=args.max_drop)
        else:
            entry = register_openvino(args.model, args.precision, registry, evaluate)
    else:
        evaluate = None if args.no_eval else (
            lambda weights: evaluate_model(weights, args.scene, seeds, args.eval_frame_step, source.input_size))
        entry = export_onnx(args.model, registry, evaluate)
    print(f"[export] {source.ref} -> {entry.ref} ({entry.backend} {entry.precision}, {entry.file.name}, "
          f"{entry.file.stat().st_size / 1e6:.1f} MB)")
    emit({"model": entry.ref, "source": source.ref, "file": str(entry.file), "sha256": entry.sha256,
          "backend": entry.backend, "precision": entry.precision,
          "size_bytes": entry.file.stat().st_size, "metrics": entry.metrics, "source_metrics": source.metrics,
          "eval_seeds": seeds, "wall_s": round(time.perf_counter() - started, 1)})
    return 0


def add_parsers(sub, eval_sub, add_scene_args):
    """The export, train and eval detection parsers; returns the `train` and `export` subparsers for other
    stages."""
    export = sub.add_parser("export", help="export registered models to other runtimes")
    export_sub = export.add_subparsers(dest="export_command", required=True)
    ex = export_sub.add_parser("detector", help="export a .pt detector to ONNX (dynamic batch) as <name>-onnx@V, "
                                                "or register an ONNX model's OpenVINO variant as <name>-ov-<precision>@V")
    ex.add_argument("--model", default=DEFAULT_MODEL, help="name@version: a .pt entry (onnx), an -onnx entry (openvino)")
    ex.add_argument("--format", choices=("onnx", "openvino"), default="onnx")
    ex.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32",
                    help="openvino: the inference precision (bf16 runs on CPUs with AVX512-BF16 or AMX; int8 is "
                         "NNCF post-training quantisation on calibration frames)")
    ex.add_argument("--calibration-seeds", default="100-102",
                    help="int8: training seeds the calibration frames come from (never evaluation seeds)")
    ex.add_argument("--calibration-frames", type=int, default=60, help="int8: calibration frames")
    ex.add_argument("--calibration-mixture", default=None, metavar="YAML",
                    help="int8: draw the calibration frames from a training mixture's sites (config/detector_training"
                         ".yaml) instead of --scene's --calibration-seeds")
    ex.add_argument("--accuracy-control", action="store_true",
                    help="int8: NNCF keeps the layers that cost most accuracy in floating point until the worst fall "
                         "of overall/car/person mAP@0.5 and mAP@0.5:0.95 on the validation seeds is <= --max-drop")
    ex.add_argument("--validation-seeds", default="190-191", help="int8 --accuracy-control: seeds of --scene the "
                                                                  "accuracy is checked on (never evaluation seeds)")
    ex.add_argument("--validation-frame-step", type=int, default=30)
    ex.add_argument("--max-drop", type=float, default=0.004,
                    help="int8 --accuracy-control: the largest fall allowed (the selection rule's tolerance is 0.005)")
    ex.add_argument("--scene", default="default", help="scene for the export's own mAP check")
    ex.add_argument("--eval-seeds", default="200-201")
    ex.add_argument("--eval-frame-step", type=int, default=30)
    ex.add_argument("--no-eval", action="store_true", help="copy the source's metrics instead of measuring")
    ex.set_defaults(func=run_export)

    train = sub.add_parser("train", help="train models on the synthetic world")
    train_sub = train.add_subparsers(dest="train_command", required=True)
    det = train_sub.add_parser("detector", help="export YOLO data, train a nano YOLO on the CPU, register it with a card")
    det.add_argument("--scene", default="default")
    det.add_argument("--name", default=DEFAULT_MODEL)
    det.add_argument("--version", required=True)
    det.add_argument("--work", default="runs/train_detector", help="dataset and ultralytics run folder")
    det.add_argument("--train-seeds", default="100-111")
    det.add_argument("--val-seeds", default="190-191")
    det.add_argument("--eval-seeds", default="200-201", help="held-out seeds for the model card's metrics")
    det.add_argument("--frame-step", type=int, default=15, help="every Nth frame of each seed")
    det.add_argument("--eval-frame-step", type=int, default=30)
    det.add_argument("--epochs", type=int, default=30)
    det.add_argument("--hours", type=float, default=None, help="ultralytics' time budget (overrides epochs)")
    det.add_argument("--imgsz", type=int, default=640)
    det.add_argument("--batch", type=int, default=8)
    det.add_argument("--threads", type=int, default=2)
    det.add_argument("--init", default=None, metavar="NAME@VERSION",
                     help="start from a registered model's weights (fine-tune) instead of random initialisation")
    det.add_argument("--extra-data", default="", metavar="BAG[,BAG]",
                     help="capture bags of the detector node (capture_dir): their frames with ground truth are "
                          "added to the training split")
    det.add_argument("--mixture", default=None, metavar="YAML",
                     help="train on a balanced mixture of randomised sites and conditions (config/detector_training"
                          ".yaml) instead of --scene's seeds; the card then scores every evaluation scene")
    det.add_argument("--resume", action="store_true",
                     help="go on from --work's last checkpoint (its data, arguments and optimiser state)")
    det.set_defaults(func=run_train)

    ev = eval_sub.add_parser("detection", help="mAP of a registered detector on held-out seeds (pycocotools)")
    add_scene_args(ev)
    ev.add_argument("--model", default=None, help="name@version from models/manifest.yaml (default: the model "
                    "config/perception.yaml runs)")
    ev.add_argument("--seeds", default="200-201", help="held-out seeds when --seed is not given")
    ev.add_argument("--imgsz", type=int, default=0, choices=range(0, 4097), metavar="PX",
                    help="inference input size (default 0: the model's, as the node runs it)")
    ev.add_argument("--frame-step", type=int, default=30)
    ev.add_argument("--all-scenes", action="store_true",
                    help="every evaluation scene of --eval-set at its own seeds, per scene and class, compared with "
                         "--against on the same frames, with the goals and the promotion rule's verdict")
    ev.add_argument("--eval-set", default=None, help="evaluation scenes file (default config/detector_eval.yaml)")
    ev.add_argument("--scenes", default="", help="--all-scenes: only these scenes (comma-separated)")
    ev.add_argument("--against", default=None, metavar="NAME@VERSION",
                    help="--all-scenes: the current model (default: the one config/perception.yaml runs; 'none': "
                         "no comparison)")
    ev.add_argument("--promote", action="store_true",
                    help="--all-scenes: when the rule says so, make --model the detector of --config")
    ev.add_argument("--fallback", default=None, metavar="NAME@VERSION",
                    help="--promote: the fallback model to configure (default: the promoted model itself)")
    ev.add_argument("--config", default="config/perception.yaml", help="--promote: the parameters file to update")
    ev.add_argument("--record", action="store_true",
                    help="write the figures (per class too) into the model's registry entry (models/manifest.yaml)")
    ev.add_argument("--min-height-px", type=float, default=EVAL_MIN_HEIGHT_PX,
                    help="objects shorter than this are ignore regions (neither hits nor misses)")
    ev.add_argument("--min-visibility", type=float, default=EVAL_MIN_VISIBILITY,
                    help="objects less visible than this fraction are ignore regions")
    # Saved results (`perception report`): a run at another input size than the model's is kept apart.
    # Saved results keep one latest run per model (the configured one under the plain key) and input size.
    ev.set_defaults(func=run_eval, result_variant=lambda a: "-".join(
        part for part in ("all-scenes" if a.all_scenes else "", getattr(a, "model_key", ""),
                          f"imgsz{a.imgsz}" if a.imgsz else "") if part))
    return train_sub, export_sub


def run_bench_backends(args) -> int:
    """Every runtime variant of the model on the same frames; which one the site should run (selection.py)."""
    from perception_nodes.cli.common import resolve_detector_model
    from perception_nodes.detection.registry import ModelRegistry
    from perception_nodes.detection.selection import Variant, choose_default
    from perception_nodes.evaluation.detection import bench_backends, bench_frames, runtime_variants

    registry = ModelRegistry()
    entry, _ = resolve_detector_model(args, registry)
    variants = [registry.verified_path(e.ref) for e in runtime_variants(registry, entry.ref)]
    reference_entry = next((e for e, _ in variants if e.backend == "ultralytics" and e.file.suffix == ".onnx"), None)
    if reference_entry is None:
        raise ConfigError(f"{entry.ref} has no ONNX Runtime variant to measure the others against")
    _, frames = bench_frames(args.scene, args.seed, args.frames)
    flat = [frame for step in frames for frame in step]
    results = bench_backends(variants, flat, rounds=args.rounds)
    reference_fps = results[reference_entry.ref]["frames_per_s"]
    candidates = {ref: Variant(ref, next(e for e, _ in variants if e.ref == ref).metrics, r["frames_per_s"])
                  for ref, r in results.items()}
    chosen = choose_default(candidates[reference_entry.ref],
                            [v for ref, v in candidates.items() if ref != reference_entry.ref],
                            tolerance=args.tolerance)
    for ref, result in results.items():
        result["vs_onnxruntime_fp32"] = result["frames_per_s"] / reference_fps
        result["accuracy_violations"] = candidates[ref].violations
        mark = "*" if ref == chosen.ref else " "
        print(f"[bench] {mark} {ref:26s} {result['backend']:11s} {result['precision']:5s} "
              f"{result['frames_per_s']:6.1f} frames/s  p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms  "
              f"x{result['vs_onnxruntime_fp32']:.2f}  {'; '.join(candidates[ref].violations) or 'accuracy kept'}")
    print(f"[bench] fastest variant within {args.tolerance} of {reference_entry.ref}'s held-out mAP: {chosen.ref}")
    emit({"model": entry.ref, "reference": reference_entry.ref, "frames": len(flat), "rounds": args.rounds,
          "tolerance": args.tolerance, "variants": results, "chosen": chosen.ref,
          "chosen_vs_onnxruntime_fp32": results[chosen.ref]["vs_onnxruntime_fp32"]})
    return 0


def run_bench(args) -> int:
    """Raw ultralytics vs the detector node through DDS on the same frames; batched vs single camera."""
    if args.backends:
        return run_bench_backends(args)
    from perception_nodes.cli.common import resolve_detector_model
    from perception_nodes.evaluation.detection import bench_frames
    from perception_nodes.ros.detector_bench import bench_detector

    entry, path = resolve_detector_model(args)
    cams, frames = bench_frames(args.scene, args.seed, args.frames)
    result = bench_detector(entry, path, cams, frames, rounds=args.rounds, max_batch=args.max_batch,
                            cpu_streams=args.cpu_streams, stagger_ms=args.stagger_ms, verbose=args.verbose)
    rounds, cams, p50, p99 = result["per_round"], cams, result["p50_ms"], result["p99_ms"]
    raw_single_fps, raw_batched_fps = result["raw_fps"], result["raw_batched_fps"]
    node_single_fps, node_batched_fps = result["node_fps"], result["node_batched_fps"]
    print(f"[bench] medians of {len(rounds)} interleaved rounds (per-round node/raw "
          f"{result['node_vs_raw_ratio_min']:.2f}-{result['node_vs_raw_ratio_max']:.2f}, batched/single "
          f"{result['batched_vs_single_ratio_min']:.2f}-{result['batched_vs_single_ratio_max']:.2f})")
    print(f"[bench] raw {entry.backend} ({entry.ref}): {raw_single_fps:.1f} frames/s single, {raw_batched_fps:.1f} frames/s batched x{len(cams)}")
    print(f"[bench] backend in process, batch split over {result['cpu_streams']} CPU stream(s): "
          f"{result['streams_batched_fps']:.1f} frames/s batched x{len(cams)} "
          f"(ratio to raw batched {result['streams_batched_vs_raw_batched_ratio']:.2f})")
    print(f"[bench] node via DDS: {node_single_fps:.1f} frames/s single (ratio {result['node_vs_raw_ratio']:.2f}), "
          f"{node_batched_fps:.1f} frames/s batched x{len(cams)} (ratio {result['batched_vs_single_ratio']:.2f}); "
          f"unloaded latency p50 {p50:.1f} ms p99 {p99:.1f} ms; {result['node_frames_dropped']} frames unanswered "
          f"({result['frames_lost_in_transport']} lost in transport, {result['node_frames_superseded']} superseded "
          f"at the node); {result['batched_frames_per_pass']} frames per pass batched")
    emit(result)
    return 0


def add_bench_parser(bench_sub, add_scene_args) -> None:
    bench = bench_sub.add_parser("detector", help="the raw backend vs the node via DDS; batched vs single camera")
    add_scene_args(bench)
    bench.add_argument("--model", default=None, help="name@version (default: the model config/perception.yaml runs)")
    bench.add_argument("--frames", type=int, default=40, choices=range(1, 10_001), metavar="N",
                       help="frames per camera in each measurement (1-10000)")
    bench.add_argument("--rounds", type=int, default=5, choices=range(1, 101), metavar="N",
                       help="interleaved rounds (raw, node, raw batched, streams batched, node batched); ratios are "
                            "per-round medians")
    bench.add_argument("--max-batch", type=int, default=0, choices=range(0, 65), metavar="N",
                       help="the node's max_batch (0: one pass for all cameras)")
    bench.add_argument("--cpu-streams", type=int, default=0, choices=range(0, 65), metavar="N",
                       help="the node's cpu_streams (0: one per core, at most one per camera; 1: one session)")
    bench.add_argument("--stagger-ms", type=float, default=5.0,
                       help="gap between the cameras' frames of one step (cameras are not shutter-synchronised)")
    bench.add_argument("--verbose", action="store_true", help="report stalls (waits over 0.5 s) while streaming")
    bench.add_argument("--backends", action="store_true",
                       help="instead: every runtime variant of the model (ONNX Runtime, OpenVINO FP32/BF16/INT8) on the "
                            "same frames, interleaved; and the fastest that keeps the FP32 model's accuracy")
    bench.add_argument("--tolerance", type=float, default=0.005,
                       help="--backends: largest mAP loss accepted against the ONNX Runtime FP32 model")
    bench.set_defaults(func=run_bench, result_variant=lambda a: "-".join(
        part for part in (getattr(a, "model_key", ""), "backends" if a.backends else "",
                          f"batch{a.max_batch}" if a.max_batch else "",
                          f"streams{a.cpu_streams}" if a.cpu_streams else "") if part))
