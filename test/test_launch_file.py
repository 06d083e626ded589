"""launch/perception.launch.py's own logic, run here with minimal stand-ins for launch and launch_ros (neither is
on PyPI): it builds the same graph as `perception up` from a site manifest or a scene, with respawn."""
import importlib.util
import sys
import types

import pytest

from conftest import REPO
from perception_nodes.graph import build_graph


@pytest.fixture
def launch_module(monkeypatch):
    created = []

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    class Recorder:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs
            created.append(self)

    modules = {"launch": types.ModuleType("launch"), "launch.actions": types.ModuleType("launch.actions"),
               "launch.substitutions": types.ModuleType("launch.substitutions"),
               "launch_ros": types.ModuleType("launch_ros"), "launch_ros.actions": types.ModuleType("launch_ros.actions")}
    modules["launch"].LaunchDescription = Recorder
    modules["launch.actions"].DeclareLaunchArgument = Recorder
    modules["launch.actions"].OpaqueFunction = Recorder
    modules["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    modules["launch_ros.actions"].Node = Recorder
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("perception_launch", REPO / "launch" / "perception.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, created


def _context(**overrides):
    values = {"site": "", "scene": "default", "seed": "", "stages": "site,cameras,tracking,monitor", "namespace": "",
              "params_file": "", "camera_rate_hz": "", "calibration_dir": "", "use_sim_time": "false",
              "respawn": "true", "group_trackers": "false", "rviz": "false"}
    return {**values, **overrides}


def test_the_launch_file_declares_site_and_respawn(launch_module):
    module, created = launch_module
    module.generate_launch_description()
    declared = {r.args[0] for r in created if r.args and isinstance(r.args[0], str)}
    assert {"site", "scene", "seed", "stages", "respawn", "use_sim_time", "calibration_dir"} <= declared


@pytest.mark.parametrize("site_arg", ["overlap2", ""])
def test_the_launch_file_builds_perception_ups_graph(launch_module, site_arg):
    module, _ = launch_module
    nodes = module._nodes(_context(site=site_arg, scene="overlap2"))
    specs = build_graph("overlap2", stages=("site", "cameras", "tracking", "monitor"))
    assert [(n.kwargs["executable"], n.kwargs["namespace"], n.kwargs["name"]) for n in nodes] == \
        [(s.executable, s.namespace, s.name) for s in specs]
    for node, spec in zip(nodes, specs):
        launched = dict(node.kwargs["parameters"][-1])
        # Each build gives the synthetic cameras a fresh shared scene epoch; one build's cameras share it.
        assert (launched.pop("scene_epoch_ns", None) is None) == ("scene_epoch_ns" not in spec.parameters)
        assert launched == {**{k: v for k, v in spec.parameters.items() if k != "scene_epoch_ns"},
                            "use_sim_time": False}
        assert node.kwargs["respawn"] is True and node.kwargs["respawn_max_retries"] == 5
    quiet = module._nodes(_context(site="overlap2", respawn="false"))
    assert all(n.kwargs["respawn"] is False for n in quiet)


def test_the_launch_file_starts_grouped_trackers_in_one_container(launch_module):
    import yaml

    module, _ = launch_module
    nodes = module._nodes(_context(site="overlap2", group_trackers="true"))
    containers = [n for n in nodes if n.kwargs["executable"] == "container"]
    assert len(containers) == 1 and "name" not in containers[0].kwargs  # no process-wide rename of its nodes
    members = yaml.safe_load(open(containers[0].kwargs["arguments"][1]))["members"]
    assert [(m["name"], m["namespace"]) for m in members] == [("tracker", "/cam_south"), ("tracker", "/cam_east")]
    assert not [n for n in nodes if n.kwargs["executable"] == "tracker"]


def test_the_launch_file_starts_rviz_with_the_shipped_config_when_asked(launch_module):
    import yaml

    module, _ = launch_module
    assert not [n for n in module._nodes(_context(site="overlap2")) if n.kwargs["executable"] == "rviz2"]
    rviz = [n for n in module._nodes(_context(site="overlap2", rviz="true")) if n.kwargs["executable"] == "rviz2"]
    assert len(rviz) == 1 and rviz[0].kwargs["arguments"][0] == "-d"
    config = yaml.safe_load(open(rviz[0].kwargs["arguments"][1]))
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == "map"
    topics = {d.get("Topic", {}).get("Value") for d in config["Visualization Manager"]["Displays"]}
    assert {"/site/markers", "/objects/markers", "/risk/markers", "/cam0/detections/image"} <= topics
