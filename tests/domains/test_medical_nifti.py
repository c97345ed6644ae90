"""NIfTI reading, header derivation (N1-N5, C1) and writing, on nibabel's and TotalSegmentator's real files."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from nibabel.testing import data_path
from srrestore.domains.medical.geometry import corner_points, upscale_affine
from srrestore.domains.medical.intensity import foreground_normalization
from srrestore.domains.medical.nifti import NiftiWriter, derive_header, read_nifti
from torch import nn
from torch.nn import functional as F

from srrestore.engine import ArrayReader, UpscaleOptions, upscale
from srrestore.errors import InputReadError, UnsupportedInputError
from srrestore.models.spec import ModelSpec

ANATOMICAL = Path(data_path) / "anatomical.nii"  # 33x41x25, big-endian int16, sform and qform code 2
FUNCTIONAL = Path(data_path) / "functional.nii"  # 17x21x3x20 int16, scl_slope 0.0754, scl_inter 3100.76
EXAMPLE_4D = Path(data_path) / "example4d.nii.gz"  # 128x96x24x2, dim_info slice axis 2, TR 2000


class Nearest(nn.Module):
    def __init__(self, scale: tuple[int, int]) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="nearest")


def restore(path: Path, output: Path, factors: tuple[int, int, int], scratch: Path) -> tuple:
    """Write ``path`` upscaled by ``factors`` (nearest neighbour); returns (volume, derived header)."""
    volume = read_nifti(path)
    axes = tuple(a for a in range(3) if factors[a] > 1)
    scale = tuple(factors[a] for a in axes)
    if len(axes) == 1:  # one axis: pair it with a factor-1 axis
        axes, scale = (axes[0], (axes[0] + 1) % 3), (scale[0], 1)
    header = derive_header(volume.header, factors, "test nearest", volume.slope, volume.intercept)
    writer = NiftiWriter(
        output, header, volume.stored.shape[0], volume.image_class, output.name.endswith(".gz"), scratch=scratch
    )
    upscale(
        ArrayReader(volume.stored),
        writer,
        Nearest(scale),
        ModelSpec(scale, 1, 1, 0),
        foreground_normalization(volume.stored),
        UpscaleOptions(plane_axes=axes, device="cpu"),
    )
    writer.close()
    return volume, header


def test_read_nifti_gives_stored_values_channels_first():
    volume = read_nifti(FUNCTIONAL)
    assert volume.stored.shape == (20, 17, 21, 3) and volume.stored.dtype == np.int16
    assert volume.slope == pytest.approx(0.07540696859) and volume.intercept == pytest.approx(3100.76171875)
    assert volume.zooms == (4.0, 4.0, 8.0)
    anatomical = read_nifti(ANATOMICAL)
    assert anatomical.stored.shape == (1, 33, 41, 25) and anatomical.stored.dtype.isnative
    assert read_nifti(EXAMPLE_4D).slice_dim == 2


def test_n1_sform_and_qform_are_updated_separately_with_codes_kept():
    header = nib.load(ANATOMICAL).header.copy()
    sheared = header.get_sform()
    sheared[0, 1] = 0.3  # qform cannot hold shear: the two forms now differ
    header.set_sform(sheared, code=4)
    header.set_qform(header.get_qform(), code=0)
    derived = derive_header(header, (2, 2, 3), "x")
    np.testing.assert_allclose(derived.get_sform(), upscale_affine(sheared, (2, 2, 3)), atol=1e-5)
    np.testing.assert_allclose(derived.get_qform(), upscale_affine(header.get_qform(), (2, 2, 3)), atol=1e-5)
    assert (int(derived["sform_code"]), int(derived["qform_code"])) == (4, 0)


def test_n2_n3_dims_pixdims_units_intent_and_descrip():
    header = nib.load(EXAMPLE_4D).header.copy()
    header.set_intent("t test", (12.0,), name="stats")
    header["aux_file"] = b"lookup.lut"
    derived = derive_header(header, (2, 2, 1), "srrestore " + "long provenance " * 10)
    assert derived.get_data_shape() == (256, 192, 24, 2)
    np.testing.assert_allclose(derived["pixdim"][1:4], header["pixdim"][1:4] / [2, 2, 1])
    assert derived["pixdim"][0] == header["pixdim"][0] and derived["pixdim"][4] == 2000.0
    assert derived.get_xyzt_units() == header.get_xyzt_units() == ("mm", "sec")
    assert derived.get_intent() == header.get_intent()
    assert derived["aux_file"] == b"lookup.lut"
    assert len(derived["descrip"].tobytes().rstrip(b"\0")) == 80


def test_n4_slice_timing_is_cleared_only_when_the_slice_axis_is_upscaled():
    header = nib.load(EXAMPLE_4D).header.copy()
    header["slice_code"], header["slice_duration"], header["slice_start"], header["slice_end"] = 1, 0.08, 0, 23
    through = derive_header(header, (1, 1, 2), "x")
    assert [float(through[k]) for k in ("slice_code", "slice_start", "slice_end", "slice_duration")] == [0, 0, 0, 0]
    in_plane = derive_header(header, (2, 2, 1), "x")
    assert (int(in_plane["slice_code"]), int(in_plane["slice_end"])) == (1, 23)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_c1_n5_round_trip_keeps_bounds_dtype_scaling_and_values(tmp_path, suffix):
    output = tmp_path / f"functional_x2{suffix}"
    volume, _ = restore(FUNCTIONAL, output, (2, 2, 1), tmp_path)
    result = nib.load(output)
    assert result.shape == (34, 42, 3, 20)
    assert result.header.get_data_dtype() == nib.load(FUNCTIONAL).header.get_data_dtype()
    assert (result.dataobj.slope, result.dataobj.inter) == (
        nib.load(FUNCTIONAL).dataobj.slope,
        nib.load(FUNCTIONAL).dataobj.inter,
    )
    stored = np.asarray(result.dataobj.get_unscaled())
    expected = np.moveaxis(volume.stored, 0, -1).repeat(2, axis=0).repeat(2, axis=1)
    assert np.array_equal(stored, expected)  # I1 with a nearest-neighbour network, 4-D band by band
    source = nib.load(FUNCTIONAL)
    for form in ("get_sform", "get_qform"):
        before = corner_points(getattr(source.header, form)(), source.shape[:3])
        after = corner_points(getattr(result.header, form)(), result.shape[:3])
        assert np.abs(after - before).max() < 1e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == [output.name]  # scratch array removed


def test_big_endian_source_keeps_its_stored_dtype_through_plane(tmp_path):
    output = tmp_path / "anatomical.nii"
    volume, _ = restore(ANATOMICAL, output, (1, 1, 2), tmp_path)
    result = nib.load(output)
    assert result.header.get_data_dtype() == np.dtype(">i2")
    assert np.array_equal(np.asarray(result.dataobj.get_unscaled()), volume.stored[0].repeat(2, axis=2))
    assert np.allclose(result.header.get_zooms(), (2.0, 2.0, 1.0))


def test_bad_nifti_inputs_give_clear_errors(tmp_path):
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(gzip.compress(ANATOMICAL.read_bytes())[:20000])
    with pytest.raises(InputReadError, match="truncated.nii.gz"):
        read_nifti(truncated).stored  # a .nii.gz is found truncated when its voxels are read
    five_d = tmp_path / "vectors.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 1, 3), dtype=np.int16), np.eye(4)), five_d)
    with pytest.raises(UnsupportedInputError, match=r"shape \(4, 4, 4, 1, 3\); only 3-D volumes and 4-D series"):
        read_nifti(five_d)
    with pytest.raises(UnsupportedInputError, match="AnalyzeImage, not a single-file NIfTI"):
        read_nifti(Path(data_path) / "analyze.hdr")
    with pytest.raises(InputReadError, match="input not found"):
        read_nifti(tmp_path / "missing.nii")
    assert os.path.exists(ANATOMICAL)
