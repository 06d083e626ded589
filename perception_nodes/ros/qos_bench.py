"""`perception bench qos`: which image QoS combinations connect between processes, and what each delivers.

A camera process publishes 640x480 frames with one image QoS; this process subscribes with each of the two
image profiles at once. The camera's own health counter says how many frames it published, so delivery is
measured against what was sent, whatever this machine's render rate.
"""
from __future__ import annotations

import io
import threading
import time

PUBLISHER_CHOICES = ("reliable", "sensor_data")


def bench_image_qos(duration_s: float = 8.0, scene: str = "overlap2", camera: str = "cam_east",
                    domain_id: int | None = None, log=print) -> dict:
    import rclpy
    import rclpy.executors
    from sensor_msgs.msg import Image

    from perception_nodes.graph import DEFAULT_PARAMS_FILE, NodeSpec, config_dir
    from perception_nodes.msg import NodeHealth
    from perception_nodes.ros import qos
    from perception_nodes.ros.health import HEALTH_TOPIC
    from perception_nodes.runner import GraphRunner

    combos = {}
    for publisher in PUBLISHER_CHOICES:
        context = rclpy.context.Context()
        rclpy.init(args=[], context=context, domain_id=domain_id)
        node = rclpy.create_node("qos_bench", context=context)
        received = {sub: 0 for sub in qos.IMAGE_QOS_CHOICES}
        published = []  # the camera's `processed` counter at each health report
        lock = threading.Lock()

        def on_image(sub, _msg):
            with lock:
                received[sub] += 1

        def on_health(msg):
            if msg.node_name == f"/{camera}/camera":
                with lock:
                    published.append((msg.processed, dict(received)))

        for sub in qos.IMAGE_QOS_CHOICES:
            node.create_subscription(Image, f"/{camera}/image_raw", lambda m, s=sub: on_image(s, m),
                                     qos.image_profile(sub))
        node.create_subscription(NodeHealth, HEALTH_TOPIC, on_health, qos.HEALTH)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        spin = threading.Thread(target=executor.spin, daemon=True)
        spin.start()
        spec = NodeSpec("camera", "camera", f"/{camera}", [str(config_dir() / DEFAULT_PARAMS_FILE)],
                        {"source_type": "synthetic", "scene": scene, "camera_id": camera, "image_qos": publisher,
                         "publish_ground_truth": False})
        runner = GraphRunner([spec], domain_id=domain_id, output=io.StringIO()).start()
        try:
            deadline = time.monotonic() + 60.0
            while time.monotonic() < deadline and len(published) < 2:  # started and matched
                time.sleep(0.1)
            time.sleep(duration_s)
        finally:
            runner.stop()
            executor.shutdown(timeout_sec=1.0)
            spin.join(timeout=5.0)
            node.destroy_node()
            rclpy.shutdown(context=context)
        with lock:
            (first_pub, first_recv), (last_pub, last_recv) = published[1], published[-1]
        sent = last_pub - first_pub
        for sub in qos.IMAGE_QOS_CHOICES:
            got = last_recv[sub] - first_recv[sub]
            combos[f"pub_{publisher}-sub_{sub}"] = {"published": sent, "received": got,
                                                    "delivered_ratio": round(got / sent, 3) if sent else 0.0,
                                                    "connected": bool(last_recv[sub])}
            log(f"[bench] publisher {publisher:11s} subscriber {sub:11s}: {got} of {sent} frames "
                f"({combos[f'pub_{publisher}-sub_{sub}']['delivered_ratio']:.0%})")
    baseline = combos["pub_reliable-sub_reliable"]["delivered_ratio"]
    return {"combinations": combos, "duration_s": duration_s, "scene": scene, "camera": camera,
            "sensor_data_vs_reliable_ratio": (combos["pub_sensor_data-sub_sensor_data"]["delivered_ratio"] / baseline
                                              if baseline else None)}
