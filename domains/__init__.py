"""Format adapters, one package per domain; each owns its formats (sniff, open, read, write).

:func:`sniff` names the format of a path by asking each domain in turn, most
specific first: DICOM, NIfTI, GeoTIFF (a georeferenced or a damaged TIFF), then
plain images. Format libraries are imported only when a domain is asked.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["FORMATS", "sniff"]

FORMATS = ("dicom", "nifti", "geotiff", "image")
"""Every format a domain reads, in the order :func:`sniff` asks."""


def sniff(path: Path) -> str | None:
    """The format of ``path`` (one of :data:`FORMATS`), or None when no domain reads it."""
    from srrestore.domains.image import sniff_image
    from srrestore.domains.medical.dicom_series import sniff_dicom
    from srrestore.domains.medical.nifti import sniff_nifti
    from srrestore.domains.satellite.sniff import sniff_geotiff

    for name, recognises in zip(FORMATS, (sniff_dicom, sniff_nifti, sniff_geotiff, sniff_image)):
        if recognises(path):
            return name
    return None
