"""Motion models of the map tracker: one constant-velocity Kalman filter, or an interacting multiple model.

Objects on a site drive straight, turn into a lane or a stall and stop, often within a second. A single
constant-velocity (CV) filter tuned for straight driving lags a turn or a stop by about a second and, worse for
what reads its output, reports its lagging velocity with the confidence of straight driving: a car that has
just stopped keeps "driving" at 1.5 m/s for a while, sure of itself, into whatever stands ahead. The
interacting multiple model (IMM; Blom and Bar-Shalom 1988; Bar-Shalom, Li and Kirubarajan, *Estimation with
Applications to Tracking and Navigation*, ch. 11) runs one filter per manoeuvre hypothesis on the same state
(x, y, vx, vy) and weighs them by how well each explains the observations:

- ``CRUISE``: constant velocity with the class's ordinary acceleration noise;
- ``MANOEUVRE``: constant velocity with several times that noise (turning, braking, pulling away);
- ``STOPPED``: the object stands still (position held, velocity zero).

Its combined estimate follows a stop or a turn within a few frames, and its combined covariance carries the
spread between the hypotheses: right after a stop, "still moving" and "stopped" are both on the table, and the
velocity covariance says so until the observations decide.

Pure numpy; batched over objects (arrays of shape (n, modes, 4) and (n, modes, 4, 4)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from scipy.linalg import expm


class MotionModel(str):
    """How the map tracker predicts its objects."""

    CONSTANT_VELOCITY = "cv"
    IMM = "imm"

    ALL = (CONSTANT_VELOCITY, IMM)


class Mode(IntEnum):
    """The IMM's manoeuvre hypotheses (indices into its per-mode arrays)."""

    CRUISE = 0
    MANOEUVRE = 1
    STOPPED = 2


MODES = len(Mode)


@dataclass(frozen=True)
class ImmParams:
    """Mode noise and switching of the interacting multiple model."""

    manoeuvre_accel_factor: float = 4.0   # MANOEUVRE's acceleration sigma as a multiple of the class's
    # STOPPED: how far a standing object's position may wander (lifting noise is in the observations, not here)
    stopped_position_sigma_mps: float = 0.05
    stopped_velocity_sigma_mps: float = 0.05
    # Switching rates (per second) between the hypotheses: row = from, column = to. A vehicle cruising starts a
    # manoeuvre or stops now and then; a manoeuvre ends soon, in cruise or a stop; a standing object pulls away.
    rate_cruise_to_manoeuvre: float = 0.5
    rate_cruise_to_stopped: float = 0.3
    rate_manoeuvre_to_cruise: float = 1.0
    rate_manoeuvre_to_stopped: float = 0.5
    rate_stopped_to_cruise: float = 0.2
    rate_stopped_to_manoeuvre: float = 0.3
    # Mode probabilities of a new object (its velocity is unknown)
    initial_probabilities: tuple[float, float, float] = (0.5, 0.2, 0.3)
    min_probability: float = 1e-4         # no hypothesis is ever ruled out for good

    def generator(self) -> np.ndarray:
        """The switching rate matrix (rows sum to zero)."""
        G = np.array([[0.0, self.rate_cruise_to_manoeuvre, self.rate_cruise_to_stopped],
                      [self.rate_manoeuvre_to_cruise, 0.0, self.rate_manoeuvre_to_stopped],
                      [self.rate_stopped_to_cruise, self.rate_stopped_to_manoeuvre, 0.0]])
        G[np.diag_indices(MODES)] = -G.sum(axis=1)
        return G


def inverse_2x2(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and determinant of (..., 2, 2) matrices (closed form; a near-singular one is divided by 1e-12)."""
    a, b, c, d = S[..., 0, 0], S[..., 0, 1], S[..., 1, 0], S[..., 1, 1]
    det = a * d - b * c
    safe = np.where(np.abs(det) > 1e-12, det, 1e-12)
    inv = np.stack([np.stack([d, -b], -1), np.stack([-c, a], -1)], -2) / safe[..., None, None]
    return inv, det


def cv_process_noise(accel_sigma: np.ndarray, dt: float) -> np.ndarray:
    """(n, 4, 4) white-acceleration process noise of a constant-velocity model over ``dt``."""
    q = np.asarray(accel_sigma, dtype=np.float64) ** 2
    dt2, dt3, dt4 = dt * dt, dt ** 3, dt ** 4
    Q = np.zeros((len(q), 4, 4))
    for i, j, v in ((0, 0, dt4 / 4), (1, 1, dt4 / 4), (0, 2, dt3 / 2), (2, 0, dt3 / 2), (1, 3, dt3 / 2),
                    (3, 1, dt3 / 2), (2, 2, dt2), (3, 3, dt2)):
        Q[:, i, j] = v * q
    return Q


class Imm:
    """Interacting multiple model steps over a batch of objects (state x, y, vx, vy)."""

    def __init__(self, params: ImmParams | None = None):
        self.params = params or ImmParams()
        self._generator = self.params.generator()
        self._transition_cache: dict[float, np.ndarray] = {}

    def transition(self, dt: float) -> np.ndarray:
        """(modes, modes) switching probabilities over ``dt`` seconds (row = from)."""
        key = round(dt, 4)
        T = self._transition_cache.get(key)
        if T is None:
            T = expm(self._generator * max(key, 0.0))
            T = np.clip(T, 0.0, None)
            T /= T.sum(axis=1, keepdims=True)
            if len(self._transition_cache) > 256:
                self._transition_cache.clear()
            self._transition_cache[key] = T
        return T

    def initial(self, xy: np.ndarray, position_cov: np.ndarray, speed_sigma: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-mode state (modes, 4), covariance (modes, 4, 4) and probabilities of a new object at ``xy``."""
        p = self.params
        X = np.zeros((MODES, 4))
        X[:, :2] = xy
        P = np.zeros((MODES, 4, 4))
        P[:, :2, :2] = position_cov
        P[:, 2, 2] = P[:, 3, 3] = speed_sigma ** 2
        P[Mode.STOPPED, 2, 2] = P[Mode.STOPPED, 3, 3] = p.stopped_velocity_sigma_mps ** 2
        mu = np.asarray(p.initial_probabilities, dtype=np.float64)
        return X, P, mu / mu.sum()

    def predict(self, Xm: np.ndarray, Pm: np.ndarray, mu: np.ndarray, accel_sigma: np.ndarray, dt: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mix the hypotheses by their switching over ``dt``, then predict each with its own model.

        Returns the per-mode states and covariances at the new time and the predicted mode probabilities."""
        if dt <= 0.0 or len(mu) == 0:
            return Xm.copy(), Pm.copy(), mu.copy()
        T = self.transition(dt)
        c = mu @ T                                            # (n, to)
        c = np.maximum(c, 1e-300)
        w = mu[:, :, None] * T[None] / c[:, None, :]          # (n, from, to): P(from | to)
        X0 = np.einsum("nit,nik->ntk", w, Xm)                 # (n, to, 4)
        d = Xm[:, :, None, :] - X0[:, None, :, :]             # (n, from, to, 4)
        P0 = np.einsum("nit,nikl->ntkl", w, Pm) + np.einsum("nit,nitk,nitl->ntkl", w, d, d)
        F = np.eye(4)
        F[0, 2] = F[1, 3] = dt
        X = X0 @ F.T
        P = F @ P0 @ F.T
        p = self.params
        accel = np.asarray(accel_sigma, dtype=np.float64)
        P[:, Mode.CRUISE] += cv_process_noise(accel, dt)
        P[:, Mode.MANOEUVRE] += cv_process_noise(accel * p.manoeuvre_accel_factor, dt)
        # STOPPED: the position stays, the velocity is zero; what a standing object's velocity was is forgotten.
        stop = Mode.STOPPED
        X[:, stop, :2] = X0[:, stop, :2]
        X[:, stop, 2:] = 0.0
        P_stop = np.zeros_like(P0[:, stop])
        P_stop[:, :2, :2] = P0[:, stop, :2, :2] + (p.stopped_position_sigma_mps * dt) ** 2 * np.eye(2)
        P_stop[:, 2, 2] = P_stop[:, 3, 3] = p.stopped_velocity_sigma_mps ** 2
        P[:, stop] = P_stop
        return X, P, c / c.sum(axis=1, keepdims=True)

    def update(self, Xm: np.ndarray, Pm: np.ndarray, mu: np.ndarray, z: np.ndarray, r: np.ndarray,
               lag: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One position observation per object (z (n, 2), covariance r (n, 2, 2)) into every hypothesis; the
        probabilities move by each hypothesis's likelihood. ``lag``: the observation is this much older than the
        state (out of order): it is shifted forward along each hypothesis's velocity."""
        zm = np.broadcast_to(z[:, None, :], Xm[:, :, :2].shape).copy()
        rm = np.broadcast_to(r[:, None], Pm[:, :, :2, :2].shape).copy()
        if lag > 0:
            zm += Xm[:, :, 2:] * lag
            rm += lag * lag * Pm[:, :, 2:, 2:]
        S_inv, det = inverse_2x2(Pm[:, :, :2, :2] + rm)
        det = np.maximum(det, 1e-12)
        K = Pm[:, :, :, :2] @ S_inv                           # (n, m, 4, 2)
        innovation = zm - Xm[:, :, :2]
        X = Xm + np.einsum("nmij,nmj->nmi", K, innovation)
        P = Pm - K @ Pm[:, :, :2, :]
        P = 0.5 * (P + np.swapaxes(P, -1, -2))
        nis = np.einsum("nmi,nmij,nmj->nm", innovation, S_inv, innovation)
        log_likelihood = -0.5 * nis - 0.5 * np.log(det) - math.log(2.0 * math.pi)
        log_w = np.log(np.maximum(mu, 1e-300)) + log_likelihood
        log_w -= log_w.max(axis=1, keepdims=True)
        w = np.exp(log_w)
        w = np.maximum(w / w.sum(axis=1, keepdims=True), self.params.min_probability)
        return X, P, w / w.sum(axis=1, keepdims=True)

    @staticmethod
    def combine(Xm: np.ndarray, Pm: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The moment-matched state (n, 4) and covariance (n, 4, 4): the hypotheses' spread is part of it."""
        X = np.einsum("nm,nmk->nk", mu, Xm)
        d = Xm - X[:, None, :]
        P = np.einsum("nm,nmkl->nkl", mu, Pm) + np.einsum("nm,nmk,nml->nkl", mu, d, d)
        return X, P
