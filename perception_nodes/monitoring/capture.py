"""Frames for the next training round: where a proxy or the drift monitor fired, kept in a bounded bag.

``FrameRing`` keeps each camera's last few serialized images (and ground truth, where a synthetic camera
publishes it) so that a request naming a frame by its stamp can still find it a moment later. ``CaptureWriter``
writes the frame, its ground truth when there is one, and the reason (a ``CaptureRequest`` with the model
version in its detail) into a rosbag2 MCAP folder, and stops at ``max_bytes`` (a capture is for review: the
first frames are kept, later ones are counted as dropped). ``perception train detector --extra-data`` reads such
bags back (``read_capture``): frames with ground truth become training images.
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path

IMAGE_TYPE = "sensor_msgs/msg/Image"
DETECTIONS_TYPE = "perception_nodes/msg/DetectionArray"
REQUEST_TYPE = "perception_nodes/msg/CaptureRequest"
EVENTS_TOPIC = "/capture/events"


class FrameRing:
    """The last ``depth`` frames of each camera (any object: the node keeps its messages and serializes only
    what it captures), by stamp (ns)."""

    def __init__(self, depth: int = 10):
        self.depth = int(depth)
        self._frames: dict[str, OrderedDict] = {}
        self._truth: dict[str, OrderedDict] = {}
        self._lock = threading.Lock()

    def _put(self, store: dict, camera: str, stamp_ns: int, data) -> None:
        with self._lock:
            ring = store.setdefault(camera, OrderedDict())
            ring[int(stamp_ns)] = data
            while len(ring) > self.depth:
                ring.popitem(last=False)

    def add_frame(self, camera: str, stamp_ns: int, data) -> None:
        self._put(self._frames, camera, stamp_ns, data)

    def add_truth(self, camera: str, stamp_ns: int, data) -> None:
        self._put(self._truth, camera, stamp_ns, data)

    def find(self, camera: str, stamp_ns: int, tolerance_ns: int = 1_000_000) -> tuple | None:
        """(stamp, frame, ground truth or None) nearest ``stamp_ns`` within ``tolerance_ns``; None if gone."""
        with self._lock:
            ring = self._frames.get(camera) or {}
            best = min(ring, key=lambda s: abs(s - stamp_ns), default=None)
            if best is None or abs(best - stamp_ns) > tolerance_ns:
                return None
            return best, ring[best], (self._truth.get(camera) or {}).get(best)


@dataclass
class CaptureCounts:
    written: int = 0
    dropped_full: int = 0  # the bag reached its size bound
    not_found: int = 0  # the frame had left the ring before the request came
    duplicates: int = 0  # the same frame asked for twice


class CaptureWriter:
    """Writes requested frames with their reason into a bag folder, at most ``max_bytes`` of frames."""

    def __init__(self, folder: str | Path, max_bytes: int):
        from perception_nodes.bagio import BagWriter

        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)
        self._writer = BagWriter(self.folder)
        self._writer.add_topic(EVENTS_TOPIC, REQUEST_TYPE)
        self._topics: set[str] = {EVENTS_TOPIC}
        self._lock = threading.Lock()
        self._written: deque[tuple[str, int]] = deque(maxlen=4096)
        self.bytes = 0
        self.counts = CaptureCounts()

    def write(self, camera: str, stamp_ns: int, frame: bytes, truth: bytes | None, request: bytes) -> bool:
        with self._lock:
            if self._writer is None:
                return False
            if (camera, stamp_ns) in self._written:
                self.counts.duplicates += 1
                self._writer.write(EVENTS_TOPIC, stamp_ns, request)  # the second reason is kept, not the frame
                return False
            if self.bytes + len(frame) > self.max_bytes:
                self.counts.dropped_full += 1
                return False
            for topic, type_name, data in ((f"/capture/{camera}/image_raw", IMAGE_TYPE, frame),
                                           (f"/capture/{camera}/ground_truth", DETECTIONS_TYPE, truth)):
                if data is None:
                    continue
                if topic not in self._topics:
                    self._writer.add_topic(topic, type_name)
                    self._topics.add(topic)
                self._writer.write(topic, stamp_ns, data)
                self.bytes += len(data)
            self._writer.write(EVENTS_TOPIC, stamp_ns, request)
            self._written.append((camera, stamp_ns))
            self.counts.written += 1
            return True

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None


@dataclass
class CapturedFrame:
    camera: str
    stamp_ns: int
    image: object  # bgr8 numpy array
    truth: object | None  # DetectionArray (ground truth) or None
    reasons: list[str]


def read_capture(path: str | Path) -> list[CapturedFrame]:
    """Every captured frame of a capture bag with its reasons and, where recorded, its ground truth."""
    from perception_nodes.bagio import read_messages, typestore
    from perception_nodes.image_codec import image_to_bgr8

    store = typestore()
    frames: dict[tuple[str, int], CapturedFrame] = {}
    truths: dict[tuple[str, int], object] = {}
    reasons: dict[tuple[str, int], list[str]] = {}
    for message in read_messages(path):
        msg = store.deserialize_cdr(message.data, message.msgtype)
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if message.msgtype == REQUEST_TYPE:
            reasons.setdefault((msg.camera_id, stamp), []).append(msg.reason)
            continue
        camera = [p for p in message.topic.split("/") if p][-2]
        if message.msgtype == IMAGE_TYPE:
            frames[(camera, stamp)] = CapturedFrame(camera, stamp, image_to_bgr8(msg), None, [])
        elif message.msgtype == DETECTIONS_TYPE:
            truths[(camera, stamp)] = msg
    for key, frame in frames.items():
        frame.truth = truths.get(key)
        frame.reasons = reasons.get(key, [])
    return sorted(frames.values(), key=lambda f: (f.stamp_ns, f.camera))
