"""keep_freed_memory: large freed blocks stay in the process (glibc), unless the user says otherwise."""

from __future__ import annotations

import ctypes
import platform
import sys

import pytest

from srrestore.engine.allocator import keep_freed_memory

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33 and later): the allocator's own accounting, in bytes."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_a_freed_64_mib_block_stays_in_the_heap():
    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc older than 2.33 has no mallinfo2")
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    size = 64 << 20  # above glibc's largest adaptive mmap threshold (32 MiB)
    assert keep_freed_memory()
    mapped_before = libc.mallinfo2().hblkhd
    block = libc.malloc(size)
    assert block
    ctypes.memset(block, 1, size)
    assert libc.mallinfo2().hblkhd == mapped_before  # served by the heap, not a fresh mmap
    libc.free(block)
    assert libc.mallinfo2().fordblks >= size  # freed, and kept for the next tile


def test_system_allocator_on_request(monkeypatch):
    monkeypatch.setenv("SRRESTORE_MALLOC", "system")
    assert keep_freed_memory() is False
