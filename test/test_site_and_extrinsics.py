"""Calibration files -> URDF -> TF, and the extrinsic calibration tool (core, no rclpy)."""
import shutil

import numpy as np
import pytest
import yaml

from conftest import last_json, run_cli
from perception_nodes.calibration import load_calibration
from perception_nodes.errors import ConfigError
from perception_nodes.extrinsics import CalibrationError, pose_errors, solve_extrinsics, synthetic_markers
from perception_nodes.site import calibration_dir_for, expand_xacro, fixed_joints, load_site
from perception_nodes.tf import LookupException, TransformBuffer
from perception_nodes.world import World, load_scene


def _tree(calibration_dir) -> TransformBuffer:
    buffer = TransformBuffer()
    for transform in fixed_joints(expand_xacro(calibration_dir)):
        buffer.set_transform(transform, static=True)
    return buffer


@pytest.mark.parametrize("scene", ["default", "overlap2", "night"])
def test_shipped_calibration_reproduces_the_true_camera_poses(scene):
    world = World(load_scene(scene))
    buffer = _tree(calibration_dir_for(scene))
    for cam in world.cameras:
        found = buffer.lookup_transform("map", cam.spec.optical_frame).transform()
        assert np.abs(found.matrix() - cam.T_map_optical.matrix()).max() < 1e-6
        calibration = load_calibration(calibration_dir_for(scene) / f"{cam.spec.id}.yaml")
        np.testing.assert_allclose(calibration.K, cam.K)
    with pytest.raises(LookupException):
        buffer.lookup_transform("map", "cam_that_does_not_exist_optical_frame")


def test_one_edit_changes_both_tf_and_camera_info(tmp_path):
    folder = tmp_path / "site"
    shutil.copytree(calibration_dir_for("overlap2"), folder)
    path = folder / "cam_east.yaml"
    data = yaml.safe_load(path.read_text())
    data["extrinsics"]["position"][2] = 9.25
    data["camera_matrix"]["data"][0] = 555.5
    path.write_text(yaml.safe_dump(data))
    mount = _tree(folder).lookup_transform("map", "cam_east_optical_frame")
    assert mount.translation[2] == pytest.approx(9.25)
    assert load_calibration(path).K[0, 0] == 555.5


@pytest.mark.parametrize("edit, fragment", [
    (lambda f: (f / "site.yaml").unlink(), "site.yaml does not exist"),
    (lambda f: (f / "site.yaml").write_text("cameras: []"), "needs 'cameras"),
    (lambda f: (f / "cam_east.yaml").unlink(), "does not exist"),
    (lambda f: (f / "cam_east.yaml").write_text(
        yaml.safe_dump({k: v for k, v in yaml.safe_load((f / "cam_east.yaml").read_text()).items() if k != "extrinsics"})),
     "no 'extrinsics'"),
    (lambda f: (f / "cam_east.yaml").write_text("image_width: [oops"), "not valid YAML"),
])
def test_malformed_calibration_folders_raise_config_error(tmp_path, edit, fragment):
    folder = tmp_path / "site"
    shutil.copytree(calibration_dir_for("overlap2"), folder)
    edit(folder)
    with pytest.raises(ConfigError, match=fragment):
        load_site(folder)
    with pytest.raises(ConfigError):
        expand_xacro(folder)


def test_eval_calibration_meets_the_accuracy_target():
    result = last_json(run_cli("eval", "calibration", "--scene", "default", "--seed", "3", "--noise-px", "0.5").stdout)
    assert result["position_error_m"] <= 0.02 and result["rotation_error_deg"] <= 0.2, result
    assert 0.3 < result["reprojection_px"] < 1.0  # the injected 0.5 px noise shows up in the residuals
    assert set(result["per_camera"]) == {"cam0", "cam1", "cam2", "cam3"}


def test_ransac_rejects_wrong_markers_and_bad_inputs():
    world = World(load_scene("overlap2"))
    cam = world.cameras[0]
    rng = np.random.default_rng(1)
    points, pixels = synthetic_markers(cam, world.scene.lot_size, 30, rng)
    pixels = pixels + rng.normal(0, 0.3, pixels.shape)
    pixels[:4] += 80.0  # four markers clicked at the wrong place
    result = solve_extrinsics(points, pixels, cam.K, cam.D)
    assert not set(result.inliers) & {0, 1, 2, 3}
    position_error, rotation_error = pose_errors(result.T_map_optical, cam.T_map_optical)
    assert position_error < 0.1 and rotation_error < 0.2
    with pytest.raises(CalibrationError, match="at least 4"):
        solve_extrinsics(points[:3], pixels[:3], cam.K, cam.D)
    line = np.stack([np.linspace(0, 5, 6), np.zeros(6), np.zeros(6)], axis=1)
    with pytest.raises(CalibrationError, match="collinear"):
        solve_extrinsics(line, pixels[:6], cam.K, cam.D)


def test_calibrate_extrinsics_cli_writes_a_file_that_feeds_the_urdf(tmp_path):
    world = World(load_scene("overlap2"))
    cam = world.cameras[1]
    rng = np.random.default_rng(7)
    points, pixels = synthetic_markers(cam, world.scene.lot_size, 60, rng)
    markers = {"markers": [{"id": f"m{i}", "map": p.tolist(), "pixel": (q + rng.normal(0, 0.5, 2)).tolist()}
                           for i, (p, q) in enumerate(zip(points, pixels))]}
    (tmp_path / "markers.yaml").write_text(yaml.safe_dump(markers))
    folder = tmp_path / "site"
    shutil.copytree(calibration_dir_for("overlap2"), folder)
    out = folder / "cam_east.yaml"
    result = last_json(run_cli("calibrate", "extrinsics", "--markers", str(tmp_path / "markers.yaml"),
                               "--camera-info", str(out), "--out", str(out)).stdout)
    assert result["reprojection_px"] < 1.0 and result["outliers"] == []
    found = _tree(folder).lookup_transform("map", "cam_east_optical_frame").transform()
    position_error, rotation_error = pose_errors(found, cam.T_map_optical)
    assert position_error < 0.05 and rotation_error < 0.2
    bad = tmp_path / "bad_markers.yaml"
    bad.write_text("markers: [{id: a, map: [1, 2]}]")
    proc = run_cli("calibrate", "extrinsics", "--markers", str(bad), "--camera-info", str(out), check=False)
    assert proc.returncode == 2 and "needs map [x, y, z] and pixel [u, v]" in proc.stderr
