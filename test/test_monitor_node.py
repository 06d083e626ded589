"""The monitor node measures a stream from its stamps, relays health values and drift, survives malformed bytes, and
serves Prometheus text that parses."""
import time
import urllib.error
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


def test_a_web_config_that_does_not_load_leaves_the_endpoint_off_not_open(ros_context, tmp_path):
    from perception_nodes.nodes.monitor import MonitorNode

    bcrypt = pytest.importorskip("bcrypt")
    rclpy, context = ros_context
    broken = tmp_path / "broken.yml"
    broken.write_text("basic_auth_users:\n  prometheus: plaintext\n")
    monitor = MonitorNode(context=context, parameter_overrides=[
        Parameter("cameras", value=["cam0"]), Parameter("metrics_port", value=0),
        Parameter("metrics_web_config", value=str(broken))])
    try:
        assert monitor.metrics is None
    finally:
        monitor.destroy_node()
    good = tmp_path / "web.yml"
    good.write_text("basic_auth_users:\n  prometheus: '%s'\n" % bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode())
    monitor = MonitorNode(context=context, parameter_overrides=[
        Parameter("cameras", value=["cam0"]), Parameter("metrics_port", value=0),
        Parameter("metrics_web_config", value=str(good))])
    try:
        assert monitor.metrics is not None and monitor.metrics.authenticated
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{monitor.metrics.port}/metrics", timeout=5)
        assert refused.value.code == 401
    finally:
        monitor.destroy_node()


def test_render_draws_a_bag_of_objects_and_cameras(tmp_path):
    """A recorded run (objects, stall states, an image and its tracks) becomes bird's-eye frames, mosaics and
    videos; a corrupt message is counted, not fatal; a bag without objects is refused with the reason."""
    import numpy as np
    from rclpy.serialization import serialize_message

    from perception_nodes.bagio import BagWriter
    from perception_nodes.errors import BagError
    from perception_nodes.image_codec import numpy_to_image
    from perception_nodes.monitoring.render_bag import render_bag
    from perception_nodes.msg import LocalizedObject, LocalizedObjectArray, SiteState, StallState, Track, TrackArray
    from perception_nodes.site.manifest import load_manifest

    site = load_manifest("parking2")
    writer = BagWriter(tmp_path / "bag")
    for topic, type_name in (("/objects", "perception_nodes/msg/LocalizedObjectArray"),
                             ("/site_state", "perception_nodes/msg/SiteState"),
                             ("/cam_east/image_raw", "sensor_msgs/msg/Image"),
                             ("/cam_east/tracks", "perception_nodes/msg/TrackArray")):
        writer.add_topic(topic, type_name)
    stall = site.map.stalls[0]
    for i in range(6):
        t_ns = 1_000_000_000 * (i + 1)
        stamp = rclpy_time(t_ns)
        image = numpy_to_image(np.full((480, 640, 3), 90, np.uint8), "bgr8")
        image.header.stamp = stamp
        writer.write("/cam_east/image_raw", t_ns, serialize_message(image))
        tracks = TrackArray(tracks=[Track(track_id=3, class_name="car")])
        tracks.header.stamp = stamp
        tracks.tracks[0].box.center_x, tracks.tracks[0].box.center_y = 300.0, 240.0
        tracks.tracks[0].box.width, tracks.tracks[0].box.height = 80.0, 50.0
        writer.write("/cam_east/tracks", t_ns + 1, serialize_message(tracks))
        objects = LocalizedObjectArray(objects=[LocalizedObject(global_id=7, state=2, class_name="car", heading=0.3)])
        objects.header.stamp = stamp
        objects.objects[0].position.x, objects.objects[0].position.y = float(i), 2.0
        objects.objects[0].extent.x, objects.objects[0].extent.y = 4.5, 1.8
        objects.objects[0].position_covariance[0] = objects.objects[0].position_covariance[4] = 0.2
        objects.objects[0].velocity.x = 1.0
        writer.write("/objects", t_ns + 2, serialize_message(objects))
        state = SiteState(stalls=[StallState(stall_id=stall.id, occupancy=2 if i >= 3 else 1)])
        writer.write("/site_state", t_ns + 3, serialize_message(state))
    writer.write("/objects", 9_000_000_000, b"\x00\x01\x00\x00\xff")  # corrupt
    writer.close()
    result = render_bag(tmp_path / "bag", site, tmp_path / "out", every=2, fps=2.0, log=lambda line: None)
    assert result["bev_frames"] == 3 and result["camera_frames"] == 3 and result["unreadable"] == 1
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png"))[:2] == ["bev_00000.png", "bev_00001.png"]
    import cv2

    frame = cv2.imread(str(tmp_path / "out" / "bev_00002.png"))
    assert frame is not None and frame.std() > 10  # something was drawn
    assert all((tmp_path / "out" / name).stat().st_size > 1000 for name in ("bev.mp4", "cameras.mp4"))
    empty = BagWriter(tmp_path / "empty")
    empty.add_topic("/cam_east/tracks", "perception_nodes/msg/TrackArray")
    empty.write("/cam_east/tracks", 1, serialize_message(TrackArray()))
    empty.close()
    with pytest.raises(BagError, match="no perception_nodes/msg/LocalizedObjectArray"):
        render_bag(tmp_path / "empty", site, tmp_path / "out2", log=lambda line: None)


def rclpy_time(ns: int):
    from builtin_interfaces.msg import Time

    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


@pytest.mark.graph
def test_bench_monitor_runs_the_monitor_and_the_baseline_on_the_same_traffic(domain_id):
    """The benchmark's own path: a monitor process scraped every second and a bare subscriber process, both fed;
    a monitor that died or an endpoint that did not answer fails it (the figures live in the README)."""
    from perception_nodes.ros.monitor_bench import bench_monitor

    lines = []
    result = bench_monitor(rate_hz=5.0, duration_s=2.0, domain_id=domain_id, log=lines.append)
    assert result["monitor_cpu_share"] >= 0 and result["baseline"]["cpu_share"] >= 0  # 10 ms ticks: may read 0
    assert result["messages_per_s"] == 5.0 * 14 + 15
    assert any("2 scrapes" in line for line in lines), lines
