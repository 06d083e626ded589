import math
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_nodes.geometry import Transform, matrix_from_rpy, quaternion_from_matrix, rotation_angle_deg
from perception_nodes.tf import (
    ConnectivityException,
    ExtrapolationException,
    LookupException,
    StampedTransform,
    TransformBuffer,
    TransformException,
)

S = 1_000_000_000


def _random_transform(draw):
    angles = draw(st.tuples(*[st.floats(-math.pi, math.pi)] * 3))
    t = draw(st.tuples(*[st.floats(-50, 50)] * 3))
    return Transform(matrix_from_rpy(*angles), np.asarray(t))


@st.composite
def trees(draw):
    """A random static tree: frame i > 0 hangs under a random earlier frame."""
    n = draw(st.integers(2, 9))
    parents = [None] + [draw(st.integers(0, i - 1)) for i in range(1, n)]
    edges = {i: _random_transform(draw) for i in range(1, n)}
    return parents, edges


def _buffer(parents, edges):
    buffer = TransformBuffer()
    for child, parent in enumerate(parents):
        if parent is not None:
            buffer.set_transform(StampedTransform.from_transform(f"f{parent}", f"f{child}", 0, edges[child]), static=True)
    return buffer


def _to_root(frame, parents, edges):
    T = Transform.identity()
    while parents[frame] is not None:
        T = edges[frame] @ T
        frame = parents[frame]
    return T


def _close(a: StampedTransform, b: Transform, tol=1e-6):
    ta = a.transform()
    assert np.allclose(ta.t, b.t, atol=tol) and rotation_angle_deg(ta.R, b.R) < 1e-5


@settings(max_examples=60, deadline=None)
@given(trees(), st.data())
def test_chained_lookup_matches_composition_through_the_root(tree, data):
    parents, edges = tree
    buffer = _buffer(parents, edges)
    a, b = data.draw(st.integers(0, len(parents) - 1)), data.draw(st.integers(0, len(parents) - 1))
    expected = _to_root(a, parents, edges).inverse() @ _to_root(b, parents, edges)
    _close(buffer.lookup_transform(f"f{a}", f"f{b}"), expected)


@settings(max_examples=60, deadline=None)
@given(trees(), st.data())
def test_inverse_and_composition_consistency(tree, data):
    parents, edges = tree
    buffer = _buffer(parents, edges)
    n = len(parents)
    a, b, c = (data.draw(st.integers(0, n - 1)) for _ in range(3))
    ab = buffer.lookup_transform(f"f{a}", f"f{b}").transform()
    ba = buffer.lookup_transform(f"f{b}", f"f{a}").transform()
    bc = buffer.lookup_transform(f"f{b}", f"f{c}").transform()
    _close(buffer.lookup_transform(f"f{b}", f"f{a}"), ab.inverse())
    _close(buffer.lookup_transform(f"f{a}", f"f{c}"), ab @ bc)
    assert np.allclose((ab @ ba).t, 0, atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(st.floats(-3, 3), st.floats(-3, 3), st.floats(0, 1), st.tuples(*[st.floats(-10, 10)] * 3),
       st.tuples(*[st.floats(-10, 10)] * 3))
def test_interpolation_matches_closed_form(yaw0, yaw1, fraction, t0, t1):
    """Between two samples: translation is linear, a rotation about z turns at a constant rate."""
    buffer = TransformBuffer()
    for stamp, yaw, t in ((1 * S, yaw0, t0), (3 * S, yaw1, t1)):
        buffer.set_transform(StampedTransform.from_transform("world", "robot", stamp,
                                                             Transform(matrix_from_rpy(0, 0, yaw), np.asarray(t))))
    stamp = 1 * S + int(fraction * 2 * S)
    f = (stamp - S) / (2 * S)
    delta = (yaw1 - yaw0 + math.pi) % (2 * math.pi) - math.pi
    expected = Transform(matrix_from_rpy(0, 0, yaw0 + f * delta), np.asarray(t0) + f * (np.asarray(t1) - np.asarray(t0)))
    _close(buffer.lookup_transform("world", "robot", stamp), expected, tol=1e-6)


def test_static_edges_hold_at_any_time_and_latest_common_time():
    buffer = TransformBuffer()
    buffer.set_transform(StampedTransform("map", "cam_link", 0, (1, 2, 3), (0, 0, 0, 1)), static=True)
    buffer.set_transform(StampedTransform("world", "map", 5 * S, (0, 0, 0), (0, 0, 0, 1)))
    buffer.set_transform(StampedTransform("world", "map", 7 * S, (2, 0, 0), (0, 0, 0, 1)))
    assert buffer.lookup_transform("map", "cam_link", 123 * S).translation == (1, 2, 3)
    latest = buffer.lookup_transform("world", "cam_link")  # time 0: latest common time
    assert latest.stamp_ns == 7 * S and latest.translation == pytest.approx((3, 2, 3))


def test_errors_unknown_frame_disconnected_and_extrapolation():
    buffer = TransformBuffer()
    buffer.set_transform(StampedTransform("a", "b", 1 * S, (0, 0, 0), (0, 0, 0, 1)))
    buffer.set_transform(StampedTransform("a", "b", 2 * S, (1, 0, 0), (0, 0, 0, 1)))
    buffer.set_transform(StampedTransform("x", "y", 0, (0, 0, 0), (0, 0, 0, 1)), static=True)
    with pytest.raises(LookupException, match="nope"):
        buffer.lookup_transform("a", "nope")
    with pytest.raises(ConnectivityException):
        buffer.lookup_transform("a", "y")
    with pytest.raises(ExtrapolationException, match="future"):
        buffer.lookup_transform("a", "b", 3 * S)
    with pytest.raises(ExtrapolationException, match="past"):
        buffer.lookup_transform("a", "b", S // 2)
    assert all(issubclass(e, TransformException) for e in (LookupException, ConnectivityException, ExtrapolationException))


def test_invalid_transforms_are_rejected():
    buffer = TransformBuffer()
    with pytest.raises(TransformException, match="TF_SELF_TRANSFORM"):
        buffer.set_transform(StampedTransform("a", "a", 0, (0, 0, 0), (0, 0, 0, 1)))
    with pytest.raises(TransformException, match="TF_NAN_INPUT"):
        buffer.set_transform(StampedTransform("a", "b", 0, (math.nan, 0, 0), (0, 0, 0, 1)))
    with pytest.raises(TransformException, match="TF_DENORMALIZED_QUATERNION: .* invalid quaternion"):
        buffer.set_transform(StampedTransform("a", "b", 0, (0, 0, 0), (0, 0, 0, 0)))
    buffer.set_transform(StampedTransform("a", "b", 0, (0, 0, 0), (0, 0, 0, 1)), static=True)
    with pytest.raises(TransformException, match="loop"):
        buffer.set_transform(StampedTransform("b", "a", 0, (0, 0, 0), (0, 0, 0, 1)), static=True)


def test_cache_duration_drops_old_samples():
    buffer = TransformBuffer(cache_duration_s=2.0)
    for second in range(10):
        buffer.set_transform(StampedTransform("a", "b", second * S, (second, 0, 0), (0, 0, 0, 1)))
    assert buffer.lookup_transform("a", "b", 8 * S).translation[0] == pytest.approx(8)
    with pytest.raises(ExtrapolationException):
        buffer.lookup_transform("a", "b", 5 * S)


def test_lookup_waits_for_data_from_another_thread():
    buffer = TransformBuffer()
    buffer.set_transform(StampedTransform("map", "odom", 1 * S, (0, 0, 0), (0, 0, 0, 1)))
    threading.Timer(0.2, lambda: buffer.set_transform(
        StampedTransform("map", "odom", 2 * S, (4, 0, 0), (0, 0, 0, 1)))).start()
    assert buffer.lookup_transform("map", "odom", 2 * S, timeout_s=3.0).translation[0] == 4
    with pytest.raises(ExtrapolationException, match="waited"):
        buffer.lookup_transform("map", "odom", 9 * S, timeout_s=0.2)


def test_quaternion_from_matrix_is_canonical():
    q = quaternion_from_matrix(matrix_from_rpy(0.3, -0.2, 2.5))
    assert q[3] >= 0 and abs(np.linalg.norm(q) - 1) < 1e-12
