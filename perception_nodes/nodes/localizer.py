"""Localizer node: every camera's tracks -> objects on the site map with one global id, and the site's state.

Subscribes  <cam>/tracks       perception_nodes/TrackArray  (qos.RESULTS), per camera of the site
            <cam>/camera_info  sensor_msgs/CameraInfo       (best effort depth 1: matches reliable and
                                                             sensor_data publishers alike)
            /tf, /tf_static    the camera poses (map <- <cam>_optical_frame), looked up at each image's stamp
Publishes   objects            perception_nodes/LocalizedObjectArray (qos.RESULTS), map frame, stamped with the
                               fusion time (every object predicted to it), at publish_rate_hz
            objects_3d         vision_msgs/Detection3DArray, the same objects (global id in ``id``)
            objects/markers    visualization_msgs/MarkerArray: footprints, ids, velocity, covariance ellipses
            site/markers       MarkerArray (latched): zones, stalls coloured by occupancy, lanes, camera frustums
            site_state         perception_nodes/SiteState (latched): every stall and zone now
            site_events        perception_nodes/SiteEventArray (qos.RESULTS): zone entries/exits, stalls taken/freed
Services    ~/query_site       perception_nodes/QuerySite: a stall's or zone's state now, events in a time window
Also        calibration/health perception_nodes/CameraCalibrationHealth (calibration_monitor): a misaligned
                               camera's estimated error becomes its extra angular uncertainty (down-weighted)

Tracks are queued (bounded, oldest dropped and counted) and fused on the node's
worker thread; the executor only queues them and publishes. The TF lookup waits
at most tf_timeout_s on the worker, never in a callback; a track message whose
pose cannot be found (unknown frame, stale TF) or whose camera has sent no
CameraInfo yet is dropped and counted. A camera that stops publishing is
reported in the health (WARN, naming it) while its objects coast (marked
COASTING, velocity damped). Time jumping back (a bag loop) resets the map.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo
from vision_msgs.msg import Detection3D, Detection3DArray, ObjectHypothesisWithPose
from visualization_msgs.msg import MarkerArray

from perception_nodes.boxes import xyxy_of
from perception_nodes.localization.fusion import ExistenceState, FusionParams, UpdateResult
from perception_nodes.localization.lifting import DEFAULT_SIZE_PRIORS, CameraGeometry
from perception_nodes.localization.localizer import LocalizationError, Localizer, LocalizerConfig, TrackBatch
from perception_nodes.localization.motion import MotionModel
from perception_nodes.localization.scene_state import EventKind
from perception_nodes.ros import qos
from perception_nodes.ros.camera_geometry import CameraGeometrySource
from perception_nodes.ros.health import HealthReporter
from perception_nodes.ros.logthrottle import ThrottledLogger
from perception_nodes.ros.main import run_node
from perception_nodes.monitoring.proxies import CrossCameraProxy
from perception_nodes.ros.markers import frustum_marker, object_markers, site_markers
from perception_nodes.ros.params import ParameterSet
from perception_nodes.ros.stamps import set_stamp, stamp_seconds
from perception_nodes.stats import NodeCounters
from perception_nodes.taxonomy import SITE_CLASS_NAMES

_FUSION_FLOATS = ("gate_chi2", "binding_bonus", "binding_overlap_limit", "appearance_weight", "appearance_gate",
                  "reid_max_distance", "coast_after_s", "max_coast_s", "max_coast_stationary_s", "max_out_of_order_s")


class LocalizerNode(Node):
    def __init__(self, **kwargs):
        super().__init__("localizer", **kwargs)
        from perception_nodes.msg import LocalizedObjectArray, SiteEventArray, SiteState
        from perception_nodes.srv import QuerySite

        params = ParameterSet(self)
        self.site_ref = params.declare("site", "", "Site manifest (path or name under config/sites/): its map "
                                       "(stalls, zones, lanes) and cameras. Empty: no scene understanding.",
                                       read_only=True)
        cameras = params.declare("cameras", [""], "Camera ids whose <id>/tracks are fused; empty: the site's "
                                 "cameras.", read_only=True)
        self.map_frame = params.declare("map_frame", "map", "The map frame (REP-105).", read_only=True)
        self.publish_rate_hz = params.declare("publish_rate_hz", 10.0, "Fusion output rate: objects predicted to "
                                              "a common time.", minimum=0.5, maximum=100.0, read_only=True)
        self.tf_timeout_s = params.declare("tf_timeout_s", 0.05, "Longest wait for a camera pose at an image's "
                                           "stamp (on the worker thread).", minimum=0.0, maximum=2.0)
        self.stale_camera_s = params.declare("stale_camera_s", 2.0, "A camera silent this long is reported stale.",
                                             minimum=0.1, maximum=600.0)
        self.publish_tentative = params.declare("publish_tentative", False, "Also publish unconfirmed objects.")
        self.publish_markers = params.declare("publish_markers", True, "Publish RViz markers.")
        queue_depth = params.declare("queue_depth", 32, "Track messages waiting for the worker (oldest dropped).",
                                     minimum=1, maximum=1000, read_only=True)
        self.cross_camera_sync_s = params.declare(
            "cross_camera_sync_s", 0.15, "FN proxy where views overlap: other cameras' tracks this close in time "
            "count as the same instant.", minimum=0.0, maximum=5.0, read_only=True)
        self.correct_misaligned = params.declare(
            "correct_misaligned", True, "Move a camera that calibration_monitor flags back by the image shift it "
            "measured before lifting its boxes.")
        self.misaligned_sigma_share = params.declare(
            "misaligned_sigma_share", 0.25, "Share of a flagged camera's estimated error kept as extra angular "
            "uncertainty (down-weighting).", minimum=0.0, maximum=10.0)
        defaults = FusionParams()
        fusion = {name: params.declare(name, float(getattr(defaults, name)), f"Map tracker {name.replace('_', ' ')}.",
                                       minimum=0.0, maximum=1000.0, read_only=True) for name in _FUSION_FLOATS}
        fusion["use_appearance"] = params.declare(
            "use_appearance", defaults.use_appearance, "Let the tracks' appearance embeddings gate and decide "
            "association (coasting objects, handover, re-entry, merging). Off for colour histograms, which lose more "
            "identities than they keep (perception eval localization); on with a learned re-id embedder.",
            read_only=True)
        fusion["remove_out_of_view"] = params.declare(
            "remove_out_of_view", defaults.remove_out_of_view, "Drop a moving object that coasts out of every "
            "camera's view or off the site's map (it can come back under its id by re-identification).",
            read_only=True)
        fusion["motion_model"] = params.declare(
            "motion_model", defaults.motion_model, "What objects publish: 'imm' (cruise / manoeuvre / stopped "
            "hypotheses, which follow stops and turns and widen the covariance while unsure) or 'cv' (the "
            "constant-velocity filter that decides identity either way).", choices=MotionModel.ALL, read_only=True)
        fusion["min_hits"] = params.declare("min_hits", defaults.min_hits, "Observations before an object is "
                                            "confirmed.", minimum=1, maximum=100, read_only=True)
        self.site = None
        semantic_map = None
        if self.site_ref:
            from perception_nodes.site.manifest import load_manifest

            self.site = load_manifest(self.site_ref)
            semantic_map = self.site.map
        self.cameras = [c for c in cameras if c] or ([c.id for c in self.site.cameras] if self.site else [])
        if not self.cameras:
            raise ValueError("parameter cameras: no cameras to fuse (set cameras or site)")
        self.core = Localizer(semantic_map, LocalizerConfig(fusion=FusionParams(**fusion)))
        self._lock = threading.Lock()
        self.counters = NodeCounters()
        self.log = ThrottledLogger(self.get_logger())
        self._last_tracks: dict[str, float] = {}  # camera -> wall time of its last message
        self._started = time.monotonic()
        self._queue: deque = deque(maxlen=queue_depth)
        self._wake = threading.Condition()
        self._running = True
        self._geometry_cache: dict[str, CameraGeometry] = {}
        self._cross = CrossCameraProxy({})
        self._latest_boxes: dict[str, tuple] = {}

        from perception_nodes.ros.tf import TransformListener
        from perception_nodes.tf.buffer import TransformBuffer

        self.tf_buffer = TransformBuffer(cache_duration_s=30.0)
        self.tf_listener = TransformListener(self, self.tf_buffer)
        self.cameras_geometry = CameraGeometrySource(self.tf_buffer, self.counters, self.log, self.map_frame,
                                                     self.tf_timeout_s)
        self._camera_info = self.cameras_geometry.camera_info  # camera id -> its newest valid CameraInfo
        self.objects_pub = self.create_publisher(LocalizedObjectArray, "objects", qos.RESULTS,
                                                 qos_overriding_options=qos.overridable())
        # The same objects for tools that speak vision_msgs.
        self.objects_3d_pub = self.create_publisher(Detection3DArray, "objects_3d", qos.RESULTS,
                                                    qos_overriding_options=qos.overridable())
        # Markers: the newest only matters to a viewer.
        self.markers_pub = self.create_publisher(MarkerArray, "objects/markers", 1,
                                                 qos_overriding_options=qos.overridable())
        # Latched: RViz or a late subscriber gets the site and its state at once.
        self.site_markers_pub = self.create_publisher(MarkerArray, "site/markers", qos.LATCHED,
                                                      qos_overriding_options=qos.overridable())
        self.state_pub = self.create_publisher(SiteState, "site_state", qos.LATCHED,
                                               qos_overriding_options=qos.overridable())
        self.events_pub = self.create_publisher(SiteEventArray, "site_events", qos.RESULTS,
                                                qos_overriding_options=qos.overridable())
        from perception_nodes.msg import TrackArray

        for cam in self.cameras:
            self.create_subscription(TrackArray, f"{cam}/tracks", lambda m, c=cam: self._on_tracks(c, m), qos.RESULTS,
                                     qos_overriding_options=qos.overridable())
            self.create_subscription(CameraInfo, f"{cam}/camera_info",
                                     lambda m, c=cam: self.cameras_geometry.on_camera_info(c, m),
                                     qos.CAMERA_INFO_ANY, qos_overriding_options=qos.overridable())
        from perception_nodes.msg import CameraCalibrationHealth

        # Calibration health (calibration_monitor): a camera off its calibration is down-weighted in fusion.
        self._misaligned: dict[str, float] = {}
        self.create_subscription(CameraCalibrationHealth, "calibration/health", self._on_calibration_health,
                                 qos.RESULTS, qos_overriding_options=qos.overridable())
        self.create_service(QuerySite, "~/query_site", self._on_query)
        self._worker = threading.Thread(target=self._work, name="localizer-worker", daemon=True)
        self._worker.start()
        self.create_timer(1.0 / self.publish_rate_hz, self._publish)
        self.health = HealthReporter(self, self.counters, status=self._status)
        self._site_markers_sent = 0.0

    # -- input -------------------------------------------------------------------------------
    def _on_calibration_health(self, msg) -> None:
        if msg.camera_id not in self.cameras or not math.isfinite(msg.error_deg) or msg.error_deg < 0:
            self.counters.on_error("bad_calibration_health")
            return
        misaligned = msg.state == msg.STATE_MISALIGNED
        with self._lock:
            # A misaligned camera's boxes are moved back by the image shift the paint showed (most of a small
            # rotation), and a share of its error stays as extra angular uncertainty: its lifts weigh less.
            self.core.set_camera_uncertainty(
                msg.camera_id, math.radians(msg.error_deg) * self.misaligned_sigma_share if misaligned else 0.0,
                (msg.shift_x_px, msg.shift_y_px) if misaligned and self.correct_misaligned else None)
        if misaligned and msg.camera_id not in self._misaligned:
            self.get_logger().warning(f"camera {msg.camera_id} is {msg.error_deg:.2f} deg off its calibration: its "
                                      f"observations are down-weighted")
        if misaligned:
            self._misaligned[msg.camera_id] = float(msg.error_deg)
        else:
            self._misaligned.pop(msg.camera_id, None)

    def _on_tracks(self, camera_id: str, msg) -> None:
        self.counters.on_received()
        self._last_tracks[camera_id] = time.monotonic()
        with self._wake:
            if len(self._queue) == self._queue.maxlen:
                self.counters.on_dropped(1, "queue_full")
            self._queue.append((camera_id, msg, time.perf_counter()))
            self._wake.notify()

    def _work(self) -> None:
        while self._running:
            with self._wake:
                while self._running and not self._queue:
                    self._wake.wait(0.5)
                if not self._running:
                    return
                camera_id, msg, received = self._queue.popleft()
            try:
                self._fuse(camera_id, msg, received)
            except Exception as exc:  # a bad message must not stop the worker
                self.counters.on_error("fuse_failed")
                self.log.warn("fuse", f"camera {camera_id}: fusing a track message failed: {exc!r}")

    def _fuse(self, camera_id: str, msg, received: float) -> None:
        started = time.perf_counter()
        camera = self.cameras_geometry.geometry(camera_id, msg.header, "tracks")
        if camera is None:
            return
        self._geometry_cache[camera_id] = camera
        tracks = msg.tracks
        boxes = np.array([xyxy_of(t.box) for t in tracks], dtype=np.float64).reshape(-1, 4)
        dims = {len(t.embedding) for t in tracks}
        embeddings = None
        if len(dims) == 1 and dims != {0}:
            embeddings = np.array([t.embedding for t in tracks], dtype=np.float64)
        elif len(dims) > 1:
            embeddings = [np.asarray(t.embedding, dtype=np.float64) for t in tracks]
        batch = TrackBatch(camera_id, stamp_seconds(msg.header.stamp),
                           np.array([t.track_id for t in tracks], dtype=np.int64),
                           boxes, np.array([t.class_id for t in tracks], dtype=np.int64),
                           np.array([t.score for t in tracks], dtype=np.float64), embeddings)
        try:
            with self._lock:
                report = self.core.fuse(camera, batch)
        except LocalizationError as exc:
            self.counters.on_error("invalid_tracks")
            self.log.warn(f"invalid-{camera_id}", str(exc))
            return
        if report.rejected_boxes:
            self.counters.count("boxes_not_lifted", report.rejected_boxes)
        self._cross_camera(camera, batch)
        result = report.result
        if result in (UpdateResult.DROPPED_LATE, UpdateResult.DROPPED_BACKWARDS):
            self.counters.on_dropped(1, "late" if result == UpdateResult.DROPPED_LATE else "backwards")
            if result == UpdateResult.DROPPED_BACKWARDS:
                self.log.warn(f"backwards-{camera_id}", f"{camera_id}: a message from more than "
                              f"{self.core.tracker.params.reset_backwards_s:g} s before the map's time dropped (the "
                              "map resets only if that earlier time goes on)")
            return
        if result == UpdateResult.RESET:
            self.counters.count("resets")
            self.get_logger().info("time jumped backwards: map reset")
        elif result == UpdateResult.FUSED_OUT_OF_ORDER:
            self.counters.count("out_of_order")
        self.counters.on_processed(time.perf_counter() - started)

    def _cross_camera(self, camera, batch) -> None:
        """FN proxy where views overlap: what the other cameras (their latest tracks within
        ``cross_camera_sync_s`` of this one's) put in this camera's view and it has nothing near, and the reverse."""
        self._cross.set_camera(batch.camera_id, camera)
        self._latest_boxes[batch.camera_id] = (batch.stamp, batch.boxes_xyxy, batch.class_ids)
        instant = {cam: (boxes, classes) for cam, (stamp, boxes, classes) in self._latest_boxes.items()
                   if abs(stamp - batch.stamp) <= self.cross_camera_sync_s}
        if len(instant) < 2:
            return
        self._cross.observe(instant, focus=batch.camera_id)
        self.counters.set_values({f"proxy.cross_camera_miss_ratio.{cam}": v
                                  for cam, v in self._cross.values().items() if v is not None})

    # -- output ------------------------------------------------------------------------------
    def _fusion_time(self) -> float | None:
        filter_time = self.core.tracker.time
        if filter_time is None:
            return None
        now = self.get_clock().now().nanoseconds * 1e-9
        # Predict to the clock, but never past a second beyond the newest input (a bag played without /clock).
        return filter_time if now < filter_time else min(now, filter_time + 1.0)

    def _publish(self) -> None:
        from perception_nodes.msg import LocalizedObjectArray, SiteEventArray

        with self._lock:
            t = self._fusion_time()
            if t is None:
                return
            objects = self.core.snapshot(t, include_tentative=self.publish_tentative)
            events = self.core.update_scene(t, [o for o in objects if o.state != ExistenceState.TENTATIVE])
        out = LocalizedObjectArray()
        out.header.frame_id = self.map_frame
        set_stamp(out.header.stamp, t)
        out.objects = [self._object_msg(o) for o in objects]
        self.objects_pub.publish(out)
        self.objects_3d_pub.publish(self._detection3d(out))
        if self.publish_markers:
            self.markers_pub.publish(object_markers(out.header, out.objects, 2.0 / self.publish_rate_hz))
        if events:
            arr = SiteEventArray(header=out.header)
            arr.events = [self._event_msg(e) for e in events]
            self.events_pub.publish(arr)
            self.counters.count("site_events", len(events))
        if self.core.scene is not None:
            self.state_pub.publish(self._state_msg(out.header))
            if events or time.monotonic() - self._site_markers_sent > 5.0:
                self._publish_site_markers(out.header)

    def _object_msg(self, o):
        from perception_nodes.msg import CameraTrackRef, LocalizedObject

        msg = LocalizedObject(global_id=int(o.global_id), state=int(o.state), class_id=int(o.class_id),
                              class_name=SITE_CLASS_NAMES[o.class_id] if o.class_id < len(SITE_CLASS_NAMES) else "",
                              confidence=float(np.clip(o.confidence, 0, 1)), heading=float(o.heading),
                              heading_known=bool(o.heading_known))
        (length, width, height), _ = DEFAULT_SIZE_PRIORS.get(msg.class_name or "other", DEFAULT_SIZE_PRIORS["other"])
        msg.extent.x, msg.extent.y, msg.extent.z = float(length), float(width), float(height)
        msg.position.x, msg.position.y, msg.position.z = float(o.xy[0]), float(o.xy[1]), float(height / 2)
        cov = np.zeros((3, 3))
        cov[:2, :2] = o.cov[:2, :2]
        cov[2, 2] = 0.01
        msg.position_covariance = [float(v) for v in cov.ravel()]
        vcov = np.zeros((3, 3))
        vcov[:2, :2] = o.cov[2:, 2:]
        msg.velocity_covariance = [float(v) for v in vcov.ravel()]
        msg.velocity.x, msg.velocity.y = float(o.velocity[0]), float(o.velocity[1])
        msg.contributors = [CameraTrackRef(camera_id=c, track_id=int(t)) for c, t in sorted(o.contributors.items())]
        set_stamp(msg.last_seen, o.last_seen)
        set_stamp(msg.first_seen, o.first_seen)
        if o.embedding is not None:
            msg.embedding = [float(v) for v in o.embedding]
        scene = self.core.scene
        if scene is not None:
            msg.zones = scene.zones_of(o.global_id)
            msg.stall_id = scene.stall_of(o.global_id)
            msg.lane, motion = scene.lane_motion(o.xy, o.velocity)
            msg.lane_motion = int(motion)
        return msg

    def _detection3d(self, objects) -> Detection3DArray:
        out = Detection3DArray(header=objects.header)
        for obj in objects.objects:
            det = Detection3D(header=objects.header, id=str(obj.global_id))
            det.bbox.center.position = obj.position
            det.bbox.center.orientation.z = math.sin(obj.heading / 2)
            det.bbox.center.orientation.w = math.cos(obj.heading / 2)
            det.bbox.size = obj.extent
            hypothesis = ObjectHypothesisWithPose()
            hypothesis.hypothesis.class_id = obj.class_name
            hypothesis.hypothesis.score = float(obj.confidence)
            hypothesis.pose.pose.position = obj.position
            hypothesis.pose.pose.orientation = det.bbox.center.orientation
            cov = np.zeros((6, 6))
            cov[:3, :3] = np.array(obj.position_covariance).reshape(3, 3)
            cov[3:, 3:] = np.eye(3) * (0.3 if obj.heading_known else math.pi) ** 2
            hypothesis.pose.covariance = [float(v) for v in cov.ravel()]
            det.results.append(hypothesis)
            out.detections.append(det)
        return out

    def _event_msg(self, event):
        from perception_nodes.msg import SiteEvent

        msg = SiteEvent(kind=int(event.kind), global_id=int(event.global_id), class_id=int(event.class_id),
                        place=event.place)
        set_stamp(msg.stamp, event.stamp)
        return msg

    def _stall_msgs(self, stall_filter: str = ""):
        from perception_nodes.msg import StallState

        t = self.core.scene.time or 0.0
        out = []
        for stall_id, status in self.core.scene.stalls.items():
            if stall_filter and stall_id != stall_filter:
                continue
            msg = StallState(stall_id=stall_id, zone=status.zone,
                             occupancy=StallState.OCCUPANCY_OCCUPIED if status.occupied else StallState.OCCUPANCY_FREE,
                             global_id=int(status.global_id) if status.occupied else 0,
                             dwell_s=float(status.dwell_s(t)))
            if self.core.scene.time is None:
                msg.occupancy = StallState.OCCUPANCY_UNKNOWN
            set_stamp(msg.since, status.since)
            out.append(msg)
        return out

    def _zone_msgs(self, zone_filter: str = ""):
        from perception_nodes.msg import ZoneState

        out = []
        for name, zone in self.core.scene.zones.items():
            if zone_filter and name != zone_filter:
                continue
            counts = zone.counts()
            out.append(ZoneState(name=name, kind=zone.kind, global_ids=[int(g) for g in zone.members],
                                 class_ids=[int(c) for c in counts], class_counts=[int(v) for v in counts.values()]))
        return out

    def _state_msg(self, header):
        from perception_nodes.msg import SiteState

        return SiteState(header=header, stalls=self._stall_msgs(), zones=self._zone_msgs())

    def _publish_site_markers(self, header) -> None:
        markers = site_markers(header, self.core.map, {s: st.occupied for s, st in self.core.scene.stalls.items()})
        # A copy: the worker thread adds cameras to the cache while the executor publishes.
        for index, camera in enumerate(list(self._geometry_cache.values())):
            markers.markers.append(frustum_marker(header, index, camera))
        self.site_markers_pub.publish(markers)
        self._site_markers_sent = time.monotonic()

    def _on_query(self, request, response):
        from perception_nodes.msg import ServiceStatus

        status = ServiceStatus(code=ServiceStatus.OK)
        if self.core.scene is None:
            status.code, status.message = ServiceStatus.UNAVAILABLE, "no site map: start the localizer with 'site'"
            response.status = status
            return response
        scene = self.core.scene
        if request.stall_id and request.stall_id not in scene.stalls:
            status.code, status.message = ServiceStatus.NOT_FOUND, f"no stall {request.stall_id!r}; stalls: " \
                                                                  f"{', '.join(sorted(scene.stalls)[:20])}"
        elif request.zone and request.zone not in scene.zones:
            status.code, status.message = ServiceStatus.NOT_FOUND, f"no zone {request.zone!r}; zones: " \
                                                                  f"{', '.join(sorted(scene.zones)[:20])}"
        start, end = stamp_seconds(request.start), stamp_seconds(request.end)
        if status.code == ServiceStatus.OK and end and end < start:
            status.code, status.message = ServiceStatus.INVALID_REQUEST, "end is before start"
        if status.code != ServiceStatus.OK:
            response.status = status
            return response
        with self._lock:
            response.stalls = self._stall_msgs(request.stall_id) if request.stall_id or not request.zone else []
            response.zones = self._zone_msgs(request.zone) if request.zone or not request.stall_id else []
            events = []
            if start or end:
                events = [e for e in scene.events_between(start, end or float("inf"))
                          if not request.place or e.place == request.place]
        limit = int(request.max_events) or 1000
        response.truncated = len(events) > limit
        response.events = [self._event_msg(e) for e in events[:limit]]
        response.status = status
        return response

    def _status(self) -> tuple[int, str]:
        from perception_nodes.msg import NodeHealth

        now = time.monotonic()
        if now - self._started < self.stale_camera_s:
            return NodeHealth.LEVEL_OK, ""
        stale = [c for c in self.cameras if now - self._last_tracks.get(c, self._started) > self.stale_camera_s]
        missing = [c for c in self.cameras if c not in self.cameras_geometry.camera_info]
        problems = []
        if stale:
            problems.append(f"no tracks for {self.stale_camera_s:.0f} s from {', '.join(stale)} (their objects coast)")
        if missing:
            problems.append(f"no CameraInfo from {', '.join(missing)}")
        misaligned = dict(self._misaligned)
        if misaligned:
            problems.append("down-weighted (off their calibration): " + ", ".join(
                f"{c} {e:.2f} deg" for c, e in sorted(misaligned.items())))
        self.counters.set("cameras_misaligned", len(misaligned))
        self.counters.set("cameras_stale", len(stale))
        self.counters.set("objects", len(self.core.tracker.objects))
        return (NodeHealth.LEVEL_WARN, "; ".join(problems)) if problems else (NodeHealth.LEVEL_OK, "")

    def destroy_node(self):
        self._running = False
        wake, worker = getattr(self, "_wake", None), getattr(self, "_worker", None)
        if wake is not None:   # absent when a bad parameter stopped the constructor
            with wake:
                wake.notify_all()
        if worker is not None:
            worker.join(timeout=2.0)
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(LocalizerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
