"""How fast the synthetic world renders and images convert (the demo's cameras compete with the detector)."""
from __future__ import annotations

import time

import numpy as np


def bench_world(scene: str, seed: int | None, frames: int, conversions: int) -> dict:
    """``perception bench world``: render frames/s per camera on one core, and Image conversion throughput."""
    import cv2

    from perception_nodes.image_codec import image_to_numpy, numpy_to_image
    from perception_nodes.world import World, load_scene

    cv2.setNumThreads(1)  # "on one core": OpenCV must not fan out
    world = World(load_scene(scene, seed=seed))
    per_camera = {}
    for ci, cam in enumerate(world.cameras):
        world.render(ci, 0)  # background built outside the timing
        started = time.perf_counter()
        for frame in range(frames):
            world.render(ci, frame)
        per_camera[cam.spec.id] = frames / (time.perf_counter() - started)
    from sensor_msgs.msg import Image

    image, _ = world.render(0, 0)
    msg = Image()
    rounds = conversions
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
        "scene": world.scene.name, "frames_per_camera": frames,
        "fps_per_camera": round(float(fps.mean()), 2), "fps_per_camera_min": round(float(fps.min()), 2),
        "fps_by_camera": {k: round(v, 2) for k, v in per_camera.items()},
        "gb_per_s": round(2 * nbytes / (encode_s + decode_s) / 1e9, 3),
        "encode_gb_per_s": round(nbytes / encode_s / 1e9, 3), "decode_copy_gb_per_s": round(nbytes / decode_s / 1e9, 3),
        "decode_view_us": round(view_s / rounds * 1e6, 2), "image_bytes": int(image.nbytes),
    }
    return result
