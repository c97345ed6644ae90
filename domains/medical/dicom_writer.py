"""Write a super-resolved volume as a derived DICOM series (invariants D4-D11).

:func:`derive_series` computes every series-level output attribute from the
source series and the factors (a pure function); :func:`derive_slice_header`
and :func:`derive_multiframe_header` build the datasets; :class:`DicomSeriesWriter`
receives ``(C, d, h, w)`` regions of the output volume ``(D', H', W')`` from
the engine and writes each slice file as soon as all its pixels have arrived
(single-frame series), or one enhanced multi-frame file on close.

Output datasets keep the source SOP class, the patient, study and frame of
reference, rescale and window; they get a new SeriesInstanceUID, new
SOPInstanceUIDs, the scaled geometry of :mod:`geometry`, ImageType
``DERIVED\\SECONDARY``, a derivation description and code, source image
references, stored values clipped into BitsStored, and Explicit VR Little
Endian encoding. Private attributes are dropped: vendor headers (e.g. Siemens
CSA) describe the source geometry and would be stale.

Each output slice takes its header template and source reference from the
source slice nearest to it along the slice normal. A source resampled onto a
regular grid (:mod:`~srrestore.domains.medical.resample`) says so in
DerivationDescription, and after a gantry tilt correction GantryDetectorTilt
is set to 0 (the output slices are stacked along their normal).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from srrestore.domains.medical.dicom_series import DicomSeries
from srrestore.domains.medical.geometry import slice_normal, slice_positions, upscale_affine

from srrestore.engine.region import Region
from srrestore.errors import OutputWriteError, error_reason

__all__ = [
    "DerivedSeries",
    "derive_series",
    "derive_slice_header",
    "derive_multiframe_header",
    "DicomSeriesWriter",
    "factor_label",
    "is_srrestore_series",
    "SERIES_NUMBER_OFFSET",
]

SERIES_NUMBER_OFFSET = 1000
_RESAMPLING = ("113085", "DCM", "Spatial resampling")  # CID 7203
_SOURCE_PURPOSE = ("121322", "DCM", "Source image for image processing operation")  # CID 7202
_STALE = (
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
    "IconImageSequence",
    "PixelData",
)


@dataclass(frozen=True)
class DerivedSeries:
    """Series-level attributes of the output (what :func:`derive_series` computes).

    Attributes:
        source: the source series.
        factors: ``(slice, row, column)`` upscale factors (output over input
            samples; the slice factor is a ratio ``m / n`` where the slices were resampled).
        affine: ``(4, 4)`` output D3 affine, index order ``(column, row, slice)``.
        shape: output ``(D', H', W')``.
        series_uid: new SeriesInstanceUID.
        series_number: new SeriesNumber.
        series_description: new SeriesDescription (<= 64 characters).
        derivation_description: DerivationDescription (<= 1024 characters).
        pixel_spacing: ``(row, column)`` spacing in mm.
        slice_spacing: distance between output slices along the normal, mm.
        slice_thickness: output SliceThickness in mm, or None when the source has none.
    """

    source: DicomSeries
    factors: tuple[float, float, float]
    affine: np.ndarray
    shape: tuple[int, int, int]
    series_uid: str
    series_number: int
    series_description: str
    derivation_description: str
    pixel_spacing: tuple[float, float]
    slice_spacing: float
    slice_thickness: float | None

    @property
    def positions(self) -> np.ndarray:
        """``(D', 3)`` ImagePositionPatient of every output slice."""
        return slice_positions(self.affine, self.shape[0])

    def source_index(self, index: int) -> int:
        """The source slice nearest output slice ``index`` along the slice normal (its header template and reference).

        For a regular source this is the slice the output slice lies in
        (``index // factors[0]``); for a resampled one (another slice count)
        the nearest of the acquired slices.
        """
        columns, rows = self.affine[:3, 0], self.affine[:3, 1]
        normal = np.cross(columns, rows) / np.linalg.norm(np.cross(columns, rows))
        sources = self.source.source_positions @ normal
        return int(np.argmin(np.abs(sources - self.positions[index] @ normal)))


def factor_label(factors: tuple[float, float, float]) -> str:
    """``"x2"`` (in-plane), ``"x4 through-plane"``, ``"x3.3 through-plane"`` or ``"x2 in-plane, x4 through-plane"``."""
    through, row, column = (f"{value:.4g}" for value in factors)
    in_plane = f"x{row}" if row == column else f"x{row}(rows) x{column}(columns)"
    if through == "1":
        return in_plane
    if row == column == "1":
        return f"x{through} through-plane"
    return f"{in_plane} in-plane, x{through} through-plane"


def derive_series(source: DicomSeries, factors: tuple[float, float, float], description: str) -> DerivedSeries:
    """Output series attributes for ``source`` upscaled by ``factors`` (D3-D7).

    Args:
        source: the source series.
        factors: ``(slice, row, column)`` factors: integers, or for the
            slices a ratio ``m / n`` when they were resampled onto ``m`` slices.
        description: what was done (model, phase, normalisation), put at the
            start of DerivationDescription; the input resampling (if any), the
            source thickness and spacing are appended.

    Returns:
        The :class:`DerivedSeries` (new UIDs drawn here).
    """
    from pydicom.uid import generate_uid

    shape = tuple(round(n * f) for n, f in zip(source.shape, factors))
    through, row, column = factors = tuple(m / n for m, n in zip(shape, source.shape))  # exact count ratios
    affine = upscale_affine(source.affine, (column, row, through))
    header = source.header
    number = header.get("SeriesNumber")
    suffix = f" SR {factor_label(factors)}"
    old = str(header.get("SeriesDescription", "") or "")
    thickness = source.slice_thickness
    if thickness is not None and through > 1:
        thickness = source.slice_spacing / through
    source_thickness = "absent" if source.slice_thickness is None else f"{source.slice_thickness:g} mm"
    resampled = f"; input {source.resampling.describe()}" if source.resampling is not None else ""
    recorded = (
        f"{description}{resampled}; source SliceThickness {source_thickness},"
        f" slice spacing {source.slice_spacing:.6g} mm"
    )
    return DerivedSeries(
        source=source,
        factors=factors,
        affine=affine,
        shape=shape,  # type: ignore[arg-type]
        series_uid=generate_uid(),
        series_number=(int(number) if number not in (None, "") else 0) + SERIES_NUMBER_OFFSET,
        series_description=old[: 64 - len(suffix)] + suffix,
        derivation_description=recorded[:1024],
        pixel_spacing=(source.pixel_spacing[0] / row, source.pixel_spacing[1] / column),
        slice_spacing=source.slice_spacing / through,
        slice_thickness=thickness,
    )


def _code(value: tuple[str, str, str]) -> Any:
    from pydicom import Dataset

    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value
    return item


def _ds(value: float) -> Any:
    from pydicom.valuerep import DSfloat

    return DSfloat(float(value), auto_format=True)


def _source_reference(sop_class: str, sop_instance: str, frame: int | None) -> Any:
    from pydicom import Dataset
    from pydicom.sequence import Sequence

    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    if frame is not None:
        item.ReferencedFrameNumber = frame + 1
    item.PurposeOfReferenceCodeSequence = Sequence([_code(_SOURCE_PURPOSE)])
    return item


def _common(dataset: Any, derived: DerivedSeries, sop_instance_uid: str) -> None:
    """Attributes every output dataset gets (D5-D7, D9)."""
    from pydicom.sequence import Sequence

    source = derived.source
    for keyword in _STALE:
        if keyword in dataset:
            delattr(dataset, keyword)
    dataset.remove_private_tags()
    dataset.SOPClassUID = source.sop_class_uid
    dataset.SOPInstanceUID = sop_instance_uid
    dataset.SeriesInstanceUID = derived.series_uid
    dataset.SeriesNumber = derived.series_number
    dataset.SeriesDescription = derived.series_description
    image_type = list(source.header.get("ImageType", []) or [])
    dataset.ImageType = ["DERIVED", "SECONDARY", *image_type[2:]]
    dataset.DerivationDescription = derived.derivation_description
    dataset.DerivationCodeSequence = Sequence([_code(_RESAMPLING)])
    if source.lossy:
        dataset.LossyImageCompression = "01"
    if source.resampling is not None and source.resampling.corrects_tilt and "GantryDetectorTilt" in dataset:
        dataset.GantryDetectorTilt = 0  # the output planes are stacked along their normal


def _file_meta(sop_class: str, sop_instance: str) -> Any:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def derive_slice_header(derived: DerivedSeries, index: int, sop_instance_uid: str) -> Any:
    """The dataset (without pixels) of output slice ``index`` of a single-frame series (D4-D10).

    Args:
        derived: the output series.
        index: 0-based output slice, in spatial order.
        sop_instance_uid: the new SOPInstanceUID.
    """
    from pydicom.sequence import Sequence

    source = derived.source
    template = source.headers[derived.source_index(index)]
    dataset = copy.deepcopy(template)
    _common(dataset, derived, sop_instance_uid)
    dataset.file_meta = _file_meta(source.sop_class_uid, sop_instance_uid)
    position = derived.positions[index]
    dataset.ImagePositionPatient = [_ds(v) for v in position]
    dataset.PixelSpacing = [_ds(v) for v in derived.pixel_spacing]
    dataset.Rows, dataset.Columns = derived.shape[1], derived.shape[2]
    dataset.InstanceNumber = index + 1
    if derived.slice_thickness is not None:
        dataset.SliceThickness = _ds(derived.slice_thickness)
    if "SpacingBetweenSlices" in template:
        dataset.SpacingBetweenSlices = _ds(derived.slice_spacing)
    if "SliceLocation" in template:
        normal = slice_normal(template.ImageOrientationPatient)
        dataset.SliceLocation = _ds(float(normal @ position))
    if "ImagesInAcquisition" in template:
        dataset.ImagesInAcquisition = derived.shape[0]
    reference = _source_reference(source.sop_class_uid, source.sop_instance_uids[derived.source_index(index)], None)
    dataset.SourceImageSequence = Sequence([reference])
    return dataset


def _dimension_values(item: Any, pointers: list[int], index: int) -> None:
    """Renumber the stack-position dimensions of a FrameContentSequence item (1-based ``index + 1``)."""
    from pydicom.multival import MultiValue

    content = item.FrameContentSequence[0]
    content.InStackPositionNumber = index + 1
    values = content.get("DimensionIndexValues")
    if values is None or not pointers:
        return
    values = list(values) if isinstance(values, MultiValue) else [values]
    position_tags = {0x00209057, 0x00200032}  # InStackPositionNumber, ImagePositionPatient
    content.DimensionIndexValues = [
        index + 1 if pointer in position_tags else value for pointer, value in zip(pointers, values)
    ]


def _derived_frame_type(item: Any) -> None:
    """``FrameType`` of the modality's frame type sequence (e.g. CTImageFrameTypeSequence) to DERIVED\\SECONDARY."""
    for element in item:
        if element.VR == "SQ" and element.keyword.endswith("FrameTypeSequence") and len(element.value):
            frame_type = list(element.value[0].get("FrameType", []) or [])
            element.value[0].FrameType = ["DERIVED", "SECONDARY", *frame_type[2:]]


def _pixel_measures(groups: Any, derived: DerivedSeries) -> None:
    """New spacing and thickness in a functional group's PixelMeasuresSequence, if it has one."""
    if "PixelMeasuresSequence" not in groups:
        return
    measures = groups.PixelMeasuresSequence[0]
    measures.PixelSpacing = [_ds(v) for v in derived.pixel_spacing]
    if derived.slice_thickness is not None and "SliceThickness" in measures:
        measures.SliceThickness = _ds(derived.slice_thickness)
    if "SpacingBetweenSlices" in measures:
        measures.SpacingBetweenSlices = _ds(derived.slice_spacing)


def derive_multiframe_header(derived: DerivedSeries, sop_instance_uid: str) -> Any:
    """The dataset (without pixels) of an enhanced multi-frame output (D11).

    The Shared PixelMeasuresSequence gets the new spacing and thickness; one
    Per-Frame item per new frame is copied from the source frame it lies in,
    with its PlanePositionSequence, FrameContentSequence (InStackPositionNumber,
    stack-position DimensionIndexValues) and DerivationImageSequence rebuilt.
    PixelValueTransformation and FrameVOILUT items are carried over unchanged.
    """
    from pydicom import Dataset
    from pydicom.sequence import Sequence

    source = derived.source
    template = source.header
    dataset = copy.deepcopy(template)
    _common(dataset, derived, sop_instance_uid)
    dataset.file_meta = _file_meta(source.sop_class_uid, sop_instance_uid)
    dataset.Rows, dataset.Columns = derived.shape[1], derived.shape[2]
    dataset.NumberOfFrames = derived.shape[0]
    _derived_frame_type(dataset.SharedFunctionalGroupsSequence[0])
    _pixel_measures(dataset.SharedFunctionalGroupsSequence[0], derived)
    pointers = [int(item.DimensionIndexPointer) for item in template.get("DimensionIndexSequence", [])]
    frames = []
    for index, position in enumerate(derived.positions):
        source_slice = derived.source_index(index)
        item = copy.deepcopy(template.PerFrameFunctionalGroupsSequence[source.frames[source_slice]])
        plane = Dataset()
        plane.ImagePositionPatient = [_ds(v) for v in position]
        item.PlanePositionSequence = Sequence([plane])
        if "FrameContentSequence" not in item:
            item.FrameContentSequence = Sequence([Dataset()])
        _dimension_values(item, pointers, index)
        _derived_frame_type(item)
        _pixel_measures(item, derived)
        derivation = Dataset()
        derivation.DerivationCodeSequence = Sequence([_code(_RESAMPLING)])
        derivation.SourceImageSequence = Sequence(
            [_source_reference(source.sop_class_uid, source.sop_instance_uids[0], source.frames[source_slice])]
        )
        item.DerivationImageSequence = Sequence([derivation])
        frames.append(item)
    dataset.PerFrameFunctionalGroupsSequence = Sequence(frames)
    return dataset


def is_srrestore_series(folder: Path) -> bool:
    """Whether ``folder`` is a derived series srrestore wrote: every visible file is DICOM whose
    DerivationDescription starts with ``"srrestore "`` (what :func:`derive_series` records)."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    files = [path for path in folder.iterdir() if not path.name.startswith(".")]
    if not files or not all(path.is_file() for path in files):
        return False
    for path in files:
        try:
            dataset = dcmread(path, stop_before_pixels=True, specific_tags=["DerivationDescription"])
        except (InvalidDicomError, OSError, ValueError, EOFError):
            return False
        if not str(dataset.get("DerivationDescription", "")).startswith("srrestore "):
            return False
    return True


class DicomSeriesWriter:
    """Writer (engine protocol) of a derived series into a folder.

    Regions arrive in output pixel space ``(C=1, d, h, w)``. A single-frame
    series is written file by file as slices complete (only incomplete slices
    are buffered; for through-plane SR the engine completes slices at the
    end, so the whole output may be buffered). A multi-frame series is written
    as one file on :meth:`close`.

    Args:
        folder: existing empty output folder (the temporary one of ``atomic_output``).
        derived: output series attributes.
    """

    def __init__(self, folder: Path, derived: DerivedSeries) -> None:
        self.folder = folder
        self.derived = derived
        self.dtype = derived.source.dtype
        self.low, self.high = derived.source.stored_range
        self.pending: dict[int, tuple[np.ndarray, int]] = {}
        self.done: set[int] = set()
        self.files: list[Path] = []

    @property
    def plane_pixels(self) -> int:
        return self.derived.shape[1] * self.derived.shape[2]

    def write(self, region: Region, array: np.ndarray) -> None:
        """Store ``(1, d, h, w)`` output values (already in the stored dtype)."""
        values = np.clip(array[0], self.low, self.high).astype(self.dtype)  # D8: within BitsStored
        rows, columns = region.slices()[1:]
        per_slice = region.size[1] * region.size[2]
        for offset, index in enumerate(range(region.start[0], region.stop[0])):
            plane, count = self.pending.get(index, (None, 0))
            if plane is None:
                plane = np.zeros(self.derived.shape[1:], dtype=self.dtype)
            plane[rows, columns] = values[offset]
            count += per_slice
            if count == self.plane_pixels and not self.derived.source.multiframe:
                self.pending.pop(index, None)
                self._write_slice(index, plane)
            else:
                self.pending[index] = (plane, count)

    def _save(self, dataset: Any, path: Path) -> None:
        try:
            dataset.save_as(path, enforce_file_format=True)
        except OSError as error:
            raise OutputWriteError(f"cannot write {path}: {error_reason(error)}") from error
        self.files.append(path)

    def _write_slice(self, index: int, plane: np.ndarray) -> None:
        from pydicom.uid import generate_uid

        dataset = derive_slice_header(self.derived, index, generate_uid())
        dataset.set_pixel_data(
            plane, str(dataset.PhotometricInterpretation), int(dataset.BitsStored), generate_instance_uid=False
        )
        self._save(dataset, self.folder / f"slice_{index + 1:05d}.dcm")
        self.done.add(index)

    def close(self) -> None:
        """Write the multi-frame file, or check every slice was written.

        Raises:
            OutputWriteError: slices are missing (the engine did not cover the volume).
        """
        from pydicom.uid import generate_uid

        if self.derived.source.multiframe:
            missing = [
                i for i in range(self.derived.shape[0]) if self.pending.get(i, (None, 0))[1] != self.plane_pixels
            ]
            if not missing:
                frames = np.stack([self.pending[i][0] for i in range(self.derived.shape[0])])
                dataset = derive_multiframe_header(self.derived, generate_uid())
                dataset.set_pixel_data(
                    frames, str(dataset.PhotometricInterpretation), int(dataset.BitsStored), generate_instance_uid=False
                )
                dataset.NumberOfFrames = frames.shape[0]
                self._save(dataset, self.folder / self.derived.source.paths[0].name)
                self.pending.clear()
        else:
            missing = sorted(set(range(self.derived.shape[0])) - self.done)
        if missing:
            raise OutputWriteError(
                f"output slices {missing[:5]} were never completely written ({len(missing)} missing)"
            )
