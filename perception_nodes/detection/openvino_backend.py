"""YOLOv8 detection on OpenVINO Runtime, without torch or ultralytics: letterbox, inference, NMS in NumPy/OpenCV.

``OpenVINODetector(weights, imgsz, conf, iou, precision)`` reads an ONNX file (or OpenVINO IR ``.xml``) and
compiles it for the CPU with an inference precision: ``fp32``, ``bf16`` (OpenVINO runs the network in bfloat16
on CPUs with AVX512-BF16 or AMX; asked of a CPU without them it runs FP32 and says so in ``streams_note``), or
``int8`` for a model NNCF already quantised. Pre- and post-processing follow ultralytics' predictor for exported
models (letterbox to fit ``imgsz`` with grey 114 padding to a multiple of the stride, RGB, 0..1; per-class NMS;
boxes mapped back and clipped), so its rows mean what the ultralytics backend's mean. Like the ONNX Runtime backend, a single
image runs on one all-cores request and a batch is split over ``cpu_streams`` requests running side by side.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from perception_nodes.detection.registry import ModelError

PRECISIONS = ("fp32", "bf16", "int8")
_HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # an int8 model carries its own quantised layers
MAX_WH = 7680  # class offset for per-class NMS in one call (ultralytics' value)


def cpu_capabilities() -> set[str]:
    """OpenVINO's optimisation capabilities of this CPU (e.g. {'FP32', 'BF16', 'INT8'})."""
    import openvino as ov

    return set(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


STRIDE = 32  # YOLOv8's largest feature stride: an input side must be a multiple of it


def letterbox(image: np.ndarray, size: int, stride: int | None = STRIDE) -> tuple[np.ndarray, float, tuple[int, int]]:
    """``image`` scaled to fit a ``size`` x ``size`` square, then padded with grey 114 (centred) to the smallest
    multiple of ``stride`` on each side, as ultralytics' own predictor does for a PyTorch or dynamic-shape ONNX
    model (a 640x480 frame at 832 becomes 832x640, not 832x832: 23 % fewer pixels to run, and the same input the
    ONNX Runtime backend gives the same model); ``stride=None`` pads to the full square. Returns (padded, scale,
    (left, top))."""
    import cv2

    height, width = image.shape[:2]
    scale = min(size / height, size / width)
    new_w, new_h = int(round(width * scale)), int(round(height * scale))
    pad_w, pad_h = size - new_w, size - new_h
    if stride:
        pad_w, pad_h = pad_w % stride, pad_h % stride
    pad_w, pad_h = pad_w / 2, pad_h / 2
    if (new_w, new_h) != (width, height):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(pad_h - 0.1)), int(round(pad_h + 0.1))
    left, right = int(round(pad_w - 0.1)), int(round(pad_w + 0.1))
    padded = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return padded, scale, (left, top)


def prepare_input(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """A BGR frame -> the model's input tensor (1, 3, H, W), RGB, float32 in 0..1, letterboxed; with the scale and
    offset that map its boxes back to the frame (``postprocess``)."""
    padded, scale, offset = letterbox(image, size)
    tensor = np.ascontiguousarray(padded[:, :, ::-1].transpose(2, 0, 1), dtype=np.float32)[None]
    tensor /= 255.0
    return tensor, scale, offset


def postprocess(output: np.ndarray, scale: float, offset: tuple[int, int], shape: tuple[int, int], conf: float,
                iou: float, classes: list[int] | None = None, max_det: int = 300) -> np.ndarray:
    """One image's raw YOLOv8 output (4 + classes, anchors) -> rows [x1, y1, x2, y2, score, class] in the
    image's pixels, after per-class NMS."""
    import cv2

    scores_all = output[4:]
    class_ids = np.argmax(scores_all, axis=0)
    scores = scores_all[class_ids, np.arange(scores_all.shape[1])]
    keep = scores > conf
    if classes:
        keep &= np.isin(class_ids, classes)
    if not np.any(keep):
        return np.zeros((0, 6))
    cx, cy, w, h = output[0, keep], output[1, keep], output[2, keep], output[3, keep]
    scores, class_ids = scores[keep], class_ids[keep]
    order = np.argsort(-scores)[:30000]  # ultralytics' max_nms
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)[order]
    scores, class_ids = scores[order], class_ids[order]
    shifted = boxes + (class_ids * MAX_WH)[:, None]  # per-class NMS in one pass
    xywh = np.column_stack([shifted[:, :2], shifted[:, 2:] - shifted[:, :2]])
    kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(float).tolist(), float(conf), float(iou))
    kept = np.asarray(kept, dtype=np.int64).reshape(-1)[:max_det]
    boxes = boxes[kept]
    boxes[:, [0, 2]] = (boxes[:, [0, 2]] - offset[0]) / scale
    boxes[:, [1, 3]] = (boxes[:, [1, 3]] - offset[1]) / scale
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, shape[1])
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, shape[0])
    return np.column_stack([boxes, scores[kept], class_ids[kept]]).astype(np.float64)


class OpenVINODetector:
    """The detector backend interface (predict, warmup, close, streams) on OpenVINO Runtime."""

    def __init__(self, weights: str | os.PathLike, imgsz: int = 640, conf: float = 0.25, iou: float = 0.7,
                 classes: list[int] | None = None, precision: str = "fp32", max_det: int = 300,
                 cpu_streams: int = 1):
        try:
            import openvino as ov
        except ImportError as exc:
            raise ModelError(f"OpenVINO is not installed ({exc}); pip install openvino") from None
        self.path = Path(weights)
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} does not exist")
        if precision not in PRECISIONS:
            raise ModelError(f"precision {precision!r} is not one of {list(PRECISIONS)}")
        self.imgsz, self.conf, self.iou, self.max_det = int(imgsz), float(conf), float(iou), int(max_det)
        self.classes = list(classes) if classes else None
        self.streams_note = ""
        capabilities = cpu_capabilities()
        requested = precision
        if precision == "bf16" and "BF16" not in capabilities:
            precision = "fp32"
            self.streams_note = "this CPU has no bf16 support (AVX512-BF16 or AMX): running the model in FP32"
        self.precision, self.requested_precision = precision, requested
        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
        except Exception as exc:  # OpenVINO raises RuntimeError for a corrupt file
            raise ModelError(f"OpenVINO cannot read {self.path}: {exc}") from None
        from perception_nodes.detection.backend import available_cores

        cores = available_cores()
        hint = {"INFERENCE_PRECISION_HINT": _HINT[precision]}
        try:
            self._latency = core.compile_model(model, "CPU", {**hint, "PERFORMANCE_HINT": "LATENCY",
                                                              "INFERENCE_NUM_THREADS": cores})
            self._single = self._latency.create_infer_request()
            self._queue = None
            if cpu_streams > 1:
                throughput = core.compile_model(model, "CPU", {**hint, "NUM_STREAMS": int(cpu_streams),
                                                               "INFERENCE_NUM_THREADS": cores})
                self._throughput = throughput
                self._queue = ov.AsyncInferQueue(throughput, int(cpu_streams))
        except Exception as exc:  # noqa: BLE001 - a model OpenVINO cannot compile is a model that does not load
            raise ModelError(f"OpenVINO cannot compile {self.path} ({precision}): {exc}") from None
        self._streams = int(cpu_streams) if cpu_streams > 1 else 1
        self.closed = False

    @property
    def streams(self) -> int:
        return self._streams

    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        if self.closed:
            raise ModelError(f"{self.path.name}: the detector was closed")
        if not images:
            return []
        prepared = [prepare_input(image, self.imgsz) for image in images]
        if len(images) == 1 or self._queue is None:
            outputs = []
            for tensor, _, _ in prepared:
                result = self._single.infer({0: tensor})
                outputs.append(next(iter(result.values()))[0])
        else:
            outputs = [None] * len(images)

            def done(request, index):
                outputs[index] = request.get_output_tensor(0).data[0].copy()

            self._queue.set_callback(done)
            for index, (tensor, _, _) in enumerate(prepared):
                self._queue.start_async({0: tensor}, index)
            self._queue.wait_all()
        return [postprocess(output, scale, offset, image.shape[:2], self.conf, self.iou, self.classes, self.max_det)
                for output, (_, scale, offset), image in zip(outputs, prepared, images)]

    def warmup(self, width: int = 640, height: int = 480) -> None:
        frames = [np.zeros((height, width, 3), np.uint8)] * max(1, self._streams)
        self.predict(frames[:1])
        if self._streams > 1:
            self.predict(frames)

    def close(self) -> None:
        self._queue = None
        self._single = None
        self._latency = None
        self._throughput = None
        self.closed = True
