"""Container: several nodes of this package in one process, one executor (as ROS 2 component containers do).

Each Python node process costs about 130 MB of interpreter, rclpy and libraries; the per-camera trackers are
small and alike, so a site can run them all in one process (``perception up --group-trackers``, the launch
file's ``group_trackers:=true``). Every member keeps its own name, namespace, parameters, remappings, health
reports and topics, exactly as in its own process.

    python -m perception_nodes.nodes.container --members members.yaml

``members.yaml``: ``members:`` a list of {executable, name, namespace, params_files, remappings}, where ``executable`` is a
module of perception_nodes.nodes. A member that fails to start stops the container with the reason (the runner
then restarts it); a member's callback error is the member's own (nodes log and continue).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys

from perception_nodes.errors import ConfigError
from perception_nodes.fileio import read_yaml_mapping
from perception_nodes.rosenv import configure_dds


def node_class(executable: str):
    """The rclpy Node subclass a node module defines (its main() runs it)."""
    from rclpy.node import Node

    try:
        module = importlib.import_module(f"perception_nodes.nodes.{executable}")
    except ImportError as exc:
        raise ConfigError(f"no node executable {executable!r}: {exc}") from None
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, Node) and c.__module__ == module.__name__]
    if len(classes) != 1:
        raise ConfigError(f"perception_nodes.nodes.{executable} defines {len(classes)} node classes, expected one")
    return classes[0]


def member_arguments(member: dict) -> list[str]:
    """The node-scoped ROS arguments of one member: its name, namespace, parameter files and remappings."""
    args = ["--ros-args", "-r", f"__node:={member['name']}", "-r", f"__ns:={member.get('namespace') or '/'}"]
    for params_file in member.get("params_files") or []:
        args += ["--params-file", str(params_file)]
    for source, target in member.get("remappings") or []:
        args += ["-r", f"{source}:={target}"]
    return args


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="run several perception_nodes nodes in one process")
    parser.add_argument("--members", required=True, help="YAML list of the member nodes")
    args, ros_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    configure_dds(os.environ)
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    try:
        members = read_yaml_mapping(args.members, "container members").get("members") or []
    except ConfigError as exc:
        print(f"[container] fatal: {exc}", file=sys.stderr, flush=True)
        return 1
    if not members:
        print(f"[container] fatal: {args.members} lists no members", file=sys.stderr, flush=True)
        return 1
    rclpy.init(args=[sys.argv[0], *ros_args])
    nodes, code = [], 0
    try:
        executor = SingleThreadedExecutor()
        for member in members:
            node = node_class(member["executable"])(cli_args=member_arguments(member))
            nodes.append(node)
            executor.add_node(node)
        print(f"[container] running {[n.get_fully_qualified_name() for n in nodes]}", flush=True)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # noqa: BLE001 - a member that cannot start: report it, the runner restarts us
        print(f"[container] fatal: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
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


if __name__ == "__main__":
    raise SystemExit(main())
