"""Transform buffer with tf2_ros.Buffer semantics (pure core) and tf2_ros's exception names."""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)  # noqa: F821 - source tree + install space (see the package __init__)

from perception_nodes.tf.buffer import (
    ConnectivityException,
    ExtrapolationException,
    InvalidArgumentException,
    LookupException,
    StampedTransform,
    TimeoutException,
    TransformBuffer,
    TransformException,
    Velocity,
)

__all__ = ["TransformBuffer", "StampedTransform", "Velocity", "TransformException", "LookupException",
           "ConnectivityException", "ExtrapolationException", "InvalidArgumentException", "TimeoutException"]
