"""Bag recording and playback over DDS (rosbags storage, raw CDR both ways).

``BagRecorder(node, writer, topics)`` subscribes to topics generically by type
name as they appear, adapting reliability/durability to what the publishers
offer (like ``ros2 bag record``). ``BagPlayer(node, path, ...)`` republishes the
recorded bytes with the original timing, a rate factor, loop, /clock, topic
filter and remaps, or in lockstep with an answer topic for deterministic tests.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from perception_nodes.bagio import BagWriter, read_messages, read_topics
from perception_nodes.errors import BagError
from perception_nodes.ros import qos
from perception_nodes.ros.typenames import message_class

SKIPPED_BY_DEFAULT = ("/rosout", "/parameter_events")
LATCHED_TOPICS = ("/tf_static", "/robot_description")


def _adapted_qos(node: Node, topic: str) -> QoSProfile:
    infos = node.get_publishers_info_by_topic(topic)
    reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos) if infos else True
    latched = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
    return QoSProfile(
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        history=HistoryPolicy.KEEP_LAST, depth=100)


class BagRecorder:
    """Records raw messages of the selected topics into a BagWriter."""

    def __init__(self, node: Node, writer: BagWriter, topics: list[str] | None = None, discovery_period_s: float = 0.5):
        self._node = node
        self._writer = writer
        self._wanted = set(topics) if topics else None
        self._lock = threading.Lock()
        self._subscriptions = {}
        self.counts: dict[str, int] = {}
        self._discover()
        self._timer = node.create_timer(discovery_period_s, self._discover)

    def _discover(self) -> None:
        for topic, types in self._node.get_topic_names_and_types():
            if topic in self._subscriptions:
                continue
            if self._wanted is None and topic in SKIPPED_BY_DEFAULT:
                continue
            if self._wanted is not None and topic not in self._wanted:
                continue
            type_name = types[0]
            try:
                cls = message_class(type_name)
                with self._lock:
                    self._writer.add_topic(topic, type_name)
            except BagError as exc:
                self._node.get_logger().warning(f"not recording {topic}: {exc}")
                self._subscriptions[topic] = None
                continue
            self._subscriptions[topic] = self._node.create_subscription(
                cls, topic, lambda data, t=topic: self._on_message(t, data), _adapted_qos(self._node, topic), raw=True)
            self._node.get_logger().info(f"recording {topic} [{type_name}]")

    def _on_message(self, topic: str, data: bytes) -> None:
        now = self._node.get_clock().now().nanoseconds
        with self._lock:
            self._writer.write(topic, now, data)
            self.counts[topic] = self.counts.get(topic, 0) + 1

    @property
    def recording(self) -> list[str]:
        return sorted(t for t, s in self._subscriptions.items() if s is not None)


@dataclass
class PlaybackOptions:
    rate: float = 1.0
    loop: bool = False
    publish_clock: bool = False
    topics: list[str] | None = None
    remap: dict[str, str] = field(default_factory=dict)
    lockstep_topic: str | None = None  # publish the next message of this topic ...
    answer_topic: str | None = None  # ... only after this topic answered the previous one
    lockstep_timeout_s: float = 5.0
    start_delay_s: float = 0.5  # lets subscribers match before the first message
    # Then, if > 0: play only once every played topic has this many matched subscriptions (a fixed delay is a
    # guess on a loaded machine; a message published before its reader matched is gone), at most this long.
    wait_for_subscribers: int = 0
    subscribers_timeout_s: float = 30.0


class BagPlayer:
    """Replays a bag on a background thread; ``done`` is set when it finishes."""

    def __init__(self, node: Node, path: str, options: PlaybackOptions | None = None):
        self._node = node
        self.path = path
        self.options = options or PlaybackOptions()
        if self.options.rate <= 0:
            raise BagError(f"playback rate must be > 0, got {self.options.rate}")
        topics = read_topics(path)
        if self.options.topics:
            missing = set(self.options.topics) - set(topics)
            if missing:
                raise BagError(f"topics not in the bag: {sorted(missing)}; the bag has {sorted(topics)}")
        selected = [t for t in topics if not self.options.topics or t in self.options.topics]
        # Topics that cannot be played are listed and skipped, never the whole bag: a serialization other than
        # CDR, or a type this environment does not have.
        self.unplayable: dict[str, str] = {}
        self._publishers = {}
        for topic in selected:
            info = topics[topic]
            if not info.decodable:
                self.unplayable[topic] = f"serialization {info.serialization!r} (only CDR is played)"
                continue
            try:
                cls = message_class(info.msgtype)
            except BagError as exc:
                self.unplayable[topic] = str(exc)
                continue
            profile = qos.LATCHED if topic in LATCHED_TOPICS else QoSProfile(
                reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=100)
            out = self.options.remap.get(topic, topic)
            self._publishers[topic] = node.create_publisher(cls, out, profile)
        for topic, reason in self.unplayable.items():
            node.get_logger().warning(f"not playing {topic}: {reason}")
        self._topic_counts = {t: topics[t].count for t in selected}
        self._topics = [t for t in selected if t in self._publishers]
        self.read: dict[str, int] = {t: 0 for t in selected}
        self.published_by_topic: dict[str, int] = {t: 0 for t in selected}
        self.publish_errors = 0
        self.passes = 0
        self._clock_pub = None
        if self.options.publish_clock:
            from rosgraph_msgs.msg import Clock

            self._clock_pub = node.create_publisher(Clock, "/clock", qos.CLOCK)
        self._answered = threading.Event()
        self._answered.set()
        if self.options.lockstep_topic:
            if not self.options.answer_topic:
                raise BagError("lockstep needs an answer topic")
            answer_type = self._node_topic_type(self.options.answer_topic)
            node.create_subscription(message_class(answer_type), self.options.answer_topic,
                                     lambda _m: self._answered.set(), qos.RESULTS, raw=True)
        self.published = 0
        self.lockstep_timeouts = 0
        self.subscribers_ready = True  # False when wait_for_subscribers timed out
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bag-player", daemon=True)

    def _node_topic_type(self, topic: str) -> str:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            for name, types in self._node.get_topic_names_and_types():
                if name == topic:
                    return types[0]
            time.sleep(0.1)
        raise BagError(f"answer topic {topic} has no publisher; cannot learn its type")

    def start(self) -> "BagPlayer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def wait_for_delivery(self, timeout_s: float = 5.0) -> bool:
        """Block until every reliable subscriber acknowledged every published message."""
        from rclpy.duration import Duration

        deadline = Duration(seconds=timeout_s)
        return all(pub.wait_for_all_acked(deadline) for pub in self._publishers.values())

    def _publish_clock(self, stamp_ns: int) -> None:
        from rosgraph_msgs.msg import Clock

        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(stamp_ns), 1_000_000_000)
        self._clock_pub.publish(msg)

    def _subscribers_matched(self) -> bool:
        wanted = self.options.wait_for_subscribers
        return all(pub.get_subscription_count() >= wanted for topic, pub in self._publishers.items())

    def _run(self) -> None:
        try:
            if self._stop.wait(self.options.start_delay_s):
                return
            if self.options.wait_for_subscribers > 0:
                deadline = time.monotonic() + self.options.subscribers_timeout_s
                while not self._subscribers_matched():
                    if time.monotonic() >= deadline:
                        self.subscribers_ready = False
                        self._node.get_logger().warning(
                            f"not every topic had {self.options.wait_for_subscribers} subscriber(s) after "
                            f"{self.options.subscribers_timeout_s} s; playing anyway")
                        break
                    if self._stop.wait(0.05):
                        return
            while not self._stop.is_set():
                self._play_once()
                if not self.options.loop:
                    break
        finally:
            self.done.set()

    def _play_once(self) -> None:
        first_ns = None
        wall_start = time.monotonic()
        for message in read_messages(self.path, self._topics):
            if self._stop.is_set():
                return
            if first_ns is None:
                first_ns = message.timestamp_ns
            lockstep = self.options.lockstep_topic == message.topic
            if lockstep:
                if not self._answered.wait(self.options.lockstep_timeout_s):
                    self.lockstep_timeouts += 1
                    self._node.get_logger().warning(f"no answer on {self.options.answer_topic} within "
                                                 f"{self.options.lockstep_timeout_s} s; continuing")
                self._answered.clear()
            elif not self.options.lockstep_topic:
                due = wall_start + (message.timestamp_ns - first_ns) / 1e9 / self.options.rate
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
            if self._clock_pub is not None:
                self._publish_clock(message.timestamp_ns)
            self.read[message.topic] += 1
            try:
                self._publishers[message.topic].publish(message.data)
            except Exception as exc:  # noqa: BLE001 - one bad message must not end the playback
                self.publish_errors += 1
                self._node.get_logger().error(f"publishing a message of {message.topic} failed: {exc}")
                continue
            self.published += 1
            self.published_by_topic[message.topic] += 1
        self.passes += 1

    def shortfall(self) -> dict[str, dict]:
        """Topics that published fewer messages than the bag holds for the passes played: read and published
        counts, and why (a topic that could not be played at all, or messages that failed to publish)."""
        out = {}
        for topic, expected in self._topic_counts.items():
            held = expected * max(self.passes, 1)
            published = self.published_by_topic.get(topic, 0)
            if published < held:
                out[topic] = {"in_bag": held, "read": self.read.get(topic, 0), "published": published,
                              "reason": self.unplayable.get(topic, "publish failed or playback stopped")}
        return out
