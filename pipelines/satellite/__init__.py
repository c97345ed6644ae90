"""GeoTIFF and COG rasters: :mod:`.restore` (upscale a scene) and :mod:`.finetune` (adapt a model to scenes)."""

from srrestore.pipelines.satellite.restore import raster_normalization, restore_geotiff

__all__ = ["raster_normalization", "restore_geotiff"]
