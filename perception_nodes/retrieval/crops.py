"""Which crop of a track to index: the best one per track per time window.

A track seen at 10 Hz by N cameras would flood the index with near-duplicates; one crop per track per
``window_s`` keeps the index small and each entry useful. "Best" is big (more pixels to match), sharp (no
motion blur), whole (not cut by the image border) and confidently detected (or, in ground truth, visible).
"""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from perception_nodes.reid.learned import margin_bounds


def crop_quality(image_bgr: np.ndarray, box, confidence: float = 1.0, border_px: float = 2.0,
                 sharpness_reference: float = 60.0) -> float:
    """sqrt(area) x sharpness x wholeness x confidence; 0 for a box with no usable pixels."""
    height, width = image_bgr.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    left, top = int(max(0, np.floor(x1))), int(max(0, np.floor(y1)))
    right, bottom = int(min(width, np.ceil(x2))), int(min(height, np.ceil(y2)))
    if right - left < 2 or bottom - top < 2:
        return 0.0
    gray = cv2.cvtColor(image_bgr[top:bottom, left:right], cv2.COLOR_BGR2GRAY)
    laplacian = float(cv2.Laplacian(gray, cv2.CV_32F).var())
    sharpness = laplacian / (laplacian + sharpness_reference)
    cut = x1 <= border_px or y1 <= border_px or x2 >= width - border_px or y2 >= height - border_px
    return float(np.sqrt((right - left) * (bottom - top)) * sharpness * (0.5 if cut else 1.0) * confidence)


def cut_crop(image_bgr: np.ndarray, box, margin: float = 0.1) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The box with a margin, and the box's coordinates inside that crop."""
    left, top, right, bottom = margin_bounds(image_bgr.shape, box, margin)
    x1, y1, x2, y2 = (float(v) for v in box)
    return image_bgr[top:bottom, left:right].copy(), (x1 - left, y1 - top, x2 - left, y2 - top)


@dataclass
class _Window:
    start_ns: int
    last_ns: int
    quality: float
    payload: Any


class CropSelector:
    """Keeps the best candidate per key (camera, track) per window of ``window_s``; emits it when the window
    closes (a later candidate of the key arrives after it) or the key goes quiet (``flush``)."""

    def __init__(self, window_s: float = 2.0, min_side_px: float = 16.0):
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_ns = int(window_s * 1e9)
        self.min_side_px = float(min_side_px)
        self._open: dict[Hashable, _Window] = {}

    def big_enough(self, box) -> bool:
        x1, y1, x2, y2 = box
        return min(x2 - x1, y2 - y1) >= self.min_side_px

    def offer(self, key: Hashable, stamp_ns: int, quality: float, payload: Any) -> list[tuple[Hashable, Any]]:
        """Consider one candidate; the (key, payload) of a window it closed, if any."""
        emitted = []
        window = self._open.get(key)
        if window is not None and stamp_ns >= window.start_ns + self.window_ns:
            emitted.append((key, window.payload))
            window = None
            del self._open[key]
        if window is None:
            if quality > 0:
                self._open[key] = _Window(stamp_ns, stamp_ns, quality, payload)
            return emitted
        window.last_ns = max(window.last_ns, stamp_ns)
        if quality > window.quality:
            window.quality, window.payload = quality, payload
        return emitted

    def flush(self, older_than_ns: int | None = None) -> list[tuple[Hashable, Any]]:
        """Emit the windows whose key was last offered before ``older_than_ns`` (all when None)."""
        out = []
        for key in list(self._open):
            window = self._open[key]
            if older_than_ns is None or window.last_ns < older_than_ns:
                out.append((key, window.payload))
                del self._open[key]
        return out

    def __len__(self) -> int:
        return len(self._open)
