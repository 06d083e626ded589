"""Box helpers shared by detection, tracking, localization and the nodes (pure numpy)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from perception_nodes.boxes import covered_fraction, iou_matrix, set_xyxy, xyxy_of


def test_covered_fraction_is_the_largest_share_another_box_hides():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [100, 100, 110, 110], [101, 101, 103, 103]], float)
    assert np.allclose(covered_fraction(boxes), [0.5, 0.5, 0.04, 1.0])
    assert covered_fraction(boxes[:1]).tolist() == [0.0]
    assert covered_fraction(np.zeros((0, 4))).shape == (0,)


def test_centre_size_messages_round_trip_to_corners():
    box = SimpleNamespace(center_x=0.0, center_y=0.0, width=0.0, height=0.0)
    set_xyxy(box, 10, 20, 50, 80)
    assert (box.center_x, box.center_y, box.width, box.height) == (30.0, 50.0, 40.0, 60.0)
    assert xyxy_of(box) == (10.0, 20.0, 50.0, 80.0)


def test_iou_of_identical_and_disjoint_boxes():
    a = np.array([[0, 0, 10, 10]], float)
    assert np.allclose(iou_matrix(a, np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)), [[1.0, 0.0]])
