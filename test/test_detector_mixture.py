"""Training mixtures, held-out evaluation scenes and the promotion rule (detection/mixture.py, promotion.py)."""
from pathlib import Path

import numpy as np
import pytest
import yaml

from perception_nodes.detection.mixture import (export_mixture, load_eval_set, load_mixture, parse_seed_range,
                                                scene_table)
from perception_nodes.detection.promotion import goal_check, promote_in_config, promotion_decision
from perception_nodes.errors import ConfigError
from perception_nodes.paths import package_path


def _write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


EVAL = {"frame_step": 30, "tolerance": 0.01, "class_gap": 0.05, "goals": {"day": [0.9, 0.65], "hard": [0.85, 0.55]},
        "scenes": [{"name": "default", "seeds": [200, 201], "trainable_base": True, "group": "day"},
                   {"name": "night", "seeds": "900-901", "group": "hard"}]}


def _mixture(**overrides) -> dict:
    data = {"images": 10, "val_images": 4, "frames_per_seed": 3, "train_seeds": "2000-2010", "val_seeds": "4000-4005",
            "components": [{"name": "plain", "base": "default", "weight": 1},
                           {"name": "dark", "base": "default", "weight": 1, "randomize": {"daylight": [0.0, 0.1]}}]}
    data.update(overrides)
    return data


def test_shipped_mixture_and_evaluation_set_load_and_are_held_out():
    eval_set = load_eval_set()
    mixture = load_mixture(eval_set=eval_set)
    names = {s.name for s in eval_set.scenes}
    assert {"default", "overlap2", "crossing", "night", "night_lamps", "rain", "fog", "day2", "dusk"} <= names
    assert not (set(mixture.train_seeds) | set(mixture.val_seeds)) & eval_set.reserved_seeds
    assert sum(mixture.shares(mixture.images).values()) == mixture.images


def test_mixture_refuses_evaluation_seeds_and_evaluation_only_scenes(tmp_path):
    eval_set = load_eval_set(_write(tmp_path, "eval.yaml", EVAL))
    with pytest.raises(ConfigError, match="evaluation seeds"):
        load_mixture(_write(tmp_path, "a.yaml", _mixture(train_seeds="195-205")), eval_set)
    with pytest.raises(ConfigError, match="evaluation-only"):
        load_mixture(_write(tmp_path, "b.yaml", _mixture(components=[{"name": "n", "base": "night", "weight": 1}])),
                     eval_set)
    with pytest.raises(ConfigError, match="overlap"):
        load_mixture(_write(tmp_path, "c.yaml", _mixture(val_seeds="2005-2006")), eval_set)
    with pytest.raises(ConfigError, match="unknown scene"):
        load_mixture(_write(tmp_path, "d.yaml", _mixture(components=[{"name": "x", "base": "nowhere", "weight": 1}])),
                     eval_set)


def test_shares_balance_components_by_weight():
    mixture = load_mixture(eval_set=load_eval_set())
    shares = mixture.shares(1000)
    weights = {c.name: c.weight for c in mixture.components}
    total = sum(weights.values())
    for name, count in shares.items():
        assert abs(count - 1000 * weights[name] / total) <= 1


def test_export_mixture_writes_balanced_yolo_data(tmp_path):
    eval_set = load_eval_set(_write(tmp_path, "eval.yaml", EVAL))
    mixture = load_mixture(_write(tmp_path, "m.yaml", _mixture()), eval_set)
    counts = export_mixture(mixture, tmp_path / "data", workers=1, log=lambda *_: None)
    assert counts["train"]["images"] == 10 and counts["val"]["images"] == 4
    assert counts["train"]["components"]["plain"]["images"] == 5
    assert counts["train"]["components"]["dark"]["images"] == 5
    assert set(counts["train"]["conditions"]) <= {"plain", "night/clear"}
    labels = list((tmp_path / "data" / "labels" / "train").glob("*.txt"))
    images = list((tmp_path / "data" / "images" / "train").glob("*.jpg"))
    assert len(labels) == len(images) == 10
    for label in labels:
        for line in label.read_text().splitlines():
            cls, *box = line.split()
            assert 0 <= int(cls) < 4 and all(0.0 <= float(v) <= 1.0 for v in box)
    assert yaml.safe_load((tmp_path / "data" / "counts.yaml").read_text())["train"]["images"] == 10


def test_seed_ranges_parse_and_reject_garbage():
    assert parse_seed_range("3-5,9", "x") == [3, 4, 5, 9]
    assert parse_seed_range([1, 2], "x") == [1, 2]
    with pytest.raises(ConfigError):
        parse_seed_range("5-3", "x")
    with pytest.raises(ConfigError):
        parse_seed_range("a-b", "x")


def _result(m50, m5095, car=None, person=None):
    per_class = {}
    if car is not None:
        per_class["car"] = {"map50": car, "map50_95": 0.5}
    if person is not None:
        per_class["person"] = {"map50": person, "map50_95": 0.5}
    return {"map50": m50, "map50_95": m5095, "per_class": per_class, "seeds": [1]}


def test_promotion_needs_every_scene_within_tolerance_and_better_overall():
    current = {"a": _result(0.90, 0.60), "b": _result(0.80, 0.50)}
    better = {"a": _result(0.905, 0.595), "b": _result(0.85, 0.56)}
    decision = promotion_decision(better, current, tolerance=0.01)
    assert decision["promote"] and not decision["reasons"]
    one_worse = {"a": _result(0.88, 0.60), "b": _result(0.95, 0.70)}
    decision = promotion_decision(one_worse, current, tolerance=0.01)
    assert not decision["promote"] and decision["worse_scenes"] == ["a"]
    same = promotion_decision(current, current, tolerance=0.01)
    assert not same["promote"] and "not above" in same["reasons"][0]
    with pytest.raises(ConfigError, match="every scene"):
        promotion_decision({"a": _result(1, 1)}, current, tolerance=0.01)


def test_goal_check_uses_each_scenes_group_and_the_class_gap(tmp_path):
    eval_set = load_eval_set(_write(tmp_path, "eval.yaml", EVAL))
    goals = goal_check({"default": _result(0.95, 0.7, car=0.97, person=0.93),
                        "night": _result(0.86, 0.56, car=0.95, person=0.80)}, eval_set)
    assert goals["default"]["map_met"] and goals["default"]["classes_met"]
    assert goals["night"]["map_met"] and not goals["night"]["classes_met"]  # persons 0.06 below the overall


def test_promote_in_config_changes_only_the_detector_models(tmp_path):
    original = package_path("config/perception.yaml").read_text()
    path = tmp_path / "perception.yaml"
    path.write_text(original)
    promote_in_config(path, "yolov8n-lot-onnx@9", "yolov8n-lot@9")
    data = yaml.safe_load(path.read_text())
    assert data["/**/detector"]["ros__parameters"]["model"] == "yolov8n-lot-onnx@9"
    assert data["/**/detector"]["ros__parameters"]["fallback_model"] == "yolov8n-lot@9"
    changed = [(a, b) for a, b in zip(original.splitlines(), path.read_text().splitlines()) if a != b]
    assert len(changed) == 2 and all("#" in b or "model" in b for _, b in changed)
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**/camera:\n  ros__parameters:\n    model: x\n")
    with pytest.raises(ConfigError, match="no detector"):
        promote_in_config(bad, "a@1", "b@1")


def test_scene_table_shows_the_change_against_a_reference():
    table = scene_table({"a": _result(0.9, 0.6, car=0.91)}, {"a": _result(0.8, 0.65)})
    assert "| a | 1 | 0.900 / 0.600 | 0.910 / 0.500 |" in table and "+0.100 / -0.050" in table


def test_int8_calibration_frames_come_from_the_mixtures_training_sites(tmp_path):
    from perception_nodes.evaluation.detection import mixture_calibration_frames

    eval_set = load_eval_set(_write(tmp_path, "eval.yaml", EVAL))
    mixture = load_mixture(_write(tmp_path, "m.yaml", _mixture()), eval_set)
    frames = mixture_calibration_frames(mixture, 4)
    assert len(frames) == 4 and all(f.ndim == 3 and f.shape[2] == 3 for f in frames)
    # The components in their shares, one training seed each, in order: the first is the plain lot at seed 2000.
    from perception_nodes.world import World, load_scene

    world = World(load_scene("default", seed=2000))
    expected, _ = world.render(2000 % len(world.cameras), (2000 * 37) % world.scene.frame_count)
    assert np.array_equal(frames[0], expected)
    assert not any(np.array_equal(frames[0], f) for f in frames[1:])
