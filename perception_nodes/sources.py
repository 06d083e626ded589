"""Frame sources for the camera driver (pure Python + OpenCV, no ROS).

Each source yields BGR frames. ``read()`` returns None when the source has no
frame right now (end of file without loop, device gone); the driver then
retries ``open()`` with backoff. Sources never buffer more than one frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from perception_nodes.errors import SourceError

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


class FrameSource:
    native_fps: float = 0.0  # 0: unknown

    def open(self) -> None:
        raise NotImplementedError

    def read(self) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return type(self).__name__


class SyntheticSource(FrameSource):
    """Camera ``camera_id`` of a synthetic scene, following a real-time frame clock.

    ``read(frame_index)`` renders the given frame; the driver picks the index
    from elapsed time so a slow consumer skips frames instead of queueing them.
    """

    def __init__(self, scene: str, camera_id: str, seed: int | None = None, loop: bool = True):
        from perception_nodes.world import World, load_scene

        self.world = World(load_scene(scene, seed=seed))
        ids = [c.id for c in self.world.scene.cameras]
        if camera_id not in ids:
            raise SourceError(f"scene {self.world.scene.name!r} has no camera {camera_id!r}; cameras: {ids}")
        self.camera_index = ids.index(camera_id)
        self.native_fps = self.world.scene.fps
        self.loop = loop
        self.next_index = 0

    def open(self) -> None:
        self.world.renderer(self.camera_index)  # build the background once, up front

    def read(self, frame_index: int | None = None) -> Frame | None:
        index = self.next_index if frame_index is None else frame_index
        count = self.world.scene.frame_count
        if index >= count:
            if not self.loop:
                return None
            index %= count
        image, boxes = self.world.render(self.camera_index, index)
        self.next_index = index + 1
        return Frame(image, index, boxes)

    def describe(self) -> str:
        return f"synthetic scene {self.world.scene.name} camera {self.world.scene.cameras[self.camera_index].id}"


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
        capture = cv2.VideoCapture(target)
        if not capture.isOpened():
            raise SourceError(f"OpenCV could not open {self.target!r}")
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a backlog
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.native_fps = float(fps) if fps and 0 < fps < 1000 else 0.0
        self._capture = capture

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


def make_source(source_type: str, source: str, *, scene: str = "default", camera_id: str = "cam0",
                seed: int | None = None, loop: bool = True) -> FrameSource:
    """Build a source from the camera node's parameters; SourceError if impossible."""
    try:
        kind = SourceType(source_type)
    except ValueError:
        raise SourceError(f"unknown source_type {source_type!r}; one of {[t.value for t in SourceType]}") from None
    if kind is SourceType.SYNTHETIC:
        from perception_nodes.errors import ConfigError

        try:
            return SyntheticSource(scene, camera_id, seed=seed, loop=loop)
        except ConfigError as exc:
            raise SourceError(str(exc)) from None
    if not source:
        raise SourceError(f"source_type {kind.value} needs the 'source' parameter")
    if kind is SourceType.IMAGES:
        return ImageDirectorySource(source, loop=loop)
    if kind is SourceType.VIDEO:
        return OpenCVSource(source, loop=loop, is_file=True)
    return OpenCVSource(source, loop=False)


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
