"""Localization evaluation on the synthetic world: map positions, global identities, stalls, zone events.

The pipeline under test is the one the nodes run, without ROS: per-camera
detections (noisy ground truth or the registered detector) -> our per-camera
tracker -> lifting through the *calibrated* cameras (the TF tree's poses; a
bumped camera really moved) -> the map tracker -> scene understanding.

Scoring on the ground plane, as AI City Track 1 and Metropolis RTLS score:
- ground truth per frame = objects visible (>= 25 %, >= 12 px) in at least one
  camera; present objects nobody sees are ignore regions (a prediction matching
  one is removed, as MOTChallenge does with ignore boxes);
- similarity = max(0, 1 - d / 2 m) (zero at 2 m, 0.5 at 1 m) for trackeval's
  HOTA (DetA, AssA, LocA) and motmetrics' IDF1 / ID switches (match within 2 m);
- position error of matched pairs, by class and range band (distance to the
  nearest camera that sees the object), per camera (each camera's lifted boxes
  against the object their box belongs to) and fused, and fused where two or
  more cameras see the object;
- ID switches at handovers: switches where the object's set of cameras changed;
- stall occupancy accuracy over stalls x frames, outside 2 s after a true change;
- zone events (enter/exit, same zone, within 1 s, the predicted object mapped
  to the true one it matched most often) precision/recall/F1; the truth uses the
  same debounce on the true positions.
A baseline (greedy nearest neighbour on the map, no appearance, no bindings) and
ablations run on the identical observation stream in the same run.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from perception_nodes.evaluation.mot import GT_MIN_HEIGHT_PX, GT_MIN_VISIBILITY, NoiseModel, noisy_detections
from perception_nodes.localization.calibration_health import CalibrationMonitor
from perception_nodes.localization.fusion import AssociationMode, ExistenceState, FusionParams
from perception_nodes.localization.motion import MotionModel
from perception_nodes.localization.lifting import CameraGeometry, LiftParams
from perception_nodes.localization.localizer import Localizer, LocalizerConfig, TrackBatch
from perception_nodes.localization.scene_state import EventKind, SceneParams, SceneUnderstanding

MATCH_DISTANCE_M = 2.0
RANGE_BANDS = ((0, 15), (15, 30), (30, 60), (60, 1e9))
MOVING_SPEED_MPS = 1.0            # heading errors are scored on objects at least this fast
CHI2_2DOF_95, CHI2_2DOF_99 = 5.991, 9.210
SETTLE_S = 2.0
CALIBRATION_CHECK_HZ = 1.0  # landmark checks per camera and second (the node's default rate)
EVENT_WINDOW_S = 1.0


@dataclass
class CameraMessage:
    """One camera's confirmed tracks at one frame, with each box's true object (0: none) for scoring."""

    camera_id: str
    camera_index: int
    stamp: float
    track_ids: np.ndarray
    boxes: np.ndarray       # (N, 4) xyxy
    classes: np.ndarray
    scores: np.ndarray
    embeddings: np.ndarray | None
    truth_ids: np.ndarray   # (N,) matched ground-truth id per box (IoU >= 0.5), 0 when none
    delay_s: float = 0.0    # arrives this much after its stamp (a scripted detection delay)


@dataclass
class Recording:
    """Everything a localizer run needs, computed once and fed to every variant."""

    scene: object
    frames: int
    fps: float
    messages: list[list[CameraMessage]] = field(default_factory=list)   # per frame: camera messages
    truth: list[dict] = field(default_factory=list)   # per frame: {gid: (xy, class, cameras seeing it, range)}
    ignore: list[np.ndarray] = field(default_factory=list)   # per frame: (I, 2) present-but-unseen objects
    occupancy: list[dict] = field(default_factory=list)
    true_positions: list[tuple] = field(default_factory=list)  # per frame (ids, classes, xy, velocity)
    # per frame: {camera id: (extra angle sigma (rad), image shift (px))} of the cameras flagged by then
    calibration: list[dict] = field(default_factory=list)
    calibration_summary: dict = field(default_factory=dict)
    site_map: object = None  # the semantic map of the scene's site (what the localizer node loads)


def camera_geometry(spec, angle_sigma_rad: float = 0.002) -> CameraGeometry:
    """The localizer's view of a camera from its calibration (the synthetic camera's *calibrated* pose)."""
    from perception_nodes.world.camera import CameraModel

    model = CameraModel(spec)
    return CameraGeometry(spec.id, spec.width, spec.height, model.K, model.D, model.T_map_optical, angle_sigma_rad)


def record(scene_name: str, seed: int | None, frames: int | None, detections: str, model=None,
           appearance: str = "hsv-hist", det_conf: float = 0.1, log=print, calibration: bool = True,
           noise: NoiseModel | None = None) -> Recording:
    """Render the scene, run detections and the per-camera trackers, keep ground truth for scoring.

    The scene's scripted disturbances apply to what the cameras deliver: a dropped-out camera sends nothing,
    detection noise bursts change the ``gt-noisy`` noise, delayed detections carry their delay. Images are
    rendered only where something looks at them (the detector, the appearance embedder, calibration health)."""
    from perception_nodes.boxes import iou_matrix
    from perception_nodes.tracking.tracker import ByteTracker, TrackState
    from perception_nodes.world import World, load_scene

    world = World(load_scene(scene_name, seed=seed))
    frames = min(frames or world.scene.frame_count, world.scene.frame_count)
    detector = None
    if detections == "detector":
        from perception_nodes.detection.runtime import make_detector

        entry, path = model
        backend = make_detector(entry, path, entry.input_size, conf=det_conf)
        detector = lambda image: backend.predict([image])[0]  # noqa: E731
    embedder = None
    if appearance and appearance != "none":
        from perception_nodes.retrieval.embedders import load_embedder

        embedder = load_embedder(appearance)   # hsv-hist or a registered learned embedder, as the detector node
    rng = np.random.default_rng([world.scene.seed, 0x10C])
    base_noise = noise or NoiseModel()
    disturbances = world.scene.disturbances
    trackers = [ByteTracker() for _ in world.cameras]
    rec = Recording(world.scene, frames, world.scene.fps)
    rec.site_map = _site_map(world.scene)
    markings = rec.site_map.markings
    monitor = CalibrationMonitor(markings) if markings and calibration else None
    with_images = detector is not None or embedder is not None or monitor is not None
    geometries = [camera_geometry(spec) for spec in world.scene.cameras]
    check_every = max(int(round(world.scene.fps / CALIBRATION_CHECK_HZ)), 1)
    started = time.perf_counter()
    positions = [cam.T_map_optical.t for cam in world.cameras]
    for index in range(frames):
        stamp = world.time_of(index)
        states = world.states(index)
        by_id = {a.global_id: (a, p, v) for a, p, _, v in states}
        seen: dict[int, list[int]] = {}
        messages = []
        noise = base_noise
        for burst in disturbances.detection_noise:
            if burst.contains(stamp):
                noise = replace(noise, **{k: v for k, v in (("jitter", burst.jitter), ("miss_rate", burst.miss_rate),
                                                            ("false_positives_per_frame",
                                                             burst.false_positives_per_frame)) if v is not None})
        delay = disturbances.delay_at(stamp)
        for ci, cam in enumerate(world.cameras):
            if any(d.camera == cam.spec.id and d.contains(stamp) for d in disturbances.camera_dropouts):
                continue  # the camera delivers nothing
            image, boxes = world.render(ci, index, with_image=with_images)
            if monitor is not None and index % check_every == 0:
                monitor.check(geometries[ci], image, stamp)
            tracked = [b for b in boxes if b.visible_fraction >= GT_MIN_VISIBILITY and
                       b.bbox[3] - b.bbox[1] >= GT_MIN_HEIGHT_PX]
            for b in tracked:
                seen.setdefault(b.global_id, []).append(ci)
            dets = np.asarray(detector(image) if detector else noisy_detections(boxes, rng, cam.size, noise),
                              dtype=np.float64).reshape(-1, 6)
            emb = embedder.embed(image, dets[:, :4]) if embedder is not None and len(dets) else None
            _, tracks = trackers[ci].update(dets, stamp, emb)
            shown = [t for t in tracks if t.state == TrackState.CONFIRMED]
            tboxes = np.array([t.box_xyxy for t in shown], dtype=np.float64).reshape(-1, 4)
            truth_ids = np.zeros(len(shown), dtype=int)
            if len(shown) and boxes:
                gt_boxes = np.array([b.bbox for b in boxes])
                iou = iou_matrix(tboxes, gt_boxes)
                best = iou.argmax(axis=1)
                ok = iou[np.arange(len(shown)), best] >= 0.5
                truth_ids[ok] = [boxes[k].global_id for k in best[ok]]
            embeddings = None
            if shown and all(t.embedding is not None for t in shown):
                embeddings = np.array([t.embedding for t in shown])
            messages.append(CameraMessage(cam.spec.id, ci, stamp, np.array([t.track_id for t in shown], dtype=int),
                                          tboxes, np.array([t.class_id for t in shown], dtype=int),
                                          np.array([t.score for t in shown]), embeddings, truth_ids, delay))
        truth = {}
        for gid, cams in seen.items():
            actor, p, _ = by_id[gid]
            rng_m = min(float(np.linalg.norm(p[:2] - positions[c][:2])) for c in cams)
            truth[gid] = (p[:2].copy(), actor.class_id, tuple(sorted(cams)), rng_m)
        rec.messages.append(messages)
        rec.truth.append(truth)
        rec.ignore.append(np.array([p[:2] for a, p, _, _ in states if a.global_id not in seen]).reshape(-1, 2))
        rec.occupancy.append(world.stall_occupancy(index))
        rec.calibration.append({c.spec.id: (monitor.angle_sigma_rad(c.spec.id), monitor.image_shift_px(c.spec.id))
                                for c in world.cameras
                                if monitor is not None and monitor.angle_sigma_rad(c.spec.id) is not None})
        rec.true_positions.append(([a.global_id for a, _, _, _ in states], [a.class_id for a, _, _, _ in states],
                                   np.array([p[:2] for _, p, _, _ in states]).reshape(-1, 2),
                                   np.array([v[:2] for _, _, _, v in states]).reshape(-1, 2)))
        if index and index % 100 == 0:
            log(f"[eval] {index}/{frames} frames ({time.perf_counter() - started:.0f} s)")
    rec.calibration_summary = _calibration_summary(world, monitor)
    return rec


def _calibration_summary(world, monitor) -> dict:
    """Time to flag the bumped camera, cameras flagged without being bumped, estimated vs true error."""
    if monitor is None:
        return {"checked": False, "reason": "the site has no painted markings"}
    bump = world.scene.camera_bump
    false_flags = {cam: round(t, 2) for cam, t in monitor.flagged_at.items()
                   if bump is None or cam != bump.camera or t < bump.time_s}
    out = {"checked": True, "check_hz": CALIBRATION_CHECK_HZ, "false_flags": false_flags,
           "states": {cam: status.state.name for cam, status in sorted(monitor.status.items())},
           "estimated_error_deg": {cam: round(status.error_deg, 3) for cam, status in sorted(monitor.status.items())}}
    if bump is not None:
        flagged = monitor.flagged_at.get(bump.camera)
        flagged = flagged if flagged is not None and flagged >= bump.time_s else None
        out.update({"bumped_camera": bump.camera, "bump_time_s": bump.time_s,
                    "bump_deg": round(bump.magnitude_deg, 3), "flagged_at_s": flagged,
                    "time_to_flag_s": None if flagged is None else round(flagged - bump.time_s, 2)})
    return out


@dataclass
class Variant:
    name: str
    params: FusionParams
    use_heading: bool = True
    use_appearance: bool = True
    use_calibration_health: bool = True
    correct_calibration: bool = True        # move a misaligned camera's boxes back by its image shift
    calibration_sigma_share: float = 0.25   # share of its estimated error kept as extra angle uncertainty
    lift: LiftParams = field(default_factory=LiftParams)


def default_variants() -> list[Variant]:
    return [
        Variant("ours", FusionParams()),
        Variant("with_appearance", FusionParams(use_appearance=True)),
        Variant("no_bindings", FusionParams(use_bindings=False)),
        Variant("no_merge", FusionParams(merge_after_s=0.0)),
        Variant("plain_bindings", FusionParams(binding_overlap_limit=0.0, bonus_for_stationary=True)),
        Variant("keep_out_of_view", FusionParams(remove_out_of_view=False)),
        Variant("no_calibration_health", FusionParams(), use_calibration_health=False),
        Variant("calibration_downweight_only", FusionParams(), correct_calibration=False, calibration_sigma_share=1.0),
        Variant("with_lateral_fit", FusionParams(), lift=LiftParams(lateral_fit=True)),
        Variant("constant_velocity", FusionParams(motion_model=MotionModel.CONSTANT_VELOCITY)),
        Variant("box_bottom_lift", FusionParams(), use_heading=False),
        Variant("baseline_nearest", FusionParams(association=AssociationMode.NEAREST, reid_max_distance=0.0,
                                                 use_bindings=False, remove_out_of_view=False,
                                                 motion_model=MotionModel.CONSTANT_VELOCITY),
                use_appearance=False,
                use_calibration_health=False),
    ]


def run_variant(rec: Recording, variant: Variant, site_map, cameras: list[CameraGeometry],
                message_order_seed: int = 5):
    """Feed the recording to one localizer variant (the node's core); per frame (objects, stall states)."""
    localizer = Localizer(site_map, LocalizerConfig(fusion=variant.params, lift=variant.lift,
                                                    use_heading=variant.use_heading,
                                                    use_appearance=variant.use_appearance))
    order_rng = np.random.default_rng(message_order_seed)
    outputs, lifted_per_frame, events, update_times = [], [], [], []
    for f, messages in enumerate(rec.messages):
        if variant.use_calibration_health:
            for camera_id, (sigma, shift) in (rec.calibration[f] if f < len(rec.calibration) else {}).items():
                localizer.set_camera_uncertainty(camera_id, sigma * variant.calibration_sigma_share,
                                                 shift if variant.correct_calibration else None)
        lifted_frame = []
        # Cameras are not shutter-synchronised in a real site: their messages arrive in any order.
        for k in order_rng.permutation(len(messages)):
            msg = messages[k]
            started = time.perf_counter()
            report = localizer.fuse(cameras[msg.camera_index], TrackBatch(
                msg.camera_id, msg.stamp, msg.track_ids, msg.boxes, msg.classes, msg.scores, msg.embeddings))
            update_times.append(time.perf_counter() - started)
            lifted_frame.append((msg, report.lifted))
        stamp = messages[0].stamp if messages else f / rec.fps
        snapshot = localizer.snapshot(stamp)
        events.extend(localizer.update_scene(stamp, snapshot))
        outputs.append((snapshot, {s: (st.occupied, st.global_id) for s, st in localizer.scene.stalls.items()}))
        lifted_per_frame.append(lifted_frame)
    return outputs, lifted_per_frame, events, update_times, localizer.tracker.counters


def _match(truth_xy: np.ndarray, pred_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from scipy.optimize import linear_sum_assignment

    if len(truth_xy) == 0 or len(pred_xy) == 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros((len(truth_xy), len(pred_xy)))
    d = np.linalg.norm(truth_xy[:, None] - pred_xy[None], axis=2)
    rows, cols = linear_sum_assignment(d)
    ok = d[rows, cols] < MATCH_DISTANCE_M
    return rows[ok], cols[ok], d


def _percentiles(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return {"p50": None, "p95": None, "rmse": None, "n": 0}
    return {"p50": round(float(np.percentile(values, 50)), 3), "p95": round(float(np.percentile(values, 95)), 3),
            "rmse": round(float(np.sqrt(np.mean(values ** 2))), 3), "n": int(len(values))}


def velocity_scores(pairs) -> dict:
    """Velocity as the risk rules read it, from (true velocity, estimate, estimate's 2x2 covariance) triples: the
    error, the heading error on objects moving at least ``MOVING_SPEED_MPS``, and whether the covariance is honest
    (NEES, the squared error in the covariance's units: 2 on average for a consistent estimate, above it for an
    overconfident one; the shares beyond the chi-squared 95 % and 99 % points)."""
    errors, nees, headings = [], [], []
    for v_true, v_est, cov in pairs:
        v_true, v_est = np.asarray(v_true, dtype=np.float64), np.asarray(v_est, dtype=np.float64)
        dv = v_est - v_true
        errors.append(float(np.hypot(*dv)))
        cov = np.asarray(cov, dtype=np.float64)
        if np.isfinite(cov).all() and np.linalg.det(cov) > 1e-12:
            nees.append(float(dv @ np.linalg.solve(cov, dv)))
        if np.hypot(*v_true) >= MOVING_SPEED_MPS and np.hypot(*v_est) > 1e-6:
            turn = math.atan2(v_est[1], v_est[0]) - math.atan2(v_true[1], v_true[0])
            headings.append(abs(math.degrees((turn + math.pi) % (2 * math.pi) - math.pi)))
    values = np.asarray(nees)
    return {"velocity_error_mps": _percentiles(errors), "heading_error_moving_deg": _percentiles(headings),
            "velocity_nees": {"mean": round(float(values.mean()), 3) if len(values) else None,
                              "p50": round(float(np.median(values)), 3) if len(values) else None,
                              "beyond_95": round(float(np.mean(values > CHI2_2DOF_95)), 4) if len(values) else None,
                              "beyond_99": round(float(np.mean(values > CHI2_2DOF_99)), 4) if len(values) else None,
                              "n": int(len(values))}}


def score_variant(rec: Recording, outputs, lifted_per_frame, events, site_map, class_names) -> dict:
    """The metrics of one variant's outputs (see the module docstring)."""
    import motmetrics as mm
    from trackeval.metrics import HOTA

    acc = mm.MOTAccumulator(auto_id=True)
    data = {"gt_ids": [], "tracker_ids": [], "similarity_scores": [], "num_gt_dets": 0, "num_tracker_dets": 0}
    gt_map, tr_map = {}, {}
    fused_errors, overlap_errors = [], []
    by_class: dict[str, list] = {}
    by_band: dict[str, list] = {}
    pred_to_truth: dict[int, dict[int, int]] = {}
    last_assignment: dict[int, tuple[int, tuple]] = {}   # truth id -> (pred id, cameras)
    handover_switches = 0
    velocity_pairs: list[tuple] = []    # (true velocity, estimated velocity, its covariance) of matched objects
    for f, (snapshot, _) in enumerate(outputs):
        truth = rec.truth[f]
        t_ids = np.array(list(truth.keys()), dtype=int)
        t_xy = np.array([truth[g][0] for g in t_ids]).reshape(-1, 2)
        # Scored as MOT evaluations score trackers: what is observed now. Coasting objects are published
        # (marked COASTING) but not scored, as a per-camera tracker's lost tracks are not.
        preds = [o for o in snapshot if o.state == ExistenceState.CONFIRMED]
        p_xy = np.array([o.xy for o in preds]).reshape(-1, 2)
        p_ids = np.array([o.global_id for o in preds], dtype=int)
        pred_by_id = {o.global_id: o for o in preds}
        true_ids, _, _, true_velocity = rec.true_positions[f]
        true_velocity_of = dict(zip((int(g) for g in true_ids), np.asarray(true_velocity).reshape(-1, 2)))
        # Predictions on present-but-unseen objects are neither hits nor false positives.
        if len(p_xy) and len(rec.ignore[f]):
            targets = np.vstack([t_xy, rec.ignore[f]])
            r, c, _ = _match(targets, p_xy)
            drop = c[r >= len(t_xy)]
            keep = np.ones(len(p_xy), bool)
            keep[drop] = False
            p_xy, p_ids = p_xy[keep], p_ids[keep]
        d = np.linalg.norm(t_xy[:, None] - p_xy[None], axis=2) if len(t_xy) and len(p_xy) else \
            np.zeros((len(t_xy), len(p_xy)))
        similarity = np.maximum(0.0, 1.0 - d / MATCH_DISTANCE_M)
        acc.update(list(t_ids), list(p_ids), np.where(d < MATCH_DISTANCE_M, d, np.nan))
        data["gt_ids"].append(np.array([gt_map.setdefault(int(g), len(gt_map)) for g in t_ids], dtype=int))
        data["tracker_ids"].append(np.array([tr_map.setdefault(int(p), len(tr_map)) for p in p_ids], dtype=int))
        data["similarity_scores"].append(similarity)
        data["num_gt_dets"] += len(t_ids)
        data["num_tracker_dets"] += len(p_ids)
        rows, cols, _ = _match(t_xy, p_xy)
        for r, c in zip(rows, cols):
            gid = int(t_ids[r])
            err = float(d[r, c])
            _, cls, cams, rng_m = truth[gid]
            fused_errors.append(err)
            if len(cams) >= 2:
                overlap_errors.append(err)
            by_class.setdefault(class_names[cls], []).append(err)
            band = next(f"{lo}-{hi if hi < 1e9 else 'inf'}m" for lo, hi in RANGE_BANDS if lo <= rng_m < hi)
            by_band.setdefault(band, []).append(err)
            pid = int(p_ids[c])
            v_true = true_velocity_of.get(gid)
            if v_true is not None:
                obj = pred_by_id[pid]
                velocity_pairs.append((v_true, obj.velocity[:2], np.asarray(obj.cov, dtype=np.float64)[2:, 2:]))
            counts = pred_to_truth.setdefault(pid, {})
            counts[gid] = counts.get(gid, 0) + 1
            previous = last_assignment.get(gid)
            if previous is not None and previous[0] != pid and previous[1] != cams:
                handover_switches += 1
            last_assignment[gid] = (pid, cams)
    data["num_gt_ids"], data["num_tracker_ids"], data["num_timesteps"] = len(gt_map), len(tr_map), len(outputs)
    hota = HOTA().eval_sequence(data)
    summary = mm.metrics.create().compute(acc, metrics=["idf1", "mota", "num_switches"])
    per_camera = _per_camera_errors(rec, lifted_per_frame)
    occupancy = _occupancy_accuracy(rec, outputs)
    event_scores = _event_scores(rec, events, site_map, pred_to_truth)
    return {
        "hota": round(float(np.mean(hota["HOTA"])), 4), "deta": round(float(np.mean(hota["DetA"])), 4),
        "assa": round(float(np.mean(hota["AssA"])), 4), "loca": round(float(np.mean(hota["LocA"])), 4),
        "idf1": round(float(summary["idf1"].iloc[0]), 4), "mota": round(float(summary["mota"].iloc[0]), 4),
        "id_switches": int(summary["num_switches"].iloc[0]), "id_switches_at_handover": handover_switches,
        "position_error_m": _percentiles(fused_errors), "position_error_overlap_m": _percentiles(overlap_errors),
        "position_error_by_class_m": {k: _percentiles(v) for k, v in sorted(by_class.items())},
        "position_error_by_range_m": {k: _percentiles(v) for k, v in by_band.items()},
        "position_error_per_camera_m": per_camera,
        **velocity_scores(velocity_pairs),
        "occupancy_accuracy": occupancy, **event_scores,
    }


def _per_camera_errors(rec: Recording, lifted_per_frame) -> dict:
    """Single-camera lifting error: each camera's lifted boxes against the true object their box belongs to,
    by class, within 30 m of the camera and overall."""
    from perception_nodes.world.scene import CLASS_NAMES

    out: dict[str, dict] = {}
    for f, frame in enumerate(lifted_per_frame):
        truth = rec.truth[f]
        for msg, lifted in frame:
            for i, gid in enumerate(msg.truth_ids):
                if gid == 0 or gid not in truth or not lifted.valid[i]:
                    continue
                xy, cls, _, _ = truth[gid]
                err = float(np.linalg.norm(lifted.xy[i] - xy))
                cam = out.setdefault(msg.camera_id, {})
                cam.setdefault("all", []).append(err)
                if lifted.range_m[i] <= 30.0:
                    cam.setdefault(f"{CLASS_NAMES[cls]}_within_30m", []).append(err)
    return {cam: {k: _percentiles(v) for k, v in sorted(groups.items())} for cam, groups in sorted(out.items())}


def _occupancy_accuracy(rec: Recording, outputs) -> float | None:
    """Share of (stall, frame) pairs whose occupied/free state is right, outside SETTLE_S after a true change
    (and the first SETTLE_S of the run)."""
    if not rec.occupancy or not rec.occupancy[0]:
        return None
    settle_frames = int(round(SETTLE_S * rec.fps))
    last_change = {s: 0 for s in rec.occupancy[0]}
    right = total = 0
    for f, (_, stalls) in enumerate(outputs):
        for stall_id, gid in rec.occupancy[f].items():
            if f and (gid is None) != (rec.occupancy[f - 1][stall_id] is None):
                last_change[stall_id] = f
            if f - last_change[stall_id] < settle_frames:
                continue
            total += 1
            right += int(stalls.get(stall_id, (False, 0))[0] == (gid is not None))
    return round(right / total, 4) if total else None


def _event_scores(rec: Recording, events, site_map, pred_to_truth) -> dict:
    """Zone enter/exit events against the truth's (the same debounce on true positions)."""
    truth_scene = SceneUnderstanding(site_map, SceneParams())
    truth_events = []
    for f, (ids, classes, xy, velocity) in enumerate(rec.true_positions):
        seen = rec.truth[f]
        keep = [k for k, g in enumerate(ids) if g in seen]  # the truth of what a camera could see
        truth_events.extend(truth_scene.update(f / rec.fps, [ids[k] for k in keep], [classes[k] for k in keep],
                                               xy[keep], velocity[keep]))
    kinds = (EventKind.ZONE_ENTER, EventKind.ZONE_EXIT)
    truth_events = [e for e in truth_events if e.kind in kinds]
    predicted = [e for e in events if e.kind in kinds]
    mapping = {pid: max(c.items(), key=lambda kv: kv[1])[0] for pid, c in pred_to_truth.items()}
    used = set()
    hits = 0
    for e in predicted:
        gid = mapping.get(e.global_id)
        best = None
        for k, t in enumerate(truth_events):
            if k in used or t.kind != e.kind or t.place != e.place or t.global_id != gid:
                continue
            dt = abs(t.stamp - e.stamp)
            if dt <= EVENT_WINDOW_S and (best is None or dt < best[0]):
                best = (dt, k)
        if best is not None:
            used.add(best[1])
            hits += 1
    precision = hits / len(predicted) if predicted else None
    recall = hits / len(truth_events) if truth_events else None
    f1 = (2 * precision * recall / (precision + recall)) if precision and recall else (0.0 if predicted or truth_events else None)
    return {"event_precision": None if precision is None else round(precision, 4),
            "event_recall": None if recall is None else round(recall, 4),
            "event_f1": None if f1 is None else round(f1, 4), "events_true": len(truth_events),
            "events_predicted": len(predicted)}


def evaluate_localization(scene: str, seed: int | None, frames: int | None, detections: str, model=None,
                          appearance: str = "hsv-hist", log=print, variants: list[Variant] | None = None) -> dict:
    """``perception eval localization``: ours, the ablations and the nearest-neighbour baseline on one stream."""
    from perception_nodes.site.manifest import load_manifest
    from perception_nodes.sources.synthetic import site_manifest_for_scene
    from perception_nodes.world.scene import CLASS_NAMES

    started = time.perf_counter()
    rec = record(scene, seed, frames, detections, model, appearance, log=log)
    log(f"[eval] recorded {rec.frames} frames x {len(rec.scene.cameras)} cameras ({detections}) in "
        f"{time.perf_counter() - started:.0f} s")
    site_map = rec.site_map
    cameras = [camera_geometry(spec) for spec in rec.scene.cameras]
    results = {}
    for variant in variants or default_variants():
        outputs, lifted, events, update_times, counters = run_variant(rec, variant, site_map, cameras)
        results[variant.name] = score_variant(rec, outputs, lifted, events, site_map, CLASS_NAMES)
        results[variant.name]["update_ms_p50"] = round(float(np.percentile(update_times, 50)) * 1e3, 3)
        results[variant.name]["counters"] = counters
        log(f"[eval] {variant.name}: HOTA {results[variant.name]['hota']:.3f} IDF1 {results[variant.name]['idf1']:.3f} "
            f"p50 {results[variant.name]['position_error_m']['p50']} m, velocity error p50/p95 "
            f"{results[variant.name]['velocity_error_mps']['p50']}/{results[variant.name]['velocity_error_mps']['p95']}"
            f" m/s, velocity NEES mean {results[variant.name]['velocity_nees']['mean']}")
    ours = results.pop("ours")
    baseline = results.pop("baseline_nearest")
    return {**ours, "scene": rec.scene.name, "seed": rec.scene.seed, "frames": rec.frames, "detections": detections,
            "model": model[0].ref if model else None, "appearance": appearance,
            "cameras": len(rec.scene.cameras), "baseline": baseline, "ablations": results,
            "calibration_health": rec.calibration_summary,
            "hota_vs_baseline": round(ours["hota"] / baseline["hota"], 4) if baseline["hota"] else None}


def _site_map(scene):
    """The semantic map the site manifest of a synthetic scene carries (what the localizer node loads)."""
    import tempfile
    from pathlib import Path

    from perception_nodes.site.manifest import load_manifest
    from perception_nodes.sources.synthetic import write_site_for_scene

    with tempfile.TemporaryDirectory() as folder:
        return load_manifest(write_site_for_scene(scene, Path(folder))).map


def _bench_stream(cameras: int, objects: int, messages_per_camera: int, seed: int = 0):
    """A synthetic stream for the bench: ``objects`` cars and people moving on a 60 x 40 m lot, seen by
    ``cameras`` pole cameras around it at 10 Hz; per camera message: track ids, boxes, classes, scores,
    192-d embeddings (one per object, with noise), as the trackers publish them."""
    from perception_nodes.geometry import Transform, camera_body_transform

    rng = np.random.default_rng(seed)
    positions = rng.uniform([-25, -15], [25, 15], (objects, 2))
    velocity = rng.uniform(-3, 3, (objects, 2))
    classes = rng.choice([0, 2], objects)
    identity = rng.random((objects, 192))
    identity /= np.linalg.norm(identity, axis=1, keepdims=True)
    poses = [((-32, -22, 8), 35), ((32, -22, 8), 145), ((32, 22, 8), -145), ((-32, 22, 8), -35)]
    geometries = []
    for k in range(cameras):
        position, yaw = poses[k % len(poses)]
        T = camera_body_transform(position, yaw, 25.0, 0.0) @ Transform.body_from_optical()
        K = np.array([[500.0, 0, 640], [0, 500.0, 360], [0, 0, 1]])
        geometries.append(CameraGeometry(f"cam{k}", 1280, 720, K, np.zeros(5), T))
    size = np.where(classes[:, None] == 0, [4.4, 1.8, 1.5], [0.4, 0.5, 1.75])
    corners = np.array([[sx, sy, sz] for sx in (-0.5, 0.5) for sy in (-0.5, 0.5) for sz in (0.0, 1.0)])
    stream = []
    for step in range(messages_per_camera):
        t = step * 0.1
        xy = positions + velocity * t
        points = np.concatenate([xy[:, None, :], np.zeros((objects, 1, 1))], axis=2) + corners[None] * size[:, None]
        for k, cam in enumerate(geometries):
            pixels, depth = cam.project(points.reshape(-1, 3))
            pixels = pixels.reshape(objects, 8, 2)
            boxes = np.concatenate([pixels.min(axis=1), pixels.max(axis=1)], axis=1) + rng.normal(0, 1.0, (objects, 4))
            emb = identity + rng.normal(0, 0.02, identity.shape)
            stream.append((cam, TrackBatch(cam.camera_id, t + 0.01 * k, np.arange(objects), boxes, classes,
                                           np.full(objects, 0.9), emb)))
    return stream


def bench_localizer(cameras: int = 4, objects: int = 50, seconds: float = 20.0) -> dict:
    """``perception bench localizer``: camera messages fused per second on one core (each with ``objects``
    tracks), the processing time each adds (p50/p99), with the nearest-neighbour baseline on the same stream."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    stream = _bench_stream(cameras, objects, int(seconds * 10))

    def measure(config: LocalizerConfig) -> dict:
        localizer = Localizer(None, config)
        times = []
        started = time.perf_counter()
        for cam, batch in stream:
            t0 = time.perf_counter()
            localizer.fuse(cam, batch)
            times.append(time.perf_counter() - t0)
        snap_started = time.perf_counter()
        snapshots = 0
        while time.perf_counter() - snap_started < 0.5:
            localizer.snapshot()
            snapshots += 1
        elapsed = time.perf_counter() - started
        ms = np.asarray(times) * 1e3
        return {"messages_per_s": round(len(stream) / float(np.sum(times)), 1),
                "rounds_per_s": round(len(stream) / float(np.sum(times)) / cameras, 1),
                "observations_per_s": round(len(stream) * objects / float(np.sum(times)), 0),
                "added_latency_ms_p50": round(float(np.percentile(ms, 50)), 3),
                "added_latency_ms_p99": round(float(np.percentile(ms, 99)), 3),
                "snapshot_ms": round(500.0 / max(snapshots, 1), 3), "objects_on_map": len(localizer.tracker.objects),
                "wall_s": round(elapsed, 2)}

    ours = measure(LocalizerConfig())
    # What the IMM beside the identity filter costs: ours publishing the constant-velocity estimate instead.
    constant_velocity = measure(LocalizerConfig(fusion=FusionParams(motion_model=MotionModel.CONSTANT_VELOCITY)))
    baseline = measure(LocalizerConfig(fusion=FusionParams(association=AssociationMode.NEAREST, reid_max_distance=0.0,
                                                           use_bindings=False, remove_out_of_view=False,
                                                           motion_model=MotionModel.CONSTANT_VELOCITY),
                                       use_appearance=False))
    return {**ours, "cameras": cameras, "objects": objects, "messages": len(stream),
            "baseline_nearest": baseline, "constant_velocity": constant_velocity,
            "ours_vs_baseline_ratio": round(ours["messages_per_s"] / baseline["messages_per_s"], 3),
            "ours_vs_constant_velocity_ratio": round(ours["messages_per_s"] / constant_velocity["messages_per_s"], 3)}
