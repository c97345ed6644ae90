"""`MedicalVolume`: a scan as every medical pipeline needs it, whether it came from DICOM or NIfTI.

:func:`open_volume` is the one place a scan is opened for restoring, fine-tuning,
evaluation and reports: it reads the spacings, slice axis, rescale, modality and
nodata of a DICOM series (folder or file) or a NIfTI file, and reads the stored
values when they are needed (into memory, or slab by slab into a disk-backed array),
and keeps the format's own object (:class:`~.dicom_series.DicomSeries` or
:class:`~.nifti.NiftiVolume`) for writing the output in the same format.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from srrestore.domains.medical.dicom_series import DicomSeries, open_series, sniff_dicom
from srrestore.domains.medical.intensity import looks_like_ct, normalization_for
from srrestore.domains.medical.nifti import NiftiVolume, read_nifti, sniff_nifti
from srrestore.engine.normalize import Normalization
from srrestore.errors import InputReadError, UnsupportedInputError
from srrestore.storage.scratch import allocate_array

__all__ = ["MedicalVolume", "open_volume"]


@dataclass(frozen=True)
class MedicalVolume:
    """A scan: how to read its stored values, and what is needed to interpret them.

    Opening reads the headers only; the voxels are read when :attr:`stored` is
    first used, into memory, or by :meth:`staged`, slab by slab into a
    disk-backed array (restore: memory stays bounded whatever the scan's size).

    Attributes:
        path: the NIfTI file or DICOM file/folder.
        format: ``"nifti"`` or ``"dicom"``.
        channels, shape: ``C`` and the spatial shape of :attr:`stored`.
        dtype: the stored dtype.
        spacings: voxel size per spatial axis, mm.
        slice_axis: the acquisition slice axis (spatial index): DICOM 0; NIfTI the
            axis ``dim_info`` names, else ``k``.
        slope, intercept: ``physical = stored * slope + intercept``.
        modality_ct: DICOM: Modality is CT; NIfTI: None (guessed from the values, see :attr:`is_ct`).
        nodata: stored value of invalid voxels (DICOM PixelPaddingValue), or None.
        thickness: slice thickness in mm (DICOM SliceThickness), or None.
        source: the format's own object, for reading the voxels and writing a derived output.
        array: the stored values once read (see :meth:`staged`), else None.
    """

    path: Path
    format: str
    channels: int
    shape: tuple[int, int, int]
    dtype: np.dtype
    spacings: tuple[float, float, float]
    slice_axis: int
    slope: float
    intercept: float
    modality_ct: bool | None
    nodata: float | None
    thickness: float | None
    source: DicomSeries | NiftiVolume
    array: np.ndarray | None = field(default=None, repr=False)

    @property
    def nbytes(self) -> int:
        """Size of the stored values in bytes."""
        return self.channels * int(np.prod(self.shape)) * self.dtype.itemsize

    @cached_property
    def stored(self) -> np.ndarray:
        """``(C, *spatial)`` stored values in the file's axis order: NIfTI ``(C, i, j, k)``;
        DICOM ``(1, slice, row, column)``, slices in spatial order. Read into memory on first use
        unless the volume was :meth:`staged`."""
        return self.array if self.array is not None else self._read_into(
            np.empty((self.channels, *self.shape), dtype=self.dtype))

    def staged(self, folder: Path) -> MedicalVolume:
        """This volume with its stored values read, slab by slab, into a disk-backed array in ``folder``.

        Raises:
            OutputWriteError: no room for the array in ``folder``.
            InputReadError: truncated or corrupt voxel data.
        """
        array = allocate_array(Path(folder) / "stored.dat", self.dtype, (self.channels, *self.shape))
        return replace(self, array=self._read_into(array))

    def _read_into(self, out: np.ndarray) -> np.ndarray:
        if isinstance(self.source, NiftiVolume):
            return self.source.read_into(out)
        self.source.read_volume(out[0])
        return out

    @cached_property
    def is_ct(self) -> bool:
        """The physical values are Hounsfield units (DICOM Modality CT; for NIfTI,
        guessed from the values, see :func:`~.intensity.looks_like_ct`)."""
        if self.modality_ct is not None:
            return self.modality_ct
        return looks_like_ct(self.stored, self.slope, self.intercept)

    def normalization(self) -> Normalization:
        """The intensity map restore and fine-tuning use: the CT window for CT, foreground percentiles otherwise."""
        return normalization_for(self.stored, self.is_ct, self.slope, self.intercept)


def open_volume(path: Path, series_uid: str | None = None, resample_irregular: bool = False) -> MedicalVolume:
    """Open a NIfTI file or a DICOM series (folder or file): headers now, voxels when read.

    Args:
        path: the scan.
        series_uid, resample_irregular: DICOM only, see
            :func:`~srrestore.domains.medical.dicom_series.open_series`.

    Raises:
        InputReadError: missing, unreadable or truncated input (truncated
            compressed voxels are found when they are read).
        UnsupportedInputError: neither NIfTI nor DICOM, or a scan the readers refuse
            (several series, gantry tilt, uneven spacing, 5-D NIfTI...).
    """
    path = Path(path)
    if not path.exists():
        raise InputReadError(f"input not found: {path}")
    if sniff_nifti(path):
        volume = read_nifti(path)
        slice_axis = volume.slice_dim if volume.slice_dim is not None else 2
        return MedicalVolume(path, "nifti", volume.shape[0], volume.spatial_shape, volume.dtype, volume.zooms,
                             slice_axis, volume.slope, volume.intercept, None, None, None, volume)
    if sniff_dicom(path):
        series = open_series(path, series_uid, resample_irregular)
        spacings = (series.slice_spacing, *series.pixel_spacing)
        return MedicalVolume(path, "dicom", 1, series.shape, series.dtype, spacings, 0, series.slope,
                             series.intercept, series.modality.upper() == "CT", series.padding_value,
                             series.slice_thickness, series)
    raise UnsupportedInputError(f"{path}: not a NIfTI file (.nii, .nii.gz) nor a DICOM file or series folder")
