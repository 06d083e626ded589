"""QoS per stream, each with the reason it is what it is.

All profiles here are defaults: publishers are created with
``QoSOverridingOptions.with_default_policies()`` so a user can override
reliability/depth/durability per topic from a params file
(``qos_overrides./topic.publisher.reliability: best_effort``).
"""
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.qos_overriding_options import QoSOverridingOptions

# Images: measured on these machines, BEST_EFFORT delivered no 640x480 frame
# between processes (fragmented samples are lost as a whole), while RELIABLE with
# depth 1 delivered them at p50 13 ms. Depth 1 keeps only the newest frame, so a
# slow subscriber never makes the publisher queue up old images.
IMAGE = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1,
                   durability=DurabilityPolicy.VOLATILE)

# Images from a driver that publishes BEST_EFFORT (sensor_data, as most camera drivers do): a RELIABLE
# subscription would not match such a publisher at all, so a camera marked `image_qos: sensor_data` in the
# site manifest is published and subscribed with this. Depth 1: the newest frame only, as IMAGE.
IMAGE_SENSOR_DATA = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST, depth=1,
                               durability=DurabilityPolicy.VOLATILE)

# CameraInfo goes with every image; same policy so the pair arrives together.
CAMERA_INFO = IMAGE

# CameraInfo for nodes that only need a camera's calibration (localizer, risk): BEST_EFFORT depth 1 subscribes to
# RELIABLE and BEST_EFFORT camera publishers alike; only the newest calibration matters.
CAMERA_INFO_ANY = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST, depth=1)

IMAGE_QOS_CHOICES = ("reliable", "sensor_data")


def image_profile(choice: str) -> QoSProfile:
    """The image QoS for a site manifest's ``image_qos`` choice."""
    if choice not in IMAGE_QOS_CHOICES:
        raise ValueError(f"image_qos {choice!r} is not one of {list(IMAGE_QOS_CHOICES)}")
    return IMAGE if choice == "reliable" else IMAGE_SENSOR_DATA

# Per-frame results (detections, tracks, localized objects): small, every one
# matters to the next stage, a short queue absorbs scheduling jitter.
RESULTS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10,
                     durability=DurabilityPolicy.VOLATILE)

# Health counters: the monitor needs each node's latest report, late joiners get
# the last one.
HEALTH = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10,
                    durability=DurabilityPolicy.VOLATILE)

# Latched data (static TF, robot_description, calibration): published once,
# every subscriber that joins later must still receive it.
LATCHED = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)

# Decisions (risk, actuation): never dropped, never stale on arrival.
COMMANDS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10,
                      durability=DurabilityPolicy.VOLATILE)

# /clock from bag playback: the newest time only.
CLOCK = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1)


def overridable() -> QoSOverridingOptions:
    """Let users override a publisher's or subscription's QoS policies through parameters
    (``qos_overrides./cam0/image_raw.subscription.reliability: best_effort``)."""
    return QoSOverridingOptions.with_default_policies()
