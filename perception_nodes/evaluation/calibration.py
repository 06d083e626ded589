"""Extrinsic calibration accuracy on synthetic ground markers."""
from __future__ import annotations

import numpy as np


def evaluate_calibration(scene: str, seed: int | None, markers: int, noise_px: float, max_distance_m: float,
                         log=print) -> dict:
    """``perception eval calibration``: recover every camera's pose from noisy synthetic ground markers; the worst
    camera's errors, and each camera's."""
    from perception_nodes.extrinsics import pose_errors, solve_extrinsics, synthetic_markers
    from perception_nodes.world import World, load_scene

    world = World(load_scene(scene, seed=seed))
    rng = np.random.default_rng([world.scene.seed, 0xCA1])
    per_camera = {}
    for cam in world.cameras:
        points, pixels = synthetic_markers(cam, world.scene.lot_size, markers, rng,
                                           max_distance_m=max_distance_m)
        noisy = pixels + rng.normal(0.0, noise_px, pixels.shape)
        result = solve_extrinsics(points, noisy, cam.K, cam.D)
        position_error, rotation_error = pose_errors(result.T_map_optical, cam.T_map_optical)
        per_camera[cam.spec.id] = {"position_error_m": position_error, "rotation_error_deg": rotation_error,
                                   "reprojection_px": result.reprojection_rms_px, "inliers": int(len(result.inliers))}
        log(f"[eval] {cam.spec.id}: position {position_error * 100:.2f} cm, rotation {rotation_error:.4f} deg, "
              f"reprojection {result.reprojection_rms_px:.3f} px")
    worst = {key: max(c[key] for c in per_camera.values())
             for key in ("position_error_m", "rotation_error_deg", "reprojection_px")}
    return {**worst, "scene": world.scene.name, "seed": world.scene.seed, "noise_px": noise_px,
            "markers": markers, "max_distance_m": max_distance_m, "per_camera": per_camera}
