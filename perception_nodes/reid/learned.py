"""A learned appearance embedder (trained here by ``perception train embedder``), run with ONNX Runtime or
OpenVINO Runtime.

Same interface as ``ColorHistogramEmbedder``: ``embed(image_bgr, boxes) -> (N, dim)`` L2-normalised rows, so
the detector node (tracking, localization) and the retrieval node use either. Crops are the box with a 10 %
margin, resized to a square of ``input_size`` pixels, RGB, normalised with the training statistics.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from perception_nodes.errors import ImageFormatError, PerceptionError

CROP_MARGIN = 0.1
MIN_SIDE_PX = 4   # a smaller crop carries no appearance: a zero row, as the colour histogram gives
MEAN = np.array([0.45, 0.45, 0.45], np.float32)
STD = np.array([0.25, 0.25, 0.25], np.float32)


class EmbedderError(PerceptionError):
    """An embedder model is missing, corrupt or not an embedder."""


def margin_bounds(shape, box, margin: float = CROP_MARGIN) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) px of the box grown by ``margin`` of its size on each side, clipped to the image."""
    height, width = shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = margin * (x2 - x1), margin * (y2 - y1)
    return (int(max(0, np.floor(x1 - mx))), int(max(0, np.floor(y1 - my))),
            int(min(width, np.ceil(x2 + mx))), int(min(height, np.ceil(y2 + my))))


def crop_with_margin(image_bgr: np.ndarray, box, margin: float = CROP_MARGIN) -> np.ndarray | None:
    if not np.all(np.isfinite(np.asarray(box, dtype=np.float64))):
        return None
    left, top, right, bottom = margin_bounds(image_bgr.shape, box, margin)
    if right - left < MIN_SIDE_PX or bottom - top < MIN_SIDE_PX:
        return None
    return image_bgr[top:bottom, left:right]


def preprocess(crop_bgr: np.ndarray, size: int) -> np.ndarray:
    """(3, size, size) float32 network input of one crop."""
    resized = cv2.resize(crop_bgr, (size, size), interpolation=cv2.INTER_AREA)
    rgb = resized[:, :, ::-1].astype(np.float32) / 255.0
    return ((rgb - MEAN) / STD).transpose(2, 0, 1)


class _CropEmbedder:
    """What every learned embedder shares: crops with their margin -> preprocessed batches -> L2-normalised rows.
    A runtime supplies ``_infer(batch) -> (N, dim)`` raw outputs."""

    name: str
    input_size: int
    _dim: int
    note = ""   # what the runtime could not honour (a precision this CPU lacks, a fallback), for the log

    @property
    def dim(self) -> int:
        return self._dim

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _run(self, batch: np.ndarray) -> np.ndarray:
        out = np.asarray(self._infer(batch), dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def _probe_dim(self) -> int:
        return int(self._run(np.zeros((1, 3, self.input_size, self.input_size), np.float32)).shape[1])

    def embed_crops(self, crops: list[np.ndarray], boxes=None) -> np.ndarray:
        """Rows for crops that already carry their margin (the retrieval evaluation's sightings)."""
        out = np.zeros((len(crops), self.dim), np.float32)
        usable = [i for i, c in enumerate(crops) if c is not None and c.ndim == 3 and min(c.shape[:2]) >= MIN_SIDE_PX]
        for start in range(0, len(usable), 64):
            chunk = usable[start:start + 64]
            out[chunk] = self._run(np.stack([preprocess(crops[i], self.input_size) for i in chunk]))
        return out

    def embed(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """One L2-normalised row per box (xyxy, px); an all-zero row where the box has no usable pixels."""
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise ImageFormatError(f"need an HxWx3 uint8 BGR image, got {image_bgr.shape} {image_bgr.dtype}")
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        return self.embed_crops([crop_with_margin(image_bgr, b) for b in boxes])


class OnnxEmbedder(_CropEmbedder):
    """An ONNX embedder model: input ``images`` (N, 3, S, S) float32, output ``embeddings`` (N, dim)."""

    runtime = "onnxruntime"
    precision = "fp32"

    def __init__(self, path: str | os.PathLike, name: str, input_size: int = 64, threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - onnxruntime is in requirements.txt
            raise EmbedderError(f"ONNX Runtime is not installed: {exc}") from exc
        path = Path(path)
        if not path.is_file():
            raise EmbedderError(f"embedder model {path} does not exist")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types for corrupt files
            raise EmbedderError(f"embedder model {path} could not be loaded: {exc}") from exc
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs[0].shape) != 2:
            raise EmbedderError(f"{path} is not an embedder (needs one (N, 3, S, S) input and an (N, D) output)")
        self._input = inputs[0].name
        self.name = name
        self.input_size = int(input_size)
        dim = outputs[0].shape[1]
        self._dim = int(dim) if isinstance(dim, int) else self._probe_dim()

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: batch})[0]


OPENVINO_PRECISIONS = ("fp32", "bf16", "int8")
_OPENVINO_HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}   # an int8 model carries its own quantised layers


class OpenVINOEmbedder(_CropEmbedder):
    """The same embedder model (ONNX or OpenVINO IR) on OpenVINO Runtime at an inference precision: ``fp32``,
    ``bf16`` (bfloat16 on CPUs with AVX512-BF16 or AMX; asked of a CPU without them it runs FP32 and says so in
    ``note``) or ``int8`` (an IR that NNCF quantised). Rows mean what the ONNX Runtime embedder's mean, within the
    precision's rounding."""

    runtime = "openvino"

    def __init__(self, path: str | os.PathLike, name: str, input_size: int = 64, threads: int = 1,
                 precision: str = "fp32"):
        try:
            import openvino as ov
        except ImportError as exc:
            raise EmbedderError(f"OpenVINO is not installed ({exc}); pip install openvino") from None
        path = Path(path)
        if not path.is_file():
            raise EmbedderError(f"embedder model {path} does not exist")
        if precision not in OPENVINO_PRECISIONS:
            raise EmbedderError(f"embedder precision {precision!r} is not one of {list(OPENVINO_PRECISIONS)}")
        core = ov.Core()
        self.note = ""
        if precision == "bf16" and "BF16" not in set(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")):
            precision = "fp32"
            self.note = "this CPU has no bf16 support (AVX512-BF16 or AMX): running the embedder in FP32"
        self.precision = precision
        try:
            model = core.read_model(str(path))
            compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": _OPENVINO_HINT[precision],
                                                         "PERFORMANCE_HINT": "LATENCY",
                                                         "INFERENCE_NUM_THREADS": int(threads)})
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError for corrupt or foreign files
            raise EmbedderError(f"embedder model {path} could not be loaded by OpenVINO: {exc}") from None
        if len(compiled.inputs) != 1 or len(compiled.inputs[0].get_partial_shape()) != 4 \
                or len(compiled.outputs[0].get_partial_shape()) != 2:
            raise EmbedderError(f"{path} is not an embedder (needs one (N, 3, S, S) input and an (N, D) output)")
        self._request = compiled.create_infer_request()
        self._compiled = compiled
        self.name = name
        self.input_size = int(input_size)
        self._dim = self._probe_dim()

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return next(iter(self._request.infer({0: batch}).values()))
