"""Nodata handling (invariants G5, G6): fill before the network, re-impose after.

Invalid pixels (nodata, NaN, +/-inf) are replaced by their nearest valid pixel
(Euclidean, scipy's ``distance_transform_edt``) before the network, so they
never reach it; afterwards the invalid pixels keep their input values,
nearest-upsampled, and valid outputs that round onto the sentinel are moved
one step off it.

For tiles to equal whole-image inference, a tile's fill must pick the same
nearest pixel as a fill over the whole image. It does when, for every hole, the
square of half-width ``ceil(distance)`` around it lies inside the context the
fill sees (or reaches the image's edge): :func:`nearest_valid` reports how much
context is missing so the caller can read more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from srrestore.engine.normalize import Normalization
from srrestore.engine.region import Region

__all__ = ["NEAR_MASK_RADIUS", "ValueBounds", "local_bounds", "nearest_valid", "fill_nodata", "upsample_mask",
           "upsample_values", "keep_off_nodata", "invalid_value"]


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
    from scipy import ndimage  # here, not at import: it adds 0.3 s to every run, and only masked tiles need it

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


NEAR_MASK_RADIUS = 4
"""Input pixels around a masked pixel within which valid outputs are held to the local valid range."""


@dataclass(frozen=True)
class ValueBounds:
    """Per-pixel limits for valid outputs next to masked pixels.

    The network sees filled values (copies of the nearest valid pixel) where
    the input is masked, an edge it never met in training, and can overshoot
    there. Each valid pixel within ``radius`` of a masked one is therefore held
    to the range of the valid input pixels within ``radius`` of it.

    Attributes:
        low, high: ``(C, *size)`` stored values (the input's dtype); the dtype's
            extremes (or -/+inf) where no limit applies.
    """

    low: np.ndarray
    high: np.ndarray

    def upsampled(self, scale: tuple[int, ...]) -> "ValueBounds":
        return ValueBounds(upsample_values(self.low, scale), upsample_values(self.high, scale))


def local_bounds(values: np.ndarray, valid: np.ndarray, box: Region, radius: tuple[int, ...]) -> ValueBounds | None:
    """Limits for the valid values of ``box`` near masked ones, band by band (see :class:`ValueBounds`).

    Args:
        values: ``(C, *context)`` stored input values.
        valid: ``(C, *context)`` mask of valid values.
        box: the pixels that get limits, relative to the context; the context
            must hold ``radius`` more pixels around it wherever the image does.
        radius: neighbourhood half-width per spatial axis (0 on iterated axes).

    Returns:
        ``(C, *box.size)`` limits, or None when no value of ``box`` is near a masked one.
    """
    from scipy import ndimage  # only masked tiles need it (see nearest_valid)

    footprint = tuple(2 * r + 1 for r in radius)
    if np.issubdtype(values.dtype, np.integer):
        info = np.iinfo(values.dtype)
        lowest, highest = info.min, info.max
    else:
        lowest, highest = -np.inf, np.inf
    low = np.full((values.shape[0], *box.size), lowest, dtype=values.dtype)
    high = np.full((values.shape[0], *box.size), highest, dtype=values.dtype)
    limited = False
    for channel, (band, good) in enumerate(zip(values, valid)):
        near = ndimage.maximum_filter(~good, size=footprint, mode="constant", cval=False)[box.slices()]
        near &= good[box.slices()]
        if not near.any():
            continue
        limited = True
        smallest = ndimage.minimum_filter(np.where(good, band, highest), size=footprint, mode="constant", cval=highest)
        largest = ndimage.maximum_filter(np.where(good, band, lowest), size=footprint, mode="constant", cval=lowest)
        low[channel][near] = smallest[box.slices()][near]
        high[channel][near] = largest[box.slices()][near]
    return ValueBounds(low, high) if limited else None


def upsample_values(values: np.ndarray, scale: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour upsampling of ``(C, *spatial)`` values by an integer factor per spatial axis."""
    for axis, factor in enumerate(scale, start=1):
        if factor != 1:
            values = np.repeat(values, factor, axis=axis)
    return values


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
