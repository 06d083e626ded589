"""`perception eval proxies`: do the FP/FN proxies follow the true error rates? (pure Python, no ROS)

Runs of degraded conditions (smaller input sizes, night, sensor noise, a knocked camera) go through the
detector as the node runs it and the project's tracker, camera by camera; each (condition, camera) gives the
true false-positive and false-negative rates of the detections against the world's ground truth (at the node's
confidence, and at the tracker's high-score threshold, the detections tracks are started and confirmed from),
and every proxy's value. The Spearman rank correlation of each proxy with the true rate it stands for, over all points,
is what the issue asks to be >= 0.7.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from perception_nodes.evaluation.drift import StreamDetector, scene_variant
from perception_nodes.monitoring.proxies import CrossCameraProxy, ProxyParams, TrackProxies, TrackView, detection_truth

# proxy -> the true rate it stands for
PROXIES = {"short_lived_ratio": "fp_rate", "vanished_mid_view_ratio": "fn_rate",
           "coasting_mid_view_ratio": "fn_rate", "low_score_update_ratio": "fn_rate",
           "cross_camera_miss_ratio": "fn_rate",
           "shadow_disagreement": "fn_rate"}


@dataclass(frozen=True)
class Condition:
    scene: str = "default"
    imgsz: int = 0  # 0: the model's
    noise: float = 0.0  # Gaussian sensor noise added to each frame, grey levels
    bump_deg: float = 0.0  # cam1 knocked by this yaw at t = 0 (the calibration keeps the pose before)

    @property
    def name(self) -> str:
        parts = [self.scene] + ([f"imgsz{self.imgsz}"] if self.imgsz else []) + \
            ([f"noise{self.noise:g}"] if self.noise else []) + ([f"bump{self.bump_deg:g}deg"] if self.bump_deg else [])
        return "+".join(parts)

    @classmethod
    def parse(cls, text: str) -> "Condition":
        """'night', 'default+imgsz480', 'default+noise40', 'default+bump2'."""
        scene, *mods = text.split("+")
        values = {"scene": scene}
        for mod in mods:
            for key, field_name, cast in (("imgsz", "imgsz", int), ("noise", "noise", float),
                                          ("bump", "bump_deg", float)):
                if mod.startswith(key):
                    values[field_name] = cast(mod[len(key):].removesuffix("deg"))
                    break
            else:
                from perception_nodes.errors import ConfigError

                raise ConfigError(f"condition {text!r}: unknown part {mod!r} (imgszN, noiseN, bumpN)")
        return cls(**values)


DEFAULT_CONDITIONS = ("default", "default+imgsz640", "default+imgsz480", "default+imgsz352", "night",
                      "night+imgsz480", "default+noise30", "default+noise60", "default+bump2")


def run_condition(condition: Condition, seed: int, seconds: float, runtime, shadow, shadow_every: int,
                  log=print) -> list[dict]:
    """One row per camera: true FP/FN rates and every proxy."""
    from perception_nodes.detection.dataset import is_evaluated
    from perception_nodes.detection.runtime import agreement
    from perception_nodes.evaluation.localization import camera_geometry
    from perception_nodes.tracking.tracker import ByteTracker, TrackerParams
    from perception_nodes.world import World

    scene = scene_variant(condition.scene, seed, seconds, bump_deg=condition.bump_deg or None, bump_at_s=0.0)
    world = World(scene)
    ids = [c.spec.id for c in world.cameras]
    trackers = {cam: ByteTracker(TrackerParams()) for cam in ids}
    high = TrackerParams().track_high_thresh  # the detections the tracker starts and confirms tracks from
    proxies = {cam: TrackProxies(c.spec.width, c.spec.height, ProxyParams(low_score=high))
               for cam, c in zip(ids, world.cameras)}
    cross = CrossCameraProxy({cam: camera_geometry(c.spec) for cam, c in zip(ids, world.cameras)})
    counts = {cam: np.zeros(4, np.int64) for cam in ids}  # fp, detections, fn, evaluated truths
    counts_high = {cam: np.zeros(4, np.int64) for cam in ids}
    disagreement = {cam: [] for cam in ids}
    rng = np.random.default_rng([seed, 77])
    began = time.monotonic()
    for frame in range(scene.frame_count):
        t = world.time_of(frame)
        rendered = [world.render(c, frame) for c in range(len(ids))]
        images = [image for image, _ in rendered]
        if condition.noise:
            images = [np.clip(image + rng.normal(0, condition.noise, image.shape), 0, 255).astype(np.uint8)
                      for image in images]
        _, results, _ = runtime.infer(images)
        shadow_rows = None
        if shadow is not None and frame % shadow_every == 0:
            _, shadow_rows, _ = shadow.infer(images)
        observed = {}
        for index, cam in enumerate(ids):
            rows = np.asarray(results[index]).reshape(-1, 6)
            truth = rendered[index][1]
            boxes, classes, scored = [b.bbox for b in truth], [b.class_id for b in truth], [is_evaluated(b) for b in truth]
            counts[cam] += detection_truth(rows, boxes, classes, scored)
            counts_high[cam] += detection_truth(rows[rows[:, 4] >= high], boxes, classes, scored)
            _, tracks = trackers[cam].update(rows, t)
            proxies[cam].update(t, [TrackView(tr.track_id, int(tr.state), tuple(tr.box_xyxy), tr.hits,
                                              tr.frames_since_update, tr.score) for tr in tracks])
            # As the localizer judges it live: each camera's confirmed tracks updated on this frame.
            confirmed = [tr for tr in tracks if int(tr.state) == 1 and tr.frames_since_update == 0]
            observed[cam] = (np.asarray([tr.box_xyxy for tr in confirmed], dtype=np.float64).reshape(-1, 4),
                             np.asarray([tr.class_id for tr in confirmed], dtype=np.int64))
            if shadow_rows is not None:
                disagreement[cam].append(1.0 - agreement(rows, np.asarray(shadow_rows[index]).reshape(-1, 6)))
        cross.observe(observed)
    cross_values = cross.values()
    out = []
    for cam in ids:
        fp, dets, fn, truths = (int(v) for v in counts[cam])
        fp_h, dets_h, fn_h, _ = (int(v) for v in counts_high[cam])
        row = {"condition": condition.name, "camera": cam, "fp_rate": fp / dets if dets else None,
               "fn_rate": fn / truths if truths else None, "detections": dets, "truths": truths,
               "fp_rate_at_track_threshold": fp_h / dets_h if dets_h else None,
               "fn_rate_at_track_threshold": fn_h / truths if truths else None,
               **{k: v for k, v in proxies[cam].values().items() if k != "ended_tracks"},
               "ended_tracks": proxies[cam].values()["ended_tracks"],
               "cross_camera_miss_ratio": cross_values.get(cam),
               "shadow_disagreement": float(np.mean(disagreement[cam])) if disagreement[cam] else None}
        out.append(row)
    log(f"[proxies] {condition.name}: {seconds:.0f} s of scene in {time.monotonic() - began:.0f} s; FP rate "
        + ", ".join(f"{r['camera']} {r['fp_rate']:.3f}" for r in out if r["fp_rate"] is not None) + "; FN rate "
        + ", ".join(f"{r['camera']} {r['fn_rate']:.3f}" for r in out if r["fn_rate"] is not None))
    return out


def _spearman(pairs: list[tuple[float, float]]) -> float | None:
    from scipy.stats import spearmanr

    if len(pairs) < 4:
        return None
    x, y = zip(*pairs)
    if len(set(x)) < 2 or len(set(y)) < 2:  # a constant side: the correlation is undefined, not zero
        return None
    rho = spearmanr(x, y).statistic
    return None if np.isnan(rho) else round(float(rho), 3)


def rank_correlations(rows: list[dict]) -> dict:
    """Per proxy: Spearman over every (condition, camera) point, and the mean of each camera's own Spearman
    over the conditions (a camera's proxy judged against its own history, as an operator reads it)."""
    out = {}
    for proxy, truth in PROXIES.items():
        pairs = [(r[proxy], r[truth]) for r in rows if r.get(proxy) is not None and r.get(truth) is not None]
        per_camera = {}
        for camera in sorted({r.get("camera") for r in rows if r.get("camera")}):
            per_camera[camera] = _spearman([(r[proxy], r[truth]) for r in rows if r.get("camera") == camera
                                            and r.get(proxy) is not None and r.get(truth) is not None])
        known = [v for v in per_camera.values() if v is not None]
        at_threshold = f"{truth}_at_track_threshold"
        out[proxy] = {"against": truth, "spearman": _spearman(pairs), "points": len(pairs),
                      "spearman_at_track_threshold": _spearman([(r[proxy], r[at_threshold]) for r in rows
                                                                if r.get(proxy) is not None
                                                                and r.get(at_threshold) is not None]),
                      "within_camera": {"mean": round(float(np.mean(known)), 3) if known else None,
                                        "per_camera": per_camera}}
    return out


def evaluate_proxies(model_ref: str, conditions: list[Condition], seed: int, seconds: float,
                     shadow_ref: str = "", shadow_every: int = 5, log=print) -> dict:
    runtimes: dict[int, object] = {}
    shadow = StreamDetector(shadow_ref, imgsz=0, embed=False).runtime if shadow_ref else None
    rows = []
    try:
        for condition in conditions:
            if condition.imgsz not in runtimes:
                runtimes[condition.imgsz] = StreamDetector(model_ref, imgsz=condition.imgsz, embed=False).runtime
            rows.extend(run_condition(condition, seed, seconds, runtimes[condition.imgsz], shadow, shadow_every,
                                      log))
    finally:
        for runtime in runtimes.values():
            runtime.close()
        if shadow is not None:
            shadow.close()
    correlations = rank_correlations(rows)
    met = {p: c["spearman"] is not None and c["spearman"] >= 0.7 for p, c in correlations.items()}
    return {"model": model_ref, "shadow_model": shadow_ref or None, "seed": seed, "seconds": seconds,
            "conditions": [c.name for c in conditions], "points": rows, "rank_correlation": correlations,
            "goal_met": met, "proxies_meeting_goal": sorted(p for p, ok in met.items() if ok)}
