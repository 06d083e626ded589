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
