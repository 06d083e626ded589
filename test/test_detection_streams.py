"""CPU streams in the detector backend: a batch split over ONNX Runtime sessions side by side (no ROS)."""
import numpy as np
import pytest

from perception_nodes.detection.backend import UltralyticsDetector, _onnx_session_holder, resolve_cpu_streams
from perception_nodes.detection.registry import ModelRegistry
from perception_nodes.world import World, load_scene


def test_auto_streams_are_one_per_core_but_no_more_than_the_cameras():
    assert resolve_cpu_streams(0, cameras=4, cores=2) == 2
    assert resolve_cpu_streams(0, cameras=1, cores=16) == 1  # one camera: nothing to split
    assert resolve_cpu_streams(0, cameras=4, cores=16) == 4
    assert resolve_cpu_streams(3, cameras=1, cores=2) == 3  # an explicit count is taken as given
    with pytest.raises(ValueError, match="cpu_streams"):
        resolve_cpu_streams(-1, cameras=4, cores=2)


@pytest.fixture(scope="module")
def shipped_onnx():
    entry, path = ModelRegistry().verified_path("yolov8n-lot-onnx")
    return entry, path


@pytest.fixture(scope="module")
def camera_frames():
    """Frames of the default scene's four cameras (different objects in each) and a blank one."""
    world = World(load_scene("default", seed=201))
    return [world.render(ci, 60)[0] for ci in range(len(world.cameras))] + [np.zeros((480, 640, 3), np.uint8)]


def test_a_batch_split_over_streams_gives_each_image_its_own_detections_in_order(shipped_onnx, camera_frames):
    entry, path = shipped_onnx
    one = UltralyticsDetector(path, imgsz=entry.input_size, conf=0.25)
    streamed = UltralyticsDetector(path, imgsz=entry.input_size, conf=0.25, cpu_streams=2)
    try:
        assert (one.streams, streamed.streams, streamed.streams_note) == (1, 2, "")
        singles = [one.predict([image])[0] for image in camera_frames]
        assert len({len(rows) for rows in singles}) > 2  # the images differ, so a mix-up would show
        for count in (2, 3, 5):  # even and uneven shares (3 over 2 streams: 2 + 1)
            batched = streamed.predict(camera_frames[:count])
            assert len(batched) == count
            for rows, expected in zip(batched, singles[:count]):
                assert rows.shape == expected.shape
                np.testing.assert_allclose(rows, expected, atol=0.05)  # thread count may reorder float sums
        assert len(streamed.predict(camera_frames[4:5])[0]) == 0  # the blank frame, alone
    finally:
        streamed.close()


def test_each_stream_runs_on_its_share_of_the_cores(shipped_onnx):
    entry, path = shipped_onnx
    streamed = UltralyticsDetector(path, imgsz=entry.input_size, cpu_streams=2)
    try:
        from perception_nodes.detection.backend import available_cores

        threads = [_onnx_session_holder(model).session.get_session_options().intra_op_num_threads
                   for model in streamed._streams]
        assert threads == [max(1, available_cores() // 2)] * 2
    finally:
        streamed.close()


def test_streams_are_refused_with_the_reason_for_a_torch_model(tmp_path):
    import os

    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    path = tmp_path / "m.pt"
    YOLO("yolov8n.yaml").save(str(path))
    detector = UltralyticsDetector(path, imgsz=320, cpu_streams=2)
    assert detector.streams == 1 and "ONNX Runtime sessions on the CPU" in detector.streams_note
    assert len(detector.predict([np.zeros((48, 64, 3), np.uint8)] * 3)) == 3  # one pass over the batch


def test_a_dropped_detector_releases_its_stream_threads(shipped_onnx):
    """A swap or fallback drops the old model without closing it (a pass may still be running on it): its
    stream threads must end once nothing refers to it, so repeated swaps do not pile up threads."""
    import gc
    import threading
    import time

    entry, path = shipped_onnx
    before = threading.active_count()
    for _ in range(3):
        detector = UltralyticsDetector(path, imgsz=entry.input_size, cpu_streams=2)
        detector.predict([np.zeros((48, 64, 3), np.uint8)] * 2)
        del detector
        gc.collect()
    deadline = time.monotonic() + 5.0
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before
