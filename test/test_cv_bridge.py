"""The cv_bridge stand-in, written from cv_bridge's documented API and sensor_msgs/image_encodings semantics.

Needs the sensor_msgs Python types (the ROS wheels), not rclpy.
"""
import io
import sys

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_nodes.cv_bridge import CvBridge, CvBridgeError, convert_encoding, cvt_color_for_display

BRIDGE = CvBridge()
COLOR_8 = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"]
COLOR_16 = ["rgb16", "bgr16", "rgba16", "bgra16", "mono16"]
CHANNELS = {"rgb": 3, "bgr": 3, "rgba": 4, "bgra": 4, "mono": 1}


def _random_image(encoding, height=5, width=7, seed=0):
    dtype, channels = BRIDGE.encoding_to_dtype_with_channels(encoding)
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.floating):
        data = rng.normal(0, 100, (height, width, channels)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        data = rng.integers(info.min, info.max, (height, width, channels), dtype=dtype, endpoint=True)
    return data[:, :, 0] if channels == 1 else data


def _order(encoding):
    return encoding.rstrip("0123456789")


# -- passthrough round trips ---------------------------------------------------------------------------------------
ALL_ENCODINGS = COLOR_8 + COLOR_16 + ["8UC1", "8UC3", "8SC2", "16UC1", "16SC3", "32SC1", "32FC1", "32FC3", "64FC1",
                                      "yuv422", "yuv422_yuy2", "bayer_rggb8", "bayer_gbrg16"]


@pytest.mark.parametrize("encoding", ALL_ENCODINGS)
def test_passthrough_round_trip_is_exact_packed_and_writable(encoding):
    image = _random_image(encoding)
    msg = BRIDGE.cv2_to_imgmsg(image, encoding)
    assert msg.encoding == encoding and msg.step == image.shape[1] * image.itemsize * (
        1 if image.ndim == 2 else image.shape[2])
    back = BRIDGE.imgmsg_to_cv2(msg)
    assert back.dtype == image.dtype and back.shape == image.shape and np.array_equal(back, image)
    assert back.flags.c_contiguous and back.flags.writeable
    cv2.rectangle(back if back.ndim == 3 else back[..., None], (0, 0), (2, 2), 1)  # OpenCV can draw on it


def test_passthrough_encoding_names_the_opencv_type():
    assert BRIDGE.cv2_to_imgmsg(np.zeros((2, 3, 3), np.uint8)).encoding == "8UC3"
    assert BRIDGE.cv2_to_imgmsg(np.zeros((2, 3), np.float32)).encoding == "32FC1"
    with pytest.raises(CvBridgeError, match="incompatible type 8UC3"):
        BRIDGE.cv2_to_imgmsg(np.zeros((2, 3, 3), np.uint8), "mono8")
    with pytest.raises(CvBridgeError):
        BRIDGE.cv2_to_imgmsg([[1, 2]], "mono8")  # not an array
    with pytest.raises(CvBridgeError):
        BRIDGE.cv2_to_imgmsg(np.zeros((2, 3), np.uint8), "no_such_encoding")


def test_row_padding_is_removed_and_the_result_is_writable():
    from sensor_msgs.msg import Image

    image = _random_image("bgr8", 4, 5)
    padded = np.zeros((4, 5 * 3 + 9), np.uint8)
    padded[:, :15] = image.reshape(4, 15)
    msg = Image(height=4, width=5, encoding="bgr8", step=24)
    msg.data = padded.tobytes()
    out = BRIDGE.imgmsg_to_cv2(msg)
    assert np.array_equal(out, image) and out.flags.c_contiguous and out.flags.writeable
    cv2.circle(out, (2, 2), 1, (255, 0, 0))
    odd = Image(height=2, width=3, encoding="mono16", step=7)  # a step that is not a multiple of 2
    pixels = np.arange(6, dtype=np.uint16).reshape(2, 3)
    rows = np.zeros((2, 7), np.uint8)
    rows[:, :6] = pixels.view(np.uint8).reshape(2, 6)
    odd.data = rows.tobytes()
    assert np.array_equal(BRIDGE.imgmsg_to_cv2(odd), pixels)
    short = Image(height=4, width=5, encoding="bgr8", step=15)
    short.data = bytes(20)
    with pytest.raises(CvBridgeError, match="too short"):
        BRIDGE.imgmsg_to_cv2(short)


def test_zero_copy_only_where_the_layout_already_allows_it():
    msg = BRIDGE.cv2_to_imgmsg(_random_image("bgr8"), "bgr8")
    first = BRIDGE.imgmsg_to_cv2(msg)
    first[0, 0, 0] = 7  # rclpy's array buffer is writable: the view shares it
    assert BRIDGE.imgmsg_to_cv2(msg)[0, 0, 0] == 7


def test_big_endian_arrays_and_messages():
    image = _random_image("mono16").astype(">u2")
    msg = BRIDGE.cv2_to_imgmsg(image, "mono16")
    assert msg.is_bigendian and bytes(msg.data) == image.tobytes()
    back = BRIDGE.imgmsg_to_cv2(msg)
    assert back.dtype == np.dtype("uint16") and back.dtype.isnative and np.array_equal(back, image)
    assert np.array_equal(BRIDGE.imgmsg_to_cv2(msg, "mono8"), convert_encoding(image.astype(np.uint16), "mono16",
                                                                               "mono8"))


# -- conversions ---------------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(source=st.sampled_from(COLOR_8 + COLOR_16), target=st.sampled_from(COLOR_8 + COLOR_16),
       seed=st.integers(0, 2**16), height=st.integers(1, 6), width=st.integers(1, 6))
def test_every_colour_pair_converts_like_cv_bridge(source, target, seed, height, width):
    """Each pair: the depth is scaled as cv_bridge scales it and the channels follow the names; converting back
    recovers every channel both encodings have (mono and alpha are not invertible: checked by formula)."""
    image = _random_image(source, height, width, seed)
    out = BRIDGE.imgmsg_to_cv2(BRIDGE.cv2_to_imgmsg(image, source), target)
    dtype, channels = BRIDGE.encoding_to_dtype_with_channels(target)
    assert out.dtype == dtype and (out.shape[2] if out.ndim == 3 else 1) == channels
    src_order, dst_order = _order(source), _order(target)
    src_bits, dst_bits = int(source[len(src_order):]), int(target[len(dst_order):])

    def scaled(values):
        if src_bits == dst_bits:
            return values.astype(np.int64)
        if dst_bits == 16:
            return values.astype(np.int64) * 257
        return np.clip(np.rint(values.astype(np.float64) * 255.0 / 65535.0), 0, 255).astype(np.int64)

    def channel(array, order, name):
        return array if order == "mono" else array[..., order.index(name)]

    if src_order != "mono" and dst_order != "mono":
        for name in "rgb":
            assert np.array_equal(channel(out, dst_order, name), scaled(channel(image, src_order, name)))
        if dst_order.endswith("a"):
            alpha = channel(out, dst_order, "a")
            if src_order.endswith("a"):
                assert np.array_equal(alpha, scaled(channel(image, src_order, "a")))
            else:
                assert np.all(alpha == np.iinfo(dtype).max)  # opaque
    elif src_order == "mono" and dst_order != "mono":
        for name in "rgb":
            assert np.array_equal(channel(out, dst_order, name), scaled(image))
    elif src_order != "mono":  # to mono: ITU-R BT.601 luma, as OpenCV and cv_bridge compute it
        grey = (0.299 * channel(image, src_order, "r") + 0.587 * channel(image, src_order, "g")
                + 0.114 * channel(image, src_order, "b"))
        expected = scaled(np.rint(grey).astype(image.dtype))
        assert np.max(np.abs(out.astype(np.int64) - expected)) <= (2 if dst_bits == src_bits else 258)
    else:
        assert np.array_equal(out, scaled(image))
    if src_order == dst_order or (src_order != "mono" and dst_order != "mono" and not src_order.endswith("a")):
        back = convert_encoding(out, target, source)
        if src_bits <= dst_bits:
            assert np.array_equal(back, image)


def test_depth_scaling_is_cv_bridges():
    assert convert_encoding(np.array([[0, 1, 128, 255]], np.uint8), "mono8", "mono16").tolist() == \
        [[0, 257, 32896, 65535]]
    assert convert_encoding(np.array([[0, 257, 32896, 65535, 128]], np.uint16), "mono16", "mono8").tolist() == \
        [[0, 1, 128, 255, 0]]
    mono16 = np.array([[0, 65535]], np.uint16)
    assert convert_encoding(mono16, "mono16", "bgr8").tolist() == [[[0, 0, 0], [255, 255, 255]]]


def test_yuv422_and_bayer_convert_to_colour():
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[:, :] = (40, 160, 220)
    for source, code in (("yuv422", cv2.COLOR_BGR2YUV_UYVY if hasattr(cv2, "COLOR_BGR2YUV_UYVY") else None),
                         ("yuv422_yuy2", cv2.COLOR_BGR2YUV_YUY2 if hasattr(cv2, "COLOR_BGR2YUV_YUY2") else None)):
        if code is None:
            continue
        yuv = cv2.cvtColor(bgr, code)
        out = BRIDGE.imgmsg_to_cv2(BRIDGE.cv2_to_imgmsg(yuv, source), "bgr8")
        assert np.max(np.abs(out.astype(int) - bgr.astype(int))) <= 3, source
    mosaic = np.zeros((4, 4), np.uint8)  # RGGB: R at (0,0), G at (0,1)/(1,0), B at (1,1)
    mosaic[0::2, 0::2], mosaic[0::2, 1::2], mosaic[1::2, 0::2], mosaic[1::2, 1::2] = 200, 100, 100, 30
    out = BRIDGE.imgmsg_to_cv2(BRIDGE.cv2_to_imgmsg(mosaic, "bayer_rggb8"), "rgb8")
    assert tuple(out[1, 1]) == (200, 100, 30)
    with pytest.raises(CvBridgeError, match="not supported"):
        convert_encoding(bgr, "bgr8", "yuv422")


def test_generic_types_are_not_colour_formats():
    image = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(CvBridgeError, match="is not a color format"):
        convert_encoding(image, "8UC3", "bgr8")
    assert convert_encoding(image, "bgr8", "8UC3") is image  # same channels: the data as it is
    with pytest.raises(CvBridgeError, match="channels"):
        convert_encoding(image, "bgr8", "8UC1")
    assert convert_encoding(np.array([[255]], np.uint8), "8UC1", "16UC1").tolist() == [[65535]]
    with pytest.raises(CvBridgeError):
        convert_encoding(np.zeros((2, 2), np.float32), "32FC1", "16UC1")


# -- compression ---------------------------------------------------------------------------------------------------
def test_png_keeps_the_colours_an_independent_reader_sees():
    """What cv_bridge writes: a pure red rgba8 image reads back red in PIL and in OpenCV (as BGR)."""
    from PIL import Image as PILImage

    from perception_nodes.image_codec import compress

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 255  # red, opaque
    for encoding, image in (("rgba8", rgba), ("rgb8", rgba[..., :3].copy())):
        msg = compress(image, encoding, "png")
        pil = np.asarray(PILImage.open(io.BytesIO(bytes(msg.data))))
        assert tuple(pil[0, 0, :3]) == (255, 0, 0), encoding  # PIL reads RGB(A)
        decoded = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_UNCHANGED)
        assert tuple(decoded[0, 0, :3]) == (0, 0, 255), encoding  # OpenCV reads BGR(A)
    bgr = cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGR)
    msg = BRIDGE.cv2_to_compressed_imgmsg(bgr, "png")
    assert msg.format == "png"
    assert tuple(np.asarray(PILImage.open(io.BytesIO(bytes(msg.data))))[0, 0]) == (255, 0, 0)
    assert tuple(BRIDGE.compressed_imgmsg_to_cv2(msg, "rgb8")[0, 0]) == (255, 0, 0)


@pytest.mark.parametrize("fmt", ["jpg", "jpeg", "png", "bmp", "tiff", "tif"])
def test_compressed_formats_round_trip(fmt):
    image = np.full((16, 16, 3), (10, 120, 240), np.uint8)
    msg = BRIDGE.cv2_to_compressed_imgmsg(image, fmt)
    out = BRIDGE.compressed_imgmsg_to_cv2(msg)
    assert out.shape == image.shape and np.max(np.abs(out.astype(int) - image.astype(int))) <= (8 if "jp" in fmt
                                                                                                 else 0)
    assert BRIDGE.compressed_imgmsg_to_cv2(msg, "mono8").shape == (16, 16)
    mono16 = np.arange(256, dtype=np.uint16).reshape(16, 16) * 200
    if fmt in ("png", "tiff", "tif"):
        assert np.array_equal(BRIDGE.compressed_imgmsg_to_cv2(BRIDGE.cv2_to_compressed_imgmsg(mono16, fmt)), mono16)
    with pytest.raises(CvBridgeError, match="unsupported"):
        BRIDGE.cv2_to_compressed_imgmsg(image, "gif89")


def test_corrupt_compressed_data_is_a_clear_error():
    from sensor_msgs.msg import CompressedImage

    msg = CompressedImage(format="jpeg")
    msg.data = b"not a jpeg"
    with pytest.raises(CvBridgeError, match="could not be decoded"):
        BRIDGE.compressed_imgmsg_to_cv2(msg)
    with pytest.raises(CvBridgeError, match="no data"):
        BRIDGE.compressed_imgmsg_to_cv2(CompressedImage(format="jpeg"))


# -- display -------------------------------------------------------------------------------------------------------
def test_cvt_color_for_display():
    depth = np.array([[0.0, 0.5, 1.0, np.nan]], np.float32)
    shown = cvt_color_for_display(depth, "32FC1")
    assert shown.shape == (1, 4, 3) and shown[0, :, 0].tolist() == [0, 128, 255, 0]
    mm = np.array([[1000, 2000, 3000]], np.uint16)
    dynamic = cvt_color_for_display(mm, "16UC1", do_dynamic_scaling=True)
    assert dynamic[0, :, 0].tolist() == [0, 128, 255]
    fixed = cvt_color_for_display(mm, "16UC1", min_image_value=0, max_image_value=4000)
    assert fixed[0, :, 0].tolist() == [64, 128, 191]
    jet = cvt_color_for_display(mm, "16UC1", do_dynamic_scaling=True, colormap=cv2.COLORMAP_JET)
    assert jet.shape == (1, 3, 3) and not np.array_equal(jet[0, 0], jet[0, 2])
    labels = np.array([[0, 1, 1, 2]], np.int32)
    coloured = cvt_color_for_display(labels, "32SC1", bg_label=0)
    assert tuple(coloured[0, 0]) == (0, 0, 0) and np.array_equal(coloured[0, 1], coloured[0, 2])
    rgb = np.zeros((1, 1, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    assert tuple(cvt_color_for_display(rgb, "rgb8")[0, 0]) == (0, 0, 255)
    with pytest.raises(CvBridgeError):
        cvt_color_for_display(rgb, "rgb8", encoding_out="mono16")


def test_code_written_for_cv_bridge_runs_with_the_import_changed():
    """The usual node code: receive, convert for OpenCV, draw, publish back."""
    from perception_nodes.cv_bridge import CvBridge as Bridge  # was: from cv_bridge import CvBridge

    bridge = Bridge()
    incoming = bridge.cv2_to_imgmsg(np.zeros((48, 64, 3), np.uint8), "rgb8")
    incoming.header.frame_id = "cam0_optical_frame"
    frame = bridge.imgmsg_to_cv2(incoming, desired_encoding="bgr8")
    cv2.rectangle(frame, (4, 4), (20, 20), (0, 255, 0), 2)
    out = bridge.cv2_to_imgmsg(frame, encoding="bgr8", header=incoming.header)
    assert out.header.frame_id == "cam0_optical_frame" and out.encoding == "bgr8"
    jpeg = bridge.cv2_to_compressed_imgmsg(frame)
    assert jpeg.format == "jpg" and bridge.compressed_imgmsg_to_cv2(jpeg).shape == (48, 64, 3)
    assert sys.modules.get("cv_bridge") is None  # nothing imported the real (absent) package
