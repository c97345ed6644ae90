"""Through-plane restores onto any slice spacing: the factor from the header, non-integer ratios, the target spacing."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from click.testing import CliRunner
from nibabel.testing import data_path
from srrestore.domains.medical.dicom_series import open_series
from srrestore.domains.medical.geometry import corner_points
from srrestore.domains.medical.resample import axis_weights
from srrestore.pipelines.medical.options import VolumeOptions
from srrestore.pipelines.medical.plan import plan_volume
from srrestore.pipelines.medical.restore import restore_dicom, restore_nifti

from srrestore.cli.main import cli
from srrestore.engine.normalize import to_dtype
from srrestore.errors import ConfigError
from srrestore.models.checkpoint import save_generator
from srrestore.models.generator import create_generator


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[int, str]:
    """Tiny through-plane ``(s, 1)`` generators for s = 2, 3, 4."""
    folder = tmp_path_factory.mktemp("slice_models")
    torch.manual_seed(0)
    paths = {}
    for factor in (2, 3, 4):
        path = folder / f"t{factor}1.safetensors"
        save_generator(path, create_generator("test-tiny", in_channels=1, scale=(factor, 1)))
        paths[factor] = str(path)
    return paths


def plan(spacings, shape=(33, 41, 25), **given):
    return plan_volume(VolumeOptions(device="cpu", progress=False, **given), spacings, 2, shape)


def test_the_factor_comes_from_the_header_and_a_non_integer_ratio_is_resampled(models):
    # 3.3 mm slices over 0.9 mm pixels: ratio 3.67, the model's x4, resampled from 100 onto round(25 * 3.3 / 0.9) = 92.
    grid = plan((0.9, 0.9, 3.3), model=models[4], slice_scale="auto").grid
    assert (grid.axis, grid.factor, grid.count, grid.resamples) == (2, 4, 92, True)
    assert grid.spacing == pytest.approx(25 * 3.3 / 92)  # the input's box exactly filled: 0.8967 mm, not 0.9
    assert grid.describe() == (
        "slices along axis 2: 3.3 mm -> 0.8967 mm (x3.68: x4 by the model, resampled from 100 to 92 slices);"
        " ratio 3.67 = slice spacing over the in-plane spacing (isotropic) (header: slice spacing 3.3 mm, in-plane"
        " 0.9 mm)"
    )
    # Within 5 % of an integer, the default (isotropic) target is met by the model's own grid, without resampling;
    # a given --target-spacing is met exactly.
    near = plan((1.0, 1.0, 3.9), model=models[4], slice_scale="auto").grid
    assert (near.factor, near.count, near.resamples) == (4, 100, False)
    exact = plan((1.0, 1.0, 3.9), model=models[4], slice_scale="auto", target_spacing=1.0).grid
    assert (exact.factor, exact.count, exact.resamples) == (4, 98, True)
    # --target-spacing chooses the spacing; --slice-scale N with it chooses the model.
    assert plan((1.0, 1.0, 3.0), target_spacing=1.5, model=models[2]).grid.count == 50
    chosen = plan((1.0, 1.0, 3.3), slice_scale=4, target_spacing=1.1, model=models[4]).grid
    assert (chosen.factor, chosen.count) == (4, 75)


def test_wrong_factors_and_spacings_name_the_fix(models):
    with pytest.raises(ConfigError, match=r"is a x2 through-plane model; these slices need x4 .*use --slice-scale 2"
                                          r" \(with --target-spacing to resample\), or fine-tune a x4 model"):
        plan((0.9, 0.9, 3.3), model=models[2], slice_scale="auto")
    with pytest.raises(ConfigError, match=r"--slice-scale 2 gives 1.65 mm slices, coarser than --target-spacing 1 mm;"
                                          r" use --slice-scale 4"):
        plan((1.0, 1.0, 3.3), slice_scale=2, target_spacing=1.0, model=models[2])
    with pytest.raises(ConfigError, match="nothing to do through-plane"):
        plan((1.0, 1.0, 1.0), slice_scale="auto", model=models[2])
    with pytest.raises(ConfigError, match="slice_scale must be a positive integer or auto"):
        plan((1.0, 1.0, 3.0), slice_scale="three", model=models[2])
    with pytest.raises(ConfigError, match="--target-spacing must be a positive number"):
        plan((1.0, 1.0, 3.0), target_spacing=0.0, model=models[2])


def test_defaults_restore_thick_slices_through_plane_only_and_in_plane_on_request(models):
    thick = plan((0.9, 0.9, 1.5 * 0.9), model=models[2])  # 1.5 times the in-plane spacing: thick
    assert [p.kind for p in thick.passes] == ["through-plane"]
    assert thick.grid.origin.startswith("the model's x2, spacing from the in-plane spacing (isotropic)")
    with pytest.raises(ConfigError, match="in-plane SR needs a model with equal factors"):
        plan((0.9, 0.9, 4.0), model=models[2], scale=2)  # --scale: in-plane only, even on thick slices


def t1_with_spacing(folder: Path, spacing: tuple[float, float, float], dtype=np.int16) -> Path:
    """nibabel's real T1 (33 x 41 x 25, int16) given the voxel size ``spacing`` in mm."""
    source = nib.load(Path(data_path) / "anatomical.nii")
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-10.0, 20.0, -5.0)
    path = folder / f"t1_{dtype.__name__}.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(source.dataobj).astype(dtype), affine), path)
    return path


def test_a_non_integer_ratio_fills_the_input_box_and_rounds_once(tmp_path, models):
    """3.3 mm slices over 0.9 mm: x4 resampled onto 92 slices; equal to the x4 float output resampled and rounded.

    Tolerance: 1 DN on at most 0.5 % of voxels (float32 between the passes; the
    float copy's network runs in float32 too, so rounding ties may differ).
    """
    source = t1_with_spacing(tmp_path, (0.9, 0.9, 3.3))
    output = tmp_path / "iso.nii.gz"
    report = restore_nifti(source, output, {"model": models[4], "slice_scale": "auto", "device": "cpu",
                                            "progress": False})
    before, result = nib.load(source), nib.load(output)
    assert result.shape == (33, 41, 92) and result.header.get_data_dtype() == np.int16
    assert np.allclose(result.header.get_zooms(), (0.9, 0.9, 25 * 3.3 / 92))
    error = corner_points(result.affine, result.shape) - corner_points(before.affine, before.shape)
    assert np.abs(error).max() < 1e-4  # the same box
    assert report.scale == (1, 1, 3.68) and "resampled from 100 to 92 slices" in report.notes[1]
    sidecar = json.loads((tmp_path / "iso.json").read_text())
    assert sidecar["slice_grid"]["resampled"] and sidecar["slice_grid"]["slices"] == 92

    float_source = t1_with_spacing(tmp_path, (0.9, 0.9, 3.3), np.float32)
    restore_nifti(float_source, tmp_path / "x4.nii", {"model": models[4], "slice_scale": 4, "device": "cpu",
                                                        "progress": False})
    unrounded = np.asarray(nib.load(tmp_path / "x4.nii").dataobj, dtype=np.float64)
    expected = to_dtype(np.tensordot(unrounded, axis_weights(100, 92).toarray(), axes=(2, 1)), np.int16)
    difference = np.abs(np.asarray(result.dataobj).astype(np.int32) - expected)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.005


def test_a_dicom_series_resampled_onto_a_target_spacing_keeps_its_box(fixtures_dir, tmp_path, models):
    source = fixtures_dir / "medical" / "ct_abdomen_j2k"  # 4 real slices 2 mm apart, 0.98 mm pixels
    small = tmp_path / "small"
    small.mkdir()
    for path in sorted(source.glob("CT.*")):
        dataset = pydicom.dcmread(path)
        dataset.set_pixel_data(dataset.pixel_array[200:248, 200:240], "MONOCHROME2", 12, generate_instance_uid=False)
        dataset.save_as(small / path.name)
    report = restore_dicom(small, tmp_path / "sr", {"model": models[3], "target_spacing": 0.75, "device": "cpu",
                                                     "progress": False})
    before, after = open_series(small), open_series(tmp_path / "sr")
    assert after.shape == (11, 48, 40)  # ratio 2.67: x3 onto round(4 * 2 / 0.75) = 11 slices
    assert after.slice_spacing == pytest.approx(before.slice_spacing * 4 / 11, abs=1e-6)
    error = corner_points(after.affine, after.shape[::-1]) - corner_points(before.affine, before.shape[::-1])
    assert np.abs(error).max() < 1e-4
    steps = np.diff(after.source_positions, axis=0)
    assert np.allclose(steps, steps[0], atol=1e-4)  # every slice's ImagePositionPatient on the regular grid
    assert "the model's x3, spacing from --target-spacing 0.75 mm" in report.notes[1]


def test_axis_weights_preserve_constants_and_keep_the_box():
    weights = axis_weights(100, 92)
    assert weights.shape == (92, 100) and np.allclose(np.asarray(weights.sum(axis=1)).ravel(), 1.0)
    assert weights.nnz <= 92 * 6  # a few taps per output: memory grows with the counts, not their product
    assert np.array_equal(axis_weights(7, 7).toarray(), np.eye(7))
    # Built block by block (300 samples: two blocks), equal to the identity's resampling at once.
    from resize_right import interp_methods, resize

    whole = resize(np.eye(300), scale_factors=[250 / 300, 1.0], out_shape=(250, 300),
                   interp_method=interp_methods.cubic, antialiasing=True, pad_mode="symmetric")
    assert np.allclose(axis_weights(300, 250).toarray(), whole, atol=1e-12)
    # A ramp in the interior stays a ramp sampled at the cell-centred positions (j + 1/2) * 100 / 92 - 1/2.
    ramp = weights @ np.arange(100.0)
    centres = (np.arange(92) + 0.5) * 100 / 92 - 0.5
    assert np.abs(ramp - centres)[5:-5].max() < 0.02  # the stretched kernel, sampled, is exact within 0.02 samples


def test_cli_takes_auto_and_refuses_other_words(tmp_path):
    result = CliRunner().invoke(cli, ["restore", str(tmp_path / "in.nii.gz"), str(tmp_path / "out.nii.gz"),
                                      "--slice-scale", "three"])
    assert result.exit_code == 2 and "'three' is neither a positive integer nor auto" in result.output
