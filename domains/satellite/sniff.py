"""Whether a path is the satellite domain's: the suffix first, GDAL only for a TIFF.

Kept apart from :mod:`.geotiff` so that asking about any other input (a PNG, a
NIfTI file, a DICOM series) does not import rasterio (about 0.3 s of start-up).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from srrestore.domains.image import TIFF_SUFFIXES, read_image
from srrestore.errors import SRRestoreError

__all__ = ["TIFF_SUFFIXES", "sniff_geotiff"]


def sniff_geotiff(path: Path) -> bool:
    """Whether the GeoTIFF reader should open ``path``: a ``.tif``/``.tiff`` file GDAL opens as a
    georeferenced GTiff (a CRS, a non-identity transform, GCPs or RPCs), or one that neither GDAL
    nor the plain-image reader can open, so that the reader's error names the damage."""
    if not path.is_file() or path.suffix.lower() not in TIFF_SUFFIXES:
        return False
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    from srrestore.domains.satellite.geotiff import GeoTiffReader, read_meta

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as dataset:
                return dataset.driver == "GTiff" and read_meta(dataset).georeferenced
    except (*GeoTiffReader.DAMAGED_FILE_ERRORS, OSError):
        pass
    try:
        read_image(path)
    except SRRestoreError:
        return True
    return False
