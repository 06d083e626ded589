"""Detector node in process with real ultralytics models (random initialisation: mechanics, not accuracy)."""
import numpy as np
import pytest
from rclpy.parameter import Parameter

from conftest import spin_until

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A manifest with two different random-init YOLOv8n models (m@1, m@2) and a corrupt one (bad@1)."""
    import os

    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    from perception_nodes.detection.registry import ModelEntry, ModelRegistry, sha256_of

    folder = tmp_path_factory.mktemp("models")
    registry = ModelRegistry(folder / "manifest.yaml")
    for version in ("1", "2"):
        path = folder / f"m-{version}.pt"
        YOLO("yolov8n.yaml").save(str(path))
        registry.add(ModelEntry("m", version, path, sha256_of(path), ["car", "truck", "person", "bicycle"], 320))
    bad = folder / "bad-1.pt"
    bad.write_bytes(b"not a model")
    registry.add(ModelEntry("bad", "1", bad, sha256_of(bad), ["car"], 320))
    return folder


@pytest.fixture
def executor(ros_context):
    from rclpy.executors import MultiThreadedExecutor

    ex = MultiThreadedExecutor(num_threads=3, context=ros_context[1])
    yield ex
    ex.shutdown(timeout_sec=1.0)


def _detector(ros_context, model_dir, **params):
    from perception_nodes.nodes.detector import DetectorNode

    values = {"cameras": ["cam_a", "cam_b"], "manifest": str(model_dir / "manifest.yaml") if model_dir else "",
              "model": "m@1",
              "confidence": 0.0, **params}
    return DetectorNode(context=ros_context[1], parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])


def _image(stamp_sec, encoding="bgr8", height=48, width=64, step=None, data=None):
    from sensor_msgs.msg import Image

    msg = Image(height=height, width=width, encoding=encoding, step=step if step is not None else width * 3)
    msg.data = data if data is not None else np.random.default_rng(stamp_sec).integers(
        0, 255, height * width * 3, dtype=np.uint8).tobytes()
    msg.header.stamp.sec = stamp_sec
    msg.header.frame_id = "cam_optical_frame"
    return msg


def _probe(ros_context, executor, node):
    from sensor_msgs.msg import Image

    from perception_nodes.msg import DetectionArray
    from perception_nodes.ros import qos

    rclpy, context = ros_context
    probe = rclpy.create_node("probe", context=context)
    pubs = {c: probe.create_publisher(Image, f"/{c}/image_raw", qos.IMAGE) for c in ("cam_a", "cam_b")}
    got = {"cam_a": [], "cam_b": [], "shadow": []}
    for cam in ("cam_a", "cam_b"):
        probe.create_subscription(DetectionArray, f"/{cam}/detections", got[cam].append, qos.RESULTS)
    probe.create_subscription(DetectionArray, "/cam_a/detections/shadow", got["shadow"].append, qos.RESULTS)
    executor.add_node(node)
    executor.add_node(probe)
    assert spin_until(executor, lambda: node._running and pubs["cam_a"].get_subscription_count() > 0, 60.0)
    return pubs, got


def test_detects_on_every_camera_with_the_source_stamp_and_survives_bad_images(ros_context, executor, model_dir):
    node = _detector(ros_context, model_dir)
    try:
        pubs, got = _probe(ros_context, executor, node)
        pubs["cam_a"].publish(_image(11))
        pubs["cam_b"].publish(_image(12))
        assert spin_until(executor, lambda: got["cam_a"] and got["cam_b"], 60.0)
        assert got["cam_a"][0].header.stamp.sec == 11 and got["cam_b"][0].header.stamp.sec == 12
        assert got["cam_a"][0].header.frame_id == "cam_optical_frame" and got["cam_a"][0].model == "m@1"
        assert got["cam_a"][0].camera_id == "cam_a"
        # Bad input: unknown encoding, zero size, a step that does not match the data. Counted, not fatal.
        pubs["cam_a"].publish(_image(13, encoding="yuv_fancy"))
        spin_until(executor, lambda: node.counters.snapshot().errors >= 1, 10.0)
        pubs["cam_a"].publish(_image(14, height=0, width=0, data=b""))
        spin_until(executor, lambda: node.counters.snapshot().errors >= 2, 10.0)
        pubs["cam_a"].publish(_image(15, step=100))
        assert spin_until(executor, lambda: node.counters.snapshot().errors >= 3, 10.0)
        pubs["cam_a"].publish(_image(16))
        assert spin_until(executor, lambda: got["cam_a"][-1].header.stamp.sec == 16, 60.0)
        assert node.counters.snapshot().extra.get("error_bad_image") == 3
    finally:
        node.close()


def test_an_idle_worker_gathers_the_frames_of_a_step_into_one_pass(ros_context, executor, model_dir):
    """Unsynchronised cameras: cam_b's frame comes 100 ms after cam_a's, and still shares cam_a's forward pass."""
    import time

    node = _detector(ros_context, model_dir, batch_wait_ms=3000.0)
    try:
        pubs, got = _probe(ros_context, executor, node)
        pubs["cam_a"].publish(_image(1))
        pubs["cam_b"].publish(_image(2))  # both cameras are live now
        assert spin_until(executor, lambda: got["cam_a"] and got["cam_b"], 60.0)
        batches = node.counters.snapshot().extra["batches"]
        pubs["cam_a"].publish(_image(3))
        spin_until(executor, lambda: False, 0.1)
        pubs["cam_b"].publish(_image(4))
        assert spin_until(executor, lambda: got["cam_a"][-1].header.stamp.sec == 3
                          and got["cam_b"][-1].header.stamp.sec == 4, 60.0)
        assert node.counters.snapshot().extra["batches"] == batches + 1
        # A camera that stopped is not waited for: once it is no longer live, cam_a runs alone at once.
        time.sleep(1.1)
        started = time.monotonic()
        pubs["cam_a"].publish(_image(5))
        assert spin_until(executor, lambda: got["cam_a"][-1].header.stamp.sec == 5, 60.0)
        assert time.monotonic() - started < 3.0  # had it waited for cam_b, it would have taken >= 3 s
        assert node.counters.snapshot().extra["batches"] == batches + 2
    finally:
        node.close()


def test_appearance_embeddings_ride_along_with_the_detections(ros_context, executor, model_dir):
    node = _detector(ros_context, model_dir, appearance_embedding="hsv-hist")
    try:
        pubs, got = _probe(ros_context, executor, node)
        pubs["cam_a"].publish(_image(21, height=96, width=128))
        assert spin_until(executor, lambda: got["cam_a"], 60.0)
        detections = got["cam_a"][0].detections
        with_embedding = [d for d in detections if len(d.embedding)]
        assert with_embedding, len(detections)  # a random-init model at confidence 0 reports many boxes
        for d in with_embedding:
            assert len(d.embedding) == 192 and d.embedding_model == "hsv-hist@1"
            assert np.linalg.norm(d.embedding) == pytest.approx(1.0, abs=1e-4)
        assert all(d.embedding_model == "" for d in detections if not len(d.embedding))
    finally:
        node.close()


def test_swap_model_while_publishing(ros_context, executor, model_dir):
    from perception_nodes.msg import ServiceStatus
    from perception_nodes.srv import SwapModel

    node = _detector(ros_context, model_dir)
    try:
        pubs, got = _probe(ros_context, executor, node)
        client = node.create_client(SwapModel, "/detector/swap_model")
        assert spin_until(executor, client.service_is_ready, 10.0)
        future = client.call_async(SwapModel.Request(model="m@2"))
        for stamp in range(20, 60):
            pubs["cam_a"].publish(_image(stamp))
            spin_until(executor, future.done, 0.3)
            if future.done():
                break
        assert future.result().status.code == ServiceStatus.OK and future.result().active_model == "m@2"
        pubs["cam_a"].publish(_image(99))
        assert spin_until(executor, lambda: got["cam_a"] and got["cam_a"][-1].header.stamp.sec == 99, 60.0)
        assert got["cam_a"][-1].model == "m@2"
        bad = client.call_async(SwapModel.Request(model="bad@1"))
        assert spin_until(executor, bad.done, 30.0)
        assert bad.result().status.code == ServiceStatus.INVALID_REQUEST and bad.result().active_model == "m@2"
    finally:
        node.close()


def test_missing_model_fails_configure_and_fallback_takes_over(ros_context, executor, model_dir):
    from lifecycle_msgs.msg import State

    from perception_nodes.msg import NodeHealth

    failing = _detector(ros_context, model_dir, model="bad@1", autostart=False)
    try:
        assert failing.trigger_configure() != 0  # FAILURE
        assert failing._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED
        assert "no model" in failing.health.build().message
    finally:
        failing.close()
        failing.destroy_node()
    node = _detector(ros_context, model_dir, model="bad@1", fallback_model="m@2")
    try:
        pubs, got = _probe(ros_context, executor, node)
        pubs["cam_b"].publish(_image(5))
        assert spin_until(executor, lambda: got["cam_b"], 60.0)
        assert got["cam_b"][0].model == "m@2"
        report = node.health.build()
        assert report.level == NodeHealth.LEVEL_WARN and "fallback" in report.message
    finally:
        node.close()


def test_latency_budget_fallback_and_shadow_mode(ros_context, executor, model_dir):
    node = _detector(ros_context, model_dir, latency_budget_ms=0.001, budget_frames=2, fallback_imgsz=160,
                     shadow_model="m@2", shadow_fraction=1.0)
    try:
        pubs, got = _probe(ros_context, executor, node)
        for stamp in range(1, 40):
            pubs["cam_a"].publish(_image(stamp))
            spin_until(executor, lambda: got["cam_a"] and got["cam_a"][-1].header.stamp.sec == stamp, 10.0)
            if got["cam_a"] and got["cam_a"][-1].model.endswith("@160"):
                break
        assert got["cam_a"][-1].model == "m@1@160"  # still publishing, now at the smaller input size
        assert node.counters.snapshot().extra.get("fallbacks") == 1
        assert got["shadow"] and got["shadow"][0].model == "m@2"
        assert node.shadow_agreement is not None and 0.0 <= node.shadow_agreement <= 1.0
    finally:
        node.close()


def test_a_batch_split_over_cpu_streams_answers_each_camera_with_its_own_frame(ros_context, executor):
    """The shipped ONNX model with 2 CPU streams: one gathered step of two cameras runs as two sessions side by
    side, and each camera still gets the detections of its own frame with its own stamp."""
    from perception_nodes.image_codec import numpy_to_image
    from perception_nodes.world import World, load_scene

    node = _detector(ros_context, None, manifest="", model="yolov8n-lot-onnx", confidence=0.25, cpu_streams=2,
                     batch_wait_ms=3000.0)
    try:
        assert node.config.cpu_streams == 2
        pubs, got = _probe(ros_context, executor, node)
        assert node.runtime.primary.streams == 2
        scene = numpy_to_image(World(load_scene("default", seed=201)).render(0, 60)[0], "bgr8")
        blank = numpy_to_image(np.zeros((480, 640, 3), np.uint8), "bgr8")

        def step(stamp_a):
            for stamp, (cam, msg) in enumerate((("cam_a", scene), ("cam_b", blank)), start=stamp_a):
                msg.header.stamp.sec = stamp
                pubs[cam].publish(msg)
            assert spin_until(executor, lambda: got["cam_a"] and got["cam_a"][-1].header.stamp.sec == stamp_a
                              and got["cam_b"] and got["cam_b"][-1].header.stamp.sec == stamp_a + 1, 60.0)

        step(5)  # both cameras are live from here on, so the worker waits for both
        batches = node.counters.snapshot().extra["batches"]
        step(7)
        assert node.counters.snapshot().extra["batches"] == batches + 1  # one step, one batch
        assert len(got["cam_a"][-1].detections) >= 3 and len(got["cam_b"][-1].detections) == 0
    finally:
        node.close()


COCO_NAMES = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck"] + \
    [f"coco{i}" for i in range(8, 80)]


@pytest.fixture(scope="module")
def coco_model_dir(model_dir):
    """The random-init YOLOv8n (80 outputs, as a COCO model has) registered with 80 COCO-style class names."""
    from perception_nodes.detection.registry import ModelEntry, ModelRegistry, sha256_of

    registry = ModelRegistry(model_dir / "manifest.yaml")
    path = model_dir / "m-1.pt"
    registry.add(ModelEntry("coco", "1", path, sha256_of(path), COCO_NAMES, 320))
    return model_dir


@pytest.mark.parametrize("unmapped", ["drop", "other"])
def test_a_class_mapped_user_model_publishes_site_class_ids(ros_context, executor, coco_model_dir, unmapped):
    from vision_msgs.msg import Detection2DArray

    from perception_nodes.ros import qos
    from perception_nodes.taxonomy import SITE_CLASS_NAMES

    node = _detector(ros_context, coco_model_dir, model="coco@1", unmapped_classes=unmapped,
                     class_map=["person=person", "bicycle=bicycle", "car=car", "motorcycle=bicycle", "bus=truck",
                                "truck=truck"])
    try:
        pubs, got = _probe(ros_context, executor, node)
        raw = []  # what the model itself returned (model class indices), to check the mapping row by row
        model = node.runtime.primary.detector
        predict = model.predict
        model.predict = lambda images: raw.append(predict(images)) or raw[-1]
        twins = []
        node.create_subscription(Detection2DArray, "/cam_a/detections_2d", twins.append, qos.RESULTS)
        pubs["cam_a"].publish(_image(31, height=96, width=128))
        assert spin_until(executor, lambda: got["cam_a"] and twins, 60.0)
        detections = got["cam_a"][0].detections
        assert detections  # random init at confidence 0: many boxes
        site_of = {"person": 2, "bicycle": 3, "car": 0, "motorcycle": 3, "bus": 1, "truck": 1}
        expected = [site_of.get(COCO_NAMES[int(c)], 4 if unmapped == "other" else None) for c in raw[0][0][:, 5]]
        assert [d.class_id for d in detections] == [e for e in expected if e is not None]
        assert all(d.class_name == SITE_CLASS_NAMES[d.class_id] for d in detections)
        # The vision_msgs twin carries the same objects, stamp and class names.
        twin = twins[0]
        assert twin.header.stamp.sec == 31 and len(twin.detections) == len(detections)
        assert [d.results[0].hypothesis.class_id for d in twin.detections] == [d.class_name for d in detections]
        assert twin.detections[0].bbox.size_x == pytest.approx(detections[0].box.width)
    finally:
        node.close()


def test_swap_loads_off_the_single_executor_thread_and_closes_the_replaced_model(ros_context, model_dir,
                                                                                   monkeypatch):
    """The node's real executor (one thread): while the new model loads (slowed to 3 s here), images keep being
    taken in and answered by the old model; the reply comes once the new one serves; the old one is closed."""
    import time

    from rclpy.executors import SingleThreadedExecutor

    from perception_nodes.msg import ServiceStatus
    from perception_nodes.nodes import detector as detector_module
    from perception_nodes.srv import SwapModel

    real_loader = detector_module.default_loader

    def slow_loader(registry, config, log=print):
        load = real_loader(registry, config, log)

        def slowly(ref, imgsz):
            if ref == "m@2":
                time.sleep(3.0)
            return load(ref, imgsz)
        return slowly

    monkeypatch.setattr(detector_module, "default_loader", slow_loader)
    executor = SingleThreadedExecutor(context=ros_context[1])
    node = _detector(ros_context, model_dir)
    try:
        pubs, got = _probe(ros_context, executor, node)
        old = node.runtime.primary
        client = node.create_client(SwapModel, "/detector/swap_model")
        assert spin_until(executor, client.service_is_ready, 10.0)
        future = client.call_async(SwapModel.Request(model="m@2"))
        answered_during_load = 0
        deadline = time.monotonic() + 60.0
        for stamp in range(100, 100_000):
            if time.monotonic() > deadline:
                break
            pubs["cam_a"].publish(_image(stamp))
            spin_until(executor, lambda: future.done() or (got["cam_a"] and got["cam_a"][-1].header.stamp.sec == stamp),
                       2.0)
            if future.done():
                break
            answered_during_load += got["cam_a"][-1].header.stamp.sec == stamp and got["cam_a"][-1].model == "m@1"
        assert future.done(), "the swap never answered"
        assert future.result().status.code == ServiceStatus.OK and future.result().active_model == "m@2"
        assert answered_during_load >= 3  # the executor was free while m@2 loaded
        assert old.detector.closed and node.runtime.closed_models == 1
        with pytest.raises(Exception, match="closed"):
            old.detector.predict([np.zeros((8, 8, 3), np.uint8)])
    finally:
        node.close()
        executor.shutdown(timeout_sec=1.0)


def test_configure_cleanup_configure(ros_context, executor, model_dir):
    """cleanup destroys what configure created (publishers, subscriptions, service, models); configuring again
    gives a working node, not duplicates."""
    node = _detector(ros_context, model_dir, autostart=False)
    try:
        node.trigger_configure()
        assert node.runtime is not None
        first = node.runtime.primary
        topics = sorted(name for name, _ in node.get_publisher_names_and_types_by_node("detector", "/"))
        node.trigger_cleanup()
        assert node.runtime is None and first.detector.closed and not node._entities
        assert not [n for n, _ in node.get_publisher_names_and_types_by_node("detector", "/") if "detections" in n]
        node.trigger_configure()
        node.trigger_activate()
        assert sorted(n for n, _ in node.get_publisher_names_and_types_by_node("detector", "/")) == topics
        pubs, got = _probe(ros_context, executor, node)
        assert len(node.get_subscriptions_info_by_topic("/cam_a/image_raw")) == 1
        pubs["cam_a"].publish(_image(41))
        assert spin_until(executor, lambda: got["cam_a"], 60.0)
    finally:
        node.close()


def test_shadow_agreement_is_published(ros_context, executor, model_dir):
    from std_msgs.msg import Float64

    from perception_nodes.ros import qos

    node = _detector(ros_context, model_dir, shadow_model="m@2", shadow_fraction=1.0)
    try:
        pubs, got = _probe(ros_context, executor, node)
        agreement = []
        node.create_subscription(Float64, "/detector/shadow_agreement", agreement.append, qos.RESULTS)
        pubs["cam_a"].publish(_image(51))
        assert spin_until(executor, lambda: agreement, 60.0)
        assert 0.0 <= agreement[0].data <= 1.0
        assert node.counters.snapshot().extra["shadow_agreement_permille"] == round(agreement[-1].data * 1000)
    finally:
        node.close()


def test_a_best_effort_camera_publisher_is_served_when_the_site_says_so(ros_context, executor, model_dir):
    """A driver that publishes BEST_EFFORT (sensor_data) matches the detector only where that camera's image_qos is
    sensor_data; a RELIABLE subscription would never match it (incompatible QoS: no frame at all)."""
    from sensor_msgs.msg import Image

    from perception_nodes.msg import DetectionArray
    from perception_nodes.ros import qos

    node = _detector(ros_context, model_dir, image_qos=["sensor_data", "reliable"])
    try:
        rclpy, context = ros_context
        probe = rclpy.create_node("best_effort_probe", context=context)
        pubs = {c: probe.create_publisher(Image, f"/{c}/image_raw", qos.IMAGE_SENSOR_DATA) for c in ("cam_a", "cam_b")}
        got = []
        probe.create_subscription(DetectionArray, "/cam_a/detections", got.append, qos.RESULTS)
        executor.add_node(node)
        executor.add_node(probe)
        assert spin_until(executor, lambda: node._running and pubs["cam_a"].get_subscription_count() == 1, 60.0)
        spin_until(executor, lambda: False, 0.5)
        assert pubs["cam_b"].get_subscription_count() == 0  # RELIABLE subscription, BEST_EFFORT publisher
        for stamp in range(61, 64):
            pubs["cam_a"].publish(_image(stamp))
            spin_until(executor, lambda: got and got[-1].header.stamp.sec == stamp, 20.0)
        assert got and got[-1].header.stamp.sec == 63
    finally:
        node.close()


def test_image_qos_must_have_one_entry_per_camera(ros_context, model_dir):
    from rclpy.exceptions import InvalidParameterValueException

    with pytest.raises(InvalidParameterValueException, match="one entry per camera"):
        _detector(ros_context, model_dir, image_qos=["sensor_data"])
    with pytest.raises(InvalidParameterValueException, match="invalid entries"):
        _detector(ros_context, model_dir, camera_priorities=[1, 11])


def test_an_overloaded_detector_serves_every_camera_and_never_queues(ros_context, executor, model_dir):
    """Four cameras at 20 Hz into a detector that manages about 4 passes a second of one frame each: every camera
    is served in turn (none starves), the frames it cannot take are dropped and counted per camera, and what it
    answers is fresh (a frame's age stays bounded; nothing waits in a queue)."""
    import time

    from sensor_msgs.msg import Image

    from perception_nodes.msg import DetectionArray
    from perception_nodes.ros import qos

    cams = ["cam_a", "cam_b", "cam_c", "cam_d"]
    node = _detector(ros_context, model_dir, cameras=cams, max_batch=1, batch_wait_ms=0.0)
    try:
        rclpy, context = ros_context
        probe = rclpy.create_node("overload_probe", context=context)
        pubs = {c: probe.create_publisher(Image, f"/{c}/image_raw", qos.IMAGE) for c in cams}
        ages = {c: [] for c in cams}

        def on_detections(cam, msg):
            now = probe.get_clock().now().nanoseconds
            ages[cam].append((now - (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)) / 1e9)

        for cam in cams:
            probe.create_subscription(DetectionArray, f"/{cam}/detections", lambda m, c=cam: on_detections(c, m),
                                      qos.RESULTS)
        executor.add_node(node)
        executor.add_node(probe)
        assert spin_until(executor, lambda: node._running and all(p.get_subscription_count() for p in pubs.values()),
                          60.0)
        model = node.runtime.primary.detector
        predict = model.predict
        model.predict = lambda images: (time.sleep(0.25), predict(images))[1]  # ~4 passes/s
        image = _image(0)
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline:
            for cam in cams:
                stamp = probe.get_clock().now().to_msg()
                image.header.stamp = stamp
                pubs[cam].publish(image)
            spin_until(executor, lambda: False, 0.05)
        spin_until(executor, lambda: False, 1.0)
        extra = node.counters.snapshot().extra
        served = {c: extra.get(f"served_{c}", 0) for c in cams}
        assert all(n >= 3 for n in served.values()), served  # round robin: each camera about a quarter
        assert max(served.values()) - min(served.values()) <= 2, served
        assert all(extra.get(f"superseded_{c}", 0) > 20 for c in cams), extra  # dropped, counted per camera
        steady = [age for c in cams for age in ages[c][1:]]
        assert steady and max(steady) < 2.0, max(steady)  # one round of 4 passes, never a growing queue
    finally:
        node.close()


def test_capture_keeps_the_requested_frame_with_its_reason_and_ground_truth(ros_context, executor, model_dir,
                                                                            tmp_path):
    """A tracker's capture request finds its frame in the ring; the bag holds the frame, the synthetic ground
    truth and the reason, and `train detector --extra-data` turns it into a labelled training image."""
    from perception_nodes.detection.dataset import export_captured
    from perception_nodes.monitoring.capture import read_capture
    from perception_nodes.msg import CaptureRequest, Detection, DetectionArray
    from perception_nodes.ros import qos

    node = _detector(ros_context, model_dir, capture_dir=str(tmp_path / "captures"), capture_min_interval_s=0.0)
    try:
        pubs, got = _probe(ros_context, executor, node)
        rclpy, _ = ros_context
        probe = rclpy.create_node("capture_probe", context=ros_context[1])
        truth_pub = probe.create_publisher(DetectionArray, "/cam_a/ground_truth/detections", qos.RESULTS)
        request_pub = probe.create_publisher(CaptureRequest, "/cam_a/capture_request", qos.RESULTS)
        executor.add_node(probe)
        assert spin_until(executor, lambda: truth_pub.get_subscription_count() and request_pub.get_subscription_count(),
                          10.0)
        truth = DetectionArray(camera_id="cam_a", detections=[Detection(class_id=0, class_name="car")])
        truth.header.stamp.sec = 61
        truth.detections[0].box.center_x, truth.detections[0].box.center_y = 32.0, 24.0
        truth.detections[0].box.width, truth.detections[0].box.height = 20.0, 10.0
        truth_pub.publish(truth)
        spin_until(executor, lambda: False, 0.3)
        pubs["cam_a"].publish(_image(61))
        assert spin_until(executor, lambda: got["cam_a"], 60.0)
        request = CaptureRequest(camera_id="cam_a", reason="coasting_mid_view", detail="track 4")
        request.header.stamp.sec = 61
        request_pub.publish(request)
        gone = CaptureRequest(camera_id="cam_a", reason="short_lived")
        gone.header.stamp.sec = 5  # long out of the ring
        request_pub.publish(gone)
        assert spin_until(executor, lambda: node.counters.snapshot().extra.get("captured_coasting_mid_view") == 1
                          and node.counters.snapshot().extra.get("capture_not_found") == 1, 10.0)
    finally:
        node.close()
        node.destroy_node()
    bags = list((tmp_path / "captures").iterdir())
    assert len(bags) == 1
    frames = read_capture(bags[0])
    assert [(f.camera, f.stamp_ns, f.reasons) for f in frames] == [("cam_a", 61_000_000_000, ["coasting_mid_view"])]
    assert frames[0].image.shape == (48, 64, 3) and frames[0].truth.detections[0].class_id == 0
    counts = export_captured(bags[0], tmp_path / "data")
    assert counts["images"] == 1 and counts["boxes"] == 1 and counts["reasons"] == {"coasting_mid_view": 1}
    label = next((tmp_path / "data" / "labels" / "train").glob("*.txt")).read_text().split()
    assert label == ["0", "0.500000", "0.500000", "0.312500", "0.208333"]


def test_capture_writer_stops_at_its_bound(tmp_path):
    from perception_nodes.monitoring.capture import CaptureWriter, FrameRing

    ring = FrameRing(depth=2)
    for stamp in (1, 2, 3):
        ring.add_frame("c", stamp * 1_000_000_000, f"frame{stamp}")
    assert ring.find("c", 1_000_000_000) is None and ring.find("c", 3_000_000_100)[1] == "frame3"
    writer = CaptureWriter(tmp_path / "bag", max_bytes=10)
    from rclpy.serialization import serialize_message

    from perception_nodes.msg import CaptureRequest

    request = serialize_message(CaptureRequest(camera_id="c", reason="x"))
    assert writer.write("c", 1, b"12345678", None, request)
    assert not writer.write("c", 1, b"12345678", None, request) and writer.counts.duplicates == 1
    assert not writer.write("c", 2, b"12345678", None, request) and writer.counts.dropped_full == 1
    writer.close()
