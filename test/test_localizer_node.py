"""The localizer node in this process: tracks of two cameras in, one object out; bad input counted; queries."""
import time

import pytest

from conftest import spin_until

pytestmark = pytest.mark.node


def _camera_info(spec):
    from perception_nodes.calibration import CameraCalibration
    from perception_nodes.nodes.camera import camera_info_from

    return camera_info_from(CameraCalibration.from_camera_spec(spec), f"{spec.id}_optical_frame")


def _tracks(world, cam_index, frame, stamp, camera_id):
    """The true boxes of one camera at one frame as a TrackArray (track id = the object's id)."""
    from perception_nodes.msg import Track, TrackArray

    _, boxes = world.render(cam_index, frame)
    msg = TrackArray(camera_id=camera_id)
    msg.header.frame_id = f"{camera_id}_optical_frame"
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int((stamp % 1) * 1e9)
    for b in boxes:
        if b.visible_fraction < 0.5:
            continue
        x1, y1, x2, y2 = b.bbox
        t = Track(track_id=b.global_id, state=Track.STATE_CONFIRMED, class_id=b.class_id, class_name=b.class_name,
                  score=0.9)
        t.box.center_x, t.box.center_y, t.box.width, t.box.height = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        msg.tracks.append(t)
    return msg


def test_localizer_node_fuses_two_cameras_and_answers_queries(ros_context, executor):
    from rclpy.parameter import Parameter

    from perception_nodes.msg import LocalizedObjectArray, TrackArray
    from perception_nodes.nodes.localizer import LocalizerNode
    from perception_nodes.ros import qos
    from perception_nodes.ros.tf import StaticTransformBroadcaster
    from perception_nodes.srv import QuerySite
    from perception_nodes.world import World, load_scene
    from sensor_msgs.msg import CameraInfo

    rclpy, context = ros_context
    world = World(load_scene("parking2"))
    node = LocalizerNode(context=context, parameter_overrides=[Parameter("site", value="parking2"),
                                                               Parameter("stale_camera_s", value=0.5)])
    probe = rclpy.create_node("probe", context=context)
    executor.add_node(node)
    executor.add_node(probe)
    got = []
    probe.create_subscription(LocalizedObjectArray, "/objects", got.append, qos.RESULTS)
    tracks_pub = {c.spec.id: probe.create_publisher(TrackArray, f"/{c.spec.id}/tracks", qos.RESULTS)
                  for c in world.cameras}
    info_pub = {c.spec.id: probe.create_publisher(CameraInfo, f"/{c.spec.id}/camera_info", qos.CAMERA_INFO)
                for c in world.cameras}
    try:
        # Tracks before any CameraInfo or TF: dropped and counted, nothing published.
        tracks_pub["cam_south"].publish(_tracks(world, 0, 100, 100.0, "cam_south"))
        assert spin_until(executor, lambda: node.counters.snapshot().dropped >= 1, 5.0)
        StaticTransformBroadcaster(probe).send(site_transforms_for(world))
        for c in world.cameras:
            info_pub[c.spec.id].publish(_camera_info(c.spec))
        spin_until(executor, lambda: len(node._camera_info) == 2, 5.0)
        for step in range(30):
            frame = 100 + step
            for ci, c in enumerate(world.cameras):
                tracks_pub[c.spec.id].publish(_tracks(world, ci, frame, frame / 10.0 + 0.01 * ci, c.spec.id))
            spin_until(executor, lambda: False, 0.05)
        assert spin_until(executor, lambda: any(m.objects for m in got), 5.0)
        latest = got[-1]
        assert latest.header.frame_id == "map"
        shared = [o for o in latest.objects if {r.camera_id for r in o.contributors} == {"cam_south", "cam_east"}]
        assert shared, [(o.global_id, [(r.camera_id, r.track_id) for r in o.contributors]) for o in latest.objects]
        for obj in shared:  # both cameras' tracks of one object (track id = its true id) fused into one
            assert len({r.track_id for r in obj.contributors}) == 1
            assert obj.global_id != 0 and obj.state in (obj.STATE_CONFIRMED, obj.STATE_COASTING)
        client = probe.create_client(QuerySite, "/localizer/query_site")
        assert client.wait_for_service(timeout_sec=5.0)
        for request, code in ((QuerySite.Request(stall_id="nope"), 2), (QuerySite.Request(), 0)):
            future = client.call_async(request)
            assert spin_until(executor, future.done, 5.0)
            assert future.result().status.code == code, future.result().status.message
        assert len(future.result().stalls) == 4
        # NaN boxes are skipped and counted, the node keeps running.
        bad = _tracks(world, 0, 131, 13.1, "cam_south")
        bad.tracks[0].box.width = float("nan")
        tracks_pub["cam_south"].publish(bad)
        assert spin_until(executor, lambda: node.counters.snapshot().extra.get("boxes_not_lifted", 0) >= 1, 5.0)
        # One stale message (5 s before the map's time) is dropped and counted; the map and its ids stay.
        ids_before = {o.global_id for o in got[-1].objects}
        tracks_pub["cam_east"].publish(_tracks(world, 1, 80, 8.0, "cam_east"))
        assert spin_until(executor, lambda: node.counters.snapshot().extra.get("dropped_backwards", 0) >= 1, 5.0)
        assert node.counters.snapshot().extra.get("resets", 0) == 0
        assert ids_before <= {o.global_id for o in node.core.snapshot(node.core.tracker.time)}
        # A camera that goes silent is reported.
        time.sleep(0.6)
        level, message = node._status()
        assert level == 1 and "cam_south" in message
    finally:
        node.destroy_node()
        probe.destroy_node()


def site_transforms_for(world):
    """map -> <cam>_optical_frame of the scene's calibrated cameras, as StampedTransforms."""
    from perception_nodes.geometry import Transform, camera_body_transform
    from perception_nodes.tf.buffer import StampedTransform

    out = []
    for cam in world.cameras:
        s = cam.spec
        T = camera_body_transform(s.position, s.yaw_deg, s.pitch_deg, s.roll_deg) @ Transform.body_from_optical()
        out.append(StampedTransform.from_transform("map", s.optical_frame, 0, T))
    return out


def test_calibration_monitor_node_flags_a_bumped_camera_and_counts_bad_images(ros_context, executor):
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image

    from perception_nodes.image_codec import numpy_to_image
    from perception_nodes.msg import CameraCalibrationHealth, NodeHealth
    from perception_nodes.nodes.calibration_monitor import CalibrationMonitorNode
    from perception_nodes.ros import qos
    from perception_nodes.ros.tf import StaticTransformBroadcaster
    from perception_nodes.world import World, load_scene

    rclpy, context = ros_context
    world = World(load_scene("parking_bumped", seed=4))
    bumped = world.scene.camera_bump.camera
    checked = ["cam0", bumped]
    node = CalibrationMonitorNode(context=context, parameter_overrides=[
        Parameter("site", value="parking_bumped"), Parameter("cameras", value=checked),
        Parameter("check_rate_hz", value=20.0)])
    probe = rclpy.create_node("calibration_probe", context=context)
    executor.add_node(node)
    executor.add_node(probe)
    health = []
    probe.create_subscription(CameraCalibrationHealth, "/calibration/health", health.append, qos.RESULTS)
    image_pub = {c: probe.create_publisher(Image, f"/{c}/image_raw", qos.RESULTS) for c in checked}
    info_pub = {c: probe.create_publisher(CameraInfo, f"/{c}/camera_info", qos.CAMERA_INFO) for c in checked}
    index = {c.spec.id: i for i, c in enumerate(world.cameras)}
    try:
        StaticTransformBroadcaster(probe).send(site_transforms_for(world))
        for c in checked:
            info_pub[c].publish(_camera_info(world.cameras[index[c]].spec))
        assert spin_until(executor, lambda: len(node._camera_info) == 2, 5.0)
        # An image of another size than the CameraInfo's: counted, not checked.
        image_pub["cam0"].publish(numpy_to_image(world.render(index["cam0"], 0)[0][::2, ::2].copy(), "bgr8"))
        assert spin_until(executor, lambda: node.counters.snapshot().errors >= 1, 5.0)
        first_after = int(world.scene.camera_bump.time_s * world.scene.fps) + 5
        for k in range(7):
            for c in checked:
                msg = numpy_to_image(world.render(index[c], first_after + 10 * k)[0], "bgr8")
                msg.header.frame_id = f"{c}_optical_frame"
                msg.header.stamp.sec = 100 + k
                image_pub[c].publish(msg)
            before = len(health)
            spin_until(executor, lambda: len(health) >= before + 2, 5.0)
        latest = {m.camera_id: m for m in health}
        assert latest[bumped].state == CameraCalibrationHealth.STATE_MISALIGNED, latest[bumped]
        assert 0.5 * world.scene.camera_bump.magnitude_deg < latest[bumped].error_deg < 3.0
        assert latest["cam0"].state == CameraCalibrationHealth.STATE_OK, latest["cam0"]
        level, message = node._status()
        assert level == NodeHealth.LEVEL_WARN and bumped in message and "cam0" not in message
    finally:
        node.destroy_node()
        probe.destroy_node()


def test_localizer_node_motion_model_parameter(ros_context):
    """``motion_model`` picks what the node's objects publish (the IMM by default, the identity filter's
    constant-velocity estimate with ``cv``); anything else is refused at start with the parameter's name."""
    from rclpy.parameter import Parameter

    from perception_nodes.localization.motion import MotionModel
    from perception_nodes.nodes.localizer import LocalizerNode

    _, context = ros_context
    for value, imm in ((None, True), (MotionModel.CONSTANT_VELOCITY, False), (MotionModel.IMM, True)):
        overrides = [Parameter("site", value="parking2")]
        if value is not None:
            overrides.append(Parameter("motion_model", value=value))
        node = LocalizerNode(context=context, parameter_overrides=overrides)
        try:
            assert (node.core.tracker._imm is not None) == imm
            assert node.core.tracker.params.motion_model == (value or MotionModel.IMM)
        finally:
            node.destroy_node()
    from rclpy.exceptions import InvalidParameterValueException

    with pytest.raises(InvalidParameterValueException, match="motion_model"):
        LocalizerNode(context=context, parameter_overrides=[Parameter("site", value="parking2"),
                                                            Parameter("motion_model", value="kalman")])
