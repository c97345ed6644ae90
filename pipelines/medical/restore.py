"""Restore pipelines for medical volumes: DICOM series and NIfTI files.

What runs is planned by :mod:`srrestore.pipelines.medical.plan`: a
through-plane pass, an in-plane pass, or both (through-plane first), and the
output's slice grid. With two passes, or when the slices are resampled onto a
wanted spacing, the passes write into a memory-mapped scratch volume (floats
in stored units), which the next step reads; only the last step rounds to the
stored dtype.

Intensities: CT (DICOM Modality CT, or a NIfTI whose lowest value is air-like
in HU) through the fixed Hounsfield map, anything else by foreground
percentiles (:mod:`srrestore.domains.medical.intensity`); outputs keep the
stored dtype. Provenance (model, phase, checksum, factors, slice grid and
profile, normalisation) goes into DICOM DerivationDescription, NIfTI
``descrip`` (short) and a JSON sidecar beside the NIfTI output.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
from srrestore.domains.medical.dicom_writer import DicomSeriesWriter, derive_series, factor_label, is_srrestore_series
from srrestore.domains.medical.nifti import NiftiWriter, derive_header
from srrestore.domains.medical.resample import axis_weights
from srrestore.domains.medical.volume import MedicalVolume, open_volume
from srrestore.pipelines.common import RestoreReport, check_output_name, run_engine
from srrestore.pipelines.medical.options import DicomOptions, VolumeOptions
from srrestore.pipelines.medical.plan import VolumePlan, model_slice_profile, plan_volume
from srrestore.pipelines.medical.planes import CHUNK_VALUES, average_planes
from srrestore.pipelines.options import RestoreOptions

from srrestore import __version__
from srrestore.storage.atomic import atomic_output, check_output_path
from srrestore.storage.scratch import allocate_array, require_free_space, scratch_folder
from srrestore.engine.io import ArrayReader, Reader, Writer
from srrestore.engine.nodata import invalid_value, keep_off_nodata
from srrestore.engine.normalize import Normalization, to_dtype
from srrestore.engine.region import Region
from srrestore.errors import UnsupportedInputError

__all__ = ["restore_dicom", "restore_nifti", "sidecar_path"]

RESAMPLED_VALID_SHARE = 0.5  # share of an output voxel's resampling weight that must fall on valid voxels


def _label(plan: VolumePlan) -> str:
    """``"x2"``, ``"x4 through-plane"``, ``"x3.3 through-plane"`` or ``"x2 in-plane, x4 through-plane"``."""
    axis = plan.grid.axis if plan.grid is not None else None
    in_plane = max([max(p.factors) for p in plan.passes if p.kind == "in-plane"] or [1])
    return factor_label((plan.zooms[axis] if axis is not None else 1, in_plane, in_plane))


def _between_passes_dtype(stored: np.dtype) -> np.dtype:
    """The float dtype that holds every stored value exactly: float32 up to 16-bit data, else float64."""
    return np.dtype(np.float32 if stored.itemsize <= 2 or stored == np.float32 else np.float64)


class _Unrounded:
    """Reader (engine protocol) giving ``source``'s values as floats, whose outputs the engine writes as ``output``.

    Between two passes a volume stays in float stored units: only the last pass
    rounds to the stored dtype, once, as a single pass would.
    """

    def __init__(self, source: Reader, values: np.dtype, output: np.dtype) -> None:
        self.source = source
        self.values = values
        self.spec = replace(source.spec, dtype=np.dtype(output).name)

    def read(self, region: Region) -> np.ndarray:
        return self.source.read(region).astype(self.values, copy=False)

    def read_valid(self, region: Region) -> np.ndarray:
        return self.source.read_valid(region)


class _ScratchVolume:
    """Writer into a memory-mapped ``(C, *shape)`` array between two steps."""

    def __init__(self, path: Path, channels: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.array = allocate_array(path, dtype, (channels, *shape))

    def write(self, region: Region, array: np.ndarray) -> None:
        self.array[(slice(None), *region.slices())] = array

    def close(self) -> None:
        self.array.flush()


def _resample_slices(values: np.ndarray, writer: Writer, axis: int, count: int, dtype: np.dtype,
                     nodata: float | None) -> None:
    """Resample ``values`` along a spatial axis onto ``count`` samples and write them in ``dtype``, slab by slab.

    Args:
        values: ``(C, *spatial)`` floats in stored units; invalid voxels hold
            NaN or ``nodata`` (as the engine writes them).
        writer: takes ``(C, *region)`` stored values in output space.
        axis: the spatial axis resampled (:func:`~srrestore.domains.medical.resample.axis_weights`).
        count: output samples along ``axis``.
        dtype: the stored dtype: one rounding and clipping, here (I5).
        nodata: the source's nodata (None: NaN marks invalid voxels).

    Invalid voxels do not bleed into valid ones: values and validity are
    resampled with the same weights and divided; an output voxel is valid when
    at least half its weight falls on valid voxels, else it holds the nodata
    value (or 0 / NaN), and valid outputs are moved off nodata (G6).
    """
    weights = axis_weights(values.shape[1 + axis], count)
    plane = max(1, values.size // values.shape[1 + axis])
    step = max(1, CHUNK_VALUES // plane)
    channels = values.shape[0]
    identity = Normalization((0.0,) * channels, (1.0,) * channels, method="identity")
    fill = invalid_value(dtype, nodata)
    out_shape = list(values.shape[1:])
    out_shape[axis] = count
    for start in range(0, count, step):
        taps = weights[start : start + step]
        low, high = int(taps.indices.min()), int(taps.indices.max()) + 1
        rows = taps[:, low:high].toarray()  # (slab, used inputs): a few taps per output
        block = np.take(values, np.arange(low, high), axis=1 + axis).astype(np.float64)
        valid = ~np.isnan(block) if nodata is None else ~(np.isnan(block) | (block == nodata))
        total, share = (
            np.moveaxis(np.tensordot(rows, part, axes=(1, 1 + axis)), 0, 1 + axis)
            for part in (np.where(valid, block, 0.0), valid.astype(np.float64))
        )
        keep = share >= RESAMPLED_VALID_SHARE
        mean = np.where(keep, total / np.where(keep, share, 1.0), np.nan)
        stored = to_dtype(mean, dtype)
        keep_off_nodata(stored, mean, identity, nodata)
        stored[~keep] = fill
        starts, stops = [0] * len(out_shape), list(out_shape)
        starts[axis], stops[axis] = start, start + rows.shape[0]
        writer.write(Region(tuple(starts), tuple(stops)), stored)


def _run_passes(
    reader: ArrayReader,
    writer: Writer,
    plan: VolumePlan,
    normalization: Normalization,
    options: VolumeOptions,
    scratch: Path,
) -> list[Any]:
    """Run the plan's passes (and its slice resampling) from ``reader`` into ``writer`` (not closed).

    Every step but the last writes floats in stored units into a scratch
    volume; the last rounds to the stored dtype, once.

    Returns:
        One engine report per pass; a two-plane pass gives a tuple of its two runs' reports.
    """
    reports = []
    stored, between = np.dtype(reader.spec.dtype), _between_passes_dtype(np.dtype(reader.spec.dtype))
    source: Reader = reader
    resampling = plan.resampling
    with scratch_folder(scratch, "passes") as folder:
        for number, step in enumerate(plan.passes):
            last = number == len(plan.passes) - 1 and resampling is None
            target: Writer = writer
            if not last:
                shape = tuple(n * f for n, f in zip(source.spec.shape, step.factors))
                target = _ScratchVolume(Path(folder) / f"pass{number}.dat", source.spec.channels, shape, between)
                source = _Unrounded(source, between, between)
            if step.second_plane is None:
                reports.append(run_engine(source, target, step.model, normalization, options, step.plane_axes))
            else:
                reports.append(tuple(average_planes(
                    source, target, step.model, step.planes, step.factors, normalization, options, Path(folder)
                )))
            if not last:
                target.close()
                scratch_reader = ArrayReader(target.array, reader.spec.nodata)  # type: ignore[attr-defined]
                source = _Unrounded(scratch_reader, between, stored)
        if resampling is not None:
            _resample_slices(scratch_reader.array, writer, *resampling, stored, reader.spec.nodata)
    return reports


@contextmanager
def _staged(volume: MedicalVolume, output_path: Path, output_bytes: int) -> Iterator[MedicalVolume]:
    """``volume`` read slab by slab into a disk-backed array beside the output (memory stays bounded).

    The copy and ``output_bytes`` must fit on the output's disk (checked
    first); the copy is removed on exit, whatever the exit.
    """
    parent = Path(output_path).absolute().parent
    require_free_space(parent, volume.nbytes + output_bytes, f"output {output_path} (with a copy of the input)")
    with scratch_folder(parent, "input") as folder:
        yield volume.staged(folder)


def _describe(plan: VolumePlan, normalization: Normalization) -> str:
    """Provenance text: version, passes (model, phase, checksum, planes, slice profile), slice grid, normalisation."""
    steps = "; ".join(
        f"{p.kind} x{max(p.factors)} by model {p.model.name} ({p.model.info.phase.upper()} phase, sha256"
        f" {p.model.sha256[:16] or 'none'})"
        + (f" averaged over planes {' and '.join(map(str, p.planes))}" if p.second_plane else "")
        + (f", slice profile {model_slice_profile(p.model)}" if p.kind == "through-plane" else "")
        for p in plan.passes
    )
    grid = f"; {plan.grid.describe()}" if plan.grid is not None else ""
    return (f"srrestore {__version__} super-resolution: {steps}{grid};"
            f" intensity {json.dumps(normalization.to_dict())}")


def _scratch_bytes(plan: VolumePlan, channels: int, dtype: np.dtype) -> int:
    """Disk space of the float scratch volumes between steps (every pass's output but the last step's)."""
    shape, total = list(plan.shape), 0
    steps = len(plan.passes) - (plan.resampling is None)
    for step in plan.passes[:steps]:
        shape = [n * f for n, f in zip(shape, step.factors)]
        total += channels * int(np.prod(shape)) * _between_passes_dtype(dtype).itemsize
    return total


def restore_dicom(input_path: Path, output_path: Path,
                  options: DicomOptions | RestoreOptions | Mapping[str, Any]) -> RestoreReport:
    """Restore a DICOM series (folder or file) into a derived series folder.

    Args:
        input_path: a folder holding one series (or several with
            ``options.series_uid``), a single-frame file or an enhanced multi-frame file.
        output_path: the output folder (one file per slice, or one multi-frame file).
        options: restore options (``scale``, ``slice_scale``, ``series_uid``...).

    Raises:
        InputReadError, UnsupportedInputError: see
            :func:`~srrestore.domains.medical.volume.open_volume`; nothing is written.
        ConfigError: options that do not fit the series or the model.
        OutputExistsError, OutputWriteError: see :func:`~srrestore.storage.atomic.atomic_output`.
    """
    options = DicomOptions.for_format(options, "DICOM")
    check_output_name(output_path, "dicom")
    check_output_path(output_path, options.overwrite, [input_path], True, is_srrestore_series)  # before any work
    volume = open_volume(input_path, options.series_uid, options.resample_irregular)
    if volume.format != "dicom":
        raise UnsupportedInputError(f"{input_path}: not a DICOM file or series folder")
    series = volume.source
    plan = plan_volume(options, volume.spacings, volume.slice_axis, volume.shape)
    output_bytes = int(np.prod(plan.output_shape)) * volume.dtype.itemsize
    with _staged(volume, output_path, output_bytes + _scratch_bytes(plan, 1, volume.dtype)) as volume:
        normalization = volume.normalization()
        derived = derive_series(series, plan.zooms, _describe(plan, normalization))
        size = int(np.prod(derived.shape)) * np.dtype(series.dtype).itemsize  # uncompressed pixel data
        with atomic_output(output_path, options.overwrite, [input_path], True, is_srrestore_series, size) as folder:
            writer = DicomSeriesWriter(folder, derived)
            reports = _run_passes(
                ArrayReader(volume.stored, volume.nodata), writer, plan, normalization, options, folder.parent
            )
            writer.close()
    return _report(
        input_path,
        output_path,
        "dicom",
        plan,
        normalization,
        reports,
        [f"{_label(plan)}; series {derived.series_uid}; {len(writer.files)} file(s)", *series.notes],
    )


def sidecar_path(output_path: Path) -> Path:
    """The JSON sidecar of a NIfTI output: ``out.nii.gz`` -> ``out.json``."""
    name = output_path.name
    stem = name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else name[: -len(".nii")]
    return output_path.with_name(stem + ".json")


def _nifti_bytes(header: Any, output_path: Path) -> int | None:
    """Disk space an uncompressed output needs while written: its scratch volume and the file (None for .nii.gz)."""
    if output_path.name.lower().endswith(".gz"):
        return None
    return 2 * int(np.prod(header.get_data_shape())) * header.get_data_dtype().itemsize


def restore_nifti(input_path: Path, output_path: Path,
                  options: VolumeOptions | RestoreOptions | Mapping[str, Any]) -> RestoreReport:
    """Restore a 3-D or 4-D NIfTI file (each volume of a 4-D file in turn).

    Writes ``output_path`` (``.nii`` or ``.nii.gz``, the stored dtype and
    scaling of the input) and a JSON sidecar beside it with the provenance.

    Raises:
        InputReadError, UnsupportedInputError: see :func:`~srrestore.domains.medical.volume.open_volume`.
        ConfigError: an output suffix other than ``.nii``/``.nii.gz``, DICOM- or
            GeoTIFF-only options, or options that do not fit the volume or the model.
        OutputExistsError, OutputWriteError: the output or its sidecar exists, or cannot be written.
    """
    options = VolumeOptions.for_format(options, "NIfTI")
    check_output_name(output_path, "nifti")
    for path in (output_path, sidecar_path(output_path)):
        check_output_path(path, options.overwrite, [input_path])  # before any work
    volume = open_volume(input_path)
    if volume.format != "nifti":
        raise UnsupportedInputError(f"{input_path}: not a NIfTI file (.nii, .nii.gz)")
    plan = plan_volume(options, volume.spacings, volume.slice_axis, volume.shape)
    output_bytes = volume.channels * int(np.prod(plan.output_shape)) * volume.dtype.itemsize
    uncompressed = not output_path.name.lower().endswith(".gz")
    scratch_bytes = _scratch_bytes(plan, volume.channels, volume.dtype)
    with _staged(volume, output_path, (2 * output_bytes if uncompressed else 0) + scratch_bytes) as volume:
        is_ct = volume.is_ct
        normalization = volume.normalization()
        description = _describe(plan, normalization)
        passes = plan.passes
        phases = "+".join(p.model.info.phase for p in passes)
        header = derive_header(
            volume.source.header,
            plan.zooms,
            f"srrestore {_label(plan)} {phases} {passes[0].model.name}",
            volume.slope,
            volume.intercept,
        )
        sidecar = {
            "srrestore": __version__,
            "source": str(input_path),
            "factors_ijk": list(plan.zooms),
            "description": description,
            "modality_guess": "CT" if is_ct else "other",
            "passes": [
                {
                    "kind": p.kind,
                    "model": p.model.name,
                    "phase": p.model.info.phase,
                    "sha256": p.model.sha256,
                    "plane_axes": list(p.plane_axes),
                    "planes_averaged": [list(plane) for plane in p.planes],
                    "factor_from": p.origin,
                    **({"slice_profile": model_slice_profile(p.model)} if p.kind == "through-plane" else {}),
                }
                for p in passes
            ],
            **({"slice_grid": {
                "axis": plan.grid.axis, "source_spacing_mm": plan.grid.source_spacing,
                "spacing_mm": plan.grid.spacing, "model_factor": plan.grid.factor, "slices": plan.grid.count,
                "resampled": plan.grid.resamples, "from": plan.grid.origin,
            }} if plan.grid is not None else {}),
            "normalization": normalization.to_dict(),
        }
        with (
            atomic_output(sidecar_path(output_path), options.overwrite, [input_path]) as sidecar_temporary,
            atomic_output(output_path, options.overwrite, [input_path], size=_nifti_bytes(header, output_path)) as temporary,
        ):
            writer = NiftiWriter(
                temporary,
                header,
                volume.stored.shape[0],
                volume.source.image_class,
                output_path.name.lower().endswith(".gz"),
                scratch=temporary.parent,
            )
            try:
                reports = _run_passes(ArrayReader(volume.stored), writer, plan, normalization, options, temporary.parent)
            except BaseException:
                writer.discard()
                raise
            writer.close()
            sidecar_temporary.write_text(json.dumps(sidecar, indent=2))
    return _report(input_path, output_path, "nifti", plan, normalization, reports,
                   [f"sidecar {sidecar_path(output_path)}"])


def _report(input_path: Path, output_path: Path, kind: str, plan: VolumePlan, normalization: Normalization,
            reports: list[Any], notes: list[str]) -> RestoreReport:
    """The report of a volume restore: the models of every pass joined, the plan's lines first."""
    zooms = tuple(int(z) if float(z).is_integer() else round(z, 4) for z in plan.zooms)
    return RestoreReport(input_path, output_path, kind, " + ".join(p.model.name for p in plan.passes), zooms,
                         normalization.to_dict(), reports, plan.describe() + notes)
