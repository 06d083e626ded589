"""DDS must never leave loopback: capture on every other interface while a graph runs."""
import io
import os
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

from perception_nodes.graph import build_graph
from perception_nodes.runner import GraphRunner

pytestmark = pytest.mark.graph


def rtps_packets(pcap: Path) -> int:
    """Count captured packets whose payload carries the RTPS magic (pcap, any link type)."""
    data = pcap.read_bytes()
    if len(data) < 24:
        return 0
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    count, offset = 0, 24
    while offset + 16 <= len(data):
        incl_len = struct.unpack(endian + "I", data[offset + 8: offset + 12])[0]
        if b"RTPS" in data[offset + 16: offset + 16 + incl_len]:
            count += 1
        offset += 16 + incl_len
    return count


def _start_capture(interface: str, path: Path) -> subprocess.Popen:
    return subprocess.Popen(["tcpdump", "-i", interface, "-n", "-U", "-s", "256", "-w", str(path), "udp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _capture_permitted() -> str | None:
    if not shutil.which("tcpdump"):
        return "tcpdump is not installed (make setup installs it when run as root)"
    probe = subprocess.Popen(["tcpdump", "-i", "lo", "-w", "/dev/null"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    if probe.poll() is None:  # still capturing: permitted
        probe.terminate()
        probe.wait(timeout=5)
        return None
    return f"packet capture is not permitted here: {probe.stderr.read().strip()[:200]}"


def test_no_rtps_packet_leaves_loopback(tmp_path, domain_id):
    reason = _capture_permitted()
    if reason:
        pytest.skip(reason)
    # An interface that is down carries nothing (and tcpdump cannot open it).
    interfaces = sorted(p.name for p in Path("/sys/class/net").iterdir()
                        if p.name != "lo" and (p / "operstate").read_text().strip() != "down")
    captures = {name: _start_capture(name, tmp_path / f"{name}.pcap") for name in interfaces}
    control = _start_capture("lo", tmp_path / "lo.pcap")  # proves the capture sees RTPS when it is there
    time.sleep(1.0)
    dead = {name: proc.stderr.read().decode()[:200] for name, proc in captures.items() if proc.poll() is not None}
    assert not dead, f"capture could not start on {dead}"
    specs = build_graph("overlap2", stages=("cameras", "monitor"))
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    with GraphRunner(specs, domain_id=domain_id, output=io.StringIO()) as runner:
        assert runner.wait(8.0), runner.failures
    time.sleep(0.5)
    for proc in [*captures.values(), control]:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert rtps_packets(tmp_path / "lo.pcap") > 0, "control capture on lo saw no RTPS: the capture is not working"
    leaked = {name: rtps_packets(tmp_path / f"{name}.pcap") for name in interfaces}
    assert leaked == {name: 0 for name in interfaces}


def test_child_processes_get_loopback_discovery_and_the_project_dds_profile_unless_the_user_chose():
    import xml.etree.ElementTree as ET

    from perception_nodes.rosenv import child_environment

    env = child_environment(5, base={"PATH": "/bin"})
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST" and env["ROS_DOMAIN_ID"] == "5"
    profile = ET.parse(env["FASTDDS_DEFAULT_PROFILES_FILE"]).getroot()  # well-formed, and the one we ship
    ns = {"dds": "http://www.eprosima.com"}
    period = profile.find(".//dds:data_writer[@is_default_profile='true']/dds:times/dds:heartbeat_period", ns)
    assert period is not None and int(period.find("dds:sec", ns).text) == 0
    chosen = child_environment(base={"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET",
                                     "FASTDDS_DEFAULT_PROFILES_FILE": "/etc/mine.xml"})
    assert chosen["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET" and chosen["FASTDDS_DEFAULT_PROFILES_FILE"] == "/etc/mine.xml"
