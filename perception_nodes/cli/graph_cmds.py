"""`perception up` (run the graph) and `perception demo` (run it and report what arrived)."""
from __future__ import annotations

import sys
import threading
import time

import numpy as np

from perception_nodes.cli.common import emit, ros_init
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
    parser.add_argument("--no-respawn", action="store_true",
                        help="do not restart a node that exits (default: restart with backoff, give up after "
                             f"{RespawnPolicy().max_restarts} restarts in {RespawnPolicy().window_s:.0f} s)")


def _specs(args):
    import tempfile

    args.site_path = resolve_site(args, tempfile.mkdtemp(prefix="perception-site-"))
    return build_graph(args.site_path, seed=args.seed, stages=tuple(s for s in args.stages.split(",") if s),
                       namespace=args.namespace, params_file=args.params_file, camera_rate_hz=args.camera_rate_hz,
                       calibration_dir=args.calibration_dir)


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


class _Observer:
    """In-process subscriber that measures what the graph delivers."""

    def __init__(self, rclpy, specs, namespace: str):
        from sensor_msgs.msg import Image

        from perception_nodes.msg import DetectionArray, TrackArray
        from perception_nodes.ros import qos

        self.node = rclpy.create_node("perception_demo_observer")
        self.lock = threading.Lock()
        self.frames: dict[str, int] = {}
        self.latency_ms: dict[str, list[float]] = {}
        self.first_last: dict[str, list[float]] = {}
        self.track_first_last: dict[str, list[float]] = {}
        self.gt_counts: dict[str, set] = {}
        self.track_msgs: dict[str, int] = {}
        self.track_ids: dict[str, set] = {}
        for spec in specs:
            if spec.executable != "camera":
                continue
            cam = spec.parameters["camera_id"]
            self.frames[cam], self.latency_ms[cam], self.gt_counts[cam] = 0, [], set()
            ns = spec.namespace.rstrip("/")
            self.node.create_subscription(Image, f"{ns}/image_raw", lambda m, c=cam: self._on_image(c, m), qos.IMAGE)
            self.node.create_subscription(DetectionArray, f"{ns}/ground_truth/detections",
                                          lambda m, c=cam: self._on_gt(c, m), qos.RESULTS)
            self.track_msgs[cam], self.track_ids[cam] = 0, set()
            self.node.create_subscription(TrackArray, f"{ns}/tracks", lambda m, c=cam: self._on_tracks(c, m), qos.RESULTS)

    def _on_image(self, cam, msg) -> None:
        now = self.node.get_clock().now().nanoseconds
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.frames[cam] += 1
            self.latency_ms[cam].append((now - stamp) / 1e6)
            span = self.first_last.setdefault(cam, [now, now])
            span[1] = now

    def _on_gt(self, cam, msg) -> None:
        with self.lock:
            self.gt_counts[cam].add(len(msg.detections))

    def _on_tracks(self, cam, msg) -> None:
        now = self.node.get_clock().now().nanoseconds
        with self.lock:
            self.track_msgs[cam] += 1
            self.track_ids[cam].update(t.track_id for t in msg.tracks)
            span = self.track_first_last.setdefault(cam, [now, now])
            span[1] = now

    def ready(self, tracking: bool) -> bool:
        """Every camera delivered a frame and, with tracking, a track message (the detector has its model)."""
        with self.lock:
            counts = self.track_msgs if tracking else self.frames
            return all(n > 0 for n in counts.values())

    def restart(self) -> None:
        """Forget everything counted so far: the report then covers the steady state only."""
        with self.lock:
            for cam in self.frames:
                self.frames[cam], self.latency_ms[cam], self.gt_counts[cam] = 0, [], set()
                self.track_msgs[cam], self.track_ids[cam] = 0, set()
            self.first_last.clear()
            self.track_first_last.clear()

    def report(self) -> dict:
        with self.lock:
            cameras = {}
            for cam, count in self.frames.items():
                lat = np.asarray(self.latency_ms[cam]) if self.latency_ms[cam] else np.zeros(1)
                cameras[cam] = {"frames": count, "rate_hz": round(_rate(count, self.first_last.get(cam)), 2),
                                "track_rate_hz": round(_rate(self.track_msgs[cam], self.track_first_last.get(cam)), 2),
                                "latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
                                "latency_ms_p95": round(float(np.percentile(lat, 95)), 2),
                                "max_objects_in_frame": max(self.gt_counts[cam], default=0),
                                "track_messages": self.track_msgs[cam], "distinct_track_ids": len(self.track_ids[cam])}
            return cameras


def _rate(count: int, span: list[float] | None) -> float:
    """Messages per second between the first and the last one (ns stamps)."""
    if count < 2 or not span or span[1] <= span[0]:
        return 0.0
    return (count - 1) / ((span[1] - span[0]) / 1e9)


def _query_monitor(rclpy, node, namespace: str, timeout: float = 5.0) -> dict:
    from perception_nodes.srv import GetHealth

    name = f"{namespace.rstrip('/')}/monitor/get_health" if namespace else "/monitor/get_health"
    client = node.create_client(GetHealth, name)
    if not client.wait_for_service(timeout_sec=timeout):
        return {"ok": False, "error": f"service {name} not available"}
    future = client.call_async(GetHealth.Request())
    deadline = time.monotonic() + timeout
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.05)  # the caller's executor thread spins the node
    if not future.done():
        return {"ok": False, "error": f"{name} did not answer within {timeout} s"}
    response = future.result()
    return {"ok": response.status.code == 0,
            "nodes": {n.node_name: {"level": int(n.level), "processed": int(n.processed), "dropped": int(n.dropped),
                                    "errors": int(n.errors), "p50_ms": round(float(n.processing_ms_p50), 2)}
                      for n in response.nodes}}


def run_demo(args) -> int:
    specs = _specs(args)
    rclpy = ros_init()
    runner = GraphRunner(specs, respawn=None if args.no_respawn else RespawnPolicy())
    forward_signals(runner)
    observer = _Observer(rclpy, specs, args.namespace)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(observer.node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    runner.start()
    spin.start()
    tracking = "tracking" in args.stages
    print(f"[demo] site {args.site_path}: {len(specs)} nodes; waiting for the first "
          f"{'tracks' if tracking else 'frames'} of every camera (model loading)", flush=True)
    started = time.monotonic()
    alive = True
    while alive and not observer.ready(tracking) and time.monotonic() - started < args.startup_timeout:
        alive = runner.wait(0.2)
    startup_s = time.monotonic() - started
    ready = observer.ready(tracking)
    if ready:
        print(f"[demo] every camera delivered after {startup_s:.1f} s; counting for {args.duration:.0f} s", flush=True)
        observer.restart()
        alive = alive and runner.wait(args.duration)
    else:
        print(f"[demo] not every camera delivered within {args.startup_timeout:.0f} s", flush=True)
    monitor = _query_monitor(rclpy, observer.node, args.namespace) if "monitor" in args.stages else {"ok": True}
    cameras = observer.report()
    executor.shutdown(timeout_sec=1.0)
    spin.join(timeout=5.0)  # no spinning thread may outlive the context
    runner.stop()
    observer.node.destroy_node()
    rclpy.shutdown()
    ok = ready and alive and not runner.given_up and all(c["frames"] > 0 for c in cameras.values()) and \
        monitor.get("ok", False) and (not tracking or all(c["track_messages"] > 0 for c in cameras.values()))
    for cam, stats in cameras.items():
        print(f"[demo] {cam}: {stats['frames']} frames at {stats['rate_hz']} Hz, "
              f"latency p50 {stats['latency_ms_p50']} ms, up to {stats['max_objects_in_frame']} objects in view, "
              f"{stats['track_messages']} track updates ({stats['track_rate_hz']} Hz) with "
              f"{stats['distinct_track_ids']} track ids")
    emit({"ok": bool(ok), "site": args.site_path, "scene": args.scene, "startup_s": round(startup_s, 1), "duration_s": args.duration,
          "cameras": cameras, "monitor": monitor,
          "failed_nodes": sorted({f.node for f in runner.failures}), "restarts": runner.restarts,
          "given_up": runner.given_up})
    return 0 if ok else 1
