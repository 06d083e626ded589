"""Evaluation and benchmark harnesses (pure Python, no rclpy): each returns the result the CLI prints.

The synthetic world is imported here (ground truth), never by deployment code. Harnesses that drive nodes
over DDS live in ``perception_nodes.ros`` and take their frames from here.
"""
