"""`perception sim` output and our bags, read back by two independent readers."""
import json

import numpy as np
import pytest

from conftest import last_json, run_cli
from perception_nodes.bagio import BagWriter, bag_info, deserialize, read_messages
from perception_nodes.errors import BagError
from perception_nodes.simbag import load_ground_truth
from perception_nodes.world import World, load_scene


@pytest.fixture(scope="module")
def sim_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "overlap2"
    proc = run_cli("sim", "--scene", "overlap2", "--seed", "4", "--frames", "12", "--out", str(out))
    return out, last_json(proc.stdout)


def test_sim_summary_is_last_line_json(sim_out):
    out, summary = sim_out
    assert summary["out"] == str(out)
    assert summary["cameras"] == 2 and summary["frames"] == 12 and summary["objects"] > 0


def test_ground_truth_loads_back_for_every_frame(sim_out):
    out, summary = sim_out
    gt = load_ground_truth(out)
    assert gt["frame_count"] == 12 and len(gt["frames"]) == 12
    world = World(load_scene("overlap2", seed=4))
    for frame in gt["frames"]:
        assert set(frame["cameras"]) == {"cam_south", "cam_east"}
        truth = {s.global_id: s for s in world.object_states(frame["index"])}
        for obj in frame["objects"]:
            np.testing.assert_allclose(obj["position"], truth[obj["global_id"]].position, atol=1e-3)
    stamps = [f["stamp_ns"] for f in gt["frames"]]
    assert stamps == sorted(stamps) and len(set(stamps)) == 12


def test_bag_images_match_the_world_and_the_sidecar(sim_out):
    out, _ = sim_out
    gt = load_ground_truth(out)
    world = World(load_scene("overlap2", seed=4))
    images = [m for m in read_messages(out / "bag", ["/cam_east/image_raw"])]
    assert len(images) == 12
    for index, message in enumerate(images):
        msg = deserialize(message)
        expected, _ = world.render(1, index)
        assert bytes(msg.data) == expected.tobytes()
        assert msg.header.frame_id == "cam_east_optical_frame"
        assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == gt["frames"][index]["stamp_ns"]


def test_bag_decodes_with_mcap_ros2_support(sim_out):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    out, _ = sim_out
    mcap_files = list((out / "bag").glob("*.mcap"))
    assert len(mcap_files) == 1
    counts = {}
    with open(mcap_files[0], "rb") as handle:
        reader = make_reader(handle, decoder_factories=[DecoderFactory()])
        for schema, channel, message, decoded in reader.iter_decoded_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            if schema.name == "perception_nodes/msg/DetectionArray":
                assert decoded.camera_id in ("cam_south", "cam_east")
                for det in decoded.detections:
                    assert det.box.width > 0 and det.class_name in ("car", "truck", "person", "bicycle")
            if schema.name == "sensor_msgs/msg/Image":
                assert (decoded.width, decoded.height, decoded.encoding) == (640, 480, "bgr8")
    assert counts == {f"/{c}/{t}": 12 for c in ("cam_south", "cam_east")
                      for t in ("image_raw", "camera_info", "ground_truth/detections")}


def test_bag_info_cli(sim_out):
    out, _ = sim_out
    info = last_json(run_cli("bag", "info", str(out / "bag")).stdout)
    assert info["messages"] == 72
    assert info["topics"]["/cam_south/image_raw"] == {"type": "sensor_msgs/msg/Image", "count": 12,
                                                      "serialization": "cdr", "decodable": True}
    assert info["storage"] == "mcap" and info["undecodable_topics"] == []
    assert info == json.loads(json.dumps(bag_info(out / "bag")))


def test_sim_refuses_to_overwrite(sim_out):
    out, _ = sim_out
    proc = run_cli("sim", "--scene", "overlap2", "--frames", "1", "--out", str(out), check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr


def test_corrupt_bag_and_sidecar_give_clear_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9, storage_identifier: mcap")
    with pytest.warns(UserWarning, match="unreadable"), pytest.raises(BagError, match="has no storage files"):
        list(read_messages(bad))
    (bad / "bad_0.mcap").write_bytes(b"\x89MCAP0\r\n truncated")
    with pytest.warns(UserWarning), pytest.raises(BagError, match="cannot open .*bad_0.mcap"):
        list(read_messages(bad))
    with pytest.raises(BagError, match="does not exist"):
        bag_info(tmp_path / "missing")
    (tmp_path / "ground_truth.json").write_text("{ not json")
    with pytest.raises(BagError, match="not valid JSON"):
        load_ground_truth(tmp_path)


def test_writer_rejects_unknown_topics_and_types(tmp_path):
    with BagWriter(tmp_path / "b") as writer:
        with pytest.raises(BagError, match="unknown"):
            writer.add_topic("/x", "nope_msgs/msg/Nothing")
        with pytest.raises(BagError, match="not added"):
            writer.write("/y", 0, b"")
