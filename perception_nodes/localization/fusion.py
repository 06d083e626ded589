"""Map-frame multi-camera tracking: one identity per physical object across every camera (pure numpy/scipy).

Each camera's tracks arrive as lifted ground-plane observations (``lifting.py``)
with their own stamp; cameras are not synchronised. The fuser keeps one
constant-velocity Kalman filter per object in the map (state x, y, vx, vy; time
from the stamps), which decides identity, and beside it an interacting multiple
model (``motion.py``: cruise, manoeuvre, stopped) on the same observations, which
is what it publishes (``motion_model``); per camera message it:

1. predicts every object to the message's stamp (an out-of-order message, older
   than the filter time by at most ``max_out_of_order_s``, is shifted forward
   along the object's velocity instead, its covariance grown by the process
   noise over the lag; older ones are dropped and counted; a jump back by more
   than ``reset_backwards_s`` resets the map only once the messages have kept to
   the earlier time for ``reset_confirm_s`` of their own stamps with none in order
   between, as after a bag loop or a restarted simulation: one camera's stale
   message among in-order ones is dropped, not taken for a new timeline);
2. associates the observations with the objects by the Hungarian method on the
   Mahalanobis distance (gated; the covariances compared include a systematic
   lifting term per class), with a bonus for the object each (camera, track)
   was fused into before (the per-camera tracker already knows the identity;
   the bonus keeps it unless another object fits clearly better; it shrinks
   where the track's box overlaps another, where trackers swap, and objects
   standing still get none) and an optional appearance term;
3. with ``use_appearance`` (a learned re-identification embedder), hands
   still-unmatched observations over to objects no camera sees now, or
   revives recently removed ones (re-entry), when the appearance matches and
   the travel from where the object was last seen is plausible in the time
   elapsed (class speed limits);
4. starts tentative objects from what is left.

Matched observations update their objects one camera at a time (sequential
Kalman updates = covariance-weighted multi-view fusion). Two objects that stay
together (Mahalanobis and metric gates, compatible class and appearance) while
disjoint sets of cameras see them are one object seen twice (its first lift
from one camera was off, say, at the image border): they are merged into the
older identity and the cameras' tracks rebound to it. Objects no camera has
updated for ``coast_after_s`` coast (marked, velocity damped so they never run
away); they are removed after ``max_coast_s`` (longer for stationary
vehicles, which parked cars behind others are), or at once when a moving one
coasts where no camera sees the ground or off the site (``coverage``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception_nodes.localization.motion import (MODES, Imm, ImmParams, MotionModel, cv_process_noise,
                                                  inverse_2x2)
from perception_nodes.taxonomy import SiteClass


class ExistenceState(IntEnum):
    """An object's existence state; 0 is never a valid state of a published object."""

    UNKNOWN = 0
    TENTATIVE = 1
    CONFIRMED = 2
    COASTING = 3


class UpdateResult(IntEnum):
    FUSED = 0
    FUSED_OUT_OF_ORDER = 1
    DROPPED_LATE = 2
    RESET = 3
    DROPPED_BACKWARDS = 4  # from before the map's time by more than reset_backwards_s, not (yet) a new timeline


class AssociationMode(str):
    FULL = "full"
    NEAREST = "nearest"


VEHICLES = (int(SiteClass.CAR), int(SiteClass.TRUCK))
MAX_SPEED = {int(SiteClass.CAR): 15.0, int(SiteClass.TRUCK): 12.0, int(SiteClass.PERSON): 3.0,
             int(SiteClass.BICYCLE): 9.0, int(SiteClass.OTHER): 15.0}
ACCEL_SIGMA = {int(SiteClass.CAR): 2.0, int(SiteClass.TRUCK): 1.5, int(SiteClass.PERSON): 1.0,
               int(SiteClass.BICYCLE): 1.5, int(SiteClass.OTHER): 2.0}


@dataclass
class FusionParams:
    """Association, lifecycle and noise settings of the map tracker."""

    association: str = AssociationMode.FULL  # "nearest": the baseline (greedy nearest neighbour, no appearance)
    gate_chi2: float = 13.8          # Mahalanobis gate for new associations (2 dof, 99.9 %)
    nearest_gate_m: float = 2.5      # baseline: largest distance of a nearest-neighbour match
    # Appearance in the map association: off by default. The embeddings the trackers publish (colour
    # histograms) differ between cameras' views of one car nearly as much as between two cars: as a cost term
    # they cost more cross-camera matches than they save, and even where position says little (the gate for
    # coasting objects, handover and re-entry, merging) they lost more identities than they kept on the
    # localizer's tuning seeds (perception eval localization, the with_appearance ablation). Objects still
    # keep their embedding (published); turn this on with a learned re-identification embedder.
    use_appearance: bool = False
    appearance_weight: float = 0.0   # cost units (chi2) per unit of cosine distance
    appearance_gate: float = 0.9     # an object no camera sees now never takes an observation this unlike it
    use_bindings: bool = True
    binding_bonus: float = 5.0       # cost bonus (chi2 units) for the object a camera track was fused into
    # A tracker swaps identities between boxes that overlap in its image (adjacent parked cars seen at a slant):
    # the bonus shrinks linearly with the share of the track's box that another box covers, to none at this share.
    binding_overlap_limit: float = 0.5
    # Nor is there a bonus for an object standing still: there position says more than a tracker's identity,
    # which swaps between cars parked side by side.
    bonus_for_stationary: bool = False
    reid_max_distance: float = 0.2   # handover / re-entry: largest cosine distance
    reid_memory_s: float = 60.0      # how long a removed object can come back under its id
    handover_slack_m: float = 4.0    # travel allowance beyond class speed x elapsed time
    min_hits: int = 2                # observations (of confirmed camera tracks) before an object is confirmed
    coast_after_s: float = 0.6
    max_coast_s: float = 3.0
    max_coast_stationary_s: float = 20.0  # a vehicle that was standing still (parked, queued)
    stationary_speed: float = 0.5    # m/s
    tentative_max_age_s: float = 1.0
    # A moving object that coasts out of every camera's view has left (through the site's edge, or into a gap
    # between cameras): kept on the map it would drift on as a phantom. It goes to the re-entry memory at once.
    remove_out_of_view: bool = True
    max_out_of_order_s: float = 0.5
    reset_backwards_s: float = 2.0
    # A jump back resets once the earlier timeline has lasted this long (its messages' stamps) with no message in
    # the current one between: a stale message from one camera is dropped instead of wiping the map.
    reset_confirm_s: float = 1.0
    embedding_momentum: float = 0.9
    velocity_damping_s: float = 1.0  # coasting velocity decays with this time constant
    # What the tracker publishes (positions, velocities, covariances). "imm": an interacting multiple model
    # (cruise / manoeuvre / stopped, motion.py) on the same associated observations, which follows stops and
    # turns within a few frames and whose covariance carries the hypotheses' spread after them; "cv": the
    # constant-velocity filter. Identity (association, merging, standing still, the heading lifting uses) stays
    # with the constant-velocity filter either way: driven by the IMM's estimate, the localizer's tuning seeds
    # lost identities (objects passing ones that stand swapped ids; mixture-likelihood gating did not fix it).
    motion_model: str = MotionModel.IMM
    imm: ImmParams = field(default_factory=ImmParams)
    new_object_min_score: float = 0.3
    initial_speed_sigma: float = 3.0
    # Lifting errors that do not average out (a size prior, a heading, a calibration): frame after frame one
    # camera puts an object in the same wrong place, so an object's filter covariance understates how far a
    # second camera's view of it may lie. Added to the covariances compared when associating and merging.
    systematic_sigma_vehicle_m: float = 0.6
    systematic_sigma_m: float = 0.3
    merge_chi2: float = 9.2          # two objects this close (2 dof, 99 %) may be one seen twice ...
    merge_max_m: float = 1.5         # ... and no farther apart than this ...
    merge_after_s: float = 0.5       # ... for this long, seen by disjoint cameras: they are merged


@dataclass
class Observation:
    """One camera track lifted to the ground at one stamp."""

    camera_id: str
    track_id: int
    xy: np.ndarray
    cov: np.ndarray
    class_id: int
    score: float = 1.0
    embedding: np.ndarray | None = None
    truncated: int = 0
    range_m: float = 0.0
    covered: float = 0.0     # largest share of its box that another box of the same image covers


@dataclass
class MapObject:
    """What the fuser knows of one object besides its filter state."""

    global_id: int
    created: float
    last_update: float
    class_scores: dict[int, float] = field(default_factory=dict)
    hits: int = 0
    confirmed: bool = False
    embedding: np.ndarray | None = None
    last_seen_by: dict[str, float] = field(default_factory=dict)   # camera -> stamp
    tracks: dict[str, int] = field(default_factory=dict)           # camera -> its track id
    heading: float = 0.0
    heading_known: bool = False
    stationary_since: float | None = None
    score: float = 0.0
    update_interval: float = 0.0     # running mean of the time between its updates (s)

    _class_id: int = int(SiteClass.OTHER)

    @property
    def class_id(self) -> int:
        """The class with the most score-weighted votes."""
        return self._class_id

    def vote(self, class_id: int, score: float) -> None:
        """Count one observation's class (score-weighted)."""
        self.class_scores[class_id] = self.class_scores.get(class_id, 0.0) + score
        if self.class_scores[class_id] > self.class_scores.get(self._class_id, -1.0) or len(self.class_scores) == 1:
            self._class_id = class_id


@dataclass
class ObjectState:
    """An object predicted to a common time (what the localizer publishes)."""

    global_id: int
    class_id: int
    state: ExistenceState
    xy: np.ndarray
    velocity: np.ndarray
    cov: np.ndarray           # 4x4 of (x, y, vx, vy)
    heading: float
    heading_known: bool
    last_seen: float
    contributors: dict[str, int]
    confidence: float
    embedding: np.ndarray | None
    first_seen: float = 0.0


def _classes_compatible(a: int, b: int) -> bool:
    if a == b or int(SiteClass.OTHER) in (a, b):
        return True
    return a in VEHICLES and b in VEHICLES  # detectors confuse cars and trucks; the votes settle it


def _compatibility(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Vectorised :func:`_classes_compatible` over class arrays (n,) x (m,)."""
    a, b = a[:, None], b[None, :]
    other = int(SiteClass.OTHER)
    vehicles = np.isin(a, VEHICLES) & np.isin(b, VEHICLES)
    return (a == b) | (a == other) | (b == other) | vehicles


def _cosine_distance(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    if a is None or b is None or len(a) != len(b):
        return None
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < 1e-9 or nb < 1e-9:
        return None
    return 1.0 - float(a @ b) / (na * nb)


class MapTracker:
    """Fuses per-camera observations into map objects with global ids (see the module docstring)."""

    def __init__(self, params: FusionParams | None = None, coverage=None):
        """``coverage``: a callable ``(N, 2) map points -> (N,) bool``, whether any camera sees the ground there
        (None: unknown, nothing is removed for leaving the view)."""
        self.params = params or FusionParams()
        self.coverage = coverage
        self.reset()
        self.counters: dict[str, int] = {}

    def reset(self) -> None:
        self.time: float | None = None
        self.X = np.zeros((0, 4))
        self.P = np.zeros((0, 4, 4))
        # The IMM's per-hypothesis states, covariances and probabilities, one row per object as X (X and P are the
        # constant-velocity filter's). Kept (empty) without the IMM too, so every array has the same rows.
        self.Xm = np.zeros((0, MODES, 4))
        self.Pm = np.zeros((0, MODES, 4, 4))
        self.mu = np.zeros((0, MODES))
        self._imm = Imm(self.params.imm) if self.params.motion_model == MotionModel.IMM else None
        self.objects: list[MapObject] = []
        self.bindings: dict[tuple[str, int], int] = {}   # (camera, track id) -> global id
        self.removed: list[tuple[MapObject, np.ndarray, float]] = []  # (object, last xy, removed at)
        self.merge_candidates: dict[tuple[int, int], float] = {}  # (global id, global id) -> together since
        self.next_id = 1
        self._backwards_since: float | None = None  # earliest stamp of messages from before the filter time

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def _coast_after(self, obj: MapObject) -> float:
        """When an object counts as unseen: coast_after_s, or longer where its cameras report slowly (a site whose
        trackers update at 1 Hz would otherwise see every object coast between updates)."""
        return max(self.params.coast_after_s, 2.5 * obj.update_interval)

    def _systematic_cov(self) -> np.ndarray:
        """(m, 2, 2): the systematic lifting covariance of each object's class."""
        p = self.params
        sigma = np.array([p.systematic_sigma_vehicle_m if o.class_id in VEHICLES else p.systematic_sigma_m
                          for o in self.objects])
        return (sigma ** 2)[:, None, None] * np.eye(2)[None]

    # -- prediction ----------------------------------------------------------------------
    def _accel_sigma(self) -> np.ndarray:
        return np.array([ACCEL_SIGMA.get(o.class_id, 2.0) for o in self.objects])

    def _predicted_all(self, t: float):
        """(X, P, Xm, Pm, mu) of every object at time t (the filter is left as it is)."""
        if self.time is None or len(self.objects) == 0 or t <= self.time:
            return self.X.copy(), self.P.copy(), self.Xm.copy(), self.Pm.copy(), self.mu.copy()
        dt = t - self.time
        coasting = np.array([t - o.last_update > self._coast_after(o) for o in self.objects])
        tau = self.params.velocity_damping_s
        # A coasting object slows down instead of running off: the integral of the damped velocity.
        travelled, kept = tau * (1.0 - math.exp(-dt / tau)), math.exp(-dt / tau)
        accel_sigma = self._accel_sigma()
        Xm, Pm, mu = self.Xm, self.Pm, self.mu
        if self._imm is not None:
            Xm, Pm, mu = self._imm.predict(self.Xm, self.Pm, self.mu, accel_sigma, dt)
            if coasting.any():
                v = Xm[coasting, :, 2:]
                Xm[coasting, :, :2] -= v * (dt - travelled)
                Xm[coasting, :, 2:] = v * kept
        F = np.eye(4)
        F[0, 2] = F[1, 3] = dt
        X = self.X @ F.T
        P = F @ self.P @ F.T + cv_process_noise(accel_sigma, dt)
        if coasting.any():
            X[coasting, :2] = self.X[coasting, :2] + self.X[coasting, 2:] * travelled
            X[coasting, 2:] = self.X[coasting, 2:] * kept
        return X, P, Xm, Pm, mu

    def _predict_to(self, t: float) -> None:
        self.X, self.P, self.Xm, self.Pm, self.mu = self._predicted_all(t)
        self.time = t

    def _keep_rows(self, keep: np.ndarray) -> None:
        """Drop the rows of every per-object array where ``keep`` is False."""
        self.objects = [o for o, k in zip(self.objects, keep) if k]
        self.X, self.P = self.X[keep], self.P[keep]
        if self._imm is not None:
            self.Xm, self.Pm, self.mu = self.Xm[keep], self.Pm[keep], self.mu[keep]

    # -- update ----------------------------------------------------------------------------
    def update(self, stamp: float, observations: list[Observation]) -> UpdateResult:
        """Fuse one camera message (its observations share ``stamp``)."""
        p = self.params
        result = UpdateResult.FUSED
        if self.time is not None and stamp < self.time - p.reset_backwards_s:
            began = stamp if self._backwards_since is None else min(self._backwards_since, stamp)
            if stamp - began < p.reset_confirm_s:
                self._backwards_since = began
                self._count("dropped_backwards")
                return UpdateResult.DROPPED_BACKWARDS
            self.reset()
            self._count("resets")
            result = UpdateResult.RESET
        else:
            self._backwards_since = None  # the current timeline goes on
        if self.time is not None and stamp < self.time - p.max_out_of_order_s:
            self._count("dropped_late")
            return UpdateResult.DROPPED_LATE
        lag = 0.0
        if self.time is None or stamp >= self.time:
            self._predict_to(stamp)
        else:
            lag = self.time - stamp
            self._count("out_of_order")
            result = UpdateResult.FUSED_OUT_OF_ORDER
        now = self.time
        if not observations:
            self._maintain(now)
            return result
        Z = np.array([o.xy for o in observations], dtype=np.float64).reshape(-1, 2)
        R = np.array([o.cov for o in observations], dtype=np.float64).reshape(-1, 2, 2)
        finite = np.isfinite(Z).all(axis=1) & np.isfinite(R).all(axis=(1, 2))
        if not finite.all():
            observations = [o for o, ok in zip(observations, finite) if ok]
            Z, R = Z[finite], R[finite]
            if not observations:
                self._maintain(now)
                return result
        if lag > 0 and len(self.objects):
            # Out of order: compare with the objects where they were at the observation's stamp.
            X_then = self.X.copy()
            X_then[:, :2] -= self.X[:, 2:] * lag
            R_extra = lag * lag * self.P[:, 2:, 2:]
        else:
            X_then, R_extra = self.X, None
        matches = self._associate(observations, Z, R, X_then, R_extra, now)
        self._apply(observations, Z, R, matches, lag, stamp, now)
        self._maintain(now)
        return result

    def _associate(self, observations, Z, R, X_then, R_extra, now) -> dict[int, int]:
        """Observation index -> object row (existing objects only)."""
        p = self.params
        n, m = len(observations), len(self.objects)
        matches: dict[int, int] = {}
        if m == 0:
            return matches
        diff = Z[:, None, :] - X_then[None, :, :2]
        S = self.P[None, :, :2, :2] + R[:, None] + self._systematic_cov()[None]
        if R_extra is not None:
            S = S + R_extra[None]
        S_inv, _ = inverse_2x2(S)
        d2 = np.einsum("nmi,nmij,nmj->nm", diff, S_inv, diff)
        dist = np.linalg.norm(diff, axis=2)
        row_of = {o.global_id: i for i, o in enumerate(self.objects)}
        if p.association == AssociationMode.NEAREST:
            pairs = sorted((dist[i, j], i, j) for i in range(n) for j in range(m) if dist[i, j] <= p.nearest_gate_m
                           and _classes_compatible(observations[i].class_id, self.objects[j].class_id))
            used_obs, used_obj = set(), set()
            for _, i, j in pairs:
                if i not in used_obs and j not in used_obj:
                    matches[i] = j
                    used_obs.add(i)
                    used_obj.add(j)
            return matches
        obs_classes = np.array([o.class_id for o in observations])
        obj_classes = np.array([o.class_id for o in self.objects])
        compatible = _compatibility(obs_classes, obj_classes)
        # 1. bindings from earlier messages: the camera's tracker already knows the identity, so the object its
        # track was fused into last time is preferred (a cost bonus), but never forced: a binding made on a bad
        # first lift, or a track that swapped objects in the image, loses to a better fit.
        bonus = np.zeros((n, m))
        if p.use_bindings:
            for i, obs in enumerate(observations):
                j = row_of.get(self.bindings.get((obs.camera_id, obs.track_id)))
                if j is not None and (p.bonus_for_stationary or self.objects[j].stationary_since is None):
                    trust = 1.0 if p.binding_overlap_limit <= 0 else \
                        max(0.0, 1.0 - obs.covered / p.binding_overlap_limit)
                    bonus[i, j] = p.binding_bonus * trust
        free_obs = np.array([i for i in range(n) if i not in matches], dtype=int)
        free_obj = np.arange(m)
        if not len(free_obs):
            return matches
        idle_objects = np.array([now - o.last_update >= self._coast_after(o) for o in self.objects])
        if p.use_appearance and (p.appearance_weight > 0 or idle_objects.any()):
            appearance, has_appearance = self._appearance(observations)
        else:  # nothing uses it: appearance is off, or no cost term and every object is in view
            appearance, has_appearance = np.ones((n, m)), np.zeros((n, m), dtype=bool)
        if len(free_obs) and len(free_obj):
            sub = np.ix_(free_obs, free_obj)
            cost = d2[sub] + np.where(has_appearance[sub], p.appearance_weight * appearance[sub], 0.0) - bonus[sub]
            # Position says little about an object no camera has seen for a while (its covariance has grown):
            # there, appearance must agree too.
            idle = idle_objects[free_obj]
            allowed = (d2[sub] <= p.gate_chi2) & compatible[sub] & \
                ~(has_appearance[sub] & (appearance[sub] > p.appearance_gate) & idle[None, :])
            cost = np.where(allowed, cost, 1e6)
            rows, cols = linear_sum_assignment(cost)
            for a, b in zip(rows, cols):
                if cost[a, b] < 1e6:
                    matches[int(free_obs[a])] = int(free_obj[b])
        # 3. handover to objects no camera sees now (appearance + plausible travel)
        unmatched = np.array([i for i in range(n) if i not in matches], dtype=int)
        if len(unmatched) and p.use_appearance and p.reid_max_distance > 0:
            taken = set(matches.values())
            idle = np.array([j not in taken and now - obj.last_update >= self._coast_after(obj)
                             for j, obj in enumerate(self.objects)])
            if idle.any():
                reach = np.array([MAX_SPEED.get(o.class_id, 15.0) * (now - o.last_update) + p.handover_slack_m
                                  for o in self.objects])
                ok = has_appearance[unmatched] & (appearance[unmatched] <= p.reid_max_distance) & \
                    compatible[unmatched] & idle[None, :] & (dist[unmatched] <= reach[None, :])
                candidates = sorted((float(appearance[i, j]), int(i), int(j))
                                    for a, i in enumerate(unmatched) for j in np.flatnonzero(ok[a]))
                for _, i, j in candidates:
                    if i not in matches and j not in matches.values():
                        matches[i] = j
                        self._count("handovers")
        return matches

    def _appearance(self, observations) -> tuple[np.ndarray, np.ndarray]:
        """(cosine distance (n, m), both have embeddings of one size (n, m)) between observations and objects."""
        n, m = len(observations), len(self.objects)
        dims = {len(o.embedding) for o in observations if o.embedding is not None} | \
            {len(o.embedding) for o in self.objects if o.embedding is not None}
        if len(dims) != 1:
            return np.ones((n, m)), np.zeros((n, m), dtype=bool)
        dim = dims.pop()
        E_obs, E_obj = np.zeros((n, dim)), np.zeros((m, dim))
        has_obs, has_obj = np.zeros(n, bool), np.zeros(m, bool)
        for i, o in enumerate(observations):
            if o.embedding is not None:
                norm = float(np.linalg.norm(o.embedding))
                if norm > 1e-9:
                    E_obs[i], has_obs[i] = o.embedding / norm, True
        for j, o in enumerate(self.objects):
            if o.embedding is not None:
                norm = float(np.linalg.norm(o.embedding))
                if norm > 1e-9:
                    E_obj[j], has_obj[j] = o.embedding / norm, True
        return 1.0 - E_obs @ E_obj.T, has_obs[:, None] & has_obj[None, :]

    def _apply(self, observations, Z, R, matches: dict[int, int], lag: float, stamp: float, now: float) -> None:
        p = self.params
        if matches:
            idx_obs = np.array(list(matches.keys()))
            rows = np.array([matches[i] for i in idx_obs])
            z = Z[idx_obs]
            r = R[idx_obs]
            if self._imm is not None:
                self.Xm[rows], self.Pm[rows], self.mu[rows] = self._imm.update(
                    self.Xm[rows], self.Pm[rows], self.mu[rows], z, r, lag)
            if lag > 0:
                z = z + self.X[rows, 2:] * lag
                r = r + lag * lag * self.P[rows, 2:, 2:]
            P = self.P[rows]
            S_inv, _ = inverse_2x2(P[:, :2, :2] + r)
            K = P[:, :, :2] @ S_inv
            innovation = z - self.X[rows, :2]
            self.X[rows] += np.einsum("nij,nj->ni", K, innovation)
            self.P[rows] = P - K @ P[:, :2, :]
            for i, j in matches.items():
                self._observed(self.objects[j], observations[i], stamp, now)
        for i, obs in enumerate(observations):
            if i in matches:
                continue
            if self._revive(obs, now):
                continue
            if obs.score < p.new_object_min_score:
                continue
            self._spawn(obs, now)

    def _observed(self, obj: MapObject, obs: Observation, stamp: float, now: float) -> None:
        p = self.params
        gap = now - obj.last_update
        # The reporting rate, not absences: same-round updates by several cameras and long gaps do not count.
        if obj.hits and 1e-6 < gap < 0.5 * p.max_coast_s:
            obj.update_interval = gap if obj.update_interval == 0.0 else 0.8 * obj.update_interval + 0.2 * gap
        obj.last_update = now
        obj.hits += 1
        obj.score = 0.8 * obj.score + 0.2 * obs.score if obj.hits > 1 else obs.score
        obj.vote(obs.class_id, obs.score)
        obj.last_seen_by[obs.camera_id] = stamp
        previous = obj.tracks.get(obs.camera_id)
        if previous is not None and previous != obs.track_id:
            self.bindings.pop((obs.camera_id, previous), None)
        obj.tracks[obs.camera_id] = obs.track_id
        if p.use_bindings and p.association == AssociationMode.FULL:
            self.bindings[(obs.camera_id, obs.track_id)] = obj.global_id
        if obj.hits >= p.min_hits:
            obj.confirmed = True
        if obs.embedding is not None and len(obs.embedding):
            e = np.asarray(obs.embedding, dtype=np.float64)
            if obj.embedding is None or len(obj.embedding) != len(e):
                obj.embedding = e.copy()
            else:
                mixed = p.embedding_momentum * obj.embedding + (1 - p.embedding_momentum) * e
                obj.embedding = mixed / max(math.sqrt(float(mixed @ mixed)), 1e-12)

    def _spawn(self, obs: Observation, now: float, global_id: int | None = None) -> MapObject:
        p = self.params
        gid = global_id if global_id is not None else self.next_id
        if global_id is None:
            self.next_id += 1
        obj = MapObject(gid, now, now)
        P0 = np.zeros((1, 4, 4))
        P0[0, :2, :2] = obs.cov
        P0[0, 2, 2] = P0[0, 3, 3] = p.initial_speed_sigma ** 2
        self.X = np.vstack([self.X, np.array([[obs.xy[0], obs.xy[1], 0.0, 0.0]])])
        self.P = np.concatenate([self.P, P0])
        if self._imm is not None:
            Xm, Pm, mu = self._imm.initial(np.asarray(obs.xy, dtype=np.float64), obs.cov, p.initial_speed_sigma)
            self.Xm = np.concatenate([self.Xm, Xm[None]])
            self.Pm = np.concatenate([self.Pm, Pm[None]])
            self.mu = np.concatenate([self.mu, mu[None]])
        self.objects.append(obj)
        self._observed(obj, obs, now, now)
        return obj

    def _revive(self, obs: Observation, now: float) -> bool:
        """Re-entry: a recently removed object with this appearance, within reach, takes its id back."""
        p = self.params
        if p.association != AssociationMode.FULL or not p.use_appearance or p.reid_max_distance <= 0 \
                or obs.embedding is None:
            return False
        best = None
        for k, (obj, xy, removed_at) in enumerate(self.removed):
            appearance = _cosine_distance(obs.embedding, obj.embedding)
            if appearance is None or appearance > p.reid_max_distance:
                continue
            if not _classes_compatible(obs.class_id, obj.class_id):
                continue
            reach = MAX_SPEED.get(obj.class_id, 15.0) * (now - obj.last_update) + p.handover_slack_m
            if np.linalg.norm(obs.xy - xy) <= reach and (best is None or appearance < best[0]):
                best = (appearance, k)
        if best is None:
            return False
        old, _, _ = self.removed.pop(best[1])
        revived = self._spawn(obs, now, global_id=old.global_id)
        revived.hits = old.hits + 1
        revived.confirmed = old.confirmed
        revived.class_scores, revived._class_id = dict(old.class_scores), old.class_id
        revived.vote(obs.class_id, obs.score)
        revived.created = old.created
        self._count("reentries")
        return True

    def _merge_duplicates(self, now: float) -> None:
        """Merge pairs of objects that have been one object seen twice for ``merge_after_s``."""
        p = self.params
        m = len(self.objects)
        if m < 2 or p.merge_after_s <= 0 or p.association != AssociationMode.FULL:
            self.merge_candidates.clear()
            return
        active = np.array([now - o.last_update <= self._coast_after(o) for o in self.objects])
        diff = self.X[:, None, :2] - self.X[None, :, :2]
        systematic = self._systematic_cov()
        S_inv, _ = inverse_2x2(self.P[:, None, :2, :2] + self.P[None, :, :2, :2] + systematic[:, None]
                               + systematic[None, :])
        d2 = np.einsum("abi,abij,abj->ab", diff, S_inv, diff)
        close = (d2 <= p.merge_chi2) & (np.linalg.norm(diff, axis=2) <= p.merge_max_m) & \
            active[:, None] & active[None, :]
        close &= np.triu(np.ones((m, m), dtype=bool), 1)
        together = set()
        seen_by = [{c for c, seen in o.last_seen_by.items() if now - seen <= self._coast_after(o)}
                   for o in self.objects]
        for a, b in zip(*np.nonzero(close)):
            first, second = self.objects[a], self.objects[b]
            if not _classes_compatible(first.class_id, second.class_id):
                continue
            appearance = _cosine_distance(first.embedding, second.embedding) if p.use_appearance else None
            if appearance is not None and appearance > p.appearance_gate:
                continue
            if seen_by[a] & seen_by[b]:  # a camera that sees both now sees two objects
                continue
            together.add((first.global_id, second.global_id))
        self.merge_candidates = {pair: self.merge_candidates.get(pair, now) for pair in together}
        due = [pair for pair, since in self.merge_candidates.items() if now - since >= p.merge_after_s]
        merged: set[int] = set()
        for pair in due:
            if merged & set(pair):
                continue
            rows = {o.global_id: j for j, o in enumerate(self.objects)}
            a, b = rows[pair[0]], rows[pair[1]]
            keep, drop = (a, b) if (self.objects[a].created, self.objects[a].global_id) <= \
                (self.objects[b].created, self.objects[b].global_id) else (b, a)
            self._merge(keep, drop)
            merged.update(pair)
            self.merge_candidates.pop(pair, None)
        if merged:
            self.merge_candidates = {k: v for k, v in self.merge_candidates.items() if not merged & set(k)}

    def _merge(self, keep: int, drop: int) -> None:
        """Fuse object ``drop`` into ``keep`` (information-weighted states); its tracks rebind to ``keep``."""
        kept, gone = self.objects[keep], self.objects[drop]
        info_keep, info_drop = np.linalg.inv(self.P[keep]), np.linalg.inv(self.P[drop])
        P = np.linalg.inv(info_keep + info_drop)
        self.X[keep] = P @ (info_keep @ self.X[keep] + info_drop @ self.X[drop])
        self.P[keep] = 0.5 * (P + P.T)
        if self._imm is not None:   # both IMMs' estimates fused the same way restart every hypothesis
            Xa, Pa = Imm.combine(self.Xm[[keep, drop]], self.Pm[[keep, drop]], self.mu[[keep, drop]])
            info_a, info_b = np.linalg.inv(Pa[0]), np.linalg.inv(Pa[1])
            P_imm = np.linalg.inv(info_a + info_b)
            self.Xm[keep] = P_imm @ (info_a @ Xa[0] + info_b @ Xa[1])
            self.Pm[keep] = 0.5 * (P_imm + P_imm.T)
            mu = self.mu[keep] + self.mu[drop]
            self.mu[keep] = mu / mu.sum()
        for camera, track in gone.tracks.items():
            if self.bindings.get((camera, track)) == gone.global_id:
                self.bindings[(camera, track)] = kept.global_id
            if kept.last_seen_by.get(camera, -math.inf) <= gone.last_seen_by.get(camera, -math.inf):
                kept.tracks[camera] = track
        for camera, seen in gone.last_seen_by.items():
            kept.last_seen_by[camera] = max(seen, kept.last_seen_by.get(camera, -math.inf))
        for cls, score in gone.class_scores.items():
            kept.vote(cls, score)
        kept.hits += gone.hits
        kept.confirmed = kept.confirmed or gone.confirmed
        kept.last_update = max(kept.last_update, gone.last_update)
        if gone.embedding is not None and kept.embedding is not None and len(gone.embedding) == len(kept.embedding):
            mixed = kept.embedding + gone.embedding
            kept.embedding = mixed / max(np.linalg.norm(mixed), 1e-12)
        elif kept.embedding is None:
            kept.embedding = gone.embedding
        keep_rows = np.ones(len(self.objects), dtype=bool)
        keep_rows[drop] = False
        self._keep_rows(keep_rows)
        self._count("merges")

    def _maintain(self, now: float) -> None:
        """Headings, stationarity, merging of duplicates, removal of objects no camera has seen for too long."""
        p = self.params
        self._merge_duplicates(now)
        keep = np.ones(len(self.objects), dtype=bool)
        leaving: list[int] = []   # moving objects no camera sees now: still in some camera's view?
        speeds = np.hypot(self.X[:, 2], self.X[:, 3]).tolist()
        headings = np.arctan2(self.X[:, 3], self.X[:, 2]).tolist()
        for j, obj in enumerate(self.objects):
            speed = speeds[j]
            coast_after = self._coast_after(obj)
            if speed > 0.8 and now - obj.last_update < coast_after:
                obj.heading = headings[j]
                obj.heading_known = True
            age = now - obj.last_update
            # Stationary from what the cameras saw: a coasting object's damped velocity says nothing, and would
            # otherwise let a car that drove out of view wait 20 s for another to take its id.
            if age < coast_after:
                if speed < p.stationary_speed:
                    obj.stationary_since = obj.stationary_since if obj.stationary_since is not None else now
                else:
                    obj.stationary_since = None
            if not obj.confirmed:
                keep[j] = age <= p.tentative_max_age_s
                continue
            stationary = obj.class_id in VEHICLES and obj.stationary_since is not None
            keep[j] = age <= (p.max_coast_stationary_s if stationary else p.max_coast_s)
            if keep[j] and age >= coast_after and obj.stationary_since is None:
                leaving.append(j)
        if leaving and p.remove_out_of_view and self.coverage is not None:
            rows = np.array(leaving)
            gone = rows[~np.asarray(self.coverage(self.X[rows, :2]), dtype=bool)]
            keep[gone] = False
            if len(gone):
                self._count("left_view", len(gone))
        if not keep.all():
            for j in np.flatnonzero(~keep):
                obj = self.objects[j]
                for camera, track in obj.tracks.items():
                    if self.bindings.get((camera, track)) == obj.global_id:
                        del self.bindings[(camera, track)]
                if obj.confirmed and obj.embedding is not None:
                    self.removed.append((obj, self.X[j, :2].copy(), now))
                self._count("removed")
            self._keep_rows(keep)
        self.removed = [r for r in self.removed if now - r[2] <= p.reid_memory_s]

    # -- queries -----------------------------------------------------------------------------
    def heading_of(self, camera_id: str, track_id: int) -> tuple[float, bool]:
        """Heading of the object a camera track is bound to (for lifting its next box)."""
        return self.headings_of(camera_id, [track_id])[0]

    def headings_of(self, camera_id: str, track_ids) -> list[tuple[float, bool]]:
        """(heading, known) of the objects a camera's tracks are bound to, one per track."""
        by_id = {o.global_id: o for o in self.objects}
        out = []
        for track_id in track_ids:
            obj = by_id.get(self.bindings.get((camera_id, int(track_id))))
            # A heading comes from motion: an object standing still keeps the last one it moved with (a car that
            # turned into a stall), so the map's prior says more about it.
            out.append((obj.heading, obj.heading_known and obj.stationary_since is None) if obj is not None
                       else (0.0, False))
        return out

    def global_id_of(self, camera_id: str, track_id: int) -> int | None:
        return self.bindings.get((camera_id, track_id))

    def snapshot(self, t: float | None = None, include_tentative: bool = False,
                 contributor_window_s: float = 0.5) -> list[ObjectState]:
        """Every object predicted to time ``t`` (default: the filter time)."""
        if self.time is None:
            return []
        t = self.time if t is None else max(t, self.time)
        X, P, Xm, Pm, mu = self._predicted_all(t)
        if self._imm is not None:
            X, P = Imm.combine(Xm, Pm, mu)
        out = []
        for j, obj in enumerate(self.objects):
            if not obj.confirmed and not include_tentative:
                continue
            coasting = t - obj.last_update > self._coast_after(obj)
            state = ExistenceState.TENTATIVE if not obj.confirmed else (
                ExistenceState.COASTING if coasting else ExistenceState.CONFIRMED)
            contributors = {cam: obj.tracks[cam] for cam, seen in obj.last_seen_by.items()
                            if obj.last_update - seen <= contributor_window_s and cam in obj.tracks}
            confidence = float(obj.score) * (0.5 if coasting else 1.0)
            out.append(ObjectState(obj.global_id, obj.class_id, state, X[j, :2].copy(), X[j, 2:].copy(), P[j].copy(),
                                   obj.heading, obj.heading_known, max(obj.last_seen_by.values(), default=obj.created),
                                   contributors, confidence, obj.embedding, obj.created))
        return out
