import threading
import time

import cv2
import numpy as np
import pytest

from perception_nodes.errors import SourceError
from perception_nodes.sources import (Backoff, ImageDirectorySource, LiveOpenCVSource, OpenCVSource, make_source,
                                      sleep_until)


def _images(tmp_path, n=3):
    for i in range(n):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((20, 30, 3), i * 40, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_image_directory_in_name_order_with_loop(tmp_path):
    source = ImageDirectorySource(str(_images(tmp_path)), loop=True)
    source.open()
    values = [int(source.read().image[0, 0, 0]) for _ in range(5)]
    assert values == [0, 40, 80, 0, 40]


def test_image_directory_ends_without_loop(tmp_path):
    source = ImageDirectorySource(str(_images(tmp_path, 2)), loop=False)
    source.open()
    assert source.read() is not None and source.read() is not None
    assert source.read() is None


def test_corrupt_image_files_are_skipped(tmp_path):
    _images(tmp_path, 2)
    (tmp_path / "001b.png").write_bytes(b"\x89PNG garbage")
    source = ImageDirectorySource(str(tmp_path), loop=False)
    source.open()
    assert [int(source.read().image[0, 0, 0]) for _ in range(2)] == [0, 40]


def test_video_file_source_reads_and_loops(tmp_path):
    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (32, 24))
    for i in range(4):
        writer.write(np.full((24, 32, 3), i * 60, np.uint8))
    writer.release()
    source = OpenCVSource(path, loop=True, is_file=True)
    source.open()
    assert source.native_fps == pytest.approx(5.0)
    frames = [source.read() for _ in range(6)]
    assert all(f is not None and f.image.shape == (24, 32, 3) for f in frames)


class _FakeStream:
    """A capture that sends frames at its own pace (like a network camera) and may end or go silent."""

    def __init__(self, fps: float, frames: int, silent_after: int | None = None):
        self.period, self.frames, self.silent_after = 1.0 / fps, frames, silent_after
        self.sent, self.released = 0, False
        self.reading = threading.Event()

    def isOpened(self):
        return True

    def set(self, *_):
        return False

    def get(self, *_):
        return 1.0 / self.period

    def read(self):
        self.reading.set()
        if self.silent_after is not None and self.sent >= self.silent_after:
            time.sleep(0.4)  # a backend read timeout
            return False, None
        if self.sent >= self.frames:
            return False, None
        time.sleep(self.period)
        self.sent += 1
        return True, np.full((4, 6, 3), self.sent % 256, np.uint8)

    def release(self):
        self.released = True


def _live(capture, timeout_s=2.0):
    source = LiveOpenCVSource("tcp://127.0.0.1:9", timeout_s=timeout_s)
    source._open_capture = lambda target: capture
    return source


def test_a_live_source_read_slower_than_it_sends_hands_over_the_newest_frame_not_a_backlog():
    capture = _FakeStream(fps=100.0, frames=10_000)
    source = _live(capture)
    source.open()
    try:
        reads = []
        for _ in range(4):
            time.sleep(0.15)  # a reader at about 6 Hz against a 100 Hz stream
            frame = source.read()
            reads.append((frame, capture.sent))
        indices = [f.index for f, _ in reads]
        assert indices == sorted(indices) and len(set(indices)) == 4
        assert indices[-1] >= 30  # read straight from the capture, the fourth read would be frame 3
        for frame, sent in reads:
            assert sent - frame.index <= 15  # the newest (give or take scheduling), not the next in a queue
            assert frame.age_s < 0.15
        assert sum(f.skipped for f, _ in reads[1:]) >= 20  # superseded frames are counted, not queued
    finally:
        source.close()
    assert capture.released


def test_a_live_source_that_ends_or_goes_silent_reads_none_promptly():
    ended = _live(_FakeStream(fps=200.0, frames=3))
    ended.open()
    frames = []
    began = time.monotonic()
    while (frame := ended.read()) is not None:
        frames.append(frame)
    assert frames and time.monotonic() - began < 1.0  # the end is seen, not waited out
    ended.close()
    silent = _live(_FakeStream(fps=200.0, frames=10_000, silent_after=2), timeout_s=0.3)
    silent.open()
    time.sleep(0.1)
    assert silent.read() is not None  # the newest of the two frames
    began = time.monotonic()
    assert silent.read() is None
    assert time.monotonic() - began < 1.0
    silent.close()
    silent._open_capture = lambda target: _FakeStream(fps=20.0, frames=10_000)
    silent.open()  # the driver reopens: a fresh grabber on a fresh capture, counting from its first frame
    frame = silent.read()
    assert frame is not None and frame.index == 0
    silent.close()


@pytest.mark.parametrize("kind, target, fragment", [
    ("images", "/nonexistent/dir", "does not exist"),
    ("video", "/nonexistent/clip.avi", "does not exist"),
    ("stream", "rtsp://127.0.0.1:9/none", "could not open"),
])
def test_unavailable_sources_raise_source_error(kind, target, fragment):
    source = make_source(kind, target)
    with pytest.raises(SourceError, match=fragment):
        source.open()


def test_source_parameters_are_validated():
    with pytest.raises(SourceError, match="unknown source_type"):
        make_source("webcam", "0")
    with pytest.raises(SourceError, match="needs the 'source'"):
        make_source("video", "")
    with pytest.raises(SourceError, match="no camera"):
        make_source("synthetic", "", scene="default", camera_id="cam9")


def test_backoff_doubles_caps_and_resets():
    backoff = Backoff(0.5, 3.0)
    assert [backoff.failed() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.succeeded()
    assert backoff.failed() == 0.5


def test_sleep_until_returns_early_when_stopped():
    import time

    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()
    assert sleep_until(time.monotonic() + 5.0, stop) is True
    assert time.monotonic() - started < 2.0


def test_scene_clock_never_renders_a_frame_ahead_of_its_time_and_skips_late_ones():
    from perception_nodes.sources import SceneClock

    clock = SceneClock(10.0)
    clock.start(100.0)
    assert clock.next(100.0) == (100.0, 0, 0)
    assert clock.next(100.1) == (100.1, 1, 0)
    when, index, skipped = clock.next(100.47)  # a slow render: frames 2 and 3 slipped by
    assert (index, skipped) == (4, 2) and when == 100.47
    # Woken at 100.52 after frame 4 (due 100.4): frame 5 is due at 100.5 -> render now.
    assert clock.next(100.52) == (100.52, 5, 0)
    # Woken again at 100.57 (a render finished early): frame 6 is due at 100.6, so wait for it, never render it early.
    when, index, skipped = clock.next(100.57)
    assert index == 6 and skipped == 0 and when == pytest.approx(100.6)
    # Whatever the wake-up times, no frame is due after the moment it is rendered.
    import random

    rng = random.Random(3)
    clock.start(0.0)
    now = 0.0
    for _ in range(500):
        now += rng.choice([0.0, 0.01, 0.03, 0.09, 0.26, 0.45])
        when, index, _ = clock.next(now)
        assert when >= now and clock.stamp_s(index) <= when + 1e-9
        now = when
    with pytest.raises(ValueError):
        SceneClock(0.0)


def test_a_synthetic_camera_withholds_its_frames_during_the_scenes_scripted_dropout():
    from perception_nodes.sources.synthetic import SyntheticSource
    from perception_nodes.world import load_scene

    scene = load_scene("scenarios/camera_dropout")
    (dropout,) = scene.disturbances.camera_dropouts
    fps = scene.fps
    dropped = SyntheticSource("scenarios/camera_dropout", dropout.camera, loop=True)
    other = SyntheticSource("scenarios/camera_dropout", next(c.id for c in scene.cameras if c.id != dropout.camera))
    inside, before = int((dropout.start_s + 1.0) * fps), int((dropout.start_s - 1.0) * fps)
    frame = dropped.read(inside)
    assert frame.withheld and "dropout" in frame.withheld and frame.ground_truth is None
    assert not dropped.read(before).withheld and dropped.read(before).image.shape[2] == 3
    assert not other.read(inside).withheld
    # The next loop of the scene drops out again at the same scene time.
    assert dropped.read(inside + scene.frame_count).withheld


def test_a_synthetic_camera_delivers_late_during_the_scenes_scripted_latency_spike():
    from perception_nodes.sources.synthetic import SyntheticSource
    from perception_nodes.world import load_scene

    scene = load_scene("scenarios/latency_spike")
    (spike,) = scene.disturbances.detection_delays
    source = SyntheticSource("scenarios/latency_spike", scene.cameras[0].id)
    inside, before = int((spike.start_s + 1.0) * scene.fps), int((spike.start_s - 1.0) * scene.fps)
    late = source.read(inside)
    assert late.delay_s == spike.delay_s and late.image.shape[2] == 3 and late.ground_truth is not None
    assert source.read(before).delay_s == 0.0
