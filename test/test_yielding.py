"""Actors that give way (world/yielding.py): vehicles queue behind slower ones, wait for people, do not enter onto
another vehicle, drivers get out once their car has parked, and the nominal lot's traffic stops running through
itself (plain pytest)."""
from dataclasses import replace

import numpy as np

from perception_nodes.geometry import rectangles_first_contact
from perception_nodes.world import World, load_scene
from perception_nodes.world.actors import Actor, Timeline
from perception_nodes.world.yielding import YieldParams, give_way

CAR = (4.4, 1.8, 1.5)
PERSON = (0.4, 0.5, 1.7)


def path_actor(gid, cls, size, path, speed, enter):
    return Actor(gid, cls, size, (), np.asarray(path, dtype=float), 0.0, speed, enter)


def keyframe_actor(gid, cls, size, timeline: Timeline, rides_with=None):
    frames = timeline.keyframes()
    return Actor(gid, cls, size, (), frames[:, 1:].copy(), 0.0, 1.0, float(frames[0, 0]), keyframes=frames,
                 reverse=tuple(timeline.reverse), rides_with=rides_with)


def touching(a: Actor, b: Actor, t: float, margin: float = 0.0) -> bool:
    pa, pb = a.state(t), b.state(t)
    if not (pa[0] and pb[0]):
        return False
    half_a = np.array(a.size[:2]) / 2 + margin / 2
    half_b = np.array(b.size[:2]) / 2 + margin / 2
    return bool(np.isfinite(rectangles_first_contact(pb[1][:2] - pa[1][:2], np.zeros(2), pa[2], half_a, pb[2],
                                                     half_b, 0.0)))


def times(until: float):
    return np.arange(0.0, until, 0.05)


def test_a_faster_car_queues_behind_a_slower_one_and_the_slower_one_keeps_its_plan():
    slow = path_actor(1, "car", CAR, [(-60, 0), (60, 0)], 3.0, 0.0)
    fast = path_actor(2, "car", CAR, [(-60, 0), (60, 0)], 7.0, 3.0)
    assert any(touching(slow, fast, t) for t in times(40))  # as planned, the fast one drives through
    (slow2, fast2), report = give_way([slow, fast], 0.0, 40.0, 0.1)
    assert slow2.clock is None and fast2.clock is not None
    assert not any(touching(slow2, fast2, t, margin=0.4) for t in times(40))
    assert fast2.time_span[1] > fast.time_span[1] + 5.0 and report.delayed_actors == 1
    assert report.deadlocks_broken == 0
    # while it follows it moves at the slow one's speed, never faster than its plan
    speeds = [np.linalg.norm(fast2.state(t)[3]) for t in times(40) if fast2.state(t)[0]]
    assert max(speeds) <= 7.0 + 1e-9 and min(speeds) < 3.5


def test_a_car_waits_for_a_person_crossing_and_the_person_never_waits():
    car = path_actor(1, "car", CAR, [(-40, 0), (40, 0)], 6.0, 0.0)
    walker = path_actor(2, "person", PERSON, [(0, -10), (0, 10)], 1.2, -1.6)  # on the car's path as it arrives
    assert any(touching(car, walker, t) for t in times(20))
    (car2, walker2), _ = give_way([car, walker], 0.0, 30.0, 0.1)
    assert walker2.clock is None
    gaps = []
    for t in times(30):
        a, b = car2.state(t), walker2.state(t)
        if a[0] and b[0]:
            gaps.append(np.linalg.norm(a[1][:2] - b[1][:2]))
    # never closer than the car's half length plus the margin it keeps to people
    assert min(gaps) >= 2.2 + 0.25


def test_vehicles_do_not_enter_onto_one_another_and_drivers_get_out_after_parking():
    ahead = Timeline(0.0, (-30.0, 0.0))
    ahead.wait(8.0)                                  # standing at the entry for 8 s
    ahead.drive([(-30.0, 30.0)], 3.0)
    second = Timeline(2.0, (-30.0, 0.0))             # planned to enter at the same place at 2 s
    second.drive([(0.0, 0.0)], 3.0)
    parked_at = second.t
    second.wait(60.0)
    driver = Timeline(parked_at + 2.0, (0.0, 1.6))   # gets out 2 s after parking
    driver.drive([(0.0, 20.0)], 1.2)
    actors = [keyframe_actor(1, "car", CAR, ahead), keyframe_actor(2, "car", CAR, second),
              keyframe_actor(3, "person", PERSON, driver, rides_with=2)]
    out, report = give_way(actors, 0.0, 60.0, 0.1)
    assert not any(touching(out[0], out[1], t) for t in times(60))
    entered = out[1].time_span[0]
    assert entered >= 8.0  # waited at its entry until the first one had moved off
    arrived = next(t for t in times(60) if out[1].state(t)[0] and np.linalg.norm(out[1].state(t)[1][:2]) < 1e-6)
    assert out[2].time_span[0] >= arrived + 2.0 - 0.1
    assert report.deadlocks_broken == 0


def test_giving_way_is_deterministic_and_a_deadlock_is_broken_and_counted():
    # a car whose plan runs straight through a car parked for good: it waits, then goes on regardless
    parked = Timeline(0.0, (0.0, 0.0))
    parked.wait(200.0)
    actors = [keyframe_actor(1, "car", CAR, parked), path_actor(2, "car", CAR, [(-40, 0), (40, 0)], 5.0, 0.0)]
    params = YieldParams(deadlock_s=10.0)
    out1, report1 = give_way(actors, 0.0, 60.0, 0.1, params)
    out2, report2 = give_way(actors, 0.0, 60.0, 0.1, params)
    assert report1 == report2 and np.array_equal(out1[1].clock, out2[1].clock)
    assert report1.deadlocks_broken >= 1 and report1.deadlocked[0][0] == 2
    assert out1[1].time_span[1] < 60.0  # it did get through


def _overlapping_vehicle_frames(world: World, frames) -> int:
    """Pairs of vehicles whose footprints overlap, summed over frames."""
    count = 0
    for f in frames:
        states = [(a, p, yaw) for a, p, yaw, _ in world.states(f) if a.class_name in ("car", "truck")]
        xy = np.array([p[:2] for _, p, _ in states])
        yaw = np.array([y for _, _, y in states])
        half = np.array([np.array(a.size[:2]) / 2 for a, _, _ in states])
        contact = rectangles_first_contact(xy[None, :, :] - xy[:, None, :], np.zeros((len(xy), len(xy), 2)),
                                           yaw[:, None], half[:, None, :], yaw[None, :], half[None, :, :], 0.0)
        count += int(np.triu(np.isfinite(contact), 1).sum())
    return count


def test_the_nominal_lot_stops_running_through_itself():
    scene = load_scene("nominal_lot", seed=3)
    assert scene.yielding
    plain, yielding = World(replace(scene, yielding=False)), World(scene)
    assert plain.yield_report is None and yielding.yield_report.deadlocks_broken == 0
    again = World(scene)  # built once per process and scene; another seed is another world
    assert again.yield_report == yielding.yield_report and again.actors is not yielding.actors
    assert all(a.global_id == b.global_id and (a.clock is None) == (b.clock is None) for a, b in
               zip(again.actors, yielding.actors))
    assert World(replace(scene, seed=4)).yield_report != yielding.yield_report
    frames = range(0, int(scene.duration_s * scene.fps), 5)
    before, after = _overlapping_vehicle_frames(plain, frames), _overlapping_vehicle_frames(yielding, frames)
    # what is left: a car reversing out of its stall into a car on the lane, a standoff at a stall's mouth
    assert before > 100 and after <= 0.1 * before, (before, after)
    # traffic keeps to its lane's direction where actors give way
    lanes = [np.asarray(lane, dtype=float) for lane in scene.lanes]
    for actor in yielding.actors:
        if actor.keyframes is None and actor.class_name in ("car", "truck"):
            assert any(actor.path.shape == lane.shape and np.allclose(actor.path, lane) for lane in lanes)
