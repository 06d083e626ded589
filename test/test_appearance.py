"""Colour-histogram appearance embeddings (no rclpy)."""
import numpy as np
import pytest

from perception_nodes.reid.appearance import ColorHistogramEmbedder
from perception_nodes.errors import ImageFormatError
from perception_nodes.world import World, load_scene


def test_embeddings_are_unit_rows_and_zero_where_a_box_has_no_pixels():
    image = np.zeros((100, 100, 3), np.uint8)
    image[20:60, 20:60] = (0, 0, 200)
    embedder = ColorHistogramEmbedder()
    out = embedder.embed(image, np.array([[20, 20, 60, 60], [90, 90, 91, 91], [200, 200, 260, 260],
                                          [np.nan, 0, 10, 10]]))
    assert out.shape == (4, embedder.dim) and out.dtype == np.float32
    assert np.linalg.norm(out[0]) == pytest.approx(1.0, abs=1e-6)
    assert not np.any(out[1:])  # a 1 px box, a box outside the image, a NaN box: no appearance
    assert embedder.embed(image, np.zeros((0, 4))).shape == (0, embedder.dim)


def test_colour_separates_objects_and_background_at_the_edge_barely_matters():
    rng = np.random.default_rng(0)
    background = rng.integers(60, 90, (120, 200, 3)).astype(np.uint8)
    red, blue = background.copy(), background.copy()
    red[30:90, 40:80] = (30, 30, 220)
    blue[30:90, 40:80] = (220, 60, 30)
    embedder = ColorHistogramEmbedder()
    a = embedder.embed(red, np.array([[40, 30, 80, 90]]))[0]
    a_loose = embedder.embed(red, np.array([[36, 26, 84, 94]]))[0]  # a looser box around the same object
    b = embedder.embed(blue, np.array([[40, 30, 80, 90]]))[0]
    assert a @ a_loose > 0.95 and a @ b < 0.2


def test_the_same_synthetic_object_stays_similar_across_frames():
    world = World(load_scene("crossing"))
    embedder = ColorHistogramEmbedder()

    def by_id(frame):
        image, boxes = world.render(0, frame)
        boxes = [b for b in boxes if b.visible_fraction > 0.9 and b.bbox[3] - b.bbox[1] > 20]
        rows = embedder.embed(image, np.array([b.bbox for b in boxes]))
        return {b.global_id: (b.class_id, row) for b, row in zip(boxes, rows)}

    first, later = by_id(2), by_id(8)
    common = set(first) & set(later)
    assert len(common) >= 2
    for gid in common:
        same = first[gid][1] @ later[gid][1]
        others = [first[gid][1] @ later[o][1] for o in common if o != gid and later[o][0] == first[gid][0]]
        assert same > 0.8 and all(same > o for o in others), (gid, same, others)


def test_bad_images_are_refused_with_a_clear_error():
    embedder = ColorHistogramEmbedder()
    with pytest.raises(ImageFormatError):
        embedder.embed(np.zeros((10, 10), np.uint8), np.array([[0, 0, 5, 5]]))
    with pytest.raises(ImageFormatError):
        embedder.embed(np.zeros((10, 10, 3), np.float32), np.array([[0, 0, 5, 5]]))
    with pytest.raises(ValueError):
        ColorHistogramEmbedder(inner=0.0)
