"""`perception bench monitor`: the monitor's CPU on a site's traffic, against a bare subscriber's.

This process plays a default-like site's traffic on a private domain: every camera's camera_info, detections (12
per frame, with 96-float embeddings) and tracks (10) at the camera rate, objects (12) and risk assessments at the
same rate, and the health of 15 nodes at 1 Hz; it scrapes the monitor's Prometheus endpoint once a second, so the
endpoint's cost counts. The monitor runs as its own process (as `perception up` runs it) and its CPU time is read
from /proc. The baseline, in the same run on the same traffic: a bare subscriber process with one rclpy callback
per message that does nothing (``python -m perception_nodes.ros.monitor_bench --bare``), the least any monitor
that takes every message through the executor pays.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from perception_nodes.ros.pipeline_bench import cpu_seconds

CAMERAS = ("cam0", "cam1", "cam2", "cam3")


def _traffic(node, rate_hz: float, stop: threading.Event, started: threading.Event) -> None:
    import rclpy
    from sensor_msgs.msg import CameraInfo

    from perception_nodes.msg import (Detection, DetectionArray, LocalizedObject, LocalizedObjectArray, NodeHealth,
                                      RiskAssessment, Track, TrackArray)
    from perception_nodes.ros import qos

    pubs = {c: (node.create_publisher(CameraInfo, f"/{c}/camera_info", qos.IMAGE),
                node.create_publisher(DetectionArray, f"/{c}/detections", qos.RESULTS),
                node.create_publisher(TrackArray, f"/{c}/tracks", qos.RESULTS)) for c in CAMERAS}
    objects_pub = node.create_publisher(LocalizedObjectArray, "/objects", qos.RESULTS)
    assessment_pub = node.create_publisher(RiskAssessment, "/risk/assessment", qos.COMMANDS)
    health_pub = node.create_publisher(NodeHealth, "/perception/health", qos.HEALTH)
    detections = DetectionArray(model="yolov8n-lot-onnx@3", detections=[
        Detection(class_id=0, class_name="car", score=0.8, embedding=[0.1] * 96) for _ in range(12)])
    tracks = TrackArray(tracks=[Track(track_id=i + 1, state=1, class_name="car", embedding=[0.1] * 96)
                                for i in range(10)])
    objects = LocalizedObjectArray(objects=[LocalizedObject(global_id=i + 1, state=2) for i in range(12)])
    health = [NodeHealth(node_name=f"/node{i}", value_names=["drift.class_mix", "drift_threshold.class_mix"],
                         values=[0.1, 0.5]) for i in range(15)]
    started.set()
    began, k = time.monotonic(), 0
    while not stop.is_set():
        stamp = rclpy.time.Time(nanoseconds=node.get_clock().now().nanoseconds - 60_000_000).to_msg()
        for cam in CAMERAS:
            info = CameraInfo()
            info.header.stamp = stamp
            pubs[cam][0].publish(info)
            detections.header.stamp = tracks.header.stamp = stamp
            detections.camera_id = tracks.camera_id = cam
            pubs[cam][1].publish(detections)
            pubs[cam][2].publish(tracks)
        for o in objects.objects:
            o.last_seen = stamp
        objects.header.stamp = stamp
        objects_pub.publish(objects)
        assessment = RiskAssessment()
        assessment.header.stamp = stamp
        assessment_pub.publish(assessment)
        if k % max(1, int(round(rate_hz))) == 0:
            for h in health:
                health_pub.publish(h)
        k += 1
        stop.wait(max(0.0, began + k / rate_hz - time.monotonic()))


def _measure(command: list[str], env: dict, rate_hz: float, duration_s: float, scrape_port: int | None,
             log) -> float:
    import rclpy

    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    context = rclpy.Context()
    rclpy.init(args=[], context=context)
    node = rclpy.create_node("monitor_bench_traffic", context=context)
    stop, started = threading.Event(), threading.Event()
    thread = threading.Thread(target=_traffic, args=(node, rate_hz, stop, started), daemon=True)
    try:
        time.sleep(4.0)  # the process starts and discovery settles before the clock starts
        thread.start()
        started.wait(10.0)
        time.sleep(3.0)
        if process.poll() is not None:
            raise RuntimeError(f"{command[-1]} exited: {process.stderr.read()[-500:]}")
        before, t0 = cpu_seconds(process.pid), time.monotonic()
        scrapes = 0
        while time.monotonic() - t0 < duration_s:
            time.sleep(1.0)
            if scrape_port:
                import urllib.request

                urllib.request.urlopen(f"http://127.0.0.1:{scrape_port}/metrics", timeout=5).read()
                scrapes += 1
        share = (cpu_seconds(process.pid) - before) / (time.monotonic() - t0)
        log(f"[bench] {'monitor' if scrape_port else 'bare subscriber'}: {share * 100:.2f} % of one core"
            + (f" ({scrapes} scrapes)" if scrape_port else ""))
        return share
    finally:
        stop.set()
        thread.join(timeout=5.0)
        process.send_signal(2)
        try:
            process.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            process.kill()
        node.destroy_node()
        rclpy.shutdown(context=context)


def bench_monitor(rate_hz: float = 10.0, duration_s: float = 20.0, domain_id: int = 0, log=print) -> dict:
    import socket

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    if domain_id:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    with socket.socket() as probe:  # a free loopback port for the endpoint
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rates = ",".join([str(float(rate_hz))] * len(CAMERAS))
    monitor = [sys.executable, "-m", "perception_nodes.nodes.monitor", "--ros-args",
               "-p", f"cameras:=[{','.join(CAMERAS)}]", "-p", f"camera_rates_hz:=[{rates}]",
               "-p", f"objects_rate_hz:={float(rate_hz)}", "-p", f"metrics_port:={port}"]
    bare = [sys.executable, "-m", "perception_nodes.ros.monitor_bench", "--bare"]
    ours = _measure(monitor, env, rate_hz, duration_s, port, log)
    baseline = _measure(bare, env, rate_hz, duration_s, None, log)
    messages_per_s = rate_hz * (3 * len(CAMERAS) + 2) + 15
    return {"cameras": len(CAMERAS), "rate_hz": rate_hz, "messages_per_s": round(messages_per_s, 1),
            "duration_s": duration_s, "monitor_cpu_share": round(ours, 4),
            "baseline": {"name": "bare subscriber, one callback per message", "cpu_share": round(baseline, 4)},
            "monitor_vs_baseline": round(ours / baseline, 3) if baseline else None}


def _bare_main() -> int:
    """The baseline: every watched stream through the executor, one no-op callback per message."""
    from sensor_msgs.msg import CameraInfo

    from perception_nodes.msg import DetectionArray, LocalizedObjectArray, NodeHealth, RiskAssessment, TrackArray
    from perception_nodes.ros import qos
    from perception_nodes.ros.main import run_node
    from rclpy.node import Node

    class Bare(Node):
        def __init__(self, **kwargs):
            super().__init__("bare_subscriber", **kwargs)
            for cam in CAMERAS:
                self.create_subscription(CameraInfo, f"/{cam}/camera_info", _noop, qos.CAMERA_INFO_ANY, raw=True)
                self.create_subscription(DetectionArray, f"/{cam}/detections", _noop, qos.RESULTS, raw=True)
                self.create_subscription(TrackArray, f"/{cam}/tracks", _noop, qos.RESULTS, raw=True)
            self.create_subscription(LocalizedObjectArray, "/objects", _noop, qos.RESULTS, raw=True)
            self.create_subscription(RiskAssessment, "/risk/assessment", _noop, qos.COMMANDS, raw=True)
            self.create_subscription(NodeHealth, "/perception/health", _noop, qos.HEALTH)

    return run_node(Bare)


def _noop(_msg) -> None:
    pass


if __name__ == "__main__":
    if "--bare" in sys.argv:
        raise SystemExit(_bare_main())
    raise SystemExit("usage: python -m perception_nodes.ros.monitor_bench --bare")
