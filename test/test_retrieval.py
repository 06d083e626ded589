"""Retrieval core (no ROS): the store, both vector backends, filtered search, durability, re-ranking, crops."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from perception_nodes.retrieval.crops import CropSelector, crop_quality, cut_crop
from perception_nodes.retrieval.index import RetrievalIndex
from perception_nodes.retrieval.rerank import (QueryContext, RerankConfig, Reranker, Stage, TravelTimeModel,
                                               parse_stages, travel_pairs_from_global_ids)
from perception_nodes.retrieval.types import Hit, Observation, QueryFilter, RetrievalError, RetrievalErrorCode

EMBEDDER = "test-embedder@1"
T0 = 1_764_633_600_000_000_000


def _data(n: int, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    observations = [Observation(camera_id=f"cam{i % 4}", stamp_ns=T0 + i * 100_000_000, class_id=i % 3,
                                class_name=("car", "truck", "person")[i % 3], track_id=1 + i // 10,
                                map_xy=(float(i % 50), float(i % 7)) if i % 2 else None,
                                zone="gate" if i % 5 == 0 else "")
                    for i in range(n)]
    return vectors, observations


def _exact(vectors: np.ndarray, observations, query: np.ndarray, k: int, keep=lambda o: True) -> list[int]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = unit @ (query / np.linalg.norm(query))
    order = [i for i in np.argsort(-scores, kind="stable") if keep(observations[i])]
    return [i + 1 for i in order[:k]]  # ids start at 1, in insertion order


def test_exact_search_and_every_filter_match_brute_force(tmp_path):
    vectors, observations = _data(600)
    index = RetrievalIndex(tmp_path, EMBEDDER, 16)
    ids = index.insert(observations, vectors)
    assert ids == list(range(1, 601))
    query = vectors[17]
    assert [h.item_id for h in index.search(query, 10)] == _exact(vectors, observations, query, 10)
    filters = {
        QueryFilter(camera_ids=("cam1",)): lambda o: o.camera_id == "cam1",
        QueryFilter(start_ns=T0 + 10 * 10**9, end_ns=T0 + 20 * 10**9): lambda o: T0 + 10**10 <= o.stamp_ns <= T0 + 2 * 10**10,
        QueryFilter(region=(0, 0, 10, 3)): lambda o: o.map_xy is not None and 0 <= o.map_xy[0] <= 10 and 0 <= o.map_xy[1] <= 3,
        QueryFilter(class_ids=(2,)): lambda o: o.class_id == 2,
        QueryFilter(zones=("gate",)): lambda o: o.zone == "gate",
    }
    for flt, keep in filters.items():
        got = index.search(query, 10, flt)
        assert [h.item_id for h in got] == _exact(vectors, observations, query, 10, keep), flt
        assert all(keep(h.observation) for h in got)
    index.close()


def test_deleted_items_never_come_back_and_survive_a_reopen(tmp_path):
    vectors, observations = _data(300)
    index = RetrievalIndex(tmp_path, EMBEDDER, 16)
    index.insert(observations, vectors)
    assert index.search(vectors[5], 1)[0].item_id == 6
    assert index.delete([6, 99999]) == 1
    assert 6 not in [h.item_id for h in index.search(vectors[5], 20)]
    index.close()
    reopened = RetrievalIndex(tmp_path, EMBEDDER, 16)
    assert len(reopened) == 299
    assert 6 not in [h.item_id for h in reopened.search(vectors[5], 20)]
    reopened.close()


def _clustered(n: int, dim: int, seed: int, sightings_per_object: int = 20):
    """Vectors like an index's: each object seen many times with noise; returns (vectors, centres)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(n // sightings_per_object, 1), dim)).astype(np.float32)
    vectors = centres[rng.integers(len(centres), size=n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return vectors, centres


@pytest.mark.parametrize("ann", ["ivf", "hnsw"])
def test_approximate_recall_and_selective_filters_do_not_collapse(tmp_path, ann):
    _, observations = _data(6000, dim=32, seed=1)
    vectors, centres = _clustered(6000, 32, seed=1)
    index = RetrievalIndex(tmp_path, EMBEDDER, 32, approximate_above=2000, exact_filtered_below=500, ann=ann)
    index.insert(observations, vectors)
    assert ann.upper() in index.stats().index_type
    rng = np.random.default_rng(2)
    recalls, filtered = [], []
    rare = QueryFilter(camera_ids=("cam2",), start_ns=T0, end_ns=T0 + 60 * 10**9)  # 150 of 6000 items
    queries = centres[rng.integers(len(centres), size=30)] + 0.6 * rng.standard_normal((30, 32)).astype(np.float32)
    for q in queries:
        recalls.append(len(set(h.item_id for h in index.search(q, 10)) & set(_exact(vectors, observations, q, 10))) / 10)
        want = _exact(vectors, observations, q, 10, lambda o: o.camera_id == "cam2" and o.stamp_ns <= T0 + 6 * 10**10)
        filtered.append(len(set(h.item_id for h in index.search(q, 10, rare)) & set(want)) / 10)
    assert np.mean(recalls) >= 0.9
    assert np.mean(filtered) == 1.0   # exact over the filtered candidates
    # Deleted items never come back from the approximate index either.
    top = [h.item_id for h in index.search(queries[0], 5)]
    index.delete(top[:3])
    assert not set(top[:3]) & {h.item_id for h in index.search(queries[0], 20)}
    index.close()


def test_ivf_cells_are_retrained_as_the_index_grows_and_reused_after_a_reopen(tmp_path, caplog):
    _, observations = _data(12000, dim=16, seed=3)
    vectors, centres = _clustered(12000, 16, seed=3)
    index = RetrievalIndex(tmp_path, EMBEDDER, 16, approximate_above=2000, ann="ivf")
    index.insert(observations[:2500], vectors[:2500])
    first = index.stats().index_type
    for start in range(2500, 12000, 500):
        index.insert(observations[start:start + 500], vectors[start:start + 500])
    grown = index.stats().index_type
    assert first.startswith("IVF") and grown.startswith("IVF")
    assert int(grown[3:].split(",")[0]) > int(first[3:].split(",")[0])  # more cells for more rows
    q = centres[7] + 0.3
    expected = [h.item_id for h in index.search(q, 10)]
    assert len(set(expected) & set(_exact(vectors, observations, q, 10))) >= 9
    index.close()
    with caplog.at_level("WARNING"):
        reopened = RetrievalIndex(tmp_path, EMBEDDER, 16, approximate_above=2000, ann="ivf")
    assert "rebuilding" not in caplog.text            # the saved cells cover the store: used as they are
    assert reopened.stats().index_type == grown
    assert [h.item_id for h in reopened.search(q, 10)] == expected
    reopened.close()
    with caplog.at_level("WARNING"):
        other = RetrievalIndex(tmp_path, EMBEDDER, 16, approximate_above=2000, ann="hnsw")
    assert "configured for hnsw; rebuilding" in caplog.text
    assert other.stats().index_type.startswith("HNSW")
    other.close()


def test_unknown_approximate_index_settings_are_refused(tmp_path):
    for options, message in (({"ann": "lsh"}, "unknown approximate index"), ({"ivf_probe_share": 0.0}, "(0, 1]")):
        with pytest.raises(RetrievalError) as err:
            RetrievalIndex(tmp_path, EMBEDDER, 16, **options)
        assert err.value.code is RetrievalErrorCode.INVALID_REQUEST and message in str(err.value)


def test_corrupt_vector_index_is_rebuilt_from_the_store(tmp_path, caplog):
    vectors, observations = _data(3000, dim=16)
    index = RetrievalIndex(tmp_path, EMBEDDER, 16, approximate_above=1000)
    index.insert(observations, vectors)
    expected = [h.item_id for h in index.search(vectors[3], 5)]
    index.close()
    graph = tmp_path / "faiss_ann.index"
    assert graph.is_file()
    graph.write_bytes(b"not an index")
    with caplog.at_level("WARNING"):
        reopened = RetrievalIndex(tmp_path, EMBEDDER, 16, approximate_above=1000)
    assert "rebuilding" in caplog.text
    assert len(reopened) == 3000
    assert [h.item_id for h in reopened.search(vectors[3], 5)][0] == expected[0]
    reopened.close()


def test_corrupt_metadata_store_is_a_clear_error(tmp_path):
    (tmp_path / "metadata.sqlite3").write_bytes(b"garbage" * 100)
    with pytest.raises(RetrievalError) as err:
        RetrievalIndex(tmp_path, EMBEDDER, 16)
    assert err.value.code is RetrievalErrorCode.UNAVAILABLE


def test_bad_requests_say_what_is_wrong(tmp_path):
    vectors, observations = _data(20)
    index = RetrievalIndex(tmp_path, EMBEDDER, 16)
    index.insert(observations, vectors)
    cases = [
        (lambda: index.search(vectors[0], 0), "k must be"),
        (lambda: index.search(vectors[0], 5000), "k must be"),
        (lambda: index.search(np.ones(8), 5), "8 values"),
        (lambda: index.search(np.zeros(16), 5), "all zeros"),
        (lambda: index.search(np.full(16, np.nan), 5), "non-finite"),
        (lambda: index.search(vectors[0], 5, QueryFilter(start_ns=T0 + 10, end_ns=T0)), "before start"),
        (lambda: index.search(vectors[0], 5, QueryFilter(region=(5, 5, 1, 1))), "below its min"),
        (lambda: index.check_embedder("other@2"), "never compared"),
        (lambda: index.snapshot("../escape"), "plain name"),
        (lambda: index.insert([Observation("", T0, 0)], vectors[:1]), "camera_id"),
    ]
    for call, message in cases:
        with pytest.raises(RetrievalError) as err:
            call()
        assert err.value.code is RetrievalErrorCode.INVALID_REQUEST
        assert message in str(err.value)
    index.close()


def test_other_embedder_versions_are_kept_apart(tmp_path):
    vectors, observations = _data(50)
    first = RetrievalIndex(tmp_path, "a@1", 16)
    first.insert(observations, vectors)
    first.close()
    second = RetrievalIndex(tmp_path, "a@2", 16)
    assert len(second) == 0
    assert second.stats().other_embedders == {"a@1": 50}
    second.insert(observations[:5], vectors[:5])
    assert {h.item_id for h in second.search(vectors[0], 50)} == set(range(51, 56))
    second.close()


def test_snapshot_is_a_consistent_copy_in_the_store(tmp_path):
    vectors, observations = _data(100)
    index = RetrievalIndex(tmp_path / "store", EMBEDDER, 16)
    index.insert(observations, vectors, thumbnails=[b"\xff\xd8jpeg"] * 100)
    path = index.snapshot("before-upgrade")
    assert path.parent == tmp_path / "store" / "snapshots"
    copy = RetrievalIndex(path, EMBEDDER, 16)
    assert len(copy) == 100
    assert copy.search(vectors[9], 1)[0].item_id == 10
    copy.close()
    hit = index.search(vectors[9], 1)[0]
    assert index.store.thumbnail_path(hit.observation.thumbnail).read_bytes() == b"\xff\xd8jpeg"
    index.close()


def test_kill_during_indexing_loses_no_acknowledged_insert(tmp_path):
    script = textwrap.dedent(f"""
        import sys, numpy as np
        from perception_nodes.retrieval.index import RetrievalIndex
        from perception_nodes.retrieval.types import Observation
        index = RetrievalIndex({str(tmp_path)!r}, "kill@1", 8)
        rng = np.random.default_rng(0)
        batch = 0
        while True:
            obs = [Observation("cam0", {T0} + batch * 1000 + i, 0) for i in range(50)]
            ids = index.insert(obs, rng.standard_normal((50, 8)))
            print(ids[-1], flush=True)   # acknowledged: committed
            batch += 1
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    acked = 0
    deadline = time.monotonic() + 60
    while acked < 2000 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        acked = int(line)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert acked >= 2000, "the child did not index enough before the deadline"
    reopened = RetrievalIndex(tmp_path, "kill@1", 8)
    assert len(reopened) >= acked
    assert set(range(1, acked + 1)) <= set(reopened.store.ids("kill@1").tolist())
    reopened.close()


def test_milvus_lite_and_faiss_give_the_same_top_k(tmp_path):
    vectors, observations = _data(800, dim=16, seed=3)
    faiss_index = RetrievalIndex(tmp_path / "f", EMBEDDER, 16)
    milvus_index = RetrievalIndex(tmp_path / "m", EMBEDDER, 16, backend="milvus")
    faiss_index.insert(observations, vectors)
    milvus_index.insert(observations, vectors)
    rng = np.random.default_rng(4)
    overlaps = []
    for q in rng.standard_normal((20, 16)).astype(np.float32):
        for flt in (None, QueryFilter(camera_ids=("cam3",), class_ids=(0, 1)), QueryFilter(region=(0, 0, 20, 6))):
            a = {h.item_id for h in faiss_index.search(q, 10, flt)}
            b = {h.item_id for h in milvus_index.search(q, 10, flt)}
            overlaps.append(len(a & b) / max(len(a), 1))
    assert np.mean(overlaps) >= 0.95
    assert milvus_index.delete([1, 2, 3]) == 3
    assert not {1, 2, 3} & {h.item_id for h in milvus_index.search(vectors[0], 20)}
    milvus_index.close()
    reopened = RetrievalIndex(tmp_path / "m", EMBEDDER, 16, backend="milvus")
    assert len(reopened) == 797
    reopened.close()
    faiss_index.close()


def _hit(item_id, score, camera="cam1", t=0.0, track=0, class_id=0, class_name="car", xy=None, heading=None):
    return Hit(item_id, score, score, item_id, Observation(camera, T0 + int(t * 1e9), class_id, class_name,
                                                         track_id=track, map_xy=xy, heading=heading))


def test_rerank_stages_move_hits_for_their_reasons():
    query = Observation("cam0", T0, 0, "car", track_id=7, map_xy=(0.0, 0.0), heading=0.0)
    hits = [_hit(1, 0.95, camera="cam0", track=7),                          # the query's own track: removed
            _hit(2, 0.90, class_id=2, class_name="person"),                 # another class
            _hit(3, 0.85, t=1.0, xy=(200.0, 0.0)),                          # 200 m in 1 s: impossible
            _hit(4, 0.80, t=0.5, xy=(0.5, 0.2), heading=0.1)]               # same place, same time
    ranked = Reranker("context,spatiotemporal,scene").rerank(QueryContext(np.ones(4), query), hits, None)
    assert [h.item_id for h in ranked] == [4, 3, 2]
    assert ranked[0].moved_by == ["spatiotemporal"]
    assert "scene" in ranked[2].moved_by
    assert ranked[0].score_final > ranked[0].score_initial


def test_augmentation_scores_each_hit_with_its_tracks_mean():
    query = Observation("cam0", T0, 0, "car", track_id=7)
    hits = [_hit(1, 0.90, camera="cam1", track=3),        # one lucky crop of a track that otherwise looks unlike
            _hit(2, 0.40, camera="cam1", track=3),
            _hit(3, 0.80, camera="cam2", track=5),        # a track that looks like the query throughout
            _hit(4, 0.78, camera="cam2", track=5),
            _hit(5, 0.85, camera="cam2", track=0),        # an anonymous crop: no track to pool with
            _hit(6, 0.99, camera="cam0", track=7)]        # the query's own track: removed, pooled with nobody
    ranked = Reranker("context,augmentation").rerank(QueryContext(np.ones(4), query), hits, None)
    assert [h.item_id for h in ranked] == [5, 3, 4, 1, 2]
    assert ranked[0].score_final == pytest.approx(0.85)
    assert ranked[1].score_final == pytest.approx(0.79) and ranked[2].score_final == pytest.approx(0.79)
    assert ranked[3].score_final == pytest.approx(0.65) and "augmentation" in ranked[3].moved_by
    half = Reranker("augmentation", RerankConfig(augmentation_weight=0.5)).rerank(
        QueryContext(np.ones(4), query), [_hit(1, 0.9, track=3), _hit(2, 0.5, track=3)], None)
    assert [h.score_final for h in half] == pytest.approx([0.8, 0.6])


def test_k_reciprocal_and_expansion_use_the_shortlist_structure():
    rng = np.random.default_rng(5)
    centre = rng.standard_normal(32)
    same = [centre + 0.35 * rng.standard_normal(32) for _ in range(6)]
    others = [rng.standard_normal(32) for _ in range(30)]
    stored = np.array([v / np.linalg.norm(v) for v in same + others])
    query = centre + 0.35 * rng.standard_normal(32)
    query /= np.linalg.norm(query)
    scores = stored @ query
    hits = [_hit(i + 1, float(s)) for i, s in enumerate(scores)]
    lookup = lambda ids: stored[[i - 1 for i in ids]]  # noqa: E731
    for stage in ("kreciprocal", "expansion"):
        ranked = Reranker(stage).rerank(QueryContext(query, None), [Hit(**h.__dict__) for h in hits], lookup)
        top = {h.item_id for h in ranked[:6]}
        assert len(top & set(range(1, 7))) >= 5, stage


def test_query_track_pools_the_query_with_its_tracks_other_sightings():
    """One blurred sighting ranks a look-alike first; with its track's other sightings pooled into the query, the
    right object comes first and the stage says it moved it. Without track vectors the stage changes nothing."""
    object_a, look_alike = np.array([1.0, 0.0, 0.0, 0.0]), np.array([0.8, 0.6, 0.0, 0.0])
    blurred = np.array([0.85, 0.5, 0.0, 0.2])
    blurred /= np.linalg.norm(blurred)
    stored = {1: object_a, 2: look_alike}
    lookup = lambda ids: np.array([stored[i] for i in ids])  # noqa: E731

    def hits():
        return sorted((_hit(i, float(stored[i] @ blurred)) for i in stored), key=lambda h: -h.score_initial)

    assert hits()[0].item_id == 2
    track = np.array([[0.98, 0.05, 0.0, 0.2], [0.99, -0.1, 0.1, 0.0]])
    ranked = Reranker("query_track").rerank(QueryContext(blurred, None, track_vectors=track), hits(), lookup)
    assert [h.item_id for h in ranked] == [1, 2] and "query_track" in ranked[0].moved_by
    assert ranked[0].score_final > ranked[1].score_final
    alone = Reranker("query_track").rerank(QueryContext(blurred, None), hits(), lookup)
    assert [h.item_id for h in alone] == [2, 1] and not any(h.moved_by for h in alone)


def test_parse_stages_and_travel_model():
    assert parse_stages("all")[0] is Stage.CONTEXT
    assert parse_stages("scene,context") == (Stage.CONTEXT, Stage.SCENE)
    with pytest.raises(RetrievalError):
        parse_stages("context,magic")
    sightings = {i: Observation("cam0" if i % 2 else "cam1", T0 + i * 10**9, 0, global_id=1 + i // 2)
                 for i in range(1, 200)}
    pairs = travel_pairs_from_global_ids(sightings)
    assert pairs and all(a != b for a, b, _ in pairs)
    model = TravelTimeModel(bin_s=1.0, horizon_s=60).fit([("cam0", "cam1", 10.0)] * 50)
    assert model.plausibility("cam0", "cam1", 10.2) > 0.9
    assert model.plausibility("cam0", "cam1", 45.0) < 0.5
    assert model.plausibility("cam2", "cam3", 10.0) is None


def test_crop_selector_keeps_the_best_crop_per_window():
    selector = CropSelector(window_s=1.0, min_side_px=4)
    assert selector.offer("a", T0, 1.0, "first") == []
    assert selector.offer("a", T0 + 300_000_000, 3.0, "best") == []
    assert selector.offer("a", T0 + 600_000_000, 2.0, "worse") == []
    assert selector.offer("a", T0 + 1_100_000_000, 1.0, "next") == [("a", "best")]
    assert selector.flush(older_than_ns=T0) == []
    assert selector.flush() == [("a", "next")]
    image = np.zeros((100, 100, 3), np.uint8)
    image[20:60, 20:60] = np.indices((40, 40)).sum(axis=0)[..., None] % 2 * 255  # sharp checkerboard
    blurred = image.copy()
    blurred[20:60, 20:60] = 128
    assert crop_quality(image, (20, 20, 60, 60)) > crop_quality(blurred, (20, 20, 60, 60))
    assert crop_quality(image, (0, 20, 40, 60)) < crop_quality(image, (20, 20, 60, 60))  # cut by the border
    crop, inner = cut_crop(image, (20, 20, 60, 60))
    assert crop.shape[:2] == (48, 48) and inner == (4.0, 4.0, 44.0, 44.0)


def test_shipped_embedder_loads_by_the_registry_and_embeds_boxes(tmp_path):
    from perception_nodes.reid.learned import EmbedderError, OnnxEmbedder
    from perception_nodes.retrieval.embedders import load_embedder

    embedder = load_embedder("reid-fleet@1")
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    rows = embedder.embed(image, np.array([[10, 10, 60, 90], [0, 0, 1, 1], [np.nan, 0, 5, 5]]))
    assert rows.shape == (3, embedder.dim) and abs(np.linalg.norm(rows[0]) - 1) < 1e-5
    assert not rows[1].any() and not rows[2].any()   # no usable pixels: zero rows, as hsv-hist gives
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(EmbedderError):
        OnnxEmbedder(broken, "broken@1")
    with pytest.raises(EmbedderError):
        load_embedder("yolov8n-lot-onnx@3")  # a detector is not an embedder


def test_fleet_scene_paints_vehicles_like_a_fleet_and_the_default_stays_varied():
    from perception_nodes.world import World, load_scene
    from perception_nodes.world.actors import FLEET_PAINT

    fleet = World(load_scene("fleet", seed=5))
    paints = {c for _, c in FLEET_PAINT}
    bodies = [a.parts[0].color for a in fleet.actors if a.class_name == "car"]
    near = [min(max(abs(x - y) for x, y in zip(body, p)) for p in paints) <= 6 for body in bodies]
    assert bodies and all(near)
    plain = [a.parts[0].color for a in fleet.actors if a.class_name == "car"
             and min(max(abs(x - y) for x, y in zip(a.parts[0].color, p)) for _, p in FLEET_PAINT[:4]) <= 6]
    assert len(plain) >= 0.6 * len(bodies)   # white, black, grey or silver
    default = World(load_scene("default", seed=5))
    assert load_scene("default").appearance == "varied"
    assert not all(min(max(abs(x - y) for x, y in zip(a.parts[0].color, p)) for p in paints) <= 6
                   for a in default.actors if a.class_name == "car")


def test_milvus_lite_is_asked_again_while_its_server_opens_and_a_server_uri_fails_at_once(monkeypatch):
    """milvus-lite hands out its socket before a loaded machine has opened it: the backend asks again; a server
    URI that cannot be reached is reported at once as UNAVAILABLE."""
    import pymilvus

    from perception_nodes.retrieval.backends import MILVUS_LITE_CONNECT_ATTEMPTS, MilvusBackend
    from perception_nodes.retrieval.types import RetrievalError

    calls = []

    class Connected(Exception):
        pass

    class Flaky:
        def __init__(self, uri, token=None):
            calls.append(uri)
            if len(calls) < 2:
                raise ConnectionError("socket not there yet")

        def __getattr__(self, name):  # connected: the backend's next step (its collection) ends the test
            raise Connected(name)

    monkeypatch.setattr(pymilvus, "MilvusClient", Flaky)
    monkeypatch.setattr("perception_nodes.retrieval.backends.time.sleep", lambda s: None)
    with pytest.raises(Connected):
        MilvusBackend(16, "/tmp/lite.db", "c")
    assert len(calls) == 2
    calls.clear()

    class Down:
        def __init__(self, uri, token=None):
            calls.append(uri)
            raise ConnectionError("refused")

    monkeypatch.setattr(pymilvus, "MilvusClient", Down)
    with pytest.raises(RetrievalError, match="cannot reach Milvus"):
        MilvusBackend(16, "http://127.0.0.1:1", "c")
    assert len(calls) == 1
    calls.clear()
    with pytest.raises(RetrievalError, match="cannot reach Milvus"):
        MilvusBackend(16, "/tmp/lite.db", "c")
    assert len(calls) == MILVUS_LITE_CONNECT_ATTEMPTS


@pytest.mark.skipif(not os.environ.get("PERCEPTION_MILVUS_URI"),
                    reason="needs a Milvus server: set PERCEPTION_MILVUS_URI (e.g. http://127.0.0.1:19530)")
def test_a_milvus_server_partitions_filters_exactly_when_selective_and_agrees_with_faiss():
    """The server path (no milvus-lite): partitions per camera and day, every filter (selective ones searched
    exactly over their rows, the rest by HNSW) giving FAISS exact's top 10, deletion, a reopened collection."""
    from perception_nodes.retrieval.backends import FaissBackend, MilvusBackend

    rng = np.random.default_rng(3)
    dim, n = 32, 6000
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cameras = ("cam0", "cam_east", "cam-2")
    observations = [Observation(cameras[i % 3], T0 + (i % 2) * 86_400 * 10**9 + i * 10**9, i % 4, "car",
                                map_xy=(float(i % 50), float(i % 30)), zone="lot" if i % 5 else "walk")
                    for i in range(n)]
    ids = np.arange(1, n + 1)
    server = MilvusBackend(dim, os.environ["PERCEPTION_MILVUS_URI"], f"test_{os.getpid()}_{time.time_ns()}",
                           exact_filtered_below=1500)
    try:
        server.add(ids, vectors, observations)
        assert {p for p in server._partitions if p.startswith("c_")} == {
            f"c_{c}_{d}" for c in ("cam0", "cam_east", "cam_2") for d in ("20251202", "20251203")}
        faiss = FaissBackend(dim)
        faiss.add(ids, vectors, observations)
        queries = vectors[:15] + 0.2 * rng.standard_normal((15, dim)).astype(np.float32)
        for flt in (None, QueryFilter(camera_ids=("cam_east",)), QueryFilter(start_ns=T0 + 86_400 * 10**9),
                    QueryFilter(camera_ids=("cam-2",), end_ns=T0 + 86_000 * 10**9), QueryFilter(region=(0, 0, 5, 5)),
                    QueryFilter(zones=("walk",), class_ids=(2,))):
            for q in queries:
                got, _ = server.search(q, 10, flt)
                want, _ = faiss.search(q, 10, flt)
                assert set(got.tolist()) == set(want.tolist()), flt
        server.remove([1, 2, 3])
        assert len(server) == n - 3 and not {1, 2, 3} & set(server.search(vectors[0], 20)[0].tolist())
        reopened = MilvusBackend(dim, os.environ["PERCEPTION_MILVUS_URI"], server.collection)
        assert len(reopened) == n - 3 and reopened.vectors([4, 5]).shape == (2, dim)
        reopened.close()
    finally:
        server.drop()
        server.close()


def test_doctor_checks_the_configured_vector_index(tmp_path):
    """`perception doctor`'s retrieval check: FAISS and milvus-lite open; a Milvus server URI nobody answers on
    fails with the URI and the file that names it."""
    from perception_nodes.cli.doctor import _retrieval_backend

    def params(text):
        path = tmp_path / "params.yaml"
        path.write_text("/**/retrieval:\n  ros__parameters:\n" + textwrap.indent(textwrap.dedent(text), "    "))
        return path

    assert _retrieval_backend(params("backend: faiss\n")).startswith("faiss")
    assert _retrieval_backend(params(f"backend: milvus\nmilvus_uri: {tmp_path}/x.db\n")).startswith("milvus-lite")
    with pytest.raises(RuntimeError, match=r"http://127\.0\.0\.1:9 .*does not answer"):
        _retrieval_backend(params("backend: milvus\nmilvus_uri: http://127.0.0.1:9\n"))
    with pytest.raises(RuntimeError, match="neither faiss nor milvus"):
        _retrieval_backend(params("backend: annoy\n"))


def test_two_stores_on_one_milvus_keep_their_own_collections(tmp_path):
    """Two sites' indexes on one Milvus (here one milvus-lite file standing in for a shared server): each store
    has its own collection, so their item ids (both from 1) never collide and neither store's start-up
    reconciliation removes the other's items."""
    uri = str(tmp_path / "shared.db")
    rng = np.random.default_rng(9)
    first = RetrievalIndex(tmp_path / "site_a", EMBEDDER, 16, backend="milvus", milvus_uri=uri)
    a_ids = first.insert([Observation("cam0", T0 + i, 0, "car") for i in range(5)], rng.standard_normal((5, 16)))
    second = RetrievalIndex(tmp_path / "site_b", EMBEDDER, 16, backend="milvus", milvus_uri=uri)
    b_ids = second.insert([Observation("cam0", T0 + i, 0, "car") for i in range(3)], rng.standard_normal((3, 16)))
    assert a_ids[:3] == b_ids and first.store.store_id != second.store.store_id
    assert len(first) == 5 and len(second) == 3
    first.close()
    second.close()
    reopened = RetrievalIndex(tmp_path / "site_a", EMBEDDER, 16, backend="milvus", milvus_uri=uri)
    assert len(reopened) == 5 and not reopened.warnings
    reopened.close()
