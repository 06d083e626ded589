"""Calibration health from painted landmarks (pure core): a bumped camera is flagged with about its error,
an unbumped one is not, and what cannot be checked says so."""
import math

import numpy as np
import pytest

from perception_nodes.evaluation.localization import _site_map, camera_geometry
from perception_nodes.localization.calibration_health import (CalibrationHealthParams, CalibrationMonitor,
                                                              CalibrationState, LandmarkAligner)
from perception_nodes.world import World, load_scene


@pytest.fixture(scope="module")
def bumped_world():
    return World(load_scene("parking_bumped", seed=3))


def test_a_bumped_camera_is_flagged_within_seconds_and_the_others_never(bumped_world):
    world = bumped_world
    markings = _site_map(world.scene).markings
    assert markings
    monitor = CalibrationMonitor(markings)
    cameras = [camera_geometry(spec) for spec in world.scene.cameras]
    bump = world.scene.camera_bump
    fps = int(world.scene.fps)
    seconds = [s for s in range(0, 8)] + [s for s in range(int(bump.time_s), int(bump.time_s) + 8)]
    for second in seconds:
        for ci, camera in enumerate(cameras):
            if camera.camera_id not in (bump.camera, "cam0"):
                continue
            image, _ = world.render(ci, second * fps)
            status = monitor.check(camera, image, float(second))
            if second == 7:
                assert status.state == CalibrationState.OK, status  # before the bump: every camera fits
    flagged = monitor.flagged_at
    assert set(flagged) == {bump.camera}
    assert bump.time_s <= flagged[bump.camera] <= bump.time_s + 10.0
    error = monitor.status[bump.camera].error_deg
    assert 0.5 * bump.magnitude_deg < error < 2.5 * bump.magnitude_deg, (error, bump.magnitude_deg)
    assert monitor.angle_sigma_rad(bump.camera) == pytest.approx(math.radians(error))
    assert monitor.angle_sigma_rad("cam0") is None


def test_the_image_shift_of_a_known_rotation_is_recovered(bumped_world):
    world = bumped_world
    markings = _site_map(world.scene).markings
    ci = [c.spec.id for c in world.cameras].index(world.scene.camera_bump.camera)
    camera = camera_geometry(world.scene.cameras[ci])
    aligner = LandmarkAligner(camera, markings)
    image, _ = world.render(ci, 0)
    check = aligner.check(image)
    assert check.valid and check.error_deg < 0.3
    shifted = np.roll(image, (6, -9), axis=(0, 1))  # the paint 9 px left and 6 px down
    check = aligner.check(shifted)
    assert check.valid
    assert check.shift_px[0] == pytest.approx(-9, abs=1.5) and check.shift_px[1] == pytest.approx(6, abs=1.5)
    focal = camera.K[0, 0]
    assert check.error_deg == pytest.approx(math.degrees(math.atan(math.hypot(9, 6) / focal)), abs=0.25)


def test_what_cannot_be_checked_is_reported_not_guessed(bumped_world):
    world = bumped_world
    camera = camera_geometry(world.scene.cameras[0])
    nothing = CalibrationMonitor([])
    status = nothing.check(camera, np.zeros((camera.height, camera.width, 3), np.uint8), 0.0)
    assert status.state == CalibrationState.NOT_ENOUGH_LANDMARKS
    markings = _site_map(world.scene).markings
    aligner = LandmarkAligner(camera, markings)
    wrong_size = aligner.check(np.zeros((10, 10, 3), np.uint8))
    assert not wrong_size.valid and "not the calibrated" in wrong_size.reason
    blank = aligner.check(np.full((camera.height, camera.width, 3), 90, np.uint8))  # no paint to be seen
    assert not blank.valid
    with pytest.raises(ValueError):
        CalibrationHealthParams(window=0).validate()


def test_paint_that_runs_one_way_only_is_no_verdict():
    # The crossing scene's camera sees little but one lane's dashes: along them any shift fits. A verdict from
    # every single check (window 1) would flag it on the first such fit.
    world = World(load_scene("crossing", seed=3))
    camera = camera_geometry(world.scene.cameras[0])
    monitor = CalibrationMonitor(_site_map(world.scene).markings, CalibrationHealthParams(window=1))
    for index in range(0, world.scene.frame_count, 10):
        status = monitor.check(camera, world.render(0, index)[0], index / world.scene.fps)
        assert status.state != CalibrationState.MISALIGNED, status
    assert not monitor.flagged_at
