"""The options a GeoTIFF restore reads beside the common ones."""

from __future__ import annotations

from dataclasses import dataclass

from srrestore.pipelines.options import RestoreOptions

__all__ = ["GeoTiffOptions"]


@dataclass
class GeoTiffOptions(RestoreOptions):
    """:class:`~srrestore.pipelines.options.RestoreOptions` plus the GeoTIFF writer's and reader's choices.

    Attributes:
        cog: write a Cloud-Optimised GeoTIFF.
        nodata: declares the nodata value of a raster that has none; it is
            masked like a declared one and written into the output.
    """

    cog: bool = False
    nodata: float | None = None
