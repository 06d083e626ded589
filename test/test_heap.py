"""Returning freed C heap to the OS (perception_nodes/heap.py; no rclpy)."""
import ctypes
import ctypes.util

import pytest

from perception_nodes.heap import release_free_heap, resident_bytes, trim_supported

BLOCK = 64 * 1024  # below glibc's mmap threshold: these come from the heap, as most of a node's start-up does


@pytest.mark.skipif(not trim_supported(), reason="this C library has no malloc_trim")
def test_freed_heap_pages_in_the_middle_of_the_heap_are_given_back():
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(BLOCK) for _ in range(1024)]
    assert all(blocks)
    try:
        for block in blocks:
            ctypes.memset(block, 1, BLOCK)  # touched: resident
        for block in blocks[:-1]:
            libc.free(block)  # the last block stays in use, so free() cannot shrink the heap from its top
        before = resident_bytes()
        released = release_free_heap()
        assert released is not None and released >= 32 * 2**20, released
        assert resident_bytes() <= before - 32 * 2**20
        assert release_free_heap() < 8 * 2**20  # nothing much left to give back a second time
    finally:
        libc.free(blocks[-1])


def test_resident_size_is_read_from_proc():
    size = resident_bytes()
    assert size is None or size > 10 * 2**20  # an interpreter with numpy and pytest
