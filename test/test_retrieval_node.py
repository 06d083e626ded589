"""The retrieval node in this process: images and tracks of two cameras in, crops indexed, queries answered,
bad requests refused with a reason."""
import time

import numpy as np
import pytest

from conftest import spin_until

pytestmark = pytest.mark.node


def _frames(camera_indices, frames):
    """(camera id, image, ground-truth boxes, stamp s) of the fleet scene, as tracks would report them."""
    from perception_nodes.world import World, load_scene

    world = World(load_scene("fleet", seed=2000))
    for frame in frames:
        for index in camera_indices:
            image, boxes = world.render(index, frame)
            yield world.cameras[index].spec.id, image, boxes, 1000.0 + world.time_of(frame)


def _messages(camera_id, image, boxes, stamp_s):
    from perception_nodes.image_codec import numpy_to_image
    from perception_nodes.msg import Track, TrackArray

    img = numpy_to_image(image, "bgr8")
    img.header.stamp.sec, img.header.stamp.nanosec = int(stamp_s), int(round((stamp_s % 1) * 1e9))
    img.header.frame_id = f"{camera_id}_optical_frame"
    tracks = TrackArray(camera_id=camera_id)
    tracks.header = img.header
    for b in boxes:
        if b.visible_fraction < 0.6:
            continue
        x1, y1, x2, y2 = b.bbox
        t = Track(track_id=b.global_id, state=Track.STATE_CONFIRMED, hits=10, frames_since_update=0,
                  class_id=b.class_id, class_name=b.class_name, score=0.9)
        t.box.center_x, t.box.center_y, t.box.width, t.box.height = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        tracks.tracks.append(t)
    return img, tracks


def test_retrieval_node_indexes_tracks_and_answers_queries(ros_context, executor, tmp_path):
    from rclpy.parameter import Parameter

    from perception_nodes.msg import ServiceStatus, TrackArray
    from perception_nodes.nodes.retrieval import RetrievalNode
    from perception_nodes.ros import qos
    from perception_nodes.srv import DeleteItems, IndexStats, QueryByEmbedding, QueryById, SnapshotIndex
    from sensor_msgs.msg import Image

    rclpy, context = ros_context
    node = RetrievalNode(context=context, parameter_overrides=[
        Parameter("cameras", value=["cam0", "cam1"]), Parameter("store_dir", value=str(tmp_path / "store")),
        Parameter("embedder", value="hsv-hist"), Parameter("window_s", value=0.5),
        Parameter("min_side_px", value=16.0)])
    helper = rclpy.create_node("retrieval_test_helper", context=context)
    executor.add_node(node)
    executor.add_node(helper)
    pubs = {cam: (helper.create_publisher(Image, f"{cam}/image_raw", qos.IMAGE),
                  helper.create_publisher(TrackArray, f"{cam}/tracks", qos.RESULTS)) for cam in ("cam0", "cam1")}
    clients = {name: helper.create_client(kind, f"/retrieval/{name}") for name, kind in (
        ("query_by_id", QueryById), ("query_by_embedding", QueryByEmbedding), ("stats", IndexStats),
        ("snapshot", SnapshotIndex), ("delete", DeleteItems))}
    assert spin_until(executor, lambda: all(c.service_is_ready() for c in clients.values()) and
                      all(p.get_subscription_count() > 0 for pair in pubs.values() for p in pair), 15.0)

    def call(name, request):
        future = clients[name].call_async(request)
        assert spin_until(executor, future.done, 10.0)
        return future.result()

    seen = {}
    for camera_id, image, boxes, stamp in _frames((0, 1), range(300, 340, 2)):
        img, tracks = _messages(camera_id, image, boxes, stamp)
        pubs[camera_id][0].publish(img)
        spin_until(executor, lambda: False, 0.02)
        pubs[camera_id][1].publish(tracks)
        for t in tracks.tracks:
            seen.setdefault(t.track_id, set()).add(camera_id)
        spin_until(executor, lambda: False, 0.02)
    both = [gid for gid, cams in seen.items() if cams == {"cam0", "cam1"}]
    assert both, "no actor in both views; the test scene changed"
    assert spin_until(executor, lambda: call("stats", IndexStats.Request()).items >= 10, 20.0)
    stats = call("stats", IndexStats.Request())
    assert stats.status.code == ServiceStatus.OK and stats.embedding_model == "hsv-hist@1" and stats.backend == "faiss"

    # The sightings of one actor's cam0 track, searched in cam1: the same actor comes first for most actors.
    right = 0
    for gid in both:
        request = QueryById.Request(id_kind=QueryById.Request.ID_TRACK, camera_id="cam0", id=gid, k=5, rerank=True)
        request.filter.camera_ids = ["cam1"]
        response = call("query_by_id", request)
        if response.status.code != ServiceStatus.OK:
            continue
        hit = response.hits[0]
        assert hit.metadata.camera_id == "cam1" and hit.metadata.embedding_model == "hsv-hist@1"
        assert hit.metadata.box.width > 0 and hit.metadata.thumbnail_uri.startswith("file://")
        right += hit.metadata.track_id == gid
    assert right >= 0.5 * len(both)

    # One sighting by its item id (its track's other sightings pool the query: query_track), searched in cam1.
    by_item = 0
    for gid in both:
        request = QueryById.Request(id_kind=QueryById.Request.ID_TRACK, camera_id="cam1", id=gid, k=50)
        request.filter.camera_ids = ["cam0"]  # the cam0 track's sightings, found from its cam1 track
        own = [h for h in call("query_by_id", request).hits if h.metadata.track_id == gid]
        if not own:
            continue
        request = QueryById.Request(id_kind=QueryById.Request.ID_ITEM, id=int(own[0].item_id), k=5, rerank=True)
        request.filter.camera_ids = ["cam1"]
        response = call("query_by_id", request)
        assert response.status.code == ServiceStatus.OK, response.status
        by_item += response.hits[0].metadata.track_id == gid
    assert by_item >= 0.5 * len(both)

    bad = [
        (QueryById.Request(id_kind=QueryById.Request.ID_TRACK, camera_id="cam0", id=both[0], k=0), "query_by_id",
         ServiceStatus.INVALID_REQUEST, "k must be"),
        (QueryById.Request(id_kind=QueryById.Request.ID_GLOBAL, id=123456, k=5), "query_by_id",
         ServiceStatus.NOT_FOUND, "no indexed items"),
        (QueryById.Request(id_kind=7, id=1, k=5), "query_by_id", ServiceStatus.INVALID_REQUEST, "id_kind"),
        (QueryByEmbedding.Request(embedding=[0.1] * 7, embedding_model="hsv-hist@1", k=5), "query_by_embedding",
         ServiceStatus.INVALID_REQUEST, "7 values"),
        (QueryByEmbedding.Request(embedding=[0.1] * 192, embedding_model="reid-fleet@9", k=5), "query_by_embedding",
         ServiceStatus.INVALID_REQUEST, "never compared"),
        (SnapshotIndex.Request(name="../../etc"), "snapshot", ServiceStatus.INVALID_REQUEST, "plain name"),
        (DeleteItems.Request(item_ids=["abc"]), "delete", ServiceStatus.INVALID_REQUEST, "integers"),
    ]
    request = QueryById.Request(id_kind=QueryById.Request.ID_TRACK, camera_id="cam0", id=both[0], k=5)
    request.filter.camera_ids = ["cam9"]
    bad.append((request, "query_by_id", ServiceStatus.INVALID_REQUEST, "unknown cameras"))
    for req, name, code, text in bad:
        response = call(name, req)
        assert response.status.code == code and text in response.status.message, (name, response.status)

    snap = call("snapshot", SnapshotIndex.Request(name="test-1"))
    assert snap.status.code == ServiceStatus.OK and snap.path.startswith(str(tmp_path / "store" / "snapshots"))
    items_before = call("stats", IndexStats.Request()).items
    hit_ids = [h.item_id for h in call("query_by_id", QueryById.Request(
        id_kind=QueryById.Request.ID_TRACK, camera_id="cam0", id=both[0], k=3)).hits]
    deleted = call("delete", DeleteItems.Request(item_ids=hit_ids + ["999999"]))
    assert deleted.status.code == ServiceStatus.OK and deleted.deleted == len(hit_ids)
    assert call("stats", IndexStats.Request()).items == items_before - len(hit_ids)
    node.destroy_node()
    helper.destroy_node()


def test_every_node_module_runs_as_a_script():
    """The runner starts nodes with `python -m perception_nodes.nodes.NAME`: a module without the guard exits 0
    at once and is restarted forever (the retrieval node once did)."""
    from pathlib import Path

    nodes = Path(__file__).resolve().parents[1] / "perception_nodes" / "nodes"
    missing = [p.name for p in nodes.glob("*.py") if p.stem != "__init__" and "def main(" in p.read_text()
               and 'if __name__ == "__main__":' not in p.read_text()]
    assert not missing
