"""ByteTrack-style per-camera tracker.

Each update:
 1. predicts every track to the frame's stamp (dt from stamps, so dropped frames
    are just longer predictions);
 2. matches confirmed and lost tracks to high-score detections (1 - IoU, fused
    with appearance cosine distance when both sides have embeddings), Hungarian
    assignment;
 3. matches the remaining confirmed tracks to low-score detections (IoU, fused
    with appearance unless ``low_score_appearance`` is off): occluded objects keep
    their id through low-confidence frames;
 4. matches tentative tracks to the remaining high-score detections;
 5. starts tentative tracks from unmatched confident detections, confirms a
    track after ``min_hits`` hits, marks unmatched confirmed tracks lost and
    removes them after ``max_age_s``.
Stamps: an older stamp than the last one is dropped (out of order), an equal
one is a duplicate and dropped, a jump back by more than ``reset_backwards_s``
(a bag loop) resets the tracker.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception_nodes.boxes import iou_matrix
from perception_nodes.tracking.kalman import BoxKalman, predict_many, update_many


class TrackState(IntEnum):
    """Values match perception_nodes/msg/Track STATE_*."""

    TENTATIVE = 0
    CONFIRMED = 1
    LOST = 2
    REMOVED = 3


class UpdateStatus(IntEnum):
    OK = 0
    DROPPED_OUT_OF_ORDER = 1
    DROPPED_DUPLICATE = 2
    RESET = 3  # time jumped back; the tracker restarted with this frame


@dataclass
class TrackerParams:
    track_high_thresh: float = 0.5  # detections at or above: first association and new tracks
    track_low_thresh: float = 0.1  # detections below are ignored entirely
    new_track_thresh: float = 0.6  # unmatched detections at or above start a track
    match_thresh: float = 0.8  # max cost (1 - IoU, fused) in the first association
    low_match_thresh: float = 0.5  # max 1 - IoU in the second (low-score) association
    tentative_match_thresh: float = 0.7
    min_hits: int = 2  # hits before a track is confirmed
    max_age_s: float = 3.0  # a lost track is removed after this long without a match
    class_aware: bool = True  # never associate across classes
    appearance_weight: float = 0.7  # fused cost = (1-w) * iou_cost + w * cosine distance
    appearance_gate: float = 0.9  # only fuse where 1 - IoU is below this (spatially plausible)
    # Fuse appearance in the low-score stage too (ByteTrack uses IoU alone there): occluded objects are the
    # low-score ones, and where two cross, IoU alone cannot tell them apart.
    low_score_appearance: bool = True
    embedding_momentum: float = 0.95  # per-track moving average of embeddings
    reset_backwards_s: float = 1.0
    # Observation-centric recovery (as in OC-SORT): a lost track whose predicted box drifted during a
    # detection gap is matched against its last observed box; 0 disables the stage.
    recovery_iou: float = 0.3
    # Appearance re-identification of lost tracks whose boxes no longer overlap the object (a longer gap, a
    # turn): cosine distance <= reid_max_distance, centre within reid_radius box sizes of the track's last
    # observed or predicted centre. Needs embeddings; 0 disables the stage.
    reid_max_distance: float = 0.25
    reid_radius: float = 2.0

    def validate(self) -> None:
        if not 0 <= self.track_low_thresh <= self.track_high_thresh <= 1:
            raise ValueError("need 0 <= track_low_thresh <= track_high_thresh <= 1")
        if self.min_hits < 1 or self.max_age_s <= 0:
            raise ValueError("min_hits >= 1 and max_age_s > 0 required")
        if not 0 <= self.recovery_iou <= 1:
            raise ValueError("recovery_iou must be in [0, 1]")
        if not 0 <= self.reid_max_distance <= 2 or self.reid_radius < 0:
            raise ValueError("reid_max_distance in [0, 2] and reid_radius >= 0 required")
        if not 0 <= self.appearance_weight <= 1 or not 0 <= self.embedding_momentum < 1:
            raise ValueError("appearance_weight in [0, 1] and embedding_momentum in [0, 1) required")


@dataclass
class _Track:
    track_id: int
    kf: BoxKalman
    class_id: int
    score: float
    created_s: float
    last_update_s: float
    hits: int = 1
    state: TrackState = TrackState.TENTATIVE
    frames_since_update: int = 0
    embedding: np.ndarray | None = None
    last_box: np.ndarray | None = None  # xyxy of the latest associated detection


@dataclass
class TrackOutput:
    track_id: int
    state: TrackState
    box_xyxy: np.ndarray
    velocity: np.ndarray  # px/s of the box centre
    class_id: int
    score: float
    age_s: float
    hits: int
    frames_since_update: int
    embedding: np.ndarray | None = None
    detection_index: int = -1  # the detection that updated it this frame, -1 if none


def xyxy_to_cxcywh(b: np.ndarray) -> np.ndarray:
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]], dtype=np.float64)


def cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    return np.array([b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2])


def valid_detection_mask(detections: np.ndarray) -> np.ndarray:
    """Rows with finite values, positive size, non-negative corners and a score in [0, 1]."""
    if detections.size == 0:
        return np.zeros(0, dtype=bool)
    finite = np.all(np.isfinite(detections), axis=1)
    with np.errstate(invalid="ignore"):
        sized = (detections[:, 2] > detections[:, 0]) & (detections[:, 3] > detections[:, 1])
        corners = np.all(detections[:, :4] >= -1e-6, axis=1)  # negative coordinates are malformed
        scores = (detections[:, 4] >= 0) & (detections[:, 4] <= 1)
    return finite & sized & corners & scores


def _assign(cost: np.ndarray, threshold: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    if cost.size == 0:
        return [], list(range(cost.shape[0])), list(range(cost.shape[1]))
    rows, cols = linear_sum_assignment(np.where(cost > threshold, 1e6, cost))
    matches = [(r, c) for r, c in zip(rows, cols) if cost[r, c] <= threshold]
    matched_r, matched_c = {r for r, _ in matches}, {c for _, c in matches}
    return matches, [r for r in range(cost.shape[0]) if r not in matched_r], \
        [c for c in range(cost.shape[1]) if c not in matched_c]


class ByteTracker:
    """One camera's tracker. ``update(detections, stamp_s)``; detections are rows [x1, y1, x2, y2, score, class]."""

    def __init__(self, params: TrackerParams | None = None):
        self.params = params or TrackerParams()
        self.params.validate()
        self._tracks: list[_Track] = []
        self._next_id = 1
        self.last_stamp_s: float | None = None
        self.invalid_detections = 0

    def reset(self) -> None:
        self._tracks = []
        self.last_stamp_s = None

    def _cost(self, tracks: list[_Track], boxes: np.ndarray, classes: np.ndarray, embeddings: np.ndarray | None,
              has_appearance: np.ndarray | None, use_appearance: bool, observed: bool = False) -> np.ndarray:
        """1 - IoU against each track's predicted box (or, ``observed``, its last observed box), fused with
        appearance where ``use_appearance`` and the detection has an embedding (``has_appearance``)."""
        track_boxes = np.array([t.last_box if observed else cxcywh_to_xyxy(t.kf.box) for t in tracks]).reshape(-1, 4)
        cost = 1.0 - iou_matrix(track_boxes, boxes)
        if use_appearance and embeddings is not None and len(tracks) and len(boxes):
            p = self.params
            with_embedding = [i for i, t in enumerate(tracks) if t.embedding is not None]
            if with_embedding:
                rows = np.asarray(with_embedding)
                distance = 1.0 - np.stack([tracks[i].embedding for i in with_embedding]) @ embeddings.T
                # a detection without appearance (all-zero row): IoU alone decides for it
                gated = (cost[rows] < p.appearance_gate) & has_appearance[None, :]
                sub = cost[rows]
                sub[gated] = (1 - p.appearance_weight) * sub[gated] + p.appearance_weight * distance[gated]
                cost[rows] = sub
        if self.params.class_aware and len(tracks) and len(boxes):
            track_classes = np.array([t.class_id for t in tracks])
            cost[track_classes[:, None] != classes[None, :]] = np.inf
        return cost

    def _reidentify(self, track_indices: list[int], det_indices: list[int], detections: np.ndarray,
                    classes: np.ndarray, embeddings: np.ndarray, has_appearance: np.ndarray,
                    matched_det: dict[int, int]) -> list[int]:
        """Match lost tracks to free detections by appearance within a spatial radius; returns the free rest."""
        p = self.params
        dets = np.asarray(det_indices, dtype=int)
        det_boxes = detections[dets, :4]
        det_centres = (det_boxes[:, :2] + det_boxes[:, 2:]) / 2
        det_emb = embeddings[dets]
        cost = np.full((len(track_indices), len(dets)), np.inf)
        for row, ti in enumerate(track_indices):
            track = self._tracks[ti]
            last = track.last_box
            radius = p.reid_radius * max(last[2] - last[0], last[3] - last[1])
            near = np.zeros(len(dets), dtype=bool)
            for centre in ((last[:2] + last[2:]) / 2, track.kf.box[:2]):
                near |= np.linalg.norm(det_centres - centre, axis=1) <= radius
            usable = near & has_appearance[dets]
            if p.class_aware:
                usable &= classes[dets] == track.class_id
            cost[row, usable] = 1.0 - det_emb[usable] @ track.embedding
        matches, _, free = _assign(cost, p.reid_max_distance)
        for r, c in matches:
            matched_det[track_indices[r]] = int(dets[c])
        return [int(dets[c]) for c in free]

    def update(self, detections: np.ndarray, stamp_s: float, embeddings: np.ndarray | None = None
               ) -> tuple[UpdateStatus, list[TrackOutput]]:
        p = self.params
        status = UpdateStatus.OK
        if self.last_stamp_s is not None:
            if stamp_s < self.last_stamp_s - p.reset_backwards_s:
                self.reset()
                status = UpdateStatus.RESET
            elif stamp_s < self.last_stamp_s:
                return UpdateStatus.DROPPED_OUT_OF_ORDER, []
            elif stamp_s == self.last_stamp_s:
                return UpdateStatus.DROPPED_DUPLICATE, []
        dt = 0.0 if self.last_stamp_s is None else stamp_s - self.last_stamp_s
        self.last_stamp_s = stamp_s

        detections = np.asarray(detections, dtype=np.float64).reshape(-1, 6)
        valid = valid_detection_mask(detections)
        self.invalid_detections += int((~valid).sum())
        index_map = np.flatnonzero(valid)
        detections = detections[valid]
        has_appearance = None  # per detection: whether its embedding is usable (non-zero)
        if embeddings is not None:
            embeddings = np.asarray(embeddings, dtype=np.float64)[valid]
            norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
            embeddings = np.divide(embeddings, norms, out=np.zeros_like(embeddings), where=norms > 0)
            has_appearance = norms[:, 0] > 0

        if self._tracks:
            X = np.stack([t.kf.x for t in self._tracks])
            P = np.stack([t.kf.P for t in self._tracks])
            kf = self._tracks[0].kf
            predict_many(X, P, dt, kf.position_std, kf.velocity_std)
            for i, track in enumerate(self._tracks):
                track.kf.x, track.kf.P = X[i], P[i]
                track.frames_since_update += 1

        scores, classes = detections[:, 4], detections[:, 5].astype(int)
        high = np.flatnonzero(scores >= p.track_high_thresh)
        low = np.flatnonzero((scores >= p.track_low_thresh) & (scores < p.track_high_thresh))
        matched_det: dict[int, int] = {}  # track list index -> detection index

        def run(track_indices, det_indices, threshold, use_appearance, observed=False):
            tracks = [self._tracks[i] for i in track_indices]
            emb, has = (embeddings[det_indices], has_appearance[det_indices]) if embeddings is not None else (None, None)
            cost = self._cost(tracks, detections[det_indices, :4], classes[det_indices], emb, has, use_appearance,
                              observed)
            matches, free_tracks, free_dets = _assign(cost, threshold)
            for r, c in matches:
                matched_det[track_indices[r]] = int(det_indices[c])
            return [track_indices[r] for r in free_tracks], [int(det_indices[c]) for c in free_dets]

        active = [i for i, t in enumerate(self._tracks) if t.state in (TrackState.CONFIRMED, TrackState.LOST)]
        free_active, free_high = run(active, high, p.match_thresh, True)
        still_confirmed = [i for i in free_active if self._tracks[i].state == TrackState.CONFIRMED]
        run(still_confirmed, low, p.low_match_thresh, p.low_score_appearance)
        still_lost = [i for i in free_active if self._tracks[i].state == TrackState.LOST and
                      self._tracks[i].last_box is not None]
        if p.recovery_iou > 0 and still_lost and free_high:
            _, free_high = run(still_lost, np.asarray(free_high, dtype=int), 1.0 - p.recovery_iou, False, True)
        if embeddings is not None and p.reid_max_distance > 0:
            still_lost = [i for i in still_lost if i not in matched_det and self._tracks[i].embedding is not None]
            if still_lost and free_high:
                free_high = self._reidentify(still_lost, free_high, detections, classes, embeddings, has_appearance,
                                             matched_det)
        tentative = [i for i, t in enumerate(self._tracks) if t.state == TrackState.TENTATIVE]
        _, free_high = run(tentative, np.asarray(free_high, dtype=int), p.tentative_match_thresh, True)

        det_of = {id(self._tracks[ti]): di for ti, di in matched_det.items()}  # survives list rebuilding
        if matched_det:
            order = list(matched_det.items())
            tracks = [self._tracks[ti] for ti, _ in order]
            boxes = detections[[di for _, di in order], :4]
            Z = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                          boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
            X, P = update_many(np.stack([t.kf.x for t in tracks]), np.stack([t.kf.P for t in tracks]), Z,
                               tracks[0].kf.measurement_std)
            for i, track in enumerate(tracks):
                track.kf.x, track.kf.P = X[i], P[i]
        for ti, di in matched_det.items():
            track = self._tracks[ti]
            track.hits += 1
            track.frames_since_update = 0
            track.last_update_s = stamp_s
            track.score = float(scores[di])
            track.last_box = detections[di, :4].copy()
            if embeddings is not None and has_appearance[di]:
                e = embeddings[di] if track.embedding is None else \
                    p.embedding_momentum * track.embedding + (1 - p.embedding_momentum) * embeddings[di]
                track.embedding = e / max(float(np.sqrt(e @ e)), 1e-12)
            if track.state == TrackState.LOST or (track.state == TrackState.TENTATIVE and track.hits >= p.min_hits):
                track.state = TrackState.CONFIRMED

        for ti, track in enumerate(self._tracks):
            if ti in matched_det:
                continue
            if track.state == TrackState.TENTATIVE:
                track.state = TrackState.REMOVED
            elif track.state == TrackState.CONFIRMED:
                track.state = TrackState.LOST
            if track.state == TrackState.LOST and stamp_s - track.last_update_s > p.max_age_s:
                track.state = TrackState.REMOVED

        for di in free_high:
            if scores[di] < p.new_track_thresh:
                continue
            track = _Track(self._next_id, BoxKalman(xyxy_to_cxcywh(detections[di, :4])), int(classes[di]),
                           float(scores[di]), stamp_s, stamp_s, last_box=detections[di, :4].copy())
            if embeddings is not None and has_appearance[di]:
                track.embedding = embeddings[di].copy()
            if p.min_hits <= 1:
                track.state = TrackState.CONFIRMED
            self._next_id += 1
            self._tracks.append(track)
            det_of[id(track)] = di
        self._tracks = [t for t in self._tracks if t.state != TrackState.REMOVED]

        outputs = []
        for track in self._tracks:
            di = det_of.get(id(track), -1)
            outputs.append(TrackOutput(track.track_id, track.state, cxcywh_to_xyxy(track.kf.box), track.kf.velocity,
                                       track.class_id, track.score, stamp_s - track.created_s, track.hits,
                                       track.frames_since_update, track.embedding,
                                       int(index_map[di]) if di >= 0 else -1))
        return status, outputs
