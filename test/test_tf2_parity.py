"""The transform stand-in against tf2/tf2_ros's documented behaviour (BufferCore, Buffer, TransformListener,
TransformBroadcaster): full lookups, async waits, velocity, parent history, frame id rules, tf2's messages."""
import math
import threading

import numpy as np
import pytest

from perception_nodes.tf.buffer import (
    ConnectivityException,
    ExtrapolationException,
    InvalidArgumentException,
    LookupException,
    StampedTransform,
    TransformBuffer,
    TransformException,
)

S = 1_000_000_000
IDENTITY = (0.0, 0.0, 0.0, 1.0)


def _yaw(angle):
    return (0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2))


def test_lookup_transform_full_goes_through_a_fixed_frame():
    """A robot moves in the map: where its camera was at t=1, seen from where it is at t=3."""
    buffer = TransformBuffer()
    for t, x in ((1, 0.0), (2, 1.0), (3, 2.0)):
        buffer.set_transform(StampedTransform("map", "base", t * S, (x, 0.0, 0.0), IDENTITY))
    buffer.set_transform(StampedTransform("base", "camera", 0, (0.5, 0.0, 1.0), IDENTITY), static=True)
    full = buffer.lookup_transform_full("camera", 3 * S, "camera", 1 * S, "map")
    assert full.translation == pytest.approx((-2.0, 0.0, 0.0)) and full.stamp_ns == 3 * S
    # Composes like tf2: target(t_t) <- fixed <- source(t_s).
    a = buffer.lookup_transform("map", "camera", 1 * S).transform()
    b = buffer.lookup_transform("map", "camera", 3 * S).transform()
    np.testing.assert_allclose(full.transform().matrix(), (b.inverse() @ a).matrix(), atol=1e-12)
    assert buffer.can_transform_full("camera", 3 * S, "camera", 1 * S, "map")
    assert not buffer.can_transform_full("camera", 9 * S, "camera", 1 * S, "map")


def test_a_new_parent_keeps_the_history_before_the_switch():
    buffer = TransformBuffer()
    buffer.set_transform(StampedTransform("map", "odom", 0, (10.0, 0.0, 0.0), IDENTITY), static=True)
    buffer.set_transform(StampedTransform("map", "robot", 1 * S, (1.0, 0.0, 0.0), IDENTITY))
    buffer.set_transform(StampedTransform("map", "robot", 2 * S, (2.0, 0.0, 0.0), IDENTITY))
    buffer.set_transform(StampedTransform("odom", "robot", 3 * S, (-7.0, 0.0, 0.0), IDENTITY))  # re-parented
    buffer.set_transform(StampedTransform("odom", "robot", 4 * S, (-6.0, 0.0, 0.0), IDENTITY))
    assert buffer.lookup_transform("map", "robot", 1500_000_000).translation == pytest.approx((1.5, 0.0, 0.0))
    assert buffer.lookup_transform("map", "robot", 4 * S).translation == pytest.approx((4.0, 0.0, 0.0))
    assert "Frame robot exists with parent odom." in buffer.all_frames_as_string()


def test_frame_ids_follow_tf2s_rules():
    buffer = TransformBuffer()
    buffer.set_transform(StampedTransform("/map", "/cam", 0, (1.0, 0.0, 0.0), IDENTITY), static=True)
    assert buffer.frames() == {"map", "cam"}  # one leading slash stripped
    assert buffer.lookup_transform("/map", "cam").translation == (1.0, 0.0, 0.0)
    assert buffer.lookup_transform("map", "/cam").parent == "map"
    for bad in ("", "/"):
        with pytest.raises(InvalidArgumentException, match="cannot be empty"):
            buffer.lookup_transform(bad, "cam")
        with pytest.raises(InvalidArgumentException):
            buffer.set_transform(StampedTransform(bad, "cam", 0, (0, 0, 0), IDENTITY))
    assert issubclass(InvalidArgumentException, TransformException)


def test_tf2_error_messages():
    buffer = TransformBuffer()
    buffer.set_transform(StampedTransform("a", "b", 1 * S, (0, 0, 0), IDENTITY))
    buffer.set_transform(StampedTransform("a", "b", 2 * S, (0, 0, 0), IDENTITY))
    buffer.set_transform(StampedTransform("x", "y", 0, (0, 0, 0), IDENTITY), static=True)
    with pytest.raises(LookupException, match='"nope" passed to lookupTransform argument source_frame does not exist'):
        buffer.lookup_transform("a", "nope")
    with pytest.raises(ConnectivityException, match="Could not find a connection between 'a' and 'y' because they "
                                                    "are not part of the same tree"):
        buffer.lookup_transform("a", "y")
    with pytest.raises(ExtrapolationException, match=r"extrapolation into the future.  Requested time 3\.000000 but "
                                                     r"the latest data is at time 2\.000000, when looking up "
                                                     r"transform from frame \[b\] to frame \[a\]"):
        buffer.lookup_transform("a", "b", 3 * S)
    with pytest.raises(ExtrapolationException, match=r"into the past.  Requested time 0\.500000 but the earliest"):
        buffer.lookup_transform("a", "b", S // 2)


def test_can_transform_waits_up_to_its_timeout():
    buffer = TransformBuffer()
    buffer.set_transform(StampedTransform("map", "odom", 1 * S, (0, 0, 0), IDENTITY))
    assert not buffer.can_transform("map", "odom", 2 * S, timeout_s=0.1)
    threading.Timer(0.2, lambda: buffer.set_transform(StampedTransform("map", "odom", 2 * S, (1, 0, 0),
                                                                       IDENTITY))).start()
    assert buffer.can_transform("map", "odom", 2 * S, timeout_s=5.0)


def test_wait_for_transform_async_completes_when_the_data_arrives():
    buffer = TransformBuffer()
    future = buffer.wait_for_transform_async("map", "cam", 5 * S)
    assert not future.done()
    buffer.set_transform(StampedTransform("map", "cam", 4 * S, (0, 0, 0), IDENTITY))
    assert not future.done()  # 5 s is still in the future
    threading.Thread(target=lambda: buffer.set_transform(
        StampedTransform("map", "cam", 6 * S, (2, 0, 0), IDENTITY))).start()
    assert future.result(timeout=5.0).translation == pytest.approx((1.0, 0.0, 0.0))  # interpolated at 5 s
    assert buffer.wait_for_transform_async("map", "cam", 5 * S).done()  # already available: done at once
    cancelled = buffer.wait_for_transform_async("map", "nowhere")
    cancelled.cancel()
    buffer.set_transform(StampedTransform("map", "nowhere", 7 * S, (0, 0, 0), IDENTITY))
    assert cancelled.cancelled()
    assert isinstance(buffer.wait_for_transform_async("", "cam").exception(), InvalidArgumentException)


def test_lookup_velocity():
    buffer = TransformBuffer()
    for i in range(11):  # moving at (2, -1, 0) m/s and turning at 0.5 rad/s about z
        t = i * 0.1
        buffer.set_transform(StampedTransform("map", "robot", int(t * S), (2 * t, -t, 0.0), _yaw(0.5 * t)))
    velocity = buffer.lookup_velocity("robot", "map", int(0.5 * S), averaging_interval_s=0.2)
    assert velocity.linear == pytest.approx((2.0, -1.0, 0.0), abs=1e-6)
    assert velocity.angular == pytest.approx((0.0, 0.0, 0.5), abs=1e-6)
    assert buffer.lookup_velocity("robot", "map").linear == pytest.approx((2.0, -1.0, 0.0), abs=1e-6)  # latest
    with pytest.raises(InvalidArgumentException):
        buffer.lookup_velocity("robot", "map", averaging_interval_s=0.0)


def test_all_frames_as_yaml_has_tf2s_keys():
    buffer = TransformBuffer()
    for i in range(3):
        buffer.set_transform(StampedTransform("map", "robot", (i + 1) * S, (i, 0, 0), IDENTITY), authority="/driver")
    text = buffer.all_frames_as_yaml()
    for line in ("robot: ", "  parent: 'map'", "  broadcaster: '/driver'", "  rate: 1.000",
                 "  most_recent_transform: 3.000000", "  oldest_transform: 1.000000", "  buffer_length: 2.000"):
        assert line in text.splitlines(), (line, text)
    import yaml

    assert yaml.safe_load(text)["robot"]["parent"] == "map"


# -- tf2_ros API over DDS ------------------------------------------------------------------------------------------
def _stamped(parent, child, sec, x=0.0, rotation=IDENTITY):
    from perception_nodes.ros.tf import to_msg

    return to_msg(StampedTransform(parent, child, int(sec * S), (x, 0.0, 0.0), rotation))


@pytest.mark.node
def test_code_written_for_tf2_ros_runs_with_the_imports_changed(ros_context, executor):
    """The tf2_ros tutorial's listener and broadcaster, imports changed: dynamic /tf, static /tf_static, a
    lookup with a timeout, an async lookup awaited in a callback, and an invalid transform ignored."""
    import rclpy.time
    from rclpy.duration import Duration

    from conftest import spin_until
    from perception_nodes.ros.tf2 import (Buffer, StaticTransformBroadcaster, TransformBroadcaster,
                                          TransformListener, USING_TF2_ROS)

    assert USING_TF2_ROS is False  # tf2_ros is not installed here: the stand-ins run
    rclpy, context = ros_context
    talker = rclpy.create_node("tf_talker", context=context)
    listener_node = rclpy.create_node("tf_listener", context=context)
    tf_buffer = Buffer()
    tf_listener = TransformListener(tf_buffer, listener_node)
    dynamic = TransformBroadcaster(talker)
    static = StaticTransformBroadcaster(talker)
    executor.add_node(talker)
    executor.add_node(listener_node)
    static.sendTransform(_stamped("map", "odom", 0, 10.0))
    spin_until(executor, lambda: False, 0.3)
    # An async lookup awaited before the data exists.
    result = {}

    async def waiting_callback():
        result["t"] = await tf_buffer.lookup_transform_async("map", "base", rclpy.time.Time(seconds=1.5))

    task = executor.create_task(waiting_callback())
    dynamic.sendTransform([_stamped("odom", "base", 1.0, 1.0), _stamped("odom", "base", 1.0, 1.0)])
    dynamic.sendTransform(_stamped("odom", "base", 2.0, 3.0))
    dynamic.sendTransform(_stamped("", "base", 2.5, 3.0))  # invalid: logged and ignored by the listener
    assert spin_until(executor, task.done, 10.0)
    assert result["t"].transform.translation.x == pytest.approx(12.0)  # 10 + interpolated 2.0
    assert spin_until(executor, lambda: tf_listener.rejected == 1, 5.0)
    t = tf_buffer.lookup_transform("map", "base", rclpy.time.Time(), timeout=Duration(seconds=1.0))
    assert t.header.frame_id == "map" and t.child_frame_id == "base" and t.header.stamp.sec == 2
    assert tf_buffer.can_transform("map", "base", rclpy.time.Time(seconds=2))
    ok, why = tf_buffer.can_transform("map", "base", rclpy.time.Time(seconds=9), return_debug_tuple=True)
    assert not ok and "extrapolation into the future" in why
    full = tf_buffer.lookup_transform_full("base", rclpy.time.Time(seconds=2), "base", rclpy.time.Time(seconds=1),
                                           "map")
    assert full.transform.translation.x == pytest.approx(-2.0)
    velocity = tf_buffer.lookup_velocity("base", "map", rclpy.time.Time(seconds=1.5),
                                         averaging_interval=Duration(seconds=0.5))
    assert velocity.velocity.linear.x == pytest.approx(2.0) and velocity.body_frame_id == "base"
    assert "Frame base exists with parent odom." in tf_buffer.all_frames_as_string()
    with pytest.raises(LookupException):
        tf_buffer.lookup_transform("map", "ghost", rclpy.time.Time())
    tf_listener.unregister()
