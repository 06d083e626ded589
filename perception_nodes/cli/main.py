"""`perception`: the command-line front door of perception_nodes.

Subcommands: doctor, site {check,new,from-scene}, up, demo, sim, bag {record,play,info}, calibrate {extrinsics,export},
eval <stage>, bench <what>, train, export, explain, report.
Every eval/bench/doctor prints its result as one JSON object on its last stdout line.
"""
from __future__ import annotations

import argparse
import os
import sys

from perception_nodes.cli import bag_cmds, bench, calibrate, detection_cmds, gate_cmds, graph_cmds, localization_cmds, \
    risk_cmds, site_cmds, tracking_cmds
from perception_nodes.cli.common import add_scene_args
from perception_nodes.errors import PerceptionError
from perception_nodes.rosenv import configure_dds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perception", description="perception_nodes command-line tool")
    sub = parser.add_subparsers(dest="command", required=True)

    doctor = sub.add_parser("doctor", help="check that this environment can run perception_nodes")
    doctor.set_defaults(func=lambda a: __import__("perception_nodes.cli.doctor", fromlist=["run"]).run(a))

    site_cmds.add_parsers(sub)

    up = sub.add_parser("up", help="run the node graph of a site, one process per node (ros2 launch stand-in)")
    graph_cmds.add_site_args(up)
    graph_cmds.add_graph_args(up)
    up.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
    up.set_defaults(func=graph_cmds.run_up)

    demo = sub.add_parser("demo", help="run a site's graph (default: the synthetic default site) and report what arrived")
    graph_cmds.add_site_args(demo)
    graph_cmds.add_graph_args(demo)
    demo.add_argument("--duration", type=float, default=15.0,
                      help="seconds counted once every camera delivered (default 15)")
    demo.add_argument("--startup-timeout", type=float, default=90.0,
                      help="seconds the graph may take to deliver its first output (model loading; default 90)")
    demo.set_defaults(func=graph_cmds.run_demo)

    sim = sub.add_parser("sim", help="write a synthetic scene as an MCAP bag plus ground truth")
    add_scene_args(sim)
    sim.add_argument("--out", required=True, help="output folder (gets bag/ and ground_truth.json)")
    group = sim.add_mutually_exclusive_group()
    group.add_argument("--frames", type=int, default=None, help="frames to render (default: the whole scene)")
    group.add_argument("--duration", type=float, default=None, help="seconds of scene time to render")
    sim.set_defaults(func=bag_cmds.run_sim)

    bag_cmds.add_parsers(sub)
    bench_sub = bench.add_parsers(sub, add_scene_args)
    evaluate = sub.add_parser("eval", help="evaluate a stage against synthetic ground truth; the last stdout line is JSON")
    eval_sub = evaluate.add_subparsers(dest="eval_command", required=True)
    calibrate.add_parsers(sub, eval_sub, add_scene_args)
    tracking_cmds.add_parsers(eval_sub, bench_sub, add_scene_args)
    localization_cmds.add_parsers(eval_sub, bench_sub, add_scene_args)
    train_sub, export_sub = detection_cmds.add_parsers(sub, eval_sub, add_scene_args)
    detection_cmds.add_bench_parser(bench_sub, add_scene_args)
    risk_cmds.add_eval_parser(eval_sub)
    from perception_nodes.cli import retrieval_cmds

    retrieval_cmds.add_parsers(sub, eval_sub, bench_sub, train_sub, export_sub)

    risk_cmds.add_parsers(sub)
    gate_cmds.add_parsers(sub)
    from perception_nodes.cli import monitoring_cmds

    monitoring_cmds.add_parsers(sub, eval_sub)
    render = sub.add_parser("render", help="a recorded run as pictures: bird's-eye view of the site and annotated "
                                           "camera mosaics, as PNG frames and videos")
    render.add_argument("bag", help="a bag with the localizer's objects (and, for mosaics, images and tracks)")
    render.add_argument("--site", default="default", help="the site manifest the run used (name or path)")
    render.add_argument("--out", required=True, help="folder for the PNG frames and videos")
    render.add_argument("--every", type=int, default=1, help="draw every N-th objects message")
    render.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: all)")
    render.add_argument("--fps", type=float, default=5.0, help="frames per second of the videos")
    render.set_defaults(func=_run_render)
    report = sub.add_parser("report", help="Markdown report of the latest eval/bench results against the targets")
    report.add_argument("--results", default=None, help="results folder (default: $PERCEPTION_RESULTS_DIR or "
                                                        "runs/results)")
    report.add_argument("--out", default=None, help="also write the report to this file")
    report.add_argument("--html", default=None, help="also write a self-contained HTML page with plots here")
    report.add_argument("--timeline", default=None, help="a monitor timeline (JSON lines, e.g. a demo run's) "
                                                         "for the rates and drift over time")
    report.set_defaults(func=_run_report)
    return parser


def _run_report(args) -> int:
    from pathlib import Path

    from perception_nodes.cli.common import emit
    from perception_nodes.fileio import atomic_write_text
    from perception_nodes.results import build_report, load_results

    from perception_nodes.results import results_dir

    directory = Path(args.results) if args.results else results_dir()
    records, problems = load_results(directory)
    text, summary = build_report(records, problems)
    print(text)
    if args.out:
        atomic_write_text(args.out, text)
        summary["out"] = args.out
    if args.html:
        from perception_nodes.monitoring.html_report import build_html, load_history, load_timeline

        timeline = load_timeline(args.timeline) if args.timeline else None
        page, html_summary = build_html(records, load_history(directory), timeline, summary)
        atomic_write_text(args.html, page)
        summary.update(html=args.html, **html_summary)
        print(f"HTML report: {args.html} (plots with data: "
              f"{', '.join(k for k, v in html_summary['plots'].items() if v) or 'none'})")
    emit(summary)
    return 0


def _run_render(args) -> int:
    from perception_nodes.cli.common import emit
    from perception_nodes.monitoring.render_bag import render_bag
    from perception_nodes.site.manifest import load_manifest

    emit(render_bag(args.bag, load_manifest(args.site), args.out, every=args.every, max_frames=args.max_frames,
                    fps=args.fps))
    return 0


def _save(args, argv: list[str], exit_code: int) -> None:
    """Keep an eval/bench result for `perception report`; a failure to save is reported, never fatal."""
    from perception_nodes.cli.common import last_emitted
    from perception_nodes.results import save_result

    result = last_emitted()
    if result is None or args.command not in ("eval", "bench"):
        return
    stage = getattr(args, "eval_command", None) or getattr(args, "bench_command", None) or "unknown"
    variant = getattr(args, "result_variant", None)  # e.g. eval tracking: one result per detection source
    suffix = variant(args) if variant else ""
    key = f"{args.command}-{stage}" + (f"-{suffix}" if suffix else "")
    try:
        save_result(key, argv, result, exit_code)
    except OSError as exc:
        print(f"perception: could not save the result for `perception report`: {exc}", file=sys.stderr)


def main(argv=None) -> int:
    configure_dds(os.environ)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args) or 0)
    except PerceptionError as exc:
        print(f"perception {args.command}: error: {exc}", file=sys.stderr)
        return 2
    _save(args, argv, code)
    return code


if __name__ == "__main__":
    sys.exit(main())
