"""Environment rules every process of this project follows (pure Python)."""
from __future__ import annotations

import os
from typing import MutableMapping

# Fast DDS builtin transports for this project's processes. LARGE_DATA keeps UDP for discovery only and
# carries data over shared memory (same host) or TCP: measured with `perception bench detector`
# (4 cameras x 640x480 bgr8 into one detector node, 2 cores), DEFAULT (UDP + a 512 KiB SHM segment)
# delivered 4.5 frames/s where LARGE_DATA delivered 19.2, because bursts of 0.9 MB images overflow
# the default segment and UDP recovers lost fragments only at the next heartbeat. Cross-host
# deployments need the same setting on every machine (DEFAULT peers have no TCP); set
# FASTDDS_BUILTIN_TRANSPORTS yourself to override it.
DDS_BUILTIN_TRANSPORTS = "LARGE_DATA"


def configure_dds(env: MutableMapping[str, str] = os.environ) -> MutableMapping[str, str]:
    """Keep DDS discovery on loopback and choose the project's transports, unless the user chose.

    Without ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, Fast DDS multicasts
    discovery on every interface. A user may still set SUBNET explicitly; an
    unset or empty value becomes LOCALHOST. FASTDDS_BUILTIN_TRANSPORTS
    defaults to ``DDS_BUILTIN_TRANSPORTS``.
    """
    if not env.get("ROS_AUTOMATIC_DISCOVERY_RANGE"):
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if not env.get("FASTDDS_BUILTIN_TRANSPORTS"):
        env["FASTDDS_BUILTIN_TRANSPORTS"] = DDS_BUILTIN_TRANSPORTS
    return env


def child_environment(domain_id: int | None = None, base: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a child process: discovery pinned, transports chosen, optional domain id."""
    env = dict(os.environ if base is None else base)
    configure_dds(env)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(int(domain_id))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
