"""`perception bench detector`'s harness: the raw backend against the detector node through DDS.

It starts the node in its own process and feeds it over DDS from this one, so it
lives in the ROS layer; its frames come from the caller (the synthetic world via
evaluation.detection.bench_frames), never from the world directly.
"""
from __future__ import annotations

import time

import numpy as np


def _percentiles(values_ms: list[float]) -> tuple[float, float]:
    array = np.asarray(values_ms) if values_ms else np.zeros(1)
    return float(np.percentile(array, 50)), float(np.percentile(array, 99))


def _sum_counts(rounds: list[dict], key: str) -> int | None:
    values = [r[stream][key] for r in rounds for stream in ("node_single", "node_batched") if key in r[stream]]
    return int(sum(values)) if values else None


def bench_detector(entry, path, cams: list[str], frames: list[list[np.ndarray]], *, rounds: int = 5,
                   max_batch: int = 0, cpu_streams: int = 0, stagger_ms: float = 5.0, verbose: bool = False,
                   log=print) -> dict:
    """The raw backend vs the detector node through DDS on the same frames; batched vs single camera.

    ``frames[i]`` holds step i's frame of every camera in ``cams`` (evaluation.detection.bench_frames).

    Throughputs: raw = back-to-back predict() calls of the backend the entry names, in this process (plain
    ultralytics with one ONNX Runtime session, or one OpenVINO request: the peer); node = frames answered per
    second with the next frame already waiting at the node (as with a live camera); streams = the node's backend
    in this process, a batch split over its CPU streams, which tells the backend's gain from the node's
    overhead. Latency: one frame
    in flight, from publishing the image to receiving its detections (DDS both ways, conversion,
    inference). The raw models stay loaded in this process while the node runs, so the rounds can
    interleave them.
    """
    import os
    import threading

    from perception_nodes.detection.backend import resolve_cpu_streams
    from perception_nodes.detection.runtime import make_detector
    from perception_nodes.graph import NodeSpec
    from perception_nodes.runner import GraphRunner

    max_batch = max_batch or len(cams)
    cpu_streams = resolve_cpu_streams(cpu_streams, min(len(cams), max_batch))
    detector = make_detector(entry, path, entry.input_size, conf=0.25)  # the plain backend: the peer
    streamed = make_detector(entry, path, entry.input_size, conf=0.25, cpu_streams=cpu_streams)  # the node's
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

    from perception_nodes.image_codec import numpy_to_image
    from perception_nodes.msg import DetectionArray, NodeHealth
    from perception_nodes.ros import qos
    from perception_nodes.ros.health import HEALTH_TOPIC

    domain = int(os.environ.get("ROS_DOMAIN_ID", "0"))
    spec = NodeSpec("detector", "detector", "/", parameters={"cameras": cams, "model": entry.ref, "confidence": 0.25,
                                                             "max_batch": max_batch, "cpu_streams": cpu_streams})
    import rclpy
    import rclpy.executors

    rclpy.init(args=[])
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
            time.sleep(stagger_ms / 1000.0)

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
                    if verbose and time.perf_counter() - waited > 0.5:
                        log(f"[bench] stall at step {step}: waited {time.perf_counter() - waited:.2f} s; answered per cam",
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
        round_count, rounds = rounds, []
        for r in range(round_count):
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
            if verbose:
                log(f"[bench] round {r + 1}: " + ", ".join(f"{k} {v}" if isinstance(v, dict) else f"{k} {v:.2f}"
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
        "model": entry.ref, "frames": len(frames), "cameras": len(cams), "rounds": len(rounds),
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
    return result
