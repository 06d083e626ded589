"""The layering rules of ARCHITECTURE.md, written as import-linter contracts (.importlinter) and checked here."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

CONTRACTS = ["The pure core imports no rclpy", "The synthetic world is imported only by its source plugin",
             "Detection and tracking do not import each other", "Re-identification embeddings are their own package",
             "The CLI sits on top", "The core never imports the CLI", "Localization works on published tracks",
             "Risk decides on localized objects", "The site manifest keeps the risk section as written",
             "Retrieval indexes published tracks and images", "Monitoring observes the pipeline"]


def _lint(cwd: Path, python_path: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.fail(f"import-linter is not installed beside {sys.executable}; run make setup")
    env = {**os.environ, "PYTHONPATH": str(python_path), "COLUMNS": "400"}
    return subprocess.run([str(exe), "--config", str(cwd / ".importlinter"), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=240)


def test_the_layering_contracts_hold():
    proc = _lint(REPO, REPO)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    output = " ".join(proc.stdout.split())  # import-linter wraps long contract names
    for name in CONTRACTS:
        assert name in output, (name, output[-2000:])
    assert f"{len(CONTRACTS)} kept, 0 broken" in output


def test_the_contracts_catch_a_violation(tmp_path):
    """A copy of the package with an rclpy import in the core, the world in the graph and tracking importing
    detection: each of those contracts breaks."""
    shutil.copytree(REPO / "perception_nodes", tmp_path / "perception_nodes",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    for module, line in (("taxonomy.py", "import rclpy  # noqa"),
                         ("graph.py", "from perception_nodes.world import World  # noqa"),
                         ("tracking/kalman.py", "from perception_nodes.detection import registry  # noqa")):
        path = tmp_path / "perception_nodes" / module
        path.write_text(path.read_text() + f"\n{line}\n")
    proc = _lint(tmp_path, tmp_path)
    output = " ".join(proc.stdout.split())
    assert proc.returncode != 0 and "3 broken" in output, output[-3000:]
    for fragment in ("perception_nodes.taxonomy -> rclpy", "perception_nodes.graph -> perception_nodes.world",
                     "perception_nodes.tracking.kalman -> perception_nodes.detection"):
        assert fragment in output, (fragment, output[-3000:])
