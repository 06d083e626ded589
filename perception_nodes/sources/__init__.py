"""Frame sources for the camera driver (pure Python + OpenCV, no ROS).

Built in: OpenCV devices, video files and network streams, image directories.
Plugins: a source type may be served by a module named in ``SOURCE_PLUGINS``
(``module:factory``), imported only when a camera uses that type. The synthetic
world is such a plugin (``perception_nodes.sources.synthetic``), so deployment
code that reads frames never imports the world.

Each source yields BGR frames. ``read()`` returns None when the source has no
frame right now (end of file without loop, device gone); the driver then
retries ``open()`` with backoff. Sources never buffer more than one frame.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from perception_nodes.errors import SourceError

STREAM_TIMEOUT_MS = 5000  # a network stream silent this long counts as lost (reopened with backoff)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")


class SourceType(str, Enum):
    SYNTHETIC = "synthetic"
    DEVICE = "device"
    VIDEO = "video"
    IMAGES = "images"
    STREAM = "stream"


@dataclass
class Frame:
    image: np.ndarray  # bgr8
    index: int  # running index within the source (frame number for synthetic/video/images)
    ground_truth: list | None = None  # synthetic only: GroundTruthBox list
    age_s: float = 0.0  # live sources: how long before read() the frame arrived (its capture stamp is that early)
    skipped: int = 0  # live sources: frames that arrived since the previous read and were superseded by this one
    # A frame the source withholds on purpose (a synthetic scene's scripted camera dropout), with why: the driver
    # publishes nothing for it and counts it, and the source stays open (the scene's clock goes on).
    withheld: str = ""
    # A frame the source delivers late on purpose (a synthetic scene's scripted latency spike): the driver publishes
    # it this many seconds after its capture, stamped with its capture time, and counts it.
    delay_s: float = 0.0


class FrameSource:
    native_fps: float = 0.0  # 0: unknown
    # A clocked source renders the frame of a given time (``read(frame_index)``): the driver picks the index from
    # the time elapsed since open, so a slow driver skips frames instead of lagging, and stamps each frame with
    # its own time (frame_index / native_fps after open) rather than the time it happened to be rendered.
    clocked: bool = False
    provides_ground_truth: bool = False  # frames carry ground-truth boxes

    def calibration(self):
        """The source's own calibration (a CameraCalibration) when it knows it, else None."""
        return None

    def open(self) -> None:
        raise NotImplementedError

    def read(self) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return type(self).__name__


class OpenCVSource(FrameSource):
    """OpenCV VideoCapture: a device index or path, a video file, or a stream URL."""

    def __init__(self, target: str, loop: bool = False, is_file: bool = False):
        self.target = target
        self.loop = loop
        self.is_file = is_file
        self._capture = None
        self._index = 0

    def open(self) -> None:
        import cv2

        target: int | str = int(self.target) if self.target.isdigit() else self.target
        if self.is_file and not Path(self.target).is_file():
            raise SourceError(f"video file {self.target} does not exist")
        capture = self._open_capture(target)
        if not capture.isOpened():
            raise SourceError(f"OpenCV could not open {self.target!r}")
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a backlog (where the backend honours it)
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.native_fps = float(fps) if fps and 0 < fps < 1000 else 0.0
        self._capture = capture

    def _open_capture(self, target: int | str):
        import cv2

        if isinstance(target, str) and "://" in target:
            # A stream that stalls must not block the capture thread forever: FFmpeg gives up after these.
            return cv2.VideoCapture(target, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                                                             cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS])
        return cv2.VideoCapture(target)

    def read(self) -> Frame | None:
        if self._capture is None:
            return None
        ok, image = self._capture.read()
        if not ok and self.is_file and self.loop:
            import cv2

            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._capture.read()
        if not ok or image is None:
            return None
        if image.ndim == 2:
            import cv2

            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        self._index += 1
        return Frame(image, self._index - 1)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def describe(self) -> str:
        return f"OpenCV {self.target}"


class LiveOpenCVSource(OpenCVSource):
    """A live camera (a device or a network stream) read by its own grabber thread.

    A live source does not wait for its reader: a stream sends at its own rate
    and a device's driver queues frames. Read slower than that straight from
    the capture and the frames pile up in socket and driver buffers, so each
    published frame is older than the last and the stream's end is noticed only
    once the backlog is drained. The grabber reads every frame as it arrives and
    keeps only the newest; ``read()`` hands that one over (its ``age_s`` and the
    frames it superseded in ``skipped``), waits up to ``timeout_s`` for one newer
    than the last, and returns None once the stream has ended or gone silent.
    """

    def __init__(self, target: str, timeout_s: float = STREAM_TIMEOUT_MS / 1000.0):
        super().__init__(target, loop=False, is_file=False)
        self.timeout_s = float(timeout_s)
        self._cond = threading.Condition()
        self._latest: tuple[np.ndarray, float, int] | None = None  # (image, arrival monotonic, grab index)
        self._delivered = -1
        self._ended = False
        self._stop = threading.Event()
        self._grabber: threading.Thread | None = None

    def open(self) -> None:
        self.close()
        super().open()
        self._latest, self._delivered, self._ended = None, -1, False
        self._stop = threading.Event()
        self._grabber = threading.Thread(target=self._grab_loop, args=(self._capture, self._stop),
                                         name=f"grab {self.target}", daemon=True)
        self._grabber.start()

    def _grab_loop(self, capture, stop: threading.Event) -> None:
        index = 0
        try:
            while not stop.is_set():
                ok, image = capture.read()
                if not ok or image is None:
                    break
                with self._cond:
                    self._latest = (image, time.monotonic(), index)
                    self._cond.notify_all()
                index += 1
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def read(self) -> Frame | None:
        if self._capture is None:
            return None
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            while self._latest is None or self._latest[2] <= self._delivered:
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    return None  # ended, or silent for timeout_s: the driver reopens
                self._cond.wait(remaining)
            image, arrived, index = self._latest
            skipped = index - self._delivered - 1
            self._delivered = index
        if image.ndim == 2:
            import cv2

            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return Frame(image, index, age_s=max(0.0, time.monotonic() - arrived), skipped=skipped)

    def close(self) -> None:
        self._stop.set()
        grabber, self._grabber = self._grabber, None
        if grabber is not None:
            # The grabber may sit in a read for up to the backend's read timeout; the capture is released only
            # once it has left, never under it.
            grabber.join(timeout=self.timeout_s + 1.0)
            if grabber.is_alive():
                self._capture = None  # left to the stuck thread; released by the process's end
                return
        super().close()


class ImageDirectorySource(FrameSource):
    """Image files of a directory in name order."""

    def __init__(self, directory: str, loop: bool = False):
        self.directory = Path(directory)
        self.loop = loop
        self._files: list[Path] = []
        self._position = 0

    def open(self) -> None:
        if not self.directory.is_dir():
            raise SourceError(f"image directory {self.directory} does not exist")
        self._files = sorted(p for p in self.directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(f"image directory {self.directory} has no images ({', '.join(IMAGE_SUFFIXES)})")
        self._position = 0

    def read(self) -> Frame | None:
        import cv2

        while True:
            if self._position >= len(self._files):
                if not self.loop:
                    return None
                self._position = 0
            path = self._files[self._position]
            self._position += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                return Frame(image, self._position - 1)
            # An unreadable file is skipped; a directory of only bad files ends the source.
            if self._position >= len(self._files) and not self.loop:
                return None

    def describe(self) -> str:
        return f"images in {self.directory}"


# Source types served by a plugin module, imported on first use (module:factory).
SOURCE_PLUGINS = {SourceType.SYNTHETIC: "perception_nodes.sources.synthetic:SyntheticSource"}


def load_plugin(kind: SourceType):
    """The factory of a plugin source type (imported now, not before: the plugin may be heavy)."""
    import importlib

    module_name, _, attribute = SOURCE_PLUGINS[kind].partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise SourceError(f"source type {kind.value}: plugin {SOURCE_PLUGINS[kind]} is not available: {exc}") from None


def make_source(source_type: str, source: str, *, scene: str = "default", camera_id: str = "cam0",
                seed: int | None = None, loop: bool = True) -> FrameSource:
    """Build a source from the camera node's parameters; SourceError if impossible."""
    try:
        kind = SourceType(source_type)
    except ValueError:
        raise SourceError(f"unknown source_type {source_type!r}; one of {[t.value for t in SourceType]}") from None
    if kind in SOURCE_PLUGINS:
        from perception_nodes.errors import ConfigError

        try:
            return load_plugin(kind)(scene, camera_id, seed=seed, loop=loop)
        except ConfigError as exc:
            raise SourceError(str(exc)) from None
    if not source:
        raise SourceError(f"source_type {kind.value} needs the 'source' parameter")
    if kind is SourceType.IMAGES:
        return ImageDirectorySource(source, loop=loop)
    if kind is SourceType.VIDEO:
        return OpenCVSource(source, loop=loop, is_file=True)
    return LiveOpenCVSource(source)  # a device or a stream


class SceneClock:
    """Which frame a clocked source renders next, and from when: scene time follows wall time.

    ``next(now)`` returns (when, index, skipped): render frame ``index`` at ``when``
    (>= now). A frame whose time has passed is rendered at once; frames a slow
    render let slip by are skipped (``skipped``), never queued; a frame whose time
    has not come yet is waited for, so a frame is never rendered, or stamped,
    ahead of its own time (``stamp_s(index)`` after the open).
    """

    def __init__(self, fps: float):
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.fps = float(fps)
        self.started = 0.0
        self.last = -1

    def start(self, now: float) -> None:
        self.started, self.last = now, -1

    def stamp_s(self, index: int) -> float:
        """Seconds after the open at which frame ``index`` was due."""
        return index / self.fps

    def next(self, now: float) -> tuple[float, int, int]:
        index = int(math.floor((now - self.started) * self.fps + 1e-9))
        when = now
        if index <= self.last:
            index = self.last + 1
            when = max(now, self.started + self.stamp_s(index))
        skipped = index - self.last - 1 if self.last >= 0 else 0
        self.last = index
        return when, index, skipped


class Backoff:
    """Exponential retry delay: initial, doubled per failure, capped; reset on success."""

    def __init__(self, initial_s: float = 0.5, maximum_s: float = 10.0):
        self.initial_s, self.maximum_s = initial_s, maximum_s
        self.delay_s = initial_s
        self.failures = 0

    def failed(self) -> float:
        delay = self.delay_s
        self.failures += 1
        self.delay_s = min(self.delay_s * 2.0, self.maximum_s)
        return delay

    def succeeded(self) -> None:
        self.delay_s = self.initial_s
        self.failures = 0


def sleep_until(deadline: float, stop_event) -> bool:
    """Sleep until ``deadline`` (time.monotonic) or until the event is set; True if stopped."""
    remaining = deadline - time.monotonic()
    return stop_event.wait(remaining) if remaining > 0 else stop_event.is_set()
