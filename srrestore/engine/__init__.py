"""The inference engine: exact, streaming, tiled upscaling through readers and writers.

``upscale`` streams an image from a :class:`Reader` to a :class:`Writer`;
``upscale_array`` does the same for numpy arrays; ``upscale_whole`` is the
whole-image reference tiled output equals. ``upscale_dask`` and ``map_files``
(in :mod:`srrestore.engine.distributed`, imported on first use) spread work
over a Dask cluster.
"""

from __future__ import annotations

from typing import Any

from srrestore.engine.devices import resolve_device, resolve_precision
from srrestore.engine.io import ArrayReader, ArrayWriter, ImageSpec, Reader, Writer, valid_mask
from srrestore.engine.normalize import Normalization
from srrestore.engine.plan import UpscaleOptions
from srrestore.engine.reference import upscale_whole
from srrestore.engine.region import Region
from srrestore.engine.tiler import TiledUpscaler, UpscaleReport, upscale, upscale_array

__all__ = [
    "ArrayReader",
    "ArrayWriter",
    "ImageSpec",
    "Normalization",
    "Reader",
    "Region",
    "TiledUpscaler",
    "UpscaleOptions",
    "UpscaleReport",
    "Writer",
    "map_files",
    "resolve_device",
    "resolve_precision",
    "upscale",
    "upscale_array",
    "upscale_dask",
    "upscale_whole",
    "valid_mask",
]


def __getattr__(name: str) -> Any:
    # Dask is imported only when its API is used.
    if name in ("upscale_dask", "map_files"):
        from srrestore.engine import distributed

        return getattr(distributed, name)
    raise AttributeError(f"module 'srrestore.engine' has no attribute {name!r}")
