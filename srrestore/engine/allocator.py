"""Keep freed tensor memory in the process instead of handing it back to the kernel.

A forward pass of a generator allocates and frees hundreds of feature maps of
several MB each (a 512 x 512 map of 32 channels is 32 MiB). glibc's ``malloc``
serves a block above its mmap threshold (adaptive, at most 32 MiB) with a fresh
``mmap`` and gives the free top of its heap back to the kernel past a trim
threshold, so such blocks come back zero-filled, page fault by page fault, every
time. On a 2-core AMD EPYC, 512 px tiles of the grey x2 built-in spent 9 of 19 s
in the kernel that way; with both thresholds at 1 GiB the same run took 10.5 s
(``benchmarks/speed.py`` measures it). PyTorch's CPU tuning guide gives the same
advice through jemalloc or tcmalloc; this does it without a preloaded library.

The cost: memory a run frees stays in the process (its peak RSS grew by 18 % in
that run) until it exits. The ``srrestore`` command applies it at start-up;
library users decide for their own process. Set ``SRRESTORE_MALLOC=system`` to
keep the C library's defaults.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

__all__ = ["KEEP_FREED_BYTES", "keep_freed_memory"]

KEEP_FREED_BYTES = 1 << 30
"""Blocks up to this size come from the heap, and a free heap top up to it stays mapped."""

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds to :data:`KEEP_FREED_BYTES`.

    Returns:
        True when both were set; False elsewhere (not Linux with glibc, or
        ``SRRESTORE_MALLOC=system`` in the environment), which changes nothing.
    """
    if os.environ.get("SRRESTORE_MALLOC", "").lower() == "system":
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, KEEP_FREED_BYTES)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, KEEP_FREED_BYTES)
    )
