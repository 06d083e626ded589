import math

import numpy as np
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
