"""Intensity normalisation for CT and MR volumes (invariants I1-I3, I5).

Networks see normalised values; outputs are written back in the input's
stored dtype. Both maps are affine in *stored* values, with float64 constants
recorded in the output, so :meth:`Normalization.inverse` is exact (rounding
and clipping into the stored dtype, never wrapping):

- CT: Hounsfield units ``HU = stored * slope + intercept``; the fixed window
  ``[-1024, 3071] HU`` maps to ``[0, 1]``. Nothing is clipped on the way in (I2).
- MR and other modalities: the 0.5 and 99.5 percentiles of the foreground
  (voxels above the channel's Otsu threshold) map to 0 and 1, not clipped (I3).
"""

from __future__ import annotations

import numpy as np

from srrestore.engine.normalize import Normalization

__all__ = [
    "CT_HU_WINDOW",
    "FOREGROUND_PERCENTILES",
    "ct_normalization",
    "foreground_normalization",
    "looks_like_ct",
    "normalization_for",
]

CT_HU_WINDOW = (-1024.0, 3071.0)
FOREGROUND_PERCENTILES = (0.5, 99.5)
# CT air is about -1000 HU; scanners pad with -1024, -2048 or -3024. MR magnitudes are >= 0.
_CT_MINIMUM_RANGE = (-3100.0, -900.0)
_MAX_SAMPLES = 4_000_000


def ct_normalization(slope: float, intercept: float, channels: int = 1) -> Normalization:
    """The fixed CT map, expressed on stored values.

    Args:
        slope, intercept: the stored-to-HU rescale (DICOM RescaleSlope/Intercept, NIfTI scl_*).
        channels: channels of the data.

    Returns:
        ``normalised = (stored - offset) / scale`` with ``offset = (-1024 - intercept) / slope``
        and ``scale = 4095 / slope``, i.e. ``(HU + 1024) / 4095``.
    """
    low, high = CT_HU_WINDOW
    offset = (low - intercept) / slope
    width = (high - low) / slope
    return Normalization((offset,) * channels, (width,) * channels, method=f"ct-hu-{low:g}-{high:g}")


def _foreground(values: np.ndarray) -> np.ndarray:
    """Values above the Otsu threshold (all of them if the channel is constant)."""
    from skimage.filters import threshold_otsu

    if values.min() == values.max():
        return values
    return values[values > threshold_otsu(values)]


def foreground_normalization(stored: np.ndarray) -> Normalization:
    """Per-channel foreground percentiles of stored values (MR and other modalities).

    Args:
        stored: ``(C, *spatial)`` stored values; NaNs are ignored. Large
            channels are subsampled with a fixed stride (deterministic).

    Returns:
        A :class:`Normalization` mapping each channel's foreground p0.5 to 0 and p99.5 to 1.
    """
    low, high = FOREGROUND_PERCENTILES
    offsets, widths = [], []
    for channel in stored:
        values = channel.reshape(-1)
        values = values[:: max(1, values.size // _MAX_SAMPLES)].astype(np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            offsets.append(0.0)
            widths.append(1.0)
            continue
        p_low, p_high = np.percentile(_foreground(values), [low, high])
        offsets.append(float(p_low))
        widths.append(float(p_high - p_low) if p_high > p_low else max(abs(float(p_low)), 1.0))
    return Normalization(tuple(offsets), tuple(widths), method=f"foreground-percentile-{low:g}-{high:g}")


def looks_like_ct(stored: np.ndarray, slope: float, intercept: float) -> bool:
    """Whether a volume without a Modality tag (NIfTI) holds Hounsfield units.

    True when the stored values are integers and the smallest physical value
    lies in ``[-3100, -900]`` (air or CT padding). MR magnitudes are not
    negative there; MR phase maps reach about -4096.

    Args:
        stored: ``(C, *spatial)`` stored values.
        slope, intercept: stored-to-physical rescale.
    """
    if not np.issubdtype(stored.dtype, np.integer) or stored.size == 0:
        return False
    ends = np.array([stored.min(), stored.max()], dtype=np.float64) * slope + intercept
    lowest = float(ends.min())
    return _CT_MINIMUM_RANGE[0] <= lowest <= _CT_MINIMUM_RANGE[1]


def normalization_for(stored: np.ndarray, is_ct: bool, slope: float = 1.0, intercept: float = 0.0) -> Normalization:
    """The CT map for CT data, foreground percentiles otherwise.

    Args:
        stored: ``(C, *spatial)`` stored values.
        is_ct: the data is CT in Hounsfield units after rescaling.
        slope, intercept: stored-to-physical rescale.
    """
    if is_ct:
        return ct_normalization(slope, intercept, stored.shape[0])
    return foreground_normalization(stored)
