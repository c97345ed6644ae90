"""Plain images (PNG, JPEG, BMP, TIFF): :mod:`.restore`."""

from srrestore.pipelines.image.restore import restore_image

__all__ = ["restore_image"]
