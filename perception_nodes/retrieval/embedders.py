"""Embedders by name: the colour histogram or a registered learned embedder (models/manifest.yaml)."""
from __future__ import annotations

import logging

import numpy as np

from perception_nodes.reid.learned import EmbedderError, OnnxEmbedder, OpenVINOEmbedder

HSV_HIST = "hsv-hist"
EMBEDDER_BACKEND = "onnx-embedder"   # the registry backend of learned embedders run by ONNX Runtime
OPENVINO_EMBEDDER_BACKEND = "openvino-embedder"   # the same kind of model run by OpenVINO Runtime at a precision
EMBEDDER_BACKENDS = (EMBEDDER_BACKEND, OPENVINO_EMBEDDER_BACKEND)

_log = logging.getLogger(__name__)


def embed_crops(embedder, crops, boxes) -> np.ndarray:
    """One row per crop (``boxes``: each object's box inside its crop): a learned embedder runs the crops as one
    batch; the colour histogram takes each crop with its box."""
    if hasattr(embedder, "embed_crops"):
        return embedder.embed_crops(list(crops))
    if not len(crops):
        return np.zeros((0, embedder.dim), np.float32)
    return np.vstack([embedder.embed(crop, np.array([box]))[0] for crop, box in zip(crops, boxes)])


def load_embedder(ref: str, threads: int = 1, registry=None):
    """``hsv-hist`` or a registered embedder ``name[@version]`` (sha256-checked; user-supplied ONNX embedders are
    registered the same way).

    An ``openvino-embedder`` entry that OpenVINO cannot load (not installed, a compile failure) falls back to ONNX
    Runtime on the same ONNX file, under the entry's own name, and says so in the embedder's ``note`` and the log:
    its rows are the FP32 model's, within the variant's rounding."""
    if ref in (HSV_HIST, "hsv-hist@1"):
        from perception_nodes.reid.appearance import ColorHistogramEmbedder

        return ColorHistogramEmbedder()
    from perception_nodes.detection.registry import ModelError, ModelRegistry

    try:
        entry, path = (registry or ModelRegistry()).verified_path(ref)
    except ModelError as exc:
        raise EmbedderError(str(exc)) from exc
    if entry.backend not in EMBEDDER_BACKENDS:
        raise EmbedderError(f"{entry.ref} is a {entry.backend} model, not an embedder")
    if entry.backend == EMBEDDER_BACKEND:
        return OnnxEmbedder(path, entry.ref, entry.input_size, threads)
    try:
        embedder = OpenVINOEmbedder(path, entry.ref, entry.input_size, threads, entry.precision)
    except EmbedderError as exc:
        if path.suffix != ".onnx":
            raise
        embedder = OnnxEmbedder(path, entry.ref, entry.input_size, threads)
        embedder.note = f"OpenVINO could not run {entry.ref} ({exc}); fell back to ONNX Runtime FP32 on the same file"
    if embedder.note:
        _log.warning(embedder.note)
    return embedder
