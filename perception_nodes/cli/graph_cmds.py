"""`perception up` (run the graph) and `perception demo` (run it and report what arrived)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from perception_nodes.cli.common import emit
from perception_nodes.graph import DEFAULT_STAGES, STAGES, build_graph
from perception_nodes.runner import GraphRunner, RespawnPolicy, forward_signals


def add_site_args(parser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--site", default=None, help="site name under config/sites/ or a site manifest path")
    where.add_argument("--scene", default=None, help="shortcut: the synthetic site of a scene (name under "
                                                     "config/scenes/ or a scene YAML path); default: default")
    parser.add_argument("--seed", type=int, default=None, help="seed of the site's synthetic cameras")


def resolve_site(args, work_dir: str) -> str:
    """The manifest ``--site`` names, or the synthetic site of ``--scene`` (default scene when neither)."""
    if args.site:
        return args.site
    from perception_nodes.sources.synthetic import site_for_scene

    return str(site_for_scene(args.scene or "default", work_dir))


def add_graph_args(parser) -> None:
    parser.add_argument("--stages", default=",".join(DEFAULT_STAGES),
                        help=f"comma-separated stages out of {','.join(STAGES)} (default: {','.join(DEFAULT_STAGES)})")
    parser.add_argument("--namespace", default="", help="namespace for every node")
    parser.add_argument("--params-file", default=None, help="parameters YAML (default: config/perception.yaml)")
    parser.add_argument("--camera-rate-hz", type=float, default=None, help="override every camera's rate")
    parser.add_argument("--calibration-dir", default=None,
                        help="calibration folder for TF and CameraInfo (default: the manifest's calibration_dir)")
    parser.add_argument("--use-sim-time", action="store_true", help="nodes follow /clock")
    parser.add_argument("--group-trackers", action="store_true",
                        help="run the per-camera trackers in one container process (less memory)")
    parser.add_argument("--no-respawn", action="store_true",
                        help="do not restart a node that exits (default: restart with backoff, give up after "
                             f"{RespawnPolicy().max_restarts} restarts in {RespawnPolicy().window_s:.0f} s)")


def _specs(args):
    import tempfile

    args.site_path = resolve_site(args, tempfile.mkdtemp(prefix="perception-site-"))
    return build_graph(args.site_path, seed=args.seed, stages=tuple(s for s in args.stages.split(",") if s),
                       namespace=args.namespace, params_file=args.params_file, camera_rate_hz=args.camera_rate_hz,
                       calibration_dir=args.calibration_dir, group_trackers=args.group_trackers)


def run_up(args) -> int:
    runner = GraphRunner(_specs(args), use_sim_time=args.use_sim_time,
                         respawn=None if args.no_respawn else RespawnPolicy())
    forward_signals(runner)
    runner.start()
    print(f"[runner] started {len(runner.processes)} nodes; Ctrl-C stops them", flush=True)
    runner.wait(args.duration if args.duration > 0 else None)
    codes = runner.stop()
    if runner.restarts:
        print(f"[runner] restarted nodes: {runner.restarts}", file=sys.stderr)
    # Failed: a node given up on, one that exited without respawn, or one that did not stop cleanly on SIGINT
    # (0 or -SIGINT). A node that died and came back did not fail the site.
    recovered = set(runner.restarts) - set(runner.given_up)
    failed = sorted(({f.node for f in runner.failures} - recovered)
                    | {name for name, code in codes.items() if code not in (0, -2)})
    if failed:
        print(f"[runner] failed nodes: {failed}", file=sys.stderr)
        return 1
    return 0


def run_demo(args) -> int:
    from perception_nodes.ros.observer import run_demo_session

    specs = _specs(args)
    print(f"[demo] site {args.site_path}", flush=True)
    run_folder = Path("runs") / "demo" / time.strftime("%Y%m%d-%H%M%S")
    risk = next((s for s in specs if s.executable == "risk"), None)
    if risk is not None and not risk.parameters.get("decision_log"):
        folder = run_folder / "decisions"
        risk.parameters["decision_log"] = str(folder)
        print(f"[demo] risk decisions are logged to {folder} (perception explain {folder})", flush=True)
    retrieval = next((s for s in specs if s.executable == "retrieval"), None)
    if retrieval is not None:  # a fresh index per demo run, beside its decision log
        retrieval.parameters["store_dir"] = str((run_folder / "retrieval").resolve())
        print(f"[demo] the retrieval index is kept in {run_folder / 'retrieval'}", flush=True)
    monitor_spec = next((s for s in specs if s.executable == "monitor"), None)
    timeline = run_folder / "timeline.jsonl"
    if monitor_spec is not None:
        monitor_spec.parameters["timeline_path"] = str(timeline.resolve())
    ns = "/" + args.namespace.strip("/") if args.namespace.strip("/") else ""
    record_topics = []
    if any(s.executable == "localizer" for s in specs):  # what the bird's-eye view and the mosaics are drawn from
        record_topics = [f"{ns}/objects", f"{ns}/site_state"] + [
            f"{ns}/{s.parameters['camera_id']}/{name}" for s in specs if s.executable == "camera"
            for name in ("image_raw", "tracks")]
    run_folder.mkdir(parents=True, exist_ok=True)
    result = run_demo_session(specs, duration=args.duration, startup_timeout=args.startup_timeout,
                              tracking="tracking" in args.stages, monitor="monitor" in args.stages,
                              namespace=args.namespace, respawn=None if args.no_respawn else RespawnPolicy(),
                              log=lambda line: print(line, flush=True),
                              record_dir=str(run_folder / "bag") if record_topics else None,
                              record_topics=record_topics)
    for cam, stats in result["cameras"].items():
        print(f"[demo] {cam}: {stats['frames']} frames at {stats['rate_hz']} Hz, "
              f"latency p50 {stats['latency_ms_p50']} ms, up to {stats['max_objects_in_frame']} objects in view, "
              f"{stats['track_messages']} track updates ({stats['track_rate_hz']} Hz) with "
              f"{stats['distinct_track_ids']} track ids, capture->tracks p50 {stats['capture_to_tracks_ms_p50']} ms "
              f"p99 {stats['capture_to_tracks_ms_p99']} ms")
    loc = result.get("localization")
    if loc is not None:
        print(f"[demo] localizer: {loc['object_messages']} object updates, up to {loc['max_confirmed_objects']} "
              f"objects on the map, {loc['distinct_global_ids']} global ids ({loc['global_ids_seen_by_two_cameras']} "
              f"seen by two cameras at once); stalls occupied {loc['stalls_occupied']}/{loc['stalls']} "
              f"{loc['occupied']}; events {loc['events']}")
    calibration = result.get("calibration_health")
    if calibration is not None:
        print("[demo] calibration health: " + (", ".join(f"{cam} {v['state']} ({v['error_deg']} deg)"
                                                         for cam, v in calibration.items()) or "no verdict yet"))
    risk = result.get("risk")
    if risk is not None:
        print(f"[demo] risk: {risk['assessments']} assessments {risk['levels']}, commands {risk['commands']}, "
              f"{risk['fail_safe_assessments']} fail-safe; rules fired {risk['rules_fired']}")
        for change in risk["command_changes"][:8]:
            print(f"[demo]   command #{change['sequence']} -> {change['command']}"
                  f"{' (fail-safe)' if change['fail_safe'] else ''}: {change['reason']}")
    retrieval = result.get("retrieval")
    if retrieval is not None:
        if "error" in retrieval:
            print(f"[demo] retrieval: {retrieval['error']}")
        else:
            print(f"[demo] retrieval: {retrieval['items']} crops indexed ({retrieval['embedding_model']}, "
                  f"{retrieval['backend']} {retrieval['index_type']}), {retrieval['dropped_total']} dropped")
            query = retrieval.get("drive_in_out_query")
            if query:
                q, a = query["query"], query["answer"]
                print(f"[demo]   when did {q['camera_id']} track {q['track_id']} drive in? best match: "
                      f"{a['camera_id']} track {a['track_id']}, {a['seconds_before_query']} s before, score "
                      f"{a['score']} (re-ranked by {', '.join(a['moved_by']) or 'none'}) {a['thumbnail_uri']}")
            else:
                print("[demo]   no vehicle track with earlier sightings to ask about")
    result["monitor_timeline"] = _monitor_summary(timeline, next((s for s in specs if s.executable == "monitor"),
                                                                None))
    result["pictures"] = _demo_pictures(args, run_folder, timeline, result)
    emit({**result, "site": args.site_path, "scene": args.scene})
    return 0 if result["ok"] else 1


def _monitor_summary(timeline: Path, monitor_spec) -> dict | None:
    """What the monitor measured at the end of the run (its timeline's last line): data age per stage from the
    stamps (the median over the stage's topics), topics not OK, drift; and where its Prometheus endpoint was."""
    from perception_nodes.monitoring.html_report import load_timeline

    if monitor_spec is None or not timeline.is_file():
        return None
    rows = load_timeline(timeline)
    if not rows:
        return None
    last = rows[-1]
    ages = last.get("age_p50_ms_by_stage") or {}
    not_ok = {name: level for name, level in (last.get("levels") or {}).items() if level}
    port = monitor_spec.parameters.get("metrics_port", 9464)
    print(f"[demo] monitor (from the stamps): data age p50 by stage {ages} ms; not OK: "
          f"{not_ok or 'none'} (1 WARN, 2 ERROR, 3 STALE); drift (statistic / threshold) {last.get('drift') or {}}; "
          f"Prometheus was at http://127.0.0.1:{port}/metrics", flush=True)
    return {"age_p50_ms_by_stage": ages, "not_ok": not_ok, "drift": last.get("drift") or {}, "rows": len(rows)}


def _demo_pictures(args, run_folder: Path, timeline: Path, result: dict) -> dict:
    """The run's bird's-eye view and camera mosaics (from its bag) and its HTML report (the saved results and the
    monitor's timeline of this run). A failure here is reported, never the demo's."""
    from perception_nodes.errors import PerceptionError

    out: dict = {}
    if result.get("recorded"):
        from perception_nodes.monitoring.render_bag import render_bag
        from perception_nodes.site.manifest import load_manifest

        try:
            rendered = render_bag(result["recorded"]["path"], load_manifest(args.site_path), run_folder / "render",
                                  every=5, fps=2.0, log=lambda line: print(line.replace("[render]", "[demo]"),
                                                                           flush=True))
            out["render"] = rendered
        except (PerceptionError, OSError) as exc:
            print(f"[demo] bird's-eye view not rendered: {exc}", flush=True)
    try:
        from perception_nodes.fileio import atomic_write_text
        from perception_nodes.monitoring.html_report import build_html, load_history, load_timeline
        from perception_nodes.results import build_report, load_results, results_dir

        try:
            records, problems = load_results()
        except PerceptionError:  # no eval/bench run saved yet: the page still shows this run's timeline
            records, problems = {}, []
        _, summary = build_report(records, problems)
        page, html_summary = build_html(records, load_history(results_dir()),
                                        load_timeline(timeline) if timeline.is_file() else None, summary)
        atomic_write_text(run_folder / "report.html", page)
        out["report"] = str(run_folder / "report.html")
        out["plots"] = html_summary["plots"]
        print(f"[demo] HTML report of this run: {run_folder / 'report.html'} (monitor timeline {timeline})",
              flush=True)
    except (PerceptionError, OSError) as exc:
        print(f"[demo] HTML report not written: {exc}", flush=True)
    return out
