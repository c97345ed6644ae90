"""Degradation: MATLAB-compatible bicubic (checked by hand and on Set5/Set14), shapes, area, blur, noise, JPEG."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from srrestore.errors import ConfigError, UnsupportedInputError
from srrestore.metrics import sr_metrics
from srrestore.training.degradation import Degradation, downscale, jpeg_compress, upscale_bicubic


def _matlab_imresize_1d(values: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB's documented imresize contributions (antialiased cubic, mirrored indices), in 1-D.

    u = x / scale + 0.5 (1 - 1 / scale); kernel scale * cubic(scale * d); width 4 / scale;
    indices outside 1..N mirror as [1..N, N..1]; weights normalised to sum 1.
    """
    length = len(values)
    width = 4 / scale

    def cubic(x):
        x = np.abs(x)
        return np.where(x <= 1, 1.5 * x**3 - 2.5 * x**2 + 1, np.where(x <= 2, -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2, 0.0))

    out = []
    for x in range(1, int(length * scale) + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        indices = np.floor(u - width / 2) + np.arange(int(np.ceil(width)) + 2)
        weights = scale * cubic(scale * (u - indices))
        weights /= weights.sum()
        mirror = np.concatenate([np.arange(1, length + 1), np.arange(length, 0, -1)])
        source = mirror[np.mod(indices.astype(int) - 1, 2 * length)] - 1
        out.append(np.dot(weights, values[source]))
    return np.asarray(out)


def test_bicubic_matches_matlab_on_a_ramp():
    ramp = np.arange(16.0).reshape(1, 4, 4)
    # Worked by hand from MATLAB's formula: the first output of a 0,1,2,3 row at scale 1/2 is 0.4609375.
    expected = np.array([[2.3046875, 4.3828125], [10.6171875, 12.6953125]])
    np.testing.assert_array_equal(downscale(ramp, 2)[0], expected)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_matches_matlab_formula_on_a_real_row(scale):
    row = data.camera()[200, 40 : 40 + 12 * scale].astype(np.float64)
    image = np.tile(row, (scale, 1))[None]  # constant along rows: 2-D resize reduces to the 1-D formula
    np.testing.assert_allclose(downscale(image, scale)[0, 0], _matlab_imresize_1d(row, 1 / scale), atol=1e-9)


@pytest.mark.parametrize("scale, shape", [(2, (3, 24, 30)), (3, (3, 16, 20)), (4, (3, 12, 15)), ((1, 4), (3, 48, 15)),
                                          ((8, 2), (3, 6, 30))])
def test_shapes_for_every_scale(scale, shape):
    image = np.moveaxis(data.astronaut()[:48, :60], -1, 0) / 255.0
    low = downscale(image, scale)
    assert low.shape == shape
    assert upscale_bicubic(low, scale).shape == image.shape
    assert Degradation(scale=scale).apply(image).shape == shape


def test_anisotropic_scale_leaves_the_other_axis_alone():
    image = data.camera()[:32, :64][None] / 255.0
    columns_only = downscale(image, (1, 4))
    for row in (0, 17, 31):
        np.testing.assert_allclose(columns_only[0, row], _matlab_imresize_1d(image[0, row], 1 / 4), atol=1e-9)
    rows_only = downscale(image.transpose(0, 2, 1), (4, 1))
    np.testing.assert_allclose(rows_only, columns_only.transpose(0, 2, 1), atol=1e-12)


def test_area_is_the_block_mean():
    image = data.camera()[:40, :40][None].astype(np.float64)
    expected = image.reshape(1, 10, 4, 10, 4).mean(axis=(2, 4))
    np.testing.assert_allclose(downscale(image, 4, "area"), expected)
    with pytest.raises(ConfigError, match="did you mean 'area'"):
        downscale(image, 4, "aera")
    with pytest.raises(UnsupportedInputError, match="not a multiple"):
        downscale(image[:, :39], 4)


def test_standard_protocol_on_set5_and_set14_reproduces_published_bicubic(shared_data):
    import imageio.v3 as iio

    expected = {"Set5": (28.43, 0.8113), "Set14": (26.09, 0.7050)}
    for name, (want_psnr, want_ssim) in expected.items():
        scores = []
        for path in sorted((shared_data / "sr" / "val" / name).glob("*.png")):
            pixels = iio.imread(path)
            pixels = pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels[..., :3], -1, 0)
            pixels = np.repeat(pixels, 3, axis=0) if pixels.shape[0] == 1 else pixels
            hr = pixels[:, : pixels.shape[1] // 4 * 4, : pixels.shape[2] // 4 * 4] / 255.0
            lr = Degradation(scale=4).apply(hr)  # rounded to 8 bit like MATLAB on uint8
            restored = np.rint(np.clip(upscale_bicubic(lr, 4), 0, 1) * 255) / 255
            scores.append(sr_metrics(hr, restored, 1.0, shave=4))
        assert np.mean([s["psnr"] for s in scores]) == pytest.approx(want_psnr, abs=0.01), name
        assert np.mean([s["ssim"] for s in scores]) == pytest.approx(want_ssim, abs=0.0005), name


def test_random_stages_change_the_input_reproducibly():
    image = np.moveaxis(data.coffee()[:64, :64], -1, 0) / 255.0
    clean = Degradation(scale=2).apply(image)
    noisy = Degradation(scale=2, blur_sigma=(0.5, 1.5), noise="gaussian", noise_sigma=(0.02, 0.05), jpeg_quality=(40, 60))
    assert noisy.is_random and not Degradation(scale=2).is_random
    first = noisy.apply(image, np.random.default_rng(5))
    np.testing.assert_array_equal(first, noisy.apply(image, np.random.default_rng(5)))
    assert not np.array_equal(first, noisy.apply(image, np.random.default_rng(6)))
    assert 0.005 < np.abs(first - clean).mean() < 0.1
    poisson = Degradation(scale=2, noise="poisson", poisson_peak=50).apply(image, np.random.default_rng(0))
    assert 0.005 < np.abs(poisson - clean).mean() < 0.1
    blurred = Degradation(scale=2, blur_sigma=2.0).apply(image)
    assert np.abs(np.diff(blurred, axis=-1)).mean() < np.abs(np.diff(clean, axis=-1)).mean()


def test_quantize_rounds_to_the_source_grid():
    image = np.moveaxis(data.astronaut()[:32, :32], -1, 0) / 255.0
    eight_bit = Degradation(scale=4).apply(image, levels=255)
    np.testing.assert_allclose(eight_bit * 255, np.rint(eight_bit * 255), atol=1e-4)
    raw = Degradation(scale=4, quantize=False).apply(image, levels=255)
    assert not np.allclose(raw * 255, np.rint(raw * 255), atol=1e-4)


def test_jpeg_round_trip_on_one_and_three_channels():
    rgb = np.moveaxis(data.astronaut()[:64, :64], -1, 0) / 255.0
    grey = data.camera()[:64, :64][None] / 255.0
    for image in (rgb, grey):
        decoded = jpeg_compress(image, 30)
        assert decoded.shape == image.shape
        assert 0 < np.abs(decoded - image).mean() < 0.05
        assert np.abs(jpeg_compress(image, 95) - image).mean() < np.abs(decoded - image).mean()
    with pytest.raises(UnsupportedInputError, match="1 or 3 channels"):
        jpeg_compress(np.zeros((4, 16, 16)), 50)


def test_config_errors_echo_the_value():
    with pytest.raises(ConfigError, match="did you mean 'gaussian'"):
        Degradation(noise="gausian")
    with pytest.raises(ConfigError, match=r"jpeg_quality.*\[0, 100\]"):
        Degradation(jpeg_quality=[0, 100])
    with pytest.raises(ConfigError, match="did you mean 'blur_sigma'"):
        Degradation.from_dict({"blur_sigm": 1.0})
    assert Degradation.from_dict(Degradation(scale=(1, 4), blur_sigma=[0.2, 1]).to_dict()) == Degradation(
        scale=(1, 4), blur_sigma=(0.2, 1.0))
