"""Tracker core: association, lifecycle, stamps and bad input (no rclpy)."""
import dataclasses

import numpy as np
import pytest

from conftest import last_json, run_cli
from perception_nodes.tracking import ByteTracker, TrackerParams, TrackState, UpdateStatus
from perception_nodes.evaluation.mot import FrameData, Sequence, build_sequences, our_tracker_factory, run_tracker, score
from perception_nodes.world import World, load_scene


def box(cx, cy, w=30, h=60, score=0.9, cls=2):
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, score, cls]


def confirmed(tracks):
    return {t.track_id: t for t in tracks if t.state == TrackState.CONFIRMED and t.frames_since_update == 0}


def test_crossing_objects_keep_their_ids_through_low_score_frames():
    tracker = ByteTracker()
    ids_a, ids_b = set(), set()
    for frame in range(40):
        t = frame * 0.1
        a, b = 100 + 10 * frame, 500 - 10 * frame  # they pass each other around frame 20
        overlapping = abs(a - b) < 40
        dets = [box(a, 200, score=0.3 if overlapping else 0.9)]
        if not overlapping or frame % 2:
            dets.append(box(b, 205, score=0.9))
        _, tracks = tracker.update(np.array(dets), t)
        if abs(a - b) < 80:
            continue  # while they overlap, which is which cannot be read off the positions
        for track in confirmed(tracks).values():
            cx = (track.box_xyxy[0] + track.box_xyxy[2]) / 2
            (ids_a if abs(cx - a) < abs(cx - b) else ids_b).add(track.track_id)
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b


def test_lifecycle_tentative_confirmed_lost_removed():
    tracker = ByteTracker(TrackerParams(min_hits=2, max_age_s=0.35))
    _, tracks = tracker.update(np.array([box(100, 100)]), 0.0)
    assert [t.state for t in tracks] == [TrackState.TENTATIVE]
    _, tracks = tracker.update(np.array([box(102, 100)]), 0.1)
    assert [t.state for t in tracks] == [TrackState.CONFIRMED]
    _, tracks = tracker.update(np.zeros((0, 6)), 0.2)
    assert [t.state for t in tracks] == [TrackState.LOST]
    _, tracks = tracker.update(np.array([box(106, 100)]), 0.3)  # comes back: same id, confirmed
    assert [(t.track_id, t.state) for t in tracks] == [(1, TrackState.CONFIRMED)]
    for stamp in (0.4, 0.5, 0.6, 0.7, 0.8):
        _, tracks = tracker.update(np.zeros((0, 6)), stamp)
    assert tracks == []  # removed after max_age_s without a match


def test_unconfirmed_single_detections_do_not_make_tracks():
    tracker = ByteTracker(TrackerParams(min_hits=3))
    for stamp, x in ((0.0, 100), (0.1, 400), (0.2, 50)):
        _, tracks = tracker.update(np.array([box(x, 300)]), stamp)
        assert not confirmed(tracks)


def test_dt_from_stamps_bridges_dropped_frames():
    tracker = ByteTracker()
    for frame in range(10):
        tracker.update(np.array([box(100 + 8 * frame, 100, w=20)]), frame * 0.1)
    # Four frames lost: the box moved 40 px, twice its width; only the velocity over dt can bridge that.
    _, tracks = tracker.update(np.array([box(100 + 8 * 14, 100, w=20)]), 1.4)
    assert [t.track_id for t in confirmed(tracks).values()] == [1]
    assert confirmed(tracks)[1].velocity[0] == pytest.approx(80, rel=0.2)
    # Without stamps (dt = one frame) the same gap would lose the object.
    blind = ByteTracker()
    for frame in range(11):
        _, tracks = blind.update(np.array([box(100 + 8 * frame if frame < 10 else 212, 100, w=20)]), frame * 0.1)
    first_track = 1
    assert first_track not in confirmed(tracks)


def test_a_lost_track_is_recovered_at_its_last_observation_after_the_object_stopped():
    """Prediction drifts on through a detection gap; the object had stopped (e.g. a car parking)."""
    def run(recovery_iou):
        tracker = ByteTracker(TrackerParams(recovery_iou=recovery_iou))
        for frame in range(8):
            tracker.update(np.array([box(100 + 15 * frame, 200, w=40, h=30)]), frame * 0.1)
        for frame in range(8, 13):  # hidden; the Kalman prediction keeps moving at 150 px/s
            tracker.update(np.zeros((0, 6)), frame * 0.1)
        _, tracks = tracker.update(np.array([box(100 + 15 * 7 + 4, 200, w=40, h=30)]), 1.3)
        _, tracks = tracker.update(np.array([box(100 + 15 * 7 + 4, 200, w=40, h=30)]), 1.4)
        return sorted(confirmed(tracks))

    assert run(0.3) == [1]  # the same id, matched to where it was last seen
    assert run(0.0) != [1]  # without the recovery stage it becomes a new track


def test_out_of_order_duplicate_and_backwards_stamps():
    tracker = ByteTracker(TrackerParams(reset_backwards_s=1.0))
    tracker.update(np.array([box(100, 100)]), 10.0)
    tracker.update(np.array([box(101, 100)]), 10.1)
    assert tracker.update(np.array([box(101, 100)]), 10.05)[0] == UpdateStatus.DROPPED_OUT_OF_ORDER
    assert tracker.update(np.array([box(101, 100)]), 10.1)[0] == UpdateStatus.DROPPED_DUPLICATE
    status, tracks = tracker.update(np.array([box(101, 100)]), 2.0)  # bag looped
    assert status == UpdateStatus.RESET and [t.state for t in tracks] == [TrackState.TENTATIVE]


def test_invalid_boxes_and_empty_input_are_skipped():
    tracker = ByteTracker(TrackerParams(min_hits=1))
    bad = np.array([[np.nan, 0, 10, 10, 0.9, 0], [0, 0, np.inf, 10, 0.9, 0], [-50, -20, 10, 10, 0.9, 0],
                    [10, 10, 5, 20, 0.9, 0], [0, 0, 10, 10, 1.7, 0], box(100, 100)])
    _, tracks = tracker.update(bad, 0.0)
    assert tracker.invalid_detections == 5
    assert len(tracks) == 1 and tracks[0].detection_index == 5
    assert tracker.update(np.zeros((0, 6)), 0.1)[0] == UpdateStatus.OK
    assert tracker.update(np.array([]), 0.2)[0] == UpdateStatus.OK


def test_class_aware_association():
    tracker = ByteTracker(TrackerParams(min_hits=1))
    tracker.update(np.array([box(100, 100, cls=0)]), 0.0)
    _, tracks = tracker.update(np.array([box(101, 100, cls=2)]), 0.1)
    assert sorted(t.track_id for t in confirmed(tracks).values()) == [2]  # a person is not the car's continuation


def test_appearance_prevents_a_swap_when_boxes_jump():
    def run(with_embeddings):
        tracker = ByteTracker(TrackerParams(min_hits=1, appearance_weight=0.8, appearance_gate=1.0))
        e_a, e_b = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
        for frame in range(5):
            tracker.update(np.array([box(100, 100), box(140, 100)]), frame * 0.1,
                           np.array([e_a, e_b]) if with_embeddings else None)
        # Both jump towards each other's place (e.g. a detector's box drift): appearance decides.
        _, tracks = tracker.update(np.array([box(128, 100), box(112, 100)]), 0.5,
                                   np.array([e_a, e_b]) if with_embeddings else None)
        return {t.detection_index: t.track_id for t in tracks}

    assert run(True) == {0: 1, 1: 2}
    assert run(False) == {0: 2, 1: 1}  # IoU alone swaps them


def test_appearance_also_decides_among_low_score_detections():
    """Occluded objects come as low-score boxes; where two cross, IoU alone would hand each the other's id."""
    def run(low_score_appearance):
        tracker = ByteTracker(TrackerParams(min_hits=1, appearance_weight=0.8, appearance_gate=1.0,
                                            low_score_appearance=low_score_appearance))
        e_a, e_b = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
        for frame in range(5):
            tracker.update(np.array([box(100, 100), box(120, 100)]), frame * 0.1, np.array([e_a, e_b]))
        # Each low-score box overlaps the other object's track more (IoU 0.58 against 0.43).
        _, tracks = tracker.update(np.array([box(112, 100, score=0.3), box(108, 100, score=0.3)]), 0.5,
                                   np.array([e_a, e_b]))
        return {t.detection_index: t.track_id for t in tracks if t.detection_index >= 0}

    assert run(True) == {0: 1, 1: 2}
    assert run(False) == {0: 2, 1: 1}


def test_a_lost_track_is_reidentified_by_appearance_beyond_any_overlap():
    """A person hidden for a second reappears off its predicted path (turned a corner behind a car): only
    appearance can say it is the same one; another, differently coloured person nearby is not."""
    red, blue = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])

    def run(params, with_embeddings):
        tracker = ByteTracker(params)
        for frame in range(6):
            tracker.update(np.array([box(100 + 10 * frame, 200, w=20, h=40)]), frame * 0.1,
                           np.array([red]) if with_embeddings else None)
        for frame in range(6, 14):
            tracker.update(np.zeros((0, 6)), frame * 0.1, np.zeros((0, 3)) if with_embeddings else None)
        # Back 40 px below where it was last seen (no overlap with the last box or the prediction); a blue
        # person appears just as close on the other side.
        dets = np.array([box(150, 240, w=20, h=40), box(150, 160, w=20, h=40)])
        emb = np.array([red, blue]) if with_embeddings else None
        _, tracks = tracker.update(dets, 1.4, emb)
        _, tracks = tracker.update(dets, 1.5, emb)
        return {t.detection_index: t.track_id for t in confirmed(tracks).values()}

    found = run(TrackerParams(), True)
    assert found[0] == 1 and found[1] != 1  # the red one keeps its id; the blue one is new
    # Otherwise the red person is still tracked, under a new id (the old track stays lost):
    for params, with_embeddings in ((TrackerParams(), False),  # without embeddings
                                    (TrackerParams(reid_max_distance=0.0), True),  # stage switched off
                                    (TrackerParams(reid_radius=0.5), True)):  # too far for the search radius
        other = run(params, with_embeddings)
        assert set(other) == {0, 1} and other[0] != 1 and other[1] != 1, (params, other)


def test_detections_without_appearance_fall_back_to_iou():
    """An all-zero embedding row (a box too small to sample) is not 'a different colour'."""
    tracker = ByteTracker(TrackerParams(min_hits=1, appearance_weight=1.0, appearance_gate=1.0))
    e = np.array([[0.0, 1.0, 0.0]])
    tracker.update(np.array([box(100, 100)]), 0.0, e)
    _, tracks = tracker.update(np.array([box(102, 100)]), 0.1, np.zeros((1, 3)))
    assert [t.track_id for t in confirmed(tracks).values()] == [1]


def test_params_are_validated():
    with pytest.raises(ValueError):
        ByteTracker(TrackerParams(track_low_thresh=0.9, track_high_thresh=0.5))
    with pytest.raises(ValueError):
        ByteTracker(TrackerParams(min_hits=0))
    with pytest.raises(ValueError):
        ByteTracker(TrackerParams(reid_radius=-1.0))


def test_scoring_is_perfect_for_perfect_tracks_and_penalises_switches():
    world = World(load_scene("crossing"))
    sequences = build_sequences(world, 60)
    truth = [[(f.gt_ids, f.gt_boxes) for f in s.frames] for s in sequences]
    perfect = score(sequences, truth)
    assert perfect["hota"] > 0.99 and perfect["idf1"] > 0.99 and perfect["id_switches"] == 0
    swapped = [[(ids[::-1] if i > 30 else ids, boxes) for i, (ids, boxes) in enumerate(seq)] for seq in truth]
    worse = score(sequences, swapped)
    assert worse["id_switches"] > 0 and worse["idf1"] < perfect["idf1"] and worse["hota"] < perfect["hota"]


def test_boxes_on_ignore_regions_are_neither_hits_nor_false_positives():
    gt = np.array([[100.0, 100, 140, 180]])
    ignored = np.array([[300.0, 50, 306, 58]])  # a far object below the size floor
    frames = [FrameData(i * 0.1, np.array([7]), gt, np.zeros((0, 6)), None, ignored) for i in range(10)]
    sequence = [Sequence("cam", frames)]
    only_truth = score(sequence, [[(np.array([1]), gt)] * 10])
    with_ignored = score(sequence, [[(np.array([1, 2]), np.vstack([gt, ignored]))] * 10])
    assert with_ignored == only_truth and only_truth["mota"] == pytest.approx(1.0)
    # a box elsewhere is still a false positive
    stray = np.array([[500.0, 300, 540, 380]])
    with_stray = score(sequence, [[(np.array([1, 3]), np.vstack([gt, stray]))] * 10])
    assert with_stray["mota"] < 1.0


def test_small_and_hidden_objects_become_ignore_regions():
    world = World(load_scene("default"))
    sequences = build_sequences(world, 5)
    tracked = sum(len(f.gt_ids) for s in sequences for f in s.frames)
    ignored = sum(len(f.ignore_boxes) for s in sequences for f in s.frames)
    assert tracked > 0 and ignored > 0
    for frame in (f for s in sequences for f in s.frames):
        assert np.all(frame.gt_boxes[:, 3] - frame.gt_boxes[:, 1] >= 12.0)


def test_every_object_keeps_one_id_on_the_crossing_scene():
    world = World(load_scene("crossing"))
    sequences = build_sequences(world, world.scene.frame_count)
    result = score(sequences, run_tracker(sequences, our_tracker_factory()))
    assert result["id_switches"] == 0 and result["idf1"] > 0.9, result


def test_eval_tracking_cli_reports_ours_and_the_boxmot_peers():
    result = last_json(run_cli("eval", "tracking", "--scene", "default", "--frames", "100", timeout=300).stdout)
    for key in ("hota", "idf1", "mota", "id_switches"):
        assert key in result
    assert set(result["peers"]) == {"bytetrack", "botsort", "ocsort"}
    best = max(p["hota"] for p in result["peers"].values())
    assert result["hota"] >= best, result  # deterministic for the seed: our tracker leads the best peer
    assert result["idf1"] >= 0.8
    assert result["appearance"] == "hsv-hist@1" and result["peers"]["botsort"]["appearance"] is True


def test_botsort_peer_gets_the_same_embeddings():
    """With appearance on, BoT-SORT is fed our embeddings (BoxMOT Detections); motion-only peers ignore them."""
    pytest.importorskip("boxmot")
    from perception_nodes.reid.appearance import ColorHistogramEmbedder
    from perception_nodes.evaluation.tracking_peers import USES_EMBEDDINGS, peer_factory

    world = World(load_scene("crossing"))
    sequences = build_sequences(world, 40, embedder=ColorHistogramEmbedder())
    assert USES_EMBEDDINGS == {"botsort"}
    frames = sequences[0].frames
    assert all(f.embeddings.shape == (len(f.detections), 192) for f in frames)
    step = peer_factory("botsort", world.scene.fps, world.cameras[0].size, with_embeddings=True)()
    outputs = [step(f) for f in frames]
    assert sum(len(ids) for ids, _ in outputs) > 0
    # A frame where nothing was detected carries (0, 192) embeddings, as the embedder returns them; BoT-SORT
    # still steps (its tracks age) instead of the evaluation failing on the reshape.
    empty = dataclasses.replace(frames[-1], detections=np.zeros((0, 6)), embeddings=np.zeros((0, 192), np.float32))
    ids, boxes = step(empty)
    assert len(ids) == len(boxes)
    assert len(step(frames[-1])[0]) > 0  # and tracks on when the objects come back
    blind = peer_factory("botsort", world.scene.fps, world.cameras[0].size, with_embeddings=True)()
    frames[0].embeddings = None
    with pytest.raises(ValueError):
        blind(frames[0])


def test_bench_tracker_cli_prints_updates_per_s():
    result = last_json(run_cli("bench", "tracker", "--frames", "100", timeout=300).stdout)
    assert result["updates_per_s"] > 0 and set(result["peers"]) == {"bytetrack", "botsort", "ocsort"}
