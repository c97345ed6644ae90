"""`restore`: detect an input's format and run its restore pipeline.

Formats, in the order they are recognised: DICOM (a series folder or a file),
NIfTI (``.nii``, ``.nii.gz``), GeoTIFF/COG (a TIFF with georeferencing), plain
images (PNG, JPEG, BMP, TIFF). A folder of plain images or rasters is restored
file by file into an output folder with the same names.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Callable

from srrestore.domains import sniff
from srrestore.domains.image import IMAGE_SUFFIXES
from srrestore.domains.medical.dicom_series import sniff_dicom
from srrestore.storage.atomic import atomic_output
from srrestore.errors import InputReadError, UnsupportedInputError
from srrestore.pipelines.common import RestoreReport, check_output_name
from srrestore.pipelines.options import RestoreOptions

__all__ = ["restore", "restore_path", "detect_format"]

Pipeline = Callable[[Path, Path, "RestoreOptions | Mapping[str, Any]"], RestoreReport]


def detect_format(path: Path) -> str:
    """``"dicom"``, ``"nifti"``, ``"geotiff"`` or ``"image"`` for an input path (see :func:`srrestore.domains.sniff`).

    Raises:
        InputReadError: the path does not exist.
        UnsupportedInputError: nothing srrestore can read.
    """
    if not path.exists():
        raise InputReadError(f"input not found: {path}")
    kind = sniff(path)
    if kind is None:
        raise UnsupportedInputError(
            f"{path}: unsupported input; expected DICOM, NIfTI (.nii/.nii.gz), GeoTIFF or an image"
            f" ({', '.join(IMAGE_SUFFIXES)})"
        )
    return kind


def _pipeline(kind: str) -> Pipeline:
    if kind == "dicom":
        from srrestore.pipelines.medical.restore import restore_dicom

        return restore_dicom
    if kind == "nifti":
        from srrestore.pipelines.medical.restore import restore_nifti

        return restore_nifti
    if kind == "geotiff":
        from srrestore.pipelines.satellite.restore import restore_geotiff

        return restore_geotiff
    from srrestore.pipelines.image.restore import restore_image

    return restore_image


def restore_path(input_path: Path, output_path: Path,
                 options: RestoreOptions | Mapping[str, Any]) -> list[RestoreReport]:
    """Restore one input, or every supported file of a folder that is not a DICOM series.

    A folder of images becomes an output folder that appears whole or not at all:
    one unreadable image leaves no output behind.

    Args:
        input_path: the input file or folder.
        output_path: where to write.
        options: the options (an options object, or values by field name): the
            format's pipeline takes those it reads and refuses another format's
            (see :meth:`~srrestore.pipelines.options.RestoreOptions.for_format`).
    """
    kind = detect_format(input_path) if not input_path.is_dir() else _folder_kind(input_path)
    if kind != "folder":
        return [_pipeline(kind)(input_path, output_path, options)]
    check_output_name(output_path, "folder")
    sources = sorted(p for p in input_path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not sources:
        raise UnsupportedInputError(f"{input_path}: no DICOM series and no images ({', '.join(IMAGE_SUFFIXES)}) inside")
    overwrite = bool(options.get("overwrite", False) if isinstance(options, Mapping) else options.overwrite)
    each = {**options, "overwrite": False} if isinstance(options, Mapping) else replace(options, overwrite=False)
    with atomic_output(output_path, overwrite, [input_path], directory=True) as folder:
        reports = [_pipeline(detect_format(source))(source, folder / source.name, each) for source in sources]
    return [replace(report, output=output_path / report.output.name) for report in reports]


def _folder_kind(folder: Path) -> str:
    return "dicom" if sniff_dicom(folder) else "folder"


def restore(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str], **options: Any) -> list[RestoreReport]:
    """Restore a file or folder, as ``srrestore restore`` does.

    Args:
        input_path: an image, GeoTIFF, NIfTI file, DICOM series folder or file,
            or a folder of images.
        output_path: where to write (same format as the input; a folder for
            DICOM series and image folders).
        **options: fields of :class:`~srrestore.pipelines.options.RestoreOptions`
            (``model``, ``scale``, ``tile_size``, ``device``, ``overwrite``...)
            and of the input format's options (``cog``, ``slice_scale``, ``series_uid``...).

    Returns:
        One report per restored input.
    """
    options.setdefault("progress", False)
    return restore_path(Path(input_path), Path(output_path), options)
