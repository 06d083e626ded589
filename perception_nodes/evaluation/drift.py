"""Drift against ground truth: a model's reference from its validation frames, and the drift monitor run on
streams whose conditions are known (pure Python, no ROS).

``build_reference`` runs the detector (as the node runs it: site classes, the node's confidence) on every
``frame_step``-th frame of reference seeds and stores every feature. ``run_stream`` renders a run's cameras at
``sample_hz`` per camera in scene time (a run: consecutive episodes of the scene, ``episodes``), runs the same detector and feeds the drift monitor, evaluating every
``eval_period_s`` like the detector node does. ``evaluate_drift`` runs the cases the issue names:
long runs of the reference conditions (no feature may flag), the night scene (the image features must flag) and
a camera knocked by a given angle mid-run (the view must flag), with the time each took.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from perception_nodes.monitoring.drift import (DriftConfig, DriftMonitor, DriftReference, FeatureSamples,
                                               reduce_frame)

# What each condition must raise: a night must show in the image's brightness or contrast, a moved camera in its
# view. Other features may flag too (a night also lowers detection scores); the false-flag count comes from the
# reference condition's runs.
EXPECTED = {"night": ("image_brightness", "image_contrast"), "bumped": ("view_shift_px",)}


class StreamDetector:
    """The detector as the node runs it (site classes, the node's confidence and NMS), with its embedder."""

    def __init__(self, model_ref: str, params_file: str | None = None, imgsz: int | None = None,
                 embed: bool = True):
        """``imgsz``: None runs the params file's input size (0 there: the model's); ``embed``: also run the
        node's appearance embedder."""
        from perception_nodes.detection.registry import ModelRegistry
        from perception_nodes.detection.runtime import DetectorRuntime, RuntimeConfig, default_loader
        from perception_nodes.graph import detector_parameters

        values = detector_parameters(params_file)
        config = RuntimeConfig(model=model_ref, conf=float(values.get("confidence", 0.25)),
                               iou=float(values.get("iou", 0.7)),
                               imgsz=int(values.get("imgsz", 0) or 0) if imgsz is None else int(imgsz),
                               cpu_streams=1)
        self.runtime = DetectorRuntime(config, default_loader(ModelRegistry(), config, log=lambda m: None),
                                       log=lambda m: None)
        self.runtime.start()
        self.embedder = None
        embedding = values.get("appearance_embedding", "") if embed else ""
        if embedding:
            from perception_nodes.retrieval.embedders import load_embedder

            self.embedder = load_embedder(embedding)

    def __call__(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        _, results, _ = self.runtime.infer(images)
        out = []
        for image, rows in zip(images, results):
            rows = np.asarray(rows).reshape(-1, 6)
            emb = self.embedder.embed(image, rows[:, :4]) if self.embedder is not None and len(rows) else None
            out.append((rows, emb))
        return out

    def close(self) -> None:
        self.runtime.close()


def scene_variant(name: str, seed: int, duration_s: float | None = None, bump_deg: float | None = None,
           bump_camera: str | None = None, bump_at_s: float | None = None):
    """One scene, optionally longer (same traffic density per second of entries) and with one camera knocked."""
    from perception_nodes.world import load_scene
    from perception_nodes.world.scene import CameraBump

    scene = load_scene(name, seed=seed)
    if duration_s is not None and duration_s != scene.duration_s:
        scene = replace(scene, duration_s=float(duration_s),
                        actor_count=int(round(scene.actor_count * duration_s / scene.duration_s)))
    if bump_deg is not None:
        scene = replace(scene, camera_bump=CameraBump(bump_camera or scene.cameras[1].id, float(bump_at_s),
                                                      yaw_deg=float(bump_deg)))
    return scene


@dataclass
class Episode:
    scene: object
    offset_s: float  # where the episode starts on the run's clock


def episodes(name: str, seed: int, seconds: float, bump_deg: float | None = None,
             bump_at_s: float = 0.0) -> list[Episode]:
    """A run of ``seconds`` as consecutive episodes of the scene's own length, each with its own seed
    (``seed * 1000 + k``): what a synthetic camera shows live (it loops its scene), with new traffic in every
    episode rather than one seed repeated. A bump at ``bump_at_s`` stays in every later episode."""
    from perception_nodes.world import load_scene

    length = load_scene(name, seed=seed).duration_s
    out, offset, k = [], 0.0, 0
    while offset < seconds - 1e-9:
        duration = min(length, seconds - offset)
        bumped = bump_deg is not None and bump_at_s < offset + duration
        scene = scene_variant(name, seed * 1000 + k, duration if duration != length else None,
                       bump_deg if bumped else None, bump_at_s=max(0.0, bump_at_s - offset))
        out.append(Episode(scene, offset))
        offset += duration
        k += 1
    return out


def build_reference(detector: StreamDetector, model_ref: str, scene_name: str, seeds: list[int],
                    frame_step: int, command: str = "", log=print) -> DriftReference:
    from perception_nodes.world import World

    samples = FeatureSamples()
    frames = 0
    for seed in seeds:
        world = World(scene_variant(scene_name, seed))
        for frame in range(0, world.scene.frame_count, frame_step):
            images = [world.render(c, frame)[0] for c in range(len(world.cameras))]
            for image, (rows, emb) in zip(images, detector(images)):
                samples.add_frame(reduce_frame(image), rows, image.shape[1], image.shape[0], emb)
                frames += 1
        log(f"[drift] reference: seed {seed} done ({frames} frames so far)")
    return DriftReference.from_samples(model_ref, samples, {
        "scene": scene_name, "seeds": seeds, "frame_step": frame_step, "frames": frames, "command": command,
        "detections": int(sum(samples.categorical["class_mix"].values()))})


def run_stream(detector: StreamDetector, reference: DriftReference | None, configs: dict[str, DriftConfig],
               run: list[Episode], sample_hz: float = 1.0, eval_period_s: float = 5.0,
               log=print) -> dict[str, list[dict]]:
    """Evaluations over one run (consecutive episodes) for each named config, fed the same frames and
    detections: {name: [{t_s, drifted: [...], statistics: {feature: value}}]}, t_s on the run's clock."""
    from perception_nodes.world import World

    monitors = {name: DriftMonitor(reference, config) for name, config in configs.items()}
    evaluations: dict[str, list[dict]] = {name: [] for name in configs}
    next_eval = eval_period_s
    began = time.monotonic()
    for episode in run:
        world = World(episode.scene)
        step = max(1, int(round(episode.scene.fps / sample_hz)))
        for frame in range(0, episode.scene.frame_count, step):
            t = episode.offset_s + world.time_of(frame)
            images = [world.render(c, frame)[0] for c in range(len(world.cameras))]
            for cam, image, (rows, emb) in zip(world.cameras, images, detector(images)):
                reduced = reduce_frame(image)
                for monitor in monitors.values():
                    monitor.observe(cam.spec.id, t, reduced, rows, image.shape[1], image.shape[0], emb)
            if t >= next_eval:
                for name, monitor in monitors.items():
                    report = monitor.evaluate(t)
                    evaluations[name].append({"t_s": round(t, 2), "drifted": report.drifted,
                                              "statistics": {k: (None if f.statistic is None else round(f.statistic, 4))
                                                             for k, f in report.features.items()}})
                next_eval += eval_period_s
    first = evaluations[next(iter(configs))]
    scene = run[0].scene
    log(f"[drift] {scene.name} seed {scene.seed // 1000} ({len(run)} episodes, "
        f"{run[-1].offset_s + run[-1].scene.duration_s:.0f} s) in {time.monotonic() - began:.0f} s; flagged at "
        f"{sum(bool(e['drifted']) for e in first)} of {len(first)} evaluations")
    return evaluations


def _first_flag(evaluations: list[dict], features, after_s: float = 0.0) -> float | None:
    for e in evaluations:
        if e["t_s"] >= after_s and set(e["drifted"]) & set(features):
            return e["t_s"]
    return None


def summarise_quiet(evaluations: list[dict]) -> dict:
    """A run of the reference conditions: how often anything flagged, and each feature's largest statistic."""
    flagged = [e for e in evaluations if e["drifted"]]
    features = sorted({k for e in evaluations for k in e["statistics"]})
    peaks = {k: max((e["statistics"][k] for e in evaluations if e["statistics"].get(k) is not None), default=None)
             for k in features}
    return {"evaluations": len(evaluations), "flagged_evaluations": len(flagged),
            "features_flagged": sorted({f for e in flagged for f in e["drifted"]}), "max_statistic": peaks}


def _judge(runs: dict, bump_at_s: float, bump_deg: float, bump_camera: str) -> dict:
    """The three conditions' verdicts for one config: runs = {"quiet": {seed: evals}, "night": evals,
    "bumped": evals}."""
    quiet = {seed: summarise_quiet(e) for seed, e in runs["quiet"].items()}
    night_at = _first_flag(runs["night"], EXPECTED["night"])
    bump_at = _first_flag(runs["bumped"], EXPECTED["bumped"], after_s=bump_at_s)
    out = {"quiet": {"runs": quiet, "false_flags": sum(r["flagged_evaluations"] for r in quiet.values())},
           "night": {"flagged_at_s": night_at, "within_60_s": night_at is not None and night_at <= 60.0,
                     "features_flagged": sorted({f for e in runs["night"] for f in e["drifted"]})},
           "bumped": {"camera": bump_camera, "bump_deg": bump_deg, "bump_at_s": bump_at_s,
                      "flagged_after_s": None if bump_at is None else round(bump_at - bump_at_s, 2),
                      "within_60_s": bump_at is not None and bump_at - bump_at_s <= 60.0,
                      "flagged_before_bump": sum(1 for e in runs["bumped"] if e["t_s"] < bump_at_s and e["drifted"]),
                      "features_flagged": sorted({f for e in runs["bumped"] for f in e["drifted"]})}}
    out["goals_met"] = {"quiet_no_flags": out["quiet"]["false_flags"] == 0,
                        "night_within_60_s": out["night"]["within_60_s"],
                        "bumped_within_60_s": out["bumped"]["within_60_s"]}
    return out


def evaluate_drift(detector: StreamDetector, reference: DriftReference, configs: dict[str, DriftConfig],
                   quiet_scene: str, quiet_seeds: list[int], quiet_seconds: float, night_scene: str, night_seed: int,
                   night_seconds: float, bump_seed: int, bump_deg: float, bump_at_s: float, bump_seconds: float,
                   sample_hz: float = 1.0, eval_period_s: float = 5.0, log=print) -> dict:
    """The conditions for every named config on the same frames; the first config is the one reported on top."""
    runs: dict[str, dict] = {name: {"quiet": {}} for name in configs}
    for seed in quiet_seeds:
        for name, evals in run_stream(detector, reference, configs, episodes(quiet_scene, seed, quiet_seconds),
                                      sample_hz, eval_period_s, log).items():
            runs[name]["quiet"][str(seed)] = evals
    for name, evals in run_stream(detector, reference, configs, episodes(night_scene, night_seed, night_seconds),
                                  sample_hz, eval_period_s, log).items():
        runs[name]["night"] = evals
    bumped_run = episodes(quiet_scene, bump_seed, bump_seconds, bump_deg=bump_deg, bump_at_s=bump_at_s)
    for name, evals in run_stream(detector, reference, configs, bumped_run, sample_hz, eval_period_s, log).items():
        runs[name]["bumped"] = evals
    camera = next(e.scene.camera_bump.camera for e in bumped_run if e.scene.camera_bump is not None)
    verdicts = {name: _judge(r, bump_at_s, bump_deg, camera) for name, r in runs.items()}
    primary = next(iter(configs))
    result = {"window_s": configs[primary].window_s, "sample_hz_per_camera": sample_hz,
              "eval_period_s": eval_period_s,
              "thresholds": {k: r.threshold for k, r in sorted(configs[primary].rules.items())},
              "reference": {"model": reference.model, **reference.provenance},
              "conditions": {"quiet": {"scene": quiet_scene, "seeds": quiet_seeds, "seconds": quiet_seconds},
                             "night": {"scene": night_scene, "seed": night_seed, "seconds": night_seconds},
                             "bumped": {"scene": quiet_scene, "seed": bump_seed, "seconds": bump_seconds},
                             "episodes": "each run is consecutive episodes of the scene's length, episode k with "
                                         "seed SEED * 1000 + k"},
              **verdicts[primary]}
    result["baselines"] = {name: verdicts[name] for name in configs if name != primary}
    # Statistic / threshold per feature over time, for the report's drift plot (the configured rules).
    ratio = {k: r.threshold for k, r in configs[primary].rules.items()}
    result["series"] = {condition: [{"t_s": e["t_s"], **{k: round(v / ratio[k], 3) for k, v in e["statistics"].items()
                                                          if v is not None and ratio.get(k)}}
                                    for e in runs[primary][condition]] for condition in ("night", "bumped")}
    return result
