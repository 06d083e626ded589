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


def test_record_then_replay_is_byte_identical(tmp_path, ros_context, domain_id):
    from sensor_msgs.msg import Image

    bag = tmp_path / "cams"
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id))
    topics = [f"/{c}/image_raw" for c in CAMERAS]
    specs = build_graph("default", stages=("cameras",))
    with GraphRunner(specs, domain_id=domain_id, output=io.StringIO()) as runner:
        time.sleep(3.0)  # cameras up and rendering
        record = run_cli("bag", "record", *topics, "/cam0/camera_info", "-o", str(bag), "--duration", "10",
                         env=env, timeout=120)
        assert runner.wait(0.1), runner.failures
    recorded = last_json(record.stdout)
    assert set(recorded["topics"]) == set(topics) | {"/cam0/camera_info"}
    assert all(recorded["topics"][t] >= 40 for t in topics), recorded  # 10 Hz for 10 s, allowing start-up
    info = bag_info(bag)
    assert 7.0 <= info["duration_s"] <= 11.0  # the recorder subscribes once it has discovered the topics

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
    spinning = threading.Event()

    def spin():
        while not spinning.is_set():
            executor.spin_once(timeout_sec=0.05)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    play = subprocess.run([sys.executable, "-m", "perception_nodes.cli.main", "bag", "play", str(bag),
                           "--topics", *topics, "--delay", "2.0"], env=env, capture_output=True, text=True, timeout=120)
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
        assert len(got[topic]) == len(expected[topic]), topic
        assert got[topic] == expected[topic], f"{topic}: replayed bytes differ from the recording"
    # Same bytes means same header stamps too; check them explicitly on one topic.
    from rclpy.serialization import deserialize_message

    stamps = lambda items: [(m.header.stamp.sec, m.header.stamp.nanosec) for m in (deserialize_message(b, Image) for b in items)]
    assert stamps(got[topics[0]]) == stamps(expected[topics[0]])
