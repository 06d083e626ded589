"""builtin_interfaces/Time <-> float seconds, as the map-frame nodes carry fusion times."""
from __future__ import annotations

import math


def stamp_seconds(stamp) -> float:
    """A Time message's seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_nanoseconds(stamp) -> int:
    """A Time message's nanoseconds since the epoch (exact: stamps used as keys)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def set_stamp(msg_time, seconds: float) -> None:
    """Write ``seconds`` (clamped at 0, nanoseconds never rounding up to a full second) into a Time message."""
    seconds = max(seconds, 0.0)
    msg_time.sec = int(math.floor(seconds))
    msg_time.nanosec = min(int(round((seconds - math.floor(seconds)) * 1e9)), 999_999_999)
