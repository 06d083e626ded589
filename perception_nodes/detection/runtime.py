"""What a detector node runs, without ROS: model selection, class mapping, fallback, shadow statistics.

``DetectorRuntime`` owns the primary model (and optionally a shadow model),
keeps a latency window of the primary alone, and decides when to fall back.
Every row it returns is in site classes (``taxonomy.ClassMap``), whatever the
model's own classes. Loads for a swap or a fallback run on the runtime's loader
thread while the current model keeps serving; a replaced model is closed (its
threads and sessions released) once no pass is using it. The ROS node feeds it
frames and publishes what it returns.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from perception_nodes.boxes import iou_matrix
from perception_nodes.detection.registry import ModelEntry, ModelError, ModelRegistry
from perception_nodes.errors import ConfigError
from perception_nodes.taxonomy import ClassMap


@dataclass
class LoadedModel:
    ref: str  # name@version, plus "@imgsz" when run at a reduced input size
    imgsz: int
    classes: list[str]
    detector: object  # has predict(list[np.ndarray]) -> list[np.ndarray] (and optionally close())
    streams: int = 1  # sessions a batch is split over on the CPU (detection/backend.py)
    class_map: ClassMap | None = None  # set by the runtime: model classes -> site classes

    def close(self) -> None:
        close = getattr(self.detector, "close", None)
        if close is not None:
            close()


@dataclass
class RuntimeConfig:
    model: str
    fallback_model: str = ""  # name@version, or several comma-separated tried in order; empty: none
    fallback_imgsz: int = 0  # or the primary at a smaller input size; 0: none
    imgsz: int = 0  # 0: the model's input size
    conf: float = 0.25
    iou: float = 0.7
    classes: tuple[int, ...] = ()
    device: str = "cpu"
    half: bool = False
    cpu_streams: int = 1  # resolved count (the node turns its 0 = auto into one); backend.resolve_cpu_streams
    latency_budget_ms: float = 0.0  # 0: no budget
    budget_frames: int = 10  # K consecutive over-budget p95 readings trigger the fallback
    shadow_model: str = ""
    shadow_fraction: float = 0.0
    class_map: tuple[str, ...] = ()  # "model_class=site_class" pairs; empty: same-name classes
    unmapped: str = "drop"  # taxonomy.UnmappedPolicy for model classes the map leaves out


def make_detector(entry: ModelEntry, path, imgsz: int, conf: float = 0.25, iou: float = 0.7,
                  classes: list[int] | None = None, device: str = "cpu", half: bool = False, cpu_streams: int = 1):
    """The backend a registry entry names: OpenVINO Runtime (no torch), or ultralytics (.pt through torch,
    .onnx through ONNX Runtime)."""
    if entry.backend == "openvino":
        from perception_nodes.detection.openvino_backend import OpenVINODetector

        if device != "cpu":
            raise ModelError(f"{entry.ref}: the OpenVINO backend runs on the CPU here, not {device}")
        return OpenVINODetector(path, imgsz=imgsz, conf=conf, iou=iou, classes=classes, precision=entry.precision,
                                cpu_streams=cpu_streams)
    if entry.backend != "ultralytics":
        raise ModelError(f"{entry.ref}: unknown backend {entry.backend!r} (ultralytics or openvino)")
    from perception_nodes.detection.backend import UltralyticsDetector

    return UltralyticsDetector(path, imgsz=imgsz, conf=conf, iou=iou, classes=classes, device=device, half=half,
                               cpu_streams=cpu_streams)


def default_loader(registry: ModelRegistry, config: RuntimeConfig, log=print) -> Callable[[str, int], LoadedModel]:
    def load(ref: str, imgsz: int) -> LoadedModel:
        entry, path = registry.verified_path(ref)
        size = imgsz or config.imgsz or entry.input_size
        detector = make_detector(entry, path, size, conf=config.conf, iou=config.iou,
                                 classes=list(config.classes) or None, device=config.device, half=config.half,
                                 cpu_streams=config.cpu_streams)
        if detector.streams_note:
            log(f"{entry.ref}: {detector.streams_note}")
        detector.warmup()
        return LoadedModel(entry.ref if size == entry.input_size else f"{entry.ref}@{size}", size, entry.classes,
                           detector, detector.streams)

    return load


def agreement(a: np.ndarray, b: np.ndarray, threshold: float = 0.5) -> float:
    """F1 of matching two detection sets (same class, IoU >= threshold); 1.0 when both are empty."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    if len(a) == 0 or len(b) == 0:
        return 0.0
    iou = iou_matrix(a[:, :4], b[:, :4])
    iou[a[:, 5][:, None] != b[:, 5][None, :]] = 0.0
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-iou)
    matched = int(np.sum(iou[rows, cols] >= threshold))
    return 2.0 * matched / (len(a) + len(b))


class DetectorRuntime:
    def __init__(self, config: RuntimeConfig, loader: Callable[[str, int], LoadedModel], log=print):
        self.config = config
        self._load_raw = loader
        self._log = log
        self._lock = threading.Lock()  # guards which model is primary
        self._pass_lock = threading.Lock()  # held by an inference pass; a replaced model closes after it
        self.primary: LoadedModel | None = None
        self.shadow: LoadedModel | None = None
        self.fell_back = False
        self.fallback_reason = ""
        self._latencies: deque[float] = deque(maxlen=max(1, config.budget_frames))
        self._over_budget = 0
        self._shadow_counter = 0.0
        self.shadow_agreement: deque[float] = deque(maxlen=200)
        self.last_primary_ms = 0.0
        self.last_shadow_ms = 0.0
        self.last_shadow_agreements: list[float] = []  # per image of the last pass the shadow ran on
        self.closed_models = 0  # replaced models closed so far
        self.fallbacks = 0  # fallbacks installed so far
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        self._pending_fallback: Future | None = None

    # -- loading ------------------------------------------------------------------------------
    def _load(self, ref: str, imgsz: int) -> LoadedModel:
        """Load a model and attach its class map; ModelError when either fails (the model is closed then)."""
        model = self._load_raw(ref, imgsz)
        try:
            model.class_map = ClassMap.from_pairs(model.classes, list(self.config.class_map), self.config.unmapped)
        except ConfigError as exc:
            model.close()
            raise ModelError(f"{model.ref}: {exc}") from None
        return model

    def start(self) -> None:
        """Load the primary (or, if it fails, the fallback) and the shadow; ModelError if nothing loads."""
        try:
            self.primary = self._load(self.config.model, 0)
        except ModelError as exc:
            self._log(f"primary model {self.config.model} failed to load: {exc}")
            if not self._fallback(f"primary failed to load: {exc}"):
                raise
        if self.config.shadow_model and self.config.shadow_fraction > 0:
            try:
                self.shadow = self._load(self.config.shadow_model, 0)
            except ModelError as exc:
                self._log(f"shadow model not loaded: {exc}")

    def _fallback_options(self) -> list[tuple[str, int]]:
        """Tried in order: each model of ``fallback_model`` (comma-separated, e.g. the OpenVINO variant's ONNX
        Runtime and torch equivalents), then the primary at ``fallback_imgsz``."""
        options = [(ref.strip(), 0) for ref in self.config.fallback_model.split(",") if ref.strip()]
        if self.config.fallback_imgsz:
            options.append((self.config.model, self.config.fallback_imgsz))  # the same model, smaller input
        return options

    def _fallback(self, reason: str) -> bool:
        for ref, imgsz in self._fallback_options():
            try:
                model = self._load(ref, imgsz)
            except ModelError as exc:
                self._log(f"fallback {ref} (imgsz {imgsz or 'default'}) failed to load: {exc}")
                continue
            self._install(model, fallback_reason=reason)
            self.fallbacks += 1
            self._log(f"switched to fallback {model.ref}: {reason}")
            return True
        return False

    def swap(self, ref: str) -> LoadedModel:
        """Load ``ref`` and make it the primary (blocking); the old one keeps serving if loading fails (ModelError)."""
        model = self._load(ref, 0)
        self._install(model)
        return model

    def swap_async(self, ref: str) -> Future:
        """``swap`` on the loader thread: the current model serves until the new one is loaded. The future's
        result is the new model, or its exception the ModelError."""
        return self._loader.submit(self.swap, ref)

    @property
    def loading(self) -> bool:
        """A fallback load is in progress."""
        return self._pending_fallback is not None and not self._pending_fallback.done()

    def _install(self, model: LoadedModel, fallback_reason: str = "") -> None:
        """Make ``model`` the primary; the latency window starts over; the replaced model is closed."""
        with self._lock:
            old, self.primary = self.primary, model
            self.fell_back = bool(fallback_reason)
            self.fallback_reason = fallback_reason
            self._latencies.clear()
            self._over_budget = 0
        if old is not None and old is not model:
            with self._pass_lock:  # a pass that took the old model finishes first
                old.close()
            self.closed_models += 1

    def close(self) -> None:
        """Release every model and the loader thread (the node's cleanup)."""
        self._loader.shutdown(wait=True)
        with self._pass_lock:
            for model in (self.primary, self.shadow):
                if model is not None:
                    model.close()
        self.primary = self.shadow = None

    # -- inference ----------------------------------------------------------------------------
    def infer(self, images: list[np.ndarray]) -> tuple[LoadedModel, list[np.ndarray], list[np.ndarray] | None]:
        """(model used, detections per image in site classes, shadow detections per image or None).

        ``last_primary_ms`` is the primary's own time: the shadow's pass is timed apart (``last_shadow_ms``)
        and never counts against the latency budget."""
        with self._pass_lock:
            with self._lock:
                model = self.primary
            if model is None:
                raise ModelError("no model is loaded")
            began = time.perf_counter()
            results = [model.class_map.apply(rows) if model.class_map else rows
                       for rows in model.detector.predict(images)]
            self.last_primary_ms = (time.perf_counter() - began) * 1000.0
            shadow_results = None
            if self.shadow is not None:
                self._shadow_counter += self.config.shadow_fraction
                if self._shadow_counter >= 1.0:
                    self._shadow_counter -= 1.0
                    began = time.perf_counter()
                    shadow_results = [self.shadow.class_map.apply(rows) if self.shadow.class_map else rows
                                      for rows in self.shadow.detector.predict(images)]
                    self.last_shadow_ms = (time.perf_counter() - began) * 1000.0
                    self.last_shadow_agreements = [agreement(a, b) for a, b in zip(results, shadow_results)]
                    self.shadow_agreement.extend(self.last_shadow_agreements)
        return model, results, shadow_results

    def record_latency(self, batch_ms: float) -> bool:
        """Add one primary pass latency; True when the budget was exceeded long enough and a fallback load started
        (on the loader thread: the primary serves until the fallback is loaded, then ``fell_back`` is set)."""
        budget = self.config.latency_budget_ms
        if budget <= 0 or self.fell_back or self.loading:
            return False
        self._latencies.append(batch_ms)
        if len(self._latencies) < self._latencies.maxlen:
            return False
        p95 = float(np.percentile(self._latencies, 95))
        self._over_budget = self._over_budget + 1 if p95 > budget else 0
        if self._over_budget >= self.config.budget_frames and self._fallback_options():
            reason = (f"p95 latency {p95:.1f} ms over the {budget:.1f} ms budget for "
                      f"{self.config.budget_frames} frames")
            self._pending_fallback = self._loader.submit(self._fallback, reason)
            return True
        return False

    def wait_for_fallback(self, timeout: float | None = None) -> bool:
        """Block until a started fallback load ended; True when a fallback now serves (tests, shutdown)."""
        if self._pending_fallback is not None:
            self._pending_fallback.result(timeout)
        return self.fell_back
