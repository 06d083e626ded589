"""`perception train|export detector`, `perception eval detection` and `perception bench detector`."""
from __future__ import annotations

import time

import numpy as np

from perception_nodes.cli.common import emit
from perception_nodes.detection.dataset import EVAL_MIN_HEIGHT_PX, EVAL_MIN_VISIBILITY, EvalPolicy
from perception_nodes.detection.registry import DEFAULT_DETECTOR as DEFAULT_MODEL
from perception_nodes.errors import ConfigError


def _seeds(text: str) -> list[int]:
    """'100-111' or '200,201' -> [..]"""
    seeds = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            seeds.extend(range(int(lo), int(hi) + 1))
        elif part:
            seeds.append(int(part))
    if not seeds:
        raise ConfigError(f"no seeds in {text!r}")
    return seeds


def evaluate_model(weights, scene_name: str, seeds: list[int], frame_step: int, imgsz: int, conf: float = 0.001,
                   batch: int = 4, policy: EvalPolicy = EvalPolicy()) -> dict:
    """mAP of a weights file on every ``frame_step``-th frame of the given seeds (all cameras)."""
    from perception_nodes.detection.backend import UltralyticsDetector
    from perception_nodes.detection.dataset import coco_evaluate, coco_ground_truth, to_coco_detections
    from perception_nodes.world import World, load_scene

    # NMS IoU: the backend's default, which is also the detector node's (`iou` parameter, 0.7) and
    # ultralytics' own validation setting, so the figures describe what the node publishes.
    detector = UltralyticsDetector(weights, imgsz=imgsz, conf=conf)
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


def run_eval(args) -> int:
    from perception_nodes.cli.common import resolve_detector_model
    from perception_nodes.world import load_scene

    entry, path = resolve_detector_model(args)
    scene = load_scene(args.scene, seed=args.seed)
    seeds = [scene.seed] if args.seed is not None else _seeds(args.seeds)
    started = time.perf_counter()
    policy = EvalPolicy(args.min_visibility, args.min_height_px)
    imgsz = args.imgsz or entry.input_size
    result = evaluate_model(path, args.scene, seeds, args.frame_step, imgsz, policy=policy)
    result["imgsz"] = imgsz
    for name, values in result["per_class"].items():
        print(f"[eval] {name:8s} mAP@0.5 {values['map50']:.3f}  mAP@0.5:0.95 {values['map50_95']:.3f}")
    print(f"[eval] all      mAP@0.5 {result['map50']:.3f}  mAP@0.5:0.95 {result['map50_95']:.3f} "
          f"({result['images']} images, {result['evaluated_objects']} objects)")
    emit({**result, "model": entry.ref, "scene": scene.name, "seeds": seeds, "frame_step": args.frame_step,
          "wall_s": round(time.perf_counter() - started, 1)})
    return 0


def run_train(args) -> int:
    from perception_nodes.detection.train import train_detector
    from perception_nodes.world import load_scene

    scene = load_scene(args.scene)
    eval_seeds = _seeds(args.eval_seeds)
    base_model, init_ref = "yolov8n.yaml", None
    if args.init:
        from perception_nodes.detection.registry import ModelRegistry

        entry, path = ModelRegistry().verified_path(args.init)
        base_model, init_ref = str(path), entry.ref
    summary = train_detector(
        scene, args.name, args.version, args.work, _seeds(args.train_seeds), _seeds(args.val_seeds), eval_seeds,
        args.frame_step, args.epochs, args.imgsz, args.batch, args.hours, args.threads,
        base_model=base_model, init_ref=init_ref,
        evaluate=lambda weights: evaluate_model(weights, args.scene, eval_seeds, args.eval_frame_step, args.imgsz))
    emit(summary)
    return 0


def run_export(args) -> int:
    from perception_nodes.detection.export import export_onnx
    from perception_nodes.detection.registry import ModelRegistry

    registry = ModelRegistry()
    source = registry.resolve(args.model)
    seeds = _seeds(args.eval_seeds)
    evaluate = None if args.no_eval else (
        lambda weights: evaluate_model(weights, args.scene, seeds, args.eval_frame_step, source.input_size))
    started = time.perf_counter()
    entry = export_onnx(args.model, registry, evaluate)
    print(f"[export] {source.ref} -> {entry.ref} ({entry.file.name}, {entry.file.stat().st_size / 1e6:.1f} MB)")
    emit({"model": entry.ref, "source": source.ref, "file": str(entry.file), "sha256": entry.sha256,
          "size_bytes": entry.file.stat().st_size, "metrics": entry.metrics, "source_metrics": source.metrics,
          "wall_s": round(time.perf_counter() - started, 1)})
    return 0


def add_parsers(sub, eval_sub, add_scene_args) -> None:
    export = sub.add_parser("export", help="export registered models to other runtimes")
    export_sub = export.add_subparsers(dest="export_command", required=True)
    ex = export_sub.add_parser("detector", help="export a .pt detector to ONNX (dynamic batch) and register it "
                                                "as <name>-onnx@<version>")
    ex.add_argument("--model", default=DEFAULT_MODEL, help="name@version of a .pt entry in models/manifest.yaml")
    ex.add_argument("--scene", default="default", help="scene for the export's own mAP check")
    ex.add_argument("--eval-seeds", default="200-201")
    ex.add_argument("--eval-frame-step", type=int, default=30)
    ex.add_argument("--no-eval", action="store_true", help="copy the source's metrics instead of measuring")
    ex.set_defaults(func=run_export)

    train = sub.add_parser("train", help="train models on the synthetic world")
    train_sub = train.add_subparsers(dest="train_command", required=True)
    det = train_sub.add_parser("detector", help="export YOLO data, train a nano YOLO on the CPU, register it with a card")
    det.add_argument("--scene", default="default")
    det.add_argument("--name", default=DEFAULT_MODEL)
    det.add_argument("--version", required=True)
    det.add_argument("--work", default="runs/train_detector", help="dataset and ultralytics run folder")
    det.add_argument("--train-seeds", default="100-111")
    det.add_argument("--val-seeds", default="190-191")
    det.add_argument("--eval-seeds", default="200-201", help="held-out seeds for the model card's metrics")
    det.add_argument("--frame-step", type=int, default=15, help="every Nth frame of each seed")
    det.add_argument("--eval-frame-step", type=int, default=30)
    det.add_argument("--epochs", type=int, default=30)
    det.add_argument("--hours", type=float, default=None, help="ultralytics' time budget (overrides epochs)")
    det.add_argument("--imgsz", type=int, default=640)
    det.add_argument("--batch", type=int, default=8)
    det.add_argument("--threads", type=int, default=2)
    det.add_argument("--init", default=None, metavar="NAME@VERSION",
                     help="start from a registered model's weights (fine-tune) instead of random initialisation")
    det.set_defaults(func=run_train)

    ev = eval_sub.add_parser("detection", help="mAP of a registered detector on held-out seeds (pycocotools)")
    add_scene_args(ev)
    ev.add_argument("--model", default=None, help="name@version from models/manifest.yaml (default: the model "
                    "config/perception.yaml runs)")
    ev.add_argument("--seeds", default="200-201", help="held-out seeds when --seed is not given")
    ev.add_argument("--imgsz", type=int, default=0, choices=range(0, 4097), metavar="PX",
                    help="inference input size (default 0: the model's, as the node runs it)")
    ev.add_argument("--frame-step", type=int, default=30)
    ev.add_argument("--min-height-px", type=float, default=EVAL_MIN_HEIGHT_PX,
                    help="objects shorter than this are ignore regions (neither hits nor misses)")
    ev.add_argument("--min-visibility", type=float, default=EVAL_MIN_VISIBILITY,
                    help="objects less visible than this fraction are ignore regions")
    # Saved results (`perception report`): a run at another input size than the model's is kept apart.
    # Saved results keep one latest run per model (the configured one under the plain key) and input size.
    ev.set_defaults(func=run_eval, result_variant=lambda a: "-".join(
        part for part in (getattr(a, "model_key", ""), f"imgsz{a.imgsz}" if a.imgsz else "") if part))


def _percentiles(values_ms: list[float]) -> tuple[float, float]:
    array = np.asarray(values_ms) if values_ms else np.zeros(1)
    return float(np.percentile(array, 50)), float(np.percentile(array, 99))


def _sum_counts(rounds: list[dict], key: str) -> int | None:
    values = [r[stream][key] for r in rounds for stream in ("node_single", "node_batched") if key in r[stream]]
    return int(sum(values)) if values else None


def run_bench(args) -> int:
    """Raw ultralytics vs the detector node through DDS on the same frames; batched vs single camera.

    Throughputs: raw = back-to-back predict() calls of plain ultralytics (one ONNX Runtime session, the
    peer); node = frames answered per second with the next frame already waiting at the node (as with a
    live camera); streams = the node's backend in this process, a batch split over its CPU streams
    (detection/backend.py), which tells the backend's gain from the node's overhead. Latency: one frame
    in flight, from publishing the image to receiving its detections (DDS both ways, conversion,
    inference). The raw models stay loaded in this process while the node runs, so the rounds can
    interleave them.
    """
    import os
    import threading

    from perception_nodes.cli.common import resolve_detector_model
    from perception_nodes.detection.backend import UltralyticsDetector, resolve_cpu_streams
    from perception_nodes.graph import NodeSpec
    from perception_nodes.runner import GraphRunner
    from perception_nodes.world import World, load_scene

    entry, path = resolve_detector_model(args)
    world = World(load_scene(args.scene, seed=args.seed))
    cams = [c.spec.id for c in world.cameras][:4]
    frames = [[world.render(ci, f * 3)[0] for ci in range(len(cams))] for f in range(args.frames)]
    max_batch = args.max_batch or len(cams)
    cpu_streams = resolve_cpu_streams(args.cpu_streams, min(len(cams), max_batch))
    detector = UltralyticsDetector(path, imgsz=entry.input_size, conf=0.25)  # plain ultralytics: the peer
    streamed = UltralyticsDetector(path, imgsz=entry.input_size, conf=0.25, cpu_streams=cpu_streams)  # the node's
    for model in (detector, streamed):
        model.warmup()
        model.predict(frames[0])  # a first pass at each batch size is slower (ONNX Runtime plans its memory)

    def timed(fn):
        started = time.perf_counter()
        fn()
        return (time.perf_counter() - started) * 1000.0

    def raw_fps(step_images, model=detector) -> float:
        """Back-to-back predict() on the frames: frames per second (each step is one call)."""
        per_step = [timed(lambda imgs=imgs: model.predict(imgs)) for imgs in step_images]
        return len(step_images) * len(step_images[0]) * 1000.0 / float(np.sum(per_step))

    raw_single_ms = [timed(lambda img=f[0]: detector.predict([img])) for f in frames]  # per-frame raw latency

    # The node in its own process, fed over DDS from this process, one frame (or one frame per camera) at a time.
    from sensor_msgs.msg import Image

    from perception_nodes.cli.common import ros_init
    from perception_nodes.image_codec import numpy_to_image
    from perception_nodes.msg import DetectionArray, NodeHealth
    from perception_nodes.ros import qos
    from perception_nodes.ros.health import HEALTH_TOPIC

    domain = int(os.environ.get("ROS_DOMAIN_ID", "0"))
    spec = NodeSpec("detector", "detector", "/", parameters={"cameras": cams, "model": entry.ref, "confidence": 0.25,
                                                             "max_batch": max_batch, "cpu_streams": cpu_streams})
    rclpy = ros_init()
    node = rclpy.create_node("detector_bench")
    pubs = {c: node.create_publisher(Image, f"/{c}/image_raw", qos.IMAGE) for c in cams}
    arrivals: dict[tuple, float] = {}
    event = threading.Condition()

    newest: dict[str, int] = {}  # camera -> newest stamp answered (streaming waits on it)

    def on_detections(msg, cam):
        with event:
            arrivals[(cam, msg.header.stamp.sec, msg.header.stamp.nanosec)] = time.perf_counter()
            newest[cam] = max(newest.get(cam, -1), msg.header.stamp.sec)
            event.notify_all()

    for cam in cams:
        node.create_subscription(DetectionArray, f"/{cam}/detections", lambda m, c=cam: on_detections(m, c), qos.RESULTS)

    # The node's own counters (its 1 Hz health report) tell frames lost on the way (published, never received)
    # from frames the node superseded, and how many passes it ran (frames per pass = the batching achieved).
    health: list = []  # (report time, NodeHealth) of the detector; the node stamps reports with the system clock

    def on_health(msg):
        if msg.node_name.endswith("/detector"):
            with event:
                health.append((msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, msg))
                event.notify_all()

    node.create_subscription(NodeHealth, HEALTH_TOPIC, on_health, qos.HEALTH)
    published = [0]

    def node_counts(after: float) -> dict[str, int]:
        """The detector's counters from its first health report made after `after` (time.time())."""
        with event:
            event.wait_for(lambda: health and health[-1][0] > after, timeout=3.0)
            msg = health[-1][1] if health else None
        if msg is None:
            return {}
        extra = dict(zip(msg.counter_names, msg.counter_values))
        return {"published": published[0], "received": msg.received, "processed": msg.processed,
                "superseded": extra.get("dropped_superseded", 0), "batches": extra.get("batches", 0)}

    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    runner = GraphRunner([spec], domain_id=domain, output=open(os.devnull, "w")).start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and node.count_subscribers(f"/{cams[0]}/image_raw") == 0:
            time.sleep(0.2)

        def send(cam_images, stamp):
            """One frame per camera, then wait for all their detections: unloaded end-to-end latency."""
            sent = time.perf_counter()
            keys = []
            for cam, image in cam_images:
                publish(cam, image, stamp)
                keys.append((cam, stamp, 0))
            with event:
                event.wait_for(lambda: all(k in arrivals for k in keys), timeout=10.0)
            done = [arrivals.get(k) for k in keys]
            return None if None in done else (max(done) - sent) * 1000.0

        def publish(cam, image, stamp):
            msg = numpy_to_image(image, "bgr8")
            msg.header.stamp.sec, msg.header.frame_id = stamp, f"{cam}_optical_frame"
            pubs[cam].publish(msg)
            published[0] += 1
            time.sleep(args.stagger_ms / 1000.0)

        def stream(cam_frames, first_stamp):
            """Throughput with the next frame already waiting at the node (two steps in flight per camera).

            A step is published once the step two before it is answered (or superseded: the node keeps
            only the newest frame per camera, a frame it dropped is counted, not waited for).
            Returns (frames answered per second, frames dropped)."""
            cams_used = [cam for cam, _ in cam_frames[0]]

            def answered(stamp):
                return all(newest.get(cam, -1) >= stamp for cam in cams_used)

            started = time.perf_counter()
            for step, cam_images in enumerate(cam_frames):
                if step >= 2:
                    waited = time.perf_counter()
                    with event:
                        event.wait_for(lambda: answered(first_stamp + step - 2), timeout=10.0)
                    if args.verbose and time.perf_counter() - waited > 0.5:
                        print(f"[bench] stall at step {step}: waited {time.perf_counter() - waited:.2f} s; answered per cam",
                              {c: newest.get(c, first_stamp) - first_stamp for c in cams_used})
                for cam, image in cam_images:
                    publish(cam, image, first_stamp + step)
            last = first_stamp + len(cam_frames) - 1
            with event:
                event.wait_for(lambda: answered(last), timeout=10.0)
                got = [t for k, t in arrivals.items() if first_stamp <= k[1] <= last]
            elapsed = (max(got) if got else time.perf_counter()) - started
            return len(got) / elapsed, len(cam_frames) * len(cams_used) - len(got)

        counted = [{}]  # the node's counters after the last stream (it is idle until the next one)

        def stream_counted(cam_frames, first_stamp):
            """stream(), plus what the node's counters say happened to its frames."""
            before = counted[0]
            fps, dropped = stream(cam_frames, first_stamp)
            after = counted[0] = node_counts(time.time())  # a report made after the last answer
            diff = {k: after[k] - before[k] for k in after if k in before}
            if diff:
                diff["lost_in_transport"] = diff["published"] - diff["received"]
                diff["frames_per_pass"] = round(diff["processed"] / diff["batches"], 2) if diff["batches"] else 0.0
            return fps, dropped, diff

        # Warm-up outside the timing: until the node (configure, model load, first passes) answers, then 3 more.
        warm, answered_warm = 0, 0
        while answered_warm < 3 and time.monotonic() < deadline:
            warm += 1
            answered_warm += send([(cams[0], frames[0][0])], warm) is not None
        latencies = [ms for i, f in enumerate(frames) if (ms := send([(cams[0], f[0])], 10_000 + i)) is not None]
        counted[0] = node_counts(time.time())
        # Rounds interleave raw and node, single and batched: on a shared CPU the speed of the machine drifts
        # over tens of seconds (the same ONNX pass has measured 60 ms and 82 ms minutes apart), so each ratio is
        # taken within one round, where both sides ran under the same conditions, and the median round counts.
        # Stamps only grow (streaming waits on the newest stamp answered per camera).
        rounds = []
        for r in range(args.rounds):
            raw_single = raw_fps([[f[0]] for f in frames])
            node_single, dropped_single, counts_single = stream_counted([[(cams[0], f[0])] for f in frames],
                                                                        1_000_000 + 200_000 * r)
            raw_batched = raw_fps([list(f) for f in frames])
            streams_batched = raw_fps([list(f) for f in frames], streamed)
            node_batched, dropped_batched, counts_batched = stream_counted([list(zip(cams, f)) for f in frames],
                                                                           1_100_000 + 200_000 * r)
            rounds.append({"raw_fps": raw_single, "node_fps": node_single, "raw_batched_fps": raw_batched,
                           "streams_batched_fps": streams_batched, "node_batched_fps": node_batched,
                           "node_frames_dropped": dropped_single + dropped_batched,
                           "node_single": counts_single, "node_batched": counts_batched})
            if args.verbose:
                print(f"[bench] round {r + 1}: " + ", ".join(f"{k} {v}" if isinstance(v, dict) else f"{k} {v:.2f}"
                                                              for k, v in rounds[-1].items()))
    finally:
        runner.stop()
        executor.shutdown(timeout_sec=1.0)
        spin.join(timeout=5.0)
        node.destroy_node()
        rclpy.shutdown()
    p50, p99 = _percentiles(latencies)

    def median(key_or_fn, reduce=np.median):
        fn = key_or_fn if callable(key_or_fn) else (lambda r: r[key_or_fn])
        return float(reduce([fn(r) for r in rounds]))

    def node_vs_raw(r):
        return r["node_fps"] / r["raw_fps"]

    def batched_vs_single(r):
        return r["node_batched_fps"] / r["node_fps"] if r["node_fps"] else 0.0

    result = {
        "model": entry.ref, "frames": args.frames, "cameras": len(cams), "rounds": len(rounds),
        "max_batch": max_batch, "cpu_streams": streamed.streams,
        "raw_fps": median("raw_fps"), "raw_batched_fps": median("raw_batched_fps"),
        "streams_batched_fps": median("streams_batched_fps"),
        "node_fps": median("node_fps"), "node_batched_fps": median("node_batched_fps"),
        "node_vs_raw_ratio": median(node_vs_raw),
        "batched_vs_single_ratio": median(batched_vs_single),
        # The spread over the rounds says how far a median is from a coin toss on this machine.
        "node_vs_raw_ratio_min": median(node_vs_raw, np.min), "node_vs_raw_ratio_max": median(node_vs_raw, np.max),
        "batched_vs_single_ratio_min": median(batched_vs_single, np.min),
        "batched_vs_single_ratio_max": median(batched_vs_single, np.max),
        "raw_batched_vs_single_ratio": median(lambda r: r["raw_batched_fps"] / r["raw_fps"]),
        "node_batched_vs_raw_batched_ratio": median(lambda r: r["node_batched_fps"] / r["raw_batched_fps"]),
        "streams_batched_vs_raw_batched_ratio": median(lambda r: r["streams_batched_fps"] / r["raw_batched_fps"]),
        "node_batched_vs_streams_batched_ratio": median(lambda r: r["node_batched_fps"] / r["streams_batched_fps"]),
        "p50_ms": p50, "p99_ms": p99, "raw_p50_ms": _percentiles(raw_single_ms)[0],
        "latency_frames_answered": len(latencies),
        "node_frames_dropped": int(sum(r["node_frames_dropped"] for r in rounds)),
        # From the node's health reports (absent if none arrived): where the unanswered frames went.
        "frames_lost_in_transport": _sum_counts(rounds, "lost_in_transport"),
        "node_frames_superseded": _sum_counts(rounds, "superseded"),
        "batched_frames_per_pass": median(lambda r: r["node_batched"].get("frames_per_pass", 0.0)),
        "per_round": rounds,
    }
    raw_single_fps, raw_batched_fps = result["raw_fps"], result["raw_batched_fps"]
    node_single_fps, node_batched_fps = result["node_fps"], result["node_batched_fps"]
    print(f"[bench] medians of {len(rounds)} interleaved rounds (per-round node/raw "
          f"{result['node_vs_raw_ratio_min']:.2f}-{result['node_vs_raw_ratio_max']:.2f}, batched/single "
          f"{result['batched_vs_single_ratio_min']:.2f}-{result['batched_vs_single_ratio_max']:.2f})")
    print(f"[bench] raw ultralytics: {raw_single_fps:.1f} frames/s single, {raw_batched_fps:.1f} frames/s batched x{len(cams)}")
    print(f"[bench] backend in process, batch split over {streamed.streams} CPU stream(s): "
          f"{result['streams_batched_fps']:.1f} frames/s batched x{len(cams)} "
          f"(ratio to raw batched {result['streams_batched_vs_raw_batched_ratio']:.2f})")
    print(f"[bench] node via DDS: {node_single_fps:.1f} frames/s single (ratio {result['node_vs_raw_ratio']:.2f}), "
          f"{node_batched_fps:.1f} frames/s batched x{len(cams)} (ratio {result['batched_vs_single_ratio']:.2f}); "
          f"unloaded latency p50 {p50:.1f} ms p99 {p99:.1f} ms; {result['node_frames_dropped']} frames unanswered "
          f"({result['frames_lost_in_transport']} lost in transport, {result['node_frames_superseded']} superseded "
          f"at the node); {result['batched_frames_per_pass']} frames per pass batched")
    emit(result)
    return 0


def add_bench_parser(bench_sub, add_scene_args) -> None:
    bench = bench_sub.add_parser("detector", help="raw ultralytics vs the node via DDS; batched vs single camera")
    add_scene_args(bench)
    bench.add_argument("--model", default=None, help="name@version (default: the model config/perception.yaml runs)")
    bench.add_argument("--frames", type=int, default=40, choices=range(1, 10_001), metavar="N",
                       help="frames per camera in each measurement (1-10000)")
    bench.add_argument("--rounds", type=int, default=5, choices=range(1, 101), metavar="N",
                       help="interleaved rounds (raw, node, raw batched, streams batched, node batched); ratios are "
                            "per-round medians")
    bench.add_argument("--max-batch", type=int, default=0, choices=range(0, 65), metavar="N",
                       help="the node's max_batch (0: one pass for all cameras)")
    bench.add_argument("--cpu-streams", type=int, default=0, choices=range(0, 65), metavar="N",
                       help="the node's cpu_streams (0: one per core, at most one per camera; 1: one session)")
    bench.add_argument("--stagger-ms", type=float, default=5.0,
                       help="gap between the cameras' frames of one step (cameras are not shutter-synchronised)")
    bench.add_argument("--verbose", action="store_true", help="report stalls (waits over 0.5 s) while streaming")
    bench.set_defaults(func=run_bench, result_variant=lambda a: "-".join(
        part for part in (getattr(a, "model_key", ""), f"batch{a.max_batch}" if a.max_batch else "",
                          f"streams{a.cpu_streams}" if a.cpu_streams else "") if part))
