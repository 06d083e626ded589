"""tf2_ros's Python API: Buffer, TransformListener, TransformBroadcaster, StaticTransformBroadcaster, exceptions.

Code written for tf2_ros runs with the imports changed::

    from perception_nodes.ros.tf2 import Buffer, TransformListener    # was: from tf2_ros import ...
    self.tf_buffer = Buffer()
    self.tf_listener = TransformListener(self.tf_buffer, self)
    t = self.tf_buffer.lookup_transform("map", "cam0_optical_frame", rclpy.time.Time(), timeout=Duration(seconds=0.1))

Where tf2_ros is importable (a ROS install), these names are tf2_ros's own classes; elsewhere they are the
stand-ins below, over the pure-Python :class:`~perception_nodes.tf.buffer.TransformBuffer`, with tf2's
exception types and messages. ``USING_TF2_ROS`` says which.
"""
from __future__ import annotations

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.time import Time

from perception_nodes.ros.tf import TF_QOS, TF_STATIC_QOS, to_msg, to_stamped
from perception_nodes.tf.buffer import (
    ConnectivityException,
    ExtrapolationException,
    InvalidArgumentException,
    LookupException,
    TimeoutException,
    TransformBuffer,
    TransformException,
)

__all__ = ["Buffer", "TransformListener", "TransformBroadcaster", "StaticTransformBroadcaster",
           "TransformException", "LookupException", "ConnectivityException", "ExtrapolationException",
           "InvalidArgumentException", "TimeoutException", "USING_TF2_ROS"]


def _ns(time) -> int:
    """rclpy Time, builtin_interfaces/Time or nanoseconds -> nanoseconds (0: the latest available)."""
    if isinstance(time, Time):
        return time.nanoseconds
    if hasattr(time, "sec") and hasattr(time, "nanosec"):
        return int(time.sec) * 1_000_000_000 + int(time.nanosec)
    return int(time or 0)


def _seconds(duration) -> float:
    if isinstance(duration, Duration):
        return duration.nanoseconds / 1e9
    if hasattr(duration, "sec") and hasattr(duration, "nanosec"):
        return int(duration.sec) + int(duration.nanosec) / 1e9
    return float(duration or 0.0)


class Buffer:
    """tf2_ros.Buffer: stores transforms and answers lookups (rclpy Time/Duration in, TransformStamped out)."""

    def __init__(self, cache_time: Duration | None = None, node: Node | None = None):
        self.core = TransformBuffer(_seconds(cache_time) if cache_time is not None else 10.0)
        self._node = node

    # -- writing ---------------------------------------------------------------------------------------------------
    def set_transform(self, transform, authority: str) -> bool:
        self.core.set_transform(to_stamped(transform), static=False, authority=authority)
        return True

    def set_transform_static(self, transform, authority: str) -> bool:
        self.core.set_transform(to_stamped(transform), static=True, authority=authority)
        return True

    def clear(self) -> None:
        self.core.clear()

    # -- lookups ---------------------------------------------------------------------------------------------------
    def lookup_transform(self, target_frame: str, source_frame: str, time, timeout=Duration()):
        """target_frame <- source_frame at ``time`` (``Time()``: the latest), waiting up to ``timeout``."""
        return to_msg(self.core.lookup_transform(target_frame, source_frame, _ns(time), _seconds(timeout)))

    def lookup_transform_full(self, target_frame: str, target_time, source_frame: str, source_time,
                              fixed_frame: str, timeout=Duration()):
        return to_msg(self.core.lookup_transform_full(target_frame, _ns(target_time), source_frame, _ns(source_time),
                                                      fixed_frame, _seconds(timeout)))

    def can_transform(self, target_frame: str, source_frame: str, time, timeout=Duration(),
                      return_debug_tuple: bool = False):
        try:
            self.core.lookup_transform(target_frame, source_frame, _ns(time), _seconds(timeout))
            return (True, "") if return_debug_tuple else True
        except TransformException as exc:
            return (False, str(exc)) if return_debug_tuple else False

    def can_transform_full(self, target_frame: str, target_time, source_frame: str, source_time, fixed_frame: str,
                           timeout=Duration(), return_debug_tuple: bool = False):
        try:
            self.core.lookup_transform_full(target_frame, _ns(target_time), source_frame, _ns(source_time),
                                            fixed_frame, _seconds(timeout))
            return (True, "") if return_debug_tuple else True
        except TransformException as exc:
            return (False, str(exc)) if return_debug_tuple else False

    def lookup_velocity(self, tracking_frame: str, observation_frame: str, time,
                        averaging_interval=Duration(seconds=0.1)):
        """geometry_msgs/VelocityStamped of ``tracking_frame`` relative to and expressed in ``observation_frame``."""
        from geometry_msgs.msg import VelocityStamped

        velocity = self.core.lookup_velocity(tracking_frame, observation_frame, _ns(time),
                                             _seconds(averaging_interval))
        msg = VelocityStamped(body_frame_id=tracking_frame.lstrip("/"), reference_frame_id=observation_frame.lstrip("/"))
        msg.header.frame_id = observation_frame.lstrip("/")
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(velocity.stamp_ns, 1_000_000_000)
        (msg.velocity.linear.x, msg.velocity.linear.y, msg.velocity.linear.z) = velocity.linear
        (msg.velocity.angular.x, msg.velocity.angular.y, msg.velocity.angular.z) = velocity.angular
        return msg

    # -- without blocking ------------------------------------------------------------------------------------------
    def wait_for_transform_async(self, target_frame: str, source_frame: str, time):
        """An rclpy Future that becomes done (result True) once the transform can be looked up; nothing blocks."""
        from rclpy.task import Future

        future = Future()
        core = self.core.wait_for_transform_async(target_frame, source_frame, _ns(time))

        def done(result):
            if future.done():
                return
            if result.exception() is not None:
                future.set_exception(result.exception())
            else:
                future.set_result(True)

        core.add_done_callback(done)
        future.add_done_callback(lambda f: core.cancel() if f.cancelled() else None)
        return future

    def wait_for_transform_full_async(self, target_frame: str, target_time, source_frame: str, source_time,
                                      fixed_frame: str):
        from rclpy.task import Future

        future = Future()
        source = self.wait_for_transform_async(fixed_frame, source_frame, source_time)
        target = self.wait_for_transform_async(target_frame, fixed_frame, target_time)

        def check(_):
            if source.done() and target.done() and not future.done():
                future.set_result(True)

        source.add_done_callback(check)
        target.add_done_callback(check)
        return future

    async def lookup_transform_async(self, target_frame: str, source_frame: str, time):
        """``await`` in an async callback: the transform once available, without blocking the executor."""
        await self.wait_for_transform_async(target_frame, source_frame, time)
        return self.lookup_transform(target_frame, source_frame, time)

    async def lookup_transform_full_async(self, target_frame: str, target_time, source_frame: str, source_time,
                                          fixed_frame: str):
        await self.wait_for_transform_full_async(target_frame, target_time, source_frame, source_time, fixed_frame)
        return self.lookup_transform_full(target_frame, target_time, source_frame, source_time, fixed_frame)

    # -- introspection ---------------------------------------------------------------------------------------------
    def all_frames_as_string(self) -> str:
        return self.core.all_frames_as_string()

    def all_frames_as_yaml(self) -> str:
        current = self._node.get_clock().now().nanoseconds if self._node is not None else None
        return self.core.all_frames_as_yaml(current)


class TransformListener:
    """tf2_ros.TransformListener(buffer, node): fills the buffer from /tf and /tf_static. A transform that is
    invalid (empty or equal frame ids, NaN, a non-unit quaternion) is logged and ignored, never raised."""

    def __init__(self, buffer: Buffer, node: Node, *, spin_thread: bool = False, qos: QoSProfile | None = None,
                 static_qos: QoSProfile | None = None):
        from tf2_msgs.msg import TFMessage

        self.buffer = buffer
        self.node = node
        self.rejected = 0
        self._executor = None
        self.tf_sub = node.create_subscription(TFMessage, "/tf", lambda m: self._on(m, False), qos or TF_QOS)
        self.tf_static_sub = node.create_subscription(TFMessage, "/tf_static", lambda m: self._on(m, True),
                                                      static_qos or TF_STATIC_QOS)
        if spin_thread:  # tf2_ros: a dedicated node spun on its own thread; here the subscriptions' node
            import threading

            from rclpy.executors import SingleThreadedExecutor

            self._executor = SingleThreadedExecutor(context=node.context)
            self._executor.add_node(node)
            threading.Thread(target=self._executor.spin, daemon=True).start()

    def _on(self, msg, static: bool) -> None:
        authority = "default_authority"
        for transform in msg.transforms:
            try:
                self.buffer.core.set_transform(to_stamped(transform), static=static, authority=authority)
            except TransformException as exc:
                self.rejected += 1
                self.node.get_logger().warning(f"ignored transform: {exc}", throttle_duration_sec=5.0)

    def unregister(self) -> None:
        self.node.destroy_subscription(self.tf_sub)
        self.node.destroy_subscription(self.tf_static_sub)
        if self._executor is not None:
            self._executor.shutdown()


class TransformBroadcaster:
    """tf2_ros.TransformBroadcaster(node): publishes dynamic transforms on /tf."""

    def __init__(self, node: Node, qos: QoSProfile | int | None = None):
        from tf2_msgs.msg import TFMessage

        self._msg_type = TFMessage
        self.pub_tf = node.create_publisher(TFMessage, "/tf", qos if qos is not None else TF_QOS)

    def sendTransform(self, transform) -> None:  # noqa: N802 - tf2_ros's name
        transforms = list(transform) if isinstance(transform, (list, tuple)) else [transform]
        self.pub_tf.publish(self._msg_type(transforms=transforms))

    send_transform = sendTransform


class StaticTransformBroadcaster:
    """tf2_ros.StaticTransformBroadcaster(node): latches every static transform sent so far on /tf_static
    (one message holding all of them, as tf2_ros keeps it)."""

    def __init__(self, node: Node, qos: QoSProfile | int | None = None):
        from tf2_msgs.msg import TFMessage

        self._msg_type = TFMessage
        self.pub_tf = node.create_publisher(TFMessage, "/tf_static", qos if qos is not None else TF_STATIC_QOS)
        self._net: dict[str, object] = {}

    def sendTransform(self, transform) -> None:  # noqa: N802 - tf2_ros's name
        for item in (list(transform) if isinstance(transform, (list, tuple)) else [transform]):
            self._net[item.child_frame_id] = item
        self.pub_tf.publish(self._msg_type(transforms=list(self._net.values())))

    send_transform = sendTransform


USING_TF2_ROS = False
try:  # a ROS install: tf2_ros's own classes behind the same names
    import tf2_ros as _tf2_ros

    Buffer = _tf2_ros.Buffer  # noqa: F811
    TransformListener = _tf2_ros.TransformListener  # noqa: F811
    TransformBroadcaster = _tf2_ros.TransformBroadcaster  # noqa: F811
    StaticTransformBroadcaster = _tf2_ros.StaticTransformBroadcaster  # noqa: F811
    TransformException = _tf2_ros.TransformException  # noqa: F811
    LookupException = _tf2_ros.LookupException  # noqa: F811
    ConnectivityException = _tf2_ros.ConnectivityException  # noqa: F811
    ExtrapolationException = _tf2_ros.ExtrapolationException  # noqa: F811
    InvalidArgumentException = _tf2_ros.InvalidArgumentException  # noqa: F811
    TimeoutException = _tf2_ros.TimeoutException  # noqa: F811
    USING_TF2_ROS = True
except ImportError:
    pass
