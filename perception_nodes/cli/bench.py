"""`perception bench <what>`: measurements printed as one JSON line."""
from __future__ import annotations

import time

import numpy as np

from perception_nodes.cli.common import emit


def bench_world(args) -> int:
    """Render frames/s per 640x480 camera on one core, and Image conversion throughput."""
    import cv2

    from perception_nodes.image_codec import image_to_numpy, numpy_to_image
    from perception_nodes.world import World, load_scene

    cv2.setNumThreads(1)  # "on one core": OpenCV must not fan out
    world = World(load_scene(args.scene, seed=args.seed))
    per_camera = {}
    for ci, cam in enumerate(world.cameras):
        world.render(ci, 0)  # background built outside the timing
        started = time.perf_counter()
        for frame in range(args.frames):
            world.render(ci, frame)
        per_camera[cam.spec.id] = args.frames / (time.perf_counter() - started)
    from sensor_msgs.msg import Image

    image, _ = world.render(0, 0)
    msg = Image()
    rounds = args.conversions
    started = time.perf_counter()
    for _ in range(rounds):
        numpy_to_image(image, "bgr8", msg=msg)
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(rounds):
        image_to_numpy(msg, copy=True)
    decode_s = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(rounds):
        image_to_numpy(msg)
    view_s = time.perf_counter() - started
    nbytes = image.nbytes * rounds
    fps = np.asarray(list(per_camera.values()))
    result = {
        "scene": world.scene.name, "frames_per_camera": args.frames,
        "fps_per_camera": round(float(fps.mean()), 2), "fps_per_camera_min": round(float(fps.min()), 2),
        "fps_by_camera": {k: round(v, 2) for k, v in per_camera.items()},
        "gb_per_s": round(2 * nbytes / (encode_s + decode_s) / 1e9, 3),
        "encode_gb_per_s": round(nbytes / encode_s / 1e9, 3), "decode_copy_gb_per_s": round(nbytes / decode_s / 1e9, 3),
        "decode_view_us": round(view_s / rounds * 1e6, 2), "image_bytes": int(image.nbytes),
    }
    for cam, value in result["fps_by_camera"].items():
        print(f"render {cam}: {value:.1f} frames/s (one core)")
    print(f"Image conversion: {result['gb_per_s']} GB/s round trip (encode {result['encode_gb_per_s']}, "
          f"decode+copy {result['decode_copy_gb_per_s']}), zero-copy decode {result['decode_view_us']} us")
    emit(result)
    return 0


def add_parsers(sub, add_scene_args):
    bench = sub.add_parser("bench", help="benchmarks; the last stdout line is JSON")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    world = bench_sub.add_parser("world", help="render fps per camera (one core) and image conversion GB/s")
    add_scene_args(world)
    world.add_argument("--frames", type=int, default=60)
    world.add_argument("--conversions", type=int, default=200)
    world.set_defaults(func=bench_world)
    return bench_sub
