"""The pure core must import without rclpy (architecture rule)."""
import subprocess
import sys

import pytest

CORE_MODULES = [
    "perception_nodes.errors", "perception_nodes.stats", "perception_nodes.geometry", "perception_nodes.image_codec",
    "perception_nodes.world", "perception_nodes.calibration", "perception_nodes.sources", "perception_nodes.graph",
    "perception_nodes.runner", "perception_nodes.bagio", "perception_nodes.simbag", "perception_nodes.rosenv",
    "perception_nodes.fileio", "perception_nodes.paths", "perception_nodes.extrinsics", "perception_nodes.site",
    "perception_nodes.tf", "perception_nodes.tracking", "perception_nodes.evaluation.mot",
    "perception_nodes.detection.dataset", "perception_nodes.detection.registry", "perception_nodes.detection.runtime",
    "perception_nodes.detection.train", "perception_nodes.site.manifest", "perception_nodes.taxonomy",
    "perception_nodes.boxes", "perception_nodes.reid", "perception_nodes.sources.synthetic",
    "perception_nodes.evaluation.detection", "perception_nodes.evaluation.tracking",
    "perception_nodes.evaluation.calibration", "perception_nodes.risk",
]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_does_not_import_rclpy(module):
    code = f"import sys, {module}; sys.exit(1 if 'rclpy' in sys.modules else 0)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{module} pulled in rclpy\n{proc.stderr}"
