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
import sys

from perception_nodes.errors import ConfigError
from perception_nodes.fileio import read_yaml_mapping
from perception_nodes.ros.main import run_nodes


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
    try:
        members = read_yaml_mapping(args.members, "container members").get("members") or []
        if not members:
            raise ConfigError(f"{args.members} lists no members")
        factories = [lambda m=member: node_class(m["executable"])(cli_args=member_arguments(m)) for member in members]
    except ConfigError as exc:
        print(f"[container] fatal: {exc}", file=sys.stderr, flush=True)
        return 1
    names = [f"{(m.get('namespace') or '').rstrip('/')}/{m['name']}" for m in members]
    print(f"[container] running {names}", flush=True)
    return run_nodes(factories, [sys.argv[0], *ros_args])


if __name__ == "__main__":
    raise SystemExit(main())
