"""Evaluation: PSNR/SSIM against scikit-image, masking, shapes, consistency error; report figure layout."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from srrestore.errors import ConfigError, UnsupportedInputError
from srrestore.pipelines.evaluate import area_downscale, consistency_error, evaluate_arrays
from srrestore.pipelines.report import Crop, pick_crop, report_figure
from srrestore.training.degradation import downscale, upscale_bicubic

SSIM_OPTIONS = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


def _bicubic_round_trip(image: np.ndarray, scale: int) -> np.ndarray:
    """``(C, H, W)`` uint8 through MATLAB-style bicubic down- and upscaling, back to uint8."""
    low = np.clip(np.rint(downscale(image.astype(np.float64), scale)), 0, 255)
    return np.clip(np.rint(upscale_bicubic(low, scale)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def astronaut():
    reference = np.moveaxis(data.astronaut()[:256, 128:384], -1, 0)
    return reference, _bicubic_round_trip(reference, 4)


def _luma(rgb: np.ndarray) -> np.ndarray:
    red, green, blue = rgb.astype(np.float64) / 255.0
    return 16.0 + 65.481 * red + 128.553 * green + 24.966 * blue


def test_rgb_uint8_image_is_measured_on_bt601_luma_like_scikit_image(astronaut):
    reference, restored = astronaut
    result = evaluate_arrays(reference, restored, shave=4)
    expected_y, restored_y = _luma(reference)[4:-4, 4:-4], _luma(restored)[4:-4, 4:-4]
    assert result.y_channel and result.data_range == (255.0,) and result.measured_fraction == 1.0
    assert result.psnr == pytest.approx(peak_signal_noise_ratio(expected_y, restored_y, data_range=255), abs=1e-9)
    assert result.ssim == pytest.approx(structural_similarity(expected_y, restored_y, data_range=255, **SSIM_OPTIONS), abs=1e-9)
    assert 20 < result.psnr < 40


def test_all_channels_is_the_mean_of_per_channel_figures(astronaut):
    reference, restored = astronaut
    result = evaluate_arrays(reference, restored, y_channel=False)
    psnrs = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(reference, restored)]
    ssims = [structural_similarity(a, b, data_range=255, **SSIM_OPTIONS) for a, b in zip(reference, restored)]
    assert not result.y_channel and result.data_range == (255.0,) * 3
    assert result.psnr == pytest.approx(np.mean(psnrs), abs=1e-9)
    assert result.ssim == pytest.approx(np.mean(ssims), abs=1e-9)


def test_uint16_data_range_is_the_reference_range_and_nodata_is_left_out():
    camera = data.camera().astype(np.uint16)[None] * 100 + 1000
    rng = np.random.default_rng(0)
    restored = (camera.astype(np.int64) + rng.integers(-300, 301, camera.shape)).astype(np.uint16)
    reference = camera.copy()
    reference[:, :200, :150] = 0  # nodata block
    restored[:, :200, :150] = 60000  # garbage where the reference has no data
    valid = reference[0] != 0
    masked = evaluate_arrays(reference, restored, nodata=0, kind="geotiff")
    data_range = float(reference[0][valid].max() - reference[0][valid].min())
    mse = np.mean((reference[0][valid].astype(np.float64) - restored[0][valid]) ** 2)
    assert masked.data_range == (data_range,)
    assert masked.measured_fraction == pytest.approx(valid.mean())
    assert masked.psnr == pytest.approx(10 * math.log10(data_range**2 / mse), abs=1e-9)
    unmasked = evaluate_arrays(reference, restored, kind="geotiff")
    assert unmasked.psnr < masked.psnr - 15 and unmasked.ssim < masked.ssim


def test_nodata_sentinel_value_does_not_change_the_figures():
    camera = data.camera().astype(np.uint16)[None] + 10
    restored = camera + (np.arange(camera.size).reshape(camera.shape) % 7).astype(np.uint16)
    results = []
    for sentinel in (0, 65535):
        reference, output = camera.copy(), restored.copy()
        reference[:, 300:, 300:] = sentinel
        output[:, 300:, 300:] = sentinel
        results.append(evaluate_arrays(reference, output, nodata=sentinel, kind="geotiff"))
    assert results[0].psnr == pytest.approx(results[1].psnr, abs=1e-12)
    assert results[0].ssim == pytest.approx(results[1].ssim, abs=1e-12)


def test_mismatched_shapes_raise_with_both_shapes(astronaut):
    reference, restored = astronaut
    with pytest.raises(UnsupportedInputError, match=r"\(3, 256, 256\) vs \(3, 256, 255\)"):
        evaluate_arrays(reference, restored[:, :, :255])


def test_y_channel_refused_for_grey_data():
    camera = data.camera()[None]
    with pytest.raises(ConfigError, match="3-channel"):
        evaluate_arrays(camera, camera, y_channel=True)


def test_body_mask_leaves_out_background_of_a_volume():
    import nibabel as nib
    from nibabel.testing import data_path

    volume = np.asarray(nib.load(f"{data_path}/example4d.nii.gz").dataobj)[..., 0]  # real EPI, (128, 96, 24)
    reference = np.moveaxis(volume, 2, 0)[None]
    restored = reference.copy()
    restored[reference == 0] = 40  # change the air around the head only
    masked = evaluate_arrays(reference, restored, kind="nifti")
    assert masked.body_mask and 0.2 < masked.measured_fraction < 0.6
    assert math.isinf(masked.psnr) and masked.ssim == 1.0
    whole = evaluate_arrays(reference, restored, kind="nifti", use_body_mask=False)
    assert math.isfinite(whole.psnr) and whole.ssim < 1.0
    assert whole.to_dict()["psnr"] == whole.psnr and masked.to_dict()["psnr"] == "inf"


def test_consistency_error_is_zero_for_nearest_upsampling_and_measures_a_change():
    low = np.moveaxis(data.astronaut()[::8, ::8], -1, 0)
    restored = low.repeat(4, axis=1).repeat(4, axis=2)
    exact = consistency_error(restored, low, scale=4)
    assert exact.scale == (4, 4) and exact.max_abs == 0.0 and exact.rmse == 0.0
    restored[1, 10, 20] += 8  # one output pixel changes its block mean by 8 / 16
    changed = consistency_error(restored, low)
    assert changed.max_abs == pytest.approx(0.5)
    assert changed.rmse == pytest.approx(math.sqrt(0.25 / low.size))


def test_consistency_of_a_volume_with_per_axis_factors_and_bad_ratios():
    rng = np.random.default_rng(1)
    low = rng.integers(0, 4000, (1, 5, 12, 10)).astype(np.int16)
    restored = low.repeat(3, axis=1).repeat(2, axis=2).repeat(2, axis=3)
    assert area_downscale(restored, (3, 2, 2)) == pytest.approx(low)
    result = consistency_error(restored, low, scale=2)
    assert result.scale == (3, 2, 2) and result.max_abs == 0.0
    with pytest.raises(UnsupportedInputError, match="not --scale 4"):
        consistency_error(restored, low, scale=4)
    with pytest.raises(UnsupportedInputError, match="integer multiple"):
        consistency_error(restored[:, :, :23], low)


def test_pick_crop_finds_the_detailed_window_and_avoids_nodata():
    image = np.zeros((120, 160))
    image[70:90, 100:120] = np.indices((20, 20)).sum(axis=0) % 2  # a checkerboard patch
    valid = np.ones_like(image, dtype=bool)
    assert pick_crop(image, valid, 20) == Crop(70, 100, 20)
    valid[60:100, 90:130] = False
    crop = pick_crop(image, valid, 20)
    assert not (crop.y < 100 and crop.y + 20 > 60 and crop.x < 130 and crop.x + 20 > 90)


def test_report_figure_has_two_rows_of_panels_and_one_inset_per_crop(astronaut):
    reference, restored = astronaut
    nearest = reference[:, ::4, ::4].repeat(4, axis=1).repeat(4, axis=2)
    report = report_figure(reference, [nearest, restored], ["nearest", "bicubic"], crop=Crop(100, 60, 64))
    panels = [axes for axes in report.figure.axes if axes.get_label() != "<colorbar>"]
    assert len(panels) == 6 and len(report.figure.axes) == 7
    assert sum(len(axes.child_axes) for axes in panels) == 3
    assert "PSNR" in panels[2].get_title() and f"{report.evaluations[1].psnr:.2f}" in panels[2].get_title()
    assert report.evaluations[1].psnr > report.evaluations[0].psnr
    assert report.crop == Crop(100, 60, 64)
    with pytest.raises(ConfigError, match="does not fit"):
        report_figure(reference, [restored], ["bicubic"], crop=Crop(240, 0, 64))


def test_read_array_puts_the_slice_axis_first_and_evaluates_nifti_files(tmp_path):
    import nibabel as nib
    from nibabel.testing import data_path

    from srrestore.pipelines.arrays import read_array
    from srrestore.pipelines.evaluate import evaluate_files

    source = nib.load(f"{data_path}/example4d.nii.gz")  # (128, 96, 24, 2) int16, no dim_info: k is the slice axis
    loaded = read_array(Path(f"{data_path}/example4d.nii.gz"))
    assert loaded.kind == "nifti" and loaded.nodata is None and loaded.array.shape == (2, 24, 128, 96)
    stored = np.asarray(source.dataobj)
    assert np.array_equal(loaded.array[1, 5], stored[:, :, 5, 1])
    changed = stored.copy()
    changed[60:70, 40:50, 10:14] += 25
    restored = tmp_path / "restored.nii.gz"
    nib.save(nib.Nifti1Image(changed, source.affine, source.header), restored)
    result = evaluate_files(Path(f"{data_path}/example4d.nii.gz"), restored)
    assert result.body_mask and not result.y_channel and len(result.data_range) == 2
    assert 30 < result.psnr < math.inf and result.ssim < 1.0


def test_read_array_reads_a_dicom_file_with_its_padding_value_as_nodata():
    from pydicom.data import get_testdata_file

    from srrestore.pipelines.arrays import read_array

    loaded = read_array(Path(get_testdata_file("CT_small.dcm")))
    assert loaded.kind == "dicom" and loaded.array.shape == (1, 1, 128, 128) and loaded.nodata == -2000.0
