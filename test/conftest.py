"""Shared fixtures. Importing this file must not import rclpy (core tests stay ROS-free)."""
from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perception_nodes.rosenv import configure_dds

REPO = Path(__file__).resolve().parents[1]
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # every test, every child process
configure_dds(os.environ)  # and the DDS transports every node process of the project uses
# Type-check message fields on assignment: a wrong type then raises in Python instead of
# aborting the process inside the C conversion at publish time.
os.environ["ROS_PYTHON_CHECK_FIELDS"] = "1"
# Results that eval/bench commands save for `perception report` go to a throw-away folder, never over a
# user's runs/results.
if "PERCEPTION_RESULTS_DIR" not in os.environ:
    import tempfile

    os.environ["PERCEPTION_RESULTS_DIR"] = tempfile.mkdtemp(prefix="perception-test-results-")

# Distinct DDS domains per test, also across concurrent pytest runs on one machine.
_rng = random.Random(os.getpid() ^ int(time.time()))
_domains = itertools.cycle(_rng.sample(range(1, 200), 199))


@pytest.fixture
def domain_id() -> int:
    return next(_domains)


@pytest.fixture
def ros_context(domain_id):
    """An rclpy context on a private domain; yields (rclpy, context)."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(args=[], context=context, domain_id=domain_id)
    yield rclpy, context
    if context.ok():
        rclpy.shutdown(context=context)


@pytest.fixture
def executor(ros_context):
    """A single-threaded executor on the test's private context (node tests add their nodes to it)."""
    from rclpy.executors import SingleThreadedExecutor

    ex = SingleThreadedExecutor(context=ros_context[1])
    yield ex
    ex.shutdown(timeout_sec=1.0)


def spin_until(executor, condition, timeout_s: float) -> bool:
    """Spin ``executor`` until ``condition()`` is true or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=0.05)
    return condition()


def run_cli(*args, env=None, timeout=120, check=True) -> subprocess.CompletedProcess:
    """Run `perception ARGS` in a child process; returns the completed process."""
    full_env = dict(os.environ if env is None else env)
    full_env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    proc = subprocess.run([sys.executable, "-m", "perception_nodes.cli.main", *args], env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"perception {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def last_json(stdout: str) -> dict:
    import json

    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    assert lines, "no output"
    return json.loads(lines[-1])
