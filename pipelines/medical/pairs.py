"""Training data of through-plane fine-tuning: a scan's in-plane slices are the high-resolution truth.

A thick-slice scan is fine along its two in-plane axes and coarse along the
slice axis. As in SMORE (Zhao et al. 2021), each in-plane slice, at the
in-plane resolution, is a high-resolution image; degrading one of its axes with
the header's slice profile (:mod:`srrestore.training.slice_profile`)
gives the thick-slice view of it, the input of an ``(s, 1)`` model. Each slice
is used in both orientations (its rows degraded, then its columns), the way
the restore runs the model on both planes holding the slice axis.

The model restores slices ``t = slice spacing / s`` apart. When ``t`` differs
from the in-plane spacing ``p`` by more than 2 % (a factor below the spacing
ratio, e.g. x4 on 8 mm slices over 1 mm pixels), the degraded axis of each
in-plane image is first resampled from ``p`` to ``t`` (antialiased cubic,
``resize-right``), and the profile's width is measured in pixels of ``t``;
the other axis keeps its spacing, as the model sees it at restore.

The through-plane axis is chosen as restore chooses it
(:func:`srrestore.pipelines.medical.plan.plan_volume`): the coarse axis (spacing at
least 1.5 times the others), else the acquisition slice axis (NIfTI ``dim_info``,
else ``k``; DICOM: the slice axis). Intensities are normalised exactly as
restore normalises the scan (CT Hounsfield window, else foreground percentiles).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from srrestore.domains.medical.geometry import coarse_axis, in_plane_spacing
from srrestore.training.slice_profile import SliceProfile, slice_factor
from srrestore.domains.medical.volume import open_volume
from srrestore.engine.io import valid_mask
from srrestore.engine.nodata import fill_nodata, nearest_valid
from srrestore.engine.normalize import Normalization
from srrestore.engine.region import Region
from srrestore.training.patches import FinetuneImage

__all__ = ["RESAMPLE_TOLERANCE", "TrainingScan", "in_plane_images", "read_scan"]

RESAMPLE_TOLERANCE = 0.02  # relative spacing difference below which in-plane images are not resampled


@dataclass
class TrainingScan:
    """A scan read for fine-tuning.

    Attributes:
        path: the NIfTI file or DICOM file/folder.
        format: ``"nifti"`` or ``"dicom"``.
        stored: ``(C, *spatial)`` stored values (NIfTI ``(C, i, j, k)``, DICOM ``(1, D, H, W)``).
        spacings: voxel size per spatial axis, mm.
        thickness: slice thickness in mm (DICOM SliceThickness), or None.
        axis: the through-plane axis (spatial index).
        normalization: stored -> normalised map, as restore uses it.
        nodata: stored value of invalid voxels (DICOM PixelPaddingValue), or None.
    """

    path: Path
    format: str
    stored: np.ndarray
    spacings: tuple[float, float, float]
    thickness: float | None
    axis: int
    normalization: Normalization
    nodata: float | None = None

    @property
    def in_plane_spacing(self) -> float:
        """The coarser in-plane voxel size, mm (the fine grid the slices are compared with)."""
        return in_plane_spacing(self.spacings, self.axis)

    @cached_property
    def normalised(self) -> np.ndarray:
        """``(C, *spatial)`` float32 values normalised as restore normalises them (computed once)."""
        return self.normalization.forward(self.stored)

    @cached_property
    def valid(self) -> np.ndarray:
        """``(*spatial)`` bool: False on nodata and non-finite voxels (computed once)."""
        return valid_mask(self.stored, self.nodata)

    @property
    def factor(self) -> int:
        """``round(slice spacing / in-plane spacing)``; see :func:`slice_factor`."""
        return slice_factor(self.spacings[self.axis], self.in_plane_spacing)

    def target_spacing(self, factor: int | None = None) -> float:
        """Slice spacing after restoring by ``factor`` (None: :attr:`factor`), mm."""
        return self.spacings[self.axis] / (factor or self.factor)

    def resampled_spacing(self, spacing: float, factor: int | None = None) -> float:
        """What an in-plane axis of ``spacing`` mm is resampled to for training: the target spacing,
        unless it is within 2 % of ``spacing``."""
        target = self.target_spacing(factor)
        return spacing if abs(target / spacing - 1) <= RESAMPLE_TOLERANCE else target

    def profile(self, kind: str, factor: int | None = None) -> SliceProfile:
        """The slice profile of the header: width ``thickness / pixel``, subsampling ``factor``.

        The pixel is the (coarser) in-plane spacing, or the target spacing when
        the training images are resampled to it.

        Args:
            kind: ``"box"`` or ``"gaussian"``.
            factor: the through-plane factor; None: :attr:`factor`.
        """
        thickness = self.spacings[self.axis] if self.thickness is None else self.thickness
        pixel = self.resampled_spacing(self.in_plane_spacing, factor)
        return SliceProfile(factor or self.factor, thickness / pixel, kind)


def _through_axis(spacings: tuple[float, float, float], slice_axis: int) -> int:
    coarse = coarse_axis(spacings)
    return slice_axis if coarse is None else coarse


def read_scan(path: Path) -> TrainingScan:
    """Read a NIfTI file or a DICOM series (folder or file) for fine-tuning.

    Raises:
        InputReadError, UnsupportedInputError: see :func:`~srrestore.domains.medical.volume.open_volume`.
    """
    volume = open_volume(Path(path))
    return TrainingScan(volume.path, volume.format, volume.stored, volume.spacings, volume.thickness,
                        _through_axis(volume.spacings, volume.slice_axis), volume.normalization(), volume.nodata)


def _resample_rows(plane: np.ndarray, valid: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Resample the rows of an ``(A, B)`` plane by ``ratio`` (new pixels per old pixel), cell-centred.

    Invalid pixels are filled from their nearest valid pixel first; a new pixel
    is valid when every old pixel it is made from is.
    """
    from resize_right import interp_methods, resize

    if not valid.all():
        indices, _, _ = nearest_valid(valid, Region.from_shape(valid.shape), (True, True), (True, True))
        plane = fill_nodata(plane[None], indices)[0]
    rows = max(1, round(plane.shape[0] * ratio))

    def resampled(values: np.ndarray) -> np.ndarray:
        return resize(values.astype(np.float64), scale_factors=[ratio, 1.0], out_shape=(rows, values.shape[1]),
                      interp_method=interp_methods.cubic, antialiasing=True, pad_mode="symmetric")

    if valid.all():
        return resampled(plane).astype(np.float32), np.ones((rows, plane.shape[1]), dtype=bool)
    return resampled(plane).astype(np.float32), resampled(valid.astype(np.float64)) > 1 - 1e-6


def in_plane_images(scan: TrainingScan, factor: int | None = None) -> list[FinetuneImage]:
    """Every in-plane slice of every channel, in both orientations, as 1-channel training images.

    Args:
        scan: the scan.
        factor: the through-plane factor (None: :attr:`TrainingScan.factor`): the
            rows of each image are resampled to the target spacing when it differs
            from theirs (see the module docstring).

    Returns:
        For each channel ``c`` and slice ``k`` along ``scan.axis``: the slice
        ``(1, A, B)`` (normalised float32, the remaining spatial axes in order;
        rows resampled if needed) and its transpose ``(1, B, A)`` (likewise),
        each with its validity mask (False on nodata and non-finite voxels).
    """
    normalised, valid = scan.normalised, scan.valid
    first, second = (scan.spacings[a] for a in range(3) if a != scan.axis)
    ratios = [spacing / scan.resampled_spacing(spacing, factor) for spacing in (first, second)]
    images = []
    for channel in normalised:
        for index in range(channel.shape[scan.axis]):
            plane = np.take(channel, index, axis=scan.axis)
            mask = np.take(valid, index, axis=scan.axis)
            for oriented, oriented_mask, ratio in ((plane, mask, ratios[0]), (plane.T, mask.T, ratios[1])):
                if ratio != 1.0:
                    oriented, oriented_mask = _resample_rows(oriented, oriented_mask, ratio)
                images.append(FinetuneImage(
                    str(scan.path), np.ascontiguousarray(oriented[None]), np.ascontiguousarray(oriented_mask)
                ))
    return images
