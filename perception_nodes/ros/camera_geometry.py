"""A camera as the map-frame nodes need it: CameraInfo (intrinsics) + the TF pose at an image stamp.

Takes a node's pieces rather than subclassing one (as tf2_ros' TransformListener does): the localizer and
the calibration monitor both keep each camera's newest valid CameraInfo and look its optical frame up in the
map at a message's stamp, falling back to the newest pose for a static calibration. What is missing (no
CameraInfo yet, no transform) is counted as a drop and logged (throttled), never raised.
"""
from __future__ import annotations

import numpy as np

from perception_nodes.localization.lifting import CameraGeometry


class CameraGeometrySource:
    """Per camera: the newest valid CameraInfo, and a CameraGeometry at a header's stamp."""

    def __init__(self, tf_buffer, counters, log, map_frame: str, tf_timeout_s: float):
        self.tf_buffer, self.counters, self.log = tf_buffer, counters, log
        self.map_frame, self.tf_timeout_s = map_frame, tf_timeout_s
        self.camera_info: dict[str, object] = {}

    def on_camera_info(self, camera_id: str, msg) -> None:
        """Keep a camera's CameraInfo; one without a size or a focal length is counted and ignored."""
        if msg.width == 0 or msg.height == 0 or len(msg.k) != 9 or msg.k[0] <= 0:
            self.counters.on_error("bad_camera_info")
            self.log.warn(f"info-{camera_id}", f"camera {camera_id}: CameraInfo without a valid size or K; ignored")
            return
        self.camera_info[camera_id] = msg

    def geometry(self, camera_id: str, header, what: str = "message") -> CameraGeometry | None:
        """The camera at ``header``'s stamp (its frame_id, else <camera>_optical_frame); None when it cannot be
        had (counted and logged, naming ``what`` was dropped)."""
        from perception_nodes.tf.buffer import TransformException

        info = self.camera_info.get(camera_id)
        if info is None:
            self.counters.on_dropped(1, "no_camera_info")
            self.log.warn(f"noinfo-{camera_id}", f"camera {camera_id}: no CameraInfo yet; {what} dropped")
            return None
        frame = header.frame_id or f"{camera_id}_optical_frame"
        stamp_ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        try:
            pose = self.tf_buffer.lookup_transform(self.map_frame, frame, stamp_ns, self.tf_timeout_s)
        except TransformException as exc:
            try:  # static calibration: the newest pose serves any stamp
                pose = self.tf_buffer.lookup_transform(self.map_frame, frame, 0, 0.0)
            except TransformException:
                self.counters.on_dropped(1, "tf_unavailable")
                self.log.warn(f"tf-{camera_id}", f"camera {camera_id}: no transform {self.map_frame} <- {frame} "
                                                 f"at the image stamp ({exc}); {what} dropped")
                return None
        K = np.array(info.k, dtype=np.float64).reshape(3, 3)
        D = np.array(info.d, dtype=np.float64) if len(info.d) else np.zeros(5)
        return CameraGeometry(camera_id, int(info.width), int(info.height), K, D, pose.transform())
