"""Per-camera multi-object tracking (pure Python, no ROS)."""
from perception_nodes.tracking.tracker import ByteTracker, TrackerParams, TrackOutput, TrackState, UpdateStatus

__all__ = ["ByteTracker", "TrackerParams", "TrackOutput", "TrackState", "UpdateStatus"]
