"""`perception eval detection` and `perception bench detector` end to end (random-init model: the
pipeline and the JSON contract, not accuracy; accuracy is the shipped model's card)."""
import os

import numpy as np
import pytest

from conftest import last_json, run_cli


@pytest.fixture(scope="module")
def models_env(tmp_path_factory):
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    from perception_nodes.detection.registry import ModelEntry, ModelRegistry, sha256_of

    folder = tmp_path_factory.mktemp("registry")
    path = folder / "rand-1.pt"
    YOLO("yolov8n.yaml").save(str(path))
    ModelRegistry(folder / "manifest.yaml").add(ModelEntry("rand", "1", path, sha256_of(path),
                                                           ["car", "truck", "person", "bicycle"], 320))
    return dict(os.environ, PERCEPTION_MODELS_DIR=str(folder))


def test_eval_detection_prints_map_overall_and_per_class(models_env):
    result = last_json(run_cli("eval", "detection", "--model", "rand@1", "--scene", "overlap2", "--seed", "3",
                               "--frame-step", "150", env=models_env, timeout=300).stdout)
    assert result["model"] == "rand@1" and result["images"] == 4
    assert 0.0 <= result["map50"] <= 1.0 and 0.0 <= result["map50_95"] <= result["map50"] + 1e-9
    assert set(result["per_class"]) <= {"car", "truck", "person", "bicycle"} and result["per_class"]
    for values in result["per_class"].values():
        assert set(values) == {"map50", "map50_95"}
    # Not the configured model: its result is saved under its own key, and leaves the configured model's alone.
    results = os.environ["PERCEPTION_RESULTS_DIR"]
    assert os.path.isfile(os.path.join(results, "eval-detection-rand@1.json"))
    assert not os.path.exists(os.path.join(results, "eval-detection.json"))


def test_eval_and_bench_default_to_the_model_the_config_runs(tmp_path):
    from argparse import Namespace

    from perception_nodes.cli.common import resolve_detector_model
    from perception_nodes.graph import configured_detector_model

    from perception_nodes.detection.registry import DEFAULT_DETECTOR_REF

    assert configured_detector_model() == DEFAULT_DETECTOR_REF == "yolov8n-lot-ov-int8@3"  # config/perception.yaml
    params = tmp_path / "params.yaml"
    params.write_text("/**/detector:\n  ros__parameters:\n    model: yolov8n-lot@5\n")
    assert configured_detector_model(str(params)) == "yolov8n-lot@5"
    args = Namespace(model=None)
    entry, _ = resolve_detector_model(args)
    assert entry.ref == "yolov8n-lot-ov-int8@3" and args.model_key == ""
    args = Namespace(model="yolov8n-lot-onnx@5")  # another version: saved apart
    entry, _ = resolve_detector_model(args)
    assert entry.ref == "yolov8n-lot-onnx@5" and args.model_key == "yolov8n-lot-onnx@5"


def test_eval_detection_refuses_unknown_or_tampered_models(models_env, tmp_path):
    proc = run_cli("eval", "detection", "--model", "nope@9", env=models_env, check=False)
    assert proc.returncode == 2 and "not in" in proc.stderr
    path = os.path.join(models_env["PERCEPTION_MODELS_DIR"], "rand-1.pt")
    original = open(path, "rb").read()
    try:
        with open(path, "ab") as handle:
            handle.write(b"tampered")
        proc = run_cli("eval", "detection", "--model", "rand@1", env=models_env, check=False)
        assert proc.returncode == 2 and "sha256" in proc.stderr
    finally:
        with open(path, "wb") as handle:
            handle.write(original)


@pytest.mark.graph
def test_bench_detector_reports_raw_node_and_batched_figures(models_env, domain_id):
    env = dict(models_env, ROS_DOMAIN_ID=str(domain_id))
    result = last_json(run_cli("bench", "detector", "--model", "rand@1", "--frames", "3", env=env, timeout=400).stdout)
    for key in ("node_vs_raw_ratio", "batched_vs_single_ratio", "p50_ms", "p99_ms", "raw_fps", "node_fps",
                "node_batched_fps", "streams_batched_fps", "batched_vs_single_ratio_min", "batched_vs_single_ratio_max"):
        assert key in result and result[key] > 0
    assert result["cpu_streams"] == 1  # a .pt model runs one torch pass per batch (streams are for ONNX on the CPU)
    # Every latency frame went through DDS to the node process and was answered. (No ratio threshold here: tests
    # run with ROS_PYTHON_CHECK_FIELDS=1 and a random-init model that emits hundreds of boxes per frame.)
    assert result["latency_frames_answered"] == 3
    assert result["rounds"] == len(result["per_round"]) == 5
    rounds = result["per_round"]
    # Each ratio is the median of the per-round ratios (both sides of a ratio measured in the same round).
    assert result["node_vs_raw_ratio"] == pytest.approx(np.median([r["node_fps"] / r["raw_fps"] for r in rounds]))
    assert result["batched_vs_single_ratio"] == pytest.approx(
        np.median([r["node_batched_fps"] / r["node_fps"] for r in rounds]))
    assert result["node_frames_dropped"] == sum(r["node_frames_dropped"] for r in rounds)
    # The node's health counters were read around each stream (a report after it ended, so its frames count).
    for r in rounds:
        for stream, cameras in (("node_single", 1), ("node_batched", 4)):
            counts = r[stream]
            assert counts["published"] == 3 * cameras and 0 < counts["processed"] <= counts["received"]
            # Every frame the node received was either run or replaced by a newer one of its camera.
            assert counts["received"] == counts["processed"] + counts["superseded"], counts
        assert r["node_single"]["frames_per_pass"] == 1.0  # one camera: a pass per frame (counters agree)


def test_export_detector_to_onnx_registers_a_model_that_agrees_with_the_pt(tmp_path):
    """The shipped model exported to ONNX (dynamic batch) gives the .pt's boxes through ONNX Runtime."""
    import shutil

    import numpy as np

    from perception_nodes.detection.backend import UltralyticsDetector
    from perception_nodes.detection.registry import ModelRegistry
    from perception_nodes.boxes import iou_matrix
    from perception_nodes.world import World, load_scene

    shipped = ModelRegistry().resolve("yolov8n-lot")
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copyfile(shipped.file, folder / shipped.file.name)
    registry = ModelRegistry(folder / "manifest.yaml")
    registry.add(type(shipped)(**{**shipped.__dict__, "file": folder / shipped.file.name}))
    env = dict(os.environ, PERCEPTION_MODELS_DIR=str(folder))
    result = last_json(run_cli("export", "detector", "--model", shipped.ref, "--no-eval", env=env, timeout=300).stdout)
    assert result["model"] == f"{shipped.name}-onnx@{shipped.version}" and result["file"].endswith(".onnx")
    entry, path = ModelRegistry(folder / "manifest.yaml").verified_path(result["model"])
    assert entry.classes == shipped.classes and entry.metrics == shipped.metrics

    world = World(load_scene("default", seed=200))
    images = [world.render(ci, 40)[0] for ci in range(len(world.cameras))]
    pt = UltralyticsDetector(folder / shipped.file.name, imgsz=shipped.input_size, conf=0.4)
    onnx = UltralyticsDetector(path, imgsz=entry.input_size, conf=0.4)
    batched = onnx.predict(images)  # one pass over all cameras (dynamic batch)
    assert len(batched) == len(images)
    compared = agreed = 0
    for image, from_batch in zip(images, batched):
        ours, theirs = onnx.predict([image])[0], pt.predict([image])[0]
        assert np.allclose(np.sort(from_batch[:, 4]), np.sort(ours[:, 4]), atol=1e-3)  # batch == single
        if len(theirs):
            iou = iou_matrix(theirs[:, :4], ours[:, :4]).reshape(len(theirs), -1)
            agreed += int(np.sum(iou.max(axis=1, initial=0.0) > 0.9))
            compared += len(theirs)
    # Both letterbox to 832x640 here; ONNX Runtime's and torch's arithmetic differ slightly, which moves scores
    # at the threshold.
    assert compared >= 10 and agreed >= 0.85 * compared, (agreed, compared)


def test_eval_all_scenes_compares_two_models_and_applies_the_promotion_rule(models_env, tmp_path):
    import shutil

    import yaml

    from perception_nodes.detection.registry import ModelEntry, ModelRegistry, sha256_of
    from perception_nodes.paths import package_path

    folder = os.path.dirname(models_env["PERCEPTION_MODELS_DIR"] + "/")
    copy = os.path.join(folder, "rand-2.pt")
    shutil.copyfile(os.path.join(folder, "rand-1.pt"), copy)
    ModelRegistry(os.path.join(folder, "manifest.yaml")).add(
        ModelEntry("rand", "2", copy, sha256_of(copy), ["car", "truck", "person", "bicycle"], 320))
    eval_set = tmp_path / "eval.yaml"
    eval_set.write_text(yaml.safe_dump({
        "frame_step": 60, "tolerance": 0.01, "class_gap": 0.05, "goals": {"day": [0.9, 0.65], "hard": [0.85, 0.55]},
        "scenes": [{"name": "crossing", "seeds": [900], "group": "day"},
                   {"name": "rain", "seeds": [900], "group": "hard", "frame_step": 150}]}))
    config = tmp_path / "perception.yaml"
    config.write_text(package_path("config/perception.yaml").read_text())
    result = last_json(run_cli("eval", "detection", "--all-scenes", "--model", "rand@2", "--against", "rand@1",
                               "--eval-set", str(eval_set), "--promote", "--config", str(config),
                               env=models_env, timeout=300).stdout)
    assert set(result["scenes"]) == {"crossing", "rain"} and set(result["reference"]["scenes"]) == {"crossing", "rain"}
    assert result["scenes"]["crossing"]["images"] == 2 and result["scenes"]["rain"]["images"] == 8
    # The same weights score the same on the same frames: not better overall, so the rule keeps the current one.
    assert result["scenes"]["crossing"]["map50"] == result["reference"]["scenes"]["crossing"]["map50"]
    assert result["promotion"]["promote"] is False and "not above" in result["promotion"]["reasons"][-1]
    assert set(result["goals"]) == {"crossing", "rain"} and result["goals"]["rain"]["goal"] == [0.85, 0.55]
    assert "promoted" not in result
    assert config.read_text() == package_path("config/perception.yaml").read_text()


def test_train_resume_without_a_checkpoint_says_what_is_missing(tmp_path):
    proc = run_cli("train", "detector", "--version", "99", "--resume", "--work", str(tmp_path), check=False)
    assert proc.returncode == 2
    assert "nothing to resume" in proc.stderr and "last.pt" in proc.stderr


def test_train_refuses_a_mixture_that_uses_evaluation_seeds(tmp_path):
    import yaml

    mixture = tmp_path / "mixture.yaml"
    mixture.write_text(yaml.safe_dump({"images": 4, "val_images": 2, "train_seeds": "899-901", "val_seeds": "4000",
                                       "components": [{"name": "plain", "base": "default", "weight": 1}]}))
    proc = run_cli("train", "detector", "--version", "99", "--mixture", str(mixture), "--work", str(tmp_path / "w"),
                   check=False)
    assert proc.returncode == 2 and "evaluation seeds" in proc.stderr
    assert not (tmp_path / "w").exists()  # refused before rendering anything
