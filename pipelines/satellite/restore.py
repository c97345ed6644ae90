"""Restore pipeline for GeoTIFF and COG rasters.

Reads the raster window by window, runs the engine, and writes a tiled GTiff
(or a COG) with the same georeferencing, metadata and nodata, rescaled for
the new pixel size (``metadata-invariants.md`` G1-G14). Normalisation: uint8
uses the dtype's range; other dtypes per-band 0.5/99.5 percentiles of the
valid pixels of a decimated read, recorded in the output's provenance tags.
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from collections.abc import Mapping
from typing import Any, ContextManager

import numpy as np

from srrestore.domains.satellite import GeoTiffReader, GeoTiffWriter, RasterMeta, derive_output_meta
from srrestore.domains.satellite.geotiff import LOSSLESS, RasterSample
from srrestore.storage.atomic import atomic_output, check_output_path
from srrestore.engine.normalize import Normalization
from srrestore.errors import GeometryWarning, SRRestoreWarning
from srrestore.sr_model import SRModel
from srrestore.pipelines.common import RestoreReport, check_output_name, model_for, provenance, run_engine
from srrestore.pipelines.options import RestoreOptions
from srrestore.pipelines.satellite.options import GeoTiffOptions

__all__ = ["raster_normalization", "restore_geotiff"]


def raster_normalization(reader: GeoTiffReader, model: SRModel) -> Normalization:
    """The model's intensity map for the raster, from a decimated read of its valid pixels."""
    sample = reader.sample()
    return model.normalization_for(sample.values[:, sample.valid])


def _notes(meta: RasterMeta) -> list[str]:
    """Warnings about the input worth reporting (and a GeometryWarning for missing geometry)."""
    notes = []
    if meta.crs is None and not meta.gcps and meta.rpcs is None:
        message = "the raster has no CRS: the output keeps its pixel geometry only"
        warnings.warn(message, GeometryWarning, stacklevel=3)
        notes.append(message)
    if meta.compression is not None and meta.compression not in LOSSLESS:
        notes.append(f"lossy source compression {meta.compression} replaced by a lossless one")
    return notes


def _alpha_source(reader: GeoTiffReader) -> ContextManager[GeoTiffReader | None]:
    """A second reader of the input for the writer thread, when the raster has an alpha band (G14)."""
    return GeoTiffReader(reader.path, **reader.reopen_options) if reader.alpha is not None else nullcontext(None)


def _undeclared_fill(meta: RasterMeta, sample: RasterSample) -> list[str]:
    """A warning when the raster's edge is one constant value in every band but no nodata is declared.

    Scenes in a projected grid are often padded with a fill (0, 65535...) that is
    not declared: restored as data, it darkens or brightens the valid edge.
    """
    if meta.nodata is not None or meta.has_mask or min(sample.values.shape[1:]) < 3:
        return []
    edge = np.concatenate([sample.values[:, 0], sample.values[:, -1], sample.values[:, 1:-1, 0],
                           sample.values[:, 1:-1, -1]], axis=1)
    first = edge[:, :1]
    if not (edge == first).all() or not (first == first[0]).all() or (sample.values == first[0, 0]).all():
        return []
    value = first[0, 0].item()
    message = (f"the raster's edge is a constant {value:g} in every band but no nodata is declared; if that is fill,"
               f" restore with --nodata {value:g} (now it is restored as data)")
    warnings.warn(message, SRRestoreWarning, stacklevel=3)
    return [message]


def restore_geotiff(input_path: Path, output_path: Path,
                    options: GeoTiffOptions | RestoreOptions | Mapping[str, Any]) -> RestoreReport:
    """Upscale one GeoTIFF or COG into ``output_path`` (``options.cog``: a COG).

    Args:
        input_path: the raster (any numeric dtype but complex, any band count).
        output_path: where to write it; written to a temporary file and renamed.
        options: model, scale, engine options, ``overwrite``, ``cog``.

    Returns:
        The report; its ``notes`` list what the output could not keep as is.

    Raises:
        InputReadError: missing or corrupt raster.
        UnsupportedInputError: unsupported dtype or palette; channels the model cannot take.
        OutputExistsError: the output exists and ``overwrite`` is False.
        OutputWriteError: the output is the input, or cannot be written.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    options = GeoTiffOptions.for_format(options, "GeoTIFF")
    check_output_name(output_path, "geotiff")
    check_output_path(output_path, options.overwrite, [input_path])  # before any work
    with GeoTiffReader(input_path, options.nodata) as reader:
        notes = _notes(reader.meta)
        model = model_for(options, reader.spec.channels)
        notes += _undeclared_fill(reader.meta, reader.sample())
        normalization = raster_normalization(reader, model)
        meta = derive_output_meta(reader.meta, model.spec.scale)
        meta = replace(meta, tags={**meta.tags, **provenance(model, normalization)})
        size = meta.width * meta.height * meta.count * np.dtype(meta.dtype).itemsize if meta.compression is None else None
        with (atomic_output(output_path, options.overwrite, [input_path], size=size) as temporary,
              _alpha_source(reader) as alpha_source,
              GeoTiffWriter(temporary, meta, cog=options.cog, alpha_source=alpha_source) as writer):
            engine = run_engine(reader, writer, model, normalization, options)
            if reader.meta.has_mask:
                with GeoTiffReader(input_path) as mask_source:
                    writer.write_mask_from(mask_source)
    return RestoreReport(input_path, output_path, "geotiff", model.name, model.spec.scale,
                         normalization.to_dict(), engine, notes)
