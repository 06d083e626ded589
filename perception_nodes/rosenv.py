"""Environment rules every process of this project follows (pure Python)."""
from __future__ import annotations

import os
from typing import MutableMapping

from perception_nodes.errors import ConfigError
from perception_nodes.paths import package_path

# Fast DDS XML defaults (config/dds/fastdds_profiles.xml): writer heartbeats every 50 ms instead of
# 3 s. A lost 640x480 frame otherwise blocks the reliable image stream behind it for up to 3 s:
# `perception bench detector --verbose` (4 cameras into one detector node, 2 cores) showed repeated
# 2-3 s stalls without it (4.5-19 frames/s across runs), none with it (24.6-25.4 frames/s).
# Set FASTDDS_DEFAULT_PROFILES_FILE to use yours.
DDS_PROFILES = "config/dds/fastdds_profiles.xml"


def configure_dds(env: MutableMapping[str, str] = os.environ) -> MutableMapping[str, str]:
    """Keep DDS discovery on loopback and load the project's Fast DDS profile, unless the user chose.

    Without ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, Fast DDS multicasts
    discovery on every interface. A user may still set SUBNET explicitly; an
    unset or empty value becomes LOCALHOST. FASTDDS_DEFAULT_PROFILES_FILE
    defaults to the package's ``DDS_PROFILES``.
    """
    if not env.get("ROS_AUTOMATIC_DISCOVERY_RANGE"):
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if not env.get("FASTDDS_DEFAULT_PROFILES_FILE"):
        try:
            env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(package_path(DDS_PROFILES))
        except ConfigError:
            pass  # an incomplete install: Fast DDS's own defaults still work, only slower to recover
    return env


def child_environment(domain_id: int | None = None, base: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a child process: discovery pinned, transports chosen, optional domain id."""
    env = dict(os.environ if base is None else base)
    configure_dds(env)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(int(domain_id))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
