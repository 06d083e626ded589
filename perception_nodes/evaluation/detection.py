"""Detection accuracy against the synthetic world's ground truth (pycocotools mAP)."""
from __future__ import annotations

import time

import numpy as np

from perception_nodes.detection.dataset import EvalPolicy
from perception_nodes.errors import ConfigError


def parse_seeds(text: str) -> list[int]:
    """'100-111' or '200,201' -> [..]; ConfigError when it names none."""
    from perception_nodes.detection.mixture import parse_seed_range

    seeds = parse_seed_range(text, "seeds")
    if not seeds:
        raise ConfigError(f"no seeds in {text!r}")
    return seeds


def evaluate_model(weights, scene_name: str, seeds: list[int], frame_step: int, imgsz: int, conf: float = 0.001,
                   batch: int = 4, policy: EvalPolicy = EvalPolicy(), entry=None) -> dict:
    """mAP of a weights file (through the backend its registry ``entry`` names; default ultralytics) on every
    ``frame_step``-th frame of the given seeds (all cameras)."""
    from perception_nodes.detection.backend import UltralyticsDetector
    from perception_nodes.detection.runtime import make_detector
    from perception_nodes.detection.dataset import coco_evaluate, coco_ground_truth, to_coco_detections
    from perception_nodes.world import World, load_scene

    # NMS IoU: the backend's default, which is also the detector node's (`iou` parameter, 0.7) and
    # ultralytics' own validation setting, so the figures describe what the node publishes.
    detector = make_detector(entry, weights, imgsz, conf=conf) if entry is not None else \
        UltralyticsDetector(weights, imgsz=imgsz, conf=conf)
    images_all, annotations, categories, detections = [], [], None, []
    for seed in seeds:
        world = World(load_scene(scene_name, seed=seed))
        frames = list(range(0, world.scene.frame_count, frame_step))
        pending: list[tuple[int, np.ndarray]] = []

        def predict_pending() -> None:
            for (image_id, _), rows in zip(pending, detector.predict([image for _, image in pending])):
                detections.extend(to_coco_detections(image_id + offset, rows))
            pending.clear()

        def on_image(image_id: int, image: np.ndarray) -> None:
            pending.append((image_id, image))
            if len(pending) == batch:
                predict_pending()

        offset = len(images_all)
        gt, _ = coco_ground_truth(world, frames, on_image, policy)
        predict_pending()
        for image in gt["images"]:
            image["id"] += offset
        for ann in gt["annotations"]:
            ann["image_id"] += offset
            ann["id"] += len(annotations)
        images_all += gt["images"]
        annotations += gt["annotations"]
        categories = gt["categories"]
    result = coco_evaluate({"images": images_all, "annotations": annotations, "categories": categories}, detections)
    result["images"] = len(images_all)
    result["evaluated_objects"] = sum(1 for a in annotations if not a["iscrowd"])
    result["policy"] = policy.to_dict()
    return result


def evaluate_detection(weights, model_ref: str, scene_name: str, seed: int | None, seeds: list[int],
                       frame_step: int, imgsz: int, policy: EvalPolicy, entry=None) -> dict:
    """``perception eval detection``: mAP overall and per class; ``seed`` (when given) replaces ``seeds``."""
    from perception_nodes.world import load_scene

    scene = load_scene(scene_name, seed=seed)
    seeds = [scene.seed] if seed is not None else list(seeds)
    started = time.perf_counter()
    result = evaluate_model(weights, scene_name, seeds, frame_step, imgsz, policy=policy, entry=entry)
    return {**result, "imgsz": imgsz, "model": model_ref, "scene": scene.name, "seeds": seeds,
            "frame_step": frame_step, "wall_s": round(time.perf_counter() - started, 1)}


def bench_frames(scene: str, seed: int | None, frames: int, cameras: int = 4) -> tuple[list[str], list[list[np.ndarray]]]:
    """(camera ids, frames[step][camera]) of up to ``cameras`` cameras of a scene, every third frame: what
    ``perception bench detector`` feeds the raw model and the node."""
    from perception_nodes.world import World, load_scene

    world = World(load_scene(scene, seed=seed))
    cams = [c.spec.id for c in world.cameras][:cameras]
    return cams, [[world.render(ci, f * 3)[0] for ci in range(len(cams))] for f in range(frames)]


def runtime_variants(registry, ref: str) -> list:
    """The registered runtime variants of a model: the same version of <base>, <base>-onnx, <base>-ov-<precision>."""
    entry = registry.resolve(ref)
    base = entry.name.split("-ov-")[0].removesuffix("-onnx")
    names = {base, f"{base}-onnx"} | {f"{base}-ov-{p}" for p in ("fp32", "bf16", "int8")}
    return [e for e in registry.entries if e.name in names and e.version == entry.version]


def bench_backends(variants: list, frames: list[np.ndarray], rounds: int = 3, log=print) -> dict:
    """Every variant on the same frames, one frame per call, in interleaved rounds (the CPU's speed drifts over
    minutes; each round runs every variant once): frames/s, p50/p99 latency per frame. ``variants``: (entry, path)."""
    from perception_nodes.detection.runtime import make_detector

    detectors = {}
    for entry, path in variants:
        detector = make_detector(entry, path, entry.input_size, conf=0.25)
        detector.warmup()
        detectors[entry.ref] = (entry, detector)
    latencies: dict[str, list[float]] = {ref: [] for ref in detectors}
    for round_index in range(rounds):
        for ref, (_, detector) in detectors.items():
            for frame in frames:
                began = time.perf_counter()
                detector.predict([frame])
                latencies[ref].append((time.perf_counter() - began) * 1000.0)
        log(f"[bench] round {round_index + 1}/{rounds}: " + ", ".join(
            f"{ref} {np.median(values[-len(frames):]):.1f} ms" for ref, values in latencies.items()))
    results = {}
    for ref, (entry, detector) in detectors.items():
        values = np.asarray(latencies[ref])
        results[ref] = {"backend": entry.backend, "precision": entry.precision, "file": entry.file.name,
                        "frames_per_s": float(1000.0 / values.mean()), "p50_ms": float(np.percentile(values, 50)),
                        "p99_ms": float(np.percentile(values, 99)), "note": getattr(detector, "streams_note", "")}
        close = getattr(detector, "close", None)
        if close:
            close()
    return results


def calibration_frames(scene: str, seeds: list[int], count: int) -> list[np.ndarray]:
    """``count`` frames spread over the seeds, cameras and scene time of a scene (for INT8 calibration)."""
    from perception_nodes.world import World, load_scene

    per_seed = max(1, -(-count // max(1, len(seeds))))
    frames = []
    for seed in seeds:
        world = World(load_scene(scene, seed=seed))
        cameras, total = len(world.cameras), world.scene.frame_count
        for i in range(per_seed):
            frames.append(world.render(i % cameras, (i * total) // per_seed)[0])
    return frames[:count]


def labelled_frames(scene: str, seeds: list[int], frame_step: int,
                    policy: EvalPolicy = EvalPolicy()) -> tuple[list[np.ndarray], dict]:
    """Every ``frame_step``-th frame of the seeds (all cameras) and their COCO ground truth, image ids 1..n in
    the order of the frames: validation data for accuracy-controlled quantisation."""
    from perception_nodes.detection.dataset import coco_ground_truth
    from perception_nodes.world import World, load_scene

    images, truth = [], {"images": [], "annotations": [], "categories": []}
    for seed in seeds:
        world = World(load_scene(scene, seed=seed))
        offset = len(images)
        gt, _ = coco_ground_truth(world, list(range(0, world.scene.frame_count, frame_step)),
                                  lambda _, image: images.append(image), policy)
        for image in gt["images"]:
            image["id"] += offset
        for ann in gt["annotations"]:
            ann["image_id"] += offset
            ann["id"] += len(truth["annotations"])
        truth["images"] += gt["images"]
        truth["annotations"] += gt["annotations"]
        truth["categories"] = gt["categories"]
    return images, truth


ACCURACY_CONFIDENCE = 0.001  # what `perception eval detection` scores at
ACCURACY_NMS_IOU = 0.7       # the node's NMS


class AccuracyValidation:
    """NNCF's validation function for a detector, with the FP32 model's detections as the reference.

    Called with a compiled model and items ``(image_id, image)`` (any subset of the validation images: NNCF also
    scores single images to rank layers), it returns one minus the worst fall, on those images, of the figures the
    selection rule checks (overall, cars, persons; mAP@0.5 and mAP@0.5:0.95) below the FP32 model's figures on the
    same images: the FP32 model scores 1 and NNCF's absolute drop is that worst fall (one, not zero, because NNCF
    also divides by the reference's score).
    """

    def __init__(self, images: list[np.ndarray], ground_truth: dict, input_size: int):
        self.items = list(enumerate(images, start=1))  # (COCO image id, image), as ``labelled_frames`` numbers them
        self.ground_truth, self.input_size = ground_truth, int(input_size)
        self.reference: dict[int, list[dict]] = {}

    def set_reference(self, compiled_model) -> None:
        self.reference = self.detections(compiled_model, self.items)

    def detections(self, compiled_model, items) -> dict[int, list[dict]]:
        from perception_nodes.detection.dataset import to_coco_detections
        from perception_nodes.detection.openvino_backend import postprocess, prepare_input

        found = {}
        for image_id, image in items:
            tensor, scale, offset = prepare_input(image, self.input_size)
            output = compiled_model(tensor)[0][0]
            found[image_id] = to_coco_detections(image_id, postprocess(output, scale, offset, image.shape[:2],
                                                                       ACCURACY_CONFIDENCE, ACCURACY_NMS_IOU))
        return found

    def score(self, image_ids, detections: dict[int, list[dict]]) -> dict:
        from perception_nodes.detection.dataset import coco_evaluate

        wanted = set(image_ids)
        truth = {"images": [i for i in self.ground_truth["images"] if i["id"] in wanted],
                 "annotations": [a for a in self.ground_truth["annotations"] if a["image_id"] in wanted],
                 "categories": self.ground_truth["categories"]}
        return coco_evaluate(truth, [d for i in image_ids for d in detections[i]])

    def __call__(self, compiled_model, items) -> tuple[float, None]:
        from perception_nodes.detection.selection import worst_drop

        items = list(items)
        ids = [image_id for image_id, _ in items]
        ours = self.score(ids, self.detections(compiled_model, items))
        return 1.0 - worst_drop(ours, self.score(ids, self.reference)), None


def mixture_calibration_frames(mixture, count: int) -> list[np.ndarray]:
    """``count`` frames from a training mixture's sites (one per training seed, components in their shares):
    INT8 calibration that sees the light and weather the model was trained for, and no evaluation seed."""
    from perception_nodes.detection.mixture import component_scene
    from perception_nodes.world import World

    frames, seeds, shares = [], iter(mixture.train_seeds), mixture.shares(count)
    for component in mixture.components:
        for _ in range(shares[component.name]):
            seed = next(seeds)
            world = World(component_scene(component, seed))
            frames.append(world.render(seed % len(world.cameras), (seed * 37) % world.scene.frame_count)[0])
    return frames


def evaluate_all_scenes(weights, imgsz: int, eval_set=None, entry=None, scenes: list[str] | None = None,
                        log=print) -> dict:
    """mAP overall and per class on every evaluation scene of ``config/detector_eval.yaml`` at its own seeds:
    ``{"scenes": {name: result}, "frame_step": ..}``."""
    from perception_nodes.detection.mixture import load_eval_set

    eval_set = eval_set or load_eval_set()
    out = {}
    for scene in eval_set.scenes:
        if scenes and scene.name not in scenes:
            continue
        started = time.perf_counter()
        frame_step = scene.frame_step or eval_set.frame_step
        result = evaluate_model(weights, scene.name, list(scene.seeds), frame_step, imgsz, entry=entry)
        result.update(seeds=list(scene.seeds), group=scene.group, frame_step=frame_step,
                      wall_s=round(time.perf_counter() - started, 1))
        out[scene.name] = result
        log(f"[eval] {scene.name:12s} mAP@0.5 {result['map50']:.3f}  mAP@0.5:0.95 {result['map50_95']:.3f}  "
            f"({result['images']} images, {result['evaluated_objects']} objects, {result['wall_s']} s)")
    return {"scenes": out, "frame_step": eval_set.frame_step, "eval_set": eval_set.source}
