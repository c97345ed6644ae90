"""`MedicalVolume`: a scan as every medical pipeline needs it, whether it came from DICOM or NIfTI.

:func:`open_volume` is the one place a scan is opened for restoring, fine-tuning,
evaluation and reports: it reads the stored values, spacings, slice axis,
rescale, modality and nodata of a DICOM series (folder or file) or a NIfTI file,
and keeps the format's own object (:class:`~.dicom_series.DicomSeries` or
:class:`~.nifti.NiftiVolume`) for writing the output in the same format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srrestore.domains.medical.dicom_series import DicomSeries, open_series, sniff_dicom
from srrestore.domains.medical.intensity import looks_like_ct, normalization_for
from srrestore.domains.medical.nifti import NiftiVolume, read_nifti, sniff_nifti
from srrestore.engine.normalize import Normalization
from srrestore.errors import InputReadError, UnsupportedInputError

__all__ = ["MedicalVolume", "open_volume"]


@dataclass(frozen=True)
class MedicalVolume:
    """A scan's stored values and what is needed to interpret them.

    Attributes:
        path: the NIfTI file or DICOM file/folder.
        format: ``"nifti"`` or ``"dicom"``.
        stored: ``(C, *spatial)`` stored values in the file's axis order: NIfTI
            ``(C, i, j, k)``; DICOM ``(1, slice, row, column)``, slices in spatial order.
        spacings: voxel size per spatial axis, mm.
        slice_axis: the acquisition slice axis (spatial index): DICOM 0; NIfTI the
            axis ``dim_info`` names, else ``k``.
        slope, intercept: ``physical = stored * slope + intercept``.
        is_ct: the physical values are Hounsfield units (DICOM Modality CT; for
            NIfTI, guessed from the values, see :func:`~.intensity.looks_like_ct`).
        nodata: stored value of invalid voxels (DICOM PixelPaddingValue), or None.
        thickness: slice thickness in mm (DICOM SliceThickness), or None.
        source: the format's own object, for writing a derived output.
    """

    path: Path
    format: str
    stored: np.ndarray
    spacings: tuple[float, float, float]
    slice_axis: int
    slope: float
    intercept: float
    is_ct: bool
    nodata: float | None
    thickness: float | None
    source: DicomSeries | NiftiVolume

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape."""
        return tuple(int(n) for n in self.stored.shape[1:])  # type: ignore[return-value]

    def normalization(self) -> Normalization:
        """The intensity map restore and fine-tuning use: the CT window for CT, foreground percentiles otherwise."""
        return normalization_for(self.stored, self.is_ct, self.slope, self.intercept)


def open_volume(path: Path, series_uid: str | None = None, resample_irregular: bool = False) -> MedicalVolume:
    """Open a NIfTI file or a DICOM series (folder or file) and read its stored values.

    Args:
        path: the scan.
        series_uid, resample_irregular: DICOM only, see
            :func:`~srrestore.domains.medical.dicom_series.open_series`.

    Raises:
        InputReadError: missing, unreadable or truncated input.
        UnsupportedInputError: neither NIfTI nor DICOM, or a scan the readers refuse
            (several series, gantry tilt, uneven spacing, 5-D NIfTI...).
    """
    path = Path(path)
    if not path.exists():
        raise InputReadError(f"input not found: {path}")
    if sniff_nifti(path):
        volume = read_nifti(path)
        is_ct = looks_like_ct(volume.stored, volume.slope, volume.intercept)
        slice_axis = volume.slice_dim if volume.slice_dim is not None else 2
        return MedicalVolume(path, "nifti", volume.stored, volume.zooms, slice_axis, volume.slope, volume.intercept,
                             is_ct, None, None, volume)
    if sniff_dicom(path):
        series = open_series(path, series_uid, resample_irregular)
        spacings = (series.slice_spacing, *series.pixel_spacing)
        return MedicalVolume(path, "dicom", series.read_volume()[None], spacings, 0, series.slope, series.intercept,
                             series.modality.upper() == "CT", series.padding_value, series.slice_thickness, series)
    raise UnsupportedInputError(f"{path}: not a NIfTI file (.nii, .nii.gz) nor a DICOM file or series folder")
