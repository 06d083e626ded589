"""The one ``main()`` body every node executable uses."""
from __future__ import annotations

import os
import sys
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from perception_nodes.rosenv import configure_dds


def run_node(factory: Callable[[], Node], args=None, threads: int = 2) -> int:
    """Init rclpy, build the node, spin until shutdown; exit code 0 on a clean stop.

    A node that fails while starting (bad parameters, missing files) logs the
    reason and exits 1, so the runner and ``ros2 launch`` report it.
    """
    configure_dds(os.environ)
    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    code = 0
    try:
        node = factory()
        executor = MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # noqa: BLE001 - report any start-up failure with its reason
        name = node.get_name() if node else "node"
        print(f"[{name}] fatal: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code
