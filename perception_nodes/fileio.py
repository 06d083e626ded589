"""Reading config files with clear errors, and writing files atomically (pure Python)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from perception_nodes.errors import ConfigError


def read_yaml_mapping(path: str | os.PathLike, what: str = "file") -> dict:
    """A YAML file that must hold a mapping; ConfigError names the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write via a temp file in the same folder + rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets the mode open() would give
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_yaml(path: str | os.PathLike, data: Any, header: str = "") -> Path:
    return atomic_write_text(path, header + yaml.safe_dump(data, sort_keys=False))
