"""Pair kinematics for risk rules (pure numpy): footprint distance, closest approach and time to collision under
constant velocity, with the objects' position and velocity covariance carried to the closest approach."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def footprint_radius(extent_length, extent_width):
    """Radius of the circle a footprint is treated as for contact (scalars or arrays): half its width plus a
    quarter of the length beyond it (a car end-on is not a disc of its half-length)."""
    return 0.5 * extent_width + 0.25 * np.maximum(extent_length - extent_width, 0.0)


@dataclass(frozen=True)
class Approach:
    """Closest approach of two objects under constant velocity."""

    time_s: float               # when (from now, within the horizon; 0 when already separating)
    distance_m: float           # centre distance then
    time_to_collision_s: float  # first time the centres come within contact radius; inf when they never do (or
                                # are within it and not closing)
    contact_probability: float  # P(centre distance < contact radius at closest approach) from the covariance
    closing_speed_mps: float    # -d|p|/dt now (> 0 closing)
    closing_sigma_mps: float = 0.0  # its standard deviation from the velocity covariance


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def closest_approach(pa, va, cov_pa, cov_va, pb, vb, cov_pb, cov_vb, contact_radius: float,
                     horizon_s: float, accel_sigma: float = 0.0) -> Approach:
    """Closest approach of b relative to a within ``horizon_s``.

    Covariances are 2x2 (m^2 and (m/s)^2); the relative position at time t has covariance
    ``cov_pa + cov_pb + t^2 (cov_va + cov_vb)`` (the objects are independent). The contact probability projects
    that covariance on the miss direction: the chance the true miss distance is under ``contact_radius``.
    """
    p = np.asarray(pb, dtype=np.float64) - np.asarray(pa, dtype=np.float64)
    v = np.asarray(vb, dtype=np.float64) - np.asarray(va, dtype=np.float64)
    speed2 = float(v @ v)
    distance_now = float(np.linalg.norm(p))
    closing = -float(p @ v) / distance_now if distance_now > 1e-9 else math.sqrt(speed2)
    t_star = 0.0 if speed2 < 1e-12 else float(np.clip(-(p @ v) / speed2, 0.0, horizon_s))
    miss = p + v * t_star
    miss_distance = float(np.linalg.norm(miss))
    if distance_now <= contact_radius:
        # Within contact and closing: colliding now. Within contact but not closing (two cars parked side by side,
        # whose discs overlap while their bodies do not; a pair moving apart): no collision to come.
        ttc = 0.0 if closing > 0.0 else math.inf
    elif speed2 < 1e-12:
        ttc = math.inf
    else:
        b = float(p @ v)
        disc = b * b - speed2 * (distance_now ** 2 - contact_radius ** 2)
        ttc = (-b - math.sqrt(disc)) / speed2 if disc >= 0 and b < 0 else math.inf
        if ttc > horizon_s:
            ttc = math.inf
    cov = (np.asarray(cov_pa, dtype=np.float64) + np.asarray(cov_pb, dtype=np.float64)
           + t_star ** 2 * (np.asarray(cov_va, dtype=np.float64) + np.asarray(cov_vb, dtype=np.float64))
           + (0.5 * accel_sigma * t_star ** 2) ** 2 * np.eye(2))
    direction = miss / miss_distance if miss_distance > 1e-9 else np.array([1.0, 0.0])
    sigma = math.sqrt(max(float(direction @ cov @ direction), 1e-6))
    probability = _normal_cdf((contact_radius - miss_distance) / sigma) - _normal_cdf(
        (-contact_radius - miss_distance) / sigma)
    line = p / distance_now if distance_now > 1e-9 else np.array([1.0, 0.0])
    cov_v = np.asarray(cov_va, dtype=np.float64) + np.asarray(cov_vb, dtype=np.float64)
    closing_sigma = math.sqrt(max(float(line @ cov_v @ line), 0.0))
    return Approach(t_star, miss_distance, ttc, float(np.clip(probability, 0.0, 1.0)), closing, closing_sigma)


@dataclass(frozen=True)
class ApproachGeometry:
    """:class:`Approach` for many pairs at once (arrays of shape (P,)), without the covariance: enough to tell
    which pairs can come within contact inside the horizon before paying for their uncertainty
    (:func:`approach_uncertainty`)."""

    relative_position: np.ndarray   # (P, 2) b - a now
    miss: np.ndarray                # (P, 2) b - a at the closest approach
    radius: np.ndarray              # (P,) contact radii
    distance_now_m: np.ndarray
    time_s: np.ndarray
    distance_m: np.ndarray
    time_to_collision_s: np.ndarray
    closing_speed_mps: np.ndarray


def approach_geometry(dp: np.ndarray, dv: np.ndarray, contact_radius, horizon_s: float) -> ApproachGeometry:
    """Closest approach and time to collision of many pairs under constant velocity (relative positions and
    velocities (P, 2) of b with respect to a, contact radii (P,))."""
    dp, dv = np.asarray(dp, dtype=np.float64).reshape(-1, 2), np.asarray(dv, dtype=np.float64).reshape(-1, 2)
    radius = np.broadcast_to(np.asarray(contact_radius, dtype=np.float64), (len(dp),))
    speed2 = np.einsum("ij,ij->i", dv, dv)
    b = np.einsum("ij,ij->i", dp, dv)
    distance = np.sqrt(np.einsum("ij,ij->i", dp, dp))
    moving = speed2 >= 1e-12
    t_star = np.where(moving, np.clip(-b / np.where(moving, speed2, 1.0), 0.0, horizon_s), 0.0)
    miss = dp + dv * t_star[:, None]
    miss_distance = np.sqrt(np.einsum("ij,ij->i", miss, miss))
    disc = b * b - speed2 * (distance ** 2 - radius ** 2)
    hit = moving & (disc >= 0) & (b < 0)
    ttc = np.full(len(dp), np.inf)
    ttc[hit] = (-b[hit] - np.sqrt(disc[hit])) / speed2[hit]
    ttc[ttc > horizon_s] = np.inf
    closing = np.where(distance > 1e-9, -b / np.maximum(distance, 1e-12), np.sqrt(speed2))
    within = distance <= radius
    ttc[within] = np.where(closing[within] > 0.0, 0.0, np.inf)  # see closest_approach
    return ApproachGeometry(dp, miss, radius, distance, t_star, miss_distance, ttc, closing)


def approach_uncertainty(geometry: ApproachGeometry, pairs: np.ndarray, cov_p: np.ndarray, cov_v: np.ndarray,
                         accel_sigma: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Contact probability and closing-speed sigma of the ``pairs`` (indices into ``geometry``), given their
    summed position and velocity covariances (len(pairs), 2, 2). ``accel_sigma`` (m/s^2): the relative
    acceleration the constant-velocity prediction ignores (braking, turning), adding (a t^2 / 2)^2 to the
    position variance at the closest approach."""
    from scipy.special import ndtr

    t_star, miss, miss_distance = geometry.time_s[pairs], geometry.miss[pairs], geometry.distance_m[pairs]
    radius, dp, distance = geometry.radius[pairs], geometry.relative_position[pairs], geometry.distance_now_m[pairs]
    cov = cov_p + (t_star ** 2)[:, None, None] * cov_v + ((0.5 * accel_sigma * t_star ** 2) ** 2)[:, None, None] \
        * np.eye(2)
    direction = np.where(miss_distance[:, None] > 1e-9, miss / np.maximum(miss_distance, 1e-12)[:, None], [1.0, 0.0])
    sigma = np.sqrt(np.maximum(np.einsum("pi,pij,pj->p", direction, cov, direction), 1e-6))
    probability = np.clip(ndtr((radius - miss_distance) / sigma) - ndtr((-radius - miss_distance) / sigma), 0.0, 1.0)
    line = np.where(distance[:, None] > 1e-9, dp / np.maximum(distance, 1e-12)[:, None], [1.0, 0.0])
    closing_sigma = np.sqrt(np.maximum(np.einsum("pi,pij,pj->p", line, cov_v, line), 0.0))
    return probability, closing_sigma

