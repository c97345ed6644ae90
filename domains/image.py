"""Plain images: PNG, JPEG, BMP and TIFF without georeferencing.

Plain images are small enough to hold in memory, so reading returns the whole
array; the engine still processes it in tiles. Arrays are channels-first
``(C, H, W)`` in the file's dtype (uint8, or uint16 for 16-bit PNG/TIFF).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from srrestore.errors import InputReadError, UnsupportedInputError

__all__ = ["IMAGE_SUFFIXES", "read_image", "write_image"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_TIFF = (".tif", ".tiff")


def read_image(path: Path) -> np.ndarray:
    """Read a plain image as ``(C, H, W)`` stored values.

    Raises:
        InputReadError: missing, unreadable or corrupt file.
        UnsupportedInputError: an unknown suffix or an array that is not an image.
    """
    import imageio.v3 as iio
    import tifffile

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise UnsupportedInputError(f"{path}: unsupported image format {path.suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    if not path.is_file():
        raise InputReadError(f"input not found: {path}")
    try:
        if path.suffix.lower() in _TIFF:
            with tifffile.TiffFile(path) as tiff:
                series = tiff.series[0]
                array, channels_last = series.asarray(), series.axes.endswith("S")
        else:
            array = iio.imread(path)
            channels_last = True
    except Exception as error:  # codecs raise many types for corrupt data
        raise InputReadError(f"cannot read image {path}: {error}") from error
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3 and not channels_last and array.shape[0] <= 16:
        return np.ascontiguousarray(array)
    if array.ndim == 3 and channels_last and array.shape[-1] <= 16:
        return np.ascontiguousarray(np.moveaxis(array, -1, 0))
    raise UnsupportedInputError(f"{path}: expected a 2-D image with up to 16 channels, got shape {array.shape}")


def write_image(path: Path, array: np.ndarray) -> None:
    """Write ``(C, H, W)`` values; the format follows the suffix (JPEG at quality 95)."""
    import imageio.v3 as iio
    import tifffile

    suffix = path.suffix.lower()
    pixels = array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1)
    if suffix in _TIFF:
        tifffile.imwrite(path, pixels, photometric="rgb" if array.shape[0] == 3 else "minisblack")
    elif suffix in (".jpg", ".jpeg"):
        iio.imwrite(path, pixels, extension=suffix, quality=95)
    else:
        iio.imwrite(path, pixels, extension=suffix)
