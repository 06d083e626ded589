"""Tracking evaluation on the synthetic world (pure Python, no ROS).

Detections come from the ground truth with realistic noise (``gt-noisy``: box
jitter, misses, low-confidence frames under occlusion, false positives) or from
a detector callback. Every tracker under test sees the identical detection
stream; HOTA comes from trackeval, MOTA/IDF1/ID switches from motmetrics.

Ground truth follows the MOTChallenge convention for objects nobody should be
asked to track: those less than ``GT_MIN_VISIBILITY`` visible or shorter than
``GT_MIN_HEIGHT_PX`` are ignore regions. A reported box that matches one
(IoU >= 0.5) is removed before scoring, so it is neither a hit nor a false
positive; an ignored object that is not reported is not a miss.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from perception_nodes.detection.dataset import EVAL_MIN_HEIGHT_PX
from perception_nodes.world import World

GT_MIN_VISIBILITY = 0.25  # ground-truth objects less visible than this are not expected to be tracked
GT_MIN_HEIGHT_PX = EVAL_MIN_HEIGHT_PX  # the same size floor as the detector's evaluation
MATCH_IOU = 0.5


@dataclass
class FrameData:
    stamp_s: float
    gt_ids: np.ndarray  # (G,)
    gt_boxes: np.ndarray  # (G, 4) xyxy
    detections: np.ndarray  # (D, 6) x1 y1 x2 y2 score class
    image: np.ndarray | None = None  # only kept when a peer needs it
    ignore_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # (I, 4) xyxy ignore regions
    embeddings: np.ndarray | None = None  # (D, dim) appearance of each detection, when an embedder ran


@dataclass
class Sequence:
    camera_id: str
    frames: list[FrameData] = field(default_factory=list)


@dataclass
class NoiseModel:
    """How ``gt-noisy`` detections deviate from the truth."""

    jitter: float = 0.04  # box edge noise, fraction of the box size (sigma)
    miss_rate: float = 0.08  # fully visible objects missed per frame
    occluded_miss_rate: float = 0.35  # partly hidden objects (visibility < 0.6) missed per frame
    false_positives_per_frame: float = 0.3
    min_visibility: float = 0.15  # objects less visible than this are never detected


def noisy_detections(boxes, rng: np.random.Generator, size: tuple[int, int], noise: NoiseModel) -> np.ndarray:
    """Detections from ground-truth boxes (GroundTruthBox list) with the noise model applied."""
    rows = []
    width, height = size
    for box in boxes:
        if box.visible_fraction < noise.min_visibility:
            continue
        occluded = box.visible_fraction < 0.6
        if rng.random() < (noise.occluded_miss_rate if occluded else noise.miss_rate):
            continue
        x1, y1, x2, y2 = box.bbox
        w, h = x2 - x1, y2 - y1
        jitter = rng.normal(0.0, noise.jitter, 4) * [w, h, w, h]
        score = rng.uniform(0.15, 0.5) if occluded and rng.random() < 0.5 else rng.uniform(0.55, 0.98)
        rows.append([x1 + jitter[0], y1 + jitter[1], x2 + jitter[2], y2 + jitter[3], score, box.class_id])
    for _ in range(rng.poisson(noise.false_positives_per_frame)):
        w, h = rng.uniform(15, 80), rng.uniform(15, 80)
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        rows.append([x, y, x + w, y + h, rng.uniform(0.1, 0.7), rng.integers(0, 4)])
    if not rows:
        return np.zeros((0, 6))
    out = np.asarray(rows, dtype=np.float64)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out


def is_tracked(box) -> bool:
    """Whether a ground-truth object counts in the tracking metrics (else it is an ignore region)."""
    return box.visible_fraction >= GT_MIN_VISIBILITY and box.bbox[3] - box.bbox[1] >= GT_MIN_HEIGHT_PX


def drop_ignored(frame: "FrameData", ids: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove reported boxes that match an ignore region (Hungarian over truth and ignore regions together)."""
    if len(boxes) == 0 or len(frame.ignore_boxes) == 0:
        return ids, boxes
    from scipy.optimize import linear_sum_assignment

    targets = np.vstack([frame.gt_boxes.reshape(-1, 4), frame.ignore_boxes])
    iou = _iou(targets, boxes)
    rows, cols = linear_sum_assignment(-iou)
    matched = (iou[rows, cols] >= MATCH_IOU) & (rows >= len(frame.gt_boxes))
    keep = np.ones(len(boxes), dtype=bool)
    keep[cols[matched]] = False
    return ids[keep], boxes[keep]


def build_sequences(world: World, frames: int, detector: Callable | None = None, noise: NoiseModel | None = None,
                    keep_images: bool = False, embedder=None) -> list[Sequence]:
    """Per camera, per frame: ground truth and the detections every tracker will see.

    ``embedder`` (``embed(image, boxes)``, e.g. ColorHistogramEmbedder) adds an appearance embedding
    to each detection, computed from the rendered pixels as the detector node does.
    """
    noise = noise or NoiseModel()
    rng = np.random.default_rng([world.scene.seed, 0x7AC])
    sequences = [Sequence(cam.spec.id) for cam in world.cameras]
    for index in range(frames):
        stamp = world.time_of(index)
        for ci, cam in enumerate(world.cameras):
            image, boxes = world.render(ci, index)
            truth = [b for b in boxes if is_tracked(b)]
            ignored = [b.bbox for b in boxes if not is_tracked(b)]
            dets = np.asarray(detector(image) if detector else noisy_detections(boxes, rng, cam.size, noise),
                              dtype=np.float64).reshape(-1, 6)
            sequences[ci].frames.append(FrameData(
                stamp, np.array([b.global_id for b in truth], dtype=int), np.array([b.bbox for b in truth]).reshape(-1, 4),
                dets, image if keep_images else None, np.array(ignored, dtype=np.float64).reshape(-1, 4),
                embedder.embed(image, dets[:, :4]) if embedder is not None else None))
    return sequences


class FrameTracker(Protocol):
    def __call__(self, frame: FrameData) -> tuple[np.ndarray, np.ndarray]:
        """(track ids (T,), boxes (T, 4) xyxy) reported for this frame."""


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from perception_nodes.boxes import iou_matrix

    return iou_matrix(a.reshape(-1, 4), b.reshape(-1, 4))


def run_tracker(sequences: list[Sequence], make_tracker: Callable[[], FrameTracker]) -> list[list[tuple]]:
    """Outputs per sequence per frame: (ids, boxes). A fresh tracker per camera."""
    results = []
    for sequence in sequences:
        tracker = make_tracker()
        results.append([tracker(frame) for frame in sequence.frames])
    return results


def score(sequences: list[Sequence], outputs: list[list[tuple]]) -> dict:
    """HOTA (trackeval), MOTA, IDF1, ID switches (motmetrics), over all cameras."""
    import motmetrics as mm
    from trackeval.metrics import HOTA

    hota_metric = HOTA()
    hota_results = []
    accumulators = []
    for sequence, frames in zip(sequences, outputs):
        acc = mm.MOTAccumulator(auto_id=True)
        gt_map, tr_map = {}, {}
        data = {"gt_ids": [], "tracker_ids": [], "similarity_scores": [], "num_gt_dets": 0, "num_tracker_dets": 0}
        for frame, (ids, boxes) in zip(sequence.frames, frames):
            ids, boxes = drop_ignored(frame, np.asarray(ids, dtype=int), np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
            iou = _iou(frame.gt_boxes, boxes)
            distances = np.where(iou >= MATCH_IOU, 1.0 - iou, np.nan)
            acc.update(list(frame.gt_ids), list(ids), distances)
            gt_dense = np.array([gt_map.setdefault(g, len(gt_map)) for g in frame.gt_ids], dtype=int)
            tr_dense = np.array([tr_map.setdefault(t, len(tr_map)) for t in ids], dtype=int)
            data["gt_ids"].append(gt_dense)
            data["tracker_ids"].append(tr_dense)
            data["similarity_scores"].append(iou)
            data["num_gt_dets"] += len(gt_dense)
            data["num_tracker_dets"] += len(tr_dense)
        data["num_gt_ids"], data["num_tracker_ids"] = len(gt_map), len(tr_map)
        data["num_timesteps"] = len(sequence.frames)
        accumulators.append(acc)
        hota_results.append(hota_metric.eval_sequence(data))
    combined = hota_metric.combine_sequences({str(i): r for i, r in enumerate(hota_results)})
    host = mm.metrics.create()
    summary = host.compute_many(accumulators, metrics=["mota", "idf1", "num_switches"], generate_overall=True)
    overall = summary.loc["OVERALL"]
    return {"hota": float(np.mean(combined["HOTA"])), "deta": float(np.mean(combined["DetA"])),
            "assa": float(np.mean(combined["AssA"])), "mota": float(overall["mota"]), "idf1": float(overall["idf1"]),
            "id_switches": int(overall["num_switches"])}


def our_tracker_factory(params=None, confirmed_only: bool = True):
    """FrameTracker over ByteTracker: reports tracks updated this frame (as MOT evaluations expect)."""
    from perception_nodes.tracking.tracker import ByteTracker, TrackState

    def make():
        tracker = ByteTracker(params)

        def step(frame: FrameData):
            _, tracks = tracker.update(frame.detections, frame.stamp_s, frame.embeddings)
            shown = [t for t in tracks if t.frames_since_update == 0 and
                     (t.state == TrackState.CONFIRMED or not confirmed_only)]
            return np.array([t.track_id for t in shown], dtype=int), np.array([t.box_xyxy for t in shown]).reshape(-1, 4)

        return step

    return make
