"""`perception bench <what>`: measurements printed as one JSON line."""
from __future__ import annotations

import sys

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


def bench_monitor(args) -> int:
    """The monitor's CPU on a 4-camera site's traffic, against a bare subscriber's on the same traffic."""
    from perception_nodes.ros.monitor_bench import bench_monitor as measure

    emit(measure(args.rate_hz, args.duration))
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
    print(f"[bench] CPU while measuring, in cores: {result['cpu_cores_total']} in all; {result['cpu_cores']}")
    emit({**result, "site": site})
    return 0


def bench_risk(args) -> int:
    """Risk decisions with N objects: the engine on a busy and a lot-like stream (against scalar pair
    evaluation), and the node in its own process over DDS."""
    from perception_nodes.evaluation.risk import bench_engine, bench_stream
    from perception_nodes.site.manifest import load_manifest

    site = load_manifest(args.site)
    if site.risk is None:
        print(f"site {args.site} has no risk section", file=sys.stderr)
        return 2
    result = {"site": str(site.path), "objects": args.objects}
    for name, parked in (("busy", 0.0), ("lot", 0.6)):
        # The lot stream (the node's) also paced at 10 Hz: what a decision costs when it comes after an idle gap.
        core = bench_engine(site.map, site.risk, args.objects, args.frames, parked, paced_hz=10.0 if parked else 0.0)
        result[name] = core
        print(f"[bench] engine, {name} stream ({args.objects} objects, {int(parked * 100)} % of vehicles parked, "
              f"{core['active_reasons_mean']} active reasons per decision): p50 {core['decision_ms_p50']} ms, p99 "
              f"{core['decision_ms_p99']} ms; scalar pairs p99 {core['scalar_pairs']['decision_ms_p99']} ms "
              f"(x{core['speedup_vs_scalar']}), same decisions: {core['same_decisions_as_scalar']}")
        if "paced" in core:
            print(f"[bench] engine, {name} stream paced at {core['paced']['rate_hz']:g} Hz (idle between decisions, "
                  f"as in the node): p50 {core['paced']['decision_ms_p50']} ms, p99 {core['paced']['decision_ms_p99']}"
                  f" ms")
    if not args.no_node:
        from perception_nodes.ros.risk_bench import bench_risk_node

        node = bench_risk_node(str(site.path), bench_stream(args.objects, args.frames, parked_share=0.6))
        result["node"] = node
        print(f"[bench] node (lot stream, 10 Hz over DDS): processing p50 {node['node_processing_ms_p50']} ms p99 "
              f"{node['node_processing_ms_p99']} ms; objects -> assessment p50 "
              f"{node['objects_to_assessment_ms_p50']} ms p99 {node['objects_to_assessment_ms_p99']} ms "
              f"({node['assessments_received']}/{node['messages']} answered)")
    result["decision_ms_p99"] = result["lot"]["decision_ms_p99"]
    result["ratio_vs_scalar"] = result["lot"]["speedup_vs_scalar"]
    emit(result)
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
    pipeline.add_argument("--duration", type=float, default=20.0,
                          help="seconds measured once tracks arrive (longer if a stage has not yet delivered for every "
                               "camera)")
    pipeline.add_argument("--startup-timeout", type=float, default=120.0)
    pipeline.add_argument("--group-trackers", action="store_true", help="the trackers in one container process")
    pipeline.add_argument("--params-file", default=None, help="parameters YAML (default: config/perception.yaml)")
    pipeline.set_defaults(func=bench_pipeline)
    monitor = bench_sub.add_parser("monitor", help="the monitor's CPU (with its metrics endpoint scraped once a "
                                                   "second) on a 4-camera site's traffic, against a bare subscriber")
    monitor.add_argument("--rate-hz", type=float, default=10.0, help="camera and fusion rate of the traffic")
    monitor.add_argument("--duration", type=float, default=20.0, help="seconds measured per process")
    monitor.set_defaults(func=bench_monitor)
    risk = bench_sub.add_parser("risk", help="risk decision time with N objects (engine on two streams, and the "
                                             "node over DDS), against scalar pair evaluation")
    risk.add_argument("--site", default="parking", help="site whose risk rules run (default: parking)")
    risk.add_argument("--objects", type=int, default=100)
    risk.add_argument("--frames", type=int, default=300, help="snapshots at 10 Hz")
    risk.add_argument("--no-node", action="store_true", help="only the engine (no node process)")
    risk.set_defaults(func=bench_risk)
    return bench_sub
