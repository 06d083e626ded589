"""Give the C heap's free pages back to the operating system (glibc ``malloc_trim``).

A node's start-up allocates far more than it keeps: building a synthetic world's
textures, compiling a model, importing libraries. glibc keeps the freed memory in
the process (fragmented arenas are not returned on ``free``), so a process that
peaked at start-up stays at its peak resident size for its whole life. On an edge
box where the whole graph has a memory budget (`perception bench pipeline` prints
it per process) that is memory the node does not use. ``malloc_trim(0)`` returns
every whole free page, from the top of the heap and from the middle of every arena.

Elsewhere (musl, macOS, Windows) there is nothing to call and the functions
report that instead of failing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import lru_cache


@lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim`` or None where the C library has none."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        function = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = [ctypes.c_size_t], ctypes.c_int
    return function


def resident_bytes(pid: int | str = "self") -> int | None:
    """A process's resident set size (this one by default), or None where /proc has no such process."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def trim_supported() -> bool:
    return _malloc_trim() is not None


def release_free_heap() -> int | None:
    """Return free heap pages to the OS; the resident bytes that released (0 when nothing was free), or None
    where the C library cannot do it."""
    trim = _malloc_trim()
    if trim is None:
        return None
    before = resident_bytes()
    trim(0)
    after = resident_bytes()
    return max(0, before - after) if before is not None and after is not None else 0
