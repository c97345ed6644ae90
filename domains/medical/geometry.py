"""Voxel-to-world affine math shared by DICOM and NIfTI (invariants section 0 and D3).

Affines are 4x4 float64 matrices mapping a voxel *centre* index
``(i, j, k, 1)`` to world coordinates in millimetres (NIfTI: RAS+, DICOM: LPS).
Voxel ``i`` covers the index interval ``[i - 1/2, i + 1/2]``.

Super-resolution here is cell-centred (``N' = s * N``, what pixel shuffle
produces): new index ``i'`` lies at old continuous index
``i = i'/s + (1 - s)/(2s)``, so

``A' = A @ [[diag(1/s), (1 - s)/(2s)], [0, 1]]``

and the world bounding box (corners at index ``-1/2`` and ``N - 1/2``) is
unchanged (C1). This is not ``nibabel.affines.rescale_affine`` (C4).
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

__all__ = [
    "upscale_affine",
    "corner_points",
    "voxel_sizes",
    "slice_normal",
    "dicom_affine",
    "slice_positions",
    "COARSE_RATIO",
    "coarse_axis",
    "in_plane_spacing",
]


def upscale_affine(affine: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """The affine of a grid ``factors`` times finer on each index axis (cell-centred).

    Args:
        affine: ``(4, 4)`` voxel-centre-to-world matrix.
        factors: integer factor per index axis (3 values, in the affine's index order).

    Returns:
        ``(4, 4)`` float64 ``A'`` with ``A'[:3, :3] = A[:3, :3] / s`` and the
        origin moved by ``A[:3, :3] @ (1 - s) / (2s)`` (half an old voxel minus
        half a new one, towards negative indices).
    """
    s = np.asarray(factors, dtype=np.float64)
    if s.shape != (3,) or np.any(s < 1):
        raise ValueError(f"need three factors >= 1, got {tuple(factors)}")
    transform = np.eye(4)
    transform[:3, :3] = np.diag(1.0 / s)
    transform[:3, 3] = (1.0 - s) / (2.0 * s)
    return np.asarray(affine, dtype=np.float64) @ transform


def corner_points(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """World positions of the 8 corners of a grid's bounding box.

    Args:
        affine: ``(4, 4)`` voxel-centre-to-world matrix.
        shape: grid size per index axis (3 values, in the affine's index order).

    Returns:
        ``(8, 3)`` float64 corners at index ``-1/2`` and ``n - 1/2`` per axis,
        in a fixed order (so two grids covering the same box give equal arrays).
    """
    limits = [(-0.5, n - 0.5) for n in shape]
    corners = np.array([[*c, 1.0] for c in itertools.product(*limits)])
    return (np.asarray(affine, dtype=np.float64) @ corners.T).T[:, :3]


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """``(3,)`` length in mm of each index axis step (column norms of ``A[:3, :3]``)."""
    return np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    """Unit normal ``row_cos x col_cos`` of a DICOM ImageOrientationPatient.

    Args:
        orientation: the 6 values of IOP: the direction of a row (along which
            the column index grows), then the direction of a column.

    Returns:
        ``(3,)`` float64 unit vector.
    """
    cosines = np.asarray(orientation, dtype=np.float64)
    normal = np.cross(cosines[:3], cosines[3:])
    return normal / np.linalg.norm(normal)


def dicom_affine(
    orientation: Sequence[float],
    pixel_spacing: Sequence[float],
    first_position: Sequence[float],
    slice_step: Sequence[float],
) -> np.ndarray:
    """The DICOM volume affine of invariant D3, index order ``(column, row, slice)``.

    Args:
        orientation: ImageOrientationPatient (6 direction cosines).
        pixel_spacing: PixelSpacing ``[row spacing, column spacing]`` in mm
            (the distance between rows, then between columns).
        first_position: ImagePositionPatient of the first slice (centre of its first voxel), mm.
        slice_step: world vector from one slice's IPP to the next, mm.

    Returns:
        ``(4, 4)`` float64 ``M`` with ``M[:, 0] = X * PixelSpacing[1]``,
        ``M[:, 1] = Y * PixelSpacing[0]``, ``M[:, 2] = step``, ``M[:, 3] = IPP``.
    """
    cosines = np.asarray(orientation, dtype=np.float64)
    affine = np.eye(4)
    affine[:3, 0] = cosines[:3] * float(pixel_spacing[1])
    affine[:3, 1] = cosines[3:] * float(pixel_spacing[0])
    affine[:3, 2] = np.asarray(slice_step, dtype=np.float64)
    affine[:3, 3] = np.asarray(first_position, dtype=np.float64)
    return affine


def slice_positions(affine: np.ndarray, count: int) -> np.ndarray:
    """``(count, 3)`` ImagePositionPatient of each slice: ``M @ [0, 0, k, 1]``."""
    affine = np.asarray(affine, dtype=np.float64)
    return affine[:3, 3] + np.arange(count)[:, None] * affine[:3, 2]


COARSE_RATIO = 1.5  # slice spacing over in-plane spacing from which a volume's slices count as thick


def in_plane_spacing(spacings: Sequence[float], axis: int) -> float:
    """The coarser voxel size of the two axes other than ``axis``, mm: the fine grid thick slices are compared with."""
    return max(float(s) for a, s in enumerate(spacings) if a != axis)


def coarse_axis(spacings: Sequence[float], ratio: float = COARSE_RATIO) -> int | None:
    """The one axis whose spacing is at least ``ratio`` times every other's, or None.

    Args:
        spacings: voxel size per axis, mm.
        ratio: how much coarser the axis must be (thick slices: 1.5 times the in-plane spacing).
    """
    values = np.asarray(spacings, dtype=np.float64)
    axis = int(np.argmax(values))
    others = np.delete(values, axis)
    return axis if others.size and values[axis] >= ratio * others.max() else None
