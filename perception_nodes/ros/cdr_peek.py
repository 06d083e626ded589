"""Reading a serialized message's leading std_msgs/Header (and the strings right after it) without deserializing
the whole message: the monitor watches every camera's stream, and a raw subscription plus these few bytes costs
a fraction of turning each message into Python objects.

Layout (XCDR1, as rmw_fastrtps writes it): 4 bytes of encapsulation (byte 1: 0x00 big-endian, 0x01 little-endian),
then the Header: int32 sec, uint32 nanosec, string frame_id (uint32 length including the NUL, the bytes), then
the message's next fields, each aligned to its size from the start of the payload.
"""
from __future__ import annotations

import struct

from perception_nodes.errors import PerceptionError


class CdrError(PerceptionError):
    """A serialized message too short or malformed for the fields asked for."""


def _endian(raw: bytes) -> str:
    if len(raw) < 12:
        raise CdrError(f"{len(raw)} bytes: too short for a header")
    return "<" if raw[1] & 0x01 else ">"


def header_stamp_ns(raw: bytes) -> int:
    """``header.stamp`` in nanoseconds of a message whose first field is a std_msgs/Header."""
    sec, nanosec = struct.unpack_from(_endian(raw) + "iI", raw, 4)
    return sec * 1_000_000_000 + nanosec


def strings_after_header(raw: bytes, count: int) -> list[str]:
    """The first ``count`` string fields that follow the Header (frame_id is skipped)."""
    endian = _endian(raw)
    offset = 12  # encapsulation + stamp
    out = []
    for index in range(count + 1):
        offset = 4 + ((offset - 4 + 3) & ~3)  # align 4 relative to the payload
        if offset + 4 > len(raw):
            raise CdrError("message ends inside a string length")
        (length,) = struct.unpack_from(endian + "I", raw, offset)
        offset += 4
        if length == 0 or offset + length > len(raw):
            raise CdrError(f"string of {length} bytes at {offset} does not fit in {len(raw)}")
        if index:
            out.append(raw[offset:offset + length - 1].decode("utf-8", errors="replace"))
        offset += length
    return out
