"""Affine math of invariants section 0 and D3 (srrestore.domains.medical.geometry)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from srrestore.domains.medical.geometry import (
    coarse_axis,
    corner_points,
    dicom_affine,
    slice_normal,
    slice_positions,
    upscale_affine,
    voxel_sizes,
)
from torch.nn import functional as F

# An oblique, sheared affine (nothing axis-aligned) and an odd grid.
OBLIQUE = np.array([[0.9, 0.2, 0.1, -120.5], [-0.15, 1.1, 0.3, 33.25], [0.05, -0.1, 2.9, 7.0], [0.0, 0.0, 0.0, 1.0]])


@pytest.mark.parametrize("factors", [(2, 2, 2), (1, 1, 4), (3, 2, 1), (8, 1, 1)])
def test_c1_bounding_box_is_unchanged(factors):
    shape = (7, 5, 3)
    new_shape = tuple(n * f for n, f in zip(shape, factors))
    before = corner_points(OBLIQUE, shape)
    after = corner_points(upscale_affine(OBLIQUE, factors), new_shape)
    assert np.abs(after - before).max() <= 1e-9


def test_upscale_affine_moves_the_origin_a_quarter_voxel_for_factor_two():
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    result = upscale_affine(affine, (2, 2, 2))
    np.testing.assert_allclose(np.diag(result)[:3], [1.0, 1.5, 2.0])
    np.testing.assert_allclose(result[:3, 3], [-0.5, -0.75, -1.0])  # -1/4 of an old voxel
    np.testing.assert_allclose(voxel_sizes(result), [1.0, 1.5, 2.0])


def test_c2_matches_cell_centred_trilinear_resampling_of_a_linear_field():
    shape, factors = (6, 5, 4), (2, 2, 2)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    world = grid @ OBLIQUE[:3, :3].T + OBLIQUE[:3, 3]
    coefficients = np.array([0.7, -1.3, 2.1])
    field = world @ coefficients + 5.0
    upsampled = F.interpolate(
        torch.from_numpy(field)[None, None], scale_factor=factors, mode="trilinear", align_corners=False
    )[0, 0].numpy()
    new = upscale_affine(OBLIQUE, factors)
    new_grid = np.stack(np.meshgrid(*[np.arange(n * f) for n, f in zip(shape, factors)], indexing="ij"), axis=-1)
    expected = (new_grid @ new[:3, :3].T + new[:3, 3]) @ coefficients + 5.0
    interior = tuple(slice(f, n * f - f) for n, f in zip(shape, factors))  # trilinear clamps at the border
    assert np.abs(upsampled[interior] - expected[interior]).max() < 1e-9
    kept_origin = OBLIQUE.copy()
    kept_origin[:3, :3] /= 2
    wrong = (new_grid @ kept_origin[:3, :3].T + kept_origin[:3, 3]) @ coefficients + 5.0
    assert np.abs(upsampled[interior] - wrong[interior]).max() > 0.5


def test_c4_differs_from_nibabel_rescale_affine():
    from nibabel.affines import rescale_affine

    shape = (33, 41, 25)
    factors = (2, 2, 2)
    new_shape = tuple(n * f for n, f in zip(shape, factors))
    theirs = rescale_affine(OBLIQUE, shape, voxel_sizes(OBLIQUE) / 2, new_shape)
    ours = upscale_affine(OBLIQUE, factors)
    assert np.abs(corner_points(theirs, new_shape) - corner_points(OBLIQUE, shape)).max() > 0.1
    assert np.abs(corner_points(ours, new_shape) - corner_points(OBLIQUE, shape)).max() < 1e-9


def test_d3_dicom_affine_uses_row_then_column_pixel_spacing():
    orientation = [1, 0, 0, 0, 0.9483237, -0.3173047]
    affine = dicom_affine(orientation, (0.5, 0.25), (-125.0, -123.5, 5.8), (0.0, 0.0, 4.22))
    # column index moves along the row direction X by the column spacing (PixelSpacing[1])
    np.testing.assert_allclose(affine[:3, 0], [0.25, 0, 0])
    np.testing.assert_allclose(affine[:3, 1], [0, 0.5 * 0.9483237, -0.5 * 0.3173047])
    positions = slice_positions(affine, 3)
    np.testing.assert_allclose(positions[2], [-125.0, -123.5, 5.8 + 2 * 4.22])
    np.testing.assert_allclose(
        slice_normal(orientation),
        np.cross([1, 0, 0], [0, 0.9483237, -0.3173047])
        / np.linalg.norm(np.cross([1, 0, 0], [0, 0.9483237, -0.3173047])),
    )


def test_coarse_axis_finds_one_thick_axis_only():
    assert coarse_axis((0.7, 0.7, 5.0)) == 2
    assert coarse_axis((4.0, 0.5, 0.5)) == 0
    assert coarse_axis((1.0, 1.0, 1.9)) == 2
    assert coarse_axis((1.0, 1.0, 1.4)) is None
    assert coarse_axis((3.0, 3.0, 3.0)) is None
