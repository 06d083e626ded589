"""`perception train|export detector`, `perception eval detection` and `perception bench detector`."""
from __future__ import annotations

import time

from perception_nodes.cli.common import emit
from perception_nodes.detection.dataset import EVAL_MIN_HEIGHT_PX, EVAL_MIN_VISIBILITY, EvalPolicy
from perception_nodes.detection.registry import DEFAULT_DETECTOR as DEFAULT_MODEL
from perception_nodes.evaluation.detection import evaluate_detection, evaluate_model, parse_seeds


def run_eval(args) -> int:
    from perception_nodes.cli.common import resolve_detector_model

    entry, path = resolve_detector_model(args)
    result = evaluate_detection(path, entry.ref, args.scene, args.seed, parse_seeds(args.seeds), args.frame_step,
                                args.imgsz or entry.input_size, EvalPolicy(args.min_visibility, args.min_height_px))
    for name, values in result["per_class"].items():
        print(f"[eval] {name:8s} mAP@0.5 {values['map50']:.3f}  mAP@0.5:0.95 {values['map50_95']:.3f}")
    print(f"[eval] all      mAP@0.5 {result['map50']:.3f}  mAP@0.5:0.95 {result['map50_95']:.3f} "
          f"({result['images']} images, {result['evaluated_objects']} objects)")
    emit(result)
    return 0


def run_train(args) -> int:
    from perception_nodes.detection.train import train_detector
    from perception_nodes.world import load_scene

    scene = load_scene(args.scene)
    eval_seeds = parse_seeds(args.eval_seeds)
    base_model, init_ref = "yolov8n.yaml", None
    if args.init:
        from perception_nodes.detection.registry import ModelRegistry

        entry, path = ModelRegistry().verified_path(args.init)
        base_model, init_ref = str(path), entry.ref
    summary = train_detector(
        scene, args.name, args.version, args.work, parse_seeds(args.train_seeds), parse_seeds(args.val_seeds), eval_seeds,
        args.frame_step, args.epochs, args.imgsz, args.batch, args.hours, args.threads,
        base_model=base_model, init_ref=init_ref,
        evaluate=lambda weights: evaluate_model(weights, args.scene, eval_seeds, args.eval_frame_step, args.imgsz))
    emit(summary)
    return 0


def run_export(args) -> int:
    from perception_nodes.detection.export import export_onnx
    from perception_nodes.detection.registry import ModelRegistry

    registry = ModelRegistry()
    source = registry.resolve(args.model)
    seeds = parse_seeds(args.eval_seeds)
    evaluate = None if args.no_eval else (
        lambda weights: evaluate_model(weights, args.scene, seeds, args.eval_frame_step, source.input_size))
    started = time.perf_counter()
    entry = export_onnx(args.model, registry, evaluate)
    print(f"[export] {source.ref} -> {entry.ref} ({entry.file.name}, {entry.file.stat().st_size / 1e6:.1f} MB)")
    emit({"model": entry.ref, "source": source.ref, "file": str(entry.file), "sha256": entry.sha256,
          "size_bytes": entry.file.stat().st_size, "metrics": entry.metrics, "source_metrics": source.metrics,
          "wall_s": round(time.perf_counter() - started, 1)})
    return 0


def add_parsers(sub, eval_sub, add_scene_args) -> None:
    export = sub.add_parser("export", help="export registered models to other runtimes")
    export_sub = export.add_subparsers(dest="export_command", required=True)
    ex = export_sub.add_parser("detector", help="export a .pt detector to ONNX (dynamic batch) and register it "
                                                "as <name>-onnx@<version>")
    ex.add_argument("--model", default=DEFAULT_MODEL, help="name@version of a .pt entry in models/manifest.yaml")
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
    det.set_defaults(func=run_train)

    ev = eval_sub.add_parser("detection", help="mAP of a registered detector on held-out seeds (pycocotools)")
    add_scene_args(ev)
    ev.add_argument("--model", default=None, help="name@version from models/manifest.yaml (default: the model "
                    "config/perception.yaml runs)")
    ev.add_argument("--seeds", default="200-201", help="held-out seeds when --seed is not given")
    ev.add_argument("--imgsz", type=int, default=0, choices=range(0, 4097), metavar="PX",
                    help="inference input size (default 0: the model's, as the node runs it)")
    ev.add_argument("--frame-step", type=int, default=30)
    ev.add_argument("--min-height-px", type=float, default=EVAL_MIN_HEIGHT_PX,
                    help="objects shorter than this are ignore regions (neither hits nor misses)")
    ev.add_argument("--min-visibility", type=float, default=EVAL_MIN_VISIBILITY,
                    help="objects less visible than this fraction are ignore regions")
    # Saved results (`perception report`): a run at another input size than the model's is kept apart.
    # Saved results keep one latest run per model (the configured one under the plain key) and input size.
    ev.set_defaults(func=run_eval, result_variant=lambda a: "-".join(
        part for part in (getattr(a, "model_key", ""), f"imgsz{a.imgsz}" if a.imgsz else "") if part))


def run_bench(args) -> int:
    """Raw ultralytics vs the detector node through DDS on the same frames; batched vs single camera."""
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
    print(f"[bench] raw ultralytics: {raw_single_fps:.1f} frames/s single, {raw_batched_fps:.1f} frames/s batched x{len(cams)}")
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
    bench = bench_sub.add_parser("detector", help="raw ultralytics vs the node via DDS; batched vs single camera")
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
    bench.set_defaults(func=run_bench, result_variant=lambda a: "-".join(
        part for part in (getattr(a, "model_key", ""), f"batch{a.max_batch}" if a.max_batch else "",
                          f"streams{a.cpu_streams}" if a.cpu_streams else "") if part))
