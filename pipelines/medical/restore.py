"""Restore pipelines for medical volumes: DICOM series and NIfTI files.

A volume goes through one or two engine passes of a 2-D network:

- in-plane (``scale``): an isotropic ``(s, s)`` model on the planes across the
  slice axis, slice by slice;
- through-plane (``slice_scale``): a model that upscales one axis only,
  ``(s, 1)`` or ``(1, s)``, its factor along the slice axis, on both
  orthogonal planes holding the slice axis (``(D, H)`` and ``(D, W)``); the
  two results are averaged in normalised intensities and converted to the
  stored dtype once (:mod:`srrestore.pipelines.medical.planes`).

With both factors the through-plane pass runs first into a memory-mapped
scratch volume (stored dtype), which the in-plane pass reads. Without either,
a volume with one coarse axis (spacing at least twice the others) is restored
through-plane towards the in-plane spacing; any other volume in-plane with the
model's own factor.

Intensities: CT (DICOM Modality CT, or a NIfTI whose lowest value is air-like
in HU) through the fixed Hounsfield map, anything else by foreground
percentiles (:mod:`srrestore.domains.medical.intensity`); outputs keep the
stored dtype. Provenance (model, phase, checksum, factors, normalisation)
goes into DICOM DerivationDescription, NIfTI ``descrip`` (short) and a JSON
sidecar beside the NIfTI output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Sequence

import numpy as np
from srrestore.domains.medical.dicom_writer import DicomSeriesWriter, derive_series, factor_label, is_srrestore_series
from srrestore.domains.medical.geometry import coarse_axis
from srrestore.domains.medical.nifti import NiftiWriter, derive_header
from srrestore.domains.medical.volume import MedicalVolume, open_volume
from srrestore.pipelines.common import RestoreReport, check_output_name, run_engine
from srrestore.pipelines.medical.planes import average_planes
from srrestore.pipelines.medical.options import DicomOptions, VolumeOptions
from srrestore.pipelines.options import RestoreOptions

from srrestore import __version__
from srrestore.storage.atomic import atomic_output, check_output_path
from srrestore.storage.scratch import allocate_array, require_free_space, scratch_folder
from srrestore.engine.io import ArrayReader, Reader, Writer
from srrestore.engine.normalize import Normalization
from srrestore.engine.region import Region
from srrestore.errors import ConfigError, UnsupportedInputError
from srrestore.models.generator import SUPPORTED_FACTORS
from srrestore.sr_model import SRModel, load_model

__all__ = ["restore_dicom", "restore_nifti", "SRPass", "plan_passes", "sidecar_path"]


@dataclass(frozen=True)
class SRPass:
    """One engine pass over a volume.

    Attributes:
        kind: ``"through-plane"`` or ``"in-plane"``.
        model: the 2-D model.
        plane_axes: the volume's spatial axes the network sees, in its axis order.
        factors: upscale factor per spatial axis of the volume.
        second_plane: through-plane passes: the other plane holding the slice
            axis; the pass averages the runs on both planes. None: one plane.
        origin: where the factor came from (an option, the header, the model).
    """

    kind: str
    model: SRModel
    plane_axes: tuple[int, int]
    factors: tuple[int, int, int]
    second_plane: tuple[int, int] | None = None
    origin: str = ""

    def describe(self) -> str:
        """One line: the pass, its factor and axis, its model, and where the factor came from."""
        axis = next(a for a, f in enumerate(self.factors) if f > 1) if self.kind == "through-plane" else None
        where = f" along axis {axis}" if axis is not None else ""
        return f"{self.kind} x{max(self.factors)}{where} by {self.model.name} (factor from {self.origin})"

    @property
    def planes(self) -> list[tuple[int, int]]:
        """Every plane the pass runs on."""
        return [self.plane_axes] if self.second_plane is None else [self.plane_axes, self.second_plane]


def _load(name: str, factor: int | None, options: VolumeOptions) -> SRModel:
    return load_model(name, factor, 1, options.phase, options.device, options.precision, options.backend)


def _default_slice_factor(spacings: Sequence[float], axis: int) -> int:
    """The largest supported factor not above ``slice spacing / in-plane spacing``."""
    ratio = spacings[axis] / max(s for i, s in enumerate(spacings) if i != axis)
    return max([f for f in SUPPORTED_FACTORS if 1 < f <= round(ratio)] or [2])


def _through_plane(options: VolumeOptions, factor: int | None, axis: int, spacings: Sequence[float]) -> SRPass:
    name = options.slice_model or options.model
    origin = "--slice-scale"
    if factor is None and name == "default":
        factor = _default_slice_factor(spacings, axis)
        in_plane = max(s for i, s in enumerate(spacings) if i != axis)
        origin = f"the header: slice spacing {spacings[axis]:g} mm over in-plane {in_plane:g} mm"
    model = _load(name, factor, options)
    if factor is None:
        origin = f"the model {model.name}"
    rows, columns = model.spec.scale
    if min(rows, columns) != 1:
        wanted = factor or max(rows, columns)
        raise ConfigError(
            f"through-plane SR needs a model that upscales one axis only, e.g. scale ({wanted}, 1); model"
            f" {model.name} upscales by {rows}x{columns} (an in-plane model: use it with --scale, or train a"
            " through-plane model with `srrestore finetune`)"
        )
    other, third = (a for a in range(3) if a != axis)
    plane_axes, second_plane = ((axis, other), (axis, third)) if rows > 1 else ((other, axis), (third, axis))
    factors = [1, 1, 1]
    factors[axis] = max(rows, columns)
    return SRPass("through-plane", model, plane_axes, tuple(factors), second_plane, origin)  # type: ignore[arg-type]


def _in_plane(options: VolumeOptions, axis: int) -> SRPass:
    model = _load(options.model, options.scale, options)
    rows, columns = model.spec.scale
    if rows != columns:
        raise ConfigError(
            f"in-plane SR needs a model with equal factors, e.g. scale ({max(rows, columns)}, {max(rows, columns)});"
            f" model {model.name} upscales by {rows}x{columns} (a through-plane model: use it with --slice-scale)"
        )
    plane_axes = tuple(a for a in range(3) if a != axis)
    factors = [rows, rows, rows]
    factors[axis] = 1
    origin = "--scale" if options.scale is not None else f"the model {model.name}"
    return SRPass("in-plane", model, plane_axes, tuple(factors), None, origin)  # type: ignore[arg-type]


def plan_passes(
    options: VolumeOptions, spacings: Sequence[float], slice_axis: int, shape: Sequence[int]
) -> list[SRPass]:
    """Choose the passes for a volume.

    Args:
        options: ``scale``, ``slice_scale``, ``model``, ``slice_model``, ``phase``...
        spacings: voxel size per spatial axis, mm.
        slice_axis: the acquisition slice axis (used when no axis is coarse).
        shape: spatial shape.

    Returns:
        Through-plane pass first (if any), then the in-plane pass (if any).

    Raises:
        ConfigError: a factor is not a supported integer, the model does not fit
            the pass (the message names the model needed), or through-plane SR
            on a single slice.
    """
    for name, value in (("scale", options.scale), ("slice_scale", options.slice_scale)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    coarse = coarse_axis(spacings)
    if coarse is not None and shape[coarse] < 2:
        coarse = None
    axis = slice_axis if coarse is None else coarse
    through, in_plane = options.slice_scale, options.scale
    wants_through = (through is not None and through > 1) or (
        through is None and in_plane is None and coarse is not None
    )
    wants_in_plane = (in_plane is not None and in_plane > 1) or (
        through is None and in_plane is None and coarse is None
    )
    if wants_through and shape[axis] < 2:
        raise ConfigError(f"through-plane SR needs at least 2 slices; the volume has {shape[axis]} along axis {axis}")
    passes = []
    if wants_through:
        passes.append(_through_plane(options, through, axis, spacings))
    if wants_in_plane:
        passes.append(_in_plane(options, axis))
    if not passes:
        raise ConfigError(f"nothing to do: --scale {in_plane or 'not given'} and --slice-scale {through or 'not given'}"
                          " upscale nothing")
    return passes


def _total_factors(passes: list[SRPass]) -> tuple[int, int, int]:
    return tuple(int(np.prod([p.factors[a] for p in passes])) for a in range(3))  # type: ignore[return-value]


def _label(passes: list[SRPass]) -> str:
    """``"x2"``, ``"x4 through-plane"`` or ``"x2 in-plane, x4 through-plane"``."""
    through = max([max(p.factors) for p in passes if p.kind == "through-plane"] or [1])
    in_plane = max([max(p.factors) for p in passes if p.kind == "in-plane"] or [1])
    return factor_label((through, in_plane, in_plane))


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
    """Writer into a memory-mapped ``(C, *shape)`` array between two passes."""

    def __init__(self, folder: Path, channels: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.array = allocate_array(folder / "pass.dat", dtype, (channels, *shape))

    def write(self, region: Region, array: np.ndarray) -> None:
        self.array[(slice(None), *region.slices())] = array

    def close(self) -> None:
        self.array.flush()


def _run_passes(
    reader: ArrayReader,
    writer: Writer,
    passes: list[SRPass],
    normalization: Normalization,
    options: VolumeOptions,
    scratch: Path,
) -> list[Any]:
    """Run the passes from ``reader`` into ``writer`` (not closed), rounding to the stored dtype once, at the end.

    Returns:
        One engine report per pass; a two-plane pass gives a tuple of its two runs' reports.
    """
    reports = []
    stored, between = np.dtype(reader.spec.dtype), _between_passes_dtype(np.dtype(reader.spec.dtype))
    source: Reader = reader
    with scratch_folder(scratch, "passes") as folder:
        for number, step in enumerate(passes):
            last = number == len(passes) - 1
            target: Writer = writer
            if not last:
                shape = tuple(n * f for n, f in zip(source.spec.shape, step.factors))
                target = _ScratchVolume(Path(folder), source.spec.channels, shape, between)
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


def _describe(passes: list[SRPass], normalization: Normalization) -> str:
    """Provenance text: version, passes (model, phase, checksum, planes), normalisation."""
    steps = "; ".join(
        f"{p.kind} x{max(p.factors)} by model {p.model.name} ({p.model.info.phase.upper()} phase, sha256"
        f" {p.model.sha256[:16] or 'none'})"
        + (f" averaged over planes {' and '.join(map(str, p.planes))}" if p.second_plane else "")
        for p in passes
    )
    return f"srrestore {__version__} super-resolution: {steps}; intensity {json.dumps(normalization.to_dict())}"


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
    passes = plan_passes(options, volume.spacings, volume.slice_axis, volume.shape)
    factors = _total_factors(passes)
    output_bytes = int(np.prod(volume.shape) * np.prod(factors)) * volume.dtype.itemsize
    with _staged(volume, output_path, output_bytes) as volume:
        normalization = volume.normalization()
        derived = derive_series(series, factors, _describe(passes, normalization))
        size = int(np.prod(derived.shape)) * np.dtype(series.dtype).itemsize  # uncompressed pixel data
        with atomic_output(output_path, options.overwrite, [input_path], True, is_srrestore_series, size) as folder:
            writer = DicomSeriesWriter(folder, derived)
            reports = _run_passes(
                ArrayReader(volume.stored, volume.nodata), writer, passes, normalization, options, folder.parent
            )
            writer.close()
    return _report(
        input_path,
        output_path,
        "dicom",
        passes,
        factors,
        normalization,
        reports,
        [f"{_label(passes)}; series {derived.series_uid}; {len(writer.files)} file(s)", *series.notes],
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
    passes = plan_passes(options, volume.spacings, volume.slice_axis, volume.shape)
    factors = _total_factors(passes)
    output_bytes = volume.channels * int(np.prod(volume.shape) * np.prod(factors)) * volume.dtype.itemsize
    uncompressed = not output_path.name.lower().endswith(".gz")
    with _staged(volume, output_path, 2 * output_bytes if uncompressed else 0) as volume:
        is_ct = volume.is_ct
        normalization = volume.normalization()
        description = _describe(passes, normalization)
        phases = "+".join(p.model.info.phase for p in passes)
        header = derive_header(
            volume.source.header,
            factors,
            f"srrestore {_label(passes)} {phases} {passes[0].model.name}",
            volume.slope,
            volume.intercept,
        )
        sidecar = {
            "srrestore": __version__,
            "source": str(input_path),
            "factors_ijk": list(factors),
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
                }
                for p in passes
            ],
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
                reports = _run_passes(ArrayReader(volume.stored), writer, passes, normalization, options, temporary.parent)
            except BaseException:
                writer.discard()
                raise
            writer.close()
            sidecar_temporary.write_text(json.dumps(sidecar, indent=2))
    return _report(
        input_path,
        output_path,
        "nifti",
        passes,
        factors,
        normalization,
        reports,
        [f"sidecar {sidecar_path(output_path)}"],
    )


def _report(input_path: Path, output_path: Path, kind: str, passes: Sequence[SRPass], factors: tuple[int, ...],
            normalization: Normalization, reports: list[Any], notes: list[str]) -> RestoreReport:
    """The report of a volume restore: the models of every pass joined, the normalisation recorded."""
    return RestoreReport(input_path, output_path, kind, " + ".join(p.model.name for p in passes), factors,
                         normalization.to_dict(), reports, [step.describe() for step in passes] + notes)
