"""Risk node: localized objects + the site's rules -> an explained RiskAssessment and a debounced ActuationCommand
that fails safe.

Subscribes  objects              perception_nodes/LocalizedObjectArray (qos.RESULTS): the localizer's map objects
            <cam>/tracks         perception_nodes/TrackArray (qos.RESULTS): only their arrival and age, to know
                                 which cameras are live and on time (coverage of the zones with rules)
            <cam>/camera_info    sensor_msgs/CameraInfo + /tf_static: what each camera sees of the map
            /perception/health   perception_nodes/NodeHealth: an upstream node in ERROR puts the node in fail-safe
Publishes   risk/assessment      perception_nodes/RiskAssessment (qos.COMMANDS), one per objects message, and one per
                                 check period while the inputs are stale (fail-safe)
            risk/command         perception_nodes/ActuationCommand with every assessment; deadline and liveliness
                                 QoS, so a consumer notices a silent or dead risk node
            risk/markers         visualization_msgs/MarkerArray: the level, and a line between each pair behind it
Services    ~/explain            perception_nodes/ExplainAssessment: the input snapshot, every rule's evaluation
                                 and the reason, for a recent assessment
Decision log  an MCAP bag (topic /risk/decision, RiskDecisionRecord per assessment) written by default on a
              worker thread; ``perception explain LOG --assessment N`` prints one for a person.

Decisions depend only on the objects' stamps and contents (not on wall time), so a bag replayed in lockstep
gives the same decisions. The stale check runs on the node's clock (sim time under /clock).
"""
from __future__ import annotations

import copy
import math
import os
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path

import numpy as np
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, LivelinessPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from visualization_msgs.msg import Marker, MarkerArray

from perception_nodes.risk import (DECISION_TOPIC, CoverageModel, InputStatus, ObjectState, RiskConfigError,
                                   RiskEngine, RiskLevel, parse_risk_config)
from perception_nodes.ros import qos
from perception_nodes.ros.camera_geometry import CameraGeometrySource
from perception_nodes.ros.health import HEALTH_TOPIC, HealthReporter
from perception_nodes.ros.logthrottle import ThrottledLogger
from perception_nodes.ros.main import run_node
from perception_nodes.ros.params import ParameterSet
from perception_nodes.ros.stamps import set_stamp, stamp_seconds
from perception_nodes.stats import NodeCounters

MAX_MARKED_REASONS = 32  # a viewer shows the most severe; the explain service has every one
DECISION_TYPE = "perception_nodes/msg/RiskDecisionRecord"
_LEVEL_COLOURS = {RiskLevel.UNKNOWN: (0.6, 0.6, 0.6), RiskLevel.CLEAR: (0.1, 0.8, 0.2), RiskLevel.LOW: (0.9, 0.9, 0.1),
                  RiskLevel.MEDIUM: (1.0, 0.6, 0.0), RiskLevel.HIGH: (1.0, 0.2, 0.0), RiskLevel.CRITICAL: (0.9, 0.0, 0.6)}


def default_decision_log() -> Path:
    base = Path(os.environ.get("PERCEPTION_DECISION_LOG_DIR", Path.home() / ".local/share/perception_nodes/decisions"))
    return base / f"risk-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def command_qos(period_s: float) -> QoSProfile:
    """Commands: reliable, never dropped; the deadline (2 periods) and an automatic liveliness lease let a consumer
    (and its DDS) notice a risk node that stopped deciding or died, so it can apply its own fail-safe."""
    return QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10,
                      durability=DurabilityPolicy.VOLATILE, deadline=Duration(seconds=2.0 * period_s),
                      liveliness=LivelinessPolicy.AUTOMATIC, liveliness_lease_duration=Duration(seconds=4.0 * period_s))


class _DecisionLog:
    """Decision records serialized and written to an MCAP bag on a worker thread (bounded, oldest dropped)."""

    def __init__(self, path: Path, counters: NodeCounters, log, depth: int = 256):
        from perception_nodes.bagio import BagWriter

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._writer = BagWriter(path)
        self._writer.add_topic(DECISION_TOPIC, DECISION_TYPE)
        self._queue: deque = deque(maxlen=depth)
        self._wake = threading.Condition()
        self._running = True
        self._counters, self._log = counters, log
        self._thread = threading.Thread(target=self._work, name="risk-decision-log", daemon=True)
        self._thread.start()

    def put(self, stamp_ns: int, record) -> None:
        """Queue one record (or a callable making it, called on the worker)."""
        with self._wake:
            if len(self._queue) == self._queue.maxlen:
                self._counters.count("decision_log_dropped")
            self._queue.append((stamp_ns, record))
            self._wake.notify()

    def _work(self) -> None:
        from rclpy.serialization import serialize_message

        while True:
            with self._wake:
                while self._running and not self._queue:
                    self._wake.wait(0.5)
                if not self._queue and not self._running:
                    return
                stamp_ns, record = self._queue.popleft()
            try:
                record = record() if callable(record) else record
                self._writer.write(DECISION_TOPIC, stamp_ns, serialize_message(record))
            except Exception as exc:  # the log must not take decisions down with it
                self._counters.on_error("decision_log_failed")
                self._log.warn("decision-log", f"decision log {self.path}: {exc!r}")

    def close(self) -> None:
        with self._wake:
            self._running = False
            self._wake.notify_all()
        self._thread.join(timeout=5.0)
        self._writer.close()


class RiskNode(Node):
    def __init__(self, **kwargs):
        super().__init__("risk", **kwargs)
        self.decision_log = None  # before anything that can fail: destroy_node closes it
        from perception_nodes.msg import ActuationCommand, LocalizedObjectArray, NodeHealth, RiskAssessment, TrackArray
        from perception_nodes.srv import ExplainAssessment

        params = ParameterSet(self)
        site_ref = params.declare("site", "", "Site manifest (path or name under config/sites/): its map, cameras "
                                  "and risk rules.", read_only=True)
        rules_file = params.declare("rules_file", "", "A YAML file whose 'risk' mapping replaces the site's (a "
                                    "candidate rule set); empty: the site's.", read_only=True)
        self.map_frame = params.declare("map_frame", "map", "The map frame (REP-105).", read_only=True)
        self.input_deadline_s = params.declare(
            "input_deadline_s", 0.5, "Objects older than this (node clock) put the node in fail-safe.",
            minimum=0.05, maximum=60.0, read_only=True)
        self.camera_deadline_s = params.declare(
            "camera_deadline_s", 3.0, "A camera whose tracks stop this long counts as lost for coverage.",
            minimum=0.1, maximum=600.0)
        self.max_track_age_s = params.declare(
            "max_track_age_s", 2.0, "A camera whose tracks arrive older than this (capture to arrival) counts as "
            "lost for coverage (a latency spike).", minimum=0.05, maximum=600.0)
        self.health_timeout_s = params.declare(
            "health_timeout_s", 5.0, "An upstream ERROR report counts for this long.", minimum=0.5, maximum=600.0)
        self.command_expiry_s = params.declare(
            "command_expiry_s", 0.5, "How long a command stays valid (its 'expires').", minimum=0.05, maximum=60.0,
            read_only=True)
        self.startup_grace_s = params.declare(
            "startup_grace_s", 5.0, "No fail-safe for missing inputs this long after start (the graph is coming up).",
            minimum=0.0, maximum=600.0, read_only=True)
        self.explain_window = params.declare("explain_window", 300, "Assessments kept in memory for ~/explain "
                                             "(the decision log has every one).", minimum=1, maximum=100000,
                                             read_only=True)
        self.max_reasons = params.declare("max_reasons", 16, "Reasons carried by a published assessment (most severe "
                                          "first; reasons_total counts all).", minimum=1, maximum=1000)
        self.markers_period_s = params.declare("markers_period_s", 0.5, "Period of risk/markers (the newest "
                                               "assessment's), off the decision path.", minimum=0.05, maximum=60.0,
                                               read_only=True)
        decision_log = params.declare("decision_log", "", "Decision log folder (MCAP); empty: a new folder under "
                                      "$PERCEPTION_DECISION_LOG_DIR or ~/.local/share/perception_nodes/decisions; "
                                      "'none': no log.", read_only=True)
        self.counters = NodeCounters()
        self.log = ThrottledLogger(self.get_logger())
        self.site = None
        semantic_map, risk_section, cameras = None, None, []
        if site_ref:
            from perception_nodes.site.manifest import load_manifest

            self.site = load_manifest(site_ref)
            semantic_map, risk_section, cameras = self.site.map, self.site.risk, [c.id for c in self.site.cameras]
        where = str(self.site.path) if self.site else "parameters"
        if rules_file:
            from perception_nodes.fileio import read_yaml_mapping

            risk_section, where = read_yaml_mapping(Path(rules_file), "risk rules file").get("risk"), rules_file
        try:
            self.config = parse_risk_config(risk_section, semantic_map, where)
        except RiskConfigError as exc:
            raise ValueError(str(exc)) from exc
        if not self.config.rules:
            self.get_logger().warning("no risk rules: every assessment is CLEAR unless the inputs fail")
        self.cameras = cameras
        self.coverage = CoverageModel(semantic_map.zones) if semantic_map is not None and semantic_map.zones else None
        self.engine = RiskEngine(self.config, semantic_map, self.coverage)
        self._lock = threading.Lock()
        self._started = self._now()
        self._last_objects: float | None = None  # node-clock time of the last objects message
        self._last_tracks: dict[str, float] = {}
        self._track_age: dict[str, float] = {}  # camera -> age of its newest tracks when they arrived (s)
        self._health: dict[str, tuple[float, int, str]] = {}  # node -> (node-clock time, level, message)
        self._records: OrderedDict[int, object] = OrderedDict()
        self._sequence = 0
        self._last_assessment = None
        self._fail_safe_logged = ""
        self._markers_due = None  # (header, assessment, objects) of the newest assessment not drawn yet
        self.rules_version = self.config.version
        import perception_nodes.msg as types

        self._types = types

        from perception_nodes.ros.tf import TransformListener
        from perception_nodes.tf.buffer import TransformBuffer

        self.tf_buffer = TransformBuffer(cache_duration_s=30.0)
        self.tf_listener = TransformListener(self, self.tf_buffer)
        self.geometry = CameraGeometrySource(self.tf_buffer, self.counters, self.log, self.map_frame, 0.0)
        self.assessment_pub = self.create_publisher(RiskAssessment, "risk/assessment", qos.COMMANDS,
                                                    qos_overriding_options=qos.overridable())
        self.command_pub = self.create_publisher(ActuationCommand, "risk/command", command_qos(self.input_deadline_s),
                                                 qos_overriding_options=qos.overridable())
        # Markers: the newest only matters to a viewer.
        self.markers_pub = self.create_publisher(MarkerArray, "risk/markers", 1,
                                                 qos_overriding_options=qos.overridable())
        self.create_subscription(LocalizedObjectArray, "objects", self._on_objects, qos.RESULTS,
                                 qos_overriding_options=qos.overridable())
        for cam in self.cameras:
            self.create_subscription(TrackArray, f"{cam}/tracks", lambda m, c=cam: self._on_tracks(c, m), qos.RESULTS,
                                     qos_overriding_options=qos.overridable())
            self.create_subscription(CameraInfo, f"{cam}/camera_info",
                                     lambda m, c=cam: self.geometry.on_camera_info(c, m), qos.CAMERA_INFO_ANY,
                                     qos_overriding_options=qos.overridable())
        self._health_type = NodeHealth
        self.create_subscription(NodeHealth, HEALTH_TOPIC, self._on_health, qos.HEALTH,
                                 qos_overriding_options=qos.overridable())
        self.create_service(ExplainAssessment, "~/explain", self._on_explain)
        if decision_log != "none":
            path = Path(decision_log) if decision_log else default_decision_log()
            self.decision_log = _DecisionLog(path, self.counters, self.log)
            self.get_logger().info(f"decision log: {path}")
        self.create_timer(self.input_deadline_s / 4.0, self._check_inputs)
        # Markers are for people looking at RViz: drawn on their own timer, so building them never delays a decision.
        self.create_timer(self.markers_period_s, self._publish_markers)
        if self.coverage is not None and self.cameras:
            self._coverage_timer = self.create_timer(1.0, self._learn_coverage)
        self.health = HealthReporter(self, self.counters, status=self._status)

    # -- inputs ------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_tracks(self, camera_id: str, msg) -> None:
        now = self._now()
        self._last_tracks[camera_id] = now
        self._track_age[camera_id] = now - stamp_seconds(msg.header.stamp)

    def _on_health(self, msg) -> None:
        if msg.node_name == self.get_fully_qualified_name():
            return
        self._health[msg.node_name] = (self._now(), int(msg.level), msg.message)

    def _learn_coverage(self) -> None:
        """Add each camera to the coverage model once its CameraInfo and pose are known (static calibration)."""
        from std_msgs.msg import Header

        for cam in self.cameras:
            if cam in self.coverage.cameras or cam not in self.geometry.camera_info:
                continue
            geometry = self.geometry.geometry(cam, Header(frame_id=f"{cam}_optical_frame"), "coverage check")
            if geometry is not None:
                with self._lock:
                    self.coverage.add_camera(geometry)
        if set(self.coverage.cameras) >= set(self.cameras):
            self._coverage_timer.cancel()

    def _input_status(self, now: float, stale: str = "") -> InputStatus:
        unhealthy = tuple(f"{name}: {message or 'ERROR'}" for name, (seen, level, message) in sorted(self._health.items())
                          if level >= self._health_type.LEVEL_ERROR and now - seen <= self.health_timeout_s)
        live, late = None, ()
        if self.coverage is not None and self.coverage.cameras and now - self._started > self.startup_grace_s:
            arriving = [c for c in self.cameras if now - self._last_tracks.get(c, -math.inf) <= self.camera_deadline_s]
            live = tuple(c for c in arriving if self._track_age.get(c, 0.0) <= self.max_track_age_s)
            late = tuple((c, self._track_age[c]) for c in arriving if c not in live)
        return InputStatus(stale=stale, unhealthy=unhealthy, live_cameras=live, late_cameras=late)

    def _object_states(self, msg) -> tuple[list[ObjectState], int]:
        """The confirmed and coasting objects as the rules see them, and how many were invalid (left out)."""
        kept = [o for o in msg.objects if o.state in (o.STATE_CONFIRMED, o.STATE_COASTING)]
        if not kept:
            return [], 0
        values = np.array([(o.position.x, o.position.y, o.velocity.x, o.velocity.y, o.extent.x, o.extent.y, o.heading,
                            o.global_id) for o in kept], dtype=np.float64)
        pcov = np.array([o.position_covariance for o in kept], dtype=np.float64).reshape(-1, 3, 3)[:, :2, :2]
        vcov = np.array([o.velocity_covariance for o in kept], dtype=np.float64).reshape(-1, 3, 3)[:, :2, :2]
        valid = (np.isfinite(values[:, :4]).all(axis=1) & np.isfinite(pcov).all(axis=(1, 2))
                 & np.isfinite(vcov).all(axis=(1, 2)) & (values[:, 7] != 0))
        states = []
        for i in np.flatnonzero(valid):
            o = kept[i]
            x, y, vx, vy, length, width, heading, _ = values[i]
            seen = stamp_seconds(o.last_seen)
            states.append(ObjectState(int(o.global_id), o.class_name, (x, y), (vx, vy), pcov[i], vcov[i],
                                      length or 1.0, width or 1.0, heading if o.heading_known else None, o.lane,
                                      o.lane_motion == o.LANE_AGAINST, o.state == o.STATE_COASTING,
                                      seen if seen > 0.0 else None))
        return states, int(len(kept) - valid.sum())

    def _on_objects(self, msg) -> None:
        started = time.perf_counter()
        self.counters.on_received()
        states, invalid = self._object_states(msg)
        if invalid:
            self.counters.on_error("bad_object", invalid)
            self.log.warn("bad-object", f"{invalid} object(s) with a non-finite position, velocity or covariance, "
                                        f"or id 0: left out of the assessment")
        now = self._now()
        self._last_objects = now
        with self._lock:
            assessment = self.engine.assess(stamp_seconds(msg.header.stamp), states, self._input_status(now))
        self._publish(assessment, msg.header.stamp, msg.objects)
        self.counters.on_processed(time.perf_counter() - started)

    def _check_inputs(self) -> None:
        now = self._now()
        reference = self._last_objects if self._last_objects is not None else self._started + self.startup_grace_s
        age = now - reference
        if age <= self.input_deadline_s:
            return
        what = (f"no objects for {age:.2f} s (deadline {self.input_deadline_s:.2f} s)" if self._last_objects
                is not None else f"no objects received since start ({now - self._started:.1f} s)")
        with self._lock:
            assessment = self.engine.assess(now, [], self._input_status(now, stale=what))
        self.counters.count("stale_assessments")
        stamp = self.get_clock().now().to_msg()
        self._publish(assessment, stamp, [])

    # -- outputs -----------------------------------------------------------------------------
    def _publish(self, assessment, stamp, objects) -> None:
        msg = self._assessment_msg(assessment, stamp)
        self._sequence += 1
        command = self._types.ActuationCommand(
            command=int(assessment.command), target=self.config.target, reason=assessment.command_reason,
            fail_safe=assessment.fail_safe, sequence=self._sequence, assessment_id=assessment.assessment_id,
            assessment=msg)
        command.header = msg.header
        set_stamp(command.expires, stamp_seconds(stamp) + self.command_expiry_s)
        self.assessment_pub.publish(msg)
        self.command_pub.publish(command)
        self._markers_due = (msg.header, assessment, objects)
        # The full record (every evaluation, the explanation, the input snapshot) is built only when read: on the
        # decision log's worker thread, or by the explain service.
        entry = (assessment, msg, command, objects)
        self._records[assessment.assessment_id] = entry
        while len(self._records) > self.explain_window:
            self._records.popitem(last=False)
        if self.decision_log is not None:
            self.decision_log.put(stamp.sec * 1_000_000_000 + stamp.nanosec, lambda e=entry: self._record(*e))
        self._last_assessment = assessment
        self.counters.count(f"level_{assessment.level.name.lower()}")
        if assessment.fail_safe and assessment.fail_safe_reason != self._fail_safe_logged:
            self.get_logger().warning(f"fail-safe ({assessment.command.name}): {assessment.fail_safe_reason}")
        elif not assessment.fail_safe and self._fail_safe_logged:
            self.get_logger().info("inputs recovered: fail-safe released")
        self._fail_safe_logged = assessment.fail_safe_reason if assessment.fail_safe else ""

    def _publish_markers(self) -> None:
        due, self._markers_due = self._markers_due, None
        if due is not None:
            self.markers_pub.publish(self._markers(*due))

    def _record(self, assessment, assessment_msg, command, objects):
        """The RiskDecisionRecord of one assessment: what the decision log writes and ~/explain returns."""
        full = copy.copy(assessment_msg)
        full.reasons = self._reason_msgs(assessment.reasons)
        return self._types.RiskDecisionRecord(
            assessment=full, command=command, objects=list(objects),
            evaluations=[self._evaluation_msg(e) for e in assessment.evaluations], explanation=assessment.explanation)

    def _reason_msgs(self, reasons):
        RiskReason = self._types.RiskReason
        return [RiskReason(rule_id=e.rule.id, kind=e.rule.kind.value, severity=int(e.rule.severity),
                           object_ids=list(e.object_ids), place=e.place,
                           measured_value=float(e.measured) if math.isfinite(e.measured) else -1.0,
                           threshold=float(e.rule.threshold), unit=e.rule.unit, text=e.text) for e in reasons]

    def _assessment_msg(self, assessment, stamp):
        msg = self._types.RiskAssessment(
            assessment_id=assessment.assessment_id, level=int(assessment.level), score=float(assessment.score),
            fail_safe=assessment.fail_safe, fail_safe_reason=assessment.fail_safe_reason,
            objects_evaluated=assessment.objects_evaluated, rules_version=self.rules_version,
            reasons_total=len(assessment.reasons))
        msg.header.frame_id = self.map_frame
        msg.header.stamp = stamp
        if assessment.time_to_collision is not None:
            msg.time_to_collision_defined, msg.time_to_collision = True, float(assessment.time_to_collision)
        msg.reasons = self._reason_msgs(assessment.reasons[:self.max_reasons])
        return msg

    def _evaluation_msg(self, e):
        return self._types.RuleEvaluation(rule_id=e.rule.id, kind=e.rule.kind.value, severity=int(e.rule.severity),
                              state=int(e.state), object_ids=list(e.object_ids), place=e.place,
                              measured_value=float(e.measured), threshold=float(e.rule.threshold),
                              release_threshold=float(e.rule.release), unit=e.rule.unit,
                              condition_since_s=float(e.condition_since_s), text=e.text)

    def _markers(self, header, assessment, objects) -> MarkerArray:
        out = MarkerArray()
        out.markers.append(Marker(action=Marker.DELETEALL))
        colour = _LEVEL_COLOURS[assessment.level]
        text = Marker(header=header, ns="risk", id=0, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        text.pose.position.z = 12.0
        text.scale.z = 2.0
        text.color.r, text.color.g, text.color.b, text.color.a = (*colour, 1.0)
        text.text = f"{assessment.level.name}{' FAIL-SAFE' if assessment.fail_safe else ''}: {assessment.command.name}"
        text.lifetime = Duration(seconds=2.0).to_msg()
        out.markers.append(text)
        where = {o.global_id: o.position for o in objects}
        for index, reason in enumerate(assessment.reasons[:MAX_MARKED_REASONS], start=1):
            ids = [i for i in reason.object_ids if i in where]
            if not ids:
                continue
            line = Marker(header=header, ns="risk_reasons", id=index, type=Marker.LINE_STRIP, action=Marker.ADD)
            line.scale.x = 0.3
            line.color.r, line.color.g, line.color.b, line.color.a = (*_LEVEL_COLOURS[reason.rule.severity], 1.0)
            line.points = [where[i] for i in ids] if len(ids) > 1 else [where[ids[0]], where[ids[0]]]
            if len(ids) == 1:
                line.type = Marker.SPHERE
                line.pose.position = where[ids[0]]
                line.scale.x = line.scale.y = line.scale.z = 1.5
                line.points = []
            line.lifetime = Duration(seconds=2.0).to_msg()
            out.markers.append(line)
        return out

    def _on_explain(self, request, response):
        from perception_nodes.msg import ServiceStatus

        response.status = ServiceStatus(code=ServiceStatus.OK)
        if not self._records:
            response.status.code, response.status.message = ServiceStatus.UNAVAILABLE, "no assessment made yet"
            return response
        wanted = request.assessment_id or next(reversed(self._records))
        record = self._records.get(wanted)
        if record is None:
            oldest, newest = next(iter(self._records)), next(reversed(self._records))
            response.status.code = ServiceStatus.NOT_FOUND
            response.status.message = (f"assessment {wanted} is not held (held: {oldest}..{newest}); "
                                       f"older ones are in the decision log")
            return response
        response.record = self._record(*record)
        return response

    def _status(self) -> tuple[int, str]:
        from perception_nodes.msg import NodeHealth

        a = self._last_assessment
        self.counters.set("assessments", a.assessment_id if a else 0)
        if a is None:
            return NodeHealth.LEVEL_WARN, "no assessment yet"
        if a.fail_safe:
            return NodeHealth.LEVEL_WARN, f"fail-safe ({a.command.name}): {a.fail_safe_reason}"
        return NodeHealth.LEVEL_OK, ""

    def close(self) -> None:
        if self.decision_log is not None:
            self.decision_log.close()
            self.decision_log = None

    def destroy_node(self):
        self.close()
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(RiskNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
