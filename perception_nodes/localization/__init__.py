"""Localization on the site map: ground lifting, map tracking with global ids, scene understanding,
calibration health (pure core, no rclpy)."""
