"""A plain `colcon build` in a fresh workspace with the repository under src/ builds everything."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.build


def _repo_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def test_plain_colcon_build_in_a_fresh_workspace(tmp_path):
    if not shutil.which("colcon"):
        pytest.skip("colcon is not installed (run make setup)")
    source = tmp_path / "ws" / "src" / "perception_nodes"
    for rel in _repo_files():
        target = source / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / rel).is_file():
            shutil.copy2(REPO / rel, target)
    venv = Path(sys.prefix)
    env = dict(os.environ)
    # A clean environment: only the ROS wheels' prefix, none of this checkout's install space.
    env["AMENT_PREFIX_PATH"] = str(venv)
    env["CMAKE_PREFIX_PATH"] = str(venv)
    env.pop("PYTHONPATH", None)
    env.pop("COLCON_PREFIX_PATH", None)
    proc = subprocess.run(["colcon", "build"], cwd=tmp_path / "ws", env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    install = tmp_path / "ws" / "install" / "perception_nodes"
    nodes = sorted(p.stem for p in (REPO / "perception_nodes" / "nodes").glob("*.py") if p.stem != "__init__")
    for node in nodes:
        exe = install / "lib" / "perception_nodes" / node
        assert exe.is_file() and os.access(exe, os.X_OK), f"no ros2-run executable for {node}"
    assert (install / "bin" / "perception").is_file()
    for rel in ("launch/perception.launch.py", "config/perception.yaml", "config/scenes/default.yaml",
                "config/sites/default.yaml", "urdf/site.urdf.xacro", "models/manifest.yaml"):
        assert (install / "share" / "perception_nodes" / rel).is_file(), rel
    # The built interfaces import from that install space, with the hand-written modules beside them.
    site = next((install / "lib").glob("python3*/site-packages"))
    check = ("import perception_nodes.msg as m, perception_nodes.srv as s, perception_nodes.graph as g;"
             "import sys; assert m.__file__.startswith(sys.argv[1]), m.__file__;"
             "print(m.DetectionArray, s.QueryByImage, g.build_graph)")
    env_run = dict(env, PYTHONPATH=str(site), AMENT_PREFIX_PATH=f"{install}:{venv}")
    run = subprocess.run([sys.executable, "-c", check, str(site)], env=env_run, capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    # The ros2-run executable starts a node from the install space (and fails cleanly on a bad argument).
    run = subprocess.run([str(install / "lib" / "perception_nodes" / "camera"), "--ros-args", "-p",
                          "source_type:=teleport"], env=env_run, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 1 and "teleport" in run.stderr

    # The installed detector resolves its model (the config's, sha256-checked) from the install space. vision_msgs
    # comes from the environment, as /opt/ros provides it on a real install (here: make setup's compat build).
    share = install / "share" / "perception_nodes"
    vision = REPO / "install" / "vision_msgs"
    vision_site = next((vision / "lib").glob("python3*/site-packages"))
    env_detector = dict(env_run, PYTHONPATH=f"{site}:{vision_site}", AMENT_PREFIX_PATH=f"{install}:{vision}:{venv}",
                        LD_LIBRARY_PATH=f"{vision / 'lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}",
                        ROS_DOMAIN_ID="173")
    for override in ("PERCEPTION_MODELS_DIR", "PERCEPTION_SHARE_DIR"):  # nothing may point back at the checkout
        env_detector.pop(override, None)
    detector = subprocess.Popen([str(install / "lib" / "perception_nodes" / "detector"), "--ros-args", "-p",
                                 "cameras:=[cam0]", "--params-file", str(share / "config" / "perception.yaml")],
                                env=env_detector, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=tmp_path)
    lines = []
    try:
        for line in detector.stdout:
            lines.append(line)
            if "configured with" in line or "configure failed" in line:
                break
    finally:
        detector.send_signal(2)
        try:
            detector.wait(timeout=20)
        except subprocess.TimeoutExpired:
            detector.kill()
    text = "".join(lines)
    assert f"model registry {share / 'models' / 'manifest.yaml'}" in text, text[-3000:]
    assert "configured with yolov8n-lot-ov-int8@3" in text, text[-3000:]
