"""Turn the engine's output windows into block-aligned writes (invariant G9).

The engine writes tiles of any size in row-major order. A tiled GeoTIFF is
written best in whole blocks: a window that cuts a compressed block makes GDAL
write that block twice. :class:`BlockAligner` passes the whole blocks a window
covers straight to its sink, as one window, and keeps the pieces of blocks cut
by the window's edges until their neighbours complete them. Memory stays
bounded by about one row of blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from srrestore.engine.region import Region

__all__ = ["BlockAligner"]

Sink = Callable[[Region, np.ndarray], None]


def _aligned(low: int, high: int, block: int, extent: int) -> tuple[int, int]:
    """The span of whole blocks (the last one may end at ``extent``) inside ``[low, high)``."""
    start = math.ceil(low / block) * block
    stop = high if high == extent else high // block * block
    return start, max(start, stop)


def _inside(inner: Region, outer: Region) -> bool:
    return all(a >= b for a, b in zip(inner.start, outer.start)) and all(
        a <= b for a, b in zip(inner.stop, outer.stop)
    )


class BlockAligner:
    """Buffers windows of a ``(C, H, W)`` image and emits them as block-aligned windows.

    Every window emitted starts on the block grid and ends on it or at the
    image's edge. Each pixel must be written exactly once.

    Args:
        shape: ``(H, W)`` of the image, pixels.
        channels: ``C``.
        dtype: dtype of the arrays written.
        block: ``(block_height, block_width)``, pixels.
        sink: called with ``(region, (C, *region.size) array)`` for each aligned window.
    """

    def __init__(self, shape: tuple[int, int], channels: int, dtype: np.dtype | str,
                 block: tuple[int, int], sink: Sink) -> None:
        self.shape = shape
        self.channels = channels
        self.dtype = np.dtype(dtype)
        self.block = block
        self.sink = sink
        self._partial: dict[tuple[int, int], tuple[np.ndarray, int]] = {}

    @property
    def pending(self) -> int:
        """Blocks partly written and not yet emitted."""
        return len(self._partial)

    def _block_region(self, row: int, col: int) -> Region:
        (bh, bw), (h, w) = self.block, self.shape
        return Region((row * bh, col * bw), (min((row + 1) * bh, h), min((col + 1) * bw, w)))

    def write(self, region: Region, array: np.ndarray) -> None:
        """Take the ``(C, *region.size)`` values of ``region`` (output pixels)."""
        (y0, x0), (y1, x1) = region.start, region.stop
        (bh, bw), (h, w) = self.block, self.shape
        r0, r1 = _aligned(y0, y1, bh, h)
        c0, c1 = _aligned(x0, x1, bw, w)
        whole = Region((r0, c0), (r1, c1))
        if whole.num_pixels:
            self.sink(whole, array[(slice(None), *whole.relative_to(region).slices())])
        for row in range(y0 // bh, math.ceil(y1 / bh)):
            for col in range(x0 // bw, math.ceil(x1 / bw)):
                block = self._block_region(row, col)
                if _inside(block, whole):
                    continue  # emitted above
                self._add(row, col, block, region, array)

    def _add(self, row: int, col: int, block: Region, region: Region, array: np.ndarray) -> None:
        """Copy the part of ``array`` inside ``block``; emit the block once complete."""
        start = tuple(max(a, b) for a, b in zip(block.start, region.start))
        stop = tuple(min(a, b) for a, b in zip(block.stop, region.stop))
        part = Region(start, stop)
        values, filled = self._partial.get((row, col)) or (
            np.empty((self.channels, *block.size), dtype=self.dtype), 0
        )
        values[(slice(None), *part.relative_to(block).slices())] = array[
            (slice(None), *part.relative_to(region).slices())
        ]
        filled += part.num_pixels
        if filled == block.num_pixels:
            self._partial.pop((row, col), None)
            self.sink(block, values)
        else:
            self._partial[(row, col)] = (values, filled)
