"""`perception eval tracking` and `perception bench tracker`."""
from __future__ import annotations

import time

import numpy as np

from perception_nodes.cli.common import emit


def _peers_available() -> tuple[bool, str]:
    try:
        import boxmot  # noqa: F401
    except ImportError as exc:
        return False, f"BoxMOT is not installed ({exc}); run make setup"
    return True, ""


def run_eval(args) -> int:
    from perception_nodes.tracking.evaluation import build_sequences, our_tracker_factory, run_tracker, score
    from perception_nodes.world import World, load_scene

    world = World(load_scene(args.scene, seed=args.seed))
    frames = args.frames or world.scene.frame_count
    detector, model_ref = None, None
    if args.detections == "detector":
        from perception_nodes.cli.common import resolve_detector_model
        from perception_nodes.detection.backend import UltralyticsDetector

        entry, path = resolve_detector_model(args)
        model_ref = entry.ref
        backend = UltralyticsDetector(path, imgsz=entry.input_size, conf=args.det_conf)
        detector = lambda image: backend.predict([image])[0]  # noqa: E731
    embedder = None
    if args.appearance == "hsv-hist":
        from perception_nodes.reid.appearance import ColorHistogramEmbedder

        embedder = ColorHistogramEmbedder()
    started = time.perf_counter()
    sequences = build_sequences(world, frames, detector=detector, embedder=embedder)
    print(f"[eval] {sum(len(s.frames) for s in sequences)} frames with {args.detections} detections "
          f"(appearance: {embedder.name if embedder else 'none'}) in {time.perf_counter() - started:.0f} s")
    ours = score(sequences, run_tracker(sequences, our_tracker_factory()))
    peers = {}
    available, why = _peers_available()
    if available and not args.no_peers:
        from perception_nodes.tracking.peers import PEERS, USES_EMBEDDINGS, peer_factory

        for name in PEERS:
            result = score(sequences, run_tracker(sequences, peer_factory(
                name, world.scene.fps, world.cameras[0].size, with_embeddings=embedder is not None)))
            peers[name] = {k: result[k] for k in ("hota", "idf1", "mota", "id_switches")}
            peers[name]["appearance"] = bool(embedder) and name in USES_EMBEDDINGS
    best_peer = max((p["hota"] for p in peers.values()), default=None)
    print(f"[eval] ours: HOTA {ours['hota']:.3f} IDF1 {ours['idf1']:.3f} MOTA {ours['mota']:.3f} "
          f"ID switches {ours['id_switches']}")
    for name, result in peers.items():
        print(f"[eval] {name}: HOTA {result['hota']:.3f} IDF1 {result['idf1']:.3f} MOTA {result['mota']:.3f} "
              f"ID switches {result['id_switches']}")
    emit({**ours, "scene": world.scene.name, "seed": world.scene.seed, "frames": frames,
          "detections": args.detections, "model": model_ref, "appearance": embedder.name if embedder else None,
          "cameras": len(world.cameras), "peers": peers,
          "hota_vs_best_peer": (ours["hota"] / best_peer) if best_peer else None,
          "peers_note": why})
    return 0


def _moving_boxes(objects: int, frames: int, seed: int = 0, embedding_dim: int = 0):
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


def run_bench(args) -> int:
    import os

    from perception_nodes.tracking.evaluation import FrameData
    from perception_nodes.tracking.tracker import ByteTracker

    try:
        import torch

        torch.set_num_threads(1)  # "on one core": peers must not fan out either
    except ImportError:
        pass
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    stream = list(_moving_boxes(args.objects, args.frames, embedding_dim=args.embedding_dim))

    def measure(update) -> float:
        started = time.perf_counter()
        for stamp, dets, embeddings in stream:
            update(stamp, dets, embeddings)
        return len(stream) / (time.perf_counter() - started)

    tracker = ByteTracker()
    ours = measure(lambda stamp, dets, embeddings: tracker.update(dets, stamp, embeddings))
    peers = {}
    available, why = _peers_available()
    if available and not args.no_peers:
        from perception_nodes.tracking.peers import PEERS, USES_EMBEDDINGS, peer_factory

        for name in PEERS:
            step = peer_factory(name, 10.0, (640, 480), with_embeddings=args.embedding_dim > 0)()
            rate = measure(lambda stamp, dets, embeddings: step(
                FrameData(stamp, np.zeros(0), np.zeros((0, 4)), dets, embeddings=embeddings)))
            peers[name] = {"updates_per_s": rate, "ours_vs_peer_ratio": ours / rate,
                           "appearance": args.embedding_dim > 0 and name in USES_EMBEDDINGS}
    print(f"[bench] ours: {ours:.0f} updates/s with {args.objects} objects"
          f"{f', {args.embedding_dim}-d embeddings' if args.embedding_dim else ''} (one core)")
    for name, result in peers.items():
        print(f"[bench] {name}: {result['updates_per_s']:.0f} updates/s (ours/peer {result['ours_vs_peer_ratio']:.2f})")
    emit({"updates_per_s": ours, "objects": args.objects, "frames": args.frames, "embedding_dim": args.embedding_dim,
          "peers": peers, "peers_note": why})
    return 0


def add_parsers(eval_sub, bench_sub, add_scene_args) -> None:
    ev = eval_sub.add_parser("tracking", help="HOTA/IDF1/MOTA of our tracker and BoxMOT's on identical detections")
    add_scene_args(ev)
    ev.add_argument("--detections", choices=("gt-noisy", "detector"), default="gt-noisy")
    ev.add_argument("--model", default=None, help="name@version for --detections detector (default: the model "
                    "config/perception.yaml runs)")
    ev.add_argument("--det-conf", type=float, default=0.1,
                    help="detector score floor for --detections detector; low-score boxes feed ByteTrack's second stage")
    ev.add_argument("--appearance", choices=("hsv-hist", "none"), default="hsv-hist",
                    help="per-detection appearance embedding, as the detector node computes it (config "
                         "appearance_embedding); BoT-SORT gets the same embeddings")
    ev.add_argument("--frames", type=int, default=None, help="frames per camera (default: the whole scene)")
    ev.add_argument("--no-peers", action="store_true", help="skip the BoxMOT trackers")
    # Saved results (`perception report`) keep one latest run per detection source and appearance setting.
    ev.set_defaults(func=run_eval, result_variant=lambda a: "-".join(
        [a.detections] + ([a.model_key] if a.detections == "detector" and getattr(a, "model_key", "") else []) +
        (["no-appearance"] if a.appearance == "none" else []) +
        ([a.scene] if a.scene != "default" else []) + ([f"seed{a.seed}"] if a.seed is not None else [])))
    bench = bench_sub.add_parser("tracker", help="tracker updates/s with N objects on one core, vs BoxMOT")
    bench.add_argument("--objects", type=int, default=50)
    bench.add_argument("--frames", type=int, default=300)
    bench.add_argument("--embedding-dim", type=int, default=192, choices=range(0, 4097), metavar="N",
                       help="appearance embedding per detection (default 192, the hsv-hist size the shipped "
                            "config uses; BoT-SORT gets them too); 0: boxes only")
    bench.add_argument("--no-peers", action="store_true")
    bench.set_defaults(func=run_bench, result_variant=lambda a: "" if a.embedding_dim else "boxes-only")
