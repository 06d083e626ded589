"""The monitor node measures a stream from its stamps, relays health values and drift, survives malformed bytes, and
serves Prometheus text that parses."""
import time
import urllib.request

import pytest
from rclpy.parameter import Parameter

from conftest import spin_until

pytestmark = pytest.mark.node


def test_monitor_measures_ages_rates_drift_and_serves_prometheus(ros_context, executor):
    from diagnostic_msgs.msg import DiagnosticArray
    from prometheus_client.parser import text_string_to_metric_families
    from sensor_msgs.msg import CameraInfo

    from perception_nodes.monitoring.topics import Stage
    from perception_nodes.msg import DetectionArray, NodeHealth, TrackArray
    from perception_nodes.nodes.monitor import MonitorNode
    from perception_nodes.ros import qos

    rclpy, context = ros_context
    monitor = MonitorNode(context=context, parameter_overrides=[
        Parameter("cameras", value=["cam0"]), Parameter("camera_rates_hz", value=[10.0]),
        Parameter("stages", value=["capture", "detections", "tracks"]), Parameter("metrics_port", value=0),
        Parameter("age_warn_s", value=0.3)])
    probe = rclpy.create_node("probe", context=context)
    info_pub = probe.create_publisher(CameraInfo, "/cam0/camera_info", qos.IMAGE)
    det_pub = probe.create_publisher(DetectionArray, "/cam0/detections", qos.RESULTS)
    track_pub = probe.create_publisher(TrackArray, "/cam0/tracks", qos.RESULTS)
    health_pub = probe.create_publisher(NodeHealth, "/perception/health", qos.HEALTH)
    diagnostics = []
    probe.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    executor.add_node(monitor)
    executor.add_node(probe)
    assert spin_until(executor, lambda: track_pub.get_subscription_count() >= 1
                      and det_pub.get_subscription_count() >= 1, 10.0)
    det_pub.publish(b"\x00\x01\x00\x00\x01")  # serialized garbage on a watched topic
    clock = probe.get_clock()
    frames = 0
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        stamp = rclpy.time.Time(nanoseconds=clock.now().nanoseconds - 100_000_000).to_msg()  # captured 100 ms ago
        info = CameraInfo()
        info.header.stamp = stamp
        info_pub.publish(info)
        det = DetectionArray(camera_id="cam0", model="yolo-test@7")
        det.header.stamp = stamp
        det_pub.publish(det)
        if frames % 5:  # the tracker "loses" every fifth frame
            tracks = TrackArray()
            tracks.header.stamp = stamp
            track_pub.publish(tracks)
        health_pub.publish(NodeHealth(node_name="/detector", level=NodeHealth.LEVEL_WARN, message="drift: test",
                                      value_names=["drift.image_brightness", "drift_threshold.image_brightness"],
                                      values=[0.5, 0.2]))
        frames += 1
        spin_until(executor, lambda: False, 0.1)
    spin_until(executor, lambda: False, 1.5)  # past the hand-over grace time of the last frames
    assert monitor.malformed_total == 1
    snap = monitor.snapshot()
    by_topic = {t.spec.topic: t for t in snap.topics}
    tracks = by_topic["/cam0/tracks"]
    assert tracks.age_p50_s == pytest.approx(0.1, abs=0.05)
    assert by_topic["/cam0/camera_info"].rate_hz == pytest.approx(10.0 * 0.95, rel=0.3)
    assert snap.models == {"/cam0/detections": "yolo-test@7"}
    assert snap.drops_total[("cam0", Stage.TRACKS)] >= 3

    assert spin_until(executor, lambda: any(s.name == "perception: pipeline" for d in diagnostics for s in d.status),
                      5.0)
    statuses = {s.name: s for s in diagnostics[-1].status}
    assert statuses["perception: /detector"].level == b"\x01"
    assert {"drift.image_brightness": "0.5"}.items() <= {kv.key: kv.value for kv in
                                                         statuses["perception: /detector"].values}.items()
    values = {kv.key: kv.value for kv in statuses["perception topic: /cam0/tracks"].values}
    assert float(values["age_ms_p50"]) == pytest.approx(100, abs=50)

    text = urllib.request.urlopen(f"http://127.0.0.1:{monitor.metrics.port}/metrics", timeout=5).read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    counts = {s.labels["stage"]: s.value for s in families["perception_stage_data_age_seconds"].samples
              if s.name.endswith("_count")}
    assert counts["capture"] >= 20 and counts["tracks"] < counts["detections"]
    assert [s.value for s in families["perception_drift_detected"].samples] == [1]
    dropped = {s.labels["stage"]: s.value for s in families["perception_stage_dropped_frames"].samples
               if s.name.endswith("_total")}
    assert dropped["tracks"] >= 3
    monitor.destroy_node()
    probe.destroy_node()
