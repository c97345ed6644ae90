"""Read any supported input whole, as a ``(C, *spatial)`` array of stored values.

For evaluation and reports, which compare whole images: plain images through
:func:`srrestore.domains.image.read_image`; GeoTIFFs, NIfTI volumes and DICOM
series through their domain readers, reading the full region.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from srrestore.domains.image import read_image
from srrestore.engine.region import Region
from srrestore.pipelines.restore import detect_format

__all__ = ["LoadedArray", "read_array"]


class LoadedArray(NamedTuple):
    """A whole input in memory.

    Attributes:
        array: ``(C, H, W)`` for images and rasters, ``(C, D, H, W)`` for volumes;
            stored values in the file's dtype.
        nodata: the value marking invalid pixels (NaN allowed), or None.
        kind: ``"image"``, ``"geotiff"``, ``"nifti"`` or ``"dicom"``.
    """

    array: np.ndarray
    nodata: float | None
    kind: str


def read_array(path: Path) -> LoadedArray:
    """Read a plain image, GeoTIFF, NIfTI file or DICOM series whole.

    Volumes come as ``(C, D, H, W)`` with the slice (through-plane) axis first:
    DICOM slices in spatial order; NIfTI ``(C, i, j, k)`` with the axis its
    header names as the slice axis (``dim_info``, else ``k``) moved to the front.
    Values are stored values (NIfTI ``scl_*`` and DICOM rescale not applied).

    Args:
        path: the input (a DICOM series may be a folder).

    Returns:
        ``(array, nodata, kind)``, see :class:`LoadedArray`.

    Raises:
        InputReadError: missing or unreadable input.
        UnsupportedInputError: not a format srrestore reads.
    """
    path = Path(path)
    kind = detect_format(path)
    if kind == "image":
        return LoadedArray(read_image(path), None, kind)
    if kind in ("nifti", "dicom"):
        from srrestore.domains.medical.volume import open_volume

        volume = open_volume(path)
        return LoadedArray(np.moveaxis(volume.stored, 1 + volume.slice_axis, 1), volume.nodata, kind)
    from srrestore.domains.satellite import GeoTiffReader

    with GeoTiffReader(path) as reader:
        return LoadedArray(reader.read(Region.from_shape(reader.spec.shape)), reader.spec.nodata, kind)
