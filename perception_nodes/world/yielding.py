"""Actors that give way: vehicles keep their distance and yield, so a scene's ordinary life is not a stream of
near collisions (opt-in per scene, ``traffic.yielding: true``).

Every actor keeps its plan (its path and timing: a constant-speed polyline or timed keyframes); giving way only
slows its progress along the plan. A step simulation over the scene advances each actor's plan clock at a rate
in [0, 1]. An actor that must give way to another takes the fastest rate at which their footprints (oriented
rectangles with a margin) stay apart for a look-ahead time, predicted both along the plans (turns included; the
other at its current rate) and at constant velocity (as a time-to-collision rule sees them). Who gives way is decided per pair from the plans, the same way whichever of the two
asks: to an object standing still, to a person, to a vehicle ahead on one's own course, else the lower priority
(vehicles below bicycles below people) or the later to the crossing point. People never give way; drivers give
way to them. A wait that would never end (a vehicle whose plan runs through something parked) is broken after
``deadlock_s`` and counted.

The result is a clock per delayed actor, (time, plan time) breakpoints that ``Actor.state`` reads; the scene's
seed still fixes everything.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from perception_nodes.geometry import rectangles_first_contact

# Who gives way in a crossing: the lower number (people never do).
PRIORITY = {"car": 1, "truck": 1, "bicycle": 2, "person": 3}
RATES = np.array([1.0, 0.75, 0.5, 0.3, 0.15, 0.0])
MOVING_MPS = 0.05
LOOKAHEAD_STEP_S = 0.5


@dataclass(frozen=True)
class YieldParams:
    """How actors give way. The look-aheads are longer than the site rules' time-to-collision thresholds (3 s to
    people, 1.5 s between vehicles in the suggested rules) so that ordinary give-way does not read as a hazard."""

    lookahead_to_people_s: float = 4.0     # a vehicle keeps this much time to contact with a person or bicycle
    lookahead_to_vehicles_s: float = 2.5   # ... and with a vehicle
    margin_m: float = 0.5                  # kept between two vehicles' footprints
    margin_to_people_m: float = 1.6        # ... between a vehicle and a person or bicycle (the suggested rules'
                                           # separation releases at 1.5 m)
    accel_mps2: float = 2.0                # how fast a vehicle gets back to its planned speed
    deadlock_s: float = 20.0               # a wait this long is a deadlock: go on regardless for ``push_s``
    push_s: float = 5.0


@dataclass(frozen=True)
class YieldReport:
    """What giving way did to a scene: how many actors were delayed, by how much, and deadlocks broken."""

    delayed_actors: int
    total_delay_s: float
    max_delay_s: float
    deadlocks_broken: int
    deadlocked: tuple[tuple[int, float], ...] = ()  # (global id, time) of each wait broken


def _crossing_later(p_i, d_i, s_i, p_j, d_j, s_j) -> np.ndarray:
    """Per pair: whether i reaches the point where the two courses cross later than j (near-parallel courses: the
    one further behind)."""
    rel = p_j - p_i
    cross = d_i[:, 0] * d_j[:, 1] - d_i[:, 1] * d_j[:, 0]
    parallel = np.abs(cross) < 0.1
    safe = np.where(parallel, 1.0, cross)
    along_i = (rel[:, 0] * d_j[:, 1] - rel[:, 1] * d_j[:, 0]) / safe
    along_j = (rel[:, 0] * d_i[:, 1] - rel[:, 1] * d_i[:, 0]) / safe
    along_i = np.where(parallel, np.sum(rel * d_i, axis=1), along_i)
    along_j = np.where(parallel, -np.sum(rel * d_j, axis=1), along_j)
    return along_i / np.maximum(s_i, 1e-6) > along_j / np.maximum(s_j, 1e-6)


def gives_way(pos, direction, speed, priority, index) -> np.ndarray:
    """(m, m) bool: row i gives way to column j. Antisymmetric between two moving actors, so that two actors never
    wait for each other."""
    m = len(pos)
    moving = speed > MOVING_MPS
    rel = pos[None, :, :] - pos[:, None, :]                      # j - i
    ahead_i = np.einsum("ijk,ik->ij", rel, direction)             # j in front of i along i's course
    ahead_j = -np.einsum("ijk,jk->ij", rel, direction)            # i in front of j along j's course
    pi, pj = priority[:, None], priority[None, :]
    ii, jj = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
    later = _crossing_later(pos[ii].reshape(-1, 2), direction[ii].reshape(-1, 2), speed[ii].ravel(),
                            pos[jj].reshape(-1, 2), direction[jj].reshape(-1, 2), speed[jj].ravel()).reshape(m, m)
    tie = index[:, None] > index[None, :]
    behind = (ahead_i > 0) & (ahead_j <= 0)
    in_front = (ahead_j > 0) & (ahead_i <= 0)
    crossing = np.where(pi != pj, pi < pj, np.where(later == later.T, tie, later))
    both_moving = np.where(behind, True, np.where(in_front, False, crossing))
    out = np.where(moving[None, :], both_moving, True)
    out &= moving[:, None]
    out &= pi < PRIORITY["person"]
    out[np.arange(m), np.arange(m)] = False
    return out


class PlanTable:
    """Every actor's plan sampled on one grid of plan time (position, heading, planned velocity), flattened so that
    many actors are looked up at once by fancy indexing."""

    def __init__(self, actors: list, dt: float):
        self.dt = dt
        spans = np.array([a.plan_span for a in actors])
        self.start, self.end = spans[:, 0], spans[:, 1]
        self.count = np.maximum(np.ceil((self.end - self.start) / dt).astype(int) + 1, 1)
        self.offset = np.concatenate([[0], np.cumsum(self.count)[:-1]])
        total = int(self.count.sum())
        self.xy, self.yaw, self.velocity = np.zeros((total, 2)), np.zeros(total), np.zeros((total, 2))
        for a, actor in enumerate(actors):
            rows = slice(self.offset[a], self.offset[a] + self.count[a])
            self.xy[rows], self.yaw[rows], self.velocity[rows] = actor.plan_track(
                np.minimum(self.start[a] + np.arange(self.count[a]) * dt, self.end[a]))

    def rows(self, actors, plan_time) -> tuple[np.ndarray, np.ndarray]:
        """(row into the flat arrays, whether the actor is in the scene at that plan time); broadcasts."""
        k = np.rint((plan_time - self.start[actors]) / self.dt).astype(int)
        present = (plan_time >= self.start[actors] - 1e-9) & (plan_time <= self.end[actors] + 1e-9)
        return self.offset[actors] + np.clip(k, 0, self.count[actors] - 1), present


def give_way(actors: list, start_s: float, end_s: float, dt: float,
             params: YieldParams = YieldParams()) -> tuple[list, YieldReport]:
    """The actors with plan clocks that make them give way from ``start_s`` (or the first actor's entry) to
    ``end_s``; after that every clock runs at rate 1. Besides giving way on the move, a vehicle does not enter
    the scene onto another one (it waits at its entry), and a driver (``Actor.rides_with``) gets out only once
    the vehicle has parked."""
    n = len(actors)
    if n == 0:
        return actors, YieldReport(0, 0.0, 0.0, 0)
    table = PlanTable(actors, dt)
    t = min(float(table.start.min()), start_s)
    steps = max(int(np.ceil((end_s - t) / dt)), 0)
    half = np.array([[a.size[0] / 2.0, a.size[1] / 2.0] for a in actors])
    priority = np.array([PRIORITY.get(a.class_name, 1) for a in actors])
    index_of = {a.global_id: k for k, a in enumerate(actors)}
    riders = [(k, index_of[a.rides_with]) for k, a in enumerate(actors) if a.rides_with in index_of]
    plan_time = np.full(n, t)
    rate = np.ones(n)
    held = np.zeros(n)
    push_until = np.full(n, -np.inf)
    breaks = [[(t, t)] for _ in range(n)]
    deadlocked: list[tuple[int, float]] = []
    everyone = np.arange(n)
    for _ in range(steps):
        rows, live = table.rows(everyone, plan_time)
        live = np.flatnonzero(live)
        new_rate = np.ones(n)
        speed = np.linalg.norm(table.velocity[rows[live]], axis=1)
        if len(live) > 1:
            new_rate[live] = _moving_rates(table, live, rows[live], plan_time[live], rate[live], half, priority,
                                           push_until[live] < t, params)
        entering = np.flatnonzero((plan_time < table.start) & (plan_time + dt >= table.start)
                                  & (priority < PRIORITY["person"]))
        occupied = list(rows[live])
        occupants = list(live)
        grow = params.margin_m / 2.0
        for a in entering:  # wait at the entry while something stands on it (one at a time)
            first = table.offset[a]
            if occupied and np.any(np.isfinite(rectangles_first_contact(
                    table.xy[occupied] - table.xy[first], np.zeros((len(occupied), 2)), table.yaw[first],
                    half[a] + grow, table.yaw[occupied], half[occupants] + grow, 0.0))):
                new_rate[a] = 0.0
            else:
                occupied.append(first)
                occupants.append(a)
        for rider, vehicle in riders:  # a driver's plan waits for the vehicle's until the driver gets out
            if plan_time[rider] < table.start[rider]:
                new_rate[rider] = new_rate[vehicle] if plan_time[vehicle] <= table.end[vehicle] else 1.0
        moving = np.zeros(n, bool)
        moving[live] = speed > MOVING_MPS
        stuck = moving & (new_rate == 0.0)
        held = np.where(stuck, held + dt, 0.0)
        broken = held >= params.deadlock_s
        deadlocked += [(actors[a].global_id, round(t, 1)) for a in np.flatnonzero(broken)]
        push_until = np.where(broken, t + params.push_s, push_until)
        held[broken] = 0.0
        for a in np.flatnonzero(new_rate != rate):
            if breaks[a][-1][0] < t - 1e-9:
                breaks[a].append((t, plan_time[a]))
            else:
                breaks[a][-1] = (t, plan_time[a])
        rate = new_rate
        plan_time = plan_time + rate * dt
        t += dt
    out, delays = [], []
    for a, actor in enumerate(actors):
        delay = t - plan_time[a]
        if delay <= 1e-9:
            out.append(actor)
            continue
        clock = np.array(breaks[a] + [(t, plan_time[a])], dtype=np.float64)
        out.append(replace(actor, clock=clock))
        delays.append(delay)
    report = YieldReport(len(delays), round(float(np.sum(delays)), 2) if delays else 0.0,
                         round(float(np.max(delays)), 2) if delays else 0.0, len(deadlocked), tuple(deadlocked))
    return out, report


def _moving_rates(table: PlanTable, live, rows, plan_time, rate, half, priority, may_yield,
                  params: YieldParams) -> np.ndarray:
    """The plan-clock rate of each live actor for the next step: 1, or for one that gives way the fastest of
    ``RATES`` at which their footprints stay apart for the look-ahead, both following their plans (the other at
    its current rate) and both at constant velocity (none does: the one that keeps contact furthest away), no
    faster than a vehicle
    accelerates back to its plan. ``rows``: the live actors' rows of ``table`` at their plan times."""
    pos, velocity = table.xy[rows], table.velocity[rows]
    speed = np.linalg.norm(velocity, axis=1)
    people_like = priority[live] > PRIORITY["car"]
    out = np.ones(len(live))
    direction = velocity / np.maximum(speed, 1e-9)[:, None]
    yielding = gives_way(pos, direction, speed, priority[live], live) & may_yield[:, None]
    i_loc, j_loc = np.nonzero(yielding)
    horizon = np.where(people_like[j_loc], params.lookahead_to_people_s, params.lookahead_to_vehicles_s)
    margin = np.where(people_like[j_loc] | people_like[i_loc], params.margin_to_people_m, params.margin_m)
    reach = np.linalg.norm(half[live], axis=1)
    near = (np.linalg.norm(pos[j_loc] - pos[i_loc], axis=1)
            <= reach[i_loc] + reach[j_loc] + margin + (speed[i_loc] + speed[j_loc]) * horizon)
    i_loc, j_loc, horizon, margin = i_loc[near], j_loc[near], horizon[near], margin[near]
    if len(i_loc):
        ahead = np.arange(0.0, float(horizon.max()) + 1e-9, LOOKAHEAD_STEP_S)              # (K,)
        a_i, a_j = live[i_loc][:, None, None], live[j_loc][:, None, None]
        row_i, in_i = table.rows(a_i, plan_time[i_loc][:, None, None] + RATES[None, :, None] * ahead)  # (P, R, K)
        row_j, in_j = table.rows(a_j, plan_time[j_loc][:, None, None] + rate[j_loc][:, None, None] * ahead)
        grow = (margin / 2.0)[:, None, None, None]
        touching = np.isfinite(rectangles_first_contact(
            table.xy[row_j] - table.xy[row_i], np.zeros(row_i.shape + (2,)), table.yaw[row_i],
            half[a_i] + grow, table.yaw[row_j], half[a_j] + grow, 0.0))
        touching &= in_i & in_j & (ahead[None, None, :] <= horizon[:, None, None])
        gap = np.linalg.norm(table.xy[row_j] - table.xy[row_i], axis=-1)
        # Touching already and not getting closer (e.g. a car's driver walking off beside it): let it move on.
        parting = touching[:, :, 0] & (gap[:, :, min(1, len(ahead) - 1)] >= gap[:, :, 0] - 1e-6)
        first = np.where(touching.any(axis=2), ahead[np.argmax(touching, axis=2)], np.inf)
        first = np.where(parting, np.inf, first)
        # The same pair at constant velocity, as a time-to-collision rule sees it: a plan's stops are sudden (a
        # vehicle at speed halts at its queue point), and one that relied on them would close in on the vehicle
        # ahead at a speed no rule could tell from a collision course.
        d0 = (pos[j_loc] - pos[i_loc])[:, None, :]
        dv = (velocity[j_loc] * rate[j_loc][:, None])[:, None, :] - RATES[None, :, None] * velocity[i_loc][:, None, :]
        contact = rectangles_first_contact(d0, dv, table.yaw[rows[i_loc]][:, None], half[live[i_loc]][:, None, :]
                                           + grow[:, :, :, 0], table.yaw[rows[j_loc]][:, None],
                                           half[live[j_loc]][:, None, :] + grow[:, :, :, 0], float(horizon.max()))
        closing = np.sum(d0 * dv, axis=-1) < 0
        contact = np.where((contact == 0.0) & ~closing, np.inf, contact)
        first = np.minimum(first, np.where(contact <= horizon[:, None], contact, np.inf))
        for k in np.unique(i_loc):
            pick = i_loc == k
            soonest = first[pick].min(axis=0)                       # (R,)
            clear = np.isinf(soonest)
            out[k] = RATES[int(np.argmax(clear))] if clear.any() else RATES[int(np.argmax(soonest))]
    ceiling = rate + params.accel_mps2 * table.dt / np.maximum(speed, 1e-6)
    vehicle_moving = (speed > MOVING_MPS) & ~people_like
    return np.where(vehicle_moving, np.minimum(out, ceiling), out)
