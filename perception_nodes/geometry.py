"""Rigid transforms, quaternions and camera frames (pure numpy).

Conventions:
- Quaternions are (x, y, z, w), as in geometry_msgs/Quaternion.
- ``Transform(R, t)`` maps points from its child frame into its parent frame:
  ``p_parent = R @ p_child + t`` (the meaning of a TF edge parent -> child).
- REP-103: a body frame is x forward, y left, z up; an optical frame is z forward,
  x right, y down.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Rotation taking optical-frame coordinates into the camera body frame (REP-103).
R_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def quaternion_from_matrix(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) with w >= 0 of a rotation matrix."""
    R = np.asarray(R, dtype=np.float64)
    trace = R[0, 0] + R[1, 1] + R[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def matrix_from_quaternion(q) -> np.ndarray:
    """Rotation matrix of a quaternion (x, y, z, w); normalises its input."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) @ Ry(pitch) @ Rx(roll), URDF's fixed-axis roll-pitch-yaw."""
    cr, sr, cp, sp, cy, sy = math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def rpy_from_matrix(R: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`matrix_from_rpy` (pitch in [-pi/2, pi/2])."""
    pitch = math.asin(max(-1.0, min(1.0, -R[2, 0])))
    if abs(R[2, 0]) < 1 - 1e-9:
        roll = math.atan2(R[2, 1], R[2, 2])
        yaw = math.atan2(R[1, 0], R[0, 0])
    else:  # gimbal lock: fold roll into yaw
        roll = 0.0
        yaw = math.atan2(-R[0, 1], R[1, 1])
    return roll, pitch, yaw


def slerp(q0, q1, fraction: float) -> np.ndarray:
    """Spherical linear interpolation between unit quaternions (shortest arc)."""
    q0 = np.asarray(q0, dtype=np.float64) / np.linalg.norm(q0)
    q1 = np.asarray(q1, dtype=np.float64) / np.linalg.norm(q1)
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 1.0 - 1e-12:
        # (Nearly) the same rotation: sin(theta) ~ 0, the lerp is exact to rounding here.
        q = q0 + fraction * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(dot)
    s = math.sin(theta)
    return (math.sin((1 - fraction) * theta) * q0 + math.sin(fraction * theta) * q1) / s


def camera_body_transform(position, yaw_deg: float, pitch_deg: float, roll_deg: float = 0.0) -> "Transform":
    """parent <- camera body for a mounted camera (REP-103 body: x forward, y left, z up).

    ``yaw`` turns about the parent's z axis (0 looks along +x), positive
    ``pitch`` tilts the view down (a positive rotation about body +y turns +x
    towards -z), ``roll`` turns about the viewing axis. Same convention as a
    URDF joint ``rpy="roll pitch yaw"``.
    """
    R = matrix_from_rpy(math.radians(roll_deg), math.radians(pitch_deg), math.radians(yaw_deg))
    return Transform(R, np.asarray(position, dtype=np.float64))


def camera_mount_angles(body: "Transform") -> tuple[float, float, float]:
    """(yaw_deg, pitch_deg, roll_deg) of a camera body rotation; inverse of camera_body_transform."""
    roll, pitch, yaw = rpy_from_matrix(body.R)
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def rotation_angle_deg(R_a: np.ndarray, R_b: np.ndarray) -> float:
    """Angle of the rotation between two rotation matrices, degrees."""
    cos = (np.trace(R_a.T @ R_b) - 1.0) / 2.0
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


@dataclass(frozen=True)
class Transform:
    """Rigid transform parent <- child: ``p_parent = R @ p_child + t``."""

    R: np.ndarray
    t: np.ndarray

    @staticmethod
    def identity() -> "Transform":
        return Transform(np.eye(3), np.zeros(3))

    @staticmethod
    def from_quaternion(translation, quaternion) -> "Transform":
        return Transform(matrix_from_quaternion(quaternion), np.asarray(translation, dtype=np.float64))

    @property
    def quaternion(self) -> np.ndarray:
        return quaternion_from_matrix(self.R)

    def inverse(self) -> "Transform":
        return Transform(self.R.T, -self.R.T @ self.t)

    def __matmul__(self, other: "Transform") -> "Transform":
        """Compose: (a @ b) maps b's child frame into a's parent frame."""
        return Transform(self.R @ other.R, self.R @ other.t + self.t)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map points (N,3) or (3,) from the child into the parent frame."""
        points = np.asarray(points, dtype=np.float64)
        return points @ self.R.T + self.t

    @staticmethod
    def body_from_optical() -> "Transform":
        """camera body <- optical frame (fixed REP-103 rotation)."""
        return Transform(R_BODY_FROM_OPTICAL, np.zeros(3))

    def matrix(self) -> np.ndarray:
        M = np.eye(4)
        M[:3, :3], M[:3, 3] = self.R, self.t
        return M


def point_in_polygon(point, polygon) -> bool:
    """Whether a 2D point lies inside a simple polygon (even-odd rule; points on an edge may go either way)."""
    x, y = float(point[0]), float(point[1])
    inside = False
    n = len(polygon)
    for i in range(n):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def points_in_polygon(points: np.ndarray, polygon) -> np.ndarray:
    """Vectorised :func:`point_in_polygon` over (N, 2) points."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x, y = points[:, 0], points[:, 1]
    inside = np.zeros(len(points), dtype=bool)
    poly = np.asarray(polygon, dtype=np.float64)
    for (x1, y1), (x2, y2) in zip(poly, np.roll(poly, -1, axis=0)):
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < x_at)
    return inside


def rectangles_first_contact(d0, dv, yaw_i, half_i, yaw_j, half_j, horizon_s: float) -> np.ndarray:
    """The first time in [0, horizon] at which two oriented rectangles moving at constant velocity overlap, inf
    when they do not (0 when they overlap now). Arrays broadcast over leading dimensions: centre offset ``d0`` =
    j - i and relative velocity ``dv`` = v_j - v_i (..., 2), yaws (...), half extents (length, width) (..., 2).
    Separating axes: the rectangles keep their headings, so each of the four axes allows an interval of time and
    the overlap is their intersection."""
    d0, dv = np.asarray(d0, dtype=np.float64), np.asarray(dv, dtype=np.float64)
    yaw_i, yaw_j = np.asarray(yaw_i, dtype=np.float64), np.asarray(yaw_j, dtype=np.float64)
    half_i, half_j = np.asarray(half_i, dtype=np.float64), np.asarray(half_j, dtype=np.float64)
    shape = np.broadcast_shapes(d0.shape[:-1], dv.shape[:-1], yaw_i.shape, yaw_j.shape, half_i.shape[:-1],
                                half_j.shape[:-1])
    axes = []
    for yaw in (yaw_i, yaw_j):
        c, s = np.cos(yaw), np.sin(yaw)
        axes += [np.stack([c, s], axis=-1), np.stack([-s, c], axis=-1)]
    lo = np.zeros(shape)
    hi = np.full(shape, float(horizon_s))
    ci, si = np.cos(yaw_i), np.sin(yaw_i)
    cj, sj = np.cos(yaw_j), np.sin(yaw_j)
    for u in axes:
        reach = (half_i[..., 0] * np.abs(ci * u[..., 0] + si * u[..., 1])
                 + half_i[..., 1] * np.abs(-si * u[..., 0] + ci * u[..., 1])
                 + half_j[..., 0] * np.abs(cj * u[..., 0] + sj * u[..., 1])
                 + half_j[..., 1] * np.abs(-sj * u[..., 0] + cj * u[..., 1]))
        c = np.sum(d0 * u, axis=-1)
        w = np.sum(dv * u, axis=-1)
        still = np.abs(w) < 1e-9
        safe = np.where(still, 1.0, w)
        a, b = (-reach - c) / safe, (reach - c) / safe
        enter, leave = np.minimum(a, b), np.maximum(a, b)
        enter = np.where(still, np.where(np.abs(c) <= reach, -np.inf, np.inf), enter)
        leave = np.where(still, np.where(np.abs(c) <= reach, np.inf, -np.inf), leave)
        lo, hi = np.maximum(lo, enter), np.minimum(hi, leave)
    return np.where(lo <= hi, lo, np.inf)
