"""Scene understanding from objects on the map: stall occupancy, zone events and counts, lane direction.

Pure Python over the site manifest's semantic map. Membership changes are
debounced (``settle_s``): a stall is taken once a vehicle has stood in it that
long and freed once it has been empty that long; an object enters a zone once it
has been inside for ``zone_dwell_s``. The reported times are when the change
happened (the start of the debounce window), not when it was confirmed, so
an event's stamp does not lag by the debounce.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from perception_nodes.geometry import points_in_polygon

VEHICLE_CLASSES = (0, 1)  # car, truck


class EventKind(IntEnum):
    UNKNOWN = 0
    ZONE_ENTER = 1
    ZONE_EXIT = 2
    STALL_OCCUPIED = 3
    STALL_FREED = 4


class LaneMotion(IntEnum):
    """An object's motion relative to the lane it is on; 0 = unknown."""

    UNKNOWN = 0
    NO_LANE = 1
    STOPPED = 2
    WITH_LANE = 3     # along the lane's polyline
    AGAINST_LANE = 4  # against it (wrong way where the lane is one-way)


@dataclass
class SceneParams:
    settle_s: float = 1.0          # stall occupancy debounce
    zone_dwell_s: float = 0.5      # zone membership debounce
    parked_speed: float = 0.7      # m/s: a vehicle slower than this can occupy a stall
    lane_max_distance_m: float = 3.0
    moving_speed: float = 0.5      # m/s: slower is STOPPED for lane direction
    event_memory: int = 20000      # events kept for queries (oldest dropped first)


@dataclass
class Event:
    kind: EventKind
    stamp: float
    global_id: int
    class_id: int
    place: str  # zone name or stall id


@dataclass
class StallStatus:
    stall_id: str
    zone: str
    occupied: bool = False
    global_id: int = 0            # 0: none
    since: float = 0.0            # when it became occupied / freed
    _candidate: int = 0
    _candidate_since: float | None = None

    def dwell_s(self, now: float) -> float:
        return max(now - self.since, 0.0) if self.occupied else 0.0


@dataclass
class ZoneStatus:
    name: str
    kind: str
    members: dict[int, float] = field(default_factory=dict)   # global id -> entered at
    member_classes: dict[int, int] = field(default_factory=dict)

    def counts(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for gid, cls in self.member_classes.items():
            if gid in self.members:
                out[cls] = out.get(cls, 0) + 1
        return out


class SceneUnderstanding:
    """Keeps stall and zone state from successive object snapshots; returns the events of each update."""

    def __init__(self, semantic_map, params: SceneParams | None = None):
        self.params = params or SceneParams()
        self.map = semantic_map
        self.stalls = {s.id: StallStatus(s.id, s.zone) for s in semantic_map.stalls}
        self._stall_polys = {s.id: np.asarray(s.polygon, dtype=np.float64) for s in semantic_map.stalls}
        self.zones = {z.name: ZoneStatus(z.name, getattr(z.kind, "value", str(z.kind))) for z in semantic_map.zones}
        self._zone_polys = {z.name: np.asarray(z.polygon, dtype=np.float64) for z in semantic_map.zones}
        self._pending: dict[tuple[str, int], tuple[bool, float]] = {}  # (zone, gid) -> (inside?, since)
        self.events: deque[Event] = deque(maxlen=self.params.event_memory)
        self.time: float | None = None
        self._lanes = [(lane.name, np.asarray(lane.polyline, dtype=np.float64),
                        getattr(lane.direction, "value", str(lane.direction))) for lane in semantic_map.lanes]

    def reset(self) -> None:
        self.__init__(self.map, self.params)

    def update(self, now: float, ids, classes, xy, velocity) -> list[Event]:
        """Advance to ``now`` with the objects present (arrays over objects); returns new events."""
        if self.time is not None and now < self.time:
            self.reset()
        self.time = now
        ids = [int(g) for g in ids]
        classes = [int(c) for c in classes]
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        velocity = np.asarray(velocity, dtype=np.float64).reshape(-1, 2)
        speed = np.linalg.norm(velocity, axis=1) if len(velocity) else np.zeros(0)
        new: list[Event] = []
        self._update_stalls(now, ids, classes, xy, speed, new)
        self._update_zones(now, ids, classes, xy, new)
        self.events.extend(new)
        return new

    def _update_stalls(self, now, ids, classes, xy, speed, new) -> None:
        p = self.params
        vehicles = [i for i, c in enumerate(classes) if c in VEHICLE_CLASSES and speed[i] <= p.parked_speed]
        for stall_id, status in self.stalls.items():
            inside = [i for i in vehicles if points_in_polygon(xy[i:i + 1], self._stall_polys[stall_id])[0]]
            candidate = ids[inside[0]] if inside else 0
            if status.occupied and candidate and candidate != status.global_id and status.global_id in ids:
                candidate = status.global_id  # the one that was there keeps it while it stays
            wanted = bool(candidate)
            if wanted == status.occupied and (not wanted or candidate == status.global_id):
                status._candidate_since = None
                continue
            if status._candidate != candidate or status._candidate_since is None:
                status._candidate, status._candidate_since = candidate, now
            if now - status._candidate_since >= p.settle_s:
                cls = classes[ids.index(candidate)] if candidate in ids else 0
                if status.occupied:
                    new.append(Event(EventKind.STALL_FREED, status._candidate_since, status.global_id, cls, stall_id))
                status.occupied, status.global_id, status.since = wanted, candidate, status._candidate_since
                if wanted:
                    new.append(Event(EventKind.STALL_OCCUPIED, status.since, candidate, cls, stall_id))
                status._candidate_since = None

    def _update_zones(self, now, ids, classes, xy, new) -> None:
        p = self.params
        present = set(ids)
        for name, zone in self.zones.items():
            inside = points_in_polygon(xy, self._zone_polys[name]) if len(xy) else np.zeros(0, bool)
            for k, gid in enumerate(ids):
                zone.member_classes[gid] = classes[k]
                self._debounce(name, zone, gid, bool(inside[k]), now, classes[k], new)
            for gid in list(zone.members):
                if gid not in present:  # the object is gone: it left where it was last seen
                    del zone.members[gid]
                    self._pending.pop((name, gid), None)
                    new.append(Event(EventKind.ZONE_EXIT, now, gid, zone.member_classes.get(gid, 0), name))
            for gid in list(zone.member_classes):
                if gid not in present and gid not in zone.members:
                    del zone.member_classes[gid]
                    # a change it was about to make is void: back later, it starts afresh
                    self._pending.pop((name, gid), None)

    def _debounce(self, name, zone, gid, inside: bool, now, cls, new) -> None:
        member = gid in zone.members
        key = (name, gid)
        if inside == member:
            self._pending.pop(key, None)
            return
        state = self._pending.get(key)
        if state is None or state[0] != inside:
            self._pending[key] = (inside, now)
            state = self._pending[key]
        if now - state[1] >= self.params.zone_dwell_s:
            if inside:
                zone.members[gid] = state[1]
                new.append(Event(EventKind.ZONE_ENTER, state[1], gid, cls, name))
            else:
                del zone.members[gid]
                new.append(Event(EventKind.ZONE_EXIT, state[1], gid, cls, name))
            del self._pending[key]

    def lane_motion(self, xy, velocity) -> tuple[str, LaneMotion]:
        """(lane name, motion) of one object: the nearest lane within reach and the sign of its velocity along it."""
        p = self.params
        xy = np.asarray(xy, dtype=np.float64)
        best = None
        for name, line, direction in self._lanes:
            for a, b in zip(line[:-1], line[1:]):
                ab = b - a
                u = float(np.clip((xy - a) @ ab / max(ab @ ab, 1e-12), 0, 1))
                d = float(np.linalg.norm(a + u * ab - xy))
                if d <= p.lane_max_distance_m and (best is None or d < best[0]):
                    best = (d, name, ab / max(np.linalg.norm(ab), 1e-12), direction)
        if best is None:
            return "", LaneMotion.NO_LANE
        _, name, tangent, direction = best
        speed = float(np.linalg.norm(velocity))
        if speed < p.moving_speed:
            return name, LaneMotion.STOPPED
        along = float(np.asarray(velocity) @ tangent)
        if direction == "backward":
            along = -along
        return name, LaneMotion.WITH_LANE if along >= 0 else LaneMotion.AGAINST_LANE

    def zones_of(self, global_id: int) -> list[str]:
        return [name for name, zone in self.zones.items() if global_id in zone.members]

    def stall_of(self, global_id: int) -> str:
        return next((s.stall_id for s in self.stalls.values() if s.occupied and s.global_id == global_id), "")

    def events_between(self, start: float, end: float) -> list[Event]:
        return [e for e in self.events if start <= e.stamp <= end]
