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
    """Fills ``buffer`` from /tf and /tf_static; bad transforms are counted and logged, not fatal."""

    def __init__(self, node: Node, buffer: TransformBuffer, callback_group=None):
        from tf2_msgs.msg import TFMessage

        self.buffer = buffer
        self.rejected = 0
        self._logger = node.get_logger()
        node.create_subscription(TFMessage, "/tf", lambda m: self._on(m, False), TF_QOS, callback_group=callback_group)
        node.create_subscription(TFMessage, "/tf_static", lambda m: self._on(m, True), TF_STATIC_QOS,
                                 callback_group=callback_group)

    def _on(self, msg, static: bool) -> None:
        for transform in msg.transforms:
            try:
                self.buffer.set_transform(to_stamped(transform), static=static)
            except TransformException as exc:
                self.rejected += 1
                self._logger.warning(f"ignored transform: {exc}")


class StaticTransformBroadcaster:
    """Latches the full set of static transforms on /tf_static (as tf2_ros does: one message, all edges)."""

    def __init__(self, node: Node):
        from tf2_msgs.msg import TFMessage

        self._msg_type = TFMessage
        self._publisher = node.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)
        self._edges: dict[str, object] = {}

    def send(self, transforms: list[StampedTransform]) -> None:
        for transform in transforms:
            self._edges[transform.child] = to_msg(transform)
        self._publisher.publish(self._msg_type(transforms=list(self._edges.values())))
