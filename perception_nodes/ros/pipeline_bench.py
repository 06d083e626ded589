"""`perception bench pipeline`: end-to-end latency of a running site, from the stamps, and what each process holds.

The graph runs as `perception up` runs it; this process subscribes to every camera's images, detections and
tracks. A frame's stamp is its capture time (for synthetic cameras its scene time on the node clock), so
receipt time - stamp is the honest age of what arrives at each stage. The per-stage breakdown comes from those
ages (capture -> image received here, -> detections, -> tracks) and from the nodes' own health reports
(detector pass time, tracker update time); resident memory and the CPU each process used while measuring
(in cores: 0.03 is 3 % of one core) are read from /proc for every process of the graph.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from perception_nodes.runner import GraphRunner

MAX_SAMPLES = 3000  # per-frame ages kept in the result


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the node executables re-exec themselves once)."""
    from perception_nodes.heap import resident_bytes

    return sum((resident_bytes(candidate) or 0) for candidate in [pid, *_children(pid)]) / 2**20


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far."""
    import os

    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for candidate in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{candidate}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def _children(pid: int) -> list[int]:
    found = []
    for child in Path("/proc").glob("[0-9]*"):
        try:
            fields = (child / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(child.name))
            found.extend(_children(int(child.name)))
    return found


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    array = np.asarray(values)
    return {"p50": round(float(np.percentile(array, 50)), 1), "p95": round(float(np.percentile(array, 95)), 1),
            "p99": round(float(np.percentile(array, 99)), 1), "n": int(array.size)}


def bench_pipeline(specs, duration_s: float = 20.0, startup_timeout_s: float = 120.0, log=print) -> dict:
    import rclpy
    import rclpy.executors
    from sensor_msgs.msg import Image

    from perception_nodes.msg import DetectionArray, NodeHealth, TrackArray
    from perception_nodes.ros import qos
    from perception_nodes.ros.health import HEALTH_TOPIC

    cameras = [s.parameters["camera_id"] for s in specs if s.executable == "camera"]
    rclpy.init(args=[])
    node = rclpy.create_node("pipeline_bench")
    lock = threading.Lock()
    ages = {stage: {c: [] for c in cameras} for stage in ("image", "detections", "tracks")}
    by_stamp = {stage: {} for stage in ("image", "detections", "tracks")}  # (camera, stamp) -> age, to pair stages
    track_times = {c: [] for c in cameras}
    health: dict[str, object] = {}
    counting = threading.Event()

    def on(stage, cam, msg):
        now = node.get_clock().now().nanoseconds
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        age_ms = (now - stamp) / 1e6
        with lock:
            if stage == "tracks":
                track_times[cam].append(now / 1e9)
            if counting.is_set():
                ages[stage][cam].append(age_ms)
                by_stamp[stage][(cam, stamp)] = age_ms

    for spec in specs:
        if spec.executable != "camera":
            continue
        cam, ns = spec.parameters["camera_id"], spec.namespace.rstrip("/")
        image_qos = qos.image_profile(spec.parameters.get("image_qos", "reliable"))
        node.create_subscription(Image, f"{ns}/image_raw", lambda m, c=cam: on("image", c, m), image_qos)
        node.create_subscription(DetectionArray, f"{ns}/detections", lambda m, c=cam: on("detections", c, m),
                                 qos.RESULTS)
        node.create_subscription(TrackArray, f"{ns}/tracks", lambda m, c=cam: on("tracks", c, m), qos.RESULTS)
    node.create_subscription(NodeHealth, HEALTH_TOPIC, lambda m: health.__setitem__(m.node_name, m), qos.HEALTH)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    runner = GraphRunner(specs)
    runner.start()
    spin.start()
    try:
        started = time.monotonic()
        while time.monotonic() - started < startup_timeout_s:
            with lock:
                if all(track_times[c] for c in cameras):
                    break
            if not runner.wait(0.2):
                break
        startup_s = time.monotonic() - started
        log(f"[bench] every camera's tracks after {startup_s:.1f} s; measuring {duration_s:.0f} s")
        with lock:
            for cam in cameras:
                track_times[cam].clear()
        cpu_before = {e.spec.fully_qualified_name: cpu_seconds(e.process.pid) for e in runner.processes
                      if e.process.poll() is None}
        measure_began = time.monotonic()
        counting.set()
        runner.wait(duration_s)
        # A short window on a loaded machine can end before a stage delivered for every camera (a batching
        # detector serves one camera late): measure on until each has, within the startup timeout.
        while time.monotonic() - measure_began < max(duration_s, startup_timeout_s):
            with lock:
                if all(ages[stage][c] for stage in ages for c in cameras):
                    break
            if not runner.wait(0.2):
                break
        counting.clear()
        measured_s = time.monotonic() - measure_began
        cpu_share = {e.spec.fully_qualified_name:
                     round((cpu_seconds(e.process.pid) - cpu_before.get(e.spec.fully_qualified_name, 0.0))
                           / measured_s, 4)
                     for e in runner.processes if e.process.poll() is None}
        memory = {e.spec.fully_qualified_name: round(_rss_mb(e.process.pid), 1) for e in runner.processes
                  if e.process.poll() is None}
        reports = dict(health)
    finally:
        executor.shutdown(timeout_sec=1.0)
        spin.join(timeout=5.0)
        runner.stop()
        node.destroy_node()
        rclpy.shutdown()
    per_camera = {}
    for cam in cameras:
        times = track_times[cam]
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        per_camera[cam] = {"capture_to_image_ms": _percentiles(ages["image"][cam]),
                           "capture_to_detections_ms": _percentiles(ages["detections"][cam]),
                           "capture_to_tracks_ms": _percentiles(ages["tracks"][cam]),
                           "track_rate_hz": round(rate, 2)}
    detector = reports.get("/detector")
    trackers = [m for name, m in reports.items() if name.endswith("/tracker")]
    breakdown = {
        "capture_to_image_p50_ms": _pooled(ages["image"]),
        "detector_pass_p50_ms": round(float(detector.processing_ms_p50), 1) if detector else None,
        "image_to_detections_p50_ms": _paired(by_stamp["image"], by_stamp["detections"]),
        "tracker_update_p50_ms": round(float(np.median([m.processing_ms_p50 for m in trackers])), 2)
        if trackers else None,
        "detections_to_tracks_p50_ms": _paired(by_stamp["detections"], by_stamp["tracks"]),
    }
    pooled = [v for values in ages["tracks"].values() for v in values]
    if len(pooled) > MAX_SAMPLES:  # evenly thinned: the regression test in `perception report` compares samples
        pooled = [pooled[i] for i in np.linspace(0, len(pooled) - 1, MAX_SAMPLES).astype(int)]
    return {"cameras": per_camera, "breakdown": breakdown, "memory_mb": memory,
            "cpu_cores": cpu_share, "cpu_cores_total": round(sum(cpu_share.values()), 3),
            "monitor_cpu_share": next((v for k, v in cpu_share.items() if k.endswith("/monitor")), None),
            "samples_ms": {"capture_to_tracks": [round(v, 1) for v in pooled]},
            "memory_total_mb": round(sum(memory.values()), 1), "duration_s": duration_s,
            "measured_s": round(measured_s, 1),
            "startup_s": round(startup_s, 1), "restarts": runner.restarts,
            "failed_nodes": sorted({f.node for f in runner.failures})}


def _pooled(by_camera: dict) -> float | None:
    values = [v for values in by_camera.values() for v in values]
    return round(float(np.median(values)), 1) if values else None


def _paired(earlier: dict, later: dict) -> float | None:
    """Median of (later stage's age - earlier stage's age) over the frames both stages delivered: the time the
    stage in between added, frame by frame (the two stages' own percentiles cover different frames)."""
    differences = [later[key] - earlier[key] for key in earlier.keys() & later.keys()]
    return round(float(np.median(differences)), 1) if differences else None
