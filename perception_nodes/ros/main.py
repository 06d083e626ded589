"""The one ``main()`` body every node executable uses."""
from __future__ import annotations

import gc
import os
import sys
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node

from perception_nodes.heap import release_free_heap, trim_supported
from perception_nodes.rosenv import configure_dds

# Start-up (a world's textures, a model's compilation) frees most of what it allocates, and glibc keeps freed
# pages resident; trimming now and then gives them back (perception_nodes/heap.py). The first trim comes one
# period after start, when the nodes' expensive set-up (often on their own threads) is usually over.
HEAP_TRIM_PERIOD_S = 10.0


def run_node(factory: Callable[[], Node], args=None, threads: int = 1) -> int:
    """Init rclpy, build the node, spin until shutdown; exit code 0 on a clean stop.

    One executor thread by default: callbacks here are short (heavy work runs on each node's own
    worker thread), and rclpy's MultiThreadedExecutor spent about half a core re-polling while a
    frame was in flight, which on 2 cores slowed the detector's torch inference enough to raise
    its end-to-end latency from 89 ms (p50; p99 95 ms) to 137 ms (p99 2.2 s) in
    `perception bench detector` (yolov8n, 640x480).

    A node that fails while starting (bad parameters, missing files) logs the
    reason and exits 1, so the runner and ``ros2 launch`` report it.
    """
    return run_nodes([factory], args, threads)


def run_nodes(factories: list[Callable[[], Node]], args=None, threads: int = 1) -> int:
    """``run_node`` for several nodes in one process and one executor (nodes/container.py): all are built, then
    spun together; if one fails to start, the process exits 1 with the reason and every node is closed."""
    configure_dds(os.environ)
    rclpy.init(args=args if args is not None else sys.argv)
    nodes: list[Node] = []
    code = 0
    try:
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        for factory in factories:
            node = factory()
            nodes.append(node)
            executor.add_node(node)
        if nodes and trim_supported():
            nodes[0].create_timer(HEAP_TRIM_PERIOD_S, release_free_heap)  # one per process: the heap is shared
        # Python's full (generation 2) collection walks every object the process holds -- modules, models, the
        # site map -- and a callback that triggers one stalls for tens of milliseconds (the risk node's decision
        # p99 was such a pause). What exists once the nodes are built lives as long as the process: freeze it, so
        # full collections walk only what the callbacks allocate.
        gc.freeze()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # noqa: BLE001 - report any start-up failure with its reason
        name = nodes[-1].get_name() if nodes else "node"
        print(f"[{name}] fatal: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        for node in nodes:
            close = getattr(node, "close", None)
            if close:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code
