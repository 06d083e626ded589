"""Periodic NodeHealth reports for a node's counters (the monitor aggregates them)."""
from __future__ import annotations

import os
from typing import Callable

from rclpy.node import Node

from perception_nodes.ros import qos
from perception_nodes.stats import NodeCounters

HEALTH_TOPIC = "/perception/health"


class HealthReporter:
    """Publishes a node's :class:`NodeCounters` as NodeHealth on ``/perception/health``.

    ``status`` (optional) returns ``(level, message)`` for the report, e.g. a
    camera that lost its device reports LEVEL_WARN with the reason.
    """

    def __init__(self, node: Node, counters: NodeCounters, period_s: float = 1.0,
                 status: Callable[[], tuple[int, str]] | None = None, topic: str = HEALTH_TOPIC):
        from perception_nodes.msg import NodeHealth

        self._node = node
        self._counters = counters
        self._status = status
        self._msg_type = NodeHealth
        self._publisher = node.create_publisher(NodeHealth, topic, qos.HEALTH, qos_overriding_options=qos.overridable())
        # Restarted by the runner (`perception up`): the restart count rides along in every report.
        respawns = int(os.environ.get("PERCEPTION_RESPAWNS", "0") or 0)
        if respawns:
            counters.set("respawns", respawns)
        self._timer = node.create_timer(period_s, self.publish)

    def build(self):
        msg = self._msg_type()
        snap = self._counters.snapshot()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.node_name = self._node.get_fully_qualified_name()
        msg.level, msg.message = self._status() if self._status else (self._msg_type.LEVEL_OK, "")
        msg.received, msg.processed, msg.dropped, msg.errors = snap.received, snap.processed, snap.dropped, snap.errors
        msg.processing_ms_p50, msg.processing_ms_p95, msg.processing_ms_p99 = (
            snap.processing_ms_p50, snap.processing_ms_p95, snap.processing_ms_p99)
        msg.output_rate_hz = snap.output_rate_hz
        msg.counter_names = list(snap.extra)
        msg.counter_values = [int(v) for v in snap.extra.values()]
        msg.value_names = list(snap.values)
        msg.values = [float(v) for v in snap.values.values()]
        return msg

    def publish(self) -> None:
        self._publisher.publish(self.build())
