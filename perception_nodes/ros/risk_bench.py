"""`perception bench risk`, the node part: the risk node in its own process, fed 10 Hz LocalizedObjectArray
messages of N objects over DDS; its decision time from its health reports and the objects -> assessment latency
seen by the publisher."""
from __future__ import annotations

import io
import tempfile
import threading
import time

import numpy as np


def bench_risk_node(site_path: str, stream, rate_hz: float = 10.0, domain_id: int | None = None) -> dict:
    import rclpy
    import rclpy.executors

    from perception_nodes.graph import DEFAULT_PARAMS_FILE, NodeSpec, config_dir
    from perception_nodes.msg import LocalizedObject, LocalizedObjectArray, NodeHealth, RiskAssessment
    from perception_nodes.ros import qos
    from perception_nodes.ros.health import HEALTH_TOPIC
    from perception_nodes.runner import GraphRunner

    context = rclpy.context.Context()
    rclpy.init(args=[], context=context, domain_id=domain_id)
    node = rclpy.create_node("risk_bench", context=context)
    sent: dict[tuple[int, int], float] = {}
    latency_ms: list[float] = []
    health: list = []
    lock = threading.Lock()

    def on_assessment(msg):
        now = time.perf_counter()
        with lock:
            t = sent.get((msg.header.stamp.sec, msg.header.stamp.nanosec))
            if t is not None and not msg.fail_safe:
                latency_ms.append((now - t) * 1e3)

    node.create_subscription(RiskAssessment, "/risk/assessment", on_assessment, qos.COMMANDS)
    node.create_subscription(NodeHealth, HEALTH_TOPIC,
                             lambda m: health.append(m) if m.node_name == "/risk" else None, qos.HEALTH)
    pub = node.create_publisher(LocalizedObjectArray, "/objects", qos.RESULTS)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    folder = tempfile.mkdtemp(prefix="perception-risk-bench-")
    spec = NodeSpec("risk", "risk", "/", [str(config_dir() / DEFAULT_PARAMS_FILE)],
                    {"site": site_path, "decision_log": f"{folder}/decisions", "startup_grace_s": 600.0})
    messages = []
    for index, snapshot in enumerate(stream):
        msg = LocalizedObjectArray()
        msg.header.frame_id = "map"
        stamp = 1000.0 + index / rate_hz
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int(round((stamp % 1) * 1e9))
        for o in snapshot:
            lo = LocalizedObject(global_id=o.global_id, state=LocalizedObject.STATE_CONFIRMED, class_name=o.class_name,
                                 confidence=0.9, heading_known=o.heading is not None,
                                 heading=float(o.heading or 0.0))
            lo.position.x, lo.position.y = o.xy
            lo.velocity.x, lo.velocity.y = o.velocity
            lo.extent.x, lo.extent.y = o.length, o.width
            lo.position_covariance = [float(o.position_cov[0][0]), 0.0, 0.0, 0.0, float(o.position_cov[1][1]), 0.0,
                                      0.0, 0.0, 0.01]
            lo.velocity_covariance = [float(o.velocity_cov[0][0]), 0.0, 0.0, 0.0, float(o.velocity_cov[1][1]), 0.0,
                                      0.0, 0.0, 0.0]
            msg.objects.append(lo)
        messages.append(msg)
    with GraphRunner([spec], domain_id=domain_id, output=io.StringIO()) as runner:
        deadline = time.monotonic() + 60.0
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # its subscription to the assessment topic matches ours
        period = 1.0 / rate_hz
        started = time.perf_counter()
        for index, msg in enumerate(messages):
            due = started + index * period
            time.sleep(max(0.0, due - time.perf_counter()))
            with lock:
                sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = time.perf_counter()
            pub.publish(msg)
        time.sleep(2.5)  # the last assessments and a health report after them
        alive = runner.wait(0.1)
    executor.shutdown(timeout_sec=1.0)
    spin.join(timeout=5.0)
    node.destroy_node()
    rclpy.shutdown(context=context)
    last = health[-1] if health else None
    lat = np.asarray(latency_ms) if latency_ms else np.zeros(1)
    return {"messages": len(messages), "assessments_received": len(latency_ms), "node_alive": bool(alive),
            "objects_to_assessment_ms_p50": round(float(np.percentile(lat, 50)), 2),
            "objects_to_assessment_ms_p99": round(float(np.percentile(lat, 99)), 2),
            "node_processing_ms_p50": round(float(last.processing_ms_p50), 2) if last else None,
            "node_processing_ms_p99": round(float(last.processing_ms_p99), 2) if last else None}
