"""YOLO-format datasets from the synthetic world, and the ground-truth policy for evaluation.

Labels: every object at least ``LABEL_MIN_VISIBILITY`` visible and
``LABEL_MIN_HEIGHT_PX`` tall. Evaluation scores objects at least
``EVAL_MIN_VISIBILITY`` visible and ``EVAL_MIN_HEIGHT_PX`` tall; smaller or more
hidden objects are "ignore" regions (COCO iscrowd): detecting them is neither
rewarded nor punished, the usual treatment of barely visible objects (KITTI's
difficulty levels, CityPersons' "reasonable" subset).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from perception_nodes.fileio import atomic_write_yaml
from perception_nodes.world import CLASS_NAMES, World
from perception_nodes.world.scene import Scene

LABEL_MIN_VISIBILITY = 0.3
LABEL_MIN_HEIGHT_PX = 6.0
EVAL_MIN_VISIBILITY = 0.5
EVAL_MIN_HEIGHT_PX = 12.0


@dataclass
class Split:
    name: str
    seeds: list[int]


def is_labelled(box) -> bool:
    return box.visible_fraction >= LABEL_MIN_VISIBILITY and box.bbox[3] - box.bbox[1] >= LABEL_MIN_HEIGHT_PX


@dataclass(frozen=True)
class EvalPolicy:
    """Which ground-truth objects are scored; the others are ignore regions."""

    min_visibility: float = EVAL_MIN_VISIBILITY
    min_height_px: float = EVAL_MIN_HEIGHT_PX

    def to_dict(self) -> dict:
        return {"min_visibility": self.min_visibility, "min_height_px": self.min_height_px}


def is_evaluated(box, policy: EvalPolicy = EvalPolicy()) -> bool:
    return box.visible_fraction >= policy.min_visibility and box.bbox[3] - box.bbox[1] >= policy.min_height_px


def write_yolo_sample(image_dir: Path, label_dir: Path, stem: str, image: np.ndarray, boxes) -> int:
    """One frame as ``<stem>.jpg`` and its labelled ground-truth boxes as YOLO lines in ``<stem>.txt``; returns
    how many boxes were written."""
    h, w = image.shape[:2]
    lines = []
    for box in boxes:
        if is_labelled(box):
            x1, y1, x2, y2 = box.bbox
            lines.append(f"{box.class_id} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
                         f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
    cv2.imwrite(str(image_dir / f"{stem}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    (label_dir / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return len(lines)


def export_yolo(scene: Scene, out: str | os.PathLike, splits: list[Split], frame_step: int = 5,
                frames_per_seed: int | None = None) -> dict:
    """Write images/<split>/*.jpg + labels/<split>/*.txt + data.yaml; returns counts per split."""
    out = Path(out)
    counts = {}
    for split in splits:
        image_dir, label_dir = out / "images" / split.name, out / "labels" / split.name
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        images = boxes_written = 0
        for seed in split.seeds:
            world = World(scene.with_seed(seed))
            last = frames_per_seed or world.scene.frame_count
            for frame in range(0, min(last, world.scene.frame_count), frame_step):
                for ci, cam in enumerate(world.cameras):
                    image, boxes = world.render(ci, frame)
                    boxes_written += write_yolo_sample(image_dir, label_dir, f"s{seed}_{cam.spec.id}_f{frame:05d}",
                                                       image, boxes)
                    images += 1
        counts[split.name] = {"images": images, "boxes": boxes_written, "seeds": split.seeds}
    atomic_write_yaml(out / "data.yaml", {"path": str(out.resolve()), "train": "images/train", "val": "images/val",
                                          "names": {i: n for i, n in enumerate(CLASS_NAMES)}})
    return counts


def export_captured(bag: str | os.PathLike, out: str | os.PathLike, split: str = "train") -> dict:
    """Frames of a detector's capture bag that carry ground truth (a synthetic camera's), added to a YOLO data
    folder's ``split`` with their labels; frames without ground truth are counted, not guessed at."""
    import cv2

    from perception_nodes.monitoring.capture import read_capture

    out = Path(out)
    image_dir, label_dir = out / "images" / split, out / "labels" / split
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    added = boxes = unlabelled = 0
    reasons: dict[str, int] = {}
    for frame in read_capture(bag):
        if frame.truth is None:
            unlabelled += 1
            continue
        h, w = frame.image.shape[:2]
        lines = []
        for d in frame.truth.detections:
            if not 0 <= int(d.class_id) < len(CLASS_NAMES):
                continue
            lines.append(f"{int(d.class_id)} {d.box.center_x / w:.6f} {d.box.center_y / h:.6f} "
                         f"{d.box.width / w:.6f} {d.box.height / h:.6f}")
        stem = f"capture_{Path(bag).name}_{frame.camera}_{frame.stamp_ns}"
        cv2.imwrite(str(image_dir / f"{stem}.jpg"), frame.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        (label_dir / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        added += 1
        boxes += len(lines)
        for reason in frame.reasons:
            key = reason.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
    return {"bag": str(bag), "images": added, "boxes": boxes, "without_ground_truth": unlabelled,
            "reasons": reasons}


def coco_ground_truth(world: World, frames: list[int], on_image=None,
                      policy: EvalPolicy = EvalPolicy()) -> tuple[dict, list[tuple[int, int, int]]]:
    """COCO ground truth (dict) for the given frames of every camera, and (image_id, camera, frame) keys.

    ``on_image(image_id, bgr)`` receives each rendered frame, so a caller that also needs the pixels
    (evaluation) does not render it a second time.
    """
    images, annotations, keys = [], [], []
    for frame in frames:
        for ci, cam in enumerate(world.cameras):
            image_id = len(keys) + 1
            keys.append((image_id, ci, frame))
            images.append({"id": image_id, "width": cam.spec.width, "height": cam.spec.height,
                           "file_name": f"{cam.spec.id}_{frame}"})
            pixels, boxes = world.render(ci, frame)
            if on_image is not None:
                on_image(image_id, pixels)
            for box in boxes:
                x1, y1, x2, y2 = box.bbox
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": box.class_id,
                                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                    "iscrowd": 0 if is_evaluated(box, policy) else 1})
    categories = [{"id": i, "name": n} for i, n in enumerate(CLASS_NAMES)]
    return {"images": images, "annotations": annotations, "categories": categories}, keys


def coco_evaluate(ground_truth: dict, detections: list[dict]) -> dict:
    """mAP@0.5 and mAP@0.5:0.95, overall and per class, with pycocotools."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = ground_truth
        gt.createIndex()
        dt = gt.loadRes(detections) if detections else None
    result = {"per_class": {}}
    if dt is None:
        result.update(map50=0.0, map50_95=0.0)
        for category in ground_truth["categories"]:
            result["per_class"][category["name"]] = {"map50": 0.0, "map50_95": 0.0}
        return result

    def run(category_ids):
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.params.catIds = category_ids
        evaluator.params.maxDets = [1, 10, 100]
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        return max(float(evaluator.stats[1]), 0.0), max(float(evaluator.stats[0]), 0.0)

    present = sorted({a["category_id"] for a in ground_truth["annotations"] if not a["iscrowd"]})
    result["map50"], result["map50_95"] = run(present)
    for category in ground_truth["categories"]:
        if category["id"] in present:
            m50, m = run([category["id"]])
            result["per_class"][category["name"]] = {"map50": m50, "map50_95": m}
    return result


def to_coco_detections(image_id: int, rows: np.ndarray) -> list[dict]:
    """Detections rows [x1, y1, x2, y2, score, class] -> COCO result dicts."""
    return [{"image_id": image_id, "category_id": int(r[5]), "bbox": [float(r[0]), float(r[1]),
             float(r[2] - r[0]), float(r[3] - r[1])], "score": float(r[4])} for r in np.asarray(rows).reshape(-1, 6)]
