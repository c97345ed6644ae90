"""Satellite and aerial rasters: GeoTIFF / COG reading and writing with rasterio.

``GeoTiffReader`` and ``GeoTiffWriter`` are the engine's reader and writer;
``derive_output_meta`` maps a raster's metadata to its upscaled output's;
:func:`~srrestore.domains.satellite.sniff.sniff_geotiff` says whether a path is a GeoTIFF.
``import srrestore.domains.satellite.xarray_accessor`` registers the
``DataArray.srrestore`` accessor (it imports xarray and rioxarray).

The names below load on first use, so that importing the package (as the
format sniffer does for every input) does not import rasterio.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = ["GeoTiffReader", "GeoTiffWriter", "RasterMeta", "RasterSample", "derive_output_meta", "read_meta"]

if TYPE_CHECKING:
    from srrestore.domains.satellite.geotiff import GeoTiffReader, GeoTiffWriter, RasterSample, read_meta
    from srrestore.domains.satellite.meta import RasterMeta, derive_output_meta

_HOMES = {
    "GeoTiffReader": "geotiff",
    "GeoTiffWriter": "geotiff",
    "RasterSample": "geotiff",
    "read_meta": "geotiff",
    "RasterMeta": "meta",
    "derive_output_meta": "meta",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
