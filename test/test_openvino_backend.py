"""The OpenVINO detector backend (no torch), runtime variants in the registry, and choosing the default variant."""
import subprocess
import sys

import numpy as np
import pytest

from perception_nodes.detection.selection import Variant, accuracy_violations, choose_default, worst_drop

openvino = pytest.importorskip("openvino", reason="OpenVINO Runtime is installed by make setup")


def test_letterbox_matches_ultralytics_geometry():
    from perception_nodes.detection.openvino_backend import letterbox

    padded, scale, (left, top) = letterbox(np.zeros((480, 640, 3), np.uint8), 832)
    # 640x480 at 1.3 is 832x624: padded to 640 rows (the next multiple of the stride), not to a square
    assert padded.shape == (640, 832, 3) and scale == pytest.approx(1.3) and (left, top) == (0, 8)
    assert padded[0, 0, 0] == 114 and padded[8, 0, 0] == 0  # grey padding above, the image below it
    square, _, (left, top) = letterbox(np.zeros((480, 640, 3), np.uint8), 832, stride=None)
    assert square.shape == (832, 832, 3) and (left, top) == (0, 104)


@pytest.mark.parametrize("height, width", [(480, 640), (720, 1280), (1080, 1920), (600, 500)])
def test_the_input_is_the_one_ultralytics_gives_the_same_dynamic_model(height, width):
    """The OpenVINO backend must feed the network what the ONNX Runtime backend (ultralytics' predictor) feeds it:
    the same pixels at the same shape, or the two backends of one model would not be comparable."""
    from ultralytics.data.augment import LetterBox

    from perception_nodes.detection.openvino_backend import prepare_input

    image = np.random.default_rng(height).integers(0, 255, (height, width, 3), dtype=np.uint8)
    expected = LetterBox(832, auto=True, stride=32)(image=image)
    tensor, _, _ = prepare_input(image, 832)
    assert tensor.shape == (1, 3) + expected.shape[:2]
    assert np.allclose(tensor[0].transpose(1, 2, 0)[:, :, ::-1] * 255.0, expected, atol=1e-3)


def test_postprocess_nms_per_class_and_mapping_back():
    from perception_nodes.detection.openvino_backend import postprocess

    # 4 + 2 classes, 4 anchors (cx, cy, w, h in the letterboxed square): two overlapping class-0 boxes, the same
    # place as class 1, and one below the confidence threshold.
    output = np.zeros((6, 4), np.float32)
    output[:4, 0] = (100, 204, 40, 40)
    output[:4, 1] = (102, 206, 40, 40)
    output[:4, 2] = (100, 204, 40, 40)
    output[:4, 3] = (300, 300, 10, 10)
    output[4, 0], output[4, 1], output[5, 2], output[4, 3] = 0.9, 0.8, 0.7, 0.1
    rows = postprocess(output, scale=2.0, offset=(0, 104), shape=(240, 320), conf=0.25, iou=0.5)
    assert sorted(rows[:, 5].tolist()) == [0.0, 1.0]  # the second class-0 box suppressed, class 1 kept
    box = rows[rows[:, 5] == 0][0]
    assert box[:4].tolist() == pytest.approx([40.0, 40.0, 60.0, 60.0]) and box[4] == pytest.approx(0.9)
    assert postprocess(output, 2.0, (0, 104), (240, 320), 0.25, 0.5, classes=[1])[:, 5].tolist() == [1.0]
    assert postprocess(output, 2.0, (0, 104), (240, 320), 0.95, 0.5).shape == (0, 6)


@pytest.fixture(scope="module")
def shipped_onnx():
    from perception_nodes.detection.registry import ModelRegistry

    return ModelRegistry().verified_path("yolov8n-lot-onnx@3")


def test_openvino_fp32_agrees_with_onnx_runtime_on_the_shipped_model(shipped_onnx):
    from perception_nodes.boxes import iou_matrix
    from perception_nodes.detection.backend import UltralyticsDetector
    from perception_nodes.detection.openvino_backend import OpenVINODetector
    from perception_nodes.world import World, load_scene

    entry, path = shipped_onnx
    world = World(load_scene("default", seed=203))
    frames = [world.render(camera, 40)[0] for camera in range(4)]
    reference = UltralyticsDetector(path, imgsz=entry.input_size, conf=0.25).predict(frames)
    ours = OpenVINODetector(path, imgsz=entry.input_size, conf=0.25, precision="fp32", cpu_streams=2)
    assert ours.streams == 2
    got = ours.predict(frames)  # a batch split over two requests, results in the frames' order
    assert [len(r) for r in got] == [len(r) for r in ours.predict(frames[:1])] + [len(r) for r in got[1:]]
    matched = total = 0
    for a, b in zip(reference, got):
        total += len(a)
        if len(a) and len(b):
            overlap = iou_matrix(a[:, :4], b[:, :4]) * (a[:, 5][:, None] == b[:, 5][None, :])
            matched += int(np.sum(overlap.max(axis=1) >= 0.9))
    assert total >= 10 and matched >= 0.85 * total, (matched, total)
    ours.close()
    with pytest.raises(Exception, match="closed"):
        ours.predict(frames[:1])


def test_the_openvino_path_imports_neither_torch_nor_ultralytics(shipped_onnx):
    code = ("import sys, numpy as np\n"
            "from perception_nodes.detection.registry import ModelRegistry\n"
            "from perception_nodes.detection.runtime import make_detector\n"
            "import dataclasses\n"
            "entry, path = ModelRegistry().verified_path('yolov8n-lot-onnx@3')\n"
            "entry = dataclasses.replace(entry, backend='openvino', precision='fp32')\n"
            "d = make_detector(entry, path, 320)\n"
            "d.predict([np.zeros((48, 64, 3), np.uint8)])\n"
            "print(sorted(m for m in ('torch', 'ultralytics', 'rclpy') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_bf16_on_a_cpu_without_it_runs_fp32_and_says_so(shipped_onnx, monkeypatch):
    from perception_nodes.detection import openvino_backend

    monkeypatch.setattr(openvino_backend, "cpu_capabilities", lambda: {"FP32", "INT8"})
    entry, path = shipped_onnx
    detector = openvino_backend.OpenVINODetector(path, imgsz=320, precision="bf16")
    assert detector.precision == "fp32" and detector.requested_precision == "bf16"
    assert "no bf16" in detector.streams_note
    with pytest.raises(Exception, match="precision"):
        openvino_backend.OpenVINODetector(path, imgsz=320, precision="fp8")


def test_registry_keeps_backend_and_precision(tmp_path, shipped_onnx):
    from perception_nodes.detection.export import register_openvino
    from perception_nodes.detection.registry import ModelEntry, ModelRegistry

    entry, path = shipped_onnx
    registry = ModelRegistry(tmp_path / "manifest.yaml")
    registry.add(ModelEntry(entry.name, entry.version, path, entry.sha256, entry.classes, entry.input_size,
                            {"map50": 0.9, "map50_95": 0.7}))
    variant = register_openvino(entry.ref, "bf16", registry)
    assert variant.ref == "yolov8n-lot-ov-bf16@3" and variant.file == path and variant.sha256 == entry.sha256
    again = ModelRegistry(tmp_path / "manifest.yaml").resolve("yolov8n-lot-ov-bf16@3")
    assert (again.backend, again.precision) == ("openvino", "bf16")
    assert ModelRegistry(tmp_path / "manifest.yaml").resolve(entry.ref).backend == "ultralytics"


# -- which variant runs ----------------------------------------------------------------------------------------------
def _metrics(overall, car, person):
    return {"map50": overall[0], "map50_95": overall[1],
            "per_class": {"car": {"map50": car[0], "map50_95": car[1]}, "person": {"map50": person[0],
                                                                                  "map50_95": person[1]}}}


def test_a_variant_outside_the_tolerance_is_not_chosen_however_fast():
    reference = Variant("onnx@3", _metrics((0.971, 0.746), (0.994, 0.815), (0.946, 0.654)), frames_per_s=12.0)
    fp32 = Variant("ov-fp32@3", _metrics((0.970, 0.749), (0.995, 0.815), (0.945, 0.651)), frames_per_s=13.0)
    bf16 = Variant("ov-bf16@3", _metrics((0.970, 0.746), (0.995, 0.815), (0.940, 0.647)), frames_per_s=22.0)
    chosen = choose_default(reference, [fp32, bf16])
    assert chosen is fp32
    assert bf16.violations == ["person map50 0.940 < 0.946 - 0.005", "person map50_95 0.647 < 0.654 - 0.005"]
    assert choose_default(reference, [bf16], tolerance=0.01) is bf16  # a looser rule would take it
    slower = Variant("ov-fp32@3", fp32.metrics, frames_per_s=11.0)
    assert choose_default(reference, [slower]) is reference


def test_missing_figures_count_as_a_violation():
    reference = _metrics((0.971, 0.746), (0.994, 0.815), (0.946, 0.654))
    assert accuracy_violations({"map50": 0.971, "map50_95": 0.746}, reference) == \
        ["car: no figures measured", "person: no figures measured"]


def test_worst_drop_is_the_largest_fall_the_selection_rule_checks():
    reference = _metrics((0.971, 0.746), (0.994, 0.815), (0.946, 0.654))
    bf16 = _metrics((0.970, 0.746), (0.995, 0.815), (0.940, 0.647))
    assert worst_drop(bf16, reference) == pytest.approx(0.007)          # persons' mAP@0.5:0.95
    better = _metrics((0.980, 0.750), (0.999, 0.820), (0.950, 0.660))
    assert worst_drop(better, reference) == pytest.approx(-0.004)       # every figure up: negative
    assert worst_drop({"map50": 0.971, "map50_95": 0.746}, reference) == pytest.approx(1.0)  # no per-class figures
    # The figure NNCF's accuracy control sees agrees with the rule: within the tolerance iff no violation.
    for metrics in (bf16, better):
        assert (worst_drop(metrics, reference) <= 0.005) == (not accuracy_violations(metrics, reference))


def test_accuracy_control_scores_the_worst_fall_on_any_subset_of_images():
    from perception_nodes.evaluation.detection import AccuracyValidation
    from perception_nodes.detection.openvino_backend import letterbox

    # Two 640x480 images with one car (class 0) and one person (class 2) each.
    boxes = {1: [(100, 120, 220, 200, 0), (400, 100, 430, 180, 2)], 2: [(300, 250, 420, 330, 0), (50, 60, 80, 140, 2)]}
    truth = {"images": [{"id": i, "width": 640, "height": 480, "file_name": str(i)} for i in boxes],
             "annotations": [{"id": 10 * i + j, "image_id": i, "category_id": c, "bbox": [x1, y1, x2 - x1, y2 - y1],
                              "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
                             for i, rows in boxes.items() for j, (x1, y1, x2, y2, c) in enumerate(rows)],
             "categories": [{"id": k, "name": n} for k, n in enumerate(("car", "truck", "person", "bicycle"))]}
    image = np.zeros((480, 640, 3), np.uint8)
    _, scale, (left, top) = letterbox(image, 832)  # as AccuracyValidation letterboxes

    def model(shift_px: float):
        """A stand-in compiled model: the true boxes as raw YOLO output (letterboxed cx, cy, w, h + scores),
        persons shifted right by ``shift_px`` image pixels. It tells the images apart by call order."""
        calls = iter(sorted(boxes))

        def infer(_tensor):
            rows = boxes[next(calls)]
            output = np.zeros((1, 8, len(rows)), np.float32)
            for j, (x1, y1, x2, y2, c) in enumerate(rows):
                dx = shift_px if c == 2 else 0.0
                output[0, :4, j] = [left + scale * ((x1 + x2) / 2 + dx), top + scale * (y1 + y2) / 2,
                                    scale * (x2 - x1), scale * (y2 - y1)]
                output[0, 4 + c, j] = 0.9
            return [output]
        return infer

    check = AccuracyValidation([image, image], truth, 832)
    items = check.items
    check.set_reference(model(0.0))
    assert check(model(0.0), items)[0] == pytest.approx(1.0)           # the reference itself: no fall
    worse, _ = check(model(8.0), items)                                # persons 8 px off: IoU about 0.6
    assert 0.0 < worse < 0.9
    single, _ = check(_one(model(8.0), 2), [(2, image)])               # one image, scored on its own truth
    assert single == pytest.approx(worse, abs=0.05)


def _one(model, image_id):
    """Skip the stand-in model's first image so that it answers for ``image_id`` only."""
    if image_id == 2:
        model(None)
    return model
