"""rclpy helpers shared by the nodes. Helpers take a node; none subclasses one."""
