"""Where the package's data folders are: the source checkout or the colcon install share."""
from __future__ import annotations

import os
from pathlib import Path

from perception_nodes.errors import ConfigError

PACKAGE = "perception_nodes"


def package_path(relative: str) -> Path:
    """``relative`` (e.g. "config/scenes", "urdf", "msg") in the source tree or share/perception_nodes.

    The source tree wins when this module runs from a checkout (package.xml
    beside the package), the install share otherwise. PERCEPTION_SHARE_DIR
    overrides both.
    """
    override = os.environ.get("PERCEPTION_SHARE_DIR")
    roots = [Path(override)] if override else []
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "package.xml").is_file():
            roots.append(parent)
        roots.append(parent / "share" / PACKAGE)
    for root in roots:
        candidate = root / relative
        if candidate.exists():
            return candidate
    raise ConfigError(f"cannot find {relative} of {PACKAGE} (looked beside {here}); set PERCEPTION_SHARE_DIR")
