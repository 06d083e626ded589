"""The site: its manifest (cameras, sources, calibration, semantic map, detector and class map) and its
transform tree (calibration files -> URDF -> static transforms). Pure Python; never imports the world."""
from perception_nodes.site.tree import SITE_FILE, calibration_dir_for, default_xacro, expand_xacro, fixed_joints, load_site

__all__ = ["SITE_FILE", "calibration_dir_for", "default_xacro", "expand_xacro", "fixed_joints", "load_site"]
