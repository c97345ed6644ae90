"""Invertible intensity normalisation (invariants I1-I6).

A :class:`Normalization` is a per-channel affine map with float64 constants:
``normalised = (stored - offset) / scale``. Its inverse rounds and clips into
the stored dtype (never a bare float-to-int cast, I5). Both directions run in
float32 or higher, outside any autocast (I6). Nothing is clipped on the way in
(I2, I3): values outside ``[offset, offset + scale]`` map outside ``[0, 1]``.

Exactness: the arithmetic is float64, so integer values up to 2**53 in
magnitude (every uint8 ... int32 and uint32 value) are represented exactly;
larger int64/uint64 values are rounded to float64's 53 significant bits.
:meth:`Normalization.forward` hands the network float32, whose 24-bit
mantissa keeps ``inverse(forward(x)) == x`` for integers with
``|x - offset| < 2**23`` (every uint8, int8, uint16 and int16 value); farther
from the offset the round trip is off by at most ``|x - offset| * 2**-24``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["Normalization", "to_dtype"]


def to_dtype(values: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    """Convert float values to ``dtype`` safely.

    Integers: NaN becomes 0, then ``rint`` and saturation into the dtype's
    range (I5): nothing wraps, infinities go to the dtype's min or max.
    Floats: a plain cast (NaN and infinities kept).

    Args:
        values: any-shape float array.
        dtype: target numpy dtype.

    Returns:
        ``values.shape`` array of ``dtype``.
    """
    target = np.dtype(dtype)
    if np.issubdtype(target, np.integer):
        info = np.iinfo(target)
        rounded = np.rint(np.nan_to_num(values.astype(np.float64, copy=False), nan=0.0))
        high = float(info.max)
        if high <= info.max:  # every dtype up to 32 bits: the bound itself converts exactly
            return np.clip(rounded, info.min, high).astype(target)
        # int64/uint64: float(max) is 2**63 or 2**64, one past the dtype, and casting it
        # wraps. Clip to the largest float64 below it (2**63 - 1024, 2**64 - 2048), then
        # saturate whatever was at or above 2**63 (2**64) to the true max.
        result = np.clip(rounded, info.min, np.nextafter(high, 0.0)).astype(target)
        result[rounded >= high] = info.max
        return result
    if np.issubdtype(target, np.floating):
        return values.astype(target)
    raise TypeError(f"unsupported output dtype {target}")


@dataclass(frozen=True)
class Normalization:
    """Per-channel affine intensity map, recorded and exactly invertible.

    Attributes:
        offset: per-channel stored value mapped to 0 (float64 constants).
        scale: per-channel width mapped to 1 (non-zero).
        method: how the constants were chosen, for provenance
            (``"dtype-range"``, ``"fixed"``, ``"percentile"``...).
    """

    offset: tuple[float, ...]
    scale: tuple[float, ...]
    method: str = "fixed"

    def __post_init__(self) -> None:
        if len(self.offset) != len(self.scale):
            raise ValueError(f"offset {self.offset} and scale {self.scale} differ in length")
        if any(s == 0 or not np.isfinite(s) for s in self.scale):
            raise ValueError(f"normalisation scale must be finite and non-zero, got {self.scale}")

    @property
    def channels(self) -> int:
        return len(self.offset)

    @classmethod
    def fixed(cls, low: float, high: float, channels: int, method: str = "fixed") -> "Normalization":
        """Map stored ``[low, high]`` to ``[0, 1]`` in every channel."""
        return cls((float(low),) * channels, (float(high) - float(low),) * channels, method)

    @classmethod
    def for_dtype(cls, dtype: str | np.dtype, channels: int) -> "Normalization":
        """The full range of an integer dtype (uint8: ``[0, 255]``) to ``[0, 1]``."""
        info = np.iinfo(np.dtype(dtype))
        return cls.fixed(info.min, info.max, channels, method="dtype-range")

    @classmethod
    def from_percentiles(
        cls,
        sample: np.ndarray,
        valid: np.ndarray | None = None,
        low: float = 0.5,
        high: float = 99.5,
    ) -> "Normalization":
        """Per-channel percentiles of the valid pixels of ``sample`` to ``[0, 1]``.

        Args:
            sample: ``(C, *spatial)`` stored values (a whole image or a subsample).
            valid: ``(*spatial)`` bool mask of pixels to use; all finite pixels if None.
            low: percentile mapped to 0.
            high: percentile mapped to 1.
        """
        offsets, scales = [], []
        for channel in sample:
            values = channel.astype(np.float64)
            keep = np.isfinite(values) if valid is None else (valid & np.isfinite(values))
            values = values[keep]
            if values.size == 0:
                offsets.append(0.0)
                scales.append(1.0)
                continue
            lo, hi = np.percentile(values, [low, high])
            if hi <= lo:
                hi = lo + max(abs(lo), 1.0)
            offsets.append(float(lo))
            scales.append(float(hi - lo))
        return cls(tuple(offsets), tuple(scales), method=f"percentile-{low:g}-{high:g}")

    def _constants(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        shape = (self.channels,) + (1,) * (ndim - 1)
        return (
            np.asarray(self.offset, dtype=np.float64).reshape(shape),
            np.asarray(self.scale, dtype=np.float64).reshape(shape),
        )

    def forward(self, stored: np.ndarray) -> np.ndarray:
        """``(C, ...)`` stored values to float32 normalised values."""
        offset, scale = self._constants(stored.ndim)
        return ((stored.astype(np.float64) - offset) / scale).astype(np.float32)

    def inverse(self, normalised: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
        """``(C, ...)`` normalised values back to stored values of ``dtype`` (rounded, clipped)."""
        offset, scale = self._constants(normalised.ndim)
        return to_dtype(normalised.astype(np.float64) * scale + offset, dtype)

    def to_dict(self) -> dict[str, Any]:
        return {"offset": list(self.offset), "scale": list(self.scale), "method": self.method}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Normalization":
        return cls(tuple(map(float, data["offset"])), tuple(map(float, data["scale"])), str(data["method"]))

    def select(self, channels: Sequence[int]) -> "Normalization":
        """The same map restricted to some channels."""
        return Normalization(
            tuple(self.offset[c] for c in channels), tuple(self.scale[c] for c in channels), self.method
        )
