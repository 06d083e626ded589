"""4 synthetic cameras -> record 10 s -> play back -> the same image bytes and stamps arrive."""
import io
import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import last_json, run_cli
from perception_nodes.bagio import bag_info, read_messages
from perception_nodes.graph import build_graph
from perception_nodes.runner import GraphRunner

pytestmark = pytest.mark.graph

CAMERAS = ("cam0", "cam1", "cam2", "cam3")


def _spin_in_background(executor):
    """Spin ``executor`` on a thread until the returned event is set."""
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    return stop, thread


def test_record_then_replay_is_byte_identical(tmp_path, ros_context, domain_id):
    import numpy as np
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from perception_nodes.msg import NodeHealth
    from perception_nodes.ros import qos
    from perception_nodes.ros.health import HEALTH_TOPIC

    bag = tmp_path / "cams"
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id))
    topics = [f"/{c}/image_raw" for c in CAMERAS]
    rclpy, context = ros_context
    # How many frames each camera published, from its own health reports (stamped with the system clock, as
    # the recorder stamps what it receives): four cameras render at 10 Hz only on a fast enough machine, so
    # the recording is judged against what was published, not against the nominal rate.
    published = {c: [] for c in CAMERAS}  # camera -> [(report time ns, frames published so far)]

    def on_health(msg):
        camera = msg.node_name.strip("/").split("/")[0]
        if msg.node_name.endswith("/camera") and camera in published:
            published[camera].append((msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, msg.processed))

    health_probe = rclpy.create_node("health_probe", context=context)
    health_probe.create_subscription(NodeHealth, HEALTH_TOPIC, on_health, qos.HEALTH)
    health_executor = SingleThreadedExecutor(context=context)
    health_executor.add_node(health_probe)
    stop_health, health_thread = _spin_in_background(health_executor)
    specs = build_graph("default", stages=("cameras",))
    try:
        with GraphRunner(specs, domain_id=domain_id, output=io.StringIO()) as runner:
            time.sleep(3.0)  # cameras up and rendering
            record = run_cli("bag", "record", *topics, "/cam0/camera_info", "-o", str(bag), "--duration", "10",
                             env=env, timeout=120)
            time.sleep(1.5)  # one more health report from every camera after the recording ended
            assert runner.wait(0.1), runner.failures
    finally:
        stop_health.set()
        health_thread.join(timeout=5)
        health_executor.shutdown(timeout_sec=1)
        health_probe.destroy_node()
    recorded = last_json(record.stdout)
    assert set(recorded["topics"]) == set(topics) | {"/cam0/camera_info"}
    info = bag_info(bag)
    assert 7.0 <= info["duration_s"] <= 11.0  # the recorder subscribes once it has discovered the topics
    for camera, topic in zip(CAMERAS, topics):
        received_ns = [m.timestamp_ns for m in read_messages(bag, [topic])]
        reports = sorted(published[camera])
        assert len(reports) >= 5, (camera, reports)
        times, counts = np.array(reports, dtype=float).T
        # Frames the camera published between the first and the last frame the recorder got (the 1 Hz reports
        # interpolated), against the frames recorded; two frames of slack for the interpolation at each end.
        sent = float(np.interp(received_ns[-1], times, counts) - np.interp(received_ns[0], times, counts)) + 1
        assert len(received_ns) >= 10 and len(received_ns) >= 0.9 * sent - 4, (camera, len(received_ns), sent)

    expected = {t: [] for t in topics}
    for message in read_messages(bag, topics):
        expected[message.topic].append(message.data)

    # Replay into this process on the same (now quiet) domain.
    rclpy, context = ros_context
    node = rclpy.create_node("replay_probe", context=context)
    got = {t: [] for t in topics}
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    profile = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
    for topic in topics:
        node.create_subscription(Image, topic, lambda data, t=topic: got[t].append(data), profile, raw=True)
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinning, thread = _spin_in_background(executor)
    play = subprocess.run([sys.executable, "-m", "perception_nodes.cli.main", "bag", "play", str(bag),
                           "--topics", *topics, "--delay", "0.5", "--wait-for-subscribers", "1"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert play.returncode == 0, play.stderr
    played = last_json(play.stdout)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(map(len, got.values())) < sum(map(len, expected.values())):
        time.sleep(0.1)
    spinning.set()
    thread.join(timeout=5)
    executor.shutdown(timeout_sec=1)
    assert played["published"] == sum(map(len, expected.values()))
    for topic in topics:
        missing = [i for i, data in enumerate(expected[topic]) if data not in got[topic]]
        assert len(got[topic]) == len(expected[topic]), (topic, f"recorded frames not replayed: {missing} of "
                                                         f"{len(expected[topic])}", played)
        assert got[topic] == expected[topic], f"{topic}: replayed bytes differ from the recording"
    # Same bytes means same header stamps too; check them explicitly on one topic.
    from rclpy.serialization import deserialize_message

    stamps = lambda items: [(m.header.stamp.sec, m.header.stamp.nanosec) for m in (deserialize_message(b, Image) for b in items)]
    assert stamps(got[topics[0]]) == stamps(expected[topics[0]])
