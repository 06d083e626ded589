import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from perception_nodes.geometry import (
    Transform,
    matrix_from_quaternion,
    matrix_from_rpy,
    quaternion_from_matrix,
    rotation_angle_deg,
    rpy_from_matrix,
    slerp,
)

angles = st.floats(-math.pi, math.pi, allow_nan=False)
unit_quaternions = st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(
    lambda q: np.linalg.norm(q) > 0.1).map(lambda q: np.asarray(q) / np.linalg.norm(q))
vectors = st.lists(st.floats(-100, 100, allow_nan=False), min_size=3, max_size=3).map(np.asarray)


@given(unit_quaternions)
def test_quaternion_matrix_round_trip(q):
    back = quaternion_from_matrix(matrix_from_quaternion(q))
    assert min(np.linalg.norm(back - q), np.linalg.norm(back + q)) < 1e-9


@given(angles, st.floats(-1.5, 1.5), angles)
def test_rpy_round_trip(roll, pitch, yaw):
    R = matrix_from_rpy(roll, pitch, yaw)
    np.testing.assert_allclose(matrix_from_rpy(*rpy_from_matrix(R)), R, atol=1e-9)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)


@settings(max_examples=60)
@given(unit_quaternions, vectors, unit_quaternions, vectors, vectors)
def test_transform_inverse_and_composition(q1, t1, q2, t2, p):
    a, b = Transform.from_quaternion(t1, q1), Transform.from_quaternion(t2, q2)
    np.testing.assert_allclose((a @ a.inverse()).apply(p), p, atol=1e-9)
    np.testing.assert_allclose((a @ b).apply(p), a.apply(b.apply(p)), atol=1e-9)
    np.testing.assert_allclose((a @ b).inverse().apply(p), b.inverse().apply(a.inverse().apply(p)), atol=1e-9)


@given(angles, angles, st.floats(0, 1))
def test_slerp_about_one_axis_matches_closed_form(a0, a1, f):
    # Rotations about z: slerp is the linear interpolation of the angle along the shorter arc.
    q0, q1 = quaternion_from_matrix(matrix_from_rpy(0, 0, a0)), quaternion_from_matrix(matrix_from_rpy(0, 0, a1))
    delta = (a1 - a0 + math.pi) % (2 * math.pi) - math.pi
    assume(math.pi - abs(delta) > 1e-6)  # half a turn apart: both arcs are shortest, either is right
    expected = matrix_from_rpy(0, 0, a0 + f * delta)
    assert rotation_angle_deg(matrix_from_quaternion(slerp(q0, q1, f)), expected) < 1e-5


def test_slerp_endpoints():
    q0, q1 = quaternion_from_matrix(matrix_from_rpy(0.1, 0.2, 0.3)), quaternion_from_matrix(matrix_from_rpy(-1, 0.4, 2))
    assert rotation_angle_deg(matrix_from_quaternion(slerp(q0, q1, 0)), matrix_from_quaternion(q0)) < 1e-6
    assert rotation_angle_deg(matrix_from_quaternion(slerp(q0, q1, 1)), matrix_from_quaternion(q1)) < 1e-6


def test_rectangles_first_contact():
    from perception_nodes.geometry import rectangles_first_contact

    car = np.array([2.2, 0.9])
    # end-on: 10 m between centres closing at 5 m/s meet when 4.4 m apart
    assert rectangles_first_contact(np.array([10.0, 0.0]), np.array([-5.0, 0.0]), 0.0, car, 0.0, car, 5.0) == \
        pytest.approx(1.12)
    # side by side a stall apart (2.6 m, bodies 1.8 m wide): never, standing or sliding past
    for dv in ([0.0, 0.0], [0.0, -1.5]):
        assert np.isinf(rectangles_first_contact(np.array([2.6, 3.0]), np.array(dv), np.pi / 2, car, np.pi / 2, car,
                                                 5.0))
    assert rectangles_first_contact(np.array([0.0, 1.0]), np.zeros(2), 0.0, car, 0.0, car, 5.0) == 0.0
    # crossing: a at rest, b 10 m to its right driving towards it at 2 m/s, turned 90 degrees (so it reaches 2.2 m
    # along its course and a reaches 0.9 m across)
    t = rectangles_first_contact(np.array([0.0, -10.0]), np.array([0.0, 2.0]), 0.0, car, np.pi / 2, car, 10.0)
    assert t == pytest.approx((10.0 - 0.9 - 2.2) / 2.0)
    # beyond the horizon: none; broadcasting over leading dimensions
    assert np.isinf(rectangles_first_contact(np.array([10.0, 0.0]), np.array([-1.0, 0.0]), 0.0, car, 0.0, car, 1.0))
    many = rectangles_first_contact(np.array([[10.0, 0.0]] * 3), np.array([[-5.0, 0.0], [-2.0, 0.0], [5.0, 0.0]]),
                                    np.zeros(3), car, np.zeros(3), car, 5.0)
    assert many.shape == (3,) and many[0] == pytest.approx(1.12) and many[1] == pytest.approx(2.8) and \
        np.isinf(many[2])

