"""Camera driver node: publishes image_raw + camera_info from one frame source.

Sources: an OpenCV device, a video file, an image directory, a network stream,
or camera ``camera_id`` of a synthetic scene (which can also publish its ground
truth as detections). Frames are captured on a dedicated thread at capture
time (stamped then) and published at once: nothing is queued, so a slow
subscriber sees the newest frame (depth-1 QoS) and older ones are gone. (The
exception is a synthetic scene's scripted latency spike: those frames, and the
ones captured while they are held, are published late, in order, with their
capture stamps.)
A source that fails or ends is reopened with exponential backoff; the node
reports it in its health and keeps running.

Topics (relative, remap or namespace them):
  image_raw                 sensor_msgs/Image           (qos.IMAGE)
  camera_info               sensor_msgs/CameraInfo      (qos.CAMERA_INFO)
  ground_truth/detections   perception_nodes/DetectionArray (synthetic only)
  ground_truth/tracks       perception_nodes/TrackArray (synthetic only; track_id = the object's global id,
                            the same in every camera: the reference for tracking and re-identification)
"""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image

from perception_nodes.boxes import set_xyxy
from perception_nodes.calibration import CameraCalibration, load_calibration
from perception_nodes.errors import PerceptionError
from perception_nodes.image_codec import convert_color, numpy_to_image
from perception_nodes.ros import qos
from perception_nodes.ros.health import HealthReporter
from perception_nodes.ros.logthrottle import ThrottledLogger
from perception_nodes.ros.main import run_node
from perception_nodes.ros.params import ParameterSet
from perception_nodes.sources import Backoff, SceneClock, SourceType, make_source, sleep_until
from perception_nodes.stats import NodeCounters


MAX_HELD_FRAMES = 100  # a scripted latency spike holds at most this many frames (10 s at 10 Hz), oldest lost first


def camera_info_from(calibration: CameraCalibration, frame_id: str) -> CameraInfo:
    info = CameraInfo()
    info.header.frame_id = frame_id
    info.width, info.height = int(calibration.width), int(calibration.height)
    info.distortion_model = calibration.distortion_model
    info.d = [float(v) for v in calibration.D]
    info.k = [float(v) for v in np.asarray(calibration.K).ravel()]
    info.r = [float(v) for v in np.asarray(calibration.R).ravel()]
    info.p = [float(v) for v in calibration.projection().ravel()]
    return info


class CameraNode(Node):
    def __init__(self, **kwargs):
        super().__init__("camera", **kwargs)
        from perception_nodes.msg import DetectionArray, NodeHealth, TrackArray

        self._DetectionArray = DetectionArray
        self._NodeHealth = NodeHealth
        params = ParameterSet(self)
        self.source_type = params.declare("source_type", "synthetic", "Where frames come from.",
                                          choices=tuple(t.value for t in SourceType), read_only=True)
        self.source = params.declare("source", "", "Device index or path, video file, image directory or stream URL "
                                     "(unused for synthetic).", read_only=True)
        self.scene = params.declare("scene", "default", "Synthetic scene name or YAML path.", read_only=True)
        self.camera_id = params.declare("camera_id", "cam0", "Logical camera name; also the synthetic camera to render.",
                                        read_only=True)
        self.seed = params.declare("seed", -1, "Synthetic scene seed; -1 keeps the scene file's seed.",
                                   minimum=-1, maximum=2**31 - 1, read_only=True)
        self.frame_id = params.declare("frame_id", "", "Optical frame of the images; empty: <camera_id>_optical_frame.",
                                       read_only=True) or f"{self.camera_id}_optical_frame"
        self.rate_hz = params.declare("rate_hz", 0.0, "Publish rate; 0 uses the source's own rate "
                                      "(10 Hz for files with no rate).", minimum=0.0, maximum=240.0)
        self.loop = params.declare("loop", True, "Restart video files, image directories and synthetic scenes at their end.")
        self.encoding = params.declare("encoding", "bgr8", "Encoding of published images.",
                                       choices=("bgr8", "rgb8", "mono8"))
        self.image_qos = params.declare("image_qos", "reliable", "QoS of image_raw and camera_info: reliable "
                                        "(RELIABLE, depth 1) or sensor_data (BEST_EFFORT, depth 1).",
                                        choices=qos.IMAGE_QOS_CHOICES, read_only=True)
        self.camera_info_url = params.declare("camera_info_url", "", "camera_info_manager YAML (file:// or path); "
                                              "empty: the synthetic scene's intrinsics, else uncalibrated.",
                                              read_only=True)
        self.scene_epoch_ns = params.declare(
            "scene_epoch_ns", 0, "Synthetic only: node-clock time (ns) at which frame 0 is due, shared by the site's "
            "cameras so they show the same scene instant at one stamp; 0: frame 0 when this camera opens.",
            minimum=0, maximum=2 ** 62, read_only=True)
        self.publish_ground_truth = params.declare("publish_ground_truth", True,
                                                   "Synthetic only: publish true boxes on ground_truth/detections.")
        self.min_visibility = params.declare("ground_truth_min_visibility", 0.25,
                                             "Ground-truth boxes less visible than this are left out.",
                                             minimum=0.0, maximum=1.0)
        self.retry_initial_s = params.declare("retry_initial_s", 0.5, "First reconnect delay after a source failure.",
                                              minimum=0.01, maximum=60.0)
        self.retry_max_s = params.declare("retry_max_s", 10.0, "Longest reconnect delay.", minimum=0.1, maximum=600.0)
        params.on_change(self._on_params)

        self.counters = NodeCounters()
        self.log = ThrottledLogger(self.get_logger())
        self._status = (NodeHealth.LEVEL_OK, "")
        image_qos = qos.image_profile(self.image_qos)
        self.image_pub = self.create_publisher(Image, "image_raw", image_qos, qos_overriding_options=qos.overridable())
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", image_qos,
                                              qos_overriding_options=qos.overridable())
        self.gt_pub = None
        self._source = make_source(self.source_type, self.source, scene=self.scene, camera_id=self.camera_id,
                                   seed=None if self.seed < 0 else self.seed, loop=self.loop)
        self._camera_info = self._load_camera_info()
        if self._source.provides_ground_truth and self.publish_ground_truth:
            self.gt_pub = self.create_publisher(DetectionArray, "ground_truth/detections", qos.RESULTS,
                                                qos_overriding_options=qos.overridable())
            self.gt_tracks_pub = self.create_publisher(TrackArray, "ground_truth/tracks", qos.RESULTS,
                                                       qos_overriding_options=qos.overridable())
        self.health = HealthReporter(self, self.counters, status=lambda: self._status)
        self._stop = threading.Event()
        self._delayed: deque = deque()   # (due monotonic s, frame, stamp ns): a scripted latency spike's frames
        self._thread = threading.Thread(target=self._capture_loop, name="capture", daemon=True)
        self._thread.start()
        self.get_logger().info(f"publishing {self._source.describe()} as {self.frame_id}")

    # -- configuration ----------------------------------------------------------------
    def _load_camera_info(self) -> CameraInfo | None:
        if self.camera_info_url:
            calibration = load_calibration(self.camera_info_url)  # ConfigError: start-up fails with the reason
        elif self._source.calibration() is not None:
            calibration = self._source.calibration()
        else:
            self.get_logger().warning("no camera_info_url: publishing uncalibrated CameraInfo (size only)")
            return None
        return camera_info_from(calibration, self.frame_id)

    def _on_params(self, changed: dict) -> None:
        if "rate_hz" in changed:
            self.rate_hz = float(changed["rate_hz"])
        if "encoding" in changed:
            self.encoding = str(changed["encoding"])
        if "publish_ground_truth" in changed:
            self.publish_ground_truth = bool(changed["publish_ground_truth"])
        if "ground_truth_min_visibility" in changed:
            self.min_visibility = float(changed["ground_truth_min_visibility"])

    def _period_s(self) -> float:
        rate = self.rate_hz or self._source.native_fps or (10.0 if self.source_type in ("video", "images") else 0.0)
        return 1.0 / rate if rate > 0 else 0.0

    # -- capture ------------------------------------------------------------------------
    def _capture_loop(self) -> None:
        backoff = Backoff(self.retry_initial_s, self.retry_max_s)
        opened = False
        start = None
        start_clock_ns = 0
        next_deadline = time.monotonic()
        while not self._stop.is_set():
            if not opened:
                try:
                    self._source.open()
                    opened = True
                    if backoff.failures or self.counters.snapshot().extra.get("source_lost"):
                        self.get_logger().info(f"{self._source.describe()} open again after {backoff.failures} "
                                               f"failed attempt(s)")
                    backoff.succeeded()
                    self._status = (self._NodeHealth.LEVEL_OK, "")
                    start = time.monotonic()
                    start_clock_ns = self.get_clock().now().nanoseconds
                    if self._source.clocked and self.scene_epoch_ns > 0:
                        # One scene time for every camera of the site: frame 0 is due at the shared epoch, so
                        # cameras opened at different moments (or restarted) show the same instant at one stamp.
                        start -= (start_clock_ns - self.scene_epoch_ns) / 1e9
                        start_clock_ns = self.scene_epoch_ns
                    if self._source.clocked:
                        scene_clock = SceneClock(self._source.native_fps)
                        scene_clock.start(start)
                    next_deadline = start
                except (PerceptionError, OSError) as exc:
                    delay = backoff.failed()
                    self.counters.count("source_failures")
                    self._status = (self._NodeHealth.LEVEL_WARN, f"source unavailable: {exc}; retry in {delay:.1f} s")
                    self.log.warn("open", f"{exc}; retrying in {delay:.1f} s")
                    if self._stop.wait(delay):
                        return
                    continue
            period = self._period_s()
            if period and sleep_until(next_deadline, self._stop):
                return
            self._publish_delayed(time.monotonic())
            next_deadline = max(next_deadline + period, time.monotonic() - period) if period else time.monotonic()
            try:
                if self._source.clocked:
                    # Scene time follows wall time: frames rendered too late are skipped, never queued. The stamp
                    # is the frame's own time (its scene time mapped onto this node's clock at open), not the
                    # moment rendering finished, so latency measured from stamps includes rendering.
                    when, index, skipped = scene_clock.next(time.monotonic())
                    if sleep_until(when, self._stop):  # never ahead of the frame's own time
                        return
                    if skipped:
                        self.counters.on_dropped(skipped, "late")
                    frame = self._source.read(index)
                    stamp_ns = start_clock_ns + int(round(scene_clock.stamp_s(index) * 1e9))
                else:
                    frame = self._source.read()
                    # Capture time: the moment the frame arrived (a live source's grabber may have had it a while).
                    stamp_ns = self.get_clock().now().nanoseconds - (int(frame.age_s * 1e9) if frame else 0)
                    if frame is not None and frame.skipped:
                        # Not drops: the source sends faster than rate_hz asks for, and only the newest is wanted.
                        self.counters.count("frames_superseded", frame.skipped)
            except Exception as exc:  # noqa: BLE001 - a source error must not kill the driver
                frame = None
                self.counters.on_error("read")
                self.log.error("read", f"reading {self._source.describe()} failed: {exc}")
            if frame is not None and frame.withheld:
                self.counters.count("frames_withheld")   # the source's scripted dropout: nothing to publish
                self.log.warn("withheld", f"{self._source.describe()}: no frame ({frame.withheld})")
                continue
            if frame is not None and (frame.delay_s > 0 or self._delayed):
                # The source's scripted latency spike: published late. The stream keeps its order, as a stalled
                # link does: frames after the spike wait behind the held ones and go out with the last of them.
                self.counters.count("frames_delayed")
                due = time.monotonic() + frame.delay_s
                if len(self._delayed) >= MAX_HELD_FRAMES:  # a bounded buffer: the oldest held frame is lost
                    self._delayed.popleft()
                    self.counters.on_dropped(reason="held_overflow")
                self._delayed.append((max(due, self._delayed[-1][0]) if self._delayed else due, frame, stamp_ns))
                continue
            if frame is None:
                self._source.close()
                opened = False
                self.counters.count("source_lost")
                self._status = (self._NodeHealth.LEVEL_WARN, f"{self._source.describe()} delivered no frame; reopening")
                self.log.warn("lost", f"{self._source.describe()} delivered no frame; reopening")
                continue
            if not self._publish_safely(frame, stamp_ns):
                return

    def _publish_safely(self, frame, stamp_ns: int) -> bool:
        """Publish one frame; a failure is counted and logged. False once the node is shutting down."""
        try:
            self._publish(frame, stamp_ns)
        except Exception as exc:  # noqa: BLE001 - the driver goes on
            if not self.context.ok():
                return False  # shutting down: the publishers are gone, nothing to report
            self.counters.on_error("publish")
            self.log.error("publish", f"publishing failed: {exc}")
        return True

    def _publish_delayed(self, now: float) -> None:
        """Publish the held frames whose delivery time has come, oldest first."""
        while self._delayed and self._delayed[0][0] <= now:
            _, frame, stamp_ns = self._delayed.popleft()
            if not self._publish_safely(frame, stamp_ns):
                return

    def _publish(self, frame, stamp_ns: int) -> None:
        began = time.perf_counter()
        self.counters.on_received()
        stamp = Time(nanoseconds=stamp_ns, clock_type=self.get_clock().clock_type).to_msg()
        try:
            image = frame.image
            encoding = self.encoding
            if encoding != "bgr8":
                image = convert_color(image, "bgr8", encoding)
            msg = numpy_to_image(image, encoding)
        except PerceptionError as exc:
            self.counters.on_error("convert")
            self.log.error("convert", f"frame {frame.index} not published: {exc}")
            return
        msg.header.stamp = stamp
        msg.header.frame_id = self.frame_id
        self.image_pub.publish(msg)
        info = self._camera_info or CameraInfo(width=msg.width, height=msg.height)
        info.header.stamp = stamp
        info.header.frame_id = self.frame_id
        self.info_pub.publish(info)
        if self.gt_pub is not None and self.publish_ground_truth and frame.ground_truth is not None:
            shown = [box for box in frame.ground_truth if box.visible_fraction >= self.min_visibility]
            detections = self._ground_truth_msg(shown, msg.header)
            self.gt_pub.publish(detections)
            self.gt_tracks_pub.publish(self._ground_truth_tracks(shown, detections))
        self.counters.on_processed(time.perf_counter() - began)

    def _ground_truth_msg(self, boxes, header):
        from perception_nodes.msg import Detection

        out = self._DetectionArray(header=header, camera_id=self.camera_id, model="ground_truth@synthetic")
        for box in boxes:
            x1, y1, x2, y2 = box.bbox
            det = Detection(class_id=box.class_id, class_name=box.class_name, score=1.0)
            set_xyxy(det.box, x1, y1, x2, y2)
            out.detections.append(det)
        return out

    def _ground_truth_tracks(self, boxes, detections):
        """The same objects as ``detections`` (built from ``boxes``, in order), with their global ids."""
        from perception_nodes.msg import Track, TrackArray

        out = TrackArray(header=detections.header, camera_id=self.camera_id)
        for box, det in zip(boxes, detections.detections):
            out.tracks.append(Track(track_id=box.global_id, state=Track.STATE_CONFIRMED, box=det.box,
                                    class_id=det.class_id, class_name=det.class_name, score=1.0))
        return out

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self._source.close()


def main(args=None) -> int:
    return run_node(CameraNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
