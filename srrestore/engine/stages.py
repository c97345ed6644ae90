"""The reading and writing ends of a tile: its input window, and its output in stored values.

Reading (reader thread): the band masks, then the values, of the tile's window
clipped to the image, with more context where nodata filling needs it; fill,
normalise to float32, edge-pad where the window reaches past the image (only
with ``pad_edges``). Writing (writer thread): inverse normalisation, valid pixels next to masked
ones held to the local valid range, nodata kept off valid pixels; invalid
pixels keep the input's own values there (nodata, NaN, +/-inf), nearest-upsampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from srrestore.engine.grid import Layout, Tile
from srrestore.engine.io import Reader, as_band_mask
from srrestore.engine.nodata import (NEAR_MASK_RADIUS, ValueBounds, fill_nodata, invalid_value, keep_off_nodata,
                                     local_bounds, nearest_valid, upsample_values)
from srrestore.engine.normalize import Normalization
from srrestore.engine.padding import edge_pad
from srrestore.engine.region import Region

__all__ = ["TileInput", "TileOutput", "read_tile", "to_stored"]

CHUNK_VALUES = 1 << 22  # output values converted at once (bounds float64 temporaries to ~32 MB)


@dataclass
class TileInput:
    """A tile ready for the network.

    Attributes:
        tile: the tile.
        pixels: ``(C, *window)`` normalised float32 (pinned on CUDA); None when
            every pixel the tile writes is nodata (the network is skipped).
        valid: ``(C, *tile.write.size)`` mask of valid values, or None when every value is valid.
        held: ``(C, *tile.write.size)`` stored input values of the written pixels
            when some are invalid (what invalid output pixels keep), else None.
        bounds: limits of the written pixels near masked ones, or None.
    """

    tile: Tile
    pixels: torch.Tensor | None
    valid: np.ndarray | None
    held: np.ndarray | None = None
    bounds: ValueBounds | None = None


@dataclass
class TileOutput:
    """A tile's output, still normalised.

    Attributes:
        tile: the tile.
        values: ``(C_out, *tile.write.size * scale)`` float32, or None for a skipped tile.
        valid, held, bounds: as in :class:`TileInput`.
        error: max abs consistency residual over the valid pixels written (None if skipped).
    """

    tile: Tile
    values: np.ndarray | None
    valid: np.ndarray | None
    error: float | None
    held: np.ndarray | None = None
    bounds: ValueBounds | None = None


def read_tile(reader: Reader, layout: Layout, tile: Tile, normalization: Normalization, pin: bool) -> TileInput:
    """Read, fill, normalise and pad one tile's window (on the reader thread).

    Values that are invalid in some band are replaced, in that band only, by
    the value of the nearest pixel valid in every band; the context read grows
    until each such pixel of the window finds the one the whole image would
    give it.
    """
    window = layout.window(tile.core)
    inside = window.clipped(layout.shape)
    context = inside
    indices = None
    channels = reader.spec.channels
    while True:
        bands = as_band_mask(reader.read_valid(context), channels, context.size)
        valid = bands.all(axis=0)
        box = tile.write.relative_to(context)
        written = bands[(slice(None), *box.slices())]
        if not valid[box.slices()].any():
            return TileInput(tile, None, written, _held(reader, tile))
        if valid.all():
            break
        closed_low = tuple(a == 0 or axis in layout.iterated_axes for axis, a in enumerate(context.start))
        closed_high = tuple(b == n or axis in layout.iterated_axes
                            for axis, (b, n) in enumerate(zip(context.stop, layout.shape)))
        indices, low, high = nearest_valid(valid, inside.relative_to(context), closed_low, closed_high)
        if not any(low) and not any(high):
            break
        context = Region(tuple(a - d for a, d in zip(context.start, low)),
                         tuple(b + d for b, d in zip(context.stop, high))).clipped(layout.shape)
    needed = (slice(None), *inside.relative_to(context).slices())
    values = reader.read(context)
    held, bounds = None, None
    if not valid.all():
        held = None if written.all() else values[(slice(None), *box.slices())].copy()
        radius = tuple(min(NEAR_MASK_RADIUS, halo) for halo in layout.halo)
        bounds = local_bounds(values, bands, box, radius)
    if indices is None:
        values = values[needed]
    else:
        values = np.where(bands[needed], values[needed], fill_nodata(values, indices[needed]))
    pixels = torch.from_numpy(np.ascontiguousarray(edge_pad(normalization.forward(values), inside, window)))
    return TileInput(tile, pixels.pin_memory() if pin else pixels, None if written.all() else written, held, bounds)


def _held(reader: Reader, tile: Tile) -> np.ndarray:
    """``(C, *tile.write.size)`` stored input values of a tile's written pixels."""
    return np.array(reader.read(tile.write))


def to_stored(
    output: TileOutput, channels: int, layout: Layout, normalization: Normalization, dtype: np.dtype,
    nodata: float | None,
) -> np.ndarray:
    """A tile's output in stored values (on the writer thread).

    Invalid pixels keep the input's own value (nodata, NaN, +/-inf),
    nearest-upsampled, so an output is masked exactly where its input was; when
    the network's channels differ from the input's, they hold
    :func:`invalid_value` instead.

    Args:
        output: the tile's normalised output.
        channels: output channels ``C_out``.
        layout: gives the scale.
        normalization: normalised -> stored map.
        dtype: output dtype.
        nodata: kept off valid outputs; written where the input is invalid and not held.

    Returns:
        ``(C_out, *tile.write.size * scale)`` array of ``dtype``.
    """
    size = output.tile.write.scaled(layout.scale).size
    held = None
    if output.held is not None and output.held.shape[0] == channels:
        held = upsample_values(output.held, layout.scale).astype(dtype, copy=False)
    if output.values is None:
        return held if held is not None else np.full((channels, *size), invalid_value(dtype, nodata), dtype=dtype)
    stored = np.empty(output.values.shape, dtype=dtype)
    invalid = None
    if output.valid is not None:
        valid = output.valid if output.valid.shape[0] == channels else output.valid.all(axis=0, keepdims=True)
        invalid = ~upsample_values(valid, layout.scale)
    bounds = None
    if output.bounds is not None and output.bounds.low.shape[0] == channels:
        bounds = output.bounds.upsampled(layout.scale)
    rows = max(1, CHUNK_VALUES // max(1, output.values[:, :1].size))
    for start in range(0, size[0], rows):
        part = output.values[:, start : start + rows]
        chunk = normalization.inverse(part, dtype)
        if bounds is not None:
            rows_now = slice(start, start + rows)
            np.clip(chunk, bounds.low[:, rows_now].astype(dtype), bounds.high[:, rows_now].astype(dtype), out=chunk)
        keep_off_nodata(chunk, part, normalization, nodata)
        if invalid is not None:
            where = np.broadcast_to(invalid[:, start : start + rows], chunk.shape)
            if held is None:
                chunk[where] = invalid_value(dtype, nodata)
            else:
                chunk[where] = held[:, start : start + rows][where]
        stored[:, start : start + rows] = chunk
    return stored
