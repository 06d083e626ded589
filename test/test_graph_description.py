"""The node graph description and the runner's command lines (no processes started)."""
import sys

import pytest
import yaml

from perception_nodes.errors import GraphError
from perception_nodes.graph import build_graph, config_dir
from perception_nodes.runner import GraphRunner


def test_default_graph_has_a_camera_per_scene_camera_and_a_monitor():
    specs = build_graph("default")
    cameras = [s for s in specs if s.executable == "camera"]
    assert [s.namespace for s in cameras] == ["/cam0", "/cam1", "/cam2", "/cam3"]
    assert all(s.parameters["camera_id"] == s.namespace.strip("/") for s in cameras)
    assert [s.fully_qualified_name for s in specs if s.executable == "monitor"] == ["/monitor"]
    site = [s for s in specs if s.executable == "site_publisher"]
    assert len(site) == 1 and site[0].parameters["calibration_dir"].endswith("config/calibration/default")
    # Cameras read CameraInfo from the same calibration folder the TF tree is built from.
    assert all(s.parameters["camera_info_url"] == f"file://{site[0].parameters['calibration_dir']}/{s.parameters['camera_id']}.yaml"
               for s in cameras)
    assert all(s.params_files == [str(config_dir() / "perception.yaml")] for s in specs)


def test_namespace_seed_and_stage_selection():
    specs = build_graph("overlap2", seed=9, stages=("cameras",), namespace="site_a", camera_rate_hz=5.0)
    assert [s.fully_qualified_name for s in specs] == ["/site_a/cam_south/camera", "/site_a/cam_east/camera"]
    assert all(s.parameters["seed"] == 9 and s.parameters["rate_hz"] == 5.0 for s in specs)


def test_invalid_graph_requests():
    with pytest.raises(GraphError, match="unknown stages"):
        build_graph("default", stages=("cameras", "teleport"))
    with pytest.raises(GraphError, match="does not exist"):
        build_graph("default", params_file="/nonexistent/params.yaml")
    with pytest.raises(GraphError, match="/nonexistent/calibration/site.yaml does not exist"):
        build_graph("default", calibration_dir="/nonexistent/calibration")


def test_every_node_in_the_params_file_exists_as_an_executable():
    params = yaml.safe_load((config_dir() / "perception.yaml").read_text())
    node_dir = config_dir().parent / "perception_nodes" / "nodes"
    for key in params:
        assert (node_dir / f"{key.split('/')[-1]}.py").is_file(), key


def test_runner_command_line_uses_ros_args():
    specs = build_graph("default", stages=("cameras",))
    spec = specs[1]
    spec.remappings = [("image_raw", "image")]
    runner = GraphRunner(specs, use_sim_time=True)
    cmd = runner.command_for(1, spec)
    assert cmd[:3] == [sys.executable, "-m", "perception_nodes.nodes.camera"]
    ros_args = cmd[cmd.index("--ros-args"):]
    assert ["-r", "__node:=camera"] == ros_args[1:3] and ["-r", "__ns:=/cam1"] == ros_args[3:5]
    assert ["-r", "image_raw:=image"] == ros_args[-2:]
    files = [ros_args[i + 1] for i, a in enumerate(ros_args) if a == "--params-file"]
    assert files[0].endswith("perception.yaml")
    overrides = yaml.safe_load(open(files[1]))
    assert overrides == {"/cam1/camera": {"ros__parameters": {**spec.parameters, "use_sim_time": True}}}
    runner.stop()


def test_runner_reports_a_node_that_dies():
    from perception_nodes.graph import NodeSpec

    runner = GraphRunner([NodeSpec("no_such_node_module", "ghost", "/x")], output=open("/dev/null", "w"))
    runner.start()
    assert runner.wait(30) is False
    runner.stop()
    assert [f.node for f in runner.failures] == ["/x/ghost"]
    assert runner.failures[0].returncode == 1
    assert any("No module named" in line for line in runner.failures[0].tail)


def test_detection_stage_needs_a_registered_model(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTION_MODELS_DIR", str(tmp_path))  # an empty registry
    with pytest.raises(GraphError, match="perception train detector"):
        build_graph("overlap2", stages=("cameras", "detection"))
    specs = build_graph("overlap2", stages=("cameras", "tracking"))
    assert all(s.remappings == [("detections", "ground_truth/detections")] for s in specs if s.executable == "tracker")


def test_runner_respawns_a_dying_node_with_backoff_then_gives_up():
    """A node that keeps exiting is restarted (each restart counted and passed to the process), then given up on."""
    import io

    from perception_nodes.graph import NodeSpec
    from perception_nodes.runner import RespawnPolicy

    out = io.StringIO()
    policy = RespawnPolicy(initial_delay_s=0.1, max_delay_s=0.4, max_restarts=2, window_s=60.0)
    runner = GraphRunner([NodeSpec("no_such_node_module", "ghost", "/x")], output=out, respawn=policy)
    runner.start()
    assert runner.wait(60) is False  # ends only once the node is down for good
    runner.stop()
    assert runner.restarts == {"/x/ghost": 2} and runner.given_up == ["/x/ghost"]
    assert len(runner.failures) == 3  # the first run and both restarts
    text = out.getvalue()
    assert "restarting /x/ghost in 0.1 s" in text and "restarting /x/ghost in 0.2 s" in text
    assert "giving up on /x/ghost" in text


def test_respawn_delays_double_and_are_capped():
    from perception_nodes.runner import RespawnPolicy

    policy = RespawnPolicy(initial_delay_s=1.0, max_delay_s=5.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
