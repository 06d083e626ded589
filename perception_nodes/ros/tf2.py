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

from perception_nodes.ros.tf import StaticTransformBroadcaster, TransformBroadcaster, to_msg, to_stamped
from perception_nodes.ros.tf import TransformListener as CoreListener
from perception_nodes.tf.buffer import (
    ConnectivityException,
    ExtrapolationException,
    InvalidArgumentException,
    LookupException,
    TimeoutException,
    TransformBuffer,
    TransformException,
    strip_frame_id,
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
        tracking, observation = strip_frame_id(tracking_frame), strip_frame_id(observation_frame)
        msg = VelocityStamped(body_frame_id=tracking, reference_frame_id=observation)
        msg.header.frame_id = observation
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
    """tf2_ros.TransformListener(buffer, node): fills the buffer from /tf and /tf_static (ros/tf.py's listener on
    the buffer's core); invalid transforms are logged and ignored, never raised."""

    def __init__(self, buffer: Buffer, node: Node, *, spin_thread: bool = False, qos: QoSProfile | None = None,
                 static_qos: QoSProfile | None = None):
        self.buffer = buffer
        self.node = node
        self._listener = CoreListener(node, buffer.core, qos=qos, static_qos=static_qos)
        self._executor = None
        if spin_thread:  # tf2_ros: a dedicated node spun on its own thread; here the subscriptions' node
            import threading

            from rclpy.executors import SingleThreadedExecutor

            self._executor = SingleThreadedExecutor(context=node.context)
            self._executor.add_node(node)
            threading.Thread(target=self._executor.spin, daemon=True).start()

    @property
    def rejected(self) -> int:
        """Invalid transforms ignored so far."""
        return self._listener.rejected

    def unregister(self) -> None:
        self._listener.unregister()
        if self._executor is not None:
            self._executor.shutdown()


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
