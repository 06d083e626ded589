"""FrameSlots: newest frame per camera, oldest-first batches, gathering a step's frames (no ROS)."""
import threading

import pytest

from perception_nodes.detection.batching import FrameSlots


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_newer_frame_supersedes_and_batches_go_oldest_first():
    slots = FrameSlots()
    assert slots.put("cam1", "a1") is False
    assert slots.put("cam0", "b1") is False
    assert slots.put("cam1", "a2") is True  # replaces a1, which was never processed
    batch = slots.take(max_batch=8)
    assert batch == [("cam1", "a2"), ("cam0", "b1")]  # cam1 has waited longest (since a1)
    assert slots.pending() == 0


def test_max_batch_leaves_the_rest_for_the_next_pass():
    slots = FrameSlots()
    for index in range(5):
        slots.put(f"cam{index}", index)
    assert [cam for cam, _ in slots.take(max_batch=3)] == ["cam0", "cam1", "cam2"]
    assert [cam for cam, _ in slots.take(max_batch=3)] == ["cam3", "cam4"]


def test_take_times_out_empty_and_close_releases_a_waiting_worker():
    slots = FrameSlots()
    assert slots.take(max_batch=4, timeout_s=0.05) == []
    got = []
    worker = threading.Thread(target=lambda: got.append(slots.take(max_batch=4, timeout_s=30.0)))
    worker.start()
    slots.close()
    worker.join(timeout=5.0)
    assert not worker.is_alive() and got == [[]]
    slots.reopen()
    slots.put("cam0", 1)
    assert slots.take(max_batch=4) == [("cam0", 1)]


def test_idle_worker_waits_for_the_other_live_cameras_of_a_step():
    slots = FrameSlots(gather_s=2.0, live_s=10.0)
    for cam in ("cam0", "cam1", "cam2"):  # a first step makes all three cameras live
        slots.put(cam, 0)
    assert len(slots.take(max_batch=8)) == 3
    got = []
    slots.put("cam0", 1)
    worker = threading.Thread(target=lambda: got.append(slots.take(max_batch=8, timeout_s=5.0)))
    worker.start()
    worker.join(timeout=0.2)
    assert worker.is_alive(), "took a partial batch while live cameras had frames due"
    slots.put("cam1", 1)
    slots.put("cam2", 1)
    worker.join(timeout=5.0)
    assert sorted(cam for cam, _ in got[0]) == ["cam0", "cam1", "cam2"]


def test_gathering_gives_up_after_the_window_and_ignores_dead_cameras():
    clock = FakeClock()
    slots = FrameSlots(gather_s=0.05, live_s=1.0, clock=clock)
    slots.put("cam0", 0)
    slots.put("dead", 0)
    slots.take(max_batch=8)
    clock.now += 0.5
    slots.put("cam0", 1)  # 'dead' is still live (0.5 s): the worker waits out the window, then goes alone
    clock.now += 0.06
    assert slots.take(max_batch=8, timeout_s=1.0) == [("cam0", 1)]
    clock.now += 1.0  # now 'dead' last delivered 1.56 s ago: no longer waited for at all
    slots.put("cam0", 2)
    assert slots.take(max_batch=8, timeout_s=1.0) == [("cam0", 2)]


def test_rejects_negative_windows():
    with pytest.raises(ValueError):
        FrameSlots(gather_s=-1.0)
    with pytest.raises(ValueError):
        FrameSlots(live_s=0.0)


def test_gathering_ends_when_a_waiting_camera_delivers_again():
    slots = FrameSlots(gather_s=5.0, live_s=10.0)
    slots.put("cam0", 0)
    slots.put("cam1", 0)
    slots.take(max_batch=8)
    slots.put("cam0", 1)
    got = []
    worker = threading.Thread(target=lambda: got.append(slots.take(max_batch=8, timeout_s=1.0)))
    worker.start()
    worker.join(timeout=0.2)
    assert worker.is_alive()  # waiting for cam1
    assert slots.put("cam0", 2) is True  # cam0 again before cam1: the worker is behind, it runs now
    worker.join(timeout=2.0)
    assert not worker.is_alive() and got == [[("cam0", 2)]]


def test_priorities_weigh_the_wait_and_no_camera_starves():
    """More cameras wait than a pass takes: a priority-3 camera's frame counts as having waited 3 times as long,
    so it goes ahead of a low-priority frame that waited less than 3 times as long, but not of one that waited
    longer still."""
    clock = FakeClock()
    slots = FrameSlots(clock=clock, priorities={"gate": 3})
    slots.put("yard", "y1")
    clock.now += 0.1
    slots.put("gate", "g1")
    clock.now += 0.1  # yard waited 0.2 s, gate 0.1 s (weighted 0.3 s)
    assert slots.take(max_batch=1) == [("gate", "g1")]
    slots.put("gate", "g2")
    clock.now += 0.05  # yard waited 0.25 s, gate 0.05 s (weighted 0.15 s): the yard's turn
    assert slots.take(max_batch=1) == [("yard", "y1")]
    served = {"gate": 0, "yard": 0}
    for _ in range(40):  # both cameras always have a frame waiting; one frame per pass
        for cam in ("gate", "yard"):
            slots.put(cam, cam)
        clock.now += 0.1
        (cam, _), = slots.take(max_batch=1)
        served[cam] += 1
    assert served["gate"] > served["yard"] > 0, served
    with pytest.raises(ValueError):
        FrameSlots(priorities={"gate": 0})
