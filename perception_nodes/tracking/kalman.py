"""Constant-velocity Kalman filter on image boxes, with dt taken from stamps.

State x = [cx, cy, w, h, vcx, vcy, vw, vh] (px and px/s). Process noise scales
with the box size (a near, large object moves more pixels) and with dt, so a
dropped frame simply means a longer prediction with more uncertainty.
"""
from __future__ import annotations

import numpy as np

def predict_many(X: np.ndarray, P: np.ndarray, dt: float, position_std: float, velocity_std: float) -> None:
    """In place, for N tracks at once: X (N, 8), P (N, 8, 8). F = [[I, dt I], [0, I]] written out blockwise."""
    if dt <= 0 or len(X) == 0:
        return
    h = np.maximum(X[:, 3], 1.0)  # process noise scales with the size before the step
    X[:, :4] += dt * X[:, 4:]
    P12, P21, P22 = P[:, :4, 4:], P[:, 4:, :4], P[:, 4:, 4:]
    P[:, :4, :4] += dt * (P12 + P21) + (dt * dt) * P22
    P[:, :4, 4:] += dt * P22
    P[:, 4:, :4] += dt * P22
    diagonal = np.einsum("nii->ni", P)  # writable view of every diagonal
    diagonal[:, :4] += ((position_std * h) ** 2 * dt)[:, None]
    diagonal[:, 4:] += ((velocity_std * h) ** 2 * dt)[:, None]
    np.maximum(X[:, 2:4], 1.0, out=X[:, 2:4])


def update_many(X: np.ndarray, P: np.ndarray, Z: np.ndarray, measurement_std: float) -> tuple[np.ndarray, np.ndarray]:
    """Kalman update of N tracks with measurements Z (N, 4); returns the new (X, P)."""
    if len(X) == 0:
        return X, P
    h = np.maximum(X[:, 3], 1.0)
    S = P[:, :4, :4] + np.eye(4)[None] * ((measurement_std * h) ** 2)[:, None, None]
    K = np.linalg.solve(S, P[:, :4, :]).transpose(0, 2, 1)  # (N, 8, 4); S and P are symmetric
    X = X + np.einsum("nij,nj->ni", K, Z - X[:, :4])
    P = P - K @ P[:, :4, :]
    return X, P


class BoxKalman:
    def __init__(self, box_cxcywh: np.ndarray, position_std: float = 0.05, velocity_std: float = 0.6,
                 measurement_std: float = 0.05):
        self.position_std = position_std  # per unit height, per sqrt(s)
        self.velocity_std = velocity_std  # per unit height, per s, per sqrt(s)
        self.measurement_std = measurement_std  # per unit height
        self.x = np.zeros(8)
        self.x[:4] = box_cxcywh
        h = max(box_cxcywh[3], 1.0)
        self.P = np.diag(np.square([2 * measurement_std * h] * 4 + [10 * velocity_std * h] * 4))

    def predict(self, dt: float) -> None:
        X, P = self.x[None].copy(), self.P[None].copy()
        predict_many(X, P, dt, self.position_std, self.velocity_std)
        self.x, self.P = X[0], P[0]

    def update(self, box_cxcywh: np.ndarray) -> None:
        X, P = update_many(self.x[None], self.P[None], np.asarray(box_cxcywh, dtype=np.float64)[None],
                           self.measurement_std)
        self.x, self.P = X[0], P[0]

    @property
    def box(self) -> np.ndarray:
        """Current box as cx, cy, w, h."""
        return self.x[:4].copy()

    @property
    def velocity(self) -> np.ndarray:
        return self.x[4:6].copy()
