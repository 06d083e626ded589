"""Runs a node graph as one process per node (pure Python, no rclpy).

The stand-in for ``ros2 launch`` where launch is not installed: each
:class:`~perception_nodes.graph.NodeSpec` becomes
``python -m perception_nodes.nodes.<executable> --ros-args -r __node:=NAME
-r __ns:=NS --params-file FILE ... -r from:=to``. Output lines are prefixed with
the node's name, SIGINT/SIGTERM are forwarded, and a node that exits on its
own is reported (with its exit code and last lines) instead of being missed.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, TextIO

import yaml

from perception_nodes.graph import NodeSpec
from perception_nodes.rosenv import child_environment


@dataclass
class NodeProcess:
    spec: NodeSpec
    process: subprocess.Popen
    tail: deque = field(default_factory=lambda: deque(maxlen=20))
    reader: threading.Thread | None = None
    reported: bool = False


class NodeFailure(Exception):
    def __init__(self, node: str, returncode: int, tail: list[str]):
        self.node, self.returncode, self.tail = node, returncode, tail
        super().__init__(f"node {node} exited with code {returncode}" + (f": {tail[-1]}" if tail else ""))


class GraphRunner:
    """Start, watch and stop the processes of a graph.

    Use as a context manager; ``wait(timeout)`` returns when the timeout passes,
    a stop was requested, or (``stop_on_failure``) a node died.
    """

    def __init__(self, specs: list[NodeSpec], *, domain_id: int | None = None, use_sim_time: bool = False,
                 output: TextIO | None = None, extra_args: list[str] | None = None,
                 on_line: Callable[[str, str], None] | None = None):
        self.specs = specs
        self.domain_id = domain_id
        self.use_sim_time = use_sim_time
        self.output = output if output is not None else sys.stdout
        self.extra_args = extra_args or []
        self.on_line = on_line
        self.processes: list[NodeProcess] = []
        self.failures: list[NodeFailure] = []
        self._stop = threading.Event()
        self._print_lock = threading.Lock()
        self._tmpdir = tempfile.TemporaryDirectory(prefix="perception-graph-")

    # -- commands -----------------------------------------------------------------------
    def _overrides_file(self, index: int, spec: NodeSpec) -> str | None:
        parameters = dict(spec.parameters)
        if self.use_sim_time:
            parameters["use_sim_time"] = True
        if not parameters:
            return None
        path = os.path.join(self._tmpdir.name, f"{index:02d}_{spec.name}.yaml")
        with open(path, "w") as handle:
            yaml.safe_dump({spec.fully_qualified_name: {"ros__parameters": parameters}}, handle)
        return path

    def command_for(self, index: int, spec: NodeSpec) -> list[str]:
        cmd = [sys.executable, "-m", f"perception_nodes.nodes.{spec.executable}", "--ros-args",
               "-r", f"__node:={spec.name}", "-r", f"__ns:={spec.namespace}"]
        for params_file in spec.params_files:
            cmd += ["--params-file", params_file]
        overrides = self._overrides_file(index, spec)
        if overrides:
            cmd += ["--params-file", overrides]
        for source, target in spec.remappings:
            cmd += ["-r", f"{source}:={target}"]
        return cmd + self.extra_args

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> "GraphRunner":
        env = child_environment(self.domain_id)
        for index, spec in enumerate(self.specs):
            process = subprocess.Popen(self.command_for(index, spec), env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, bufsize=1,
                                       start_new_session=True)  # we forward signals ourselves
            entry = NodeProcess(spec, process)
            entry.reader = threading.Thread(target=self._pump, args=(entry,), daemon=True)
            entry.reader.start()
            self.processes.append(entry)
        return self

    def _pump(self, entry: NodeProcess) -> None:
        prefix = f"[{entry.spec.fully_qualified_name.lstrip('/')}]"
        for line in entry.process.stdout:
            line = line.rstrip("\n")
            entry.tail.append(line)
            if self.on_line:
                self.on_line(entry.spec.fully_qualified_name, line)
            with self._print_lock:
                print(f"{prefix} {line}", file=self.output, flush=True)

    def check(self) -> list[NodeFailure]:
        """Newly exited nodes (any exit while the graph should run is a failure)."""
        new = []
        for entry in self.processes:
            code = entry.process.poll()
            if code is not None and not entry.reported and not self._stop.is_set():
                entry.reported = True
                if entry.reader:
                    entry.reader.join(timeout=1.0)
                failure = NodeFailure(entry.spec.fully_qualified_name, code, list(entry.tail))
                with self._print_lock:
                    print(f"[runner] {failure}", file=self.output, flush=True)
                self.failures.append(failure)
                new.append(failure)
        return new

    def wait(self, timeout: float | None = None, stop_on_failure: bool = True) -> bool:
        """Block until timeout, stop(), or a failure. True if every node is still running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            if self.check() and stop_on_failure:
                return False
            if all(e.process.poll() is not None for e in self.processes):
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return True
            self._stop.wait(0.1)
        return not self.failures

    def request_stop(self) -> None:
        self._stop.set()

    def send_signal(self, signum: int) -> None:
        for entry in self.processes:
            if entry.process.poll() is None:
                try:
                    os.killpg(entry.process.pid, signum)
                except ProcessLookupError:
                    pass

    def stop(self, timeout: float = 5.0) -> dict[str, int]:
        """SIGINT every node, then SIGTERM, then SIGKILL; returns exit codes by node."""
        self.check()
        self._stop.set()
        for signum, grace in ((signal.SIGINT, timeout), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            self.send_signal(signum)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(e.process.poll() is None for e in self.processes):
                time.sleep(0.05)
            if all(e.process.poll() is not None for e in self.processes):
                break
        for entry in self.processes:
            if entry.reader:
                entry.reader.join(timeout=1.0)
        self._tmpdir.cleanup()
        return {e.spec.fully_qualified_name: e.process.returncode for e in self.processes}

    def __enter__(self) -> "GraphRunner":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def forward_signals(runner: GraphRunner) -> None:
    """Install SIGINT/SIGTERM handlers that stop the runner (call from the main thread)."""
    def handler(signum, _frame):
        runner.request_stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
