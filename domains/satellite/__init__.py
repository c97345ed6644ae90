"""Satellite and aerial rasters: GeoTIFF / COG reading and writing with rasterio.

``GeoTiffReader`` and ``GeoTiffWriter`` are the engine's reader and writer;
``derive_output_meta`` maps a raster's metadata to its upscaled output's.
``import srrestore.domains.satellite.xarray_accessor`` registers the
``DataArray.srrestore`` accessor (it imports xarray and rioxarray).
"""

from srrestore.domains.satellite.geotiff import GeoTiffReader, GeoTiffWriter, RasterSample, read_meta
from srrestore.domains.satellite.meta import RasterMeta, derive_output_meta

__all__ = ["GeoTiffReader", "GeoTiffWriter", "RasterMeta", "RasterSample", "derive_output_meta", "read_meta"]
