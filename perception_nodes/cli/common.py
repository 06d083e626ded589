"""Shared pieces of the `perception` subcommands."""
from __future__ import annotations

import json
import os
import sys

from perception_nodes.rosenv import configure_dds


_emitted: list[dict] = []  # what this process printed as its result (saved by `perception` for the report)


def emit(result: dict) -> None:
    """Print the command's result as one JSON object on the last stdout line."""
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=True, default=float), flush=True)
    _emitted.append(result)


def last_emitted() -> dict | None:
    return _emitted[-1] if _emitted else None


def add_scene_args(parser) -> None:
    parser.add_argument("--scene", default="default", help="scene name under config/scenes/ or a YAML path (default: default)")
    parser.add_argument("--seed", type=int, default=None, help="scene seed (default: the scene file's)")


def ros_init(domain_id: int | None = None):
    """rclpy.init with discovery pinned to loopback; returns the context."""
    configure_dds(os.environ)
    if domain_id is not None:
        os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    import rclpy

    rclpy.init(args=[])
    return rclpy


def resolve_detector_model(args, registry=None):
    """(entry, path) of ``args.model``, or of the configured detector model when none was named.

    Sets ``args.model_key``: '' for the configured model, else its name@version, so that saved results
    (`perception report`) keep the configured model's figures apart from other models'."""
    from perception_nodes.detection.registry import ModelError, ModelRegistry
    from perception_nodes.graph import configured_detector_model

    registry = registry or ModelRegistry()
    configured = configured_detector_model()
    entry, path = registry.verified_path(args.model or configured)
    try:
        configured_ref = registry.resolve(configured).ref
    except ModelError:
        configured_ref = None
    args.model_key = "" if entry.ref == configured_ref else entry.ref
    return entry, path
