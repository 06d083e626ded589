"""Box maths shared by detection, tracking and evaluation (pure NumPy).

Boxes are rows ``[x1, y1, x2, y2]`` in pixels. Detection and tracking both
depend on this module and never on each other.
"""
from __future__ import annotations

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4 xyxy) with every box in b (M, 4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def covered_fraction(boxes: np.ndarray) -> np.ndarray:
    """For each box of one image (N, 4 xyxy), the largest share of its area that any *other* box covers
    (0: isolated, 1: inside another box). Where boxes overlap this much, a tracker's identities are least sure."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    if n < 2:
        return np.zeros(n)
    x1 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    np.fill_diagonal(inter, 0.0)
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    return np.clip(inter.max(axis=1) / np.maximum(area, 1e-9), 0.0, 1.0)


def xyxy_of(box) -> tuple[float, float, float, float]:
    """(x1, y1, x2, y2) of a centre/size box message (``center_x``, ``center_y``, ``width``, ``height``: our
    BoundingBox in Detection, Track and Sighting)."""
    half_w, half_h = box.width / 2.0, box.height / 2.0
    return (box.center_x - half_w, box.center_y - half_h, box.center_x + half_w, box.center_y + half_h)


def set_xyxy(box, x1: float, y1: float, x2: float, y2: float) -> None:
    """Fill a centre/size box message from corners."""
    box.center_x, box.center_y = float(x1 + x2) / 2.0, float(y1 + y2) / 2.0
    box.width, box.height = float(x2 - x1), float(y2 - y1)
