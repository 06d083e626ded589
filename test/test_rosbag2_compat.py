"""Bags that rosbag2 itself writes: metadata.yaml of versions 5, 8 and 9 whose QoS differs from the storage
file's own record, MCAP and sqlite3, a topic in a serialization we cannot decode. Written here by another writer
than ours (rosbags' Writer, then metadata.yaml rewritten the way rosbag2 writes it)."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from perception_nodes.bagio import bag_info, read_messages, typestore

QOS_V8 = ("- history: 3\n  depth: 0\n  reliability: 1\n  durability: 2\n  deadline:\n    sec: 9223372036\n"
          "    nsec: 854775807\n  lifespan:\n    sec: 9223372036\n    nsec: 854775807\n  liveliness: 1\n"
          "  liveliness_lease_duration:\n    sec: 9223372036\n    nsec: 854775807\n"
          "  avoid_ros_namespace_conventions: false")
QOS_V9 = [{"history": "unknown", "depth": 0, "reliability": "best_effort", "durability": "transient_local",
           "deadline": {"sec": 9223372036, "nsec": 854775807}, "lifespan": {"sec": 9223372036, "nsec": 854775807},
           "liveliness": "automatic", "liveliness_lease_duration": {"sec": 9223372036, "nsec": 854775807},
           "avoid_ros_namespace_conventions": False}]
COUNTS = {"/chatter": 20, "/camera/image": 5, "/json_topic": 3}


def _write_bag(folder: Path, storage: str, version: int) -> Path:
    """A bag whose metadata.yaml says what rosbag2 of that version writes, with QoS the storage does not have."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = typestore()
    String, Image = store.types["std_msgs/msg/String"], store.types["sensor_msgs/msg/Image"]
    Header, Time = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    import numpy as np

    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    writer = Writer(folder, version=8, storage_plugin=plugin)
    writer.open()
    chatter = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
    image = writer.add_connection("/camera/image", "sensor_msgs/msg/Image", typestore=store)
    odd = writer.add_connection("/json_topic", "std_msgs/msg/String", typestore=store, serialization_format="json")
    for i in range(20):
        writer.write(chatter, 1_000_000_000 + i * 50_000_000,
                     store.serialize_cdr(String(data=f"hello {i}"), "std_msgs/msg/String"))
    for i in range(5):
        msg = Image(header=Header(stamp=Time(sec=1, nanosec=i), frame_id="cam"), height=2, width=3, encoding="mono8",
                    is_bigendian=0, step=3, data=np.arange(6, dtype=np.uint8) + i)
        writer.write(image, 1_000_000_000 + i * 200_000_000, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    for i in range(3):
        writer.write(odd, 1_100_000_000 + i, b'{"data": "not cdr"}')
    writer.close()
    meta_path = folder / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    info = meta["rosbag2_bagfile_information"]
    info["version"] = version
    info["ros_distro"] = "jazzy"
    for entry in info["topics_with_message_count"]:
        entry["topic_metadata"]["offered_qos_profiles"] = QOS_V9 if version >= 9 else QOS_V8
        if version < 7:
            entry["topic_metadata"].pop("type_description_hash", None)
    if version < 8:
        info.pop("ros_distro")
    meta_path.write_text(yaml.safe_dump(meta, sort_keys=False))
    return folder


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("version", [4, 5, 8, 9])
def test_no_message_is_lost_whatever_the_metadata_qos(tmp_path, storage, version):
    from rosbags.rosbag2 import Reader

    bag = _write_bag(tmp_path / f"bag_{storage}_{version}", storage, version)
    try:  # the situation: rosbags' folder reader loses (or refuses) these topics
        with Reader(bag) as upstream:
            upstream_count = sum(1 for _ in upstream.messages())
    except Exception:  # noqa: BLE001 - refused outright is the other way of losing them
        upstream_count = 0
    assert upstream_count < COUNTS["/chatter"] + COUNTS["/camera/image"]
    with pytest.warns(UserWarning, match="json_topic"):
        messages = list(read_messages(bag))
    assert {t: sum(1 for m in messages if m.topic == t) for t in ("/chatter", "/camera/image")} == \
        {"/chatter": 20, "/camera/image": 5}
    assert [m.timestamp_ns for m in messages] == sorted(m.timestamp_ns for m in messages)
    texts = [typestore().deserialize_cdr(m.data, m.msgtype).data for m in messages if m.topic == "/chatter"]
    assert texts == [f"hello {i}" for i in range(20)]
    info = bag_info(bag)
    assert info["storage"] == storage and info["metadata_version"] == version and info["messages"] == 28
    assert {t: v["count"] for t, v in info["topics"].items()} == COUNTS
    assert info["topics"]["/json_topic"]["serialization"] == "json" and info["undecodable_topics"] == ["/json_topic"]
    assert info["topics"]["/chatter"] == {"type": "std_msgs/msg/String", "count": 20, "serialization": "cdr",
                                          "decodable": True}


def test_a_storage_file_alone_and_a_folder_without_metadata(tmp_path):
    bag = _write_bag(tmp_path / "bag", "sqlite3", 8)
    file = next(bag.glob("*.db3"))
    with pytest.warns(UserWarning):
        assert len(list(read_messages(file))) == 25
    (bag / "metadata.yaml").unlink()  # a killed recorder leaves no metadata: the storage files still read
    assert bag_info(bag)["messages"] == 28


def test_bag_play_reports_topics_it_could_not_play(tmp_path):
    """Played over DDS (no subscriber needed): /json_topic cannot be decoded, so the play falls short and says so,
    unless --allow-partial."""
    bag = _write_bag(tmp_path / "bag", "mcap", 9)
    command = [sys.executable, "-m", "perception_nodes.cli.main", "bag", "play", str(bag), "--rate", "20",
               "--delay", "0"]
    strict = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "/json_topic: published 0 of 3 messages (serialization 'json'" in strict.stderr
    result = yaml.safe_load(strict.stdout.strip().splitlines()[-1])
    assert result["published_by_topic"] == {"/chatter": 20, "/camera/image": 5, "/json_topic": 0}
    lenient = subprocess.run(command + ["--allow-partial"], capture_output=True, text=True, timeout=120)
    assert lenient.returncode == 0, lenient.stderr


@pytest.mark.node
def test_every_message_of_a_rosbag2_style_bag_reaches_a_subscriber(ros_context, tmp_path):
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from conftest import spin_until
    from perception_nodes.ros.bag import BagPlayer, PlaybackOptions

    bag = _write_bag(tmp_path / "bag", "sqlite3", 8)
    rclpy, context = ros_context
    node = rclpy.create_node("compat_probe", context=context)
    got = {"/chatter": [], "/camera/image": []}
    node.create_subscription(String, "/chatter", got["/chatter"].append, 100)
    node.create_subscription(Image, "/camera/image", got["/camera/image"].append, 100)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    player = BagPlayer(node, str(bag), PlaybackOptions(rate=10.0, wait_for_subscribers=1, start_delay_s=0.0))
    assert player.unplayable == {"/json_topic": "serialization 'json' (only CDR is played)"}
    player.start()
    assert spin_until(executor, lambda: player.done.is_set() and len(got["/chatter"]) == 20
                      and len(got["/camera/image"]) == 5, 30.0), {k: len(v) for k, v in got.items()}
    assert [m.data for m in got["/chatter"]] == [f"hello {i}" for i in range(20)]
    assert list(got["/camera/image"][4].data) == [4, 5, 6, 7, 8, 9]
    assert set(player.shortfall()) == {"/json_topic"}
    executor.shutdown(timeout_sec=1.0)
