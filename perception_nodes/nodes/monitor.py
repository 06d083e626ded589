"""Monitor node: collects every node's NodeHealth and reports the whole graph.

Subscribes  /perception/health             perception_nodes/NodeHealth
Publishes   /diagnostics                   diagnostic_msgs/DiagnosticArray (1 Hz, for rqt_robot_monitor)
Service     ~/get_health                   perception_nodes/GetHealth

A node that has not reported for ``stale_after_s`` is reported as stale
(DiagnosticStatus.STALE) until it reports again.
"""
from __future__ import annotations

import threading

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from perception_nodes.ros import qos
from perception_nodes.ros.health import HEALTH_TOPIC
from perception_nodes.ros.main import run_node
from perception_nodes.ros.params import ParameterSet


class MonitorNode(Node):
    def __init__(self, **kwargs):
        super().__init__("monitor", **kwargs)
        from perception_nodes.msg import NodeHealth, ServiceStatus
        from perception_nodes.srv import GetHealth

        self._NodeHealth, self._ServiceStatus = NodeHealth, ServiceStatus
        params = ParameterSet(self)
        self.stale_after_s = params.declare("stale_after_s", 3.0, "A node silent for this long is reported stale.",
                                            minimum=0.1, maximum=3600.0)
        self.publish_period_s = params.declare("publish_period_s", 1.0, "Period of /diagnostics.",
                                               minimum=0.05, maximum=60.0, read_only=True)
        params.on_change(lambda changed: setattr(self, "stale_after_s", changed.get("stale_after_s", self.stale_after_s)))
        self._lock = threading.Lock()
        self._latest: dict[str, tuple] = {}  # node name -> (NodeHealth, receive time ns)
        self.create_subscription(NodeHealth, HEALTH_TOPIC, self._on_health, qos.HEALTH,
                                 qos_overriding_options=qos.overridable())
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10, qos_overriding_options=qos.overridable())
        self.create_service(GetHealth, "~/get_health", self._get_health)
        self.create_timer(self.publish_period_s, self._publish_diagnostics)

    def _on_health(self, msg) -> None:
        with self._lock:
            self._latest[msg.node_name] = (msg, self.get_clock().now().nanoseconds)

    def _is_stale(self, received_ns: int) -> bool:
        return (self.get_clock().now().nanoseconds - received_ns) / 1e9 > self.stale_after_s

    def _get_health(self, request, response):
        with self._lock:
            entries = dict(self._latest)
        if request.node_name and request.node_name not in entries:
            response.status.code = self._ServiceStatus.NOT_FOUND
            response.status.message = f"no report from {request.node_name!r}; known: {sorted(entries)}"
            return response
        for name in sorted(entries):
            if request.node_name and name != request.node_name:
                continue
            msg, received = entries[name]
            if self._is_stale(received):
                msg.level = self._NodeHealth.LEVEL_ERROR
                msg.message = f"stale: no report for more than {self.stale_after_s:.1f} s"
            response.nodes.append(msg)
        response.status.code = self._ServiceStatus.OK
        return response

    def _publish_diagnostics(self) -> None:
        out = DiagnosticArray()
        out.header.stamp = self.get_clock().now().to_msg()
        with self._lock:
            entries = dict(self._latest)
        for name, (msg, received) in sorted(entries.items()):
            status = DiagnosticStatus(name=f"perception: {name}", hardware_id=name)
            if self._is_stale(received):
                status.level, status.message = DiagnosticStatus.STALE, "no report"
            else:
                status.level = bytes([min(int(msg.level), 2)])
                status.message = msg.message or "ok"
            values = {"received": msg.received, "processed": msg.processed, "dropped": msg.dropped,
                      "errors": msg.errors, "processing_ms_p50": f"{msg.processing_ms_p50:.2f}",
                      "processing_ms_p95": f"{msg.processing_ms_p95:.2f}", "output_rate_hz": f"{msg.output_rate_hz:.2f}"}
            values.update(zip(msg.counter_names, msg.counter_values))
            status.values = [KeyValue(key=str(k), value=str(v)) for k, v in values.items()]
            out.status.append(status)
        self.diag_pub.publish(out)


def main(args=None) -> int:
    return run_node(MonitorNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
