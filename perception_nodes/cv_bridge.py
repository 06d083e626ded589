"""A cv_bridge stand-in with cv_bridge's Python API and conversion semantics (pure Python + OpenCV, no rclpy).

Code written for ``cv_bridge`` runs with the import changed::

    from perception_nodes.cv_bridge import CvBridge, CvBridgeError   # was: from cv_bridge import ...
    bridge = CvBridge()
    image = bridge.imgmsg_to_cv2(msg, desired_encoding="bgr8")
    out = bridge.cv2_to_imgmsg(image, encoding="bgr8", header=msg.header)

Conversions follow cv_bridge (sensor_msgs/image_encodings): between rgb/bgr/rgba/bgra/mono at 8 and 16 bits,
bit depth changed with cv_bridge's scaling (8 -> 16: x 65535/255, 16 -> 8: x 255/65535, rounded and
saturated), from YUV 4:2:2 (``yuv422`` = UYVY, ``yuv422_yuy2`` = YUYV) and Bayer mosaics; a generic type
(``8UC3``, ``32FC1``, ...) is not a colour format and converts only to another of the same channel count.
Arrays come back packed (no row padding), in host byte order and writable; they share the message's buffer only
where that already holds (no padding, host byte order, a writable buffer). Compression writes what cv_bridge
and image_transport write: colour channels in OpenCV's BGR(A) order in the file, so any other PNG/JPEG reader
shows the right colours.
"""
from __future__ import annotations

import sys

import numpy as np

from perception_nodes.errors import ImageFormatError
from perception_nodes.image_codec import encoding_info

__all__ = ["CvBridge", "CvBridgeError", "cvt_color_for_display", "convert_encoding"]

_HOST_BIG_ENDIAN = sys.byteorder == "big"
# (channel order, depth in bits) of the colour and mono encodings cv_bridge converts between.
_COLOR = {"rgb8": ("rgb", 8), "bgr8": ("bgr", 8), "rgba8": ("rgba", 8), "bgra8": ("bgra", 8), "mono8": ("mono", 8),
          "rgb16": ("rgb", 16), "bgr16": ("bgr", 16), "rgba16": ("rgba", 16), "bgra16": ("bgra", 16),
          "mono16": ("mono", 16)}
_ORDER_ENCODING = {(order, depth): name for name, (order, depth) in _COLOR.items()}
# Source-only formats: decoded to bgr first (cv_bridge converts from them, never to them).
_YUV = {"yuv422": "COLOR_YUV2BGR_UYVY", "uyvy": "COLOR_YUV2BGR_UYVY", "yuv422_yuy2": "COLOR_YUV2BGR_YUY2",
        "yuyv": "COLOR_YUV2BGR_YUY2"}
_BAYER = {"rggb": "COLOR_BayerRGGB2BGR", "bggr": "COLOR_BayerBGGR2BGR", "gbrg": "COLOR_BayerGBRG2BGR",
          "grbg": "COLOR_BayerGRBG2BGR"}
_NUMPY_TO_CV = {"uint8": "8U", "int8": "8S", "uint16": "16U", "int16": "16S", "int32": "32S", "float32": "32F",
                "float64": "64F"}
COMPRESSED_FORMATS = ("jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "ppm", "pgm")


class CvBridgeError(ImageFormatError, TypeError):
    """cv_bridge's error type (a TypeError there; also an ImageFormatError here)."""


def _is_color(encoding: str) -> bool:
    return encoding in _COLOR or encoding in _YUV or encoding.startswith("bayer_")


def _channel_code(source: str, target: str) -> str | None:
    """OpenCV code between two channel orders (None: the same)."""
    if source == target:
        return None
    names = {"rgb": "RGB", "bgr": "BGR", "rgba": "RGBA", "bgra": "BGRA", "mono": "GRAY"}
    return f"COLOR_{names[source]}2{names[target]}"


def _scale_depth(array: np.ndarray, source_bits: int, target_bits: int) -> np.ndarray:
    if source_bits == target_bits:
        return array
    if (source_bits, target_bits) == (8, 16):
        return array.astype(np.uint16) * np.uint16(257)  # x 65535/255, exact
    scaled = np.rint(array.astype(np.float64) * (255.0 / 65535.0))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def convert_encoding(array: np.ndarray, source: str, target: str) -> np.ndarray:
    """Convert pixel data from one encoding to another the way cv_bridge's cvtColor does; CvBridgeError if it
    makes no sense (a generic type to a colour format, a different channel count, a target that is YUV/Bayer)."""
    import cv2

    if source == target:
        return array
    encoding_info(source)  # unknown encodings raise ImageFormatError with the name
    encoding_info(target)
    if not _is_color(source) or not _is_color(target):
        if not _is_color(source) and _is_color(target):
            raise CvBridgeError(f"[{source}] is not a color format. but [{target}] is. The conversion does not make "
                                f"sense")
        src, dst = encoding_info(source), encoding_info(target)
        if src.channels != dst.channels:
            raise CvBridgeError(f"cannot convert {source} ({src.channels} channels) to {target} "
                                f"({dst.channels} channels)")
        if src.dtype == dst.dtype:
            return array
        bits = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}
        if src.dtype in bits and dst.dtype in bits:
            return _scale_depth(array, bits[src.dtype], bits[dst.dtype])
        raise CvBridgeError(f"cannot convert {source} ({src.dtype}) to {target} ({dst.dtype}): no depth scaling "
                            f"between these types")
    if target not in _COLOR:
        raise CvBridgeError(f"conversion to {target} is not supported (cv_bridge converts from YUV and Bayer, "
                            f"not to them)")
    array = np.ascontiguousarray(array)
    if source in _YUV:
        array, order, bits = cv2.cvtColor(array, getattr(cv2, _YUV[source])), "bgr", 8
    elif source.startswith("bayer_"):
        pattern, bits = source[len("bayer_"):-1 if source.endswith("8") else -2], 8 if source.endswith("8") else 16
        array, order = cv2.cvtColor(array, getattr(cv2, _BAYER[pattern])), "bgr"
    else:
        order, bits = _COLOR[source]
    target_order, target_bits = _COLOR[target]
    array = _scale_depth(array, bits, target_bits)
    code = _channel_code(order, target_order)
    return cv2.cvtColor(np.ascontiguousarray(array), getattr(cv2, code)) if code else array


def _packed_writable(array: np.ndarray) -> np.ndarray:
    """Packed rows, host byte order, writable: copies only where the view is not already all three."""
    if array.dtype.byteorder not in ("=", "|") and array.dtype.byteorder != ("<" if not _HOST_BIG_ENDIAN else ">"):
        array = array.astype(array.dtype.newbyteorder("="))
    if not array.flags.c_contiguous or not array.flags.writeable:
        array = np.array(array, order="C", copy=True)
    return array


class CvBridge:
    """cv_bridge.CvBridge: Image / CompressedImage messages <-> numpy arrays (OpenCV images)."""

    def encoding_to_dtype_with_channels(self, encoding: str) -> tuple[np.dtype, int]:
        try:
            info = encoding_info(encoding)
        except ImageFormatError as exc:
            raise CvBridgeError(str(exc)) from None
        return info.dtype, info.channels

    def dtype_with_channels_to_cvtype2(self, dtype, n_channels: int) -> str:
        name = np.dtype(dtype).newbyteorder("=").name
        if name not in _NUMPY_TO_CV:
            raise CvBridgeError(f"numpy type {name} has no OpenCV equivalent")
        return f"{_NUMPY_TO_CV[name]}C{int(n_channels)}"

    def encoding_to_cvtype2(self, encoding: str) -> str:
        dtype, channels = self.encoding_to_dtype_with_channels(encoding)
        return self.dtype_with_channels_to_cvtype2(dtype, channels)

    # -- Image ----------------------------------------------------------------------------------------------------
    def imgmsg_to_cv2(self, img_msg, desired_encoding: str = "passthrough") -> np.ndarray:
        """The message's pixels as an array, in ``desired_encoding`` (``passthrough``: the message's own)."""
        dtype, channels = self.encoding_to_dtype_with_channels(img_msg.encoding)
        height, width, step = int(img_msg.height), int(img_msg.width), int(img_msg.step)
        itemsize = dtype.itemsize
        row = width * channels * itemsize
        size = len(img_msg.data)
        if step < row or size < step * max(height - 1, 0) + row * (height > 0):
            raise CvBridgeError(f"image data ({size} B, step {step}) is too short for {width}x{height} "
                                f"{img_msg.encoding}")
        order = ">" if img_msg.is_bigendian else "<"
        typed = dtype.newbyteorder(order) if itemsize > 1 else dtype
        buffer = np.frombuffer(img_msg.data, dtype=np.uint8)
        if height == 0 or width == 0:
            array = np.zeros((height, width, channels), dtype)
        elif step % itemsize == 0:
            array = np.lib.stride_tricks.as_strided(buffer[: step * height].view(typed), shape=(height, width, channels),
                                                    strides=(step, channels * itemsize, itemsize),
                                                    writeable=buffer.flags.writeable)
        else:  # an odd step: gather the rows first
            rows = buffer[: step * height].reshape(height, step)[:, :row]
            array = np.ascontiguousarray(rows).view(typed).reshape(height, width, channels)
        if channels == 1:
            array = array[:, :, 0]
        array = _packed_writable(array)
        if desired_encoding == "passthrough":
            return array
        return _packed_writable(convert_encoding(array, img_msg.encoding, desired_encoding))

    def cv2_to_imgmsg(self, cvim: np.ndarray, encoding: str = "passthrough", header=None):
        """An Image message holding ``cvim`` (no conversion: ``encoding`` must describe the array's type)."""
        from sensor_msgs.msg import Image

        if not isinstance(cvim, np.ndarray):
            raise CvBridgeError("Your input type is not a numpy array")
        if cvim.ndim not in (2, 3):
            raise CvBridgeError(f"an image has 2 or 3 dimensions, got shape {cvim.shape}")
        channels = 1 if cvim.ndim == 2 else cvim.shape[2]
        cv_type = self.dtype_with_channels_to_cvtype2(cvim.dtype, channels)
        if encoding == "passthrough":
            encoding = cv_type
        elif self.encoding_to_cvtype2(encoding) != cv_type:
            raise CvBridgeError(f"encoding specified as {encoding}, but image has incompatible type {cv_type}")
        msg = Image(height=int(cvim.shape[0]), width=int(cvim.shape[1]), encoding=encoding)
        if header is not None:
            msg.header = header
        byteorder = cvim.dtype.byteorder
        msg.is_bigendian = byteorder == ">" or (byteorder == "=" and _HOST_BIG_ENDIAN)
        msg.step = int(cvim.shape[1] * channels * cvim.dtype.itemsize)
        msg.data = np.ascontiguousarray(cvim).tobytes()
        return msg

    # -- CompressedImage ------------------------------------------------------------------------------------------
    def compressed_imgmsg_to_cv2(self, cmprs_img_msg, desired_encoding: str = "passthrough") -> np.ndarray:
        """Decode a CompressedImage; ``passthrough`` returns what OpenCV decoded (BGR(A), or mono)."""
        import cv2

        buffer = np.frombuffer(bytes(cmprs_img_msg.data), dtype=np.uint8)
        if buffer.size == 0:
            raise CvBridgeError("compressed image has no data")
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise CvBridgeError(f"compressed image (format {cmprs_img_msg.format!r}) could not be decoded")
        if desired_encoding == "passthrough":
            return image
        channels = 1 if image.ndim == 2 else image.shape[2]
        bits = 16 if image.dtype == np.uint16 else 8
        source = _ORDER_ENCODING[({1: "mono", 3: "bgr", 4: "bgra"}[channels], bits)]
        return _packed_writable(convert_encoding(image, source, desired_encoding))

    def cv2_to_compressed_imgmsg(self, cvim: np.ndarray, dst_format: str = "jpg", header=None):
        """Encode ``cvim`` (BGR(A) or mono, as OpenCV expects) as ``dst_format``: jpg, png, bmp, tiff, webp..."""
        import cv2
        from sensor_msgs.msg import CompressedImage

        if not isinstance(cvim, np.ndarray):
            raise CvBridgeError("Your input type is not a numpy array")
        fmt = dst_format.lower().lstrip(".")
        if fmt not in COMPRESSED_FORMATS:
            raise CvBridgeError(f"unsupported compression format {dst_format!r}; one of {list(COMPRESSED_FORMATS)}")
        ok, encoded = cv2.imencode(f".{fmt}", np.ascontiguousarray(cvim))
        if not ok:
            raise CvBridgeError(f"OpenCV could not encode a {cvim.dtype} image of shape {cvim.shape} as {fmt}")
        msg = CompressedImage(format=fmt)
        if header is not None:
            msg.header = header
        msg.data = encoded.tobytes()
        return msg


def cvt_color_for_display(image: np.ndarray, encoding: str, encoding_out: str = "bgr8", *,
                          do_dynamic_scaling: bool = False, min_image_value: float = 0.0,
                          max_image_value: float = 0.0, colormap: int = -1, bg_label: int = -1) -> np.ndarray:
    """cv_bridge's cvtColorForDisplay: any image as an 8-bit colour (default bgr8) image a person can look at.

    Colour and mono 8/16-bit images convert as ``imgmsg_to_cv2`` would. One-channel other types (depth, floats,
    labels) are scaled to 0..255: between ``min_image_value`` and ``max_image_value`` when they differ, else
    the image's own finite min and max with ``do_dynamic_scaling``, else the type's range (floats: 0..1).
    Non-finite pixels show black. ``colormap`` (an OpenCV COLORMAP_*) colours a scaled image; a ``32SC1`` label
    image gets one colour per label (``bg_label`` black).
    """
    import cv2

    if encoding_out not in _COLOR or _COLOR[encoding_out][1] != 8:
        raise CvBridgeError(f"display output must be an 8-bit colour or mono encoding, got {encoding_out}")
    if _is_color(encoding) and colormap < 0 and not do_dynamic_scaling and min_image_value == max_image_value:
        return convert_encoding(image, encoding, encoding_out)
    dtype, channels = encoding_info(encoding).dtype, encoding_info(encoding).channels
    if encoding == "32SC1" or (dtype == np.int32 and channels == 1):
        labels = np.asarray(image)
        rng = np.random.default_rng(0)
        palette = rng.integers(0, 256, (int(labels.max(initial=0)) + 1, 3), dtype=np.uint8) if labels.size else None
        out = np.zeros(labels.shape + (3,), np.uint8)
        if palette is not None:
            valid = labels >= 0
            out[valid] = palette[labels[valid]]
        out[labels == bg_label] = 0
        return convert_encoding(out, "bgr8", encoding_out)
    if channels != 1 and not _is_color(encoding):
        raise CvBridgeError(f"cannot display {encoding}: {channels} channels of a non-colour type")
    if _is_color(encoding):
        image = convert_encoding(image, encoding, "mono16" if _COLOR.get(encoding, ("", 8))[1] == 16 else "mono8")
    values = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(values)
    low, high = float(min_image_value), float(max_image_value)
    if low == high:
        if do_dynamic_scaling and finite.any():
            low, high = float(values[finite].min()), float(values[finite].max())
        elif np.issubdtype(np.asarray(image).dtype, np.integer):
            limits = np.iinfo(np.asarray(image).dtype)
            low, high = float(max(limits.min, 0)), float(limits.max)
        else:
            low, high = 0.0, 1.0
    span = high - low if high != low else 1.0
    scaled = np.clip(np.rint((np.where(finite, values, low) - low) * (255.0 / span)), 0, 255).astype(np.uint8)
    scaled[~finite] = 0
    if colormap >= 0:
        colored = cv2.applyColorMap(scaled, colormap)
        return convert_encoding(colored, "bgr8", encoding_out)
    return convert_encoding(scaled, "mono8", encoding_out)
