"""`perception bench <what>`: measurements printed as one JSON line."""
from __future__ import annotations

from perception_nodes.cli.common import emit


def bench_world(args) -> int:
    """Render frames/s per 640x480 camera on one core, and Image conversion throughput."""
    from perception_nodes.evaluation.world import bench_world as measure

    result = measure(args.scene, args.seed, args.frames, args.conversions)
    for cam, value in result["fps_by_camera"].items():
        print(f"render {cam}: {value:.1f} frames/s (one core)")
    print(f"Image conversion: {result['gb_per_s']} GB/s round trip (encode {result['encode_gb_per_s']}, "
          f"decode+copy {result['decode_copy_gb_per_s']}), zero-copy decode {result['decode_view_us']} us")
    emit(result)
    return 0


def bench_qos(args) -> int:
    """Image QoS combinations between processes: connected or not, and the share of frames delivered."""
    from perception_nodes.ros.qos_bench import bench_image_qos

    emit(bench_image_qos(args.duration))
    return 0


def bench_pipeline(args) -> int:
    """A site's graph end to end: capture -> detections -> tracks latency from the stamps, track rate, memory."""
    import tempfile

    from perception_nodes.cli.graph_cmds import resolve_site
    from perception_nodes.graph import build_graph
    from perception_nodes.ros.pipeline_bench import bench_pipeline as measure

    site = resolve_site(args, tempfile.mkdtemp(prefix="perception-site-"))
    specs = build_graph(site, seed=args.seed, stages=("site", "cameras", "detection", "tracking", "monitor"),
                        group_trackers=args.group_trackers, params_file=args.params_file)
    result = measure(specs, duration_s=args.duration, startup_timeout_s=args.startup_timeout)
    for cam, stats in result["cameras"].items():
        tracks = stats["capture_to_tracks_ms"]
        print(f"[bench] {cam}: capture->detections p50 {stats['capture_to_detections_ms']['p50']} ms, "
              f"capture->tracks p50/p95/p99 {tracks['p50']}/{tracks['p95']}/{tracks['p99']} ms, "
              f"tracks at {stats['track_rate_hz']} Hz")
    print(f"[bench] breakdown (p50): {result['breakdown']}")
    print(f"[bench] resident memory {result['memory_total_mb']} MB in {len(result['memory_mb'])} processes: "
          f"{result['memory_mb']}")
    emit({**result, "site": site})
    return 0


def add_parsers(sub, add_scene_args):
    bench = sub.add_parser("bench", help="benchmarks; the last stdout line is JSON")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    world = bench_sub.add_parser("world", help="render fps per camera (one core) and image conversion GB/s")
    add_scene_args(world)
    world.add_argument("--frames", type=int, default=60)
    world.add_argument("--conversions", type=int, default=200)
    world.set_defaults(func=bench_world)
    qos = bench_sub.add_parser("qos", help="image QoS between processes: which publisher/subscriber combinations "
                                          "connect and what share of 640x480 frames each delivers")
    qos.add_argument("--duration", type=float, default=8.0, help="seconds measured per publisher QoS")
    qos.set_defaults(func=bench_qos)
    pipeline = bench_sub.add_parser("pipeline", help="a site end to end: capture->detections->tracks latency from "
                                                     "the stamps per camera, track rate, stage breakdown, memory")
    from perception_nodes.cli.graph_cmds import add_site_args

    add_site_args(pipeline)
    pipeline.add_argument("--duration", type=float, default=20.0, help="seconds measured once tracks arrive")
    pipeline.add_argument("--startup-timeout", type=float, default=120.0)
    pipeline.add_argument("--group-trackers", action="store_true", help="the trackers in one container process")
    pipeline.add_argument("--params-file", default=None, help="parameters YAML (default: config/perception.yaml)")
    pipeline.set_defaults(func=bench_pipeline)
    return bench_sub
