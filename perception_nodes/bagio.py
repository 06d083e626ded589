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
import warnings
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


COMPRESSED_SUFFIXES = (".zstd", ".zst", ".lz4")
STORAGE_BY_SUFFIX = {".mcap": "mcap", ".db3": "sqlite3"}
DECODABLE_SERIALIZATIONS = ("cdr",)


@dataclass
class BagTopic:
    name: str
    msgtype: str
    serialization: str
    count: int  # messages the storage files hold
    metadata_count: int | None = None  # what metadata.yaml says, when it says

    @property
    def decodable(self) -> bool:
        return self.serialization in DECODABLE_SERIALIZATIONS


def _metadata(folder: Path) -> dict | None:
    """``rosbag2_bagfile_information`` of metadata.yaml (any version), or None when absent or unreadable."""
    import yaml

    path = folder / "metadata.yaml"
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        warnings.warn(f"{path} is unreadable ({exc}); reading the storage files without it", stacklevel=3)
        return None
    info = data.get("rosbag2_bagfile_information") if isinstance(data, dict) else None
    return info if isinstance(info, dict) else None


def storage_files(path: str | os.PathLike) -> list[Path]:
    """The storage files of a bag: the file itself, or a folder's files (metadata.yaml's list, else *.mcap/*.db3).

    Messages are read from these files' own records, never matched against metadata.yaml: rosbags' folder
    reader yields nothing for a topic whose QoS in metadata.yaml differs from the storage file's record, which
    real rosbag2 bags do."""
    return _locate(Path(path))[0]


def _locate(path: Path) -> tuple[list[Path], dict | None]:
    """(storage files, metadata.yaml's information or None), reading metadata.yaml once."""
    metadata = None
    if path.is_file():
        files = [path]
    elif path.is_dir():
        metadata = _metadata(path)
        listed = [str(p) for p in (metadata or {}).get("relative_file_paths") or []]
        files = []
        for rel in listed:  # versions 1-3 prefixed the bag folder's own name
            candidates = [path / rel, path / Path(rel).name]
            files.append(next((c for c in candidates if c.exists()), candidates[0]))
        if not files:
            files = sorted([*path.glob("*.mcap"), *path.glob("*.db3"), *path.glob("*.mcap.zstd"),
                            *path.glob("*.db3.zstd")])
    else:
        raise BagError(f"bag {path} does not exist")
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise BagError(f"bag {path}: storage files missing: {missing}")
    if not files:
        raise BagError(f"bag {path} has no storage files (*.mcap, *.db3)")
    compressed = [f.name for f in files if f.suffix in COMPRESSED_SUFFIXES]
    if compressed:
        raise BagError(f"bag {path}: compressed storage files {compressed} are not supported; decompress them "
                       f"first (e.g. zstd -d)")
    unknown = [f.name for f in files if f.suffix not in STORAGE_BY_SUFFIX]
    if unknown:
        raise BagError(f"bag {path}: unknown storage files {unknown} (mcap or sqlite3 .db3)")
    return files, metadata


def _open(file: Path):
    from rosbags.rosbag2 import Reader

    try:
        reader = Reader(file)
        reader.open()
    except Exception as exc:  # rosbags raises several types for damaged files
        raise BagError(f"cannot open {file}: {exc}") from None
    return reader


def _serialization(connection) -> str:
    return str(getattr(connection.ext, "serialization_format", "") or "cdr")


@dataclass
class _Scan:
    files: list[Path]
    metadata: dict | None
    topics: dict[str, BagTopic]
    messages: int
    start_ns: int
    end_ns: int


def _scan(path: str | os.PathLike) -> _Scan:
    """Every storage file opened once: topics (type, serialization, count), message count and time span."""
    files, metadata = _locate(Path(path))
    topics: dict[str, BagTopic] = {}
    starts, ends, total = [], [], 0
    for file in files:
        reader = _open(file)
        try:
            for connection in reader.connections:
                topic = topics.setdefault(connection.topic, BagTopic(connection.topic, connection.msgtype,
                                                                     _serialization(connection), 0))
                topic.count += int(connection.msgcount)
            if reader.message_count:
                starts.append(int(reader.start_time))
                ends.append(int(reader.end_time))
            total += int(reader.message_count)
        finally:
            reader.close()
    for entry in (metadata or {}).get("topics_with_message_count") or []:
        name = (entry.get("topic_metadata") or {}).get("name")
        if name in topics:
            topics[name].metadata_count = int(entry.get("message_count", 0))
    return _Scan(files, metadata, topics, total, min(starts, default=0), max(ends, default=0))


def read_topics(path: str | os.PathLike) -> dict[str, BagTopic]:
    """Every topic of a bag with its type, serialization and message count (from the storage files)."""
    return _scan(path).topics


def read_messages(path: str | os.PathLike, topics: list[str] | None = None) -> Iterator[BagMessage]:
    """Messages of a bag in timestamp order (across its storage files), optionally of some topics only.

    Topics whose serialization is not CDR cannot be decoded: they are skipped with a warning, never the bag."""
    import heapq

    def from_file(file: Path) -> Iterator[BagMessage]:
        reader = _open(file)
        try:
            chosen = [c for c in reader.connections if not topics or c.topic in topics]
            skipped = sorted({(c.topic, _serialization(c)) for c in chosen
                              if _serialization(c) not in DECODABLE_SERIALIZATIONS})
            if skipped:
                warnings.warn(f"bag {path}: skipping topics that are not CDR-serialized: {skipped}", stacklevel=2)
            wanted = [c for c in chosen if _serialization(c) in DECODABLE_SERIALIZATIONS]
            if not wanted:
                return
            for connection, timestamp, data in reader.messages(connections=wanted):
                yield BagMessage(connection.topic, connection.msgtype, int(timestamp), bytes(data))
        finally:
            reader.close()

    yield from heapq.merge(*(from_file(f) for f in storage_files(path)), key=lambda m: m.timestamp_ns)


def bag_info(path: str | os.PathLike) -> dict:
    """Summary like ``ros2 bag info``, from the storage files themselves: storage, serialization, per-topic type
    and count (and metadata.yaml's count where it disagrees), duration."""
    scan = _scan(path)
    storages = sorted({STORAGE_BY_SUFFIX[f.suffix] for f in scan.files})
    return {
        "path": str(path), "storage": storages[0] if len(storages) == 1 else storages,
        "files": [f.name for f in scan.files], "messages": scan.messages, "start_ns": scan.start_ns,
        "end_ns": scan.end_ns, "duration_s": (scan.end_ns - scan.start_ns) / 1e9 if scan.messages else 0.0,
        "metadata_version": int(scan.metadata["version"]) if scan.metadata and "version" in scan.metadata else None,
        "topics": {name: {"type": t.msgtype, "count": t.count, "serialization": t.serialization,
                          "decodable": t.decodable,
                          **({"metadata_count": t.metadata_count}
                             if t.metadata_count is not None and t.metadata_count != t.count else {})}
                   for name, t in sorted(scan.topics.items())},
        "undecodable_topics": sorted(name for name, t in scan.topics.items() if not t.decodable),
    }


def deserialize(message: BagMessage):
    return typestore().deserialize_cdr(message.data, message.msgtype)
