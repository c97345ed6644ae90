"""Resampling along the slice normal: irregular stacks onto a regular grid, and regular grids onto another spacing.

:func:`axis_weights` resamples a regular grid of ``n`` samples along one axis
onto ``m`` samples covering the same box (cell-centred: output sample ``j``
lies at input index ``(j + 1/2) * n / m - 1/2``), with the antialiased cubic
kernel of MATLAB's ``imresize`` (the maintained ``resize-right`` package,
symmetric borders), as a sparse ``(m, n)`` matrix whose rows sum to 1. Through-plane
SR uses it when the wanted slice spacing is not the input's divided by an
integer.

Irregular stacks (invariant D2, "or resample"):

A stack is irregular when its slices are parallel (one orientation) but not
evenly spaced along their normal ``n = row_cos x col_cos``, or sheared by a
gantry tilt (each slice's ImagePositionPatient moves in-plane as well as
along ``n``). The regular grid keeps the source orientation and pixel
spacing; its planes are perpendicular to ``n``, evenly spaced from the first
source slice's projection on ``n`` to the last one's, with
``count = round(extent / median step) + 1`` planes (so the first and last
planes coincide with the source's), and its origin is the first sorted
slice's ImagePositionPatient. Its D3 affine has the step ``n * spacing``: no shear.

Interpolation is linear along ``n`` between the two source slices bracketing
a plane, and bilinear in-plane: source slice ``k`` is displaced in-plane by
its shear ``s_k = (P_k - P_0) - ((P_k - P_0) . n) n`` (mm, converted to
rows and columns), i.e. ``scipy.ndimage`` linear interpolation (``order=1``,
the ``map_coordinates`` kernel; the displacement is constant per slice, so
``ndimage.shift`` applies it without coordinate arrays). Pixels marked
invalid (DICOM PixelPaddingValue) do not bleed into valid ones: values and
validity are interpolated with the same weights and divided (normalised
interpolation); a target pixel is valid when at least half its weight falls
on valid source pixels, else, like positions outside the acquired field, it
gets the fill value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from srrestore.domains.medical.geometry import dicom_affine, slice_normal

__all__ = ["AXIS_WEIGHT_BLOCK", "StackResampling", "axis_weights"]

_COINCIDE_MM = 1e-6  # a plane this close to a source slice along n takes that slice alone
_VALID_WEIGHT = 0.5  # share of a target pixel's weight that must fall on valid source pixels


AXIS_WEIGHT_BLOCK = 256  # input samples resampled at once while the weights are built (bounds the transient memory)


def axis_weights(length: int, count: int) -> Any:
    """The sparse ``(count, length)`` matrix resampling ``length`` cell-centred samples onto ``count`` (same box).

    Each row holds the antialiased cubic weights of one output sample (rows sum
    to 1, a few taps are negative, as cubic interpolation's are); ``count ==
    length`` gives the identity. Built from the resampling of the identity,
    :data:`AXIS_WEIGHT_BLOCK` columns at a time, and kept sparse (CSR, a few
    taps per row), so that memory grows with the sample counts, not their product.
    """
    from resize_right import interp_methods, resize
    from scipy import sparse

    if length < 1 or count < 1:
        raise ValueError(f"need positive sample counts, got {length} -> {count}")
    blocks = []
    for start in range(0, length, AXIS_WEIGHT_BLOCK):
        width = min(AXIS_WEIGHT_BLOCK, length - start)
        identity = np.zeros((length, width))
        identity[start + np.arange(width), np.arange(width)] = 1.0
        columns = resize(identity, scale_factors=[count / length, 1.0], out_shape=(count, width),
                         interp_method=interp_methods.cubic, antialiasing=True, pad_mode="symmetric")
        blocks.append(sparse.csc_matrix(np.where(np.abs(columns) > 1e-15, columns, 0.0)))
    return sparse.hstack(blocks).tocsr()


@dataclass(frozen=True)
class StackResampling:
    """How an irregular stack of ``N`` parallel slices maps onto a regular grid.

    Attributes:
        positions: ``(N, 3)`` ImagePositionPatient of the source slices, sorted
            along the normal (strictly increasing projections), LPS mm.
        orientation: ``(6,)`` ImageOrientationPatient shared by the slices.
        pixel_spacing: ``(row spacing, column spacing)`` in mm.
        corrections: what the resampling corrects, e.g.
            ``("gantry tilt of 18.50 degrees corrected",)``, for notes and provenance.
        corrects_tilt: the source slices are sheared (gantry tilt) and the grid removes the shear.
    """

    positions: np.ndarray
    orientation: np.ndarray
    pixel_spacing: tuple[float, float]
    corrections: tuple[str, ...]
    corrects_tilt: bool

    def __post_init__(self) -> None:
        if len(self.positions) < 2 or np.any(np.diff(self.projections) <= 0):
            raise ValueError(f"need at least 2 slices sorted along the normal, got projections {self.projections}")

    @property
    def normal(self) -> np.ndarray:
        """``(3,)`` unit slice normal ``row_cos x col_cos``."""
        return slice_normal(self.orientation)

    @property
    def projections(self) -> np.ndarray:
        """``(N,)`` distance of each source slice from the first along the normal, mm."""
        return (np.asarray(self.positions) - self.positions[0]) @ self.normal

    @property
    def count(self) -> int:
        """Number of planes of the regular grid: ``round(extent / median step) + 1``."""
        projections = self.projections
        return round(float(projections[-1]) / float(np.median(np.diff(projections)))) + 1

    @property
    def spacing(self) -> float:
        """Distance between the regular grid's planes along the normal, mm."""
        return float(self.projections[-1]) / (self.count - 1)

    @property
    def affine(self) -> np.ndarray:
        """``(4, 4)`` D3 affine of the regular grid (index order ``(column, row, slice)``, step ``n * spacing``)."""
        return dicom_affine(self.orientation, self.pixel_spacing, self.positions[0], self.normal * self.spacing)

    def shear_pixels(self) -> np.ndarray:
        """``(N, 2)`` in-plane displacement ``(rows, columns)`` of each source slice from its foot on the grid."""
        offsets = np.asarray(self.positions) - self.positions[0]
        shear = offsets - np.outer(offsets @ self.normal, self.normal)
        cosines = np.asarray(self.orientation, dtype=np.float64)
        return np.stack([shear @ cosines[3:] / self.pixel_spacing[0], shear @ cosines[:3] / self.pixel_spacing[1]], 1)

    def brackets(self) -> list[tuple[int, float]]:
        """For each plane, the source slice ``k`` at or below it and the weight ``w`` of slice ``k + 1``.

        The plane's value is ``(1 - w) * slice_k + w * slice_{k+1}`` (after each
        slice's in-plane shear is undone); ``w`` is 0 or 1 exactly where the
        plane lies within 1e-6 mm of a source slice.
        """
        projections, spacing = self.projections, self.spacing
        last = len(projections) - 2
        result = []
        for plane in range(self.count):
            position = plane * spacing
            lower = int(np.clip(np.searchsorted(projections, position, side="right") - 1, 0, last))
            weight = (position - projections[lower]) / (projections[lower + 1] - projections[lower])
            if abs(position - projections[lower]) < _COINCIDE_MM:
                weight = 0.0
            elif abs(position - projections[lower + 1]) < _COINCIDE_MM:
                weight = 1.0
            result.append((lower, float(np.clip(weight, 0.0, 1.0))))
        return result

    def describe(self) -> str:
        """One line for notes and DerivationDescription: what was corrected, the new grid, the interpolation."""
        return (
            f"resampled onto a regular grid ({', '.join(self.corrections)}): {len(self.positions)} source slices to"
            f" {self.count} slices at {self.spacing:.3f} mm along the slice normal (linear interpolation)"
        )

    def planes(self, stack: np.ndarray, valid: np.ndarray, fill: float) -> Iterator[np.ndarray]:
        """Interpolate the regular grid's planes, one at a time.

        Args:
            stack: ``(N, H, W)`` source slices in the sorted order of ``positions`` (any real dtype).
            valid: ``(N, H, W)`` bool, False where a source pixel is padding (nodata).
            fill: value of target pixels outside the acquired field or mostly on padding.

        Yields:
            ``count`` float64 ``(H, W)`` planes, in order along the normal.
        """
        from scipy import ndimage

        if stack.shape[0] != len(self.positions) or valid.shape != stack.shape:
            raise ValueError(
                f"stack {stack.shape} and mask {valid.shape} do not match {len(self.positions)} source slices"
            )
        shifts = self.shear_pixels()
        cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def moved(index: int) -> tuple[np.ndarray, np.ndarray]:
            """Slice ``index``'s masked values and validity with its shear undone: ``out[r, c] = in[r - b, c - a]``."""
            if index not in cache:
                mask = valid[index].astype(np.float64)
                values = stack[index].astype(np.float64) * mask
                if np.any(shifts[index] != 0):
                    values, mask = (
                        ndimage.shift(a, shifts[index], order=1, mode="grid-constant", cval=0.0) for a in (values, mask)
                    )
                cache[index] = (values, mask)
            return cache[index]

        for lower, weight in self.brackets():
            for old in [key for key in cache if key < lower]:
                del cache[old]
            total = np.zeros(stack.shape[1:])
            share = np.zeros(stack.shape[1:])
            for index, factor in ((lower, 1.0 - weight), (lower + 1, weight)):
                if factor > 0:
                    values, mask = moved(index)
                    total += factor * values
                    share += factor * mask
            keep = share >= _VALID_WEIGHT
            yield np.where(keep, total / np.where(keep, share, 1.0), fill)
