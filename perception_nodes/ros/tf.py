"""TF over DDS for a TransformBuffer: a listener and a static broadcaster that take a node.

Wire-compatible with tf2_ros: ``/tf`` (volatile) and ``/tf_static``
(TRANSIENT_LOCAL, so late joiners receive the static tree) carrying
``tf2_msgs/msg/TFMessage``. Where tf2_ros is installed, its classes can be
used instead; this module exists because tf2_ros is not on PyPI.
"""
from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from perception_nodes.tf.buffer import StampedTransform, TransformBuffer, TransformException

# tf2_ros's own profiles: dynamic TF keeps a deep queue, static TF is latched.
TF_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=100,
                    durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


def to_stamped(msg) -> StampedTransform:
    t, r = msg.transform.translation, msg.transform.rotation
    return StampedTransform(msg.header.frame_id, msg.child_frame_id,
                            msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec,
                            (t.x, t.y, t.z), (r.x, r.y, r.z, r.w))


def to_msg(transform: StampedTransform):
    from geometry_msgs.msg import TransformStamped

    msg = TransformStamped()
    msg.header.frame_id, msg.child_frame_id = transform.parent, transform.child
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(transform.stamp_ns), 1_000_000_000)
    t, r = msg.transform.translation, msg.transform.rotation
    t.x, t.y, t.z = transform.translation
    r.x, r.y, r.z, r.w = transform.rotation
    return msg


class TransformListener:
    """Fills a core ``buffer`` from /tf and /tf_static. A transform that is invalid (empty or equal frame ids, NaN,
    a non-unit quaternion) is counted, logged (throttled) and ignored, never raised."""

    def __init__(self, node: Node, buffer: TransformBuffer, callback_group=None, qos: QoSProfile | None = None,
                 static_qos: QoSProfile | None = None):
        from tf2_msgs.msg import TFMessage

        self.buffer = buffer
        self.node = node
        self.rejected = 0
        self.tf_sub = node.create_subscription(TFMessage, "/tf", lambda m: self._on(m, False), qos or TF_QOS,
                                               callback_group=callback_group)
        self.tf_static_sub = node.create_subscription(TFMessage, "/tf_static", lambda m: self._on(m, True),
                                                      static_qos or TF_STATIC_QOS, callback_group=callback_group)

    def _on(self, msg, static: bool) -> None:
        for transform in msg.transforms:
            try:
                self.buffer.set_transform(to_stamped(transform), static=static)
            except TransformException as exc:
                self.rejected += 1
                self.node.get_logger().warning(f"ignored transform: {exc}", throttle_duration_sec=5.0)

    def unregister(self) -> None:
        self.node.destroy_subscription(self.tf_sub)
        self.node.destroy_subscription(self.tf_static_sub)


class TransformBroadcaster:
    """Publishes dynamic transforms on /tf (tf2_ros.TransformBroadcaster): ``sendTransform`` takes
    TransformStamped messages, ``send`` StampedTransforms."""

    def __init__(self, node: Node, qos: QoSProfile | int | None = None, topic: str = "/tf"):
        from tf2_msgs.msg import TFMessage

        self._msg_type = TFMessage
        self.pub_tf = node.create_publisher(TFMessage, topic, qos if qos is not None else TF_QOS)

    def sendTransform(self, transform) -> None:  # noqa: N802 - tf2_ros's name
        self.pub_tf.publish(self._msg_type(transforms=_as_list(transform)))

    send_transform = sendTransform

    def send(self, transforms: list[StampedTransform]) -> None:
        self.sendTransform([to_msg(t) for t in transforms])


class StaticTransformBroadcaster(TransformBroadcaster):
    """Latches every static transform sent so far on /tf_static, all in one message (as tf2_ros does)."""

    def __init__(self, node: Node, qos: QoSProfile | int | None = None):
        super().__init__(node, qos if qos is not None else TF_STATIC_QOS, topic="/tf_static")
        self._net: dict[str, object] = {}

    def sendTransform(self, transform) -> None:  # noqa: N802 - tf2_ros's name
        for item in _as_list(transform):
            self._net[item.child_frame_id] = item
        self.pub_tf.publish(self._msg_type(transforms=list(self._net.values())))

    send_transform = sendTransform


def _as_list(transform) -> list:
    return list(transform) if isinstance(transform, (list, tuple)) else [transform]
