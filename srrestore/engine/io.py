"""The interface between format adapters (domains) and the engine.

The engine sees an :class:`ImageSpec`, a :class:`Reader` and a :class:`Writer`
only: never paths, CRS, affines or DICOM tags. Arrays are channels-first,
``(C, *spatial)``, in the image's own dtype and units.

``ArrayReader`` and ``ArrayWriter`` adapt in-memory numpy arrays; they are what
``SRModel.upscale`` uses and what tests use as reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from srrestore.engine.region import Region

__all__ = ["ImageSpec", "Reader", "Writer", "ArrayReader", "ArrayWriter", "as_band_mask", "band_valid_mask",
           "valid_mask"]


@dataclass(frozen=True)
class ImageSpec:
    """What the engine needs to know about an image.

    Attributes:
        channels: number of bands / channels ``C``.
        shape: spatial shape, ``(H, W)`` or ``(D, H, W)``.
        dtype: numpy dtype name of the stored values (``"uint16"``...).
        nodata: value marking invalid pixels (``float("nan")`` allowed), or None.
    """

    channels: int
    shape: tuple[int, ...]
    dtype: str
    nodata: float | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)


def band_valid_mask(array: np.ndarray, nodata: float | None) -> np.ndarray:
    """Valid values, band by band.

    Args:
        array: ``(C, *spatial)`` values.
        nodata: the nodata value (NaN allowed) or None.

    Returns:
        ``(C, *spatial)`` bool array, True where a value is not ``nodata`` and, for
        float data, is finite: NaN and +/-inf are masks whatever ``nodata`` is,
        never network inputs. As GDAL does, each band is masked where it holds
        the nodata value (invariant G5).
    """
    valid = np.ones(array.shape, dtype=bool)
    if np.issubdtype(array.dtype, np.floating):
        valid &= np.isfinite(array)
    if nodata is not None and not np.isnan(nodata):
        valid &= array != nodata  # float32 data compares at float32, as GDAL does
    return valid


def valid_mask(array: np.ndarray, nodata: float | None) -> np.ndarray:
    """``(*spatial)`` pixels valid in every band (see :func:`band_valid_mask`)."""
    return band_valid_mask(array, nodata).all(axis=0)


def as_band_mask(mask: np.ndarray, channels: int, size: tuple[int, ...]) -> np.ndarray:
    """A reader's mask of a region of ``size`` as ``(C, *size)``: one ``(*size)`` mask stands for every band."""
    mask = np.asarray(mask, dtype=bool)
    return mask if mask.ndim == len(size) + 1 else np.broadcast_to(mask, (channels, *size))


@runtime_checkable
class Reader(Protocol):
    """Reads windows of an input image.

    ``read(region)`` is only called with regions inside ``[0, spec.shape)``;
    the engine pads past the edges itself, the same way for tiles and for
    whole-image inference.
    """

    spec: ImageSpec

    def read(self, region: Region) -> np.ndarray:
        """Return ``(C, *region.size)`` stored values in ``spec.dtype``."""
        ...

    def read_valid(self, region: Region) -> np.ndarray:
        """Return the ``(C, *region.size)`` bool mask of valid values (or one
        ``(*region.size)`` mask for every band)."""
        ...


@runtime_checkable
class Writer(Protocol):
    """Writes windows of the output image, in output pixel space."""

    def write(self, region: Region, array: np.ndarray) -> None:
        """Store ``(C, *region.size)`` values (already in the output dtype)."""
        ...

    def close(self) -> None:
        """Finish the output (flush, rename the temporary file into place)."""
        ...


class ArrayReader:
    """Reader over an in-memory ``(C, *spatial)`` array."""

    def __init__(self, array: np.ndarray, nodata: float | None = None) -> None:
        if array.ndim < 3:
            raise ValueError(f"ArrayReader needs a (C, *spatial) array, got shape {array.shape}")
        self.array = array
        self.spec = ImageSpec(array.shape[0], tuple(array.shape[1:]), array.dtype.name, nodata)

    def read(self, region: Region) -> np.ndarray:
        return self.array[(slice(None), *region.slices())]

    def read_valid(self, region: Region) -> np.ndarray:
        return band_valid_mask(self.read(region), self.spec.nodata)


class ArrayWriter:
    """Writer into an in-memory array allocated on first use (for tests and small images)."""

    def __init__(self, channels: int, shape: tuple[int, ...], dtype: str | np.dtype) -> None:
        self.array = np.zeros((channels, *shape), dtype=dtype)
        self.closed = False

    def write(self, region: Region, array: np.ndarray) -> None:
        self.array[(slice(None), *region.slices())] = array

    def close(self) -> None:
        self.closed = True
