"""sensor_msgs/Image and CompressedImage <-> numpy, with cv_bridge's encoding rules.

Pure Python (no rclpy). Decoding is zero-copy whenever the message layout allows
(native byte order): the returned array is a read-only view of the message buffer,
with row padding (``step`` larger than a packed row) expressed as strides.
Malformed messages raise :class:`~perception_nodes.errors.ImageFormatError`.

Encoding names follow sensor_msgs/image_encodings.hpp: named encodings (rgb8,
bgr8, rgba8, bgra8, mono8, mono16, bayer_*, yuv422) and the generic
``<bits><U|S|F>C<channels>`` form (8UC3, 16UC1, 32FC1, ...).
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass

import numpy as np

from perception_nodes.errors import ImageFormatError


@dataclass(frozen=True)
class EncodingInfo:
    dtype: np.dtype
    channels: int


_NAMED = {
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "mono16": (np.uint16, 1),
    "rgb16": (np.uint16, 3), "bgr16": (np.uint16, 3), "rgba16": (np.uint16, 4), "bgra16": (np.uint16, 4),
    "yuv422": (np.uint8, 2), "uyvy": (np.uint8, 2), "yuyv": (np.uint8, 2), "yuv422_yuy2": (np.uint8, 2),
}
for _pattern in ("rggb", "bggr", "gbrg", "grbg"):
    _NAMED[f"bayer_{_pattern}8"] = (np.uint8, 1)
    _NAMED[f"bayer_{_pattern}16"] = (np.uint16, 1)

_GENERIC = re.compile(r"^(8|16|32|64)([USF])C([1-9][0-9]*)$")
_GENERIC_DTYPES = {
    ("8", "U"): np.uint8, ("8", "S"): np.int8, ("16", "U"): np.uint16, ("16", "S"): np.int16,
    ("32", "S"): np.int32, ("32", "F"): np.float32, ("64", "F"): np.float64,
}
_HOST_BIG_ENDIAN = sys.byteorder == "big"


def encoding_info(encoding: str) -> EncodingInfo:
    """dtype and channel count of an encoding name; ImageFormatError if unknown."""
    if encoding in _NAMED:
        dtype, channels = _NAMED[encoding]
        return EncodingInfo(np.dtype(dtype), channels)
    match = _GENERIC.match(encoding or "")
    if match and (match.group(1), match.group(2)) in _GENERIC_DTYPES:
        return EncodingInfo(np.dtype(_GENERIC_DTYPES[(match.group(1), match.group(2))]), int(match.group(3)))
    raise ImageFormatError(f"unknown image encoding {encoding!r}")


def image_to_numpy(msg, *, copy: bool = False) -> np.ndarray:
    """View (or with ``copy=True`` copy) an Image message's pixels as an array.

    Shape is (height, width) for one channel, else (height, width, channels).
    Validates that ``step`` holds a row, is a multiple of the element size, and
    that ``len(data) == step * height``.
    """
    info = encoding_info(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    itemsize = info.dtype.itemsize
    row_bytes = width * info.channels * itemsize
    if height < 0 or width < 0:
        raise ImageFormatError(f"negative image size {width}x{height}")
    if step < row_bytes:
        raise ImageFormatError(f"step {step} is smaller than one row ({width} px x {info.channels} ch x {itemsize} B = {row_bytes})")
    if step % itemsize:
        raise ImageFormatError(f"step {step} is not a multiple of the {itemsize}-byte element of {msg.encoding}")
    buffer = msg.data
    size = len(buffer) if not isinstance(buffer, np.ndarray) else buffer.nbytes
    if size != step * height:
        raise ImageFormatError(f"data has {size} bytes, expected step*height = {step}*{height} = {step * height}")
    dtype = info.dtype.newbyteorder(">" if msg.is_bigendian else "<") if itemsize > 1 else info.dtype
    flat = np.frombuffer(buffer, dtype=np.uint8)
    if height == 0 or width == 0:
        shape = (height, width) if info.channels == 1 else (height, width, info.channels)
        return np.zeros(shape, dtype=info.dtype)
    shape = (height, width, info.channels)
    strides = (step, info.channels * itemsize, itemsize)
    # step is a multiple of itemsize (checked above), so the buffer views as dtype.
    array = np.lib.stride_tricks.as_strided(flat.view(dtype), shape=shape, strides=strides, writeable=False)
    if info.channels == 1:
        array = array[:, :, 0]
    if itemsize > 1 and bool(msg.is_bigendian) != _HOST_BIG_ENDIAN:
        return array.astype(info.dtype.newbyteorder("="))
    return array.copy() if copy else array


def numpy_to_image(array: np.ndarray, encoding: str, msg=None, header=None):
    """Fill an Image message (a new sensor_msgs/Image when ``msg`` is None).

    The array's dtype and channel count must match ``encoding``; rows are packed
    (``step = width * channels * itemsize``) in host byte order.
    """
    info = encoding_info(encoding)
    array = np.asarray(array)
    channels = 1 if array.ndim == 2 else (array.shape[2] if array.ndim == 3 else -1)
    if channels != info.channels:
        raise ImageFormatError(f"array of shape {array.shape} does not have the {info.channels} channel(s) of {encoding}")
    if array.dtype != info.dtype:
        raise ImageFormatError(f"array dtype {array.dtype} does not match {encoding} ({info.dtype})")
    if msg is None:
        from sensor_msgs.msg import Image  # deferred: keeps this module importable without ROS

        msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = _HOST_BIG_ENDIAN
    msg.step = int(array.shape[1] * info.channels * info.dtype.itemsize)
    msg.data = np.ascontiguousarray(array).tobytes()
    return msg


def convert_color(array: np.ndarray, source: str, target: str) -> np.ndarray:
    """Convert between encodings with cv_bridge's rules (``cv_bridge.convert_encoding``: colour orders, 8/16-bit
    depth scaling, YUV 4:2:2 and Bayer sources); ImageFormatError when the conversion makes no sense."""
    if source == target:
        return array
    from perception_nodes.cv_bridge import convert_encoding  # one conversion table, cv_bridge's

    return convert_encoding(array, source, target)


def image_to_bgr8(msg) -> np.ndarray:
    """Decode any colour/mono 8-bit Image message into a contiguous BGR array."""
    array = image_to_numpy(msg)
    return np.ascontiguousarray(convert_color(array, msg.encoding, "bgr8"))


COMPRESSION_FORMATS = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png", "bmp": ".bmp", "tiff": ".tiff", "tif": ".tiff"}


def compress(array: np.ndarray, encoding: str, fmt: str = "jpeg", quality: int = 90, msg=None, header=None):
    """Encode an image into a CompressedImage (image_transport's format string ``"<encoding>; <fmt> compressed
    <coded>"``). Colour goes into the file in OpenCV's BGR(A) order, as cv_bridge and image_transport write it,
    so every image reader shows the right colours; jpeg takes 8-bit data, png and tiff 8 or 16-bit."""
    import cv2

    if fmt not in COMPRESSION_FORMATS:
        raise ImageFormatError(f"unsupported compression format {fmt!r} ({', '.join(COMPRESSION_FORMATS)})")
    info = encoding_info(encoding)
    if fmt in ("jpeg", "jpg", "bmp") and info.dtype != np.uint8:
        raise ImageFormatError(f"{fmt} needs 8-bit data, {encoding} is {info.dtype}")
    coded = encoding
    if encoding.startswith("rgb"):  # rgb8, rgba8, rgb16, rgba16: swap to the file's BGR(A) order
        coded = "bgr" + encoding[3:]
        code = cv2.COLOR_RGBA2BGRA if info.channels == 4 else cv2.COLOR_RGB2BGR
        array = cv2.cvtColor(np.ascontiguousarray(array), code)
    if fmt in ("jpeg", "jpg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif fmt == "png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    else:
        params = []
    ok, buffer = cv2.imencode(COMPRESSION_FORMATS[fmt], np.ascontiguousarray(array), params)
    if not ok:
        raise ImageFormatError(f"OpenCV could not encode a {encoding} image as {fmt}")
    if msg is None:
        from sensor_msgs.msg import CompressedImage

        msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = f"{encoding}; {fmt} compressed {coded}"
    msg.data = buffer.tobytes()
    return msg


def decompress(msg) -> tuple[np.ndarray, str]:
    """Decode a CompressedImage; returns (array, encoding of the array)."""
    import cv2

    fmt = (msg.format or "").strip()
    original = fmt.split(";")[0].strip() if ";" in fmt else ""
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageFormatError("compressed image has no data")
    array = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageFormatError(f"compressed image (format {fmt!r}) could not be decoded")
    if array.ndim == 2:
        encoding = original if original in ("mono8", "mono16", "16UC1", "8UC1") else ("mono16" if array.dtype == np.uint16 else "mono8")
        return array, encoding
    depth = "16" if array.dtype == np.uint16 else "8"
    if array.shape[2] == 4:
        if original.startswith("rgba"):
            return cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA), f"rgba{depth}"
        return array, f"bgra{depth}"
    if original.startswith("rgb"):
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB), f"rgb{depth}"
    return array, f"bgr{depth}"
