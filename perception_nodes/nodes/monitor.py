"""Monitor node: measures the pipeline from the stamps, collects every node's health, and reports both.

Subscribes  <cam>/camera_info, <cam>/detections, <cam>/tracks     (per camera, raw: only the header is read)
            objects                                               perception_nodes/LocalizedObjectArray
            risk/assessment                                       (raw: only the header is read)
              (these on a second node, <name>_streams, read every poll_period_s with each message's middleware
              reception time, instead of an executor wake-up per message)
            /perception/health                                    perception_nodes/NodeHealth
Publishes   /diagnostics     diagnostic_msgs/DiagnosticArray: one status per node (its own report; STALE when
                             silent), per watched topic (rate and jitter against the expected rate, data age
                             p50/p95/p99 from header stamps), and the pipeline's hand-overs (frames lost between
                             stages, time per stage)
Service     ~/get_health     perception_nodes/GetHealth
Endpoint    http://<metrics_address>:<metrics_port>/metrics (Prometheus; loopback unless configured)
File        ``timeline_path`` (optional): one JSON line per period, for `perception report --html --timeline`

Which topics are watched and at what rates they are expected comes from the graph (``cameras``,
``camera_rates_hz``, ``stages``; ``graph.build_graph`` fills them from the site manifest). A frame's age at
``<cam>/tracks`` is receipt time - capture stamp: the whole capture -> tracks latency, measured here rather
than reported by the nodes about themselves. Drift is judged where the frames are (the detector) and reported
in its health values; the monitor relays it to diagnostics and Prometheus.
"""
from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo

from perception_nodes.monitoring.graph import GraphMonitor, NodeReport, TimelineWriter, timeline_row
from perception_nodes.monitoring.topics import ReceiptClock, Stage, TopicSpec, TopicThresholds
from perception_nodes.ros import qos
from perception_nodes.ros.cdr_peek import header_stamp_ns, strings_after_header
from perception_nodes.ros.health import HEALTH_TOPIC
from perception_nodes.ros.logthrottle import ThrottledLogger
from perception_nodes.ros.main import run_node
from perception_nodes.ros.params import ParameterSet
from perception_nodes.ros.stamps import stamp_nanoseconds

WATCHABLE_STAGES = tuple(s.value for s in Stage)


class MonitorNode(Node):
    def __init__(self, **kwargs):
        super().__init__("monitor", **kwargs)
        from perception_nodes.msg import LocalizedObjectArray, NodeHealth, ServiceStatus
        from perception_nodes.srv import GetHealth

        self._LocalizedObjectArray = LocalizedObjectArray

        self._NodeHealth, self._ServiceStatus = NodeHealth, ServiceStatus
        params = ParameterSet(self)
        self.stale_after_s = params.declare("stale_after_s", 3.0, "A node silent for this long is reported stale.",
                                            minimum=0.1, maximum=3600.0)
        self.publish_period_s = params.declare("publish_period_s", 1.0, "Period of /diagnostics.",
                                               minimum=0.05, maximum=60.0, read_only=True)
        cameras = [c for c in params.declare("cameras", [""], "Camera ids whose streams are watched; ['']: none.",
                                             read_only=True) if c]
        rates = list(params.declare("camera_rates_hz", [0.0], "Per camera (parallel to cameras): the rate its "
                                    "streams are expected at; [0.0]: not judged.", read_only=True))
        if len(rates) != len(cameras):
            rates = [0.0] * len(cameras)
        stages = [s for s in params.declare("stages", list(WATCHABLE_STAGES), "Pipeline stages to watch: "
                                            f"{', '.join(WATCHABLE_STAGES)}; ['']: none.", read_only=True,
                                            validator=self._check_stages) if s]
        objects_rate = params.declare("objects_rate_hz", 0.0, "Expected rate of objects and risk/assessment "
                                      "(the localizer's publish rate); 0: not judged.", minimum=0.0, maximum=1000.0,
                                      read_only=True)
        thresholds = TopicThresholds(
            window_s=params.declare("window_s", 10.0, "Rates, jitter and age percentiles over this much traffic.",
                                    minimum=1.0, maximum=600.0, read_only=True),
            rate_warn_ratio=params.declare("rate_warn_ratio", 0.8, "Below this share of the expected rate: WARN.",
                                           minimum=0.01, maximum=1.0, read_only=True),
            rate_error_ratio=params.declare("rate_error_ratio", 0.5, "Below this share: ERROR.", minimum=0.01,
                                            maximum=1.0, read_only=True),
            jitter_warn_ratio=params.declare("jitter_warn_ratio", 0.5, "Inter-arrival std above this share of the "
                                             "expected period: WARN.", minimum=0.01, maximum=100.0, read_only=True),
            age_warn_s=params.declare("age_warn_s", 0.5, "Data age p95 above this: WARN.", minimum=0.001,
                                      maximum=600.0, read_only=True),
            age_error_s=params.declare("age_error_s", 2.0, "Data age p95 above this: ERROR.", minimum=0.001,
                                       maximum=600.0, read_only=True),
            stale_after_s=self.stale_after_s)
        poll_period_s = params.declare("poll_period_s", 0.2, "The watched streams are read this often (each "
                                       "message keeps its middleware reception time).", minimum=0.01,
                                       maximum=5.0, read_only=True)
        metrics_port = params.declare("metrics_port", 9464, "Prometheus endpoint port; 0: any free port; -1: off.",
                                      minimum=-1, maximum=65535, read_only=True)
        # Loopback unless a deployment asks otherwise; off loopback, a web config should add TLS and a password.
        metrics_address = params.declare("metrics_address", "127.0.0.1", "Address the endpoint binds to.",
                                         read_only=True)
        metrics_web_config = params.declare(
            "metrics_web_config", "", "TLS and basic-auth settings of the endpoint, in the Prometheus exporter "
            "toolkit's web-config.yml layout (tls_server_config, basic_auth_users with bcrypt hashes); empty: plain "
            "HTTP without authentication.", read_only=True)
        timeline = params.declare("timeline_path", "", "Append one JSON line per diagnostics period (rates, ages, "
                                  "levels, drift) to this file, for `perception report --html --timeline`; empty: "
                                  "off.", read_only=True)
        timeline_max_mb = params.declare("timeline_max_mb", 50.0, "Past this size the timeline rotates to "
                                         "<path>.1 (one old file is kept).", minimum=0.01, maximum=10000.0,
                                         read_only=True)
        params.on_change(lambda changed: setattr(self, "stale_after_s", changed.get("stale_after_s",
                                                                                   self.stale_after_s)))
        self.timeline = TimelineWriter(timeline, int(timeline_max_mb * 1e6)) if timeline else None
        self.log = ThrottledLogger(self.get_logger())
        self._lock = threading.Lock()
        self._latest: dict[str, tuple] = {}  # node name -> (NodeHealth, receive time ns), for ~/get_health
        self.malformed_total = 0
        specs = []
        for cam, rate in zip(cameras, rates):
            expected = float(rate) or None
            for stage, name in ((Stage.CAPTURE, "camera_info"), (Stage.DETECTIONS, "detections"),
                                (Stage.TRACKS, "tracks")):
                if stage.value in stages:
                    specs.append(TopicSpec(self.resolve_topic_name(f"{cam}/{name}"), stage, cam, expected))
        site_rate = float(objects_rate) or None
        if Stage.OBJECTS.value in stages:
            specs.append(TopicSpec(self.resolve_topic_name("objects"), Stage.OBJECTS, "", site_rate))
        if Stage.ASSESSMENT.value in stages:
            specs.append(TopicSpec(self.resolve_topic_name("risk/assessment"), Stage.ASSESSMENT, "", site_rate))
        self.graph = GraphMonitor(specs, thresholds, stale_after_s=self.stale_after_s)
        self._stream_node = None
        self._streams: list[tuple] = []  # (subscription, TopicSpec)
        if specs:
            self._open_streams(specs, poll_period_s)
        self.create_subscription(NodeHealth, HEALTH_TOPIC, self._on_health, qos.HEALTH,
                                 qos_overriding_options=qos.overridable())
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10,
                                              qos_overriding_options=qos.overridable())
        self.create_service(GetHealth, "~/get_health", self._get_health)
        self.create_timer(self.publish_period_s, self._publish_diagnostics)
        self.metrics = None
        if metrics_port >= 0:
            self._start_metrics(metrics_address, metrics_port, metrics_web_config)
        self.get_logger().info(f"watching {len(specs)} topics of {len(cameras)} camera(s)")

    def _start_metrics(self, address: str, port: int, web_config_path: str) -> None:
        """The Prometheus endpoint; a web config that does not load leaves it off (never open instead of secured),
        and the monitor goes on serving diagnostics."""
        import ipaddress

        from perception_nodes.errors import ConfigError
        from perception_nodes.monitoring.metrics import MetricsServer
        from perception_nodes.monitoring.web_config import load_web_config

        try:
            web_config = load_web_config(web_config_path) if web_config_path else None
            self.metrics = MetricsServer(self.snapshot, address, port, web_config)
        except ConfigError as exc:
            self.get_logger().error(f"metrics endpoint not started: {exc}")
            return
        except OSError as exc:  # port taken
            self.get_logger().error(f"metrics endpoint {address}:{port} not started: {exc}")
            return
        secured = ", TLS" if self.metrics.scheme == "https" else ""
        secured += ", basic auth" if self.metrics.authenticated else ""
        self.get_logger().info(f"Prometheus metrics on {self.metrics.scheme}://{address}:{self.metrics.port}/metrics"
                               f"{secured}")
        try:
            loopback = ipaddress.ip_address(address).is_loopback
        except ValueError:
            loopback = address == "localhost"
        if not loopback and not self.metrics.authenticated:
            self.get_logger().warning(f"the metrics endpoint listens on {address} without authentication: anyone who "
                                      "reaches this address reads it (metrics_web_config adds TLS and a password)")

    def _open_streams(self, specs: list[TopicSpec], poll_period_s: float) -> None:
        """The watched streams are subscribed on a second node that no executor spins: a timer takes what has
        arrived every ``poll_period_s`` with each message's middleware reception time. An executor wake-up per
        message (over a hundred a second on a 4-camera site) costs rclpy far more than the reading does."""
        from rclpy.node import Node as PlainNode
        from rclpy.qos import HistoryPolicy, QoSProfile

        from perception_nodes.msg import DetectionArray, LocalizedObjectArray, RiskAssessment, TrackArray

        self._stream_node = PlainNode(f"{self.get_name()}_streams", namespace=self.get_namespace(),
                                      context=self.context, enable_rosout=False, start_parameter_services=False)
        types = {Stage.CAPTURE: (CameraInfo, qos.CAMERA_INFO_ANY), Stage.DETECTIONS: (DetectionArray, qos.RESULTS),
                 Stage.TRACKS: (TrackArray, qos.RESULTS), Stage.OBJECTS: (LocalizedObjectArray, qos.RESULTS),
                 Stage.ASSESSMENT: (RiskAssessment, qos.COMMANDS)}
        for spec in specs:
            msg_type, profile = types[spec.stage]
            # Deep enough for what arrives between two reads (a quiet period between polls loses nothing).
            depth = max(10, int((spec.expected_rate_hz or 30.0) * poll_period_s * 4) + 1)
            profile = QoSProfile(reliability=profile.reliability, durability=profile.durability,
                                 history=HistoryPolicy.KEEP_LAST, depth=depth)
            subscription = self._stream_node.create_subscription(msg_type, spec.topic, _never_called, profile,
                                                                 raw=True)
            self._streams.append((subscription, spec))
        self._use_sim_time = bool(self.get_parameter("use_sim_time").value)
        self._receipt_clock = ReceiptClock()
        self.create_timer(poll_period_s, self._poll_streams)

    def _poll_streams(self) -> None:
        now = self._now_s()
        # The middleware's reception time is system time; under /clock (a bag replay) it is carried onto the
        # replay's clock at the rate that clock runs.
        if self._use_sim_time:
            self._receipt_clock.update(time.time(), now)
        for subscription, spec in self._streams:
            while True:
                with subscription.handle:
                    taken = subscription.handle.take_message(subscription.msg_type, True)
                if taken is None:
                    break
                raw, info = taken
                received = info.get("received_timestamp")
                if not received:
                    receipt = now
                elif self._use_sim_time:
                    receipt = self._receipt_clock.to_clock(received / 1e9)
                else:
                    receipt = received / 1e9
                self._on_stream_message(spec, raw, receipt)

    def _check_stages(self, values) -> str | None:
        unknown = [v for v in values if v and v not in WATCHABLE_STAGES]
        return f"unknown stages {unknown}; known: {list(WATCHABLE_STAGES)}" if unknown else None

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    # -- inputs ----------------------------------------------------------------------------------
    def _on_stream_message(self, spec: TopicSpec, raw: bytes, receipt: float) -> None:
        try:
            if spec.stage is Stage.OBJECTS:
                # Age of the fused objects: from the newest image that observed any of them (capture -> objects).
                msg = deserialize_message(raw, self._LocalizedObjectArray)
                stamp = max((stamp_nanoseconds(o.last_seen) for o in msg.objects), default=0)
                model = ""
            else:
                stamp = header_stamp_ns(raw)
                model = strings_after_header(raw, 2)[1] if spec.stage is Stage.DETECTIONS else ""
        except Exception as exc:  # noqa: BLE001 - CdrError or a deserializer's: counted, the stream goes on
            with self._lock:
                self.malformed_total += 1
            self.log.warn(f"malformed_{spec.topic}", f"{spec.topic}: unreadable message skipped: {exc}")
            return
        with self._lock:
            self.graph.on_message(spec.topic, receipt, stamp or None, model)

    def _on_health(self, msg) -> None:
        received_ns = self.get_clock().now().nanoseconds
        report = NodeReport(msg.node_name, int(msg.level), msg.message, msg.received, msg.processed, msg.dropped,
                            msg.errors, (msg.processing_ms_p50, msg.processing_ms_p95, msg.processing_ms_p99),
                            msg.output_rate_hz, dict(zip(msg.counter_names, msg.counter_values)),
                            dict(zip(msg.value_names, msg.values)), received_ns / 1e9)
        with self._lock:
            self._latest[msg.node_name] = (msg, received_ns)
            self.graph.on_health(report)

    # -- outputs ---------------------------------------------------------------------------------
    def snapshot(self):
        """The graph as measured now (the Prometheus endpoint calls this from its own thread)."""
        with self._lock:
            self.graph.stale_after_s = self.stale_after_s
            return self.graph.snapshot(self._now_s())

    def _get_health(self, request, response):
        with self._lock:
            entries = dict(self._latest)
        if request.node_name and request.node_name not in entries:
            response.status.code = self._ServiceStatus.NOT_FOUND
            response.status.message = f"no report from {request.node_name!r}; known: {sorted(entries)}"
            return response
        now = self.get_clock().now().nanoseconds
        for name in sorted(entries):
            if request.node_name and name != request.node_name:
                continue
            msg, received = entries[name]
            if (now - received) / 1e9 > self.stale_after_s:
                msg.level = self._NodeHealth.LEVEL_ERROR
                msg.message = f"stale: no report for more than {self.stale_after_s:.1f} s"
            response.nodes.append(msg)
        response.status.code = self._ServiceStatus.OK
        return response

    def _publish_diagnostics(self) -> None:
        snap = self.snapshot()
        with self._lock:
            entries = self.graph.diagnostics(snap)
        out = DiagnosticArray()
        out.header.stamp = self.get_clock().now().to_msg()
        for entry in entries:
            status = DiagnosticStatus(name=entry.name, hardware_id=entry.hardware_id, message=entry.message)
            status.level = bytes([int(entry.level)])
            status.values = [KeyValue(key=k, value=v) for k, v in entry.values]
            out.status.append(status)
        self.diag_pub.publish(out)
        if self.timeline is not None:
            try:
                self.timeline.write(timeline_row(snap))
            except OSError as exc:
                self.log.error("timeline", f"timeline not written: {exc}")

    def destroy_node(self):
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        if self._stream_node is not None:
            self._stream_node.destroy_node()
            self._stream_node = None
        return super().destroy_node()


def _never_called(_msg) -> None:
    """The stream node is polled, never spun: its subscriptions' callbacks do not run."""


def main(args=None) -> int:
    return run_node(MonitorNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
