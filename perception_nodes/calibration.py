"""Camera calibration files in camera_info_manager's YAML layout (pure Python).

One file per camera holds the intrinsics (the standard camera_info_manager keys)
and, under ``extrinsics``, the camera's mounted pose; CameraInfo and the TF tree
are both derived from it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from perception_nodes.errors import ConfigError
from perception_nodes.fileio import atomic_write_yaml, read_yaml_mapping


@dataclass
class CameraCalibration:
    camera_name: str
    width: int
    height: int
    K: np.ndarray  # 3x3
    D: np.ndarray  # plumb_bob k1 k2 p1 p2 k3
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    P: np.ndarray | None = None  # 3x4; defaults to [K | 0]
    distortion_model: str = "plumb_bob"
    extrinsics: dict | None = None  # {parent_frame, position [x,y,z] m, yaw_deg, pitch_deg, roll_deg}

    def projection(self) -> np.ndarray:
        if self.P is not None:
            return self.P
        return np.hstack([self.K, np.zeros((3, 1))])

    @staticmethod
    def from_camera_spec(spec, parent_frame: str = "map") -> "CameraCalibration":
        """From any object with a camera's id, size, fx/fy/cx/cy, distortion and mounted pose
        (e.g. a synthetic scene's CameraSpec; duck-typed so calibration never imports the world)."""
        K = np.array([[spec.fx, 0, spec.cx], [0, spec.fy, spec.cy], [0, 0, 1]], dtype=np.float64)
        return CameraCalibration(spec.id, spec.width, spec.height, K, np.asarray(spec.distortion, dtype=np.float64),
                                 extrinsics={"parent_frame": parent_frame, "position": list(spec.position),
                                             "yaw_deg": spec.yaw_deg, "pitch_deg": spec.pitch_deg, "roll_deg": spec.roll_deg})

    def to_yaml_dict(self) -> dict:
        def mat(m, rows, cols):
            return {"rows": rows, "cols": cols, "data": [float(v) for v in np.asarray(m).ravel()]}

        data = {
            "image_width": int(self.width), "image_height": int(self.height), "camera_name": self.camera_name,
            "camera_matrix": mat(self.K, 3, 3), "distortion_model": self.distortion_model,
            "distortion_coefficients": mat(self.D, 1, len(self.D)), "rectification_matrix": mat(self.R, 3, 3),
            "projection_matrix": mat(self.projection(), 3, 4),
        }
        if self.extrinsics:
            data["extrinsics"] = self.extrinsics
        return data


def _matrix(data: dict, key: str, rows: int, cols: int | None, where: str) -> np.ndarray:
    block = data.get(key)
    if not isinstance(block, dict) or "data" not in block:
        raise ConfigError(f"{where}: '{key}' must be a mapping with rows, cols and data")
    try:
        values = np.asarray(block["data"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: '{key}.data' must be numbers") from None
    cols = cols if cols is not None else int(block.get("cols", values.size))
    if values.size != rows * cols or not np.all(np.isfinite(values)):
        raise ConfigError(f"{where}: '{key}' needs {rows}x{cols} finite numbers, got {values.size}")
    return values.reshape(rows, cols) if rows > 1 else values


def load_calibration(path: str | os.PathLike) -> CameraCalibration:
    """Read a camera_info_manager YAML file; ConfigError says what is wrong."""
    path = Path(str(path).removeprefix("file://"))
    data = read_yaml_mapping(path, "calibration file")
    where = str(path)
    try:
        width, height = int(data["image_width"]), int(data["image_height"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{where}: image_width and image_height are required integers") from None
    if width <= 0 or height <= 0:
        raise ConfigError(f"{where}: image size must be positive, got {width}x{height}")
    K = _matrix(data, "camera_matrix", 3, 3, where)
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ConfigError(f"{where}: focal lengths must be positive")
    model = str(data.get("distortion_model", "plumb_bob"))
    D = _matrix(data, "distortion_coefficients", 1, None, where) if "distortion_coefficients" in data else np.zeros(5)
    if model == "plumb_bob" and D.size != 5:
        raise ConfigError(f"{where}: plumb_bob needs 5 distortion coefficients, got {D.size}")
    R = _matrix(data, "rectification_matrix", 3, 3, where) if "rectification_matrix" in data else np.eye(3)
    P = _matrix(data, "projection_matrix", 3, 4, where) if "projection_matrix" in data else None
    extrinsics = data.get("extrinsics")
    if extrinsics is not None:
        if not isinstance(extrinsics, dict) or len(extrinsics.get("position", [])) != 3:
            raise ConfigError(f"{where}: 'extrinsics' needs position [x, y, z] (m) and yaw/pitch/roll in degrees")
    return CameraCalibration(str(data.get("camera_name", path.stem)), width, height, K, np.ravel(D), R, P, model, extrinsics)


def save_calibration(calibration: CameraCalibration, path: str | os.PathLike) -> Path:
    """Write atomically (temp file + rename): a crash never leaves half a file."""
    return atomic_write_yaml(path, calibration.to_yaml_dict())
