"""A parking lot's life: vehicles that queue at the gate, park, dwell and leave; drivers who walk away.

Opt-in per scene (``parking:`` in the scene file), so scenes without it keep
exactly the actors they had. Everything comes from the scene seed through its own
random stream. Each actor gets timed keyframes (``Actor.keyframes``): the world
interpolates them, so stops, queues and reversing out of a stall are ground
truth like any other motion.
"""
from __future__ import annotations

import numpy as np

from perception_nodes.world.actors import CLASS_SIZES, Actor, Timeline, make_parts
from perception_nodes.world.scene import Scene, Stall

QUEUE_GAP_M = 7.5       # where the next vehicle waits behind one at the gate
GATE_CLEAR_S = 1.5      # the gate is free again this long after a vehicle drove off
STALL_TURNOVER_S = 2.0  # a stall is not reused sooner than this after a vehicle left it
WALK_SPEED = 1.2        # m/s, drivers walking to and from their cars
MAX_LANE_DISTANCE_M = 8.0  # a stall is served by a lane whose nearest point is at most this far from its mouth


class Polyline:
    """Arc-length helpers over an (N, 2) path."""

    def __init__(self, points):
        self.points = np.asarray(points, dtype=np.float64)
        self.cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(self.points, axis=0), axis=1))])

    @property
    def length(self) -> float:
        return float(self.cum[-1])

    def at(self, s: float) -> np.ndarray:
        s = min(max(s, 0.0), self.length)
        i = int(min(np.searchsorted(self.cum, s, side="right") - 1, len(self.points) - 2))
        seg = self.points[i + 1] - self.points[i]
        span = max(self.cum[i + 1] - self.cum[i], 1e-9)
        return self.points[i] + seg * (s - self.cum[i]) / span

    def project(self, point) -> tuple[float, float]:
        """(arc length, distance) of the path's point nearest ``point``."""
        point = np.asarray(point, dtype=np.float64)
        best = (0.0, float("inf"))
        for i, (a, b) in enumerate(zip(self.points[:-1], self.points[1:])):
            ab = b - a
            u = float(np.clip((point - a) @ ab / max(ab @ ab, 1e-12), 0.0, 1.0))
            d = float(np.linalg.norm(a + u * ab - point))
            if d < best[1]:
                best = (float(self.cum[i] + u * np.linalg.norm(ab)), d)
        return best

    def waypoints(self, s0: float, s1: float) -> list[np.ndarray]:
        """Points along the path from arc length s0 to s1 (s0 <= s1), corners included."""
        inner = [self.points[i] for i in range(len(self.points)) if s0 < self.cum[i] < s1]
        return [self.at(s0), *inner, self.at(s1)]

    def entry_arc(self, half_w: float, half_h: float) -> float:
        """Arc length where the path first enters the lot rectangle (0 when it starts inside)."""
        for s in np.arange(0.0, self.length, 0.25):
            x, y = self.at(float(s))
            if abs(x) <= half_w and abs(y) <= half_h:
                return float(s)
        return 0.0


def _stall_mouth(stall: Stall) -> np.ndarray:
    """Middle of the stall's edge on the lane side (its first two corners)."""
    return (np.asarray(stall.polygon[0]) + np.asarray(stall.polygon[1])) / 2.0


def _serving_lane(stall: Stall, lanes: list[Polyline]) -> tuple[int, float] | None:
    mouth = _stall_mouth(stall)
    candidates = [(lane.project(mouth), i) for i, lane in enumerate(lanes)]
    (arc, distance), index = min(candidates, key=lambda c: c[0][1])
    return (index, arc) if distance <= MAX_LANE_DISTANCE_M else None


def parking_actors(scene: Scene, first_id: int) -> list[Actor]:
    """The parking life of ``scene`` (its ``parking`` spec): parked cars, arrivals, trucks, walking drivers."""
    spec = scene.parking
    rng = np.random.default_rng([scene.seed, 0xB4])
    lanes = [Polyline(p) for p in scene.lanes]
    half_w, half_h = scene.lot_size[0] / 2.0, scene.lot_size[1] / 2.0
    stalls = [s for s in scene.stalls if _serving_lane(s, lanes) is not None]
    stall_free_at = {s.id: -np.inf for s in stalls}
    gate_free_at = [-np.inf] * len(lanes)
    walkways = [Polyline(p) for p in scene.walkways]
    actors: list[Actor] = []

    def new_actor(class_name: str, timeline: Timeline, rides_with: int | None = None) -> Actor:
        size = tuple(float(rng.uniform(*r)) for r in CLASS_SIZES[class_name])
        gid = first_id + len(actors)
        frames = timeline.keyframes()
        actor = Actor(gid, class_name, size, make_parts(class_name, size, rng, gid, scene.appearance),
                      frames[:, 1:].copy(), 0.0, 1.0, float(frames[0, 0]), keyframes=frames, reverse=tuple(timeline.reverse),
                      rides_with=rides_with)
        actors.append(actor)
        return actor

    def leave(timeline: Timeline, stall: Stall) -> None:
        lane_index, arc = _serving_lane(stall, lanes)
        lane = lanes[lane_index]
        timeline.drive([_stall_mouth(stall), lane.at(arc)], spec.manoeuvre_speed, reverse=True)
        timeline.drive(lane.waypoints(arc, lane.length)[1:], spec.approach_speed)

    def walk(car_at, leave_at: float | None, parked_at: float, stall: Stall, car: int) -> None:
        """The driver gets out beside the car, walks to the nearest walkway and off along it; comes back before
        the car leaves (when it leaves during the scene)."""
        if not walkways:
            return
        side = np.asarray(stall.polygon[1]) - np.asarray(stall.polygon[0])
        door = np.asarray(car_at) + side / np.linalg.norm(side) * 1.4
        (arc, _), index = min(((w.project(door), i) for i, w in enumerate(walkways)), key=lambda c: c[0][1])
        path = walkways[index]
        end = 0.0 if arc < path.length / 2 else path.length
        along = path.waypoints(arc, end)[1:] if end > arc else path.waypoints(end, arc)[::-1][1:]
        route = [path.at(arc)] + along
        out = Timeline(parked_at + 2.0, door)
        out.drive(route, WALK_SPEED)
        new_actor("person", out, rides_with=car)
        if leave_at is not None and leave_at < scene.duration_s:
            length = sum(float(np.linalg.norm(b - a)) for a, b in zip([door] + route[:-1], route))
            back = Timeline(max(leave_at - 3.0 - length / WALK_SPEED, out.t + 1.0), route[-1])
            back.drive(route[::-1][1:] + [door], WALK_SPEED)
            new_actor("person", back, rides_with=car)

    # Cars parked from the start.
    order = rng.permutation(len(stalls))
    for stall_index in order[:spec.initially_parked]:
        stall = stalls[stall_index]
        dwell = float(rng.uniform(*spec.dwell_s))
        timeline = Timeline(0.0, stall.center)
        timeline.wait(dwell)
        leave(timeline, stall)
        stall_free_at[stall.id] = dwell + STALL_TURNOVER_S + 4.0
        new_actor("car", timeline)

    # Arrivals, spread over the first 70 % of the scene.
    arrivals = np.sort(rng.uniform(0.0, 0.7 * scene.duration_s, spec.vehicles))
    for arrival in arrivals:
        truck = rng.random() < spec.truck_share
        lane_index = int(rng.integers(len(lanes)))
        free = [s for s in stalls if stall_free_at[s.id] < arrival + 8.0]
        if not truck and free:
            stall = free[int(rng.integers(len(free)))]
            lane_index, stall_arc = _serving_lane(stall, lanes)
        lane = lanes[lane_index]
        gate_arc = min(lane.entry_arc(half_w, half_h) + 1.0, lane.length)
        timeline = Timeline(float(arrival) - lane.project(lane.at(0.0))[0], lane.at(0.0))
        queue_arc = max(gate_arc - QUEUE_GAP_M, 0.0)
        timeline.drive(lane.waypoints(0.0, queue_arc)[1:], spec.approach_speed)
        if timeline.t < gate_free_at[lane_index]:  # someone is at the gate: wait behind them
            timeline.wait_until(gate_free_at[lane_index])
        timeline.drive(lane.waypoints(queue_arc, gate_arc)[1:], spec.approach_speed)
        timeline.wait(spec.gate_wait_s)
        gate_free_at[lane_index] = timeline.t + GATE_CLEAR_S
        if truck or not free or stall_arc < gate_arc:
            timeline.drive(lane.waypoints(gate_arc, lane.length)[1:], spec.approach_speed)
            new_actor("truck" if truck else "car", timeline)
            continue
        timeline.drive(lane.waypoints(gate_arc, stall_arc)[1:], spec.approach_speed)
        timeline.drive([_stall_mouth(stall), stall.center], spec.manoeuvre_speed)
        parked_at = timeline.t
        dwell = float(rng.uniform(*spec.dwell_s))
        timeline.wait(dwell)
        leave_at = timeline.t
        leave(timeline, stall)
        stall_free_at[stall.id] = timeline.t + STALL_TURNOVER_S
        car = new_actor("car", timeline)
        if rng.random() < spec.drivers_walk:
            walk(stall.center, leave_at, parked_at, stall, car.global_id)
    return actors
