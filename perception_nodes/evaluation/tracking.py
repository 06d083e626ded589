"""Tracking accuracy (HOTA, IDF1, MOTA) against the synthetic world, and tracker throughput, with BoxMOT's
trackers as peers fed identical detections."""
from __future__ import annotations

import time

import numpy as np


def peers_available() -> tuple[bool, str]:
    try:
        import boxmot  # noqa: F401
    except ImportError as exc:
        return False, f"BoxMOT is not installed ({exc}); run make setup"
    return True, ""


def evaluate_tracking(scene: str, seed: int | None, frames: int | None, detections: str, model=None,
                      det_conf: float = 0.1, appearance: str = "hsv-hist", peers: bool = True, log=print) -> dict:
    """``perception eval tracking``: ours and the peers on the same detections.

    ``detections``: "gt-noisy" or "detector" (then ``model`` is the registry entry and file path, (entry, path)).
    """
    from perception_nodes.evaluation.mot import build_sequences, our_tracker_factory, run_tracker, score
    from perception_nodes.world import World, load_scene

    world = World(load_scene(scene, seed=seed))
    frames = frames or world.scene.frame_count
    detector, model_ref = None, None
    if detections == "detector":
        from perception_nodes.detection.runtime import make_detector

        entry, path = model
        model_ref = entry.ref
        backend = make_detector(entry, path, entry.input_size, conf=det_conf)
        detector = lambda image: backend.predict([image])[0]  # noqa: E731
    embedder = None
    if appearance != "none":  # hsv-hist or a registered learned embedder, as the detector node loads them
        from perception_nodes.retrieval.embedders import load_embedder

        embedder = load_embedder(appearance)
    started = time.perf_counter()
    sequences = build_sequences(world, frames, detector=detector, embedder=embedder)
    log(f"[eval] {sum(len(s.frames) for s in sequences)} frames with {detections} detections "
        f"(appearance: {embedder.name if embedder else 'none'}) in {time.perf_counter() - started:.0f} s")
    ours = score(sequences, run_tracker(sequences, our_tracker_factory()))
    peer_results = {}
    available, why = peers_available()
    if available and peers:
        from perception_nodes.evaluation.tracking_peers import PEERS, USES_EMBEDDINGS, peer_factory

        for name in PEERS:
            result = score(sequences, run_tracker(sequences, peer_factory(
                name, world.scene.fps, world.cameras[0].size, with_embeddings=embedder is not None)))
            peer_results[name] = {k: result[k] for k in ("hota", "idf1", "mota", "id_switches")}
            peer_results[name]["appearance"] = bool(embedder) and name in USES_EMBEDDINGS
    best_peer = max((p["hota"] for p in peer_results.values()), default=None)
    return {**ours, "scene": world.scene.name, "seed": world.scene.seed, "frames": frames,
            "detections": detections, "model": model_ref, "appearance": embedder.name if embedder else None,
            "cameras": len(world.cameras), "peers": peer_results,
            "hota_vs_best_peer": (ours["hota"] / best_peer) if best_peer else None, "peers_note": why}


def moving_boxes(objects: int, frames: int, seed: int = 0, embedding_dim: int = 0):
    """Detections of ``objects`` boxes moving linearly with noise, 10 Hz; with ``embedding_dim``, each object
    also carries a noisy unit embedding of its own (as the colour histograms do)."""
    rng = np.random.default_rng(seed)
    start = rng.uniform([0, 0], [600, 440], (objects, 2))
    velocity = rng.uniform(-20, 20, (objects, 2))
    size = rng.uniform(20, 60, (objects, 2))
    classes = rng.integers(0, 4, (objects, 1))  # an object keeps its class
    identity = rng.random((objects, max(embedding_dim, 1)))
    for frame in range(frames):
        centre = start + velocity * frame * 0.1 + rng.normal(0, 1.0, (objects, 2))
        boxes = np.hstack([centre - size / 2, centre + size / 2, rng.uniform(0.5, 1.0, (objects, 1)), classes])
        embeddings = None
        if embedding_dim:
            embeddings = identity + rng.normal(0, 0.05, identity.shape)
            embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
        yield frame * 0.1, boxes, embeddings


def bench_tracker(objects: int, frames: int, embedding_dim: int, peers: bool = True) -> dict:
    """``perception bench tracker``: updates/s on one core, ours and the peers on the same stream."""
    import os

    from perception_nodes.evaluation.mot import FrameData
    from perception_nodes.tracking.tracker import ByteTracker

    try:
        import torch

        torch.set_num_threads(1)  # "on one core": peers must not fan out either
    except ImportError:
        pass
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    stream = list(moving_boxes(objects, frames, embedding_dim=embedding_dim))

    def measure(update) -> float:
        started = time.perf_counter()
        for stamp, dets, embeddings in stream:
            update(stamp, dets, embeddings)
        return len(stream) / (time.perf_counter() - started)

    tracker = ByteTracker()
    ours = measure(lambda stamp, dets, embeddings: tracker.update(dets, stamp, embeddings))
    peer_results = {}
    available, why = peers_available()
    if available and peers:
        from perception_nodes.evaluation.tracking_peers import PEERS, USES_EMBEDDINGS, peer_factory

        for name in PEERS:
            step = peer_factory(name, 10.0, (640, 480), with_embeddings=embedding_dim > 0)()
            rate = measure(lambda stamp, dets, embeddings: step(
                FrameData(stamp, np.zeros(0), np.zeros((0, 4)), dets, embeddings=embeddings)))
            peer_results[name] = {"updates_per_s": rate, "ours_vs_peer_ratio": ours / rate,
                                  "appearance": embedding_dim > 0 and name in USES_EMBEDDINGS}
    return {"updates_per_s": ours, "objects": objects, "frames": frames, "embedding_dim": embedding_dim,
            "peers": peer_results, "peers_note": why}
