"""`perception eval tracking` and `perception bench tracker` (the harnesses: evaluation/tracking.py)."""
from __future__ import annotations

from perception_nodes.cli.common import emit
from perception_nodes.evaluation.tracking import bench_tracker, evaluate_tracking


def run_eval(args) -> int:
    model = None
    if args.detections == "detector":
        from perception_nodes.cli.common import resolve_detector_model

        model = resolve_detector_model(args)
    result = evaluate_tracking(args.scene, args.seed, args.frames, args.detections, model, args.det_conf,
                               args.appearance, peers=not args.no_peers)
    print(f"[eval] ours: HOTA {result['hota']:.3f} IDF1 {result['idf1']:.3f} MOTA {result['mota']:.3f} "
          f"ID switches {result['id_switches']}")
    for name, peer in result["peers"].items():
        print(f"[eval] {name}: HOTA {peer['hota']:.3f} IDF1 {peer['idf1']:.3f} MOTA {peer['mota']:.3f} "
              f"ID switches {peer['id_switches']}")
    emit(result)
    return 0


def run_bench(args) -> int:
    result = bench_tracker(args.objects, args.frames, args.embedding_dim, peers=not args.no_peers)
    print(f"[bench] ours: {result['updates_per_s']:.0f} updates/s with {args.objects} objects"
          f"{f', {args.embedding_dim}-d embeddings' if args.embedding_dim else ''} (one core)")
    for name, peer in result["peers"].items():
        print(f"[bench] {name}: {peer['updates_per_s']:.0f} updates/s (ours/peer {peer['ours_vs_peer_ratio']:.2f})")
    emit(result)
    return 0


def add_parsers(eval_sub, bench_sub, add_scene_args) -> None:
    ev = eval_sub.add_parser("tracking", help="HOTA/IDF1/MOTA of our tracker and BoxMOT's on identical detections")
    add_scene_args(ev)
    ev.add_argument("--detections", choices=("gt-noisy", "detector"), default="gt-noisy")
    ev.add_argument("--model", default=None, help="name@version for --detections detector (default: the model "
                    "config/perception.yaml runs)")
    ev.add_argument("--det-conf", type=float, default=0.1,
                    help="detector score floor for --detections detector; low-score boxes feed ByteTrack's second stage")
    ev.add_argument("--appearance", default="hsv-hist", metavar="EMBEDDER",
                    help="per-detection appearance embedding, as the detector node computes it (config "
                         "appearance_embedding): hsv-hist, a registered embedder name@version (e.g. "
                         "reid-fleet@1) or none; BoT-SORT gets the same embeddings")
    ev.add_argument("--frames", type=int, default=None, help="frames per camera (default: the whole scene)")
    ev.add_argument("--no-peers", action="store_true", help="skip the BoxMOT trackers")
    # Saved results (`perception report`) keep one latest run per detection source and appearance setting.
    ev.set_defaults(func=run_eval, result_variant=lambda a: "-".join(
        [a.detections] + ([a.model_key] if a.detections == "detector" and getattr(a, "model_key", "") else []) +
        (["no-appearance"] if a.appearance == "none" else []) +
        ([a.appearance.replace("@", "")] if a.appearance not in ("none", "hsv-hist") else []) +
        ([a.scene] if a.scene != "default" else []) + ([f"seed{a.seed}"] if a.seed is not None else [])))
    bench = bench_sub.add_parser("tracker", help="tracker updates/s with N objects on one core, vs BoxMOT")
    bench.add_argument("--objects", type=int, default=50)
    bench.add_argument("--frames", type=int, default=300)
    bench.add_argument("--embedding-dim", type=int, default=192, choices=range(0, 4097), metavar="N",
                       help="appearance embedding per detection (default 192, the hsv-hist size the shipped "
                            "config uses; BoT-SORT gets them too); 0: boxes only")
    bench.add_argument("--no-peers", action="store_true")
    bench.set_defaults(func=run_bench, result_variant=lambda a: "" if a.embedding_dim else "boxes-only")
