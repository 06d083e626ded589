"""Exit 0 when a ROS package is registered in the ament index of AMENT_PREFIX_PATH.

Usage: find_ros_package.py NAME [--exclude PREFIX ...]
Prefixes under an --exclude path are not searched (our own install space, so that
a compat package built earlier does not count as "the real one").
"""
import argparse
import os
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--exclude", action="append", default=[])
    args = parser.parse_args()
    excluded = [os.path.realpath(e) for e in args.exclude]
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        real = os.path.realpath(prefix)
        if any(real == e or real.startswith(e + os.sep) for e in excluded):
            continue
        if os.path.isfile(os.path.join(prefix, "share", "ament_index", "resource_index", "packages", args.name)):
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
