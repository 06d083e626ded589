import sys
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from perception_nodes.errors import ImageFormatError
from perception_nodes.image_codec import (
    compress,
    decompress,
    encoding_info,
    image_to_bgr8,
    image_to_numpy,
    numpy_to_image,
)


@dataclass
class FakeImage:
    """Field-compatible stand-in for sensor_msgs/Image (keeps these tests ROS-free)."""

    height: int = 0
    width: int = 0
    encoding: str = ""
    is_bigendian: int = 0
    step: int = 0
    data: bytes = b""
    header: object = None


ENCODINGS = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "mono8": (np.uint8, 1), "16UC1": (np.uint16, 1),
             "32FC1": (np.float32, 1), "8UC4": (np.uint8, 4), "mono16": (np.uint16, 1)}


def arrays_for(encoding):
    dtype, channels = ENCODINGS[encoding]
    shape = st.tuples(st.integers(1, 24), st.integers(1, 24)).map(lambda s: s if channels == 1 else (*s, channels))
    elements = st.floats(-1e6, 1e6, width=32) if dtype == np.float32 else None
    return hnp.arrays(dtype, shape, elements=elements)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_round_trip_is_exact(encoding, data):
    array = data.draw(arrays_for(encoding))
    msg = numpy_to_image(array, encoding, msg=FakeImage())
    assert msg.step == array.shape[1] * encoding_info(encoding).channels * array.dtype.itemsize
    assert len(msg.data) == msg.step * msg.height
    back = image_to_numpy(msg)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


@settings(max_examples=40, deadline=None)
@given(array=hnp.arrays(np.uint8, st.tuples(st.integers(1, 16), st.integers(1, 16), st.just(3))),
       padding=st.integers(1, 9))
def test_padded_rows_decode_as_a_view(array, padding):
    h, w, _ = array.shape
    step = w * 3 + padding
    buffer = np.zeros((h, step), np.uint8)
    buffer[:, : w * 3] = array.reshape(h, w * 3)
    msg = FakeImage(h, w, "bgr8", 0, step, buffer.tobytes())
    view = image_to_numpy(msg)
    np.testing.assert_array_equal(view, array)
    assert not view.flags.writeable  # a view of the message buffer, not a copy


def test_decode_is_zero_copy_for_packed_native_layout():
    array = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    buffer = bytearray(array.tobytes())
    view = image_to_numpy(FakeImage(4, 5, "rgb8", 0, 15, buffer))
    buffer[0] = 200  # the view sees writes to the message buffer
    assert view[0, 0, 0] == 200


@given(array=hnp.arrays(np.uint16, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_big_endian_16bit_is_byteswapped(array):
    msg = FakeImage(array.shape[0], array.shape[1], "16UC1", 1, array.shape[1] * 2, array.astype(">u2").tobytes())
    out = image_to_numpy(msg)
    np.testing.assert_array_equal(out, array)
    assert out.dtype.byteorder in ("=", "<" if sys.byteorder == "little" else ">", "|")


@pytest.mark.parametrize("msg, fragment", [
    (FakeImage(2, 2, "bgr8", 0, 6, b"\0" * 11), "expected step"),
    (FakeImage(2, 2, "no_such_encoding", 0, 6, b"\0" * 12), "unknown image encoding"),
    (FakeImage(2, 2, "16UC1", 0, 5, b"\0" * 10), "not a multiple"),
    (FakeImage(2, 4, "bgr8", 0, 6, b"\0" * 12), "smaller than one row"),
    (FakeImage(2, 2, "", 0, 6, b"\0" * 12), "unknown image encoding"),
])
def test_malformed_messages_raise_domain_error(msg, fragment):
    with pytest.raises(ImageFormatError, match=fragment):
        image_to_numpy(msg)


def test_encode_rejects_mismatched_arrays():
    with pytest.raises(ImageFormatError, match="channel"):
        numpy_to_image(np.zeros((4, 4), np.uint8), "bgr8", msg=FakeImage())
    with pytest.raises(ImageFormatError, match="dtype"):
        numpy_to_image(np.zeros((4, 4), np.float64), "32FC1", msg=FakeImage())


def test_zero_size_image_decodes_to_empty_array():
    out = image_to_numpy(FakeImage(0, 0, "bgr8", 0, 0, b""))
    assert out.shape == (0, 0, 3)


def test_real_sensor_msgs_image_round_trip():
    from sensor_msgs.msg import Image

    array = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    msg = numpy_to_image(array, "rgb8")
    assert isinstance(msg, Image)
    np.testing.assert_array_equal(image_to_numpy(msg), array)
    np.testing.assert_array_equal(image_to_bgr8(msg), array[:, :, ::-1])


@settings(max_examples=15, deadline=None)
@given(array=hnp.arrays(np.uint8, st.tuples(st.integers(8, 40), st.integers(8, 40), st.just(3))))
def test_png_compression_is_lossless(array):
    from sensor_msgs.msg import CompressedImage

    msg = compress(array, "bgr8", "png", msg=CompressedImage())
    assert msg.format == "bgr8; png compressed bgr8"
    out, encoding = decompress(msg)
    assert encoding == "bgr8"
    np.testing.assert_array_equal(out, array)


def test_jpeg_round_trip_is_close_and_keeps_rgb_order():
    from sensor_msgs.msg import CompressedImage

    y, x = np.mgrid[0:64, 0:96]
    array = np.stack([x * 2, y * 3, (x + y)], axis=-1).astype(np.uint8)
    msg = compress(array, "rgb8", "jpeg", quality=95, msg=CompressedImage())
    out, encoding = decompress(msg)
    assert encoding == "rgb8"
    assert np.abs(out.astype(int) - array.astype(int)).mean() < 3.0


def test_corrupt_compressed_data_raises():
    from sensor_msgs.msg import CompressedImage

    with pytest.raises(ImageFormatError):
        decompress(CompressedImage(format="jpeg", data=b"not a jpeg at all"))
    with pytest.raises(ImageFormatError):
        decompress(CompressedImage(format="jpeg", data=b""))
