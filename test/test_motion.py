"""The map tracker's motion models: the interacting multiple model (cruise / manoeuvre / stopped) against one
constant-velocity filter, on scripted drives with seeded observation noise."""
import math

import numpy as np
import pytest

from perception_nodes.localization.fusion import FusionParams, MapTracker, Observation
from perception_nodes.localization.motion import MODES, Imm, ImmParams, Mode, MotionModel
from perception_nodes.taxonomy import SiteClass

CAR = int(SiteClass.CAR)
PERSON = int(SiteClass.PERSON)
SIGMA = 0.3          # lifting noise of the scripted observations (m), as the trackers' lifts of a car nearby
FPS = 10.0


def _drive(path, model: str, seed: int = 0):
    """Feed one camera's noisy observations of ``path`` (a function t -> (xy, velocity)) at 10 Hz; return the
    per-frame (true velocity, estimated velocity, velocity covariance) and the tracker."""
    tracker = MapTracker(FusionParams(motion_model=model))
    rng = np.random.default_rng(seed)
    out = []
    for k in range(int(12 * FPS)):
        t = k / FPS
        xy, v = path(t)
        z = np.asarray(xy, float) + rng.normal(0.0, SIGMA, 2)
        tracker.update(t, [Observation("cam", 1, z, np.eye(2) * SIGMA ** 2, CAR, 0.9)])
        (obj,) = tracker.snapshot(include_tentative=True)
        out.append((np.asarray(v, float), np.asarray(obj.velocity), np.asarray(obj.cov)[2:, 2:]))
        if model == MotionModel.IMM:
            assert len(tracker.Xm) == len(tracker.Pm) == len(tracker.mu) == len(tracker.objects)
    return out, tracker


def _stop_path(t, stop_at=6.0, speed=3.0):
    """East at ``speed`` until ``stop_at``, then standing (the world's stops are instantaneous)."""
    if t < stop_at:
        return (speed * t, 0.0), (speed, 0.0)
    return (speed * stop_at, 0.0), (0.0, 0.0)


def _turn_path(t, turn_at=6.0, speed=3.0):
    """East at ``speed``, then north from the corner."""
    if t < turn_at:
        return (speed * t, 0.0), (speed, 0.0)
    return (speed * turn_at, speed * (t - turn_at)), (0.0, speed)


def _nees(rows):
    out = []
    for v_true, v, cov in rows:
        dv = v - v_true
        out.append(float(dv @ np.linalg.solve(cov, dv)))
    return np.asarray(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_after_a_stop_the_imm_says_so_sooner_and_is_not_sure_of_the_wrong_velocity(seed):
    imm, _ = _drive(_stop_path, MotionModel.IMM, seed)
    cv, _ = _drive(_stop_path, MotionModel.CONSTANT_VELOCITY, seed)
    after = slice(int(6 * FPS), int(8 * FPS))   # the two seconds after the stop

    def first_slow(rows):
        speeds = [math.hypot(*v) for _, v, _ in rows[after]]
        return next(i for i, s in enumerate(speeds) if s < 0.5 and all(x < 0.8 for x in speeds[i:]))

    assert first_slow(imm) < first_slow(cv)
    assert first_slow(imm) <= 8            # standing within 0.8 s
    # The constant-velocity filter is sure of a velocity it no longer has; the IMM's covariance spans its error.
    nees_imm, nees_cv = _nees(imm[after]), _nees(cv[after])
    assert nees_cv.max() > 20.0
    assert nees_imm.max() < nees_cv.max() / 2


def test_after_a_turn_the_imm_heading_catches_up_sooner():
    def heading_error(rows):
        out = []
        for v_true, v, _ in rows:
            d = math.atan2(v[1], v[0]) - math.atan2(v_true[1], v_true[0])
            out.append(abs(math.degrees((d + math.pi) % (2 * math.pi) - math.pi)))
        return np.asarray(out)

    window = slice(int(6.5 * FPS), int(8 * FPS))   # 0.5 to 2 s after the corner
    errors = {MotionModel.IMM: [], MotionModel.CONSTANT_VELOCITY: []}
    for seed in range(3):
        imm, _ = _drive(_turn_path, MotionModel.IMM, seed)
        cv, _ = _drive(_turn_path, MotionModel.CONSTANT_VELOCITY, seed)
        assert heading_error(imm[window]).mean() < heading_error(cv[window]).mean()
        assert _nees(imm[window]).max() < _nees(cv[window]).max()
        errors[MotionModel.IMM].append(heading_error(imm[window]).mean())
        errors[MotionModel.CONSTANT_VELOCITY].append(heading_error(cv[window]).mean())
    assert np.mean(errors[MotionModel.IMM]) < 0.75 * np.mean(errors[MotionModel.CONSTANT_VELOCITY])


def test_on_a_straight_drive_the_imm_stays_close_and_honest_about_its_doubt():
    # The price of following stops and turns: on a straight drive the IMM's velocity is noisier than the
    # constant-velocity filter's (the stop and manoeuvre hypotheses never die out), but its covariance says so.
    for seed in range(3):
        drive, _ = _drive(lambda t: ((2.5 * t, 0.5 * t), (2.5, 0.5)), MotionModel.IMM, seed)
        settled = drive[int(3 * FPS):]
        rmse = math.sqrt(np.mean([np.sum((v - v_true) ** 2) for v_true, v, _ in settled]))
        assert rmse < 0.8
        assert _nees(settled).mean() < 4.0


def test_a_standing_object_reads_as_standing():
    speeds = {}
    for model in MotionModel.ALL:
        values = []
        for seed in range(3):
            drive, tracker = _drive(lambda t: ((4.0, -2.0), (0.0, 0.0)), model, seed)
            values += [math.hypot(*v) for _, v, _ in drive[int(2 * FPS):]]
        speeds[model] = np.percentile(values, 95)
    assert speeds[MotionModel.IMM] < 0.7 * speeds[MotionModel.CONSTANT_VELOCITY]
    assert speeds[MotionModel.IMM] < 0.5      # below the speed at which the scene calls a vehicle moving
    assert tracker.mu[0, Mode.STOPPED] > max(tracker.mu[0, Mode.CRUISE], tracker.mu[0, Mode.MANOEUVRE])


def test_transition_probabilities_and_moment_matching():
    imm = Imm(ImmParams())
    for dt in (0.0, 0.05, 0.1, 1.0, 10.0):
        T = imm.transition(dt)
        assert T.shape == (MODES, MODES)
        np.testing.assert_allclose(T.sum(axis=1), 1.0)
        assert (T >= 0).all()
    np.testing.assert_allclose(imm.transition(0.0), np.eye(MODES), atol=1e-12)
    assert imm.transition(1.0)[Mode.CRUISE, Mode.STOPPED] > imm.transition(0.1)[Mode.CRUISE, Mode.STOPPED]
    # Two hypotheses 2 m/s apart, equally likely: the combined velocity is between them and its variance
    # holds their spread (1 m/s either side), not only their own covariances.
    Xm = np.zeros((1, MODES, 4))
    Xm[0, Mode.CRUISE, 2] = 2.0
    Pm = np.tile(np.eye(4) * 0.01, (1, MODES, 1, 1))
    mu = np.array([[0.5, 0.0, 0.5]])
    X, P = Imm.combine(Xm, Pm, mu)
    assert X[0, 2] == pytest.approx(1.0)
    assert P[0, 2, 2] == pytest.approx(1.0 + 0.01)
    assert P[0, 3, 3] == pytest.approx(0.01)


def test_merging_and_removal_keep_the_hypotheses_aligned_with_the_objects():
    tracker = MapTracker(FusionParams(max_coast_s=1.0))
    for k in range(45):
        t = k * 0.1
        observations = [Observation("a", 1, np.array([0.0, 0.0]), np.eye(2) * 0.04, CAR, 0.9),
                        Observation("a", 2, np.array([10.0, t]), np.eye(2) * 0.09, CAR, 0.9)]
        if k < 10:   # a person who goes silent (removed after the coast)
            observations.append(Observation("a", 3, np.array([-10.0, 0.0]), np.eye(2) * 0.09, PERSON, 0.9))
        tracker.update(t, observations)
        if k >= 5:   # camera b's first lifts of the first object are 5 m off (a second object), then 1.2 m: merged
            xy = np.array([max(1.2, 5.0 - 0.4 * max(k - 8, 0)), 0.0])
            tracker.update(t + 0.01, [Observation("b", 9, xy, np.eye(2) * 0.04, CAR, 0.9)])
        n = len(tracker.objects)
        assert tracker.X.shape == (n, 4) and tracker.Xm.shape == (n, MODES, 4)
        assert tracker.Pm.shape == (n, MODES, 4, 4) and tracker.mu.shape == (n, MODES)
        np.testing.assert_allclose(tracker.mu.sum(axis=1), 1.0)
        # What is published is the IMM's estimate, for every object that is left
        published = {o.global_id: o for o in tracker.snapshot(include_tentative=True)}
        X, _ = Imm.combine(tracker.Xm, tracker.Pm, tracker.mu)
        for j, obj in enumerate(tracker.objects):
            np.testing.assert_allclose(published[obj.global_id].xy, X[j, :2], atol=1e-9)
            np.testing.assert_allclose(published[obj.global_id].velocity, X[j, 2:], atol=1e-9)
    assert tracker.counters.get("removed", 0) >= 1
    assert tracker.counters.get("merges", 0) >= 1


def test_the_constant_velocity_model_publishes_its_own_estimate():
    tracker = MapTracker(FusionParams(motion_model=MotionModel.CONSTANT_VELOCITY))
    for k in range(10):
        tracker.update(k * 0.1, [Observation("a", 1, np.array([0.3 * k, 0.0]), np.eye(2) * 0.09, CAR, 0.9)])
    (obj,) = tracker.snapshot()
    np.testing.assert_allclose(obj.xy, tracker.X[0, :2])
    np.testing.assert_allclose(obj.velocity, tracker.X[0, 2:])
    assert tracker.Xm.shape == (0, MODES, 4)


def test_velocity_scores_tell_an_honest_covariance_from_an_overconfident_one():
    from perception_nodes.evaluation.localization import velocity_scores

    rng = np.random.default_rng(3)
    cov = np.array([[0.25, 0.05], [0.05, 0.16]])
    truth = np.array([3.0, 0.0])
    errors = rng.multivariate_normal(np.zeros(2), cov, 4000)
    honest = velocity_scores([(truth, truth + e, cov) for e in errors])
    overconfident = velocity_scores([(truth, truth + e, cov / 4) for e in errors])
    assert honest["velocity_nees"]["mean"] == pytest.approx(2.0, abs=0.15)
    assert honest["velocity_nees"]["beyond_95"] == pytest.approx(0.05, abs=0.015)
    assert overconfident["velocity_nees"]["mean"] == pytest.approx(8.0, abs=0.6)
    assert honest["velocity_error_mps"]["n"] == 4000
    # Heading errors only where the object moves; a quarter turn reads 90 degrees whichever way it is wrapped.
    turned = velocity_scores([((0.0, 2.0), (2.0, 0.0), np.eye(2)), ((0.0, 0.2), (0.2, 0.0), np.eye(2)),
                              ((-2.0, 0.0), (0.0, 2.0), np.eye(2))])
    assert turned["heading_error_moving_deg"]["n"] == 2
    assert turned["heading_error_moving_deg"]["p50"] == pytest.approx(90.0)
