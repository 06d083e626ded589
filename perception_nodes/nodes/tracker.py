"""Tracker node: per-camera multi-object tracking of DetectionArray into TrackArray.

Subscribes  detections  perception_nodes/DetectionArray  (qos.RESULTS)
Publishes   tracks      perception_nodes/TrackArray      (qos.RESULTS), same stamp and frame as the detections
            tracks_2d   vision_msgs/Detection2DArray     the same tracks, track id in each detection's ``id``
Publishes   capture_request  perception_nodes/CaptureRequest  a frame where a proxy fired (a likely miss or phantom)
Subscribes  camera_info sensor_msgs/CameraInfo           the image size, for the FP/FN proxies in its health
                                                         (``proxy.short_lived_ratio``, ``proxy.vanished_mid_view_ratio``,
                                                         ``proxy.coasting_mid_view_ratio``,
                                                         ``proxy.low_score_update_ratio``: monitoring/proxies.py)

One node per camera namespace: an update costs little next to detection
(`perception bench tracker`), so a process per camera costs little CPU and keeps
cameras independent (a bag loop or a bad stream in one camera resets only that
camera's tracker). Out-of-order and duplicate stamps are dropped and counted,
a jump back in time (bag loop) resets the tracker, invalid boxes (NaN, inf,
negative, empty) are skipped and counted, and detections of another camera are
rejected.
"""
from __future__ import annotations

import threading
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo
from vision_msgs.msg import Detection2DArray

from perception_nodes.boxes import set_xyxy, xyxy_of
from perception_nodes.monitoring.proxies import ProxyParams, TrackProxies, TrackView
from perception_nodes.ros import qos
from perception_nodes.ros.convert import to_vision_msgs
from perception_nodes.ros.health import HealthReporter
from perception_nodes.ros.logthrottle import ThrottledLogger
from perception_nodes.ros.main import run_node
from perception_nodes.ros.params import ParameterSet
from perception_nodes.ros.stamps import set_stamp, stamp_seconds
from perception_nodes.stats import NodeCounters
from perception_nodes.tracking.tracker import ByteTracker, TrackerParams, TrackState, UpdateStatus

_THRESHOLDS = ("track_high_thresh", "track_low_thresh", "new_track_thresh", "match_thresh", "low_match_thresh",
               "tentative_match_thresh", "appearance_weight", "appearance_gate", "embedding_momentum", "recovery_iou")


class TrackerNode(Node):
    def __init__(self, **kwargs):
        super().__init__("tracker", **kwargs)
        from perception_nodes.msg import DetectionArray, TrackArray

        self._TrackArray = TrackArray
        params = ParameterSet(self)
        defaults = TrackerParams()
        self.camera_id = params.declare("camera_id", "", "Only detections of this camera are tracked; "
                                        "empty: the first camera seen.", read_only=True)
        values = {}
        for name in _THRESHOLDS:
            values[name] = params.declare(name, float(getattr(defaults, name)), f"Tracker {name.replace('_', ' ')}.",
                                          minimum=0.0, maximum=1.0, validator=lambda v, n=name: self._check(n, v))
        values["min_hits"] = params.declare("min_hits", defaults.min_hits, "Hits before a track is confirmed.",
                                            minimum=1, maximum=100)
        values["max_age_s"] = params.declare("max_age_s", defaults.max_age_s, "Seconds a lost track is kept.",
                                             minimum=0.05, maximum=600.0)
        values["reset_backwards_s"] = params.declare("reset_backwards_s", defaults.reset_backwards_s,
                                                     "A stamp this far before the last one resets the tracker.",
                                                     minimum=0.0, maximum=3600.0)
        values["reid_max_distance"] = params.declare(
            "reid_max_distance", defaults.reid_max_distance, "Appearance re-identification of lost tracks: largest "
            "cosine distance accepted (needs detection embeddings); 0: off.", minimum=0.0, maximum=2.0,
            validator=lambda v: self._check("reid_max_distance", v))
        values["reid_radius"] = params.declare(
            "reid_radius", defaults.reid_radius, "Re-identification search radius, in sizes of the track's last box.",
            minimum=0.0, maximum=50.0)
        values["low_score_appearance"] = params.declare(
            "low_score_appearance", defaults.low_score_appearance,
            "Fuse appearance in the low-score association too (ByteTrack: IoU only).")
        values["class_aware"] = params.declare("class_aware", defaults.class_aware, "Never associate across classes.")
        self.publish_lost = params.declare("publish_lost", False, "Also publish lost (coasting) tracks.")
        self.publish_tentative = params.declare("publish_tentative", False, "Also publish tentative tracks.")
        self._lock = threading.Lock()
        self._params = TrackerParams(**values)
        self.tracker = ByteTracker(self._params)
        params.on_change(self._on_params)

        self.counters = NodeCounters()
        self.log = ThrottledLogger(self.get_logger())
        self._class_names: dict[int, str] = {}  # class names seen so far, for coasting tracks
        self.pub = self.create_publisher(TrackArray, "tracks", qos.RESULTS, qos_overriding_options=qos.overridable())
        # The same tracks as vision_msgs/Detection2DArray, the track id in each detection's id.
        self.vision_pub = self.create_publisher(Detection2DArray, "tracks_2d", qos.RESULTS,
                                                qos_overriding_options=qos.overridable())
        self.create_subscription(DetectionArray, "detections", self._on_detections, qos.RESULTS,
                                 qos_overriding_options=qos.overridable())
        # FP/FN proxies need the image size (is a vanished box mid-view?): the camera's CameraInfo tells it once.
        self.proxies: TrackProxies | None = None
        from perception_nodes.msg import CaptureRequest

        self._CaptureRequest = CaptureRequest
        # Frames where a proxy fired, for the detector's capture bag (the detector holds the images).
        self.capture_pub = self.create_publisher(CaptureRequest, "capture_request", qos.RESULTS,
                                                 qos_overriding_options=qos.overridable())
        self._info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info,
                                                  qos.CAMERA_INFO_ANY, qos_overriding_options=qos.overridable())
        self.health = HealthReporter(self, self.counters)

    def _check(self, name: str, value) -> str | None:
        """Reject a change that would make the tracker's thresholds inconsistent (e.g. low above high)."""
        current = getattr(self, "_params", None)
        if current is None:
            return None  # declaring: checked as a whole once all are declared
        candidate = TrackerParams(**{**vars(current), name: value})
        try:
            candidate.validate()
        except ValueError as exc:
            return str(exc)
        return None

    def _on_params(self, changed: dict) -> None:
        self.publish_lost = changed.get("publish_lost", self.publish_lost)
        self.publish_tentative = changed.get("publish_tentative", self.publish_tentative)
        fields = {k: v for k, v in changed.items() if hasattr(self._params, k)}
        if fields:
            with self._lock:  # already validated by _check
                for key, value in fields.items():
                    setattr(self._params, key, value)

    def _on_detections(self, msg) -> None:
        began = time.perf_counter()
        self.counters.on_received()
        if not self.camera_id:
            self.camera_id = msg.camera_id
        if msg.camera_id and msg.camera_id != self.camera_id:
            self.counters.on_error("unknown_camera")
            self.log.warn("camera", f"skipping detections of camera {msg.camera_id!r}; this tracker serves "
                                    f"{self.camera_id!r}")
            return
        rows = np.array([[*xyxy_of(d.box), d.score, d.class_id] for d in msg.detections],
                        dtype=np.float64).reshape(-1, 6)
        embeddings = None
        dims = {len(d.embedding) for d in msg.detections} - {0}
        if len(dims) == 1:  # detections without an embedding get a zero row: IoU alone for them
            dim = dims.pop()
            embeddings = np.zeros((len(msg.detections), dim))
            for i, d in enumerate(msg.detections):
                if len(d.embedding):
                    embeddings[i] = d.embedding
        elif len(dims) > 1:
            self.counters.on_error("embedding_dims")
            self.log.warn("embedding_dims", f"detections carry embeddings of different sizes {sorted(dims)}; "
                                            "tracking this frame on IoU alone")
        stamp_s = stamp_seconds(msg.header.stamp)
        with self._lock:
            invalid_before = self.tracker.invalid_detections
            status, tracks = self.tracker.update(rows, stamp_s, embeddings)
            invalid = self.tracker.invalid_detections - invalid_before
        if invalid:
            self.counters.count("invalid_detections", invalid)
            self.log.warn("invalid", f"skipped {invalid} invalid detection box(es) (NaN, inf, negative or empty)")
        if status in (UpdateStatus.DROPPED_OUT_OF_ORDER, UpdateStatus.DROPPED_DUPLICATE):
            self.counters.on_dropped(1, status.name.lower().replace("dropped_", ""))
            return
        if status == UpdateStatus.RESET:
            self.counters.count("resets")
            self.get_logger().info("time jumped backwards: tracker reset")
        if self.proxies is not None:
            events = self.proxies.update(stamp_s, [TrackView(t.track_id, int(t.state), tuple(t.box_xyxy), t.hits,
                                                             t.frames_since_update, t.score) for t in tracks])
            self.counters.set_values({f"proxy.{k}": v for k, v in self.proxies.values().items() if v is not None})
            for reason, track_id, frame_s in events:
                request = self._CaptureRequest(camera_id=self.camera_id, reason=reason, detail=f"track {track_id}")
                request.header.frame_id = msg.header.frame_id
                set_stamp(request.header.stamp, frame_s)
                self.capture_pub.publish(request)
                self.counters.count(f"capture_requests_{reason}")
        out = self._tracks_msg(msg, tracks)
        self.pub.publish(out)
        self.vision_pub.publish(to_vision_msgs(out, ids=[str(t.track_id) for t in out.tracks]))
        self.counters.on_processed(time.perf_counter() - began)

    def _on_camera_info(self, msg) -> None:
        if msg.width > 0 and msg.height > 0 and (self.proxies is None or
                                                 (self.proxies.width, self.proxies.height) != (msg.width, msg.height)):
            self.proxies = TrackProxies(msg.width, msg.height,
                                        ProxyParams(low_score=self.tracker.params.track_high_thresh))

    def _tracks_msg(self, source, tracks):
        from perception_nodes.msg import Track

        out = self._TrackArray(header=source.header, camera_id=self.camera_id)
        names = {**self._class_names, **{d.class_id: d.class_name for d in source.detections}}
        for t in tracks:
            if t.state == TrackState.LOST and not self.publish_lost:
                continue
            if t.state == TrackState.TENTATIVE and not self.publish_tentative:
                continue
            x1, y1, x2, y2 = (float(v) for v in t.box_xyxy)
            msg = Track(track_id=int(t.track_id), state=int(t.state), velocity_x=float(t.velocity[0]),
                        velocity_y=float(t.velocity[1]), age=float(t.age_s), hits=int(t.hits),
                        frames_since_update=int(t.frames_since_update), class_id=int(t.class_id),
                        class_name=names.get(t.class_id, ""), score=float(t.score))
            set_xyxy(msg.box, x1, y1, x2, y2)
            if t.embedding is not None:
                msg.embedding = [float(v) for v in t.embedding]
                msg.embedding_model = next((d.embedding_model for d in source.detections if d.embedding_model), "")
            out.tracks.append(msg)
        self._class_names.update(names)
        return out


def main(args=None) -> int:
    return run_node(TrackerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
