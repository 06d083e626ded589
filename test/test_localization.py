"""Localization core (no ROS): ground lifting, the map tracker, scene understanding, the parking world."""
from __future__ import annotations

import math

import numpy as np
import pytest

from perception_nodes.evaluation.localization import camera_geometry
from perception_nodes.localization.fusion import ExistenceState, FusionParams, MapTracker, Observation, UpdateResult
from perception_nodes.localization.lifting import (TRUNCATED_BOTTOM, LiftParams, MapHeadingPrior, lift_boxes,
                                                   lift_with_priors)
from perception_nodes.localization.localizer import LocalizationError, Localizer, TrackBatch
from perception_nodes.localization.scene_state import EventKind, LaneMotion, SceneUnderstanding
from perception_nodes.site.manifest import Lane, LaneDirection, SemanticMap, Stall, Zone, ZoneKind
from perception_nodes.world import World, load_scene


@pytest.fixture(scope="module")
def parking2():
    return World(load_scene("parking2"))


def _truth_boxes(world, frames, min_visibility=0.6):
    """(camera index, boxes, classes, true xy, true yaw, ids) of well-visible objects over some frames."""
    out = []
    for f in frames:
        states = {a.global_id: (p, yaw) for a, p, yaw, _ in world.states(f)}
        for ci in range(len(world.cameras)):
            _, boxes = world.render(ci, f)
            boxes = [b for b in boxes if b.visible_fraction >= min_visibility and b.bbox[3] - b.bbox[1] >= 12]
            if boxes:
                out.append((ci, np.array([b.bbox for b in boxes]), np.array([b.class_id for b in boxes]),
                            np.array([states[b.global_id][0][:2] for b in boxes]),
                            np.array([states[b.global_id][1] for b in boxes]), [b.global_id for b in boxes]))
    return out


def test_footprint_lifting_beats_the_box_bottom_and_meets_the_error_goals_on_true_boxes(parking2):
    """Cars: the footprint centre behind the box's bottom edge (with the heading) is much closer to the truth than
    the bottom edge put on the ground; persons' feet land within 0.25 m (p50)."""
    cams = [camera_geometry(c.spec) for c in parking2.cameras]
    errors = {"car": [], "car_bottom": [], "person": []}
    for ci, boxes, classes, xy, yaw, _ in _truth_boxes(parking2, range(0, 300, 10)):
        lifted = lift_boxes(cams[ci], boxes, classes, yaw, np.ones(len(boxes), bool))
        bottom, _ = cams[ci].intersect_plane(np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]]))
        for k, cls in enumerate(classes):
            err = float(np.linalg.norm(lifted.xy[k] - xy[k]))
            if cls == 0 and lifted.range_m[k] <= 30:
                errors["car"].append(err)
                errors["car_bottom"].append(float(np.linalg.norm(bottom[k, :2] - xy[k])))
            elif cls == 2 and lifted.range_m[k] <= 30:
                errors["person"].append(err)
    assert len(errors["car"]) > 30 and len(errors["person"]) > 10
    assert np.median(errors["car"]) <= 0.35, np.median(errors["car"])
    assert np.median(errors["car"]) < 0.5 * np.median(errors["car_bottom"])
    assert np.median(errors["person"]) <= 0.25, np.median(errors["person"])


def test_the_lateral_fit_centres_slanted_cars_on_their_footprint(parking2):
    """A car seen at a slant has a box that is not centred on its footprint: sliding the centre across the view
    until the projected mean cuboid has the box's horizontal centre cuts the lateral error (true boxes, true
    headings), and leaves the error along the view alone."""
    cams = [camera_geometry(c.spec) for c in parking2.cameras]
    across = {True: [], False: []}
    along = {True: [], False: []}
    for ci, boxes, classes, xy, yaw, _ in _truth_boxes(parking2, range(0, 300, 10)):
        for fit in (True, False):
            lifted = lift_boxes(cams[ci], boxes, classes, yaw, np.ones(len(boxes), bool), LiftParams(lateral_fit=fit))
            for k, cls in enumerate(classes):
                if cls == 0 and lifted.range_m[k] <= 30 and not lifted.truncated[k]:
                    error, view = lifted.xy[k] - xy[k], lifted.view_dir[k]
                    across[fit].append(abs(float(error @ [-view[1], view[0]])))
                    along[fit].append(abs(float(error @ view)))
    assert len(across[True]) > 30
    assert np.median(across[True]) < 0.6 * np.median(across[False]), (np.median(across[True]), np.median(across[False]))
    assert abs(np.median(along[True]) - np.median(along[False])) < 0.03


def test_the_map_prior_gives_parked_cars_a_heading(parking2):
    """A car standing in a stall with no track heading yet: the stall's axis beats the heading-free extent."""
    from perception_nodes.evaluation.localization import _site_map

    cams = [camera_geometry(c.spec) for c in parking2.cameras]
    prior = MapHeadingPrior(_site_map(parking2.scene))
    with_prior, without = [], []
    for ci, boxes, classes, xy, _, _ in _truth_boxes(parking2, range(0, 60, 10)):
        cars = classes == 0
        if not cars.any():
            continue
        a = lift_with_priors(cams[ci], boxes[cars], classes[cars], None, None, prior)
        b = lift_boxes(cams[ci], boxes[cars], classes[cars])
        with_prior += list(np.linalg.norm(a.xy - xy[cars], axis=1))
        without += list(np.linalg.norm(b.xy - xy[cars], axis=1))
    assert with_prior and np.median(with_prior) < np.median(without)


def test_covariance_grows_with_range_and_a_cut_box_is_flagged():
    cam = camera_geometry(load_scene("default").cameras[0])
    near = [300, 380, 340, 470]   # bottom near the image bottom: close to the camera
    far = [300, 172, 340, 262]    # the same box higher up: farther away
    cut = [300, 400, 360, 480]    # touches the bottom border
    lifted = lift_boxes(cam, np.array([near, far, cut], float), np.array([2, 2, 2]))
    assert lifted.valid.all()
    assert lifted.range_m[1] > 2 * lifted.range_m[0]
    assert np.trace(lifted.cov[1]) > 2 * np.trace(lifted.cov[0])
    assert lifted.truncated[2] & TRUNCATED_BOTTOM and not lifted.truncated[0] & TRUNCATED_BOTTOM
    above_horizon = lift_boxes(cam, np.array([[300, 0, 320, 5]], float), np.array([0]))
    assert not above_horizon.valid[0]


def _obs(camera, track, xy, cls=2, sigma=0.3, embedding=None, covered=0.0):
    return Observation(camera, track, np.asarray(xy, float), np.eye(2) * sigma ** 2, cls, 0.9,
                       None if embedding is None else np.asarray(embedding, float), covered=covered)


def test_two_cameras_seeing_one_object_give_it_one_global_id():
    tracker = MapTracker()
    for step in range(10):
        t = step * 0.1
        truth = np.array([1.0 * t, 2.0])
        tracker.update(t, [_obs("a", 7, truth + [0.1, 0.0])])
        tracker.update(t + 0.03, [_obs("b", 3, truth + [-0.1, 0.05])])
    objects = tracker.snapshot()
    assert len(objects) == 1
    assert objects[0].contributors == {"a": 7, "b": 3}
    assert objects[0].state == ExistenceState.CONFIRMED
    assert tracker.global_id_of("a", 7) == tracker.global_id_of("b", 3) == objects[0].global_id
    assert abs(objects[0].velocity[0] - 1.0) < 0.4


def test_out_of_order_late_and_backwards_messages():
    tracker = MapTracker(FusionParams(max_out_of_order_s=0.3, reset_backwards_s=2.0))
    for step in range(5):
        tracker.update(step * 0.1, [_obs("a", 1, [0.0, 0.0])])
    assert tracker.update(0.25, [_obs("b", 4, [0.0, 0.1])]) == UpdateResult.FUSED_OUT_OF_ORDER
    assert tracker.global_id_of("b", 4) == tracker.global_id_of("a", 1)
    assert tracker.update(0.0, [_obs("b", 4, [0.0, 0.1])]) == UpdateResult.DROPPED_LATE
    assert tracker.counters["dropped_late"] == 1
    # A jump back: dropped until the earlier timeline has gone on for reset_confirm_s, then a reset.
    assert tracker.update(-10.0, [_obs("a", 1, [0.0, 0.0])]) == UpdateResult.DROPPED_BACKWARDS
    assert tracker.update(-9.5, [_obs("a", 1, [0.0, 0.0])]) == UpdateResult.DROPPED_BACKWARDS
    assert tracker.update(-9.0, [_obs("a", 1, [0.0, 0.0])]) == UpdateResult.RESET
    assert tracker.time == -9.0 and len(tracker.objects) == 1 and tracker.counters["dropped_backwards"] == 2


def test_a_stale_message_among_in_order_ones_is_dropped_without_resetting_the_map():
    """One camera delivering messages 3 s old while the others go on (a latency spike, a reconnect's buffered
    frames): each is dropped; the map, its objects and ids stay."""
    tracker = MapTracker(FusionParams(reset_backwards_s=2.0, reset_confirm_s=1.0))
    for step in range(40):
        t = step * 0.1
        tracker.update(t, [_obs("a", 1, [t, 0.0])])
        if step >= 30:  # camera b's stream, 3 s behind, interleaved with a's
            assert tracker.update(t - 3.0, [_obs("b", 2, [t - 3.0, 0.0])]) == UpdateResult.DROPPED_BACKWARDS
    assert tracker.counters.get("resets", 0) == 0 and tracker.counters["dropped_backwards"] == 10
    (obj,) = tracker.snapshot()
    assert obj.global_id == tracker.global_id_of("a", 1) == 1


def test_a_silent_camera_leaves_its_objects_coasting_slowing_down_then_gone():
    tracker = MapTracker(FusionParams(max_coast_s=3.0))
    for step in range(20):
        t = step * 0.1
        tracker.update(t, [_obs("a", 1, [2.0 * t, 0.0], cls=2)])
    last = tracker.snapshot()[0]
    coasting = tracker.snapshot(last.last_seen + 2.0)[0]
    assert coasting.state == ExistenceState.COASTING
    travelled = coasting.xy[0] - last.xy[0]
    assert 0 < travelled < 2.0 * 2.0 * 0.75  # slower than its last speed would take it: never runs away
    tracker.update(last.last_seen + 3.5, [])
    assert tracker.snapshot() == []


def test_an_object_seen_twice_after_a_bad_first_lift_is_merged_into_the_older_identity():
    # Camera b's first lifts of a parked car are 5 m off (a box cut by the image border), so b starts a second
    # object; as the car comes fully into view b's lifts slide over to 1.2 m off (a size prior), its object
    # following them. The two sit together, seen by disjoint cameras, and become one.
    tracker = MapTracker()
    for step in range(45):
        t = step * 0.1
        tracker.update(t, [_obs("a", 1, [10.0, 2.0], sigma=0.2)])
        if step >= 5:
            xy = [max(11.2, 15.0 - 0.4 * max(step - 8, 0)), 2.0]
            tracker.update(t + 0.02, [_obs("b", 7, xy, sigma=0.2)])
        if step == 20:
            assert len(tracker.snapshot()) == 2  # not merged at sight: together for merge_after_s first
    objects = tracker.snapshot()
    assert len(objects) == 1 and objects[0].global_id == 1
    assert tracker.global_id_of("a", 1) == tracker.global_id_of("b", 7) == 1
    assert set(objects[0].contributors) == {"a", "b"}
    assert tracker.counters.get("merges") == 1
    assert 10.2 < objects[0].xy[0] < 11.0  # both views fused


def test_two_objects_side_by_side_that_one_camera_sees_apart_are_never_merged():
    tracker = MapTracker()
    for step in range(30):
        t = step * 0.1
        tracker.update(t, [_obs("a", 1, [10.0, 2.0], cls=0, sigma=0.2), _obs("a", 2, [10.6, 2.0], cls=0, sigma=0.2)])
    assert len(tracker.snapshot()) == 2 and not tracker.counters.get("merges")


def test_objects_of_cameras_that_report_slowly_do_not_coast_between_updates():
    tracker = MapTracker()
    for step in range(8):  # a tracker updating at 1 Hz
        tracker.update(float(step), [_obs("a", 1, [1.0 * step, 0.0])])
    between = tracker.snapshot(7.8)[0]
    assert between.state == ExistenceState.CONFIRMED  # 0.8 s after an update: not unseen at 1 Hz
    assert tracker.snapshot(7.0 + 3.0)[0].state == ExistenceState.COASTING  # three missed updates: it is
    fast = MapTracker()
    for step in range(20):  # 10 Hz
        fast.update(step * 0.1, [_obs("a", 1, [0.1 * step, 0.0])])
    assert fast.snapshot(1.9 + 0.8)[0].state == ExistenceState.COASTING


def test_a_moving_object_that_coasts_out_of_view_is_dropped_to_the_reentry_memory():
    """Driving out at x = 5 (where coverage ends): dropped as soon as it coasts there, not 3 s later; without a
    coverage it coasts on; a parked car nobody sees any more stays (it is hidden, not gone)."""
    seen = lambda xy: np.asarray(xy)[:, 0] < 5.0  # noqa: E731
    red = np.array([1.0, 0, 0, 0])
    for coverage in (seen, None):
        tracker = MapTracker(coverage=coverage)
        for step in range(20):
            t = step * 0.1
            tracker.update(t, [_obs("a", 1, [2.0 + 2.0 * t, 0.0], cls=0, embedding=red),
                               _obs("a", 2, [-3.0, 4.0], cls=0, embedding=red)])
        for step in range(1, 15):   # camera a loses both: the car drove out past x = 5, the parked one is hidden
            tracker.update(1.9 + step * 0.1, [])
        ids = {o.global_id for o in tracker.snapshot()}
        parked = tracker.global_id_of("a", 2)
        if coverage is None:
            assert len(ids) == 2
        else:
            assert ids == {parked}
            assert tracker.counters["left_view"] == 1
            assert len(tracker.removed) == 1   # it may come back under its id


def test_the_localizer_knows_where_its_cameras_see_the_site():
    """in_view: ground the camera's image shows and the site's outline holds; not behind the camera, not
    beyond the map's outline, not anywhere before a camera has reported."""
    cam = camera_geometry(load_scene("default").cameras[0])
    seen, ok = cam.intersect_plane(np.array([[cam.width / 2, cam.height * 0.8]]), 0.0)
    assert ok[0]
    seen = seen[0, :2]
    behind = cam.position[:2] - 10.0 * (seen - cam.position[:2]) / np.linalg.norm(seen - cam.position[:2])
    outline = tuple(tuple(float(v) for v in seen + d) for d in ((-3, -3), (3, -3), (3, 3), (-3, 3)))
    localizer = Localizer(SemanticMap(zones=(Zone("lot", ZoneKind.PARKING, outline),)))
    points = np.array([seen, behind, seen + [5.0, 0.0], seen + [2.0, 0.0]])
    assert not localizer.in_view(points).any()   # no camera yet
    localizer.fuse(cam, TrackBatch("cam0", 0.0, np.zeros(0, int), np.zeros((0, 4)), np.zeros(0, int), np.zeros(0)))
    assert localizer.in_view(points).tolist() == [True, False, False, True]
    assert cam.sees_ground(points[:2]).tolist() == [True, False]
    assert Localizer().in_view(points[:1]).tolist() == [False]


def test_a_car_standing_still_lifts_with_the_map_heading_not_the_one_it_turned_in_with():
    tracker = MapTracker()
    for step in range(10):   # drives along y at 2 m/s ...
        tracker.update(step * 0.1, [_obs("a", 1, [0.0, 0.2 * step], cls=0)])
    assert tracker.heading_of("a", 1) == pytest.approx((math.pi / 2, True), abs=0.2)
    for step in range(10, 40):   # ... and stands in a stall
        tracker.update(step * 0.1, [_obs("a", 1, [0.0, 1.8], cls=0)])
    assert tracker.heading_of("a", 1)[1] is False


def test_the_binding_bonus_shrinks_where_boxes_overlap():
    """Two people walking side by side 1.2 m apart; camera a's track 1 jumps onto the other person (its lift
    lands 0.3 m short of them). Isolated boxes: the bonus keeps the track's object on it; heavily overlapping
    boxes: position decides."""
    def run(covered):
        tracker = MapTracker()
        for step in range(30):
            t = step * 0.1
            left, right = [1.0 * t, 0.0], [1.0 * t, 1.2]
            swapped = step >= 25
            tracker.update(t, [_obs("a", 1, [1.0 * t, 0.9] if swapped else left, sigma=0.3, covered=covered)])
            tracker.update(t + 0.02, [_obs("b", 5, left, sigma=0.3), _obs("b", 6, right, sigma=0.3)])
        return tracker.global_id_of("a", 1) == tracker.global_id_of("b", 6)

    assert not run(0.0)
    assert run(0.6)


def test_handover_between_cameras_that_do_not_overlap_keeps_the_id_when_appearance_matches():
    red, blue = np.array([1.0, 0, 0, 0]), np.array([0, 0, 1.0, 0])
    for embedding, same in ((red, True), (blue, False)):
        tracker = MapTracker(FusionParams(use_appearance=True))
        for step in range(10):
            tracker.update(step * 0.1, [_obs("a", 1, [1.5 * step * 0.1, 0.0], embedding=red)])
        first = tracker.global_id_of("a", 1)
        # 2 s without anyone seeing it, then camera b, 5 m further on.
        for step in range(3):
            t = 3.0 + step * 0.1
            tracker.update(t, [_obs("b", 9, [5.5 + 1.5 * step * 0.1, 0.0], embedding=embedding)])
        assert (tracker.global_id_of("b", 9) == first) is same


def test_localizer_rejects_bad_batches_and_skips_nan_boxes():
    cam = camera_geometry(load_scene("default").cameras[0])
    localizer = Localizer()
    with pytest.raises(LocalizationError):
        localizer.fuse(cam, TrackBatch("cam0", 0.0, np.array([1, 2]), np.zeros((1, 4)), np.array([0]), np.array([1.0])))
    report = localizer.fuse(cam, TrackBatch("cam0", 0.0, np.array([1, 2]),
                                            np.array([[300, 380, 340, 470], [np.nan, 1, 2, 3]], float),
                                            np.array([2, 2]), np.array([0.9, 0.9])))
    assert report.observations == 1 and report.rejected_boxes == 1


def test_a_flagged_camera_is_moved_back_by_its_image_shift_and_weighs_less():
    cam = camera_geometry(load_scene("default").cameras[0])
    box = np.array([[300, 380, 340, 470]], float)

    def lift(localizer, boxes):
        report = localizer.fuse(cam, TrackBatch("cam0", 0.0, np.array([1]), boxes, np.array([2]), np.array([0.9])))
        return report.lifted.xy[0], report.lifted.cov[0]

    true_xy, true_cov = lift(Localizer(), box)
    flagged = Localizer()
    flagged.set_camera_uncertainty("cam0", math.radians(1.5), image_shift_px=(12.0, -5.0))
    # The bumped camera sees the object 12 px right and 5 px up of where its calibration would.
    xy, cov = lift(flagged, box + [12.0, -5.0, 12.0, -5.0])
    assert np.linalg.norm(xy - true_xy) < 0.05
    assert np.trace(cov) > 1.5 * np.trace(true_cov)  # down-weighted
    assert cam.angle_sigma_rad == pytest.approx(0.002)  # the caller's geometry is left as calibrated
    flagged.set_camera_uncertainty("cam0", 0.0)  # recalibrated: back to normal
    xy, cov = lift(flagged, box)
    assert np.allclose(xy, true_xy) and np.allclose(cov, true_cov)


def _scene():
    stall = Stall("s1", ((0, 0), (3, 0), (3, 5), (0, 5)), "row")
    zones = (Zone("row", ZoneKind.PARKING, ((0, 0), (9, 0), (9, 5), (0, 5))),
             Zone("walk", ZoneKind.WALKWAY, ((-5, -3), (20, -3), (20, -1), (-5, -1))))
    lanes = (Lane("one_way", ((-10.0, -2.0), (30.0, -2.0)), LaneDirection.FORWARD),)
    return SceneUnderstanding(SemanticMap(zones, (stall,), lanes))


def test_a_stall_is_taken_after_the_settle_time_and_freed_when_the_car_leaves():
    scene = _scene()
    events = []
    for step in range(50):
        t = step * 0.1
        parked = 0.5 <= t < 3.0
        ids, xy = ([5], [[1.5, 2.5]]) if parked else ([5], [[1.5, -2.0]])
        events += scene.update(t, ids, [0], np.array(xy), np.zeros((1, 2)))
    kinds = [(e.kind, e.place) for e in events if e.place == "s1"]
    assert kinds == [(EventKind.STALL_OCCUPIED, "s1"), (EventKind.STALL_FREED, "s1")]
    occupied = next(e for e in events if e.kind == EventKind.STALL_OCCUPIED)
    assert occupied.stamp == pytest.approx(0.5) and occupied.global_id == 5  # when it happened, not when confirmed
    assert not scene.stalls["s1"].occupied
    enters = [e for e in events if e.kind == EventKind.ZONE_ENTER and e.place == "row"]
    exits = [e for e in events if e.kind == EventKind.ZONE_EXIT and e.place == "row"]
    assert len(enters) == 1 and len(exits) == 1 and enters[0].stamp == pytest.approx(0.5)
    assert scene.events_between(0.0, 1.0) == [e for e in scene.events if e.stamp <= 1.0]


def test_an_object_that_vanishes_before_its_entry_settles_starts_afresh_when_it_returns():
    """A zone change that was pending when the object went away is void: back inside much later, it is debounced
    again and the entry carries the time it came back, not the time of the old, unfinished crossing."""
    scene = _scene()
    events = []
    inside, outside = np.array([[4.0, -2.0]]), np.array([[4.0, -6.0]])
    events += scene.update(0.0, [3], [2], outside, np.zeros((1, 2)))
    events += scene.update(0.1, [3], [2], inside, np.zeros((1, 2)))      # into the walkway ...
    events += scene.update(0.2, [], [], np.zeros((0, 2)), np.zeros((0, 2)))  # ... and out of every view
    for step in range(10):
        t = 10.0 + 0.1 * step
        events += scene.update(t, [3], [2], inside, np.zeros((1, 2)))
        if t < 10.45:
            assert not events, "entered before its dwell from the return"
    enters = [e for e in events if e.kind == EventKind.ZONE_ENTER and e.place == "walk"]
    assert len(enters) == 1 and enters[0].stamp == pytest.approx(10.0)


def test_a_moving_car_does_not_take_a_stall_and_lane_direction_is_reported():
    scene = _scene()
    for step in range(30):
        scene.update(step * 0.1, [1], [0], np.array([[1.5, 2.5]]), np.array([[3.0, 0.0]]))
    assert not scene.stalls["s1"].occupied
    assert scene.lane_motion([5.0, -2.2], [3.0, 0.0]) == ("one_way", LaneMotion.WITH_LANE)
    assert scene.lane_motion([5.0, -2.2], [-3.0, 0.0]) == ("one_way", LaneMotion.AGAINST_LANE)
    assert scene.lane_motion([5.0, -2.2], [0.1, 0.0])[1] == LaneMotion.STOPPED
    assert scene.lane_motion([5.0, 20.0], [3.0, 0.0]) == ("", LaneMotion.NO_LANE)


def test_parking_life_is_deterministic_and_fills_and_frees_stalls():
    a, b = World(load_scene("parking")), World(load_scene("parking"))
    parked = [x for x in a.actors if x.keyframes is not None]
    assert parked and all(np.array_equal(x.keyframes, y.keyframes) for x, y in
                          zip(parked, [y for y in b.actors if y.keyframes is not None]))
    counts = [sum(v is not None for v in a.stall_occupancy(f).values()) for f in range(0, a.scene.frame_count, 20)]
    assert min(counts) < max(counts)  # cars arrive and leave
    assert {x.class_name for x in parked} >= {"car", "person"}
    # A queued or parked car stands still: zero velocity while its position holds.
    stops = [x for x in parked if x.class_name == "car" and any(
        np.allclose(x.state(t)[3], 0) for t in np.arange(x.time_span[0] + 0.05, x.time_span[1], 0.5))]
    assert stops


def test_scenes_without_parking_keep_their_actors():
    """Parking life is opt-in: the default scene has no keyframe actors and the same actors as its own file."""
    world = World(load_scene("default"))
    assert all(a.keyframes is None for a in world.actors) and len(world.actors) == world.scene.actor_count
    assert World(load_scene("parking")).scene.cameras == world.scene.cameras  # extends: default


def test_a_bumped_camera_renders_from_its_new_pose_after_the_bump():
    world = World(load_scene("parking_bumped"))
    plain = World(load_scene("parking"))
    cam = [c.spec.id for c in world.cameras].index("cam1")
    bump_frame = int(world.scene.camera_bump.time_s * world.scene.fps)
    before, _ = world.render(cam, bump_frame - 1)
    assert np.array_equal(before, plain.render(cam, bump_frame - 1)[0])
    after, _ = world.render(cam, bump_frame + 1)
    assert not np.array_equal(after, plain.render(cam, bump_frame + 1)[0])
    assert world.scene.camera_bump.magnitude_deg == pytest.approx(math.hypot(1.5, 0.5))
