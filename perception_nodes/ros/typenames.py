"""Resolve ROS type names ('pkg/msg/Type') to rclpy message classes."""
from __future__ import annotations

import importlib

from perception_nodes.errors import BagError


def message_class(type_name: str):
    parts = type_name.split("/")
    if len(parts) != 3 or parts[1] not in ("msg", "srv", "action"):
        raise BagError(f"malformed type name {type_name!r} (expected pkg/msg/Type)")
    try:
        module = importlib.import_module(f"{parts[0]}.{parts[1]}")
        return getattr(module, parts[2])
    except (ImportError, AttributeError):
        raise BagError(f"message type {type_name} is not available in this environment") from None
