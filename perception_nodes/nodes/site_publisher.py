"""Site publisher: the calibration files as robot_description and /tf_static.

Like robot_state_publisher for a robot made only of fixed joints: the URDF is
generated with xacro from ``calibration_dir`` (urdf/site.urdf.xacro), published
latched on ``robot_description`` (std_msgs/String) and every fixed joint goes
to ``/tf_static`` (TRANSIENT_LOCAL) stamped at start-up. ``~/reload`` (std_srvs/Trigger)
re-reads the files after a recalibration; a bad file keeps the previous tree
and reports why.
"""
from __future__ import annotations

from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from perception_nodes.errors import ConfigError
from perception_nodes.ros import qos
from perception_nodes.ros.main import run_node
from perception_nodes.ros.params import ParameterSet
from perception_nodes.ros.tf import StaticTransformBroadcaster
from perception_nodes.site import calibration_dir_for, expand_xacro, fixed_joints


class SitePublisher(Node):
    def __init__(self, **kwargs):
        super().__init__("site_publisher", **kwargs)
        params = ParameterSet(self)
        self.calibration_dir = params.declare(
            "calibration_dir", "", "Calibration folder (site.yaml + <camera>.yaml); empty: config/calibration/default.",
            read_only=True) or str(calibration_dir_for("default"))
        self.xacro_file = params.declare("xacro_file", "", "Site xacro; empty: the package's urdf/site.urdf.xacro.",
                                         read_only=True)
        self.description_pub = self.create_publisher(String, "robot_description", qos.LATCHED,
                                                   qos_overriding_options=qos.overridable())
        self.broadcaster = StaticTransformBroadcaster(self)
        self.create_service(Trigger, "~/reload", self._reload)
        self.publish_site()  # a broken calibration at start-up is fatal: ConfigError with the file and reason

    def publish_site(self) -> int:
        urdf = expand_xacro(self.calibration_dir, self.xacro_file or None)
        transforms = fixed_joints(urdf, self.get_clock().now().nanoseconds)
        self.description_pub.publish(String(data=urdf))
        self.broadcaster.send(transforms)
        self.get_logger().info(f"published {len(transforms)} static transforms from {self.calibration_dir}")
        return len(transforms)

    def _reload(self, _request, response):
        try:
            count = self.publish_site()
            response.success, response.message = True, f"published {count} static transforms"
        except ConfigError as exc:
            self.get_logger().error(f"reload failed, keeping the previous tree: {exc}")
            response.success, response.message = False, str(exc)
        return response


def main(args=None) -> int:
    return run_node(SitePublisher, args)


if __name__ == "__main__":
    raise SystemExit(main())
