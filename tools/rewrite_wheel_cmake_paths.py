"""Point the ROS wheels' exported CMake files at this interpreter's headers.

The PyPI ROS wheels were built in a manylinux container; their exported CMake
targets name that container's Python and NumPy include directories, which do
not exist here, so the first ``find_package(rosidl_default_generators)`` fails.
This rewrites those strings in ``<venv>/share/**/*.cmake`` in place (atomically,
per file). Running it again changes nothing.
"""
from __future__ import annotations

import os
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy

BUILD_MACHINE_PATHS = {
    "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include": numpy.get_include(),
    "/opt/python/cp311-cp311/include/python3.11": sysconfig.get_paths()["include"],
}


def rewrite(prefix: Path) -> int:
    changed = 0
    for path in sorted((prefix / "share").rglob("*.cmake")):
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        new = text
        for old, replacement in BUILD_MACHINE_PATHS.items():
            new = new.replace(old, replacement)
        if new != text:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".rewrite-")
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
                handle.write(new)
            os.chmod(tmp, path.stat().st_mode)
            os.replace(tmp, path)
            changed += 1
    return changed


def main() -> int:
    prefix = Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix)
    if not (prefix / "share").is_dir():
        print(f"rewrite_wheel_cmake_paths: {prefix}/share does not exist", file=sys.stderr)
        return 1
    print(f"rewrote {rewrite(prefix)} CMake files under {prefix}/share")
    return 0


if __name__ == "__main__":
    sys.exit(main())
