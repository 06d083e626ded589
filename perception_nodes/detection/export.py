"""Export a registered detector to ONNX and register the export beside it.

The export keeps the weights' name and version with an ``-onnx`` suffix on the
name (``yolov8n-lot@2`` -> ``yolov8n-lot-onnx@2``): the same model, a different
runtime (ONNX Runtime through ultralytics). The batch dimension is dynamic so
the detector node can batch cameras into one pass.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from perception_nodes.detection.registry import ModelEntry, ModelError, ModelRegistry, sha256_of

ONNX_SUFFIX = "-onnx"


def export_onnx(ref: str, registry: ModelRegistry | None = None, evaluate=None) -> ModelEntry:
    """Export ``ref`` (a .pt entry) to ONNX next to it, evaluate it if asked, and register it."""
    registry = registry or ModelRegistry()
    entry, path = registry.verified_path(ref)
    if path.suffix != ".pt":
        raise ModelError(f"{entry.ref} is {path.suffix}, only .pt models can be exported")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    target = path.with_suffix(".onnx")
    with tempfile.TemporaryDirectory() as scratch:  # ultralytics writes beside its input
        staged = Path(scratch) / path.name
        shutil.copyfile(path, staged)
        try:
            exported = Path(YOLO(str(staged)).export(format="onnx", dynamic=True, imgsz=entry.input_size,
                                                     simplify=True))
        except Exception as exc:  # ultralytics raises many kinds (missing onnx, bad graph)
            raise ModelError(f"exporting {entry.ref} to ONNX failed: {type(exc).__name__}: {exc}") from None
        tmp_target = target.with_suffix(".onnx.tmp")
        shutil.copyfile(exported, tmp_target)
        os.replace(tmp_target, target)  # atomic: a reader never sees half a model
    metrics = evaluate(target) if evaluate else dict(entry.metrics)
    onnx_entry = ModelEntry(entry.name + ONNX_SUFFIX, entry.version, target, sha256_of(target), list(entry.classes),
                            entry.input_size, {k: metrics[k] for k in ("map50", "map50_95") if k in metrics}, entry.card)
    registry.add(onnx_entry)
    return onnx_entry


OPENVINO_INFIX = "-ov-"


def openvino_variant_name(name: str, precision: str) -> str:
    """``yolov8n-lot-onnx`` + bf16 -> ``yolov8n-lot-ov-bf16``."""
    base = name[: -len(ONNX_SUFFIX)] if name.endswith(ONNX_SUFFIX) else name
    return f"{base}{OPENVINO_INFIX}{precision}"


def register_openvino(ref: str, precision: str, registry: ModelRegistry | None = None, evaluate=None) -> ModelEntry:
    """Register the OpenVINO variant of an ONNX entry at an inference precision (fp32 or bf16): the same ONNX file
    (same sha256), read by OpenVINO Runtime and run at that precision; evaluated if asked (``evaluate(path,
    entry)`` -> metrics), so its card holds its own accuracy."""
    registry = registry or ModelRegistry()
    entry, path = registry.verified_path(ref)
    if path.suffix != ".onnx":
        raise ModelError(f"{entry.ref} is {path.suffix}; the OpenVINO variants are made from an ONNX export "
                         f"(perception export detector --model {entry.name.removesuffix(ONNX_SUFFIX)}@{entry.version})")
    if precision not in ("fp32", "bf16"):
        raise ModelError(f"precision {precision!r}: fp32 or bf16 (int8 needs a quantised model)")
    variant = ModelEntry(openvino_variant_name(entry.name, precision), entry.version, path, entry.sha256,
                         list(entry.classes), entry.input_size, {}, entry.card, backend="openvino",
                         precision=precision)
    metrics = evaluate(path, variant) if evaluate else dict(entry.metrics)
    variant.metrics = {k: metrics[k] for k in ("map50", "map50_95", "per_class") if k in metrics}
    registry.add(variant)
    return variant


def _is_quantized_conv(op) -> bool:
    """A convolution NNCF quantised takes its weights through a FakeQuantize or as 8-bit constants (then
    converted and scaled)."""
    node, steps = op.input_value(1).get_node(), 0
    while steps < 4:
        kind = node.get_type_name()
        if kind == "FakeQuantize" or (kind == "Constant" and node.get_element_type().get_type_name() in ("i8", "u8")):
            return True
        if node.get_input_size() == 0:
            return False
        node, steps = node.input_value(0).get_node(), steps + 1
    return False


def save_int8_ir(quantized, source: Path) -> Path:
    """Write an NNCF-quantised OpenVINO model beside ``source`` as ``<stem>-int8.xml`` + ``.bin``, atomically (a
    reader never sees an .xml without its weights); returns the .xml path."""
    import openvino as ov

    target = source.with_name(source.stem + "-int8.xml")
    with tempfile.TemporaryDirectory(dir=source.parent) as scratch:
        staged = Path(scratch) / target.name
        ov.save_model(quantized, str(staged), compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), target.with_suffix(".bin"))  # weights first: the .xml names them
        os.replace(staged, target)
    return target


def quantize_int8(ref: str, calibration_frames: list, registry: ModelRegistry | None = None, evaluate=None,
                  preset: str = "mixed", validation=None, max_drop: float = 0.004) -> ModelEntry:
    """Post-training INT8 quantisation of an ONNX entry with NNCF (OpenVINO backend) on ``calibration_frames``
    (BGR images from training seeds, never evaluation seeds). Written beside it as OpenVINO IR
    (``<stem>-int8.xml`` + ``.bin``, both sha256-checked at load) and registered as ``<base>-ov-int8@V``;
    evaluated if asked.

    With ``validation`` (an ``evaluation.detection.AccuracyValidation`` over labelled frames of validation seeds)
    the quantisation is accuracy-controlled: NNCF keeps the layers whose quantisation costs most in floating point
    until the worst fall of the selection rule's figures on those frames is at most ``max_drop`` (below the rule's
    tolerance, so there is room for the held-out seeds)."""
    registry = registry or ModelRegistry()
    entry, path = registry.verified_path(ref)
    if path.suffix != ".onnx":
        raise ModelError(f"{entry.ref} is {path.suffix}; quantise its ONNX export")
    try:
        import nncf
        import numpy as np
        import openvino as ov
    except ImportError as exc:
        raise ModelError(f"INT8 quantisation needs nncf and openvino ({exc}); pip install nncf openvino") from None
    from perception_nodes.detection.openvino_backend import prepare_input

    def transform(image):
        return prepare_input(image, entry.input_size)[0]

    presets = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}
    # The head's box decoding (distribution focal loss, anchor arithmetic) and the class sigmoid stay in float:
    # quantised, they shift every box.
    ignored = nncf.IgnoredScope(types=["Sigmoid", "Softmax", "Add", "Subtract", "Multiply", "Divide"], validate=False)
    calibration = nncf.Dataset(list(calibration_frames), transform)
    restored = []
    try:
        model = ov.Core().read_model(str(path))
        if validation is None:
            quantized = nncf.quantize(model, calibration, preset=presets[preset],
                                      subset_size=len(calibration_frames), ignored_scope=ignored)
        else:
            from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

            # The FP32 model's detections are the reference. NNCF validates in FP32 too; this CPU's default
            # inference precision may be bf16.
            validation.set_reference(ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}))
            items = validation.items
            quantized = nncf.quantize_with_accuracy_control(
                model, calibration, nncf.Dataset(items, lambda item: transform(item[1])), validation,
                max_drop=max_drop,
                preset=presets[preset], subset_size=len(calibration_frames), ignored_scope=ignored,
                advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                    ranking_subset_size=min(len(items), 40), num_ranking_workers=1))
            restored = [op.get_friendly_name() for op in quantized.get_ops()
                        if op.get_type_name() == "Convolution" and not _is_quantized_conv(op)]
    except Exception as exc:  # noqa: BLE001 - NNCF and OpenVINO raise many kinds
        raise ModelError(f"quantising {entry.ref} failed: {type(exc).__name__}: {exc}") from None
    if validation is not None:
        convolutions = sum(op.get_type_name() == "Convolution" for op in quantized.get_ops())
        print(f"[export] accuracy control kept {len(restored)} of {convolutions} convolutions in floating point"
              + (f": {', '.join(restored)}" if restored else ""))
    target = save_int8_ir(quantized, path)
    variant = ModelEntry(openvino_variant_name(entry.name, "int8"), entry.version, target, sha256_of(target),
                         list(entry.classes), entry.input_size, {}, entry.card, backend="openvino", precision="int8",
                         extra_files={target.with_suffix(".bin").name: sha256_of(target.with_suffix(".bin"))})
    metrics = evaluate(target, variant) if evaluate else {}
    variant.metrics = {k: metrics[k] for k in ("map50", "map50_95", "per_class") if k in metrics}
    registry.add(variant)
    return variant
