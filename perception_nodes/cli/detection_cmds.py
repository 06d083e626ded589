"""`perception train detector` and `perception eval detection`."""
from __future__ import annotations

import time

import numpy as np

from perception_nodes.cli.common import emit
from perception_nodes.errors import ConfigError

DEFAULT_MODEL = "yolov8n-lot"


def _seeds(text: str) -> list[int]:
    """'100-111' or '200,201' -> [..]"""
    seeds = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            seeds.extend(range(int(lo), int(hi) + 1))
        elif part:
            seeds.append(int(part))
    if not seeds:
        raise ConfigError(f"no seeds in {text!r}")
    return seeds


def evaluate_model(weights, scene_name: str, seeds: list[int], frame_step: int, imgsz: int, conf: float = 0.001,
                   batch: int = 4) -> dict:
    """mAP of a weights file on every ``frame_step``-th frame of the given seeds (all cameras)."""
    from perception_nodes.detection.backend import UltralyticsDetector
    from perception_nodes.detection.dataset import coco_evaluate, coco_ground_truth, to_coco_detections
    from perception_nodes.world import World, load_scene

    detector = UltralyticsDetector(weights, imgsz=imgsz, conf=conf, iou=0.6)
    images_all, annotations, categories, detections = [], [], None, []
    for seed in seeds:
        world = World(load_scene(scene_name, seed=seed))
        frames = list(range(0, world.scene.frame_count, frame_step))
        gt, keys = coco_ground_truth(world, frames)
        offset = len(images_all)
        for image in gt["images"]:
            image["id"] += offset
        for ann in gt["annotations"]:
            ann["image_id"] += offset
            ann["id"] += len(annotations)
        images_all += gt["images"]
        annotations += gt["annotations"]
        categories = gt["categories"]
        for start in range(0, len(keys), batch):
            chunk = keys[start:start + batch]
            frames_bgr = [world.render(ci, frame)[0] for _, ci, frame in chunk]
            for (image_id, _, _), rows in zip(chunk, detector.predict(frames_bgr)):
                detections += to_coco_detections(image_id + offset, rows)
    result = coco_evaluate({"images": images_all, "annotations": annotations, "categories": categories}, detections)
    result["images"] = len(images_all)
    result["evaluated_objects"] = sum(1 for a in annotations if not a["iscrowd"])
    return result


def run_eval(args) -> int:
    from perception_nodes.detection.registry import ModelRegistry
    from perception_nodes.world import load_scene

    entry, path = ModelRegistry().verified_path(args.model)
    scene = load_scene(args.scene, seed=args.seed)
    seeds = [scene.seed] if args.seed is not None else _seeds(args.seeds)
    started = time.perf_counter()
    result = evaluate_model(path, args.scene, seeds, args.frame_step, entry.input_size)
    for name, values in result["per_class"].items():
        print(f"[eval] {name:8s} mAP@0.5 {values['map50']:.3f}  mAP@0.5:0.95 {values['map50_95']:.3f}")
    print(f"[eval] all      mAP@0.5 {result['map50']:.3f}  mAP@0.5:0.95 {result['map50_95']:.3f} "
          f"({result['images']} images, {result['evaluated_objects']} objects)")
    emit({**result, "model": entry.ref, "scene": scene.name, "seeds": seeds, "frame_step": args.frame_step,
          "wall_s": round(time.perf_counter() - started, 1)})
    return 0


def run_train(args) -> int:
    from perception_nodes.detection.train import train_detector
    from perception_nodes.world import load_scene

    scene = load_scene(args.scene)
    eval_seeds = _seeds(args.eval_seeds)
    summary = train_detector(
        scene, args.name, args.version, args.work, _seeds(args.train_seeds), _seeds(args.val_seeds), eval_seeds,
        args.frame_step, args.epochs, args.imgsz, args.batch, args.hours, args.threads,
        evaluate=lambda weights: evaluate_model(weights, args.scene, eval_seeds, args.eval_frame_step, args.imgsz))
    emit(summary)
    return 0


def add_parsers(sub, eval_sub, add_scene_args) -> None:
    train = sub.add_parser("train", help="train models on the synthetic world")
    train_sub = train.add_subparsers(dest="train_command", required=True)
    det = train_sub.add_parser("detector", help="export YOLO data, train a nano YOLO on the CPU, register it with a card")
    det.add_argument("--scene", default="default")
    det.add_argument("--name", default=DEFAULT_MODEL)
    det.add_argument("--version", required=True)
    det.add_argument("--work", default="runs/train_detector", help="dataset and ultralytics run folder")
    det.add_argument("--train-seeds", default="100-111")
    det.add_argument("--val-seeds", default="190-191")
    det.add_argument("--eval-seeds", default="200-201", help="held-out seeds for the model card's metrics")
    det.add_argument("--frame-step", type=int, default=15, help="every Nth frame of each seed")
    det.add_argument("--eval-frame-step", type=int, default=30)
    det.add_argument("--epochs", type=int, default=30)
    det.add_argument("--hours", type=float, default=None, help="ultralytics' time budget (overrides epochs)")
    det.add_argument("--imgsz", type=int, default=640)
    det.add_argument("--batch", type=int, default=8)
    det.add_argument("--threads", type=int, default=2)
    det.set_defaults(func=run_train)

    ev = eval_sub.add_parser("detection", help="mAP of a registered detector on held-out seeds (pycocotools)")
    add_scene_args(ev)
    ev.add_argument("--model", default=DEFAULT_MODEL, help="name@version from models/manifest.yaml")
    ev.add_argument("--seeds", default="200-201", help="held-out seeds when --seed is not given")
    ev.add_argument("--frame-step", type=int, default=30)
    ev.set_defaults(func=run_eval)
