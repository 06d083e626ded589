"""A site whose cameras are real sources the test makes itself: an image directory, a video file written with
OpenCV, and a network stream that ffmpeg serves on loopback (stopped and restarted). Frames of three sizes flow
through the shipped detector and the trackers; killed nodes come back while the rest of the site runs on."""
import io
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import numpy as np
import pytest

from conftest import spin_until
from perception_nodes.graph import build_graph
from perception_nodes.runner import GraphRunner, RespawnPolicy
from perception_nodes.site.manifest import load_manifest, write_new_site

pytestmark = [pytest.mark.graph,
              pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg (apt) is needed to serve the stream; "
                                                                        "make setup installs it")]

SIZES = {"dock": (240, 320), "gate": (480, 640), "street": (360, 480)}  # (height, width) per camera


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # loopback only
        return sock.getsockname()[1]


def _make_sources(folder):
    import cv2

    from perception_nodes.world import World, load_scene

    world = World(load_scene("default", seed=205))
    frames = [world.render(0, i)[0] for i in range(0, 60, 2)]
    images = folder / "dock_frames"
    images.mkdir()
    for i, frame in enumerate(frames[:12]):
        cv2.imwrite(str(images / f"{i:03d}.png"), cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA))
    video = folder / "gate.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 480))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return images, video


class StreamServer:
    """ffmpeg serving the video as an MPEG-TS stream on a loopback TCP port (480x360, real time, looped), like a
    network camera: while it is up, a client that drops (ffmpeg's TCP listener serves one client, then exits)
    finds it listening again."""

    def __init__(self, video, port):
        self.video, self.port, self.process = video, port, None
        self._up = threading.Event()
        self._supervisor = None

    def _spawn(self):
        return subprocess.Popen(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(self.video),
             "-vf", "scale=480:360", "-c:v", "mpeg4", "-q:v", "5", "-f", "mpegts",
             f"tcp://127.0.0.1:{self.port}?listen=1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _supervise(self):
        while self._up.is_set():
            if self.process is None or self.process.poll() is not None:
                self.process = self._spawn()
            time.sleep(0.1)

    def start(self):
        self._up.set()
        self.process = self._spawn()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()

    def stop(self):
        self._up.clear()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _brief(msg):
    """A NodeHealth in one line (pytest cuts long reprs)."""
    if msg is None:
        return None
    return (msg.level, msg.message, msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9,
            dict(zip(msg.counter_names, msg.counter_values)))


def test_a_site_of_real_sources_runs_recovers_and_respawns(ros_context, domain_id, tmp_path):
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from perception_nodes.msg import DetectionArray, NodeHealth, TrackArray
    from perception_nodes.ros import qos
    from perception_nodes.ros.health import HEALTH_TOPIC

    images, video = _make_sources(tmp_path)
    port = _free_port()
    server = StreamServer(video, port)
    server.start()
    manifest = write_new_site("yard", [("dock", str(images)), ("gate", str(video)),
                                       ("street", f"tcp://127.0.0.1:{port}")], tmp_path / "sites")[-1]
    # The dock camera publishes BEST_EFFORT, as most camera drivers do; the detector subscribes to match.
    import yaml

    body = yaml.safe_load(manifest.read_text())
    body["cameras"][0]["image_qos"] = "sensor_data"
    manifest.write_text(yaml.safe_dump(body, sort_keys=False))
    site = load_manifest(manifest)
    assert [c.source.type.value for c in site.cameras] == ["images", "video", "stream"]
    assert site.camera("dock").image_qos.value == "sensor_data"
    specs = build_graph(site, stages=("cameras", "detection", "tracking"))
    for spec in specs:
        if spec.executable == "camera":
            spec.parameters.update({"rate_hz": 5.0, "retry_initial_s": 0.5, "retry_max_s": 2.0})
    rclpy, context = ros_context
    executor = SingleThreadedExecutor(context=context)
    node = rclpy.create_node("real_source_probe", context=context)
    sizes, tracks, detections, health = {c: set() for c in SIZES}, {c: [] for c in SIZES}, {c: [] for c in SIZES}, {}
    frames = {c: [] for c in SIZES}  # receipt times

    def on_image(cam, msg):
        sizes[cam].add((msg.height, msg.width))
        frames[cam].append(time.monotonic())

    for cam in SIZES:
        node.create_subscription(Image, f"/{cam}/image_raw", lambda m, c=cam: on_image(c, m),
                                 qos.image_profile(site.camera(cam).image_qos.value))
        node.create_subscription(TrackArray, f"/{cam}/tracks", lambda m, c=cam: tracks[c].append(
            (time.monotonic(), m)), qos.RESULTS)
        node.create_subscription(DetectionArray, f"/{cam}/detections", detections[cam].append, qos.RESULTS)
    node.create_subscription(NodeHealth, HEALTH_TOPIC, lambda m: health.__setitem__(m.node_name, m), qos.HEALTH)
    executor.add_node(node)
    policy = RespawnPolicy(initial_delay_s=0.5, max_delay_s=2.0, max_restarts=3, window_s=300.0)
    log = io.StringIO()
    runner = GraphRunner(specs, domain_id=domain_id, output=log, respawn=policy)

    def run_until(condition, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            runner.wait(0.05)  # drives the runner's restarts
            # Drain for a while, not one callback: spin_once runs a single callback, and the image
            # subscriptions, always ready, would starve the health one (a stale report once failed here).
            drain_until = time.monotonic() + 0.1
            while time.monotonic() < drain_until:
                executor.spin_once(timeout_sec=0.01)
        return condition()

    def counter(name, key):
        msg = health.get(name)
        return dict(zip(msg.counter_names, msg.counter_values)).get(key, 0) if msg else 0

    try:
        runner.start()
        # 1. Every camera's frames, at its own size, reach detection and tracking.
        assert run_until(lambda: all(len(t) >= 3 for t in tracks.values()), 180.0), \
            ({c: len(t) for c, t in tracks.items()}, runner.failures)
        assert sizes == {c: {size} for c, size in SIZES.items()}, sizes
        for cam, (height, width) in SIZES.items():
            boxes = [d.box for m in detections[cam] for d in m.detections]
            assert all(b.center_x + b.width / 2 <= width + 1 and b.center_y + b.height / 2 <= height + 1
                       for b in boxes), cam
        assert any(m.detections for m in detections["gate"])  # the shipped model sees the lot's objects
        # 2. The stream goes away: the camera reports it, retries with backoff, and resumes once it is back.
        server.stop()
        # Within the stream timeout or so: the camera reads the newest frame, not a backlog buffered while it
        # ran slower than the stream (which once hid the outage until the backlog was drained).
        assert run_until(lambda: health.get("/street/camera") is not None
                         and health["/street/camera"].level == NodeHealth.LEVEL_WARN, 30.0), \
            (_brief(health.get("/street/camera")), time.time(), log.getvalue()[-3000:])
        assert run_until(lambda: counter("/street/camera", "source_failures") >= 1, 30.0)
        assert counter("/street/camera", "source_lost") >= 1
        outage = time.monotonic()
        server.start()
        assert run_until(lambda: frames["street"] and frames["street"][-1] > outage + 0.5
                         and health["/street/camera"].level == NodeHealth.LEVEL_OK, 120.0), \
            (health["/street/camera"].message, server.process.poll(), log.getvalue()[-3000:])
        # 3. A camera and the detector are killed: both are respawned, the rest of the site runs on.
        processes = {e.spec.fully_qualified_name: e.process for e in runner.processes}
        killed = time.monotonic()
        for name in ("/gate/camera", "/detector"):
            os.kill(processes[name].pid, signal.SIGKILL)
        assert run_until(lambda: frames["dock"][-1] > killed + 2.0, 30.0)  # the dock camera kept publishing
        assert run_until(lambda: all(t and t[-1][0] > killed + 1.0 for t in tracks.values())
                         and counter("/gate/camera", "respawns") == 1 and counter("/detector", "respawns") == 1,
                         180.0), \
            ({c: t[-1][0] - killed for c, t in tracks.items() if t}, runner.restarts)
        assert runner.restarts == {"/gate/camera": 1, "/detector": 1} and not runner.given_up
    finally:
        runner.stop()
        server.stop()
        executor.shutdown(timeout_sec=1.0)
