"""`perception eval localization` and `perception bench localizer` (the harnesses: evaluation/localization.py)."""
from __future__ import annotations

from perception_nodes.cli.common import emit


def run_eval(args) -> int:
    from perception_nodes.evaluation.localization import evaluate_localization

    model = None
    if args.detections == "detector":
        from perception_nodes.cli.common import resolve_detector_model

        model = resolve_detector_model(args)
    result = evaluate_localization(args.scene, args.seed, args.frames, args.detections, model, args.appearance)
    err = result["position_error_m"]
    print(f"[eval] ours: HOTA {result['hota']:.3f} (DetA {result['deta']:.3f} AssA {result['assa']:.3f} "
          f"LocA {result['loca']:.3f}) IDF1 {result['idf1']:.3f}, {result['id_switches']} ID switches "
          f"({result['id_switches_at_handover']} at handovers); position error p50 {err['p50']} p95 {err['p95']} "
          f"RMSE {err['rmse']} m; stall occupancy {result['occupancy_accuracy']}; zone events F1 {result['event_f1']}")
    for name, other in [("baseline_nearest", result["baseline"]), *result["ablations"].items()]:
        print(f"[eval] {name}: HOTA {other['hota']:.3f} IDF1 {other['idf1']:.3f} position p50 "
              f"{other['position_error_m']['p50']} m, occupancy {other['occupancy_accuracy']}, events F1 "
              f"{other['event_f1']}")
    emit(result)
    return 0


def run_bench(args) -> int:
    from perception_nodes.evaluation.localization import bench_localizer

    result = bench_localizer(args.cameras, args.objects, args.seconds)
    print(f"[bench] localizer: {result['messages_per_s']} camera messages/s ({args.objects} tracks each; "
          f"{result['rounds_per_s']} rounds of {args.cameras} cameras/s) on one core; added latency p50 "
          f"{result['added_latency_ms_p50']} ms p99 {result['added_latency_ms_p99']} ms; baseline "
          f"{result['baseline_nearest']['messages_per_s']} messages/s")
    emit(result)
    return 0


def add_parsers(eval_sub, bench_sub, add_scene_args) -> None:
    ev = eval_sub.add_parser("localization", help="map positions, global ids (3D HOTA, IDF1), stall occupancy and "
                             "zone events of the localizer, with a nearest-neighbour baseline and ablations")
    add_scene_args(ev)
    ev.add_argument("--detections", choices=("gt-noisy", "detector"), default="gt-noisy")
    ev.add_argument("--model", default=None, help="name@version for --detections detector (default: the model "
                    "config/perception.yaml runs)")
    ev.add_argument("--appearance", default="hsv-hist", help="the detections' appearance embedding: hsv-hist, a "
                    "registered embedder name@version (e.g. reid-fleet-ov-bf16@1) or none")
    ev.add_argument("--frames", type=int, default=None, help="frames per camera (default: the whole scene)")
    ev.set_defaults(func=run_eval, result_variant=lambda a: "-".join(
        [a.detections, a.scene] + ([f"seed{a.seed}"] if a.seed is not None else [])
        + ([a.appearance.replace("@", "")] if a.appearance != "hsv-hist" else [])))
    bench = bench_sub.add_parser("localizer", help="localizer camera messages/s on one core and the latency "
                                 "it adds, vs the nearest-neighbour baseline")
    bench.add_argument("--cameras", type=int, default=4)
    bench.add_argument("--objects", type=int, default=50)
    bench.add_argument("--seconds", type=float, default=20.0, help="length of the synthetic stream (10 Hz)")
    bench.set_defaults(func=run_bench, result_variant=lambda a: "")
