"""The site description: calibration files -> URDF (xacro) -> static transforms (pure Python).

``config/calibration/<site>/`` holds ``site.yaml`` (map frame, camera list) and
one camera_info_manager YAML per camera with its ``extrinsics``. The URDF is
generated from them by ``urdf/site.urdf.xacro``; its fixed joints are the
static TF edges (what robot_state_publisher publishes for fixed joints).
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from perception_nodes.calibration import CameraCalibration, load_calibration
from perception_nodes.errors import ConfigError
from perception_nodes.fileio import read_yaml_mapping
from perception_nodes.geometry import Transform, matrix_from_rpy
from perception_nodes.paths import package_path
from perception_nodes.tf.buffer import StampedTransform

SITE_FILE = "site.yaml"


def default_xacro() -> Path:
    return package_path("urdf/site.urdf.xacro")


def calibration_dir_for(scene_name: str) -> Path:
    return package_path("config/calibration") / scene_name


def load_site(calibration_dir: str | os.PathLike) -> tuple[str, dict[str, CameraCalibration]]:
    """(map frame, {camera id: calibration}) of a calibration folder; ConfigError says what is wrong."""
    folder = Path(calibration_dir)
    site_path = folder / SITE_FILE
    site = read_yaml_mapping(site_path, "site file")
    if not isinstance(site.get("cameras"), list) or not site["cameras"]:
        raise ConfigError(f"{site_path}: needs 'cameras: [ids]' (and optionally 'map_frame')")
    calibrations = {}
    for camera in site["cameras"]:
        calibration = load_calibration(folder / f"{camera}.yaml")
        if not calibration.extrinsics:
            raise ConfigError(f"{folder / f'{camera}.yaml'}: has no 'extrinsics' (position, yaw/pitch/roll)")
        calibrations[str(camera)] = calibration
    return str(site.get("map_frame", "map")), calibrations


def expand_xacro(calibration_dir: str | os.PathLike, xacro_file: str | os.PathLike | None = None) -> str:
    """URDF XML of a site; validates the calibration folder first for a clear error."""
    import xacro

    load_site(calibration_dir)
    path = Path(xacro_file) if xacro_file else default_xacro()
    if not path.is_file():
        raise ConfigError(f"xacro file {path} does not exist")
    try:
        document = xacro.process_file(str(path), mappings={"calibration_dir": str(Path(calibration_dir).resolve())})
    except Exception as exc:  # xacro raises its own XacroException and plain Python errors
        raise ConfigError(f"xacro failed on {path}: {exc}") from None
    return document.toprettyxml(indent="  ")


def fixed_joints(urdf_xml: str, stamp_ns: int = 0) -> list[StampedTransform]:
    """Static transforms (parent <- child) of every fixed joint of a URDF."""
    try:
        root = ET.fromstring(urdf_xml)
    except ET.ParseError as exc:
        raise ConfigError(f"robot_description is not valid XML: {exc}") from None
    transforms = []
    for joint in root.iter("joint"):
        if joint.get("type") != "fixed":
            continue
        parent, child = joint.find("parent"), joint.find("child")
        if parent is None or child is None:
            raise ConfigError(f"joint {joint.get('name')} lacks parent or child")
        origin = joint.find("origin")
        xyz = [float(v) for v in (origin.get("xyz", "0 0 0") if origin is not None else "0 0 0").split()]
        rpy = [float(v) for v in (origin.get("rpy", "0 0 0") if origin is not None else "0 0 0").split()]
        transform = Transform(matrix_from_rpy(*rpy), np.asarray(xyz))
        transforms.append(StampedTransform.from_transform(parent.get("link"), child.get("link"), stamp_ns, transform))
    return transforms
