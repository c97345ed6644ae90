"""`srrestore evaluate` and `srrestore report` on real images: figures, JSON, errors, figure files."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from srrestore.cli.main import cli
from srrestore.pipelines.report import COLORBAR_INCHES, DPI, PANEL_INCHES, TITLES_INCHES
from srrestore.training.degradation import downscale, upscale_bicubic


EXAMPLE_TIF = Path(__file__).resolve().parents[2] / "examples" / "data" / "landsat_rgb.tif"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A real HR crop, its x4 bicubic low-resolution input, a bicubic and a nearest restoration (PNG)."""
    folder = tmp_path_factory.mktemp("evaluate")
    hr = data.astronaut()[:192, 160:352]
    low = np.clip(np.rint(downscale(np.moveaxis(hr, -1, 0).astype(np.float64), 4)), 0, 255)
    bicubic = np.clip(np.rint(upscale_bicubic(low, 4)), 0, 255).astype(np.uint8)
    low = low.astype(np.uint8)
    paths = {name: folder / f"{name}.png" for name in ("hr", "lr", "bicubic", "nearest")}
    iio.imwrite(paths["hr"], hr)
    iio.imwrite(paths["lr"], np.moveaxis(low, 0, -1))
    iio.imwrite(paths["bicubic"], np.moveaxis(bicubic, 0, -1))
    iio.imwrite(paths["nearest"], np.moveaxis(low.repeat(4, axis=1).repeat(4, axis=2), 0, -1))
    return paths


def _luma(rgb):
    rgb = rgb.astype(np.float64) / 255.0
    return 16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]


def test_evaluate_prints_luma_psnr_ssim_and_json_matches_scikit_image(images):
    hr, restored = _luma(iio.imread(images["hr"]))[4:-4, 4:-4], _luma(iio.imread(images["bicubic"]))[4:-4, 4:-4]
    expected_psnr = peak_signal_noise_ratio(hr, restored, data_range=255)
    expected_ssim = structural_similarity(hr, restored, data_range=255, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False)
    text = run("evaluate", images["hr"], images["bicubic"], "--scale", "4")
    assert text.exit_code == 0, text.output
    assert f"PSNR {expected_psnr:.4f} dB" in text.output and "Y channel" in text.output and "shave 4" in text.output
    result = run("evaluate", images["hr"], images["bicubic"], "--scale", "4", "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["psnr"] == pytest.approx(expected_psnr, abs=1e-9)
    assert figures["ssim"] == pytest.approx(expected_ssim, abs=1e-9)
    assert figures["y_channel"] is True and figures["shave"] == 4 and figures["consistency"] is None


def test_evaluate_all_channels_differs_from_luma(images):
    luma = json.loads(run("evaluate", images["hr"], images["bicubic"], "--json").output)
    channels = json.loads(run("evaluate", images["hr"], images["bicubic"], "--all-channels", "--json").output)
    assert channels["y_channel"] is False and len(channels["data_range"]) == 3
    assert channels["psnr"] != pytest.approx(luma["psnr"], abs=1e-3)


def test_consistency_error_is_zero_for_nearest_upsampling_of_the_input(images):
    result = run("evaluate", images["hr"], images["nearest"], "--lr", images["lr"], "--scale", "4", "--json")
    assert result.exit_code == 0, result.output
    consistency = json.loads(result.output)["consistency"]
    assert consistency == {"scale": [4, 4], "max_abs": 0.0, "rmse": 0.0}
    bicubic = json.loads(run("evaluate", images["hr"], images["bicubic"], "--lr", images["lr"], "--json").output)
    assert bicubic["consistency"]["max_abs"] > 1.0
    text = run("evaluate", images["hr"], images["nearest"], "--lr", images["lr"])
    assert "consistency (area, 4x4): max |error| 0" in text.output


def test_evaluate_errors_are_one_line(images, tmp_path):
    small = tmp_path / "small.png"
    iio.imwrite(small, iio.imread(images["hr"])[:100])
    result = run("evaluate", images["hr"], small)
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0
    assert "(3, 192, 192)" in result.output and "(3, 100, 192)" in result.output
    wrong_scale = run("evaluate", images["hr"], images["nearest"], "--lr", images["lr"], "--scale", "2")
    assert wrong_scale.exit_code == 1 and "not --scale 2" in wrong_scale.output
    missing = run("evaluate", tmp_path / "absent.png", images["hr"])
    assert missing.exit_code == 1 and "absent.png" in missing.output


def _png_size(restored_count: int) -> tuple[int, int]:
    columns = 1 + restored_count
    return round((2 * PANEL_INCHES + TITLES_INCHES) * DPI), round((PANEL_INCHES * columns + COLORBAR_INCHES) * DPI)


def test_report_writes_a_png_with_one_column_per_image(images, tmp_path):
    two = tmp_path / "two.png"
    result = run("report", images["hr"], images["nearest"], images["bicubic"], "--out", two,
                 "--labels", "nearest,bicubic")
    assert result.exit_code == 0, result.output
    assert iio.imread(two).shape[:2] == _png_size(2)
    one = tmp_path / "one.png"
    assert run("report", images["hr"], images["bicubic"], "--out", one, "--crop", "10,20,48").exit_code == 0
    assert iio.imread(one).shape[:2] == _png_size(1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png", "two.png"]


def test_report_refuses_bad_options_and_existing_output(images, tmp_path):
    output = tmp_path / "report.png"
    labels = run("report", images["hr"], images["bicubic"], "--out", output, "--labels", "a,b")
    assert labels.exit_code == 1 and "2 labels for 1 restored" in labels.output
    crop = run("report", images["hr"], images["bicubic"], "--out", output, "--crop", "10,20")
    assert crop.exit_code == 1 and "'10,20'" in crop.output
    outside = run("report", images["hr"], images["bicubic"], "--out", output, "--crop", "150,0,64")
    assert outside.exit_code == 1 and "does not fit" in outside.output
    suffix = run("report", images["hr"], images["bicubic"], "--out", tmp_path / "report.bmp")
    assert suffix.exit_code == 1 and ".png, .pdf, .svg" in suffix.output
    assert not output.exists() and list(tmp_path.iterdir()) == []
    output.write_bytes(b"keep")
    exists = run("report", images["hr"], images["bicubic"], "--out", output)
    assert exists.exit_code == 1 and "--overwrite" in exists.output and output.read_bytes() == b"keep"


def _write_like(source: Path, path: Path, values: np.ndarray) -> Path:
    """A GeoTIFF with ``source``'s profile (nodata, CRS) holding ``(C, H, W)`` values, grid scaled to fit."""
    import rasterio
    from rasterio.transform import Affine

    with rasterio.open(source) as dataset:
        profile = dataset.profile
    factor = values.shape[1] // profile["height"]
    profile.update(height=values.shape[1], width=values.shape[2], transform=profile["transform"] @ Affine.scale(1 / factor))
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(values)
    return path


def test_evaluate_geotiff_leaves_out_nodata_and_checks_consistency(tmp_path):
    import rasterio

    with rasterio.open(EXAMPLE_TIF) as dataset:
        reference, nodata = dataset.read(), dataset.nodata
    valid = ~(reference == nodata).any(axis=0)
    assert 0 < valid.sum() < valid.size
    rng = np.random.default_rng(0)
    restored = np.clip(reference.astype(np.int64) + rng.integers(-6, 7, reference.shape), 1, 255).astype(np.uint8)
    restored[:, ~valid] = 0
    restored_path = _write_like(EXAMPLE_TIF, tmp_path / "restored.tif", restored)
    result = run("evaluate", EXAMPLE_TIF, restored_path, "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    expected = np.mean([peak_signal_noise_ratio(a[valid], b[valid], data_range=255) for a, b in zip(reference, restored)])
    assert figures["y_channel"] is False and figures["data_range"] == [255.0] * 3
    assert figures["measured_fraction"] == pytest.approx(valid.mean())
    assert figures["psnr"] == pytest.approx(expected, abs=1e-9)
    nearest = _write_like(EXAMPLE_TIF, tmp_path / "nearest.tif", reference.repeat(2, axis=1).repeat(2, axis=2))
    check = json.loads(run("evaluate", nearest, nearest, "--lr", EXAMPLE_TIF, "--json").output)
    assert check["psnr"] == "inf" and check["consistency"] == {"scale": [2, 2], "max_abs": 0.0, "rmse": 0.0}
