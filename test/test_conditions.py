"""World conditions (light, weather, optics, video chain) and randomised sites: world/conditions.py."""
from dataclasses import replace

import numpy as np
import pytest

from perception_nodes.errors import ConfigError
from perception_nodes.world import World, load_scene
from perception_nodes.world.camera import CameraModel
from perception_nodes.world.conditions import (Conditions, Randomization, StreetLamp, lamp_irradiance,
                                               parse_conditions, randomize_scene)
from perception_nodes.world.render import CameraRenderer, _undistort_pixels


def _scene(conditions: Conditions | None, seed: int = 3, **changes):
    return replace(load_scene("default", seed=seed), conditions=conditions, **changes)


def test_plain_scenes_have_no_conditions_and_named_scenes_load():
    assert load_scene("default").conditions is None
    for name in ("dusk", "night_lamps", "rain", "fog", "glare", "day2", "wide_hd"):
        scene = load_scene(name)
        assert scene.conditions is not None, name
    assert load_scene("night_lamps").conditions.lights_on
    assert not load_scene("day2").conditions.lights_on
    assert len(load_scene("night_lamps").conditions.street_lamps) > 4


def test_conditions_frames_are_deterministic_per_seed_and_camera():
    for name in ("night_lamps", "rain"):
        a, _ = World(load_scene(name, seed=5)).render(0, 40)
        b, _ = World(load_scene(name, seed=5)).render(0, 40)
        c, _ = World(load_scene(name, seed=6)).render(0, 40)
        assert np.array_equal(a, b), name
        assert not np.array_equal(a, c), name


def test_ground_truth_keeps_its_meaning_under_weather_and_light():
    """Rain, fog, darkness and compression change pixels, not where the objects are."""
    plain = World(_scene(None))
    harsh = World(_scene(Conditions(daylight=0.05, rain=0.8, fog_density=0.03, motion_blur_px=5, jpeg_quality=40)))
    for frame in (30, 120):
        _, boxes_plain = plain.render(0, frame)
        image, boxes_harsh = harsh.render(0, frame)
        # Head and tail lights add a few pixels to a vehicle's visible area; the boxes are the same.
        assert [(b.global_id, b.class_id, b.bbox) for b in boxes_plain] == \
            [(b.global_id, b.class_id, b.bbox) for b in boxes_harsh]
        assert np.allclose([b.visible_fraction for b in boxes_plain], [b.visible_fraction for b in boxes_harsh],
                           atol=0.01)
        assert image.dtype == np.uint8 and image.shape == (480, 640, 3)


def test_night_is_dark_and_lamps_light_the_ground_below_them():
    cond = Conditions(daylight=0.0, street_lamps=(StreetLamp((0.0, 0.0), 7.0),), exposure_gain_max=1.0)
    below, far = lamp_irradiance(cond, np.array([[0.0, 0.0, 0.0], [40.0, 0.0, 0.0]]))
    assert below > 0.2 and far < 0.02
    assert lamp_irradiance(replace(cond, daylight=1.0), np.zeros((1, 3)))[0] == 0.0  # off by day
    day = World(_scene(Conditions(daylight=1.0, exposure_gain_max=1.0), noise_sigma=0.0))
    night = World(_scene(Conditions(daylight=0.0, exposure_gain_max=1.0), noise_sigma=0.0))
    assert night.render(0, 0)[0].mean() < 0.25 * day.render(0, 0)[0].mean()


def test_auto_exposure_lifts_a_dark_frame_and_its_noise():
    dark = World(_scene(Conditions(daylight=0.0, exposure_gain_max=1.0), noise_sigma=3.0)).render(0, 0)[0]
    lifted = World(_scene(Conditions(daylight=0.0, exposure_gain_max=6.0), noise_sigma=3.0)).render(0, 0)[0]
    assert lifted.mean() > 2 * dark.mean()
    # Noise amplified with the signal: a flat patch of sky/grass varies more.
    assert lifted[:40, :40].std() > dark[:40, :40].std()


def test_headlights_light_the_ground_ahead_of_a_car_at_night():
    scene = replace(load_scene("crossing", seed=1), conditions=Conditions(daylight=0.0, exposure_gain_max=1.0,
                                                                          headlights=False), noise_sigma=0.0)
    off, boxes = World(scene).render(0, 40)
    on, _ = World(replace(scene, conditions=replace(scene.conditions, headlights=True))).render(0, 40)
    cars = [b for b in boxes if b.class_name == "car"]
    assert cars
    assert on.astype(float).sum() > off.astype(float).sum() + 1000


def test_fog_pulls_distant_ground_towards_the_fog_colour():
    clear = World(_scene(Conditions(daylight=1.0), noise_sigma=0.0)).render(0, 0)[0].astype(float)
    foggy = World(_scene(Conditions(daylight=1.0, fog_density=0.05), noise_sigma=0.0)).render(0, 0)[0].astype(float)
    # Contrast (spread of grey levels) drops most near the horizon, i.e. far away.
    top_band = slice(int(0.25 * 480), int(0.4 * 480))
    assert foggy[top_band].std() < 0.6 * clear[top_band].std()


def test_strong_lens_is_inverted_exactly_and_its_canvas_covers_the_image():
    spec = replace(load_scene("wide_hd").cameras[0])
    camera = CameraModel(spec)
    grid = np.stack(np.meshgrid(np.linspace(0, spec.width - 1, 9), np.linspace(0, spec.height - 1, 7)), axis=-1)
    undistorted = _undistort_pixels(grid.astype(np.float32), camera)
    assert np.abs(camera.distort_pixels(undistorted.astype(np.float64)) - grid).max() < 0.05
    renderer = CameraRenderer(load_scene("wide_hd"), camera)
    w, h = renderer.view.size
    assert w > spec.width and h > spec.height          # the canvas holds what the lens bends in
    mx, my = renderer._remap
    assert mx.min() >= 0 and my.min() >= 0 and mx.max() < w and my.max() < h


def test_parse_conditions_rejects_bad_input():
    with pytest.raises(ConfigError, match="unknown keys"):
        parse_conditions({"darkness": 1}, "x")
    with pytest.raises(ConfigError, match="ground"):
        parse_conditions({"ground": "lava"}, "x")
    with pytest.raises(ConfigError, match="daylight"):
        parse_conditions({"daylight": 2}, "x")
    with pytest.raises(ConfigError, match="street_lamps"):
        parse_conditions({"street_lamps": 5}, "x")
    lamps = parse_conditions({"street_lamps": {"spacing_m": 10}}, "x", lanes=(((-20.0, 0.0), (20.0, 0.0)),))
    assert len(lamps.street_lamps) == 4 and all(lamp.position[1] == 4.0 for lamp in lamps.street_lamps)


def test_randomised_sites_are_deterministic_and_stay_in_their_ranges():
    base = load_scene("default")
    ranges = Randomization(daylight=(0.0, 0.2), hfov_deg=(60.0, 90.0), resolutions=((800, 600), (1280, 720)))
    a, b, c = randomize_scene(base, 7, ranges), randomize_scene(base, 7, ranges), randomize_scene(base, 8, ranges)
    assert a == b and a != c
    for scene in (a, c):
        assert 0.0 <= scene.conditions.daylight <= 0.2
        for cam, original in zip(scene.cameras, base.cameras):
            assert (cam.width, cam.height) in ranges.resolutions
            hfov = np.degrees(2 * np.arctan(cam.width / 2 / cam.fx))
            assert 60.0 - 1e-6 <= hfov <= 90.0 + 1e-6
            assert cam.position[:2] == original.position[:2] and cam.yaw_deg == original.yaw_deg
    image, _ = World(a).render(1, 10)
    assert image.shape[:2] == (a.cameras[1].height, a.cameras[1].width)


def test_randomization_ranges_are_validated():
    with pytest.raises(ConfigError, match="unknown keys"):
        Randomization.from_dict({"sunshine": [0, 1]}, "x")
    with pytest.raises(ConfigError, match="low <= high"):
        Randomization.from_dict({"daylight": [0.9, 0.1]}, "x")
    with pytest.raises(ConfigError, match="probability"):
        Randomization.from_dict({"rain_probability": 3}, "x")
    assert Randomization.from_dict({"daylight": [0.1, 0.2]}, "x").daylight == (0.1, 0.2)
