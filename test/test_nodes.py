"""Node tests: each node in this process, its executor spun until a condition or a timeout."""
import time

import numpy as np
import pytest
from rclpy.parameter import Parameter

from conftest import spin_until

pytestmark = pytest.mark.node


def _camera(ros_context, **parameters):
    from perception_nodes.nodes.camera import CameraNode

    _, context = ros_context
    overrides = [Parameter(k, value=v) for k, v in parameters.items()]
    return CameraNode(context=context, parameter_overrides=overrides, namespace="/test_cam")


def test_synthetic_camera_publishes_image_info_and_ground_truth(ros_context, executor):
    from sensor_msgs.msg import CameraInfo, Image

    from perception_nodes.image_codec import image_to_numpy
    from perception_nodes.msg import DetectionArray
    from perception_nodes.ros import qos
    from perception_nodes.world import load_scene

    rclpy, context = ros_context
    camera = _camera(ros_context, scene="overlap2", camera_id="cam_east", rate_hz=20.0)
    probe = rclpy.create_node("probe", context=context)
    got = {"image": [], "info": [], "gt": []}
    probe.create_subscription(Image, "/test_cam/image_raw", got["image"].append, qos.IMAGE)
    probe.create_subscription(CameraInfo, "/test_cam/camera_info", got["info"].append, qos.CAMERA_INFO)
    probe.create_subscription(DetectionArray, "/test_cam/ground_truth/detections", got["gt"].append, qos.RESULTS)
    executor.add_node(camera)
    executor.add_node(probe)
    try:
        assert spin_until(executor, lambda: len(got["image"]) >= 5 and got["info"] and got["gt"], 20.0), \
            {k: len(v) for k, v in got.items()}
        image = got["image"][-1]
        assert (image.width, image.height, image.encoding) == (640, 480, "bgr8")
        assert image.header.frame_id == "cam_east_optical_frame"
        assert image_to_numpy(image).shape == (480, 640, 3)
        stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in got["image"]]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        spec = load_scene("overlap2").camera("cam_east")
        info = got["info"][-1]
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), [[spec.fx, 0, spec.cx], [0, spec.fy, spec.cy], [0, 0, 1]])
        assert info.header.frame_id == image.header.frame_id
        assert all(d.class_name in ("car", "truck", "person", "bicycle") for m in got["gt"] for d in m.detections)
    finally:
        camera.close()


def test_synthetic_frames_are_stamped_with_their_scene_time(ros_context, executor):
    """A synthetic frame's stamp is its scene time mapped onto the node's clock (opened + index / fps), not the
    moment rendering finished: stamps differ by whole frame periods, and the ground truth carries the same stamp."""
    from sensor_msgs.msg import Image

    from perception_nodes.msg import DetectionArray
    from perception_nodes.ros import qos

    rclpy, context = ros_context
    camera = _camera(ros_context, scene="overlap2", camera_id="cam_east")  # the scene's 10 Hz
    read = camera._source.read
    calls = [0]

    def slow_now_and_then(index=None):  # every fifth render takes 4.5 frame periods more, as under load
        calls[0] += 1
        if calls[0] % 5 == 0:
            time.sleep(0.45)
        return read(index)

    camera._source.read = slow_now_and_then
    probe = rclpy.create_node("probe", context=context)
    images, truth, receipts = [], {}, []

    def on_image(msg):
        receipts.append(probe.get_clock().now().nanoseconds)
        images.append(msg)

    probe.create_subscription(Image, "/test_cam/image_raw", on_image, qos.IMAGE)
    probe.create_subscription(DetectionArray, "/test_cam/ground_truth/detections",
                              lambda m: truth.__setitem__((m.header.stamp.sec, m.header.stamp.nanosec), m), qos.RESULTS)
    executor.add_node(camera)
    executor.add_node(probe)
    try:
        assert spin_until(executor, lambda: len(images) >= 16, 30.0)
        stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in images]
        period_ns = 100_000_000
        steps = [(s - stamps[0]) / period_ns for s in stamps]
        assert all(abs(step - round(step)) < 1e-5 for step in steps), steps  # whole frame periods apart
        assert all(round(b) > round(a) for a, b in zip(steps, steps[1:]))
        now = camera.get_clock().now().nanoseconds
        assert 0 <= now - stamps[-1] < 2_000_000_000  # on the node's clock, recent
        # No frame is stamped in the future: each arrived after its stamp (a late render skips frames instead).
        assert all(receipt >= stamp for receipt, stamp in zip(receipts, stamps)), \
            [(r - s) / 1e6 for r, s in zip(receipts, stamps)]
        spin_until(executor, lambda: (images[-1].header.stamp.sec, images[-1].header.stamp.nanosec) in truth, 5.0)
        assert (images[-1].header.stamp.sec, images[-1].header.stamp.nanosec) in truth
    finally:
        camera.close()


def test_camera_parameters_are_validated_on_set(ros_context, executor):
    camera = _camera(ros_context, scene="overlap2", camera_id="cam_south")
    try:
        result = camera.set_parameters([Parameter("encoding", value="yuv_fancy")])[0]
        assert not result.successful and "not one of" in result.reason
        result = camera.set_parameters([Parameter("rate_hz", value=1000.0)])[0]
        assert not result.successful
        assert camera.set_parameters([Parameter("rate_hz", value=5.0)])[0].successful
        assert camera.rate_hz == 5.0
        assert not camera.set_parameters([Parameter("scene", value="night")])[0].successful  # read-only
    finally:
        camera.close()


def test_lost_source_is_retried_and_reported_not_fatal(ros_context, executor, tmp_path):
    from perception_nodes.msg import NodeHealth

    missing = tmp_path / "frames"
    camera = _camera(ros_context, source_type="images", source=str(missing), retry_initial_s=0.05, retry_max_s=0.2)
    executor.add_node(camera)
    try:
        assert spin_until(executor, lambda: camera.counters.snapshot().extra.get("source_failures", 0) >= 3, 10.0)
        report = camera.health.build()
        assert report.level == NodeHealth.LEVEL_WARN and "does not exist" in report.message
        # The directory appears: the driver recovers by itself.
        import cv2

        missing.mkdir()
        cv2.imwrite(str(missing / "a.png"), np.zeros((10, 12, 3), np.uint8))
        assert spin_until(executor, lambda: camera.counters.snapshot().processed >= 2, 10.0)
        assert camera.health.build().level == NodeHealth.LEVEL_OK
    finally:
        camera.close()


def test_bad_camera_info_file_fails_start_with_the_reason(ros_context, tmp_path):
    from perception_nodes.errors import ConfigError

    bad = tmp_path / "cam.yaml"
    bad.write_text("image_width: 640\n")
    with pytest.raises(ConfigError, match="image_height"):
        _camera(ros_context, camera_info_url=str(bad))


def test_monitor_aggregates_health_and_serves_it(ros_context, executor):
    from perception_nodes.msg import NodeHealth, ServiceStatus
    from perception_nodes.nodes.monitor import MonitorNode
    from perception_nodes.ros import qos
    from perception_nodes.srv import GetHealth

    rclpy, context = ros_context
    monitor = MonitorNode(context=context, parameter_overrides=[Parameter("stale_after_s", value=0.5)])
    probe = rclpy.create_node("probe", context=context)
    publisher = probe.create_publisher(NodeHealth, "/perception/health", qos.HEALTH)
    client = probe.create_client(GetHealth, "/monitor/get_health")
    executor.add_node(monitor)
    executor.add_node(probe)

    def call(name=""):
        future = client.call_async(GetHealth.Request(node_name=name))
        assert spin_until(executor, future.done, 5.0)
        return future.result()

    assert spin_until(executor, lambda: client.service_is_ready(), 5.0)
    msg = NodeHealth(node_name="/cam9/camera", processed=42, level=NodeHealth.LEVEL_OK)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        publisher.publish(msg)
        executor.spin_once(timeout_sec=0.05)
        if call().nodes:
            break
    response = call()
    assert [n.node_name for n in response.nodes] == ["/cam9/camera"] and response.nodes[0].processed == 42
    assert call("/other").status.code == ServiceStatus.NOT_FOUND
    # Silent for longer than stale_after_s: reported as an error.
    spin_until(executor, lambda: False, 0.8)
    stale = call("/cam9/camera").nodes[0]
    assert stale.level == NodeHealth.LEVEL_ERROR and "stale" in stale.message


def test_site_publisher_latches_the_tree_and_reload_keeps_it_on_bad_files(ros_context, executor, tmp_path):
    import shutil

    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from perception_nodes.nodes.site_publisher import SitePublisher
    from perception_nodes.ros import qos
    from perception_nodes.ros.tf import TransformListener
    from perception_nodes.site import calibration_dir_for
    from perception_nodes.tf import TransformBuffer

    rclpy, context = ros_context
    folder = tmp_path / "site"
    shutil.copytree(calibration_dir_for("overlap2"), folder)
    publisher = SitePublisher(context=context, parameter_overrides=[Parameter("calibration_dir", value=str(folder))])
    executor.add_node(publisher)
    spin_until(executor, lambda: False, 0.3)
    # A late joiner still gets the latched tree and description.
    probe = rclpy.create_node("probe", context=context)
    buffer = TransformBuffer()
    TransformListener(probe, buffer)
    descriptions = []
    probe.create_subscription(String, "/robot_description", descriptions.append, qos.LATCHED)
    executor.add_node(probe)
    assert spin_until(executor, lambda: buffer.can_transform("map", "cam_east_optical_frame") and descriptions, 10.0)
    assert "<robot" in descriptions[0].data and "cam_south_optical_frame" in descriptions[0].data
    (folder / "cam_east.yaml").write_text("image_width: [broken")
    client = probe.create_client(Trigger, "/site_publisher/reload")
    future = client.call_async(Trigger.Request())
    assert spin_until(executor, future.done, 5.0)
    assert future.result().success is False and "not valid YAML" in future.result().message
    assert buffer.can_transform("map", "cam_east_optical_frame")


def _tracker_with_probe(ros_context, executor, camera: str):
    """A tracker node for ``camera`` and a probe publishing its detections and collecting its tracks."""
    from perception_nodes.msg import DetectionArray, TrackArray
    from perception_nodes.nodes.tracker import TrackerNode
    from perception_nodes.ros import qos

    rclpy, context = ros_context
    node = TrackerNode(context=context, namespace=f"/{camera}",
                       parameter_overrides=[Parameter("camera_id", value=camera)])
    probe = rclpy.create_node("probe", context=context)
    pub = probe.create_publisher(DetectionArray, f"/{camera}/detections", qos.RESULTS)
    got = []
    probe.create_subscription(TrackArray, f"/{camera}/tracks", got.append, qos.RESULTS)
    executor.add_node(node)
    executor.add_node(probe)
    assert spin_until(executor, lambda: pub.get_subscription_count() > 0 and probe.count_publishers(f"/{camera}/tracks"),
                      5)
    return node, pub, got


def test_tracker_node_tracks_and_handles_bad_input(ros_context, executor):
    from perception_nodes.msg import Detection, DetectionArray

    node, pub, got = _tracker_with_probe(ros_context, executor, "cam_t")

    def send(stamp_s, boxes, camera="cam_t"):
        msg = DetectionArray(camera_id=camera)
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp_s), int(round((stamp_s % 1) * 1e9))
        msg.header.frame_id = "cam_t_optical_frame"
        for cx, score in boxes:
            det = Detection(class_id=2, class_name="person", score=score)
            det.box.center_x, det.box.center_y, det.box.width, det.box.height = float(cx), 200.0, 30.0, 60.0
            msg.detections.append(det)
        count = len(got)
        pub.publish(msg)
        spin_until(executor, lambda: len(got) > count, 1.0)

    for i in range(5):
        send(100 + i * 0.1, [(100 + 3 * i, 0.9), (400 - 3 * i, 0.9)])
    last = got[-1]
    assert last.camera_id == "cam_t" and last.header.frame_id == "cam_t_optical_frame"
    assert sorted(t.track_id for t in last.tracks) == [1, 2]
    assert all(t.state == 1 and t.class_name == "person" for t in last.tracks)
    published = len(got)
    send(100.2, [(110, 0.9)])  # out of order: dropped
    send(100.5, [(float("nan"), 0.9), (115, 0.9), (385, 0.9)])  # one NaN box: skipped, the rest tracked
    send(100.6, [(118, 0.9)], camera="some_other_camera")  # rejected
    snap = node.counters.snapshot()
    assert snap.dropped == 1 and snap.extra["invalid_detections"] == 1 and snap.extra["error_unknown_camera"] == 1
    assert len(got) == published + 1 and sorted(t.track_id for t in got[-1].tracks) == [1, 2]
    send(10.0, [(118, 0.9)])  # time jumped back (bag loop): reset, new tentative track, nothing confirmed yet
    assert node.counters.snapshot().extra["resets"] == 1 and got[-1].tracks == []


def test_tracker_node_uses_embeddings_and_tolerates_missing_or_mismatched_ones(ros_context, executor):
    from perception_nodes.msg import Detection, DetectionArray

    node, pub, got = _tracker_with_probe(ros_context, executor, "cam_e")

    def send(stamp_s, boxes):
        msg = DetectionArray(camera_id="cam_e")
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp_s), int(round((stamp_s % 1) * 1e9))
        for cx, embedding in boxes:
            det = Detection(class_id=0, class_name="car", score=0.9, embedding=embedding,
                            embedding_model="hsv-hist@1" if embedding else "")
            det.box.center_x, det.box.center_y, det.box.width, det.box.height = float(cx), 200.0, 60.0, 30.0
            msg.detections.append(det)
        count = len(got)
        pub.publish(msg)
        assert spin_until(executor, lambda: len(got) > count, 2.0)

    red, blue = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    for i in range(4):
        send(50 + i * 0.1, [(100 + 2 * i, red), (300, blue)])
    tracks = {t.track_id: t for t in got[-1].tracks}
    assert sorted(tracks) == [1, 2]
    assert list(tracks[1].embedding) == pytest.approx(red) and tracks[1].embedding_model == "hsv-hist@1"
    send(50.4, [(108, red), (300, [])])  # one detection without an embedding: IoU alone for it, no error
    assert sorted(t.track_id for t in got[-1].tracks) == [1, 2]
    send(50.5, [(110, red), (300, [0.0, 1.0])])  # embeddings of different sizes: counted, tracked on IoU alone
    assert sorted(t.track_id for t in got[-1].tracks) == [1, 2]
    assert node.counters.snapshot().extra.get("error_embedding_dims") == 1


def test_tracker_rejects_inconsistent_thresholds(ros_context, executor):
    from perception_nodes.nodes.tracker import TrackerNode

    node = TrackerNode(context=ros_context[1], namespace="/cam_p")
    result = node.set_parameters([Parameter("track_low_thresh", value=0.9)])[0]  # above track_high_thresh
    assert not result.successful and "track_low_thresh" in result.reason
    assert node.tracker.params.track_low_thresh == 0.1
    assert node.set_parameters([Parameter("track_low_thresh", value=0.2)])[0].successful
    assert node.tracker.params.track_low_thresh == 0.2


def test_tracker_node_reports_proxies_and_asks_to_capture_a_missed_frame(ros_context, executor):
    """Once CameraInfo gives the image size, a confirmed track missed mid-view is asked to be captured (with its
    frame's stamp) and the proxies appear in health values."""
    from sensor_msgs.msg import CameraInfo

    from perception_nodes.msg import CaptureRequest, Detection, DetectionArray
    from perception_nodes.ros import qos

    node, pub, got = _tracker_with_probe(ros_context, executor, "cam_c")
    rclpy, context = ros_context
    probe = rclpy.create_node("capture_probe", context=context)
    info_pub = probe.create_publisher(CameraInfo, "/cam_c/camera_info", qos.IMAGE)
    requests = []
    probe.create_subscription(CaptureRequest, "/cam_c/capture_request", requests.append, qos.RESULTS)
    executor.add_node(probe)
    assert spin_until(executor, lambda: info_pub.get_subscription_count() > 0, 5.0)
    info_pub.publish(CameraInfo(width=640, height=480))
    assert spin_until(executor, lambda: node.proxies is not None, 5.0)

    def send(stamp_s, with_box):
        msg = DetectionArray(camera_id="cam_c")
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp_s), int(round((stamp_s % 1) * 1e9))
        if with_box:
            det = Detection(class_id=0, class_name="car", score=0.9)
            det.box.center_x, det.box.center_y, det.box.width, det.box.height = 320.0, 240.0, 80.0, 50.0
            msg.detections.append(det)
        count = len(got)
        pub.publish(msg)
        spin_until(executor, lambda: len(got) > count, 1.0)

    for i in range(6):
        send(200 + i * 0.1, True)
    send(200.6, False)  # the detector missed the car in the middle of the image
    assert spin_until(executor, lambda: requests, 5.0)
    assert requests[0].reason == "coasting_mid_view" and requests[0].camera_id == "cam_c"
    assert (requests[0].header.stamp.sec, round(requests[0].header.stamp.nanosec / 1e6)) == (200, 600)
    values = node.counters.snapshot().values
    assert values["proxy.coasting_mid_view_ratio"] > 0


def test_a_synthetic_camera_publishes_late_during_its_scripted_latency_spike(ros_context, executor):
    """scenarios/latency_spike plays live: frames of 6 s to 10 s of scene time reach subscribers 2.5 s after
    their capture stamps, counted; the stream keeps its order (the frames after the spike wait behind it); frames
    before it arrive at once."""
    from sensor_msgs.msg import Image

    from perception_nodes.ros import qos

    rclpy, context = ros_context
    clock = rclpy.clock.Clock(clock_type=rclpy.clock.ClockType.ROS_TIME)
    epoch = clock.now().nanoseconds - 5_000_000_000  # scene time 5 s at start: the spike begins a second in
    camera = _camera(ros_context, scene="scenarios/latency_spike", camera_id="cam0", scene_epoch_ns=epoch)
    probe = rclpy.create_node("probe", context=context)
    arrivals = []  # (scene time of the stamp, age on arrival s)
    probe.create_subscription(Image, "/test_cam/image_raw", lambda m: arrivals.append(
        ((m.header.stamp.sec * 10**9 + m.header.stamp.nanosec - epoch) / 1e9,
         (clock.now().nanoseconds - m.header.stamp.sec * 10**9 - m.header.stamp.nanosec) / 1e9)), qos.IMAGE)
    executor.add_node(camera)
    executor.add_node(probe)
    try:
        assert spin_until(executor, lambda: any(t >= 6.5 for t, _ in arrivals) and any(
            t >= 10.5 for t, _ in arrivals), 30.0), arrivals
        inside = [(t, age) for t, age in arrivals if 6.0 <= t < 10.0]
        outside = [(t, age) for t, age in arrivals if t < 6.0 or t >= 10.0]
        assert inside and all(age >= 2.5 for _, age in inside), inside
        assert outside and min(age for _, age in outside) < 1.0, outside
        assert [t for t, _ in arrivals] == sorted(t for t, _ in arrivals)
        assert camera.counters.snapshot().extra.get("frames_delayed", 0) >= len(inside)
    finally:
        camera.close()


def test_a_latency_spike_holds_a_bounded_number_of_frames(ros_context, executor, monkeypatch):
    """The frames a spike holds are bounded: beyond the bound the oldest held frame is dropped and counted."""
    from perception_nodes.nodes import camera as camera_module

    monkeypatch.setattr(camera_module, "MAX_HELD_FRAMES", 4)
    rclpy, _ = ros_context
    clock = rclpy.clock.Clock(clock_type=rclpy.clock.ClockType.ROS_TIME)
    camera = _camera(ros_context, scene="scenarios/latency_spike", camera_id="cam0",
                     scene_epoch_ns=clock.now().nanoseconds - 6_000_000_000)  # inside the spike from the start
    executor.add_node(camera)
    try:
        overflow = lambda: camera.counters.snapshot().extra.get("dropped_held_overflow", 0)  # noqa: E731
        assert spin_until(executor, lambda: overflow() >= 3, 15.0), camera.counters.snapshot().extra
        assert len(camera._delayed) <= 4
    finally:
        camera.close()


def test_a_synthetic_camera_goes_silent_during_its_scripted_dropout_and_stays_open(ros_context, executor):
    """scenarios/camera_dropout plays live: cam3 publishes nothing from 6 s to 14 s of scene time, counts the
    frames it withheld, and never reopens its source (the scene's clock goes on)."""
    from sensor_msgs.msg import Image

    from perception_nodes.ros import qos

    rclpy, context = ros_context
    now_ns = rclpy.clock.Clock(clock_type=rclpy.clock.ClockType.ROS_TIME).now().nanoseconds
    # Scene time 5 s at start: the dropout begins a second in.
    camera = _camera(ros_context, scene="scenarios/camera_dropout", camera_id="cam3",
                     scene_epoch_ns=now_ns - 5_000_000_000)
    probe = rclpy.create_node("probe", context=context)
    images = []
    probe.create_subscription(Image, "/test_cam/image_raw", images.append, qos.IMAGE)
    executor.add_node(camera)
    executor.add_node(probe)
    try:
        withheld = lambda: camera.counters.snapshot().extra.get("frames_withheld", 0)  # noqa: E731
        assert spin_until(executor, lambda: withheld() >= 15, 20.0), (withheld(), len(images))
        epoch = now_ns - 5_000_000_000
        scene_s = [(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec - epoch) / 1e9 for m in images]
        assert scene_s and all(not 6.0 <= t < 14.0 for t in scene_s), scene_s
        assert camera.counters.snapshot().extra.get("source_lost", 0) == 0
    finally:
        camera.close()
