"""Launch the perception graph on a real ROS 2 install (``ros2 launch perception_nodes perception.launch.py``).

The node list comes from perception_nodes.graph.build_graph, the same
description ``perception up`` runs where launch is not available.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from perception_nodes.graph import DEFAULT_STAGES, STAGES, build_graph


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    seed = arg("seed")
    rate = arg("camera_rate_hz")
    specs = build_graph(scene=arg("scene"), seed=int(seed) if seed else None,
                        stages=tuple(s for s in arg("stages").split(",") if s),
                        namespace=arg("namespace"), params_file=arg("params_file") or None,
                        camera_rate_hz=float(rate) if rate else None,
                        calibration_dir=arg("calibration_dir") or None)
    use_sim_time = arg("use_sim_time").lower() in ("1", "true", "yes")
    return [
        Node(package="perception_nodes", executable=spec.executable, name=spec.name, namespace=spec.namespace,
             parameters=[*spec.params_files, {**spec.parameters, "use_sim_time": use_sim_time}],
             remappings=spec.remappings, output="screen", emulate_tty=True)
        for spec in specs
    ]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("scene", default_value="default",
                              description="Scene name under config/scenes/ or a scene YAML path."),
        DeclareLaunchArgument("seed", default_value="", description="Scene seed; empty keeps the scene file's seed."),
        DeclareLaunchArgument("stages", default_value=",".join(DEFAULT_STAGES),
                              description=f"Comma-separated stages to run, from: {', '.join(STAGES)}."),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace prefixed to every node (camera nodes go under NS/<camera_id>)."),
        DeclareLaunchArgument("params_file", default_value="",
                              description="Parameters YAML (ros__parameters layout); empty: the package's config/perception.yaml."),
        DeclareLaunchArgument("camera_rate_hz", default_value="",
                              description="Override every camera's publish rate (Hz); empty: the scene fps."),
        DeclareLaunchArgument("calibration_dir", default_value="",
                              description="Calibration folder (site.yaml + <camera>.yaml) for the TF tree and "
                                          "CameraInfo; empty: config/calibration/<scene>."),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="Use /clock (e.g. from bag playback) instead of the system clock."),
        OpaqueFunction(function=_nodes),
    ])
