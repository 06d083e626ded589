"""Runs a node graph as one process per node (pure Python, no rclpy).

The stand-in for ``ros2 launch`` where launch is not installed: each
:class:`~perception_nodes.graph.NodeSpec` becomes
``python -m perception_nodes.nodes.<executable> --ros-args -r __node:=NAME
-r __ns:=NS --params-file FILE ... -r from:=to``. Output lines are prefixed with
the node's name, SIGINT/SIGTERM are forwarded, and a node that exits on its
own is reported (with its exit code and last lines) instead of being missed.
With a :class:`RespawnPolicy` (``perception up`` and ``perception demo`` use
one) such a node is restarted with exponential backoff, as launch_ros does with
``respawn``; the restarted process reports its restart count in its health
(``respawns``), and a node that keeps dying is given up on and reported while
the rest of the site runs on.
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

from perception_nodes.graph import NodeSpec, write_members_file, write_overrides
from perception_nodes.rosenv import child_environment


RESPAWN_ENV = "PERCEPTION_RESPAWNS"  # how often the runner restarted this node (read by ros.health)


@dataclass(frozen=True)
class RespawnPolicy:
    """Restart a node that exits while the graph runs: after ``initial_delay_s``, doubled per restart up to
    ``max_delay_s`` (reset once a run lasted ``healthy_after_s``); after ``max_restarts`` restarts within
    ``window_s`` the node is given up on."""

    initial_delay_s: float = 1.0
    max_delay_s: float = 30.0
    max_restarts: int = 5
    window_s: float = 120.0
    healthy_after_s: float = 30.0

    def delay(self, consecutive: int) -> float:
        return min(self.initial_delay_s * (2.0 ** max(0, consecutive - 1)), self.max_delay_s)


@dataclass
class NodeProcess:
    spec: NodeSpec
    process: subprocess.Popen
    tail: deque = field(default_factory=lambda: deque(maxlen=20))
    reader: threading.Thread | None = None
    reported: bool = False
    index: int = 0
    started: float = field(default_factory=time.monotonic)
    restarts: int = 0  # restarts so far
    consecutive: int = 0  # restarts since the last run that lasted healthy_after_s
    restart_times: deque = field(default_factory=lambda: deque(maxlen=100))
    restart_at: float | None = None  # when the scheduled restart is due
    given_up: bool = False


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
                 on_line: Callable[[str, str], None] | None = None, respawn: RespawnPolicy | None = None):
        self.specs = specs
        self.domain_id = domain_id
        self.use_sim_time = use_sim_time
        self.output = output if output is not None else sys.stdout
        self.extra_args = extra_args or []
        self.on_line = on_line
        self.respawn = respawn
        self.processes: list[NodeProcess] = []
        self.failures: list[NodeFailure] = []
        self.given_up: list[str] = []  # nodes that kept dying and were not restarted again
        self._stop = threading.Event()
        self._print_lock = threading.Lock()
        self._tmpdir = tempfile.TemporaryDirectory(prefix="perception-graph-")

    # -- commands -----------------------------------------------------------------------
    def _overrides_file(self, index: int, spec: NodeSpec) -> str | None:
        return write_overrides(spec, os.path.join(self._tmpdir.name, f"{index:02d}_{spec.name}.yaml"),
                               {"use_sim_time": True} if self.use_sim_time else {})

    def command_for(self, index: int, spec: NodeSpec) -> list[str]:
        if spec.members:  # one process, several nodes: their names and parameters are in the members file
            members = write_members_file(spec, os.path.join(self._tmpdir.name, f"{index:02d}_{spec.name}"),
                                         {"use_sim_time": True} if self.use_sim_time else {})
            return [sys.executable, "-m", "perception_nodes.nodes.container", "--members", members] + self.extra_args
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
    def _spawn(self, index: int, spec: NodeSpec, restarts: int = 0) -> subprocess.Popen:
        env = child_environment(self.domain_id)
        env[RESPAWN_ENV] = str(restarts)
        return subprocess.Popen(self.command_for(index, spec), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, bufsize=1,
                                start_new_session=True)  # we forward signals ourselves

    def start(self) -> "GraphRunner":
        for index, spec in enumerate(self.specs):
            entry = NodeProcess(spec, self._spawn(index, spec), index=index)
            entry.reader = threading.Thread(target=self._pump, args=(entry,), daemon=True)
            entry.reader.start()
            self.processes.append(entry)
        return self

    def _say(self, text: str) -> None:
        with self._print_lock:
            print(f"[runner] {text}", file=self.output, flush=True)

    def _schedule_restart(self, entry: NodeProcess) -> None:
        policy = self.respawn
        now = time.monotonic()
        if now - entry.started >= policy.healthy_after_s:
            entry.consecutive = 0
        while entry.restart_times and now - entry.restart_times[0] > policy.window_s:
            entry.restart_times.popleft()
        if len(entry.restart_times) >= policy.max_restarts:
            entry.given_up = True
            self.given_up.append(entry.spec.fully_qualified_name)
            self._say(f"giving up on {entry.spec.fully_qualified_name}: {len(entry.restart_times)} restarts in "
                      f"{policy.window_s:.0f} s; the rest of the graph keeps running")
            return
        entry.consecutive += 1
        delay = policy.delay(entry.consecutive)
        entry.restart_at = now + delay
        self._say(f"restarting {entry.spec.fully_qualified_name} in {delay:.1f} s (restart {entry.restarts + 1})")

    def _restart_due(self) -> None:
        now = time.monotonic()
        for entry in self.processes:
            if entry.restart_at is None or now < entry.restart_at or self._stop.is_set():
                continue
            if entry.reader:
                entry.reader.join(timeout=1.0)
            entry.restart_at = None
            entry.restarts += 1
            entry.restart_times.append(now)
            entry.process = self._spawn(entry.index, entry.spec, entry.restarts)
            entry.started = now
            entry.reported = False
            entry.reader = threading.Thread(target=self._pump, args=(entry,), daemon=True)
            entry.reader.start()

    @property
    def restarts(self) -> dict[str, int]:
        """Restarts per node so far."""
        return {e.spec.fully_qualified_name: e.restarts for e in self.processes if e.restarts}

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
                self._say(str(failure))
                self.failures.append(failure)
                new.append(failure)
                if self.respawn is not None and entry.spec.respawn:
                    self._schedule_restart(entry)
        return new

    def _alive(self, entry: NodeProcess) -> bool:
        """Running, or about to be restarted."""
        return entry.process.poll() is None or entry.restart_at is not None

    def wait(self, timeout: float | None = None, stop_on_failure: bool = True) -> bool:
        """Block until timeout, stop(), or a failure. True if every node is still running.

        With a respawn policy a node that exits is restarted and the wait goes on; it ends early only when
        every node is down for good."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            failed = self.check()
            if failed and stop_on_failure and (self.respawn is None
                                               or any(not e.spec.respawn for e in self.processes
                                                      if e.spec.fully_qualified_name in {f.node for f in failed})):
                return False
            self._restart_due()
            if not any(self._alive(e) for e in self.processes):
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
