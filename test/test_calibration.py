import numpy as np
import pytest
import yaml

from perception_nodes.calibration import CameraCalibration, load_calibration, save_calibration
from perception_nodes.errors import ConfigError
from perception_nodes.world import load_scene


def test_round_trip_in_camera_info_manager_layout(tmp_path):
    spec = load_scene("default").cameras[2]
    calib = CameraCalibration.from_camera_spec(spec)
    path = save_calibration(calib, tmp_path / "cam2.yaml")
    data = yaml.safe_load(path.read_text())
    assert {"image_width", "image_height", "camera_name", "camera_matrix", "distortion_model",
            "distortion_coefficients", "rectification_matrix", "projection_matrix"} <= set(data)
    back = load_calibration(f"file://{path}")
    np.testing.assert_allclose(back.K, calib.K)
    np.testing.assert_allclose(back.D, spec.distortion)
    assert back.extrinsics["position"] == list(spec.position)
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


@pytest.mark.parametrize("content, fragment", [
    ("image_width: 640\n", "image_height"),
    ("image_width: 640\nimage_height: 480\ncamera_matrix: {rows: 3, cols: 3, data: [1, 2]}\n", "3x3"),
    ("image_width: 640\nimage_height: 480\ncamera_matrix: {rows: 3, cols: 3, data: [0,0,1,0,0,1,0,0,1]}\n", "focal"),
    ("image_width: -1\nimage_height: 480\n", "positive"),
    ("[1, 2, 3]", "mapping"),
    (": : :", "not valid YAML"),
])
def test_malformed_files_raise_config_error(tmp_path, content, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=fragment):
        load_calibration(path)


def test_missing_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_calibration("/nonexistent/cam.yaml")
