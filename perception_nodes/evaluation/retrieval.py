"""Retrieval accuracy against the synthetic world: cross-camera mAP and R@k, the drive-in/drive-out task, the
embedding alone and each re-ranking stage, hsv-hist against the learned embedder, in one run.

Sightings come from ground truth: every ``stride_s`` each camera's visible actors are cut out of the rendered
image and the crop selector keeps the best crop per (camera, actor) per ``window_s``, as the retrieval node
does per track. The index never sees identities (``global_id`` = 0); map positions carry localization-like
noise. Queries are cross-camera only: the gallery of a query holds the other cameras' sightings.
"""
from __future__ import annotations

import itertools
import math
import tempfile
import time
from dataclasses import dataclass, replace

import numpy as np

from perception_nodes.retrieval.crops import CropSelector, crop_quality, cut_crop
from perception_nodes.retrieval.embedders import embed_crops
from perception_nodes.retrieval.index import RetrievalIndex
from perception_nodes.retrieval.rerank import (STAGE_ORDER, QueryContext, Reranker, TravelTimeModel,
                                               travel_pairs_from_neighbours)
from perception_nodes.retrieval.types import Observation, QueryFilter

VEHICLES = ("car", "truck")
SCENE_EPOCH_NS = 1_764_633_600_000_000_000  # 2025-12-02T00:00Z: sightings get real-looking stamps


@dataclass
class Sighting:
    crop: np.ndarray                    # BGR, the box with a margin
    box: tuple[float, float, float, float]  # the box inside the crop
    observation: Observation
    identity: int                       # the actor's global id (ground truth, never indexed)
    time_s: float


def sightings(scene: str, seed: int, stride_s: float = 0.5, window_s: float = 2.0, min_side_px: float = 20.0,
              min_visible: float = 0.5, position_noise_m: float = 0.3, duration_s: float | None = None,
              log=None) -> list[Sighting]:
    """The best crop per (camera, actor) per window, from the world's ground truth."""
    from perception_nodes.world import World, load_scene

    world = World(load_scene(scene, seed=seed))
    rng = np.random.default_rng([seed, 0x5E])
    fps = world.scene.fps
    step = max(1, int(round(stride_s * fps)))
    frames = int(round((duration_s or world.scene.duration_s) * fps))
    selector = CropSelector(window_s=window_s, min_side_px=min_side_px)
    out: list[Sighting] = []
    # Per-camera track ids as a tracker would give them: a new track after the actor was out of that camera's
    # view for more than track_gap_s.
    track_gap_s = 2.0
    last_seen: dict[tuple[str, int], float] = {}
    track_of: dict[tuple[str, int], int] = {}
    next_track = itertools.count(1)
    started = time.perf_counter()

    def keep(emitted):
        out.extend(payload for _, payload in emitted)

    for frame in range(0, frames, step):
        t = world.time_of(frame)
        states = {a.global_id: (p, v) for a, p, _, v in world.states(frame)}
        for index, camera in enumerate(world.cameras):
            image, boxes = world.render(index, frame)
            for box in boxes:
                if box.visible_fraction < min_visible or not selector.big_enough(box.bbox):
                    continue
                quality = crop_quality(image, box.bbox, confidence=box.visible_fraction)
                position, velocity = states[box.global_id]
                key = (camera.spec.id, box.global_id)
                if key not in track_of or t - last_seen[key] > track_gap_s:
                    track_of[key] = next(next_track)
                last_seen[key] = t
                crop, inner = cut_crop(image, box.bbox)
                speed = float(np.hypot(velocity[0], velocity[1]))
                obs = Observation(
                    camera_id=camera.spec.id, stamp_ns=SCENE_EPOCH_NS + int(round(t * 1e9)), class_id=box.class_id,
                    class_name=box.class_name, track_id=track_of[key], global_id=0,
                    map_xy=(float(position[0] + rng.normal(0, position_noise_m)),
                            float(position[1] + rng.normal(0, position_noise_m))),
                    heading=float(math.atan2(velocity[1], velocity[0])) if speed > 0.5 else None,
                    box=tuple(box.bbox), quality=quality)
                keep(selector.offer((camera.spec.id, track_of[key]), obs.stamp_ns, quality,
                                    Sighting(crop, inner, obs, box.global_id, t)))
        keep(selector.flush(older_than_ns=SCENE_EPOCH_NS + int(round((t - window_s) * 1e9))))
    keep(selector.flush())
    if log:
        log(f"[eval] {scene} seed {seed}: {len(out)} sightings from {frames // step} frame times x "
            f"{len(world.cameras)} cameras in {time.perf_counter() - started:.0f} s")
    return out


def embed_sightings(embedder, items: list[Sighting]) -> np.ndarray:
    """One row per sighting (the embedder sees the crop and the box inside it)."""
    return embed_crops(embedder, [s.crop for s in items], [s.box for s in items]).astype(np.float32)


def average_precision(relevant: np.ndarray, total_relevant: int) -> float:
    """AP of a ranked list of relevance flags against ``total_relevant`` relevant items in the gallery."""
    if total_relevant == 0:
        return float("nan")
    hits = np.cumsum(relevant)
    precision = hits / np.arange(1, len(relevant) + 1)
    return float(np.sum(precision * relevant) / total_relevant)


def _score_ranking(ranked_identities: list[np.ndarray], query_identities: list[int],
                   relevant_totals: list[int]) -> dict:
    aps, r1, r5, r10 = [], [], [], []
    for ranked, identity, total in zip(ranked_identities, query_identities, relevant_totals):
        relevant = (ranked == identity).astype(np.float64)
        aps.append(average_precision(relevant, total))
        r1.append(bool(relevant[:1].any()))
        r5.append(bool(relevant[:5].any()))
        r10.append(bool(relevant[:10].any()))
    n = len(aps)
    return {"map": round(float(np.mean(aps)), 4) if n else None, "r1": round(float(np.mean(r1)), 4) if n else None,
            "r5": round(float(np.mean(r5)), 4) if n else None, "r10": round(float(np.mean(r10)), 4) if n else None,
            "queries": n}


class _Gallery:
    """The sightings in a FAISS index (exact search), with the travel-time model learned from the index."""

    def __init__(self, items: list[Sighting], vectors: np.ndarray, embedder_name: str, directory: str):
        self.items = items
        self.index = RetrievalIndex(directory, embedder_name, vectors.shape[1], backend="faiss",
                                    approximate_above=10 ** 9)
        self.ids = np.asarray(self.index.insert([s.observation for s in items], vectors), np.int64)
        self.identity_of = {int(i): s.identity for i, s in zip(self.ids, items)}
        self.track_rows: dict[tuple[str, int], list[int]] = {}   # a camera track's sightings (rows)
        for row, s in enumerate(items):
            self.track_rows.setdefault((s.observation.camera_id, s.observation.track_id), []).append(row)
        self.vectors = vectors
        observations = {int(i): s.observation for i, s in zip(self.ids, items)}
        self.travel = TravelTimeModel().fit(travel_pairs_from_neighbours(self.ids, vectors, observations))

    def close(self):
        self.index.close()


def _ranked(gallery: _Gallery, query_row: int, stages, k: int, query_filter: QueryFilter, shortlist: int,
            exclude: frozenset[int] = frozenset()) -> np.ndarray:
    item = gallery.items[query_row]
    hits = gallery.index.search(gallery.vectors[query_row], k, query_filter)
    hits = [h for h in hits if h.item_id not in exclude]
    if stages:
        reranker = Reranker(stages, travel=gallery.travel)
        # A query by one sighting of a track the index holds (as the node's query by item id): its track's
        # sightings are known.
        track = gallery.vectors[gallery.track_rows[(item.observation.camera_id, item.observation.track_id)]]
        head = reranker.rerank(QueryContext(gallery.vectors[query_row], item.observation, exclude, track),
                               hits[:shortlist], gallery.index.vectors)
        hits = head + hits[shortlist:]
    return np.array([gallery.identity_of[h.item_id] for h in hits], np.int64)


def _cross_camera(gallery: _Gallery, classes: tuple[str, ...], stages, shortlist: int, max_queries: int,
                  rng: np.random.Generator) -> dict:
    cameras = sorted({s.observation.camera_id for s in gallery.items})
    rows = [i for i, s in enumerate(gallery.items) if s.observation.class_name in classes]
    if len(rows) > max_queries:
        rows = sorted(rng.choice(rows, max_queries, replace=False).tolist())
    ranked, identities, totals = [], [], []
    for row in rows:
        item = gallery.items[row]
        others = tuple(c for c in cameras if c != item.observation.camera_id)
        total = sum(1 for s in gallery.items if s.identity == item.identity and s.observation.camera_id in others)
        if total == 0:
            continue
        flt = QueryFilter(camera_ids=others)
        ranked.append(_ranked(gallery, row, stages, min(1000, len(gallery.items)), flt, shortlist))
        identities.append(item.identity)
        totals.append(total)
    return _score_ranking(ranked, identities, totals)


def drive_in_out(items: list[Sighting], vectors: np.ndarray, embedder_name: str, stages, min_stay_s: float,
                 scene_duration_s: float, directory: str) -> dict:
    """Each vehicle that drove in and out during the scene: its last sighting queries the entries (first
    sightings) of all vehicles seen before it; R@1 is the share matched to its own entry."""
    by_identity: dict[int, list[int]] = {}
    for row, s in enumerate(items):
        if s.observation.class_name in VEHICLES:
            by_identity.setdefault(s.identity, []).append(row)
    entries, exits = {}, {}
    for identity, rows in by_identity.items():
        rows.sort(key=lambda r: items[r].time_s)
        first, last = rows[0], rows[-1]
        if items[first].time_s < 3.0:          # already in view at the start: its entry was not seen
            continue
        entries[identity] = first
        if items[last].time_s - items[first].time_s >= min_stay_s and items[last].time_s < scene_duration_s - 3.0:
            exits[identity] = last
    entry_rows = sorted(entries.values())
    if not exits or not entry_rows:
        return {"r1": None, "queries": 0}
    gallery = _Gallery([items[r] for r in entry_rows], vectors[entry_rows], embedder_name, directory)
    try:
        correct = []
        for identity, row in exits.items():
            query = items[row]
            flt = QueryFilter(end_ns=query.observation.stamp_ns)
            hits = gallery.index.search(vectors[row], min(100, len(entry_rows)), flt)
            if stages:
                reranker = Reranker(stages, travel=gallery.travel)
                # An exit-gate crop: no track links it to the entry (the query carries no track id).
                anonymous = replace(query.observation, track_id=0)
                hits = reranker.rerank(QueryContext(vectors[row], anonymous), hits, gallery.index.vectors)
            correct.append(bool(hits) and gallery.identity_of[hits[0].item_id] == identity)
        return {"r1": round(float(np.mean(correct)), 4), "queries": len(correct), "entries": len(entry_rows)}
    finally:
        gallery.close()


def evaluate_embedder(items: list[Sighting], embedder, scene_duration_s: float, shortlist: int = 100,
                      max_queries: int = 600, min_stay_s: float = 20.0, stage_sets: dict | None = None,
                      seed: int = 0) -> dict:
    """Every figure for one embedder on one set of sightings."""
    vectors = embed_sightings(embedder, items)
    usable = np.linalg.norm(vectors, axis=1) > 1e-6
    items = [s for s, ok in zip(items, usable) if ok]
    vectors = vectors[usable]
    stage_sets = stage_sets or {"embedding": (), **{s.value: (s,) for s in STAGE_ORDER}, "all": STAGE_ORDER}
    out = {"embedder": embedder.name, "dim": int(vectors.shape[1]), "sightings": len(items), "stages": {}}
    with tempfile.TemporaryDirectory(prefix="eval-retrieval-") as directory:
        gallery = _Gallery(items, vectors, embedder.name, f"{directory}/gallery")
        try:
            for name, stages in stage_sets.items():
                rng = np.random.default_rng(seed)
                vehicles = _cross_camera(gallery, VEHICLES, stages, shortlist, max_queries, rng)
                persons = _cross_camera(gallery, ("person",), stages, shortlist, max_queries, rng)
                dio = drive_in_out(items, vectors, embedder.name, stages, min_stay_s, scene_duration_s,
                                   f"{directory}/dio-{name}")
                out["stages"][name] = {"vehicles": vehicles, "persons": persons, "drive_in_out": dio}
        finally:
            gallery.close()
    return out
