"""Nodata handling (invariants G5, G6): fill before the network, re-impose after.

Nodata pixels are replaced by their nearest valid pixel (Euclidean, scipy's
``distance_transform_edt``) before the network, so the sentinel never reaches
it; the nearest-upsampled mask is written back as nodata afterwards, and valid
outputs that round onto the sentinel are moved one step off it.

For tiles to equal whole-image inference, a tile's fill must pick the same
nearest pixel as a fill over the whole image. It does when, for every hole, the
square of half-width ``ceil(distance)`` around it lies inside the context the
fill sees (or reaches the image's edge): :func:`nearest_valid` reports how much
context is missing so the caller can read more.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from srrestore.engine.normalize import Normalization
from srrestore.engine.region import Region

__all__ = ["nearest_valid", "fill_nodata", "upsample_mask", "keep_off_nodata", "invalid_value"]


def nearest_valid(
    valid: np.ndarray, needed: Region, closed_low: tuple[bool, ...], closed_high: tuple[bool, ...]
) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...]]:
    """Nearest valid pixel of every pixel, and how much context the fill lacks.

    Args:
        valid: ``(*context)`` bool mask with at least one True.
        needed: box, relative to the context, whose pixels must get the same
            nearest valid pixel as in the whole image.
        closed_low, closed_high: per axis, True where the context may not grow
            on that side (it reaches the image's edge, or the axis is iterated).

    Returns:
        ``indices``: ``(ndim, *context)`` index of each pixel's nearest valid pixel;
        ``lacking_low``, ``lacking_high``: per axis, pixels to add to the context
        on each side (all 0 when the fill is already exact).
    """
    distances, indices = ndimage.distance_transform_edt(~valid, return_indices=True)
    holes = ~valid[needed.slices()]
    ndim = valid.ndim
    if not holes.any():
        return indices, (0,) * ndim, (0,) * ndim
    reach = np.ceil(distances[needed.slices()][holes]).astype(np.int64)
    positions = np.nonzero(holes)
    low, high = [], []
    for axis in range(ndim):
        position = positions[axis] + needed.start[axis]
        low.append(0 if closed_low[axis] else int(max(0, (reach - position).max())))
        last = valid.shape[axis] - 1
        high.append(0 if closed_high[axis] else int(max(0, (position + reach - last).max())))
    return indices, tuple(low), tuple(high)


def fill_nodata(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Replace every pixel by its nearest valid pixel.

    Args:
        values: ``(C, *spatial)`` stored values.
        indices: ``(ndim, *spatial)`` from :func:`nearest_valid` (valid pixels point at themselves).
    """
    return values[(slice(None), *indices)]


def upsample_mask(valid: np.ndarray, scale: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour upsampling of a ``(*spatial)`` mask by an integer factor per axis."""
    for axis, factor in enumerate(scale):
        if factor != 1:
            valid = np.repeat(valid, factor, axis=axis)
    return valid


def invalid_value(dtype: np.dtype, nodata: float | None) -> float:
    """What invalid output pixels hold: ``nodata``, else NaN (floats) or 0 (integers)."""
    if nodata is not None:
        return nodata
    return float("nan") if np.issubdtype(dtype, np.floating) else 0


def keep_off_nodata(
    stored: np.ndarray, normalised: np.ndarray, normalization: Normalization, nodata: float | None
) -> None:
    """Move valid outputs that equal ``nodata`` one step off it, in place (G6).

    The step goes towards the network's unrounded value, unless that leaves the
    dtype: nodata 0 on uint16 keeps valid outputs >= 1, nodata 65535 keeps them
    <= 65534.

    Args:
        stored: ``(C, *spatial)`` output in its dtype (before the mask is re-imposed).
        normalised: ``(C, *spatial)`` float network output it was made from.
        normalization: the map between the two.
        nodata: the sentinel (None or NaN: nothing to do).
    """
    if nodata is None or np.isnan(nodata):
        return
    sentinel = np.asarray(nodata, dtype=stored.dtype)
    hits = stored == sentinel
    if not hits.any():
        return
    shape = (-1,) + (1,) * (stored.ndim - 1)
    offset = np.asarray(normalization.offset, dtype=np.float64).reshape(shape)
    scale = np.asarray(normalization.scale, dtype=np.float64).reshape(shape)
    upward = np.broadcast_to(normalised.astype(np.float64) * scale + offset > nodata, stored.shape)
    if np.issubdtype(stored.dtype, np.integer):
        info = np.iinfo(stored.dtype)
        above = sentinel + 1 if sentinel < info.max else sentinel - 1
        below = sentinel - 1 if sentinel > info.min else sentinel + 1
    else:
        above = np.nextafter(sentinel, np.asarray(np.inf, dtype=stored.dtype))
        below = np.nextafter(sentinel, np.asarray(-np.inf, dtype=stored.dtype))
    stored[hits & upward] = above
    stored[hits & ~upward] = below
