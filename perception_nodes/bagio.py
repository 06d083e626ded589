"""rosbag2 (MCAP) reading and writing of raw CDR messages (pure Python, rosbags).

Messages stay serialized end to end: the recorder writes the bytes it received,
the player publishes the bytes it read, so a replay is byte-identical. The
typestore knows ROS 2 Kilted's standard types plus this package's own
interfaces (parsed from its .msg files), which is what lets independent readers
(rosbags, mcap-ros2-support) decode our bags.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from perception_nodes.errors import BagError
from perception_nodes.paths import package_path

PACKAGE = "perception_nodes"


@functools.lru_cache(maxsize=1)
def typestore():
    """ROS 2 Kilted typestore with perception_nodes' messages registered."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted(package_path("msg").glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    store.register(types)
    return store


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    timestamp_ns: int  # receive (record) time
    data: bytes  # CDR


class BagWriter:
    """Write raw CDR messages into a new rosbag2 MCAP folder.

    The folder must not exist yet. ``close()`` writes metadata.yaml; a bag left
    without it (killed recorder) can still be read by MCAP readers.
    """

    def __init__(self, path: str | os.PathLike):
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} already exists; choose a new output folder")
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, object] = {}
        self.count = 0

    def add_topic(self, topic: str, msgtype: str) -> None:
        if topic in self._connections:
            return
        store = typestore()
        if msgtype not in store.fielddefs:
            raise BagError(f"type {msgtype} of {topic} is unknown to the typestore")
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=store)

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        connection = self._connections.get(topic)
        if connection is None:
            raise BagError(f"topic {topic} was not added to the bag")
        self._writer.write(connection, int(timestamp_ns), bytes(data))
        self.count += 1

    def write_message(self, topic: str, msgtype: str, timestamp_ns: int, message) -> None:
        """Serialize a rosbags message object and write it."""
        self.add_topic(topic, msgtype)
        self.write(topic, timestamp_ns, typestore().serialize_cdr(message, msgtype))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reader(path: Path):
    from rosbags.rosbag2 import Reader

    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises several types for damaged bags
        raise BagError(f"cannot open bag {path}: {exc}") from None
    return reader


def read_messages(path: str | os.PathLike, topics: list[str] | None = None) -> Iterator[BagMessage]:
    """Messages of a bag in timestamp order, optionally of some topics only."""
    reader = _reader(Path(path))
    try:
        connections = [c for c in reader.connections if not topics or c.topic in topics]
        for connection, timestamp, data in reader.messages(connections=connections):
            yield BagMessage(connection.topic, connection.msgtype, int(timestamp), bytes(data))
    finally:
        reader.close()


def topic_types(path: str | os.PathLike) -> dict[str, str]:
    reader = _reader(Path(path))
    try:
        return {c.topic: c.msgtype for c in reader.connections}
    finally:
        reader.close()


def bag_info(path: str | os.PathLike) -> dict:
    """Summary like ``ros2 bag info``: duration, message count, per-topic type and count."""
    reader = _reader(Path(path))
    try:
        topics = {}
        for connection in reader.connections:
            entry = topics.setdefault(connection.topic, {"type": connection.msgtype, "count": 0})
            entry["count"] += connection.msgcount
        return {
            "path": str(path), "storage": "mcap", "messages": int(reader.message_count),
            "start_ns": int(reader.start_time) if reader.message_count else 0,
            "end_ns": int(reader.end_time) if reader.message_count else 0,
            "duration_s": (reader.end_time - reader.start_time) / 1e9 if reader.message_count else 0.0,
            "topics": topics,
        }
    finally:
        reader.close()


def deserialize(message: BagMessage):
    return typestore().deserialize_cdr(message.data, message.msgtype)
