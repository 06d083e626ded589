"""Appearance embeddings for detections, computed from the image pixels in the box.

``ColorHistogramEmbedder`` is the training-free descriptor: a joint hue x
saturation x value histogram of the box's central region, square-rooted and
L2-normalised, so the cosine similarity of two embeddings is their
Bhattacharyya coefficient (1: identical colour distributions). The central
region keeps most of the background out of the box. It separates objects of
different colours (two cars crossing, a person passing another); it cannot
separate two objects painted alike, which a learned re-identification model
would be for. The tracker fuses it with IoU only where the boxes are
spatially plausible (``appearance_gate``).
"""
from __future__ import annotations

import cv2
import numpy as np

from perception_nodes.errors import ImageFormatError


class ColorHistogramEmbedder:
    """HSV histogram embedding of each detection box; ``embed(image_bgr, boxes) -> (N, dim) float32``."""

    name = "hsv-hist@1"

    def __init__(self, hue_bins: int = 12, saturation_bins: int = 4, value_bins: int = 4, inner: float = 0.7,
                 min_side_px: int = 2):
        if not 0 < inner <= 1:
            raise ValueError("inner must be in (0, 1]")
        if min(hue_bins, saturation_bins, value_bins) < 1:
            raise ValueError("every histogram needs at least one bin")
        self.bins = (int(hue_bins), int(saturation_bins), int(value_bins))
        self.inner = float(inner)
        self.min_side_px = int(min_side_px)

    @property
    def dim(self) -> int:
        return self.bins[0] * self.bins[1] * self.bins[2]

    def embed(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """One L2-normalised row per box (xyxy, px); an all-zero row where the box has no usable pixels.

        A zero row means "no appearance": the tracker then uses IoU alone for that detection.
        """
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise ImageFormatError(f"need an HxWx3 uint8 BGR image, got {image_bgr.shape} {image_bgr.dtype}")
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out = np.zeros((len(boxes), self.dim), dtype=np.float32)
        if not len(boxes):
            return out
        height, width = image_bgr.shape[:2]
        margin = (1.0 - self.inner) / 2.0
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            if not np.all(np.isfinite((x1, y1, x2, y2))):
                continue
            w, h = x2 - x1, y2 - y1
            left = int(np.clip(np.floor(x1 + margin * w), 0, width))
            right = int(np.clip(np.ceil(x2 - margin * w), 0, width))
            top = int(np.clip(np.floor(y1 + margin * h), 0, height))
            bottom = int(np.clip(np.ceil(y2 - margin * h), 0, height))
            if right - left < self.min_side_px or bottom - top < self.min_side_px:
                continue
            hsv = cv2.cvtColor(image_bgr[top:bottom, left:right], cv2.COLOR_BGR2HSV)
            hist = cv2.calcHist([hsv], [0, 1, 2], None, list(self.bins), [0, 180, 0, 256, 0, 256]).ravel()
            root = np.sqrt(hist / max(hist.sum(), 1.0))
            out[i] = root / max(float(np.linalg.norm(root)), 1e-12)
        return out
