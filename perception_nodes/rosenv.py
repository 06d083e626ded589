"""Environment rules every process of this project follows (pure Python)."""
from __future__ import annotations

import os
from typing import MutableMapping


def pin_discovery_to_localhost(env: MutableMapping[str, str] = os.environ) -> MutableMapping[str, str]:
    """Keep DDS discovery on loopback.

    Without ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, Fast DDS multicasts
    discovery on every interface. A user may still set SUBNET explicitly; an
    unset or empty value becomes LOCALHOST.
    """
    if not env.get("ROS_AUTOMATIC_DISCOVERY_RANGE"):
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return env


def child_environment(domain_id: int | None = None, base: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a child process: discovery pinned, optional domain id."""
    env = dict(os.environ if base is None else base)
    pin_discovery_to_localhost(env)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(int(domain_id))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
