"""Plain images (PNG, JPEG, BMP, TIFF): :mod:`.restore`."""
