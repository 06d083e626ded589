"""``perception train embedder``: metric learning of an appearance embedder on crops of the synthetic world.

Identities are (seed, actor) pairs of the training seeds; evaluation seeds never enter. The recipe is the
re-identification "strong baseline" (Luo et al., 2019) at a small scale: P x K identity-balanced batches,
batch-hard triplet loss on the embedding plus label-smoothed cross-entropy on a batch-normalised neck, Adam
with warm-up and cosine decay, random resized crops, flips and brightness/contrast jitter (no hue jitter: colour
is evidence). Each epoch ends with a checkpoint (``--resume`` continues from it) and cross-camera mAP on a
validation seed; the model is exported to ONNX and registered with a card.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception_nodes.reid.learned import MEAN, STD


@dataclass
class EmbedderTrainingConfig:
    scene: str = "fleet"
    train_seeds: tuple[int, ...] = tuple(range(1000, 1020))
    val_seed: int = 1099
    duration_s: float = 60.0
    input_size: int = 64
    dim: int = 128
    epochs: int = 12
    identities_per_batch: int = 32
    crops_per_identity: int = 4
    learning_rate: float = 1e-3
    triplet_margin: float = 0.3
    label_smoothing: float = 0.1
    threads: int = 2
    seed: int = 0


def _network(dim: int, classes: int):
    import torch
    from torch import nn

    def block(cin, cout, stride):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class Embedder(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(block(3, 32, 2), block(32, 64, 2), block(64, 128, 2), block(128, 192, 2))
            self.project = nn.Linear(2 * 192, dim)
            self.neck = nn.BatchNorm1d(dim)
            self.classifier = nn.Linear(dim, classes, bias=False)

        def forward(self, x):
            f = self.features(x)
            pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
            return self.project(pooled)

    return Embedder()


class _Exportable:
    """The embedder as exported: features -> projection -> neck -> L2 norm (the neck's output is what the
    strong baseline retrieves with)."""

    @staticmethod
    def wrap(model):
        import torch
        from torch import nn

        class Export(nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, images):
                embedding = self.inner.neck(self.inner(images))
                return torch.nn.functional.normalize(embedding, dim=1)

        return Export(model)


def _dataset(cfg: EmbedderTrainingConfig, seeds, log):
    from perception_nodes.evaluation.retrieval import sightings

    crops, labels, cameras, classes = [], [], [], []
    names: dict[tuple[int, int], int] = {}
    for seed in seeds:
        for s in sightings(cfg.scene, seed, stride_s=0.5, window_s=1.0, min_side_px=16, duration_s=cfg.duration_s,
                           log=log):
            key = (seed, s.identity)
            names.setdefault(key, len(names))
            crops.append(_resize(s.crop, cfg.input_size))
            labels.append(names[key])
            cameras.append(s.observation.camera_id)
            classes.append(s.observation.class_name)
    return np.stack(crops), np.array(labels), np.array(cameras), np.array(classes)


def _resize(crop: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)[:, :, ::-1].copy()  # RGB uint8


def _to_tensor(batch_rgb: np.ndarray):
    import torch

    x = torch.from_numpy(batch_rgb).float().div_(255.0).permute(0, 3, 1, 2)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _augment(batch_rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    size = batch_rgb.shape[1]
    out = np.empty_like(batch_rgb)
    for i, img in enumerate(batch_rgb):
        scale = rng.uniform(0.8, 1.0)
        side = max(8, int(size * scale))
        x0, y0 = rng.integers(0, size - side + 1, size=2)
        patch = cv2.resize(img[y0:y0 + side, x0:x0 + side], (size, size), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        gain, bias = rng.uniform(0.75, 1.25), rng.uniform(-20, 20)
        out[i] = np.clip(patch.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    return out


def _pk_batches(labels: np.ndarray, p: int, k: int, rng: np.random.Generator):
    by_label: dict[int, np.ndarray] = {}
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) >= 2:
            by_label[int(label)] = rows
    order = rng.permutation(list(by_label))
    for start in range(0, len(order) - p + 1, p):
        rows = [rng.choice(by_label[int(label)], k, replace=len(by_label[int(label)]) < k)
                for label in order[start:start + p]]
        yield np.concatenate(rows)


def _batch_hard_triplet(embeddings, labels, margin: float):
    import torch

    distance = torch.cdist(embeddings, embeddings)
    same = labels[:, None] == labels[None, :]
    hardest_positive = (distance * same).max(dim=1).values
    hardest_negative = (distance + same * 1e6).min(dim=1).values
    return torch.relu(hardest_positive - hardest_negative + margin).mean()


def cross_camera_map(vectors: np.ndarray, labels: np.ndarray, cameras: np.ndarray) -> float:
    """Mean AP of every crop against the other cameras' crops (a quick validation figure)."""
    similarity = vectors @ vectors.T
    aps = []
    for i in range(len(vectors)):
        others = cameras != cameras[i]
        relevant = (labels == labels[i]) & others
        total = int(relevant.sum())
        if total == 0:
            continue
        candidates = np.flatnonzero(others)
        ranked = candidates[np.argsort(-similarity[i, candidates], kind="stable")]
        flags = relevant[ranked].astype(np.float64)
        hits = np.cumsum(flags)
        aps.append(float(np.sum(flags * hits / np.arange(1, len(flags) + 1)) / total))
    return float(np.mean(aps)) if aps else float("nan")


def _embed(model, crops_rgb: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(crops_rgb), 256):
            e = model.neck(model(_to_tensor(crops_rgb[start:start + 256])))
            out.append(torch.nn.functional.normalize(e, dim=1).numpy())
    return np.vstack(out)


def train_embedder(cfg: EmbedderTrainingConfig, work: Path, onnx_path: Path, resume: bool = False, log=print) -> dict:
    """Train, checkpoint every epoch, export ONNX; a summary with the validation figures per epoch."""
    import torch

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    crops, labels, cameras, _ = _dataset(cfg, cfg.train_seeds, log)
    val_crops, val_labels, val_cameras, val_classes = _dataset(cfg, (cfg.val_seed,), log)
    vehicles = np.isin(val_classes, ("car", "truck"))
    log(f"[train] {len(crops)} training crops of {len(np.unique(labels))} identities "
        f"(seeds {list(cfg.train_seeds)}), {len(val_crops)} validation crops (seed {cfg.val_seed}) "
        f"in {time.perf_counter() - started:.0f} s")
    model = _network(cfg.dim, int(labels.max()) + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=5e-4)
    steps_per_epoch = max(1, len(np.unique(labels)) // cfg.identities_per_batch)
    total_steps = steps_per_epoch * cfg.epochs

    def lr_at(step):
        warm = steps_per_epoch
        if step < warm:
            return cfg.learning_rate * (step + 1) / warm
        return cfg.learning_rate * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(total_steps - warm, 1)))

    checkpoint = work / "checkpoint.pt"
    history, first_epoch, step = [], 0, 0
    if resume and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        first_epoch, step, history = state["epoch"] + 1, state["step"], state["history"]
        log(f"[train] resumed from {checkpoint} after epoch {first_epoch}")
    rng = np.random.default_rng([cfg.seed, first_epoch])
    ce = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    for epoch in range(first_epoch, cfg.epochs):
        model.train()
        losses = []
        t0 = time.perf_counter()
        for rows in _pk_batches(labels, cfg.identities_per_batch, cfg.crops_per_identity, rng):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            x = _to_tensor(_augment(crops[rows], rng))
            y = torch.from_numpy(labels[rows]).long()
            features = model(x)
            loss = _batch_hard_triplet(features, y, cfg.triplet_margin) + ce(model.classifier(model.neck(features)), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
            step += 1
        val = _embed(model, val_crops)
        record = {"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4),
                  "val_vehicle_map": round(cross_camera_map(val[vehicles], val_labels[vehicles],
                                                            val_cameras[vehicles]), 4),
                  "seconds": round(time.perf_counter() - t0, 1)}
        history.append(record)
        log(f"[train] epoch {record['epoch']}/{cfg.epochs}: loss {record['loss']}, validation vehicle "
            f"cross-camera mAP {record['val_vehicle_map']} ({record['seconds']} s)")
        tmp = checkpoint.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch, "step": step,
                    "history": history, "config": cfg.__dict__}, tmp)
        tmp.replace(checkpoint)
    export = _Exportable.wrap(model).eval()
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_onnx = onnx_path.with_suffix(".tmp.onnx")
    torch.onnx.export(export, torch.zeros(1, 3, cfg.input_size, cfg.input_size), str(tmp_onnx),
                      input_names=["images"], output_names=["embeddings"],
                      dynamic_axes={"images": {0: "batch"}, "embeddings": {0: "batch"}}, opset_version=17,
                      dynamo=False)
    tmp_onnx.replace(onnx_path)
    summary = {"history": history, "train_crops": int(len(crops)), "identities": int(len(np.unique(labels))),
               "val_crops": int(len(val_crops)), "seconds": round(time.perf_counter() - started, 1)}
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
