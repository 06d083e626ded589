"""Embedders by name: the colour histogram or a registered learned embedder (models/manifest.yaml)."""
from __future__ import annotations

import numpy as np

from perception_nodes.reid.learned import EmbedderError, OnnxEmbedder

HSV_HIST = "hsv-hist"
EMBEDDER_BACKEND = "onnx-embedder"   # the registry backend of learned embedders


def embed_crops(embedder, crops, boxes) -> np.ndarray:
    """One row per crop (``boxes``: each object's box inside its crop): a learned embedder runs the crops as one
    batch; the colour histogram takes each crop with its box."""
    if hasattr(embedder, "embed_crops"):
        return embedder.embed_crops(list(crops))
    if not len(crops):
        return np.zeros((0, embedder.dim), np.float32)
    return np.vstack([embedder.embed(crop, np.array([box]))[0] for crop, box in zip(crops, boxes)])


def load_embedder(ref: str, threads: int = 1):
    """``hsv-hist`` or a registered embedder ``name[@version]`` (sha256-checked; user-supplied ONNX embedders are
    registered the same way)."""
    if ref in (HSV_HIST, "hsv-hist@1"):
        from perception_nodes.reid.appearance import ColorHistogramEmbedder

        return ColorHistogramEmbedder()
    from perception_nodes.detection.registry import ModelError, ModelRegistry

    try:
        entry, path = ModelRegistry().verified_path(ref)
    except ModelError as exc:
        raise EmbedderError(str(exc)) from exc
    if entry.backend != EMBEDDER_BACKEND:
        raise EmbedderError(f"{entry.ref} is a {entry.backend} model, not an embedder")
    return OnnxEmbedder(path, entry.ref, entry.input_size, threads)
