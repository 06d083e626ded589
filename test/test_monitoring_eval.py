"""The drift and proxy harnesses' own logic (no detector run): runs as episodes, conditions, verdicts, rank
correlations."""
import pytest

from perception_nodes.errors import ConfigError
from perception_nodes.evaluation.drift import _first_flag, _judge, episodes
from perception_nodes.evaluation.proxies import Condition, rank_correlations


def test_a_long_run_is_episodes_with_their_own_seeds_and_the_bump_carried_on():
    run = episodes("default", 7, 100.0, bump_deg=1.0, bump_at_s=45.0)
    assert [e.offset_s for e in run] == [0.0, 30.0, 60.0, 90.0]
    assert [e.scene.seed for e in run] == [7000, 7001, 7002, 7003]
    assert run[-1].scene.duration_s == pytest.approx(10.0)
    assert run[0].scene.camera_bump is None
    assert run[1].scene.camera_bump.time_s == pytest.approx(15.0) and run[1].scene.camera_bump.yaw_deg == 1.0
    assert run[2].scene.camera_bump.time_s == 0.0 and run[3].scene.camera_bump.camera == "cam1"


def test_verdicts_count_false_flags_and_times_to_flag():
    quiet = [{"t_s": t, "drifted": ["class_mix"] if t == 20 else [], "statistics": {"class_mix": 0.1}}
             for t in (10, 15, 20, 25)]
    night = [{"t_s": t, "drifted": ["detection_score"] + (["image_brightness"] if t >= 15 else []),
              "statistics": {}} for t in (10, 15)]
    bumped = [{"t_s": t, "drifted": ["view_shift_px"] if t >= 75 else [], "statistics": {}} for t in (55, 65, 75)]
    verdict = _judge({"quiet": {"1": quiet}, "night": night, "bumped": bumped}, 60.0, 1.0, "cam1")
    assert verdict["quiet"]["false_flags"] == 1
    assert verdict["night"]["flagged_at_s"] == 15  # the image features, not just any feature
    assert verdict["bumped"]["flagged_after_s"] == 15.0 and verdict["goals_met"] == {
        "quiet_no_flags": False, "night_within_60_s": True, "bumped_within_60_s": True}
    assert _first_flag(bumped, ["view_shift_px"], after_s=80) is None


def test_conditions_parse_and_name_themselves():
    assert Condition.parse("default+imgsz480+noise30") == Condition("default", 480, 30.0, 0.0)
    assert Condition.parse("night").name == "night"
    assert Condition.parse("default+bump2").name == "default+bump2deg"
    with pytest.raises(ConfigError, match="unknown part"):
        Condition.parse("default+fog3")


def test_rank_correlations_pair_each_proxy_with_its_true_rate():
    rows = [{"camera": "c", "fp_rate": v, "fn_rate": 1 - v, "short_lived_ratio": v * 2,
             "vanished_mid_view_ratio": v, "coasting_mid_view_ratio": None, "cross_camera_miss_ratio": 1 - v,
             "shadow_disagreement": 0.5} for v in (0.1, 0.2, 0.3, 0.4, 0.5)]
    out = rank_correlations(rows)
    assert out["short_lived_ratio"]["spearman"] == 1.0 and out["short_lived_ratio"]["against"] == "fp_rate"
    assert out["vanished_mid_view_ratio"]["spearman"] == -1.0
    assert out["cross_camera_miss_ratio"]["spearman"] == 1.0
    assert out["short_lived_ratio"]["within_camera"] == {"mean": 1.0, "per_camera": {"c": 1.0}}
    assert out["coasting_mid_view_ratio"]["spearman"] is None and out["coasting_mid_view_ratio"]["points"] == 0
    assert out["shadow_disagreement"]["spearman"] is None  # constant: undefined, not 0


def _view_stream(seed: int, bump_deg: float | None, seconds: int, camera_index: int = 1):
    """(t, frame) of one camera of the default scene once a second, knocked from the start when ``bump_deg``."""
    from perception_nodes.evaluation.drift import scene_variant
    from perception_nodes.world import World

    world = World(scene_variant("default", seed, float(seconds) + 1.0, bump_deg=bump_deg, bump_at_s=0.0))
    fps = round(1.0 / (world.time_of(1) - world.time_of(0)))
    for second in range(seconds):
        yield float(second), world.render(camera_index, second * fps)[0]


def test_a_stored_reference_view_catches_a_camera_moved_before_start(tmp_path):
    import numpy as np

    from perception_nodes.monitoring.drift import (DriftConfig, DriftMonitor, default_config_path,
                                                   load_view_reference, reduce_frame, save_view_reference,
                                                   view_reference_from_frames)

    # Stored when the camera was calibrated: another seed (other traffic, other parked cars), frames 2 s apart.
    stored = view_reference_from_frames([frame for t, frame in _view_stream(601, None, 20) if t % 2 == 0])
    path = save_view_reference(tmp_path / "cam1.view.png", stored)
    assert np.abs(load_view_reference(path) - stored).max() < 1e-4  # 16-bit PNG round trip

    def flagged(bump_deg, views) -> bool:
        monitor = DriftMonitor(None, DriftConfig.load(default_config_path()), view_references=views)
        for t, frame in _view_stream(602, bump_deg, 16):
            monitor.observe("cam1", t, reduce_frame(frame), np.zeros((0, 6)), frame.shape[1], frame.shape[0])
        return "view_shift_px" in monitor.evaluate(15.0).drifted

    views = {"cam1": load_view_reference(path)}
    assert flagged(1.0, views)  # knocked 1 degree before the graph started: caught against the stored view
    assert not flagged(None, views)  # the same camera unmoved, other traffic than the stored view's: quiet
    assert not flagged(1.0, None)  # without a stored view the moved view is its own reference: missed


def test_a_stored_reference_view_that_is_not_one_is_refused(tmp_path):
    import cv2
    import numpy as np

    from perception_nodes.monitoring.drift import DriftMonitor, load_view_reference, save_view_reference

    cv2.imwrite(str(tmp_path / "colour.view.png"), np.zeros((120, 160, 3), np.uint8))
    (tmp_path / "broken.view.png").write_bytes(b"\x89PNG not really")
    for name in ("colour", "broken", "missing"):
        with pytest.raises(ConfigError):
            load_view_reference(tmp_path / f"{name}.view.png")
    with pytest.raises(ConfigError):
        save_view_reference(tmp_path / "small.view.png", np.zeros((60, 80), np.float32))
    with pytest.raises(ConfigError):
        DriftMonitor(None, view_references={"cam0": np.full((120, 160), np.nan, np.float32)})


def test_view_reference_command_stores_a_view_per_camera_of_a_file_site(tmp_path):
    import cv2
    import numpy as np

    from conftest import last_json, run_cli
    from perception_nodes.monitoring.drift import REDUCED_SIZE, load_view_reference

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(6):
        cv2.imwrite(str(frames / f"{i:03d}.png"), np.full((480, 640, 3), 40 * i, np.uint8))
    run_cli("site", "new", "yard", "--camera", f"gate={frames}", "--dir", str(tmp_path / "sites"))
    result = last_json(run_cli("drift", "view-reference", "--site", str(tmp_path / "sites" / "yard.yaml"),
                               "--frames", "5", "--every-s", "0.01").stdout)
    stored = load_view_reference(result["written"]["gate"])
    assert stored.shape == (REDUCED_SIZE[1], REDUCED_SIZE[0])
    assert abs(float(stored.mean()) - 80 / 255) < 0.01  # the median of 0, 40, 80, 120, 160 grey
    too_many = run_cli("drift", "view-reference", "--site", str(tmp_path / "sites" / "yard.yaml"), "--frames", "50",
                       "--every-s", "0.01", check=False)
    assert too_many.returncode == 1 and "nothing written" in too_many.stderr
