"""GeoTIFF and COG rasters: :mod:`.restore` (upscale a scene) and :mod:`.finetune` (adapt a model to scenes)."""
