"""Train a YOLO detector on the synthetic world and register it with a model card.

Everything that determines the model is recorded in the card: the scene, the
train/validation seeds, frame sampling, the ultralytics arguments, and the
metrics measured afterwards with pycocotools on held-out seeds.
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
from pathlib import Path

from perception_nodes.detection.dataset import Split, export_captured, export_yolo
from perception_nodes.detection.mixture import export_mixture
from perception_nodes.errors import ConfigError
from perception_nodes.fileio import atomic_write_yaml, read_yaml_mapping
from perception_nodes.detection.registry import ModelEntry, ModelRegistry, sha256_of
from perception_nodes.world import CLASS_NAMES
from perception_nodes.world.scene import Scene


def train_detector(scene: Scene, name: str, version: str, work: str | os.PathLike, train_seeds: list[int],
                   val_seeds: list[int], eval_seeds: list[int], frame_step: int, epochs: int, imgsz: int,
                   batch: int, hours: float | None, threads: int, base_model: str = "yolov8n.yaml",
                   registry: ModelRegistry | None = None, evaluate=None, init_ref: str | None = None,
                   extra_data: list[str] | None = None, mixture=None, resume: bool = False,
                   workers: int = 2) -> dict:
    """Export data, train, evaluate on ``eval_seeds``, copy weights into models/, write the card, register.

    ``extra_data``: capture bags of the detector node; their frames with ground truth join the training split.
    ``base_model`` is an architecture (``yolov8n.yaml``, random initialisation) or a weights file to
    fine-tune; ``init_ref`` names the registered model those weights came from, for the card.
    ``mixture`` (``detection.mixture.Mixture``): train on a balanced mixture of randomised sites instead of
    ``scene``'s seeds. ``resume``: go on from ``work``'s last checkpoint with its data and arguments.
    """
    import torch
    from ultralytics import YOLO

    os.environ.setdefault("YOLO_OFFLINE", "1")
    torch.set_num_threads(max(1, threads))
    work = Path(work)
    data_dir = work / "data"
    counts_file = data_dir / "counts.yaml"
    last = work / "run" / "weights" / "last.pt"
    if resume:
        if not last.is_file() or not counts_file.is_file():
            raise ConfigError(f"nothing to resume in {work}: no {last} or {counts_file}")
        counts = read_yaml_mapping(counts_file, "training data counts")
    else:
        if mixture is not None:
            counts = export_mixture(mixture, data_dir, workers)
        else:
            counts = export_yolo(scene, data_dir, [Split("train", train_seeds), Split("val", val_seeds)], frame_step)
        for bag in extra_data or []:
            counts.setdefault("captured", []).append(export_captured(bag, data_dir, "train"))
        atomic_write_yaml(counts_file, counts)
    train_args = {"data": str(data_dir / "data.yaml"), "epochs": epochs, "imgsz": imgsz, "batch": batch,
                  # absolute: ultralytics nests a relative project under runs/detect/
                  "device": "cpu", "workers": 0, "project": str(work.resolve()), "name": "run", "exist_ok": True,
                  "pretrained": False, "amp": False, "plots": False, "seed": 0, "deterministic": True,
                  "cache": "ram", "close_mosaic": max(1, epochs // 5)}
    if hours:
        train_args["time"] = hours
    fine_tune = base_model.endswith(".pt")
    if fine_tune:
        # ultralytics starts from random weights whenever pretrained is False, even for a .pt model
        train_args.update(pretrained=str(Path(base_model).resolve()), warmup_epochs=1.0)
    if resume:  # ultralytics restores the arguments, optimiser state and epoch from the checkpoint
        model = YOLO(str(last))
        model.train(resume=True)
    else:
        model = YOLO(base_model)
        model.train(**train_args)
    best = Path(model.trainer.save_dir) / "weights" / "best.pt"
    command = " ".join(["perception", *sys.argv[1:]]) if sys.argv and "perception" in sys.argv[0] else ""
    # The card names files, not this machine's paths.
    recorded_args = {**train_args, "model": Path(base_model).name,
                     "pretrained": Path(base_model).name if fine_tune else False}
    return register_trained(best, scene, name, version, counts, recorded_args, imgsz, eval_seeds, registry, evaluate,
                            command, init_ref)


def register_trained(best: Path, scene: Scene, name: str, version: str, counts: dict, train_args: dict, imgsz: int,
                     eval_seeds: list[int], registry: ModelRegistry | None = None, evaluate=None,
                     command: str = "", init_ref: str | None = None) -> dict:
    """Copy trained weights into models/, evaluate them, write the card and register them."""
    registry = registry or ModelRegistry()
    registry.root.mkdir(parents=True, exist_ok=True)
    target = registry.root / f"{name}-{version}.pt"
    shutil.copyfile(best, target)
    metrics = evaluate(target) if evaluate else {}
    card = registry.root / f"{name}-{version}.md"
    card.write_text(_card(name, version, scene, counts, train_args, eval_seeds, metrics, command, target, init_ref))
    # The registry's headline figures: the model's own evaluation, or the default scene's of an all-scenes one.
    headline = metrics["scenes"].get(scene.name, {}) if "scenes" in metrics else metrics
    entry = ModelEntry(name, version, target, sha256_of(target), list(CLASS_NAMES), imgsz,
                       {k: headline[k] for k in ("map50", "map50_95") if k in headline}, card.name)
    registry.add(entry)
    return {"model": entry.ref, "file": str(target), "sha256": entry.sha256, "size_bytes": target.stat().st_size,
            "data": counts, "metrics": metrics, "card": str(card)}


def _data_section(scene, counts) -> str:
    train = counts.get("train", {})
    if "components" not in train:
        return f"""Synthetic scene `{scene.name}` (`{Path(scene.source_path).name}`), 640x480 frames of all {len(scene.cameras)} cameras,
exported by `perception_nodes.detection.dataset.export_yolo` (labels: objects at least 30 % visible and 6 px tall).

| split | seeds | images | boxes |
|---|---|---|---|
""" + "".join(f"| {k} | {v['seeds']} | {v['images']} | {v['boxes']} |\n" for k, v in counts.items()
               if isinstance(v, dict))
    text = ("A mixture of randomised sites (`config/detector_training.yaml`, rendered by\n"
            "`perception_nodes.detection.mixture.export_mixture`; every seed a new site: camera height, pitch, field of\n"
            "view, lens and resolution, light, weather, video chain, ground and traffic colours drawn from the\n"
            "component's ranges; labels: objects at least 30 % visible and 6 px tall). No evaluation scene or seed is\n"
            "used (`config/detector_eval.yaml`; the loader refuses them).\n\n"
            "| split | seeds | images | boxes |\n|---|---|---|---|\n")
    for split in ("train", "val"):
        v = counts.get(split, {})
        text += f"| {split} | {v.get('seeds')} | {v.get('images')} | {v.get('boxes')} |\n"
    text += "\n| component (train) | images | boxes |\n|---|---|---|\n"
    text += "".join(f"| {k} | {v['images']} | {v['boxes']} |\n" for k, v in train["components"].items())
    text += "\n| condition (train) | images |\n|---|---|\n"
    text += "".join(f"| {k} | {v} |\n" for k, v in sorted(train["conditions"].items()))
    return text


def _metrics_section(scene, eval_seeds, metrics, args) -> str:
    if "scenes" in metrics:
        from perception_nodes.detection.mixture import scene_table

        return (f"Every evaluation scene of `config/detector_eval.yaml` at its own held-out seeds, every "
                f"{metrics.get('frame_step')}th frame of\nall cameras, run at input size {args.get('imgsz')}, "
                f"pycocotools, objects at least 50 % visible and 12 px tall (smaller ones are\nignore regions); "
                f"overall and per class, mAP@0.5 / mAP@0.5:0.95:\n\n" + scene_table(metrics["scenes"]))
    return f"""Held-out seeds {eval_seeds} of scene `{scene.name}`, 640x480 frames run at input size {args.get('imgsz')}, pycocotools,
objects at least 50 % visible and 12 px tall (smaller ones are ignore regions):
```json
{json.dumps(metrics, indent=2, sort_keys=True)}
```
"""


def _card(name, version, scene, counts, train_args, eval_seeds, metrics, command, target, init_ref=None) -> str:
    args = {k: v for k, v in train_args.items() if k not in ("project", "data")}
    if init_ref:
        origin = (f"fine-tuned from `{init_ref}` (see its card for how that was trained; the chain starts from\n"
                  f"  random initialisation, no pretrained weights can be downloaded here)")
    else:
        origin = "trained from\n  random initialisation (no pretrained weights can be downloaded here)"

    return f"""# Model card: {name}@{version}

- File: `{target.name}` ({target.stat().st_size / 1e6:.1f} MB), architecture from `yolov8n.yaml`, {origin}.
- Trained: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on the CPU.
- Command: `{command or 'perception train detector ...'}`

## Data
""" + _data_section(scene, counts) + f"""
## Training arguments (ultralytics)
```json
{json.dumps(args, indent=2, sort_keys=True)}
```

## Metrics
""" + _metrics_section(scene, eval_seeds, metrics, args)
