"""Ultralytics YOLO inference backend (.pt, and .onnx through ultralytics).

``predict(images)`` runs one batched forward pass and returns, per image, rows
[x1, y1, x2, y2, score, class] in that image's pixel coordinates.

CPU streams (``cpu_streams`` > 1, ONNX models on the CPU): a batch is split over
that many ONNX Runtime sessions that run side by side, each with its share of
the cores, instead of one session spreading every layer of one pass over all
cores. On a CPU a batch of 4 costs one session about 4 single passes (measured
ad hoc with ONNX Runtime directly: 110-118 ms per 832 px image at batch 1,
109-114 at batch 4 on 2 cores), because the cores already split each layer of a single image and then wait for
each other after every layer; two single-core sessions side by side cost 93-112
ms per image on an idle machine and far less than one 2-thread session while
another process competes for the cores (141-166 vs 258-303 ms during a build).
That is the CPU's form of batching (OpenVINO calls it throughput streams). A
single image still runs on the all-cores session, so one camera's latency is
unchanged. Each stream is its own ultralytics model: ultralytics predictors are
not shareable between threads.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from perception_nodes.detection.registry import ModelError


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_cpu_streams(requested: int, cameras: int, cores: int | None = None) -> int:
    """Streams to run: ``requested``, or for 0 (auto) one per core but no more than the cameras in a batch."""
    if requested < 0:
        raise ValueError(f"cpu_streams must be >= 0 (0: auto), got {requested}")
    if requested > 0:
        return int(requested)
    return max(1, min(available_cores() if cores is None else int(cores), max(1, int(cameras))))


def _onnx_session_holder(model):
    """The object whose ``session`` attribute is the ONNX Runtime session of a primed ultralytics model."""
    backend = getattr(model.predictor, "model", None)
    for holder in (getattr(backend, "backend", None), backend):  # ultralytics 8.4 / 8.3 layouts
        if holder is not None and hasattr(holder, "session"):
            return holder
    return None


class UltralyticsDetector:
    def __init__(self, weights: str | os.PathLike, imgsz: int = 640, conf: float = 0.25, iou: float = 0.7,
                 classes: list[int] | None = None, device: str = "cpu", half: bool = False, max_det: int = 300,
                 cpu_streams: int = 1):
        os.environ.setdefault("YOLO_OFFLINE", "1")  # never reach for the network
        path = Path(weights)
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        self.path = path
        self.model = self._load(path)
        onnx_on_cpu = path.suffix == ".onnx" and str(device) == "cpu"
        if onnx_on_cpu:
            # ONNX Runtime does the heavy work on its own threads; torch only pre/post-processes. torch's
            # OpenMP workers keep spinning after each of those small ops and took CPU from ONNX Runtime on
            # 2 cores (`perception bench detector`: node/raw 0.77 with torch's default threads, 0.92 with one).
            # Process-wide on purpose: a detector process runs one model.
            import torch

            torch.set_num_threads(1)
        self.imgsz, self.conf, self.iou = int(imgsz), float(conf), float(iou)
        self.classes = list(classes) if classes else None
        self.device, self.half, self.max_det = device, bool(half), int(max_det)
        self.names = dict(getattr(self.model, "names", {}) or {})
        # Why the streams asked for are not running (empty when they are, or when one was asked for).
        self.streams_note = ""
        self._streams: list = []
        self._pool: ThreadPoolExecutor | None = None
        self._stream_lock = threading.Lock()
        if cpu_streams > 1:
            if onnx_on_cpu:
                self._start_streams(int(cpu_streams))
            else:
                self.streams_note = (f"cpu_streams {cpu_streams} ignored: streams split batches over ONNX Runtime "
                                     f"sessions on the CPU ({path.suffix} model on {device}); one stream runs")

    @staticmethod
    def _load(path: Path):
        try:
            from ultralytics import YOLO
        except ImportError as exc:
            raise ModelError(f"ultralytics is not installed ({exc}); run make setup") from None
        try:
            return YOLO(str(path), task="detect")
        except Exception as exc:  # ultralytics raises many kinds for a corrupt file
            raise ModelError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None

    def _start_streams(self, count: int) -> None:
        import onnxruntime

        threads = max(1, available_cores() // count)
        streams = []
        for _ in range(count):
            model = self._load(self.path)
            self._predict_with(model, [np.zeros((32, 32, 3), np.uint8)])  # ultralytics builds its predictor lazily
            holder = _onnx_session_holder(model)
            if holder is None:
                self.streams_note = (f"cpu_streams {count} not started: this ultralytics version keeps its ONNX "
                                     f"Runtime session where the backend does not look; one stream runs")
                return
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            holder.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            streams.append(model)
        self._streams = streams
        self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="detector-stream")

    @property
    def streams(self) -> int:
        """How many sessions a batch of several images is split over (1: one pass over the whole batch)."""
        return max(1, len(self._streams))

    def _predict_with(self, model, images: list[np.ndarray]) -> list[np.ndarray]:
        options = {"half": True} if self.half else {}  # ultralytics warns whenever 'half' is passed at all
        results = model.predict(list(images), imgsz=self.imgsz, conf=self.conf, iou=self.iou,
                                classes=self.classes, device=self.device, max_det=self.max_det, verbose=False,
                                **options)
        out = []
        for result in results:
            boxes = result.boxes
            if boxes is None or len(boxes) == 0:
                out.append(np.zeros((0, 6)))
                continue
            out.append(np.hstack([boxes.xyxy.cpu().numpy(), boxes.conf.cpu().numpy()[:, None],
                                  boxes.cls.cpu().numpy()[:, None]]).astype(np.float64))
        return out

    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        if self.closed:
            raise ModelError(f"{self.path.name}: the detector was closed")
        if not images:
            return []
        if len(images) == 1 or not self._streams:
            return self._predict_with(self.model, images)
        # Contiguous, nearly equal shares in stream order, so the results come back in the images' order.
        shares = [list(part) for part in np.array_split(np.arange(len(images)), min(len(images), len(self._streams)))]
        with self._stream_lock:  # one batch at a time owns the streams (a stream's predictor is single-threaded)
            futures = [self._pool.submit(self._predict_with, stream, [images[i] for i in share])
                       for stream, share in zip(self._streams, shares)]
            return [rows for future in futures for rows in future.result()]

    def warmup(self, width: int = 640, height: int = 480) -> None:
        """One pass per path a batch can take (single image; every stream), outside any timing."""
        frames = [np.zeros((height, width, 3), np.uint8)] * max(1, len(self._streams))
        self.predict(frames[:1])
        if self._streams:
            self.predict(frames)

    def close(self) -> None:
        """Release the stream threads and every ONNX Runtime session / torch model (a replaced model)."""
        with self._stream_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            self._streams = []
            self.model = None
        self.closed = True

    closed = False
