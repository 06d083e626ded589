"""Ultralytics YOLO inference backend (.pt, and .onnx through ultralytics).

``predict(images)`` runs one batched forward pass and returns, per image, rows
[x1, y1, x2, y2, score, class] in that image's pixel coordinates.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from perception_nodes.detection.registry import ModelError


class UltralyticsDetector:
    def __init__(self, weights: str | os.PathLike, imgsz: int = 640, conf: float = 0.25, iou: float = 0.7,
                 classes: list[int] | None = None, device: str = "cpu", half: bool = False, max_det: int = 300):
        os.environ.setdefault("YOLO_OFFLINE", "1")  # never reach for the network
        try:
            from ultralytics import YOLO
        except ImportError as exc:
            raise ModelError(f"ultralytics is not installed ({exc}); run make setup") from None
        path = Path(weights)
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        try:
            self.model = YOLO(str(path), task="detect")
        except Exception as exc:  # ultralytics raises many kinds for a corrupt file
            raise ModelError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None
        if path.suffix == ".onnx" and str(device) == "cpu":
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

    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        if not images:
            return []
        options = {"half": True} if self.half else {}  # ultralytics warns whenever 'half' is passed at all
        results = self.model.predict(list(images), imgsz=self.imgsz, conf=self.conf, iou=self.iou,
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

    def warmup(self, width: int = 640, height: int = 480) -> None:
        self.predict([np.zeros((height, width, 3), np.uint8)])
