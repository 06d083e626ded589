"""Detection core without ROS: registry, dataset/ground-truth policy, COCO evaluation."""
import numpy as np
import pytest
import yaml

from perception_nodes.detection.dataset import Split, coco_evaluate, coco_ground_truth, export_yolo, to_coco_detections
from perception_nodes.detection.registry import ModelEntry, ModelError, ModelRegistry, sha256_of
from perception_nodes.detection.runtime import DetectorRuntime, LoadedModel, RuntimeConfig, agreement
from perception_nodes.errors import ConfigError
from perception_nodes.world import World, load_scene


def _registry(tmp_path, versions=("1", "2", "10")):
    registry = ModelRegistry(tmp_path / "manifest.yaml")
    for version in versions:
        path = tmp_path / f"m-{version}.pt"
        path.write_bytes(f"weights {version}".encode())
        registry.add(ModelEntry("m", version, path, sha256_of(path), ["car"], 640))
    return registry


def test_registry_resolves_versions_and_verifies_sha256(tmp_path):
    registry = _registry(tmp_path)
    reloaded = ModelRegistry(tmp_path / "manifest.yaml")
    assert reloaded.resolve("m").version == "10"  # highest version, numerically
    entry, path = reloaded.verified_path("m@2")
    assert entry.ref == "m@2" and path.read_bytes() == b"weights 2"
    (tmp_path / "m-2.pt").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="sha256"):
        reloaded.verified_path("m@2")
    (tmp_path / "m-1.pt").unlink()
    with pytest.raises(ModelError, match="missing"):
        reloaded.verified_path("m@1")
    with pytest.raises(ModelError, match="not in"):
        registry.resolve("other@1")


def test_malformed_manifest(tmp_path):
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump({"models": [{"name": "x"}]}))
    with pytest.raises(ConfigError, match="needs name, version"):
        ModelRegistry(tmp_path / "manifest.yaml")


def test_yolo_export_labels_match_ground_truth(tmp_path):
    counts = export_yolo(load_scene("overlap2"), tmp_path, [Split("train", [5]), Split("val", [6])], frame_step=100)
    assert counts["train"]["images"] == 6 and counts["val"]["images"] == 6  # 3 frames x 2 cameras
    data = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert data["names"] == {0: "car", 1: "truck", 2: "person", 3: "bicycle"}
    label = (tmp_path / "labels" / "train" / "s5_cam_east_f00100.txt").read_text().split("\n")
    world = World(load_scene("overlap2", seed=5))
    _, boxes = world.render(1, 100)
    expected = [b for b in boxes if b.visible_fraction >= 0.3 and b.bbox[3] - b.bbox[1] >= 6]
    rows = [list(map(float, line.split())) for line in label if line]
    assert len(rows) == len(expected) > 0
    for row, box in zip(rows, expected):
        assert row[0] == box.class_id
        assert row[1] * 640 == pytest.approx((box.bbox[0] + box.bbox[2]) / 2, abs=0.01)


def test_coco_evaluation_of_perfect_and_shifted_detections():
    world = World(load_scene("overlap2"))
    gt, keys = coco_ground_truth(world, [0, 50, 100])
    perfect = []
    for ann in gt["annotations"]:
        if not ann["iscrowd"]:
            x, y, w, h = ann["bbox"]
            perfect += to_coco_detections(ann["image_id"], np.array([[x, y, x + w, y + h, 0.9, ann["category_id"]]]))
    result = coco_evaluate(gt, perfect)
    assert result["map50"] == pytest.approx(1.0) and result["map50_95"] == pytest.approx(1.0)
    assert set(result["per_class"]) <= {"car", "truck", "person", "bicycle"}
    shifted = [{**d, "bbox": [d["bbox"][0] + d["bbox"][2] * 0.3, *d["bbox"][1:]]} for d in perfect]
    worse = coco_evaluate(gt, shifted)
    assert worse["map50_95"] < 0.7 and coco_evaluate(gt, [])["map50"] == 0.0


class _FakeDetector:
    def __init__(self, delay_s=0.0, rows=None):
        self.delay_s, self.rows = delay_s, rows if rows is not None else np.array([[0, 0, 10, 10, 0.9, 0]])

    def predict(self, images):
        import time

        time.sleep(self.delay_s)
        return [self.rows.copy() for _ in images]


def test_runtime_falls_back_when_primary_fails_or_is_slow():
    loads = []

    def loader(ref, imgsz):
        loads.append((ref, imgsz))
        if ref == "broken@1":
            raise ModelError("sha256 mismatch")
        return LoadedModel(f"{ref}" + (f"@{imgsz}" if imgsz else ""), imgsz or 640, ["car"],
                           _FakeDetector(0.02 if not imgsz else 0.0))

    runtime = DetectorRuntime(RuntimeConfig(model="broken@1", fallback_model="small@1"), loader, log=lambda m: None)
    runtime.start()
    assert runtime.primary.ref == "small@1" and runtime.fell_back and "failed to load" in runtime.fallback_reason
    slow = DetectorRuntime(RuntimeConfig(model="big@1", fallback_imgsz=320, latency_budget_ms=5.0, budget_frames=3),
                           loader, log=lambda m: None)
    slow.start()
    switched = False
    for _ in range(10):
        _, results, _ = slow.infer([np.zeros((4, 4, 3), np.uint8)])
        switched = slow.record_latency(20.0) or switched
    # The fallback loads on the runtime's loader thread while big@1 keeps serving.
    assert switched and slow.wait_for_fallback(10.0)
    assert slow.primary.ref == "big@1@320" and slow.primary.imgsz == 320
    with pytest.raises(ModelError):
        DetectorRuntime(RuntimeConfig(model="broken@1"), loader, log=lambda m: None).start()


def test_shadow_agreement():
    a = np.array([[0, 0, 10, 10, 0.9, 0], [20, 20, 30, 30, 0.8, 1]])
    assert agreement(a, a) == 1.0
    assert agreement(a, a[:1]) == pytest.approx(2 / 3)
    b = a.copy()
    b[1, 5] = 2  # same place, other class: no agreement
    assert agreement(a, b) == pytest.approx(0.5)
    assert agreement(np.zeros((0, 6)), np.zeros((0, 6))) == 1.0


def test_a_stricter_policy_turns_small_objects_into_ignore_regions_only():
    from perception_nodes.detection.dataset import EvalPolicy

    world = World(load_scene("default", seed=200))
    loose, _ = coco_ground_truth(world, [0, 60])
    strict, _ = coco_ground_truth(world, [0, 60], policy=EvalPolicy(min_height_px=40))
    assert len(loose["annotations"]) == len(strict["annotations"])  # same objects, only their flag differs
    scored = [a for a in strict["annotations"] if not a["iscrowd"]]
    assert 0 < len(scored) < sum(1 for a in loose["annotations"] if not a["iscrowd"])
    assert all(a["bbox"][3] >= 40 for a in scored)


def test_shadow_time_is_not_counted_in_the_primary_budget():
    def loader(ref, imgsz):
        return LoadedModel(ref, 640, ["car"], _FakeDetector(0.05 if ref == "shadow@1" else 0.0))

    runtime = DetectorRuntime(RuntimeConfig(model="fast@1", fallback_imgsz=320, latency_budget_ms=20.0,
                                            budget_frames=2, shadow_model="shadow@1", shadow_fraction=1.0),
                              loader, log=lambda m: None)
    runtime.start()
    for _ in range(8):
        runtime.infer([np.zeros((4, 4, 3), np.uint8)])
        assert runtime.last_shadow_ms >= 50.0 and runtime.last_primary_ms < 20.0
        assert not runtime.record_latency(runtime.last_primary_ms)
    assert not runtime.fell_back and runtime.primary.ref == "fast@1" and len(runtime.shadow_agreement) == 8


def test_a_replaced_model_is_closed_after_the_pass_using_it():
    closed = []

    class Closable(_FakeDetector):
        def __init__(self, name):
            super().__init__(0.0)
            self.name = name

        def close(self):
            closed.append(self.name)

    runtime = DetectorRuntime(RuntimeConfig(model="a@1"), lambda ref, imgsz: LoadedModel(ref, 640, ["car"],
                                                                                         Closable(ref)),
                              log=lambda m: None)
    runtime.start()
    assert runtime.swap_async("b@1").result(10.0).ref == "b@1"
    assert closed == ["a@1"] and runtime.closed_models == 1
    runtime.close()
    assert closed == ["a@1", "b@1"]


def test_a_class_map_the_model_cannot_satisfy_refuses_the_model():
    runtime = DetectorRuntime(RuntimeConfig(model="a@1", class_map=("lorry=truck",)),
                              lambda ref, imgsz: LoadedModel(ref, 640, ["car"], _FakeDetector()), log=lambda m: None)
    with pytest.raises(ModelError, match="does not have"):
        runtime.start()


def test_fallback_chain_tries_each_model_in_order():
    """OpenVINO -> ONNX Runtime -> torch: the first that loads serves, and the reason is kept."""
    tried = []

    def loader(ref, imgsz):
        tried.append(ref)
        if ref in ("ov@1", "onnx@1"):
            raise ModelError(f"{ref} cannot load here")
        return LoadedModel(ref, 640, ["car"], _FakeDetector())

    runtime = DetectorRuntime(RuntimeConfig(model="ov@1", fallback_model="onnx@1, pt@1"), loader, log=lambda m: None)
    runtime.start()
    assert tried == ["ov@1", "onnx@1", "pt@1"] and runtime.primary.ref == "pt@1"
    assert runtime.fell_back and "ov@1 cannot load here" in runtime.fallback_reason and runtime.fallbacks == 1
