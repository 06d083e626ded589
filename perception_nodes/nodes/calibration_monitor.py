"""Calibration monitor node: is every camera still where its calibration says? Checked against the site's paint.

Subscribes  <cam>/image_raw    sensor_msgs/Image (best effort depth 1: only the newest image matters, and it
                               matches reliable and sensor_data publishers alike)
            <cam>/camera_info  sensor_msgs/CameraInfo (best effort depth 1)
            /tf, /tf_static    the calibrated camera poses (map <- <cam>_optical_frame)
Publishes   calibration/health perception_nodes/CameraCalibrationHealth (qos.RESULTS), one per check
            diagnostics        through the node's health: WARN naming each misaligned camera and its error

At ``check_rate_hz`` per camera the newest image is taken off the executor by
the worker thread, its calibrated pose looked up at its stamp (a static
calibration serves any stamp), and the site's painted markings checked against
it (``localization.calibration_health``). The localizer listens to
``calibration/health`` and down-weights a misaligned camera's observations.
Images of a size other than the CameraInfo's, missing CameraInfo or pose, and a
site without markings are reported and counted, never a crash.
"""
from __future__ import annotations

import math
import threading
import time

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from perception_nodes.localization.calibration_health import (CalibrationHealthParams, CalibrationMonitor,
                                                              CalibrationState)
from perception_nodes.ros import qos
from perception_nodes.ros.camera_geometry import CameraGeometrySource
from perception_nodes.ros.health import HealthReporter
from perception_nodes.ros.logthrottle import ThrottledLogger
from perception_nodes.ros.main import run_node
from perception_nodes.ros.params import ParameterSet
from perception_nodes.stats import NodeCounters

NEWEST_ONLY = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST, depth=1)


class CalibrationMonitorNode(Node):
    def __init__(self, **kwargs):
        super().__init__("calibration_monitor", **kwargs)
        from perception_nodes.msg import CameraCalibrationHealth

        self._msg_type = CameraCalibrationHealth
        params = ParameterSet(self)
        site_ref = params.declare("site", "", "Site manifest (path or name under config/sites/): its cameras and "
                                  "the painted markings of its map.", read_only=True)
        cameras = params.declare("cameras", [""], "Camera ids to check; empty: the site's cameras.", read_only=True)
        self.map_frame = params.declare("map_frame", "map", "The map frame (REP-105).", read_only=True)
        self.check_rate_hz = params.declare("check_rate_hz", 1.0, "Checks per camera and second.",
                                            minimum=0.01, maximum=30.0, read_only=True)
        self.tf_timeout_s = params.declare("tf_timeout_s", 0.05, "Wait for a camera pose at an image stamp (on the "
                                           "worker thread).", minimum=0.0, maximum=2.0)
        defaults = CalibrationHealthParams()
        health = CalibrationHealthParams(
            warn_deg=params.declare("warn_deg", defaults.warn_deg, "Median pointing error that flags a camera (deg).",
                                    minimum=0.05, maximum=20.0, read_only=True),
            window=params.declare("window", defaults.window, "Checks whose median makes the verdict.",
                                  minimum=1, maximum=100, read_only=True),
            search_px=params.declare("search_px", defaults.search_px, "Largest image shift searched (px).",
                                     minimum=2, maximum=400, read_only=True))
        markings = ()
        site_cameras: list[str] = []
        if site_ref:
            from perception_nodes.site.manifest import load_manifest

            site = load_manifest(site_ref)
            markings = site.map.markings
            site_cameras = [c.id for c in site.cameras]
        self.cameras = [c for c in cameras if c] or site_cameras
        if not self.cameras:
            raise ValueError("parameter cameras: no cameras to check (set cameras or site)")
        self.has_markings = bool(markings)
        self.core = CalibrationMonitor(markings, health)
        self.counters = NodeCounters()
        self.log = ThrottledLogger(self.get_logger())
        self._lock = threading.Lock()
        self._newest: dict[str, Image] = {}
        self._last_check: dict[str, float] = {}

        from perception_nodes.ros.tf import TransformListener
        from perception_nodes.tf.buffer import TransformBuffer

        self.tf_buffer = TransformBuffer(cache_duration_s=30.0)
        self.tf_listener = TransformListener(self, self.tf_buffer)
        self.cameras_geometry = CameraGeometrySource(self.tf_buffer, self.counters, self.log, self.map_frame,
                                                     self.tf_timeout_s)
        self._camera_info = self.cameras_geometry.camera_info  # camera id -> its newest valid CameraInfo
        # Every check's verdict, reliable: the localizer must not miss a camera being flagged.
        self.health_pub = self.create_publisher(CameraCalibrationHealth, "calibration/health", qos.RESULTS,
                                                qos_overriding_options=qos.overridable())
        for cam in self.cameras:
            self.create_subscription(Image, f"{cam}/image_raw", lambda m, c=cam: self._on_image(c, m), NEWEST_ONLY,
                                     qos_overriding_options=qos.overridable())
            self.create_subscription(CameraInfo, f"{cam}/camera_info",
                                     lambda m, c=cam: self.cameras_geometry.on_camera_info(c, m),
                                     NEWEST_ONLY, qos_overriding_options=qos.overridable())
        self._wake = threading.Event()
        self._running = True
        self._worker = threading.Thread(target=self._work, name="calibration-worker", daemon=True)
        self._worker.start()
        self.health = HealthReporter(self, self.counters, status=self._status)
        if not self.has_markings:
            self.get_logger().warning("the site map has no markings: calibration cannot be checked")

    def _on_image(self, camera_id: str, msg: Image) -> None:
        self.counters.on_received()
        with self._lock:
            self._newest[camera_id] = msg  # older ones are of no use: replaced, not queued
        self._wake.set()

    def _work(self) -> None:
        period = 1.0 / self.check_rate_hz
        while self._running:
            self._wake.wait(0.2)
            self._wake.clear()
            now = time.monotonic()
            for camera_id in self.cameras:
                if not self._running:
                    return
                if now - self._last_check.get(camera_id, -math.inf) < period:
                    continue
                with self._lock:
                    msg = self._newest.pop(camera_id, None)
                if msg is None:
                    continue
                self._last_check[camera_id] = now
                try:
                    self._check(camera_id, msg)
                except Exception as exc:  # noqa: BLE001 - a bad image must not stop the worker
                    self.counters.on_error("check_failed")
                    self.log.warn(f"check-{camera_id}", f"camera {camera_id}: check failed: {exc!r}")

    def _check(self, camera_id: str, msg: Image) -> None:
        from perception_nodes.errors import PerceptionError
        from perception_nodes.image_codec import image_to_bgr8

        camera = self.cameras_geometry.geometry(camera_id, msg.header, "image")
        if camera is None:
            return
        try:
            image = image_to_bgr8(msg)
        except PerceptionError as exc:
            self.counters.on_error("bad_image")
            self.log.warn(f"image-{camera_id}", f"camera {camera_id}: image not usable: {exc}")
            return
        if image.shape[:2] != (camera.height, camera.width):
            self.counters.on_error("image_size_mismatch")
            self.log.warn(f"size-{camera_id}", f"camera {camera_id}: image {image.shape[1]}x{image.shape[0]} is not "
                                               f"the CameraInfo's {camera.width}x{camera.height}; not checked")
            return
        started = time.perf_counter()
        status = self.core.check(camera, image, msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
        self.counters.on_processed(time.perf_counter() - started)
        out = self._msg_type()
        out.header = msg.header
        out.camera_id = camera_id
        out.state = int(status.state)
        out.error_deg = float(status.error_deg)
        out.shift_x_px, out.shift_y_px = (float(v) for v in status.shift_px)
        out.landmark_px = int(status.landmark_px)
        out.checks = int(status.checks)
        out.message = status.message
        self.health_pub.publish(out)

    def _status(self) -> tuple[int, str]:
        from perception_nodes.msg import NodeHealth

        if not self.has_markings:
            return NodeHealth.LEVEL_WARN, "the site map has no markings: calibration is not checked"
        statuses = dict(self.core.status)
        misaligned = [s for s in statuses.values() if s.state == CalibrationState.MISALIGNED]
        self.counters.set("cameras_misaligned", len(misaligned))
        if misaligned:
            return NodeHealth.LEVEL_WARN, "; ".join(
                f"{s.camera_id} off its calibration by {s.error_deg:.2f} deg" for s in misaligned)
        blind = [c for c, s in statuses.items() if s.state == CalibrationState.NOT_ENOUGH_LANDMARKS]
        return NodeHealth.LEVEL_OK, (f"too little paint in view of {', '.join(blind)}" if blind else "")

    def destroy_node(self):
        self._running = False
        self._wake.set()
        self._worker.join(timeout=2.0)
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(CalibrationMonitorNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
