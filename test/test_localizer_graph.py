"""The localizer in a running graph: one global id for an object both cameras see, stalls that change."""
import io

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from conftest import spin_until
from perception_nodes.graph import build_graph
from perception_nodes.runner import GraphRunner

pytestmark = pytest.mark.graph


def _xyxy(items):
    return np.array([[t.box.center_x - t.box.width / 2, t.box.center_y - t.box.height / 2,
                      t.box.center_x + t.box.width / 2, t.box.center_y + t.box.height / 2] for t in items]).reshape(-1, 4)


def test_localizer_gives_one_global_id_across_cameras_and_sees_a_car_park(ros_context, domain_id):
    """parking2 (two overlapping cameras, four stalls), trackers on the cameras' ground-truth detections, the
    localizer on their tracks: every object both cameras contribute to at once is the same physical object (their
    tracks match the same true object), and a stall is taken by a car that drives in and parks."""
    from rclpy.executors import SingleThreadedExecutor

    from perception_nodes.boxes import iou_matrix
    from perception_nodes.msg import CameraCalibrationHealth, LocalizedObjectArray, SiteEventArray, TrackArray
    from perception_nodes.ros import qos

    rclpy, context = ros_context
    specs = build_graph("parking2", stages=("site", "cameras", "tracking", "localization"))
    cameras = [s.parameters["camera_id"] for s in specs if s.executable == "camera"]
    truth: dict[tuple, dict] = {}   # (camera, stamp) -> {track id: true id}
    tracks: dict[tuple, list] = {}
    objects, events = [], []
    node = rclpy.create_node("localizer_probe", context=context)
    for cam in cameras:
        node.create_subscription(TrackArray, f"/{cam}/ground_truth/tracks",
                                 lambda m, c=cam: truth.__setitem__((c, (m.header.stamp.sec, m.header.stamp.nanosec)),
                                                                    m), qos.RESULTS)
        node.create_subscription(TrackArray, f"/{cam}/tracks",
                                 lambda m, c=cam: tracks.__setitem__((c, (m.header.stamp.sec, m.header.stamp.nanosec)),
                                                                     m), qos.RESULTS)
    node.create_subscription(LocalizedObjectArray, "/objects", objects.append, qos.RESULTS)
    node.create_subscription(SiteEventArray, "/site_events", lambda m: events.extend(m.events), qos.RESULTS)
    calibration = []
    node.create_subscription(CameraCalibrationHealth, "/calibration/health", calibration.append, qos.RESULTS)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    with GraphRunner(specs, domain_id=domain_id, output=io.StringIO()) as runner:
        spin_until(executor, lambda: False, 38.0)
        assert runner.wait(0.1), runner.failures
    executor.shutdown(timeout_sec=1.0)

    def true_id(cam, stamp, track_id):
        msg, gt = tracks.get((cam, stamp)), truth.get((cam, stamp))
        if msg is None or gt is None or not gt.tracks:
            return None
        ours = [t for t in msg.tracks if t.track_id == track_id]
        if not ours:
            return None
        iou = iou_matrix(_xyxy(ours), _xyxy(gt.tracks))[0]
        k = int(np.argmax(iou))
        return gt.tracks[k].track_id if iou[k] >= 0.5 else None

    # Per camera, the stamp of each track's latest message at or before the object's last_seen.
    stamps = {cam: sorted(s for c, s in tracks if c == cam) for cam in cameras}
    agree = disagree = 0
    shared_ids = set()
    for msg in objects:
        for obj in msg.objects:
            if obj.state != obj.STATE_CONFIRMED or len({c.camera_id for c in obj.contributors}) < 2:
                continue
            ids = set()
            for ref in obj.contributors:
                seen = (obj.last_seen.sec, obj.last_seen.nanosec)
                earlier = [s for s in stamps[ref.camera_id] if s <= seen]
                if earlier:
                    ids.add(true_id(ref.camera_id, earlier[-1], ref.track_id))
            ids.discard(None)
            if len(ids) == 1:
                agree += 1
                shared_ids.add(obj.global_id)
            elif len(ids) > 1:
                disagree += 1
    assert len(shared_ids) >= 3, (agree, disagree, len(objects))
    assert agree >= 0.95 * (agree + disagree), (agree, disagree)
    parked = [e for e in events if e.kind == e.KIND_STALL_OCCUPIED and e.class_id in (0, 1)]
    first_stamp = objects[0].header.stamp.sec + objects[0].header.stamp.nanosec * 1e-9
    arrivals = [e for e in parked if e.stamp.sec + e.stamp.nanosec * 1e-9 > first_stamp + 3.0]
    assert arrivals, [(e.place, e.stamp.sec) for e in events]
    # Calibration health checks both cameras against the paint, and neither (unbumped) is flagged.
    verdicts = {cam: [m.state for m in calibration if m.camera_id == cam] for cam in cameras}
    assert all(CameraCalibrationHealth.STATE_OK in v for v in verdicts.values()), verdicts
    assert not any(m.state == CameraCalibrationHealth.STATE_MISALIGNED for m in calibration), \
        [(m.camera_id, m.error_deg) for m in calibration if m.state == CameraCalibrationHealth.STATE_MISALIGNED]
