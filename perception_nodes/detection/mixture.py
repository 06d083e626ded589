"""Training data from a mixture of sites and conditions, and the evaluation scenes it must stay away from.

``config/detector_training.yaml`` names the mixture: components (a base scene, a share of the images and the
ranges ``world.conditions.randomize_scene`` draws each seed's site from), the seed ranges of the training and
validation splits. ``config/detector_eval.yaml`` names the evaluation scenes and their seeds. Building a
mixture refuses any seed an evaluation scene is scored on and any evaluation-only scene as a base, so no
training step ever sees what the promotion rule judges on.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from perception_nodes.errors import ConfigError
from perception_nodes.fileio import atomic_write_yaml, read_yaml_mapping
from perception_nodes.paths import package_path
from perception_nodes.world.conditions import Randomization


def parse_seed_range(text, where: str) -> list[int]:
    """``"2000-2099"``, ``"5,7,9"`` or a list of ints."""
    if isinstance(text, (list, tuple)):
        return [int(v) for v in text]
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ConfigError(f"{where}: seeds must be like '2000-2099' or '5,7', got {text!r}") from None
    return out


@dataclass(frozen=True)
class EvalScene:
    """One named evaluation scene: its seeds, whether its lot may be a training base (with other seeds), and
    its goal figures (overall mAP@0.5, mAP@0.5:0.95)."""

    name: str
    seeds: tuple[int, ...]
    trainable_base: bool
    goal_map50: float
    goal_map50_95: float
    group: str
    frame_step: int = 0            # 0: the set's


@dataclass(frozen=True)
class EvalSet:
    scenes: tuple[EvalScene, ...]
    frame_step: int
    tolerance: float               # the promotion rule's allowance per scene, mAP points
    class_gap: float               # cars and persons within this of their scene's overall figure
    source: str = ""

    def scene(self, name: str) -> EvalScene:
        for s in self.scenes:
            if s.name == name:
                return s
        raise ConfigError(f"{self.source}: no evaluation scene {name!r} (has {[s.name for s in self.scenes]})")

    @property
    def reserved_seeds(self) -> set[int]:
        return {seed for s in self.scenes for seed in s.seeds}


def load_eval_set(path: str | os.PathLike | None = None) -> EvalSet:
    path = Path(path) if path else package_path("config/detector_eval.yaml")
    data = read_yaml_mapping(path, "detector evaluation set")
    goals = data.get("goals") or {}
    scenes = []
    for i, item in enumerate(data.get("scenes") or []):
        where = f"{path}: scenes[{i}]"
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError(f"{where}: needs 'name' and 'seeds'")
        group = str(item.get("group", "day"))
        if group not in goals:
            raise ConfigError(f"{where}: group {group!r} has no goals (goals: {sorted(goals)})")
        scenes.append(EvalScene(str(item["name"]), tuple(parse_seed_range(item.get("seeds", ""), where)),
                                bool(item.get("trainable_base", False)), float(goals[group][0]),
                                float(goals[group][1]), group, int(item.get("frame_step", 0))))
    if not scenes:
        raise ConfigError(f"{path}: 'scenes' must list at least one evaluation scene")
    return EvalSet(tuple(scenes), int(data.get("frame_step", 30)), float(data.get("tolerance", 0.01)),
                   float(data.get("class_gap", 0.05)), str(path))


@dataclass(frozen=True)
class Component:
    name: str
    base: str
    weight: float
    randomize: Randomization | None     # None: the base scene as it is (new seeds only)


@dataclass(frozen=True)
class Mixture:
    components: tuple[Component, ...]
    images: int
    val_images: int
    frames_per_seed: int
    train_seeds: tuple[int, ...]
    val_seeds: tuple[int, ...]
    source: str = ""

    def shares(self, total: int) -> dict[str, int]:
        """Images per component: the weights' shares of ``total`` (largest remainders get the leftovers)."""
        weight_sum = sum(c.weight for c in self.components)
        raw = {c.name: total * c.weight / weight_sum for c in self.components}
        out = {k: int(v) for k, v in raw.items()}
        for name in sorted(raw, key=lambda k: -(raw[k] - out[k]))[: total - sum(out.values())]:
            out[name] += 1
        return out


def load_mixture(path: str | os.PathLike | None = None, eval_set: EvalSet | None = None) -> Mixture:
    """The training mixture, checked against the evaluation set (no shared seed, no evaluation-only base)."""
    from perception_nodes.world.scene import load_scene

    path = Path(path) if path else package_path("config/detector_training.yaml")
    data = read_yaml_mapping(path, "detector training mixture")
    components = []
    for i, item in enumerate(data.get("components") or []):
        where = f"{path}: components[{i}]"
        if not isinstance(item, dict) or not item.get("name") or not item.get("base"):
            raise ConfigError(f"{where}: needs 'name', 'base' and 'weight'")
        weight = float(item.get("weight", 1.0))
        if weight <= 0:
            raise ConfigError(f"{where}: 'weight' must be above 0")
        load_scene(item["base"])  # fails early on an unknown base
        randomize = item.get("randomize")
        components.append(Component(str(item["name"]), str(item["base"]), weight,
                                    None if randomize is None else Randomization.from_dict(randomize,
                                                                                          f"{where}: randomize")))
    if not components:
        raise ConfigError(f"{path}: 'components' must list at least one component")
    if len({c.name for c in components}) != len(components):
        raise ConfigError(f"{path}: component names must be unique")
    mixture = Mixture(tuple(components), int(data.get("images", 1000)), int(data.get("val_images", 100)),
                      int(data.get("frames_per_seed", 2)),
                      tuple(parse_seed_range(data.get("train_seeds", ""), f"{path}: train_seeds")),
                      tuple(parse_seed_range(data.get("val_seeds", ""), f"{path}: val_seeds")), str(path))
    check_held_out(mixture, eval_set or load_eval_set())
    return mixture


def check_held_out(mixture: Mixture, eval_set: EvalSet) -> None:
    """Raise ConfigError when the mixture would train or validate on anything the evaluation set scores."""
    shared = (set(mixture.train_seeds) | set(mixture.val_seeds)) & eval_set.reserved_seeds
    if shared:
        raise ConfigError(f"{mixture.source}: seeds {sorted(shared)[:10]} are evaluation seeds "
                          f"({eval_set.source}); training and validation must not use them")
    if set(mixture.train_seeds) & set(mixture.val_seeds):
        raise ConfigError(f"{mixture.source}: train_seeds and val_seeds overlap")
    names = {s.name: s for s in eval_set.scenes}
    for component in mixture.components:
        scene = names.get(component.base)
        if scene is not None and not scene.trainable_base:
            raise ConfigError(f"{mixture.source}: component {component.name!r} trains on evaluation-only scene "
                              f"{component.base!r}")


def component_scene(component: Component, seed: int):
    """The scene one seed of a component renders: the base at that seed, randomised when the component says."""
    from perception_nodes.world.conditions import randomize_scene
    from perception_nodes.world.scene import load_scene

    base = load_scene(component.base, seed=seed)
    return base if component.randomize is None else randomize_scene(base, seed, component.randomize)


def condition_bucket(scene) -> str:
    """A coarse label of what a training image shows, for the card's balance table."""
    c = scene.conditions
    if c is None:
        return "plain"
    light = "night" if c.daylight < 0.15 else "dusk" if c.daylight < 0.5 else "day"
    weather = "fog" if c.fog_density > 0 else "rain" if c.rain > 0 else "glare" if c.glare > 0 else "clear"
    return f"{light}/{weather}"


def _render_seed(job) -> dict:
    """Worker: one seed of one component -> images and labels in the split's folders."""
    import numpy as np

    from perception_nodes.detection.dataset import write_yolo_sample
    from perception_nodes.world import World

    component, seed, count, image_dir, label_dir = job
    scene = component_scene(component, seed)
    world = World(scene)
    rng = np.random.default_rng([seed, 0xDA7A])
    # Two cameras per site (each camera's background is rendered once per site, the costly part), random frames.
    cams = rng.permutation(len(world.cameras))[:2]
    picks = [(int(cams[k % len(cams)]), int(rng.integers(world.scene.frame_count))) for k in range(count)]
    boxes_written = 0
    for k, (ci, frame) in enumerate(picks):
        image, boxes = world.render(ci, frame)
        stem = f"{component.name}_s{seed}_{world.cameras[ci].spec.id}_f{frame:05d}_{k}"
        boxes_written += write_yolo_sample(Path(image_dir), Path(label_dir), stem, image, boxes)
    return {"component": component.name, "seed": seed, "images": count, "boxes": boxes_written,
            "bucket": condition_bucket(scene), "resolution": f"{scene.cameras[0].width}x{scene.cameras[0].height}"}


def export_mixture(mixture: Mixture, out: str | os.PathLike, workers: int = 2, log=print) -> dict:
    """Render the mixture into a YOLO data folder (train and val splits); returns counts per split, component
    and condition. Each seed is a new site; it gives ``frames_per_seed`` images (random camera and frame)."""
    from perception_nodes.world import CLASS_NAMES

    out = Path(out)
    counts: dict = {}
    for split, total, seeds in (("train", mixture.images, mixture.train_seeds),
                                ("val", mixture.val_images, mixture.val_seeds)):
        image_dir, label_dir = out / "images" / split, out / "labels" / split
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        jobs, next_seed, shares = [], 0, mixture.shares(total)
        for component in mixture.components:
            want = shares[component.name]
            while want > 0:
                if next_seed >= len(seeds):
                    raise ConfigError(f"{mixture.source}: {split} needs more seeds than the {len(seeds)} given")
                n = min(want, mixture.frames_per_seed)
                jobs.append((component, seeds[next_seed], n, str(image_dir), str(label_dir)))
                next_seed += 1
                want -= n
        log(f"[mixture] {split}: rendering {total} images from {len(jobs)} sites on {workers} workers")
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            results = list(pool.map(_render_seed, jobs, chunksize=4))
        split_counts = {"images": 0, "boxes": 0,
                        "seeds": f"{min(r['seed'] for r in results)}-{max(r['seed'] for r in results)}",
                        "components": {}, "conditions": {}}
        for r in results:
            split_counts["images"] += r["images"]
            split_counts["boxes"] += r["boxes"]
            comp = split_counts["components"].setdefault(r["component"], {"images": 0, "boxes": 0})
            comp["images"] += r["images"]
            comp["boxes"] += r["boxes"]
            split_counts["conditions"][r["bucket"]] = split_counts["conditions"].get(r["bucket"], 0) + r["images"]
        counts[split] = split_counts
    atomic_write_yaml(out / "data.yaml", {"path": str(out.resolve()), "train": "images/train", "val": "images/val",
                                          "names": {i: n for i, n in enumerate(CLASS_NAMES)}})
    atomic_write_yaml(out / "counts.yaml", counts)
    return counts


def scene_table(scenes: dict, reference: dict | None = None, classes=("car", "truck", "person", "bicycle")) -> str:
    """A Markdown table of per-scene results (``evaluate_all_scenes``'s ``scenes``): overall and per-class
    mAP@0.5 / mAP@0.5:0.95, and with ``reference`` (another model's ``scenes``) the change overall."""
    head = "| scene | seeds | overall | " + " | ".join(classes) + (" | change vs reference |" if reference else " |")
    rule = "|" + "---|" * (3 + len(classes) + (1 if reference else 0))
    rows = [head, rule]
    for name, result in scenes.items():
        per_class = result.get("per_class", {})
        cells = [f"{per_class[c]['map50']:.3f} / {per_class[c]['map50_95']:.3f}" if c in per_class else "-"
                 for c in classes]
        row = (f"| {name} | {','.join(str(s) for s in result.get('seeds', []))} | "
               f"{result['map50']:.3f} / {result['map50_95']:.3f} | " + " | ".join(cells) + " |")
        if reference:
            ref = reference.get(name)
            row += (f" {result['map50'] - ref['map50']:+.3f} / {result['map50_95'] - ref['map50_95']:+.3f} |"
                    if ref else " - |")
        rows.append(row)
    return "\n".join(rows) + "\n"
