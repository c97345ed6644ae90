"""Restore pipeline for plain images (PNG, JPEG, BMP, TIFF without georeferencing)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from srrestore.domains.image import read_image, write_image
from srrestore.storage.atomic import atomic_output, check_output_path
from srrestore.engine.io import ArrayReader, ArrayWriter
from srrestore.errors import UnsupportedInputError
from srrestore.pipelines.common import RestoreReport, check_output_name, model_for, run_engine
from srrestore.pipelines.options import RestoreOptions

__all__ = ["restore_image"]

_SAVABLE = {".png": ("uint8", "uint16"), ".jpg": ("uint8",), ".jpeg": ("uint8",), ".bmp": ("uint8",)}


def restore_image(input_path: Path, output_path: Path, options: RestoreOptions | Mapping[str, Any]) -> RestoreReport:
    """Upscale one plain image into ``output_path`` (same dtype; format from its suffix).

    RGBA images: the colour goes through the model, the alpha channel is
    nearest-upsampled.
    """
    options = RestoreOptions.for_format(options, "image")
    check_output_name(output_path, "image")
    check_output_path(output_path, options.overwrite, [input_path])  # before any work
    stored = read_image(input_path)
    allowed = _SAVABLE.get(output_path.suffix.lower())
    if allowed is not None and stored.dtype.name not in allowed:
        raise UnsupportedInputError(f"{output_path.suffix} cannot hold {stored.dtype} data; write a .tif instead")
    colour, alpha = (stored[:3], stored[3:]) if stored.shape[0] == 4 else (stored, None)
    model = model_for(options, colour.shape[0])
    normalization = model.normalization_for(colour)
    sy, sx = model.spec.scale
    writer = ArrayWriter(model.spec.out_channels if model.spec.in_channels != 1 else colour.shape[0],
                         (colour.shape[1] * sy, colour.shape[2] * sx), colour.dtype)
    with atomic_output(output_path, options.overwrite, [input_path]) as temporary:
        report = run_engine(ArrayReader(colour), writer, model, normalization, options)
        result = writer.array
        if alpha is not None:
            result = np.concatenate([result, alpha.repeat(sy, axis=1).repeat(sx, axis=2)])
        write_image(temporary, result)
    return RestoreReport(input_path, output_path, "image", model.name, model.spec.scale, normalization.to_dict(), report)
