"""Launch a site's perception graph on a real ROS 2 install.

    ros2 launch perception_nodes perception.launch.py site:=my_site          # config/sites/my_site.yaml
    ros2 launch perception_nodes perception.launch.py site:=/path/site.yaml
    ros2 launch perception_nodes perception.launch.py scene:=overlap2        # a synthetic scene's site
    ros2 launch perception_nodes perception.launch.py site:=my_site rviz:=true   # and RViz on the map

The node list comes from perception_nodes.graph.build_graph, the same
description ``perception up`` runs where launch is not available. Every node
respawns when it exits (launch_ros ``respawn``, with a delay and a retry cap).
"""
import tempfile

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from perception_nodes.graph import DEFAULT_STAGES, STAGES, build_graph, write_members_file
from perception_nodes.runner import RespawnPolicy


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    site = arg("site")
    if not site:
        # The synthetic world is imported only for a scene shortcut (a source plugin, never deployment code).
        from perception_nodes.sources.synthetic import site_for_scene

        site = str(site_for_scene(arg("scene") or "default", tempfile.mkdtemp(prefix="perception-site-")))
    seed = arg("seed")
    rate = arg("camera_rate_hz")
    specs = build_graph(site, seed=int(seed) if seed else None,
                        stages=tuple(s for s in arg("stages").split(",") if s),
                        namespace=arg("namespace"), params_file=arg("params_file") or None,
                        camera_rate_hz=float(rate) if rate else None,
                        calibration_dir=arg("calibration_dir") or None,
                        group_trackers=arg("group_trackers").lower() in ("1", "true", "yes"))
    use_sim_time = arg("use_sim_time").lower() in ("1", "true", "yes")
    respawn = arg("respawn").lower() in ("1", "true", "yes")
    policy = RespawnPolicy()
    respawning = {"respawn": respawn, "respawn_delay": policy.initial_delay_s,
                  "respawn_max_retries": policy.max_restarts}
    actions = []
    for spec in specs:
        if spec.members:  # several nodes in one process: their names and parameters travel in the members file
            members = write_members_file(spec, tempfile.mkdtemp(prefix="perception-container-"),
                                         {"use_sim_time": use_sim_time})
            actions.append(Node(package="perception_nodes", executable="container", arguments=["--members", members],
                                output="screen", emulate_tty=True, **respawning))
            continue
        actions.append(Node(package="perception_nodes", executable=spec.executable, name=spec.name,
                            namespace=spec.namespace,
                            parameters=[*spec.params_files, {**spec.parameters, "use_sim_time": use_sim_time}],
                            remappings=spec.remappings, output="screen", emulate_tty=True,
                            **{**respawning, "respawn": respawn and spec.respawn}))
    if arg("rviz").lower() in ("1", "true", "yes"):
        from perception_nodes.paths import package_path

        actions.append(Node(package="rviz2", executable="rviz2", name="rviz2",
                            arguments=["-d", str(package_path("rviz") / "perception.rviz")],
                            parameters=[{"use_sim_time": use_sim_time}], output="screen"))
    return actions


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("site", default_value="",
                              description="Site name under config/sites/ or a site manifest path; empty: the "
                                          "synthetic site of `scene`."),
        DeclareLaunchArgument("scene", default_value="default",
                              description="Shortcut when site is empty: a synthetic scene's site (name under "
                                          "config/scenes/ or a scene YAML path)."),
        DeclareLaunchArgument("seed", default_value="", description="Seed of the site's synthetic cameras; empty: "
                                                                    "the scene file's."),
        DeclareLaunchArgument("stages", default_value=",".join(DEFAULT_STAGES),
                              description=f"Comma-separated stages to run, from: {', '.join(STAGES)}."),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace prefixed to every node (camera nodes go under NS/<camera_id>)."),
        DeclareLaunchArgument("params_file", default_value="",
                              description="Parameters YAML (ros__parameters layout); empty: the package's config/perception.yaml."),
        DeclareLaunchArgument("camera_rate_hz", default_value="",
                              description="Override every camera's publish rate (Hz); empty: the manifest's."),
        DeclareLaunchArgument("calibration_dir", default_value="",
                              description="Calibration folder (site.yaml + <camera>.yaml) for the TF tree and "
                                          "CameraInfo; empty: the manifest's calibration_dir."),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="Use /clock (e.g. from bag playback) instead of the system clock."),
        DeclareLaunchArgument("group_trackers", default_value="false",
                              description="Run the per-camera trackers in one container process (less memory)."),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="Also start RViz with rviz/perception.rviz (map, objects, TF, images)."),
        DeclareLaunchArgument("respawn", default_value="true",
                              description="Restart a node that exits (the rest of the site keeps running)."),
        OpaqueFunction(function=_nodes),
    ])
