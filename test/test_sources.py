import threading

import cv2
import numpy as np
import pytest

from perception_nodes.errors import SourceError
from perception_nodes.sources import Backoff, ImageDirectorySource, OpenCVSource, make_source, sleep_until


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
