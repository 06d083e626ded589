"""pip install of perception_nodes' Python code (the `perception` tool and the nodes).

The ROS interfaces (msg/, srv/) are built by colcon from CMakeLists.txt; this file
serves `pip install -e .` in the development venv, where it puts the
`perception` console script and one `perception-<node>` script per node on PATH.
Node entry points come from the files in perception_nodes/nodes/, the same list
CMakeLists.txt turns into `ros2 run` executables.
"""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
NODE_MODULES = sorted(p.stem for p in (HERE / "perception_nodes" / "nodes").glob("*.py") if p.stem != "__init__")


def runtime_requirements():
    """The non-ROS lines of requirements.txt (ROS wheels come from `make setup`)."""
    reqs = []
    for line in (HERE / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith(("ros-", "colcon", "catkin", "pytest", "hypothesis", "import-linter")):
            reqs.append(line)
    return reqs


setup(
    name="perception_nodes",
    version="0.1.0",
    description="Unified multi-camera perception platform for ROS 2",
    packages=find_packages(include=["perception_nodes", "perception_nodes.*"]),
    python_requires=">=3.10",
    install_requires=runtime_requirements(),
    entry_points={
        "console_scripts": ["perception=perception_nodes.cli.main:main"]
        + [f"perception-{m.replace('_', '-')}=perception_nodes.nodes.{m}:main" for m in NODE_MODULES],
    },
)
