"""`perception calibrate extrinsics|export` and `perception eval calibration`."""
from __future__ import annotations

from perception_nodes.cli.common import emit


def run_extrinsics(args) -> int:
    from perception_nodes.calibration import load_calibration, save_calibration
    from perception_nodes.extrinsics import load_markers, solve_extrinsics

    calibration = load_calibration(args.camera_info)
    points, pixels, ids = load_markers(args.markers)
    result = solve_extrinsics(points, pixels, calibration.K, calibration.D, args.ransac_px)
    calibration.extrinsics = result.extrinsics(args.parent_frame)
    outliers = sorted(set(ids) - {ids[i] for i in result.inliers})
    if args.out:
        save_calibration(calibration, args.out)
        print(f"[calibrate] wrote {args.out}")
    print(f"[calibrate] {len(result.inliers)}/{result.markers} markers, reprojection rms "
          f"{result.reprojection_rms_px:.3f} px (max {result.reprojection_max_px:.3f}); outliers: {outliers or 'none'}")
    emit({**calibration.extrinsics, "reprojection_px": result.reprojection_rms_px,
          "reprojection_max_px": result.reprojection_max_px, "outliers": outliers, "out": args.out or ""})
    return 0


def run_export(args) -> int:
    from perception_nodes.sources.synthetic import export_scene_calibration
    from perception_nodes.world import load_scene

    scene = load_scene(args.scene, seed=args.seed)
    written = export_scene_calibration(scene, args.out, args.map_frame)
    emit({"scene": scene.name, "out": args.out, "files": [str(p) for p in written]})
    return 0


def run_eval(args) -> int:
    """Recover every camera's pose from noisy synthetic ground markers; report the worst camera."""
    from perception_nodes.evaluation.calibration import evaluate_calibration

    emit(evaluate_calibration(args.scene, args.seed, args.markers, args.noise_px, args.max_distance_m))
    return 0


def add_parsers(sub, eval_sub, add_scene_args) -> None:
    calibrate = sub.add_parser("calibrate", help="camera calibration tools")
    cal_sub = calibrate.add_subparsers(dest="calibrate_command", required=True)
    ext = cal_sub.add_parser("extrinsics", help="camera pose from >= 4 ground markers (solvePnP + RANSAC)")
    ext.add_argument("--markers", required=True, help="YAML: markers: [{id, map: [x, y, z], pixel: [u, v]}]")
    ext.add_argument("--camera-info", required=True, help="the camera's calibration YAML (intrinsics)")
    ext.add_argument("--out", default="", help="write the calibration (intrinsics + extrinsics) here")
    ext.add_argument("--parent-frame", default="map")
    ext.add_argument("--ransac-px", type=float, default=3.0, help="RANSAC inlier threshold (px)")
    ext.set_defaults(func=run_extrinsics)
    export = cal_sub.add_parser("export", help="write a synthetic scene's true calibration folder")
    add_scene_args(export)
    export.add_argument("--out", required=True)
    export.add_argument("--map-frame", default="map")
    export.set_defaults(func=run_export)

    cal_eval = eval_sub.add_parser("calibration", help="recover camera poses from noisy synthetic markers")
    add_scene_args(cal_eval)
    cal_eval.add_argument("--noise-px", type=float, default=0.5, help="Gaussian marker pixel noise (sigma)")
    cal_eval.add_argument("--markers", type=int, default=120, help="surveyed ground markers per camera")
    cal_eval.add_argument("--max-distance-m", type=float, default=25.0, help="markers at most this far from the camera")
    cal_eval.set_defaults(func=run_eval)
