"""Read a DICOM series (a folder of single-frame files, or one file) into a volume.

A series is built the way invariants D1-D3 and D11 require: slices sorted by
their position along the slice normal ``n = row_cos x col_cos`` (never by
InstanceNumber or SliceLocation), one orientation (within 1e-4), one frame of
reference, no duplicate positions, uniform steps (within 1 %) and no gantry
tilt (the step vector within 0.1 degrees of ``n``). Series that fail the last
two checks are refused with a message naming the problem, or, when asked,
resampled onto a regular grid by :mod:`srrestore.domains.medical.resample`
(planes perpendicular to ``n``, evenly spaced, linear interpolation).

Enhanced multi-frame files (CT, MR, PET...) take orientation and spacing from
the Shared Functional Groups and positions from the Per-Frame ones.
Compressed transfer syntaxes are decoded by pydicom's pylibjpeg plugins
(JPEG, JPEG-LS, JPEG 2000) or natively (RLE).

The volume has axes ``(D, H, W)`` = ``(slice, row, column)`` and the affine
index order ``(column, row, slice)`` of D3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from srrestore.domains.medical.geometry import dicom_affine, slice_normal, slice_positions
from srrestore.domains.medical.resample import StackResampling

from srrestore.engine.normalize import to_dtype
from srrestore.errors import ConfigError, InputReadError, MissingDependencyError, UnsupportedInputError

__all__ = ["DicomSeries", "open_series", "scan_folder", "read_header", "TILT_TOLERANCE_DEG", "SPACING_TOLERANCE"]

TILT_TOLERANCE_DEG = 0.1
SPACING_TOLERANCE = 0.01
ORIENTATION_TOLERANCE = 1e-4
DUPLICATE_TOLERANCE_MM = 1e-3
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


def sniff_dicom(path: Path) -> bool:
    """A DICOM file (``DICM`` preamble), or a folder holding at least one."""
    if path.is_dir():
        return any(p.is_file() and _has_preamble(p) for p in path.iterdir())
    return path.is_file() and _has_preamble(path)


def _has_preamble(path: Path) -> bool:
    """``DICM`` after the 128-byte preamble: the test of ``pydicom.misc.is_dicom``, without importing
    pydicom (0.2 s) for every input that is not DICOM."""
    with path.open("rb") as stream:
        return stream.read(132)[128:] == b"DICM"


def read_header(path: Path) -> Any:
    """Read a DICOM file's attributes without its pixel data.

    Returns:
        The ``pydicom.Dataset``, or None when ``path`` is not a DICOM file.

    Raises:
        InputReadError: the file cannot be read.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        return None
    except (OSError, ValueError, EOFError, KeyError) as error:
        raise InputReadError(f"cannot read DICOM file {path}: {error}") from error


def _is_image(header: Any, path: Path) -> bool:
    """Whether a DICOM object holds an image.

    Raises:
        InputReadError: an image SOP class without Rows/Columns (a truncated file).
    """
    if _sop_class(header) == _DICOMDIR_CLASS:
        return False
    if "Rows" in header and "Columns" in header:
        return True
    if "Image Storage" in _class_name(header):
        raise InputReadError(f"{path}: a {_class_name(header)} file without Rows/Columns; truncated or incomplete file")
    return False


def _sop_class(header: Any) -> str:
    meta = getattr(header, "file_meta", None)
    return str(header.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta else ""))


def _sop_instance(header: Any) -> str:
    meta = getattr(header, "file_meta", None)
    return str(header.get("SOPInstanceUID", "") or (meta.get("MediaStorageSOPInstanceUID", "") if meta else ""))


def _class_name(header: Any) -> str:
    from pydicom.uid import UID

    uid = _sop_class(header)
    return UID(uid).name if uid else "unknown SOP class"


def scan_folder(folder: Path) -> tuple[dict[str, list[tuple[Path, Any]]], list[str]]:
    """Group the image files of a folder (not recursive) by SeriesInstanceUID.

    Files that are not DICOM, DICOMDIRs and DICOM objects without an image
    (RT plans, structured reports...) are skipped.

    Returns:
        ``{series_uid: [(path, header), ...]}`` (an empty UID is a key too), and
        the skipped DICOM objects as ``"name (SOP class)"``.

    Raises:
        UnsupportedInputError: no DICOM image in the folder.
    """
    series: dict[str, list[tuple[Path, Any]]] = {}
    skipped: list[str] = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        header = read_header(path)
        if header is None:
            continue
        if not _is_image(header, path):
            skipped.append(f"{path.name} ({_class_name(header)})")
            continue
        series.setdefault(str(header.get("SeriesInstanceUID", "")), []).append((path, header))
    if not series:
        found = f"; non-image DICOM objects: {', '.join(skipped)}" if skipped else ""
        raise UnsupportedInputError(f"{folder}: no DICOM image in this folder{found}")
    return series, skipped


@dataclass
class DicomSeries:
    """A sorted, checked DICOM series.

    ``paths``, ``frames`` and ``headers`` describe the source slices;
    ``affine``, ``shape`` and ``slice_spacing`` the volume :meth:`read_volume`
    returns. They are the same grid unless ``resampling`` is set.

    Attributes:
        paths: source file of each source slice, in spatial order (one path repeated for a multi-frame file).
        frames: 0-based frame index of each source slice in its file, in spatial order.
        headers: header of each source slice's file (the same dataset for every frame of a multi-frame file).
        affine: ``(4, 4)`` D3 affine, index order ``(column, row, slice)``, LPS mm.
        shape: ``(D, H, W)`` slices, rows, columns of the volume.
        pixel_spacing: ``(row spacing, column spacing)`` in mm.
        slice_spacing: distance between slice centres along the normal, mm.
        slice_thickness: SliceThickness in mm, or None.
        slope, intercept: stored-to-physical rescale (1, 0 when absent).
        multiframe: the series is one enhanced multi-frame file.
        lossy: the pixels went through lossy compression (transfer syntax or LossyImageCompression).
        notes: things the reader skipped, assumed or resampled, for the restore report.
        resampling: how an irregular source stack (gantry tilt, uneven steps)
            maps onto the regular grid of ``affine`` and ``shape``; None for a regular series.
    """

    paths: list[Path]
    frames: list[int]
    headers: list[Any]
    affine: np.ndarray
    shape: tuple[int, int, int]
    pixel_spacing: tuple[float, float]
    slice_spacing: float
    slice_thickness: float | None
    slope: float
    intercept: float
    multiframe: bool
    lossy: bool
    notes: list[str] = field(default_factory=list)
    resampling: StackResampling | None = None

    @property
    def header(self) -> Any:
        """The first slice's header (series-level attributes)."""
        return self.headers[0]

    @property
    def modality(self) -> str:
        return str(self.header.get("Modality", ""))

    @property
    def series_uid(self) -> str:
        return str(self.header.get("SeriesInstanceUID", ""))

    @property
    def sop_instance_uids(self) -> list[str]:
        return [_sop_instance(h) for h in self.headers]

    @property
    def sop_class_uid(self) -> str:
        return _sop_class(self.header)

    @property
    def dtype(self) -> np.dtype:
        """Stored dtype of the pixel values (uint8, int8, uint16 or int16)."""
        bits = int(self.header.BitsAllocated)
        signed = int(self.header.get("PixelRepresentation", 0)) == 1
        return np.dtype(f"{'int' if signed else 'uint'}{bits}")

    @property
    def stored_range(self) -> tuple[int, int]:
        """Smallest and largest value BitsStored can hold (D8)."""
        bits = int(self.header.BitsStored)
        if int(self.header.get("PixelRepresentation", 0)) == 1:
            return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return 0, 2**bits - 1

    @property
    def padding_value(self) -> float | None:
        """PixelPaddingValue (treated as nodata, D9), or None."""
        value = self.header.get("PixelPaddingValue")
        return None if value is None else float(value)

    @property
    def source_positions(self) -> np.ndarray:
        """``(N, 3)`` ImagePositionPatient of each source slice, in spatial order, mm."""
        if self.resampling is not None:
            return np.asarray(self.resampling.positions, dtype=np.float64)
        return slice_positions(self.affine, self.shape[0])

    def read_volume(self, out: np.ndarray | None = None) -> np.ndarray:
        """Decode every slice into a ``(D, H, W)`` array of stored values (``self.dtype``).

        Slices of a regular single-frame series are decoded one file at a
        time straight into ``out`` (e.g. a disk-backed array: memory stays
        bounded); None: a new in-memory array.

        A resampled series is interpolated from its source slices (see
        :mod:`~srrestore.domains.medical.resample`); PixelPaddingValue pixels
        are nodata and fill what lies outside the acquired field (without
        one, the lowest stored value does: air in CT); values are rounded and
        clipped into the BitsStored range (D8, I5).

        Raises:
            InputReadError: truncated or corrupt pixel data.
            MissingDependencyError: no decoder for the transfer syntax.
        """
        if self.resampling is None:
            return self._read_stack(np.empty(self.shape, dtype=self.dtype) if out is None else out)
        stack = self._read_stack(np.empty((len(self.frames), *self.shape[1:]), dtype=self.dtype))
        padding = self.padding_value
        valid = np.ones(stack.shape, dtype=bool) if padding is None else stack != padding
        fill = float(stack.min()) if padding is None else padding
        low, high = self.stored_range
        volume = np.empty(self.shape, dtype=self.dtype) if out is None else out
        for index, plane in enumerate(self.resampling.planes(stack, valid, fill)):
            volume[index] = to_dtype(np.clip(plane, low, high), self.dtype)
        return volume

    def _read_stack(self, stack: np.ndarray) -> np.ndarray:
        """The ``(N, H, W)`` stored values of the source slices, in spatial order, decoded into ``stack``."""
        if self.multiframe:
            pixels = _decode(self.paths[0])
            pixels = pixels.reshape(-1, *self.shape[1:])
            stack[:] = pixels[self.frames]
            return stack
        for index, path in enumerate(self.paths):
            pixels = _decode(path)
            if pixels.shape != self.shape[1:]:
                raise InputReadError(f"{path}: pixel data of shape {pixels.shape}, expected {self.shape[1:]}")
            stack[index] = pixels
        return stack


def _decode(path: Path) -> np.ndarray:
    import pydicom

    try:
        dataset = pydicom.dcmread(path)
        syntax = dataset.file_meta.TransferSyntaxUID
    except Exception as error:  # pydicom raises many types for corrupt files
        raise InputReadError(f"cannot read DICOM file {path}: {error}") from error
    if "PixelData" not in dataset:
        raise InputReadError(f"{path}: no pixel data (truncated file?)")
    try:
        return dataset.pixel_array
    except (NotImplementedError, RuntimeError) as error:
        if "plugin" in str(error).lower() or "handler" in str(error).lower():
            raise MissingDependencyError(
                f"{path}: no decoder for transfer syntax {syntax.name};"
                " install pylibjpeg, pylibjpeg-openjpeg and pylibjpeg-libjpeg"
            ) from error
        raise InputReadError(f"cannot decode the pixel data of {path} ({syntax.name}): {error}") from error
    except Exception as error:  # truncated or corrupt data: ValueError, struct errors...
        raise InputReadError(f"cannot decode the pixel data of {path} ({syntax.name}): {error}") from error


def _floats(header: Any, keyword: str, count: int, where: Path) -> np.ndarray:
    value = header.get(keyword)
    if value is None or len(value) != count:
        raise InputReadError(
            f"{where}: {keyword} is missing or malformed ({value!r}); truncated or not a cross-sectional image"
        )
    return np.asarray([float(v) for v in value], dtype=np.float64)


_LOSSLESS_SYNTAXES = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
}


def _is_lossy(header: Any) -> bool:
    syntax = str(header.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2.1"))
    return syntax not in _LOSSLESS_SYNTAXES or str(header.get("LossyImageCompression", "00")) == "01"


def _check_pixel_format(header: Any, where: Path) -> None:
    samples = int(header.get("SamplesPerPixel", 1))
    if samples != 1:
        raise UnsupportedInputError(
            f"{where}: {samples} samples per pixel (colour); only greyscale series are supported"
        )
    if "BitsAllocated" not in header or "BitsStored" not in header:
        raise InputReadError(f"{where}: BitsAllocated/BitsStored missing; truncated or not an image")
    if int(header.BitsAllocated) not in (8, 16):
        raise UnsupportedInputError(f"{where}: BitsAllocated {header.BitsAllocated} is not supported (8 or 16)")


def _rescale(header: Any, frame: Any = None) -> tuple[float, float]:
    """RescaleSlope/Intercept of a header, or of one frame of an enhanced file (per-frame, then shared groups)."""
    shared = header.get("SharedFunctionalGroupsSequence")
    source = header
    for groups in (frame, shared[0] if shared else None):
        if groups is not None and "PixelValueTransformationSequence" in groups:
            source = groups.PixelValueTransformationSequence[0]
            break
    return float(source.get("RescaleSlope", 1.0) or 1.0), float(source.get("RescaleIntercept", 0.0) or 0.0)


def _sort_and_check(
    positions: np.ndarray,
    orientation: np.ndarray,
    pixel_spacing: np.ndarray,
    where: str,
    nominal_spacing: float | None,
    resample: bool,
) -> tuple[np.ndarray, np.ndarray, float, StackResampling | None]:
    """Sort slices along the normal and check the steps (D1, D2).

    Args:
        positions: ``(N, 3)`` ImagePositionPatient of each slice, mm.
        orientation: ``(6,)`` ImageOrientationPatient.
        pixel_spacing: ``(2,)`` PixelSpacing, mm.
        where: the input, for messages.
        nominal_spacing: spacing of a one-slice series (SpacingBetweenSlices or SliceThickness), mm.
        resample: resample a series with gantry tilt or uneven steps instead of refusing it.

    Returns:
        ``(order, step, spacing, resampling)``: the sorting permutation, the
        world step vector between slices of the volume (D3), the spacing along
        the normal, and the resampling of an irregular series (else None).

    Raises:
        UnsupportedInputError: duplicate positions; gantry tilt or uneven steps without ``resample``.
    """
    normal = slice_normal(orientation)
    projections = positions @ normal
    order = np.argsort(projections, kind="stable")
    positions, projections = positions[order], projections[order]
    count = len(order)
    if count == 1:
        spacing = nominal_spacing or 1.0
        return order, normal * spacing, spacing, None
    steps = np.diff(projections)
    if np.any(steps < DUPLICATE_TOLERANCE_MM):
        raise UnsupportedInputError(
            f"{where}: several slices share a position ({count} slices); the series holds several stacks or time points"
        )
    spacing = float(np.median(steps))
    problems, corrections = [], []
    vectors = np.diff(positions, axis=0)
    cosines = np.clip((vectors @ normal) / np.linalg.norm(vectors, axis=1), -1.0, 1.0)
    tilt = float(np.degrees(np.arccos(cosines)).max())
    if tilt > TILT_TOLERANCE_DEG:
        problems.append(f"a gantry tilt of {tilt:.2f} degrees (slices are sheared, not stacked along their normal)")
        corrections.append(f"gantry tilt of {tilt:.2f} degrees corrected")
    deviation = np.abs(steps - spacing) / spacing
    if deviation.max() > SPACING_TOLERANCE:
        problems.append(
            f"non-uniform slice spacing (steps {steps.min():.4g} to {steps.max():.4g} mm, median {spacing:.4g} mm,"
            f" more than {SPACING_TOLERANCE:.0%} apart)"
        )
        corrections.append(f"slice steps of {steps.min():.4g} to {steps.max():.4g} mm made uniform")
    if problems and not resample:
        raise UnsupportedInputError(
            f"{where}: the series has {' and '.join(problems)}; srrestore refuses it rather than write wrong"
            " geometry; `srrestore restore --resample-irregular` resamples it onto a regular grid"
        )
    if problems:
        resampling = StackResampling(
            positions=positions,
            orientation=np.asarray(orientation, dtype=np.float64),
            pixel_spacing=(float(pixel_spacing[0]), float(pixel_spacing[1])),
            corrections=tuple(corrections),
            corrects_tilt=tilt > TILT_TOLERANCE_DEG,
        )
        return order, normal * resampling.spacing, resampling.spacing, resampling
    step = (positions[-1] - positions[0]) / (count - 1)
    return order, step, spacing, None


def _check_single(values: list[Any], name: str, where: str) -> None:
    distinct = sorted({str(v) for v in values})
    if len(distinct) > 1:
        raise UnsupportedInputError(
            f"{where}: slices have {len(distinct)} different {name}s ({', '.join(distinct[:3])}...)"
        )


def _from_single_frames(files: list[tuple[Path, Any]], where: str, resample: bool) -> DicomSeries:
    headers = [header for _, header in files]
    first = headers[0]
    for path, header in files:
        _check_pixel_format(header, path)
    orientations = np.stack([_floats(h, "ImageOrientationPatient", 6, p) for p, h in files])
    if np.abs(orientations - orientations[0]).max() > ORIENTATION_TOLERANCE:
        raise UnsupportedInputError(
            f"{where}: slices have different orientations (ImageOrientationPatient); split the series"
        )
    _check_single([h.get("FrameOfReferenceUID", "") for h in headers], "FrameOfReferenceUID", where)
    _check_single([(int(h.Rows), int(h.Columns)) for h in headers], "image size", where)
    _check_single(
        [(int(h.BitsAllocated), int(h.BitsStored), int(h.get("PixelRepresentation", 0))) for h in headers],
        "pixel format",
        where,
    )
    _check_single([_rescale(h) for h in headers], "RescaleSlope/Intercept", where)
    spacings = np.stack([_floats(h, "PixelSpacing", 2, p) for p, h in files])
    if np.abs(spacings - spacings[0]).max() > 1e-6:
        raise UnsupportedInputError(f"{where}: slices have different PixelSpacing")
    positions = np.stack([_floats(h, "ImagePositionPatient", 3, p) for p, h in files])
    nominal = first.get("SpacingBetweenSlices") or first.get("SliceThickness")
    order, step, spacing, resampling = _sort_and_check(
        positions, orientations[0], spacings[0], where, float(nominal) if nominal else None, resample
    )
    slope, intercept = _rescale(first)
    thickness = first.get("SliceThickness")
    return DicomSeries(
        paths=[files[i][0] for i in order],
        frames=[0] * len(order),
        headers=[headers[i] for i in order],
        affine=dicom_affine(orientations[0], spacings[0], positions[order[0]], step),
        shape=(resampling.count if resampling else len(order), int(first.Rows), int(first.Columns)),
        pixel_spacing=(float(spacings[0][0]), float(spacings[0][1])),
        slice_spacing=spacing,
        slice_thickness=float(thickness) if thickness else None,
        slope=slope,
        intercept=intercept,
        multiframe=False,
        lossy=any(_is_lossy(h) for h in headers),
        notes=[resampling.describe()] if resampling else [],
        resampling=resampling,
    )


def _from_multiframe(path: Path, header: Any, resample: bool) -> DicomSeries:
    """An enhanced multi-frame file: geometry from the functional groups (D11)."""
    where = str(path)
    shared = header.get("SharedFunctionalGroupsSequence")
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    count = int(header.get("NumberOfFrames", 1))
    if not shared or not per_frame or len(per_frame) != count:
        raise UnsupportedInputError(
            f"{where}: multi-frame file without per-frame plane positions (functional groups); only enhanced"
            f" multi-frame images (e.g. Enhanced CT/MR) are supported"
        )
    _check_pixel_format(header, path)
    groups = shared[0]

    def attribute(sequence: str, keyword: str, size: int, frame: int) -> np.ndarray:
        for item in (per_frame[frame], groups):
            if sequence in item and keyword in item[sequence][0]:
                return _floats(item[sequence][0], keyword, size, path)
        raise InputReadError(f"{where}: {sequence} > {keyword} missing for frame {frame + 1}")

    orientations = np.stack(
        [attribute("PlaneOrientationSequence", "ImageOrientationPatient", 6, f) for f in range(count)]
    )
    if np.abs(orientations - orientations[0]).max() > ORIENTATION_TOLERANCE:
        raise UnsupportedInputError(
            f"{where}: frames have different orientations; only single-stack files are supported"
        )
    spacing_2d = attribute("PixelMeasuresSequence", "PixelSpacing", 2, 0)
    positions = np.stack([attribute("PlanePositionSequence", "ImagePositionPatient", 3, f) for f in range(count)])
    measures = groups.get("PixelMeasuresSequence")
    nominal = None
    if measures:
        nominal = measures[0].get("SpacingBetweenSlices") or measures[0].get("SliceThickness")
    order, step, spacing, resampling = _sort_and_check(
        positions, orientations[0], spacing_2d, where, float(nominal) if nominal else None, resample
    )
    rescales = [_rescale(header, item) for item in per_frame]
    _check_single(rescales, "RescaleSlope/Intercept", where)
    slope, intercept = rescales[0]
    thickness = measures[0].get("SliceThickness") if measures else None
    return DicomSeries(
        paths=[path] * count,
        frames=[int(i) for i in order],
        headers=[header] * count,
        affine=dicom_affine(orientations[0], spacing_2d, positions[order[0]], step),
        shape=(resampling.count if resampling else count, int(header.Rows), int(header.Columns)),
        pixel_spacing=(float(spacing_2d[0]), float(spacing_2d[1])),
        slice_spacing=spacing,
        slice_thickness=float(thickness) if thickness else None,
        slope=slope,
        intercept=intercept,
        multiframe=True,
        lossy=_is_lossy(header),
        notes=[resampling.describe()] if resampling else [],
        resampling=resampling,
    )


def _pick_series(
    folder: Path, series: dict[str, list[tuple[Path, Any]]], series_uid: str | None
) -> list[tuple[Path, Any]]:
    if series_uid is not None:
        if series_uid not in series:
            raise ConfigError(f"series {series_uid!r} is not in {folder}; series there: {', '.join(sorted(series))}")
        return series[series_uid]
    if len(series) > 1:
        listing = "; ".join(
            f"{uid or '(empty UID)'} ({len(files)} files, {files[0][1].get('SeriesDescription', '')!s})"
            for uid, files in sorted(series.items())
        )
        raise UnsupportedInputError(f"{folder} holds {len(series)} series: {listing}; pass --series UID to choose one")
    return next(iter(series.values()))


def open_series(path: Path, series_uid: str | None = None, resample_irregular: bool = False) -> DicomSeries:
    """Find, sort and check the series at ``path``.

    Args:
        path: a folder of single-frame files of one series (others are
            skipped: non-DICOM files, DICOMDIR, non-image objects), a
            single-frame file (a one-slice volume) or an enhanced multi-frame file.
        series_uid: the SeriesInstanceUID to take from a folder holding several.
        resample_irregular: resample a series with gantry tilt or non-uniform
            spacing onto a regular grid (planes perpendicular to the slice
            normal, evenly spaced between the first and last slice, linear
            interpolation; recorded in ``notes`` and ``resampling``) instead of refusing it.

    Raises:
        InputReadError: missing path, unreadable or truncated file.
        UnsupportedInputError: no image, several series without ``series_uid``,
            non-image DICOM, several orientations, frames of reference or
            stacks, gantry tilt or non-uniform spacing (without ``resample_irregular``), colour images.
        ConfigError: ``series_uid`` is not in the folder.
    """
    if not path.exists():
        raise InputReadError(f"input not found: {path}")
    skipped: list[str] = []
    if path.is_dir():
        found, skipped = scan_folder(path)
        files = _pick_series(path, found, series_uid)
    else:
        header = read_header(path)
        if header is None:
            raise UnsupportedInputError(f"{path} is not a DICOM file")
        if not _is_image(header, path):
            raise UnsupportedInputError(f"{path}: a DICOM {_class_name(header)} object, not an image")
        if series_uid is not None and str(header.get("SeriesInstanceUID", "")) != series_uid:
            raise ConfigError(
                f"series {series_uid!r} does not match {path} (series {header.get('SeriesInstanceUID', '')})"
            )
        files = [(path, header)]
    multiframe = [
        (p, h) for p, h in files if "PerFrameFunctionalGroupsSequence" in h or int(h.get("NumberOfFrames", 1) or 1) > 1
    ]
    if multiframe:
        if len(files) > 1:
            raise UnsupportedInputError(
                f"{path}: series mixes {len(multiframe)} multi-frame file(s) with"
                f" {len(files) - len(multiframe)} other(s); pass one multi-frame file"
            )
        series = _from_multiframe(*multiframe[0], resample_irregular)
    else:
        series = _from_single_frames(files, str(path), resample_irregular)
    if skipped:
        series.notes.append(f"skipped non-image DICOM objects: {', '.join(skipped)}")
    return series
