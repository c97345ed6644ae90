"""PSNR/SSIM against scikit-image, the BT.601 Y channel, masks and border shaving."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from srrestore.errors import UnsupportedInputError
from srrestore.metrics import detail_ratio, gaussian_filter, psnr, rgb_to_y, shave_border, sr_metrics, ssim


@pytest.fixture(scope="module")
def pair():
    """Astronaut crop ``(3, 96, 112)`` in [0, 255] and a noisy, blurred version of it."""
    reference = np.moveaxis(data.astronaut()[100:196, 150:262], -1, 0).astype(np.float64)
    noise = np.random.default_rng(0).normal(0, 8, reference.shape)
    restored = np.clip(ndimage.uniform_filter(reference, (1, 3, 3)) + noise, 0, 255)
    return reference, restored


def test_psnr_matches_skimage(pair):
    reference, restored = pair
    expected = peak_signal_noise_ratio(reference, restored, data_range=255)
    assert psnr(reference, restored, 255) == pytest.approx(expected, abs=1e-10)
    assert psnr(reference, reference, 255) == np.inf


def test_ssim_matches_skimage_gaussian_population_covariance(pair):
    reference, restored = pair
    expected = structural_similarity(reference, restored, data_range=255, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, channel_axis=0)
    assert ssim(reference, restored, 255) == pytest.approx(expected, abs=1e-10)
    grey = structural_similarity(reference[1], restored[1], data_range=255, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)
    assert ssim(reference[1], restored[1], 255) == pytest.approx(grey, abs=1e-10)


def test_gaussian_filter_matches_scipy_reflect(pair):
    reference, _ = pair
    for sigma, truncate in ((1.5, 3.5), (0.7, 4.0), (3.0, 3.0)):
        expected = ndimage.gaussian_filter(reference, (0, sigma, sigma), mode="reflect", truncate=truncate)
        np.testing.assert_allclose(gaussian_filter(reference, sigma, truncate), expected, atol=1e-9)


def test_rgb_to_y_is_bt601_studio_swing():
    white, black = np.ones((3, 1, 1)), np.zeros((3, 1, 1))
    assert rgb_to_y(white * 255, 255)[0, 0] == pytest.approx(235.0)
    assert rgb_to_y(black, 255)[0, 0] == pytest.approx(16.0)
    pure_green = np.zeros((3, 1, 1))
    pure_green[1] = 1.0
    assert rgb_to_y(pure_green)[0, 0] == pytest.approx((16 + 128.553) / 255)
    with pytest.raises(UnsupportedInputError):
        rgb_to_y(np.zeros((4, 2, 2)))


def test_shave_drops_borders_and_changes_the_score(pair):
    reference, restored = pair
    shaved = psnr(reference, restored, 255, shave=4)
    assert shaved == pytest.approx(psnr(reference[:, 4:-4, 4:-4], restored[:, 4:-4, 4:-4], 255))
    assert shaved != psnr(reference, restored, 255)
    assert shave_border(reference, (1, 4)).shape == (3, 94, 104)
    with pytest.raises(UnsupportedInputError, match="cannot shave"):
        psnr(reference, restored, 255, shave=60)


def test_masked_metrics_ignore_invalid_pixels(pair):
    reference, restored = pair
    mask = np.zeros(reference.shape[1:], dtype=bool)
    mask[:, :60] = True
    spoiled = restored.copy()
    spoiled[:, :, 60:] = 0  # "nodata" where the mask is False
    assert psnr(reference, spoiled, 255, mask=mask) == pytest.approx(psnr(reference[:, :, :60], restored[:, :, :60], 255))
    assert psnr(reference, spoiled, 255) < psnr(reference, spoiled, 255, mask=mask)
    full = np.ones(reference.shape[1:], dtype=bool)
    assert ssim(reference, restored, 255, mask=full) == pytest.approx(ssim(reference, restored, 255), abs=1e-12)
    assert ssim(reference, spoiled, 255, mask=mask) > ssim(reference, spoiled, 255)
    with pytest.raises(UnsupportedInputError, match="no valid pixel"):
        psnr(reference, restored, 255, mask=np.zeros_like(mask))


def test_sr_metrics_uses_y_for_rgb_only(pair):
    reference, restored = pair
    scores = sr_metrics(reference, restored, 255, shave=2)
    assert scores["psnr"] == pytest.approx(psnr(rgb_to_y(reference, 255), rgb_to_y(restored, 255), 255, shave=2))
    all_channels = sr_metrics(reference, restored, 255, shave=2, y_channel=False)
    assert all_channels["psnr"] == pytest.approx(psnr(reference, restored, 255, shave=2))
    with pytest.raises(UnsupportedInputError, match="differ in shape"):
        sr_metrics(reference, restored[:, :-1], 255)


def test_detail_ratio_ranks_blurred_original_and_sharpened_photos():
    photo = data.camera().astype(np.float64)
    blurred = ndimage.gaussian_filter(photo, 1.5)
    sharpened = photo + 1.0 * (photo - ndimage.gaussian_filter(photo, 1.0))
    assert detail_ratio(photo, photo, shave=4) == pytest.approx(1.0)
    assert detail_ratio(photo, blurred, shave=4) < 0.2
    assert detail_ratio(photo, sharpened, shave=4) > 1.5
    sky = np.zeros(photo.shape, dtype=bool)
    sky[:150] = True  # the smooth sky: blurring it loses less than blurring the whole photo
    assert detail_ratio(photo, blurred, mask=sky) > detail_ratio(photo, blurred)
    with pytest.raises(UnsupportedInputError, match="flat"):
        detail_ratio(np.zeros((8, 8)), photo[:8, :8])
