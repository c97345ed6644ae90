"""NaN, +/-inf and nodata are masks, never network inputs; masked pixels keep their input
values; valid outputs next to masks stay in the local valid range (issue 15, items 2 and 10)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage import data

from srrestore.engine import Normalization, UpscaleOptions, upscale_array, upscale_whole, valid_mask
from srrestore.engine.nodata import NEAR_MASK_RADIUS
from srrestore.sr_model import SRModel


@pytest.fixture(scope="module")
def landscape() -> np.ndarray:
    """``(1, 96, 112)`` float32 reflectance-like values from scikit-image's camera man, 27..852."""
    return (data.camera()[200:296, 180:292].astype(np.float32) * 3.25 + 27.0)[None]


def test_valid_mask_excludes_non_finite_values_whatever_the_nodata():
    values = np.array([[[1.0, np.nan, np.inf, -np.inf, 32768.0, 5.0]]], dtype=np.float32)
    assert valid_mask(values, 32768.0).tolist() == [[True, False, False, False, False, True]]
    assert valid_mask(values, None).tolist() == [[True, False, False, False, True, True]]
    assert valid_mask(values.astype(np.float64), float("nan")).tolist() == [[True, False, False, False, True, True]]
    integers = np.array([[[0, 7, 65535]]], dtype=np.uint16)
    assert valid_mask(integers, 65535.0).tolist() == [[True, True, False]]
    assert valid_mask(integers.astype(np.int16), 32768.0).all()  # a sentinel the dtype cannot hold matches nothing


def test_nan_holes_with_a_numeric_nodata_keep_every_valid_output(landscape, tiny_gray):
    """A float raster with NaN holes and nodata 32768 (as Landsat products come): was 100 % NaN."""
    image = landscape.copy()
    holes = np.random.default_rng(1).random(image.shape[1:]) < 0.47
    image[:, holes] = np.nan
    image[:, :8, :8] = 32768.0
    normalization = Normalization.from_percentiles(image, valid_mask(image, 32768.0))
    result = upscale_array(image, tiny_gray, tiny_gray.spec, normalization, UpscaleOptions(tile_size=32), 32768.0)
    valid = np.kron(valid_mask(image, 32768.0), np.ones((2, 2), bool))
    assert np.isfinite(result[:, valid]).all()
    holes[:8, :8] = False
    assert np.isnan(result[:, np.kron(holes, np.ones((2, 2), bool))]).all()  # NaN stays NaN
    assert (result[:, :16, :16] == 32768.0).all()  # nodata stays nodata


def test_one_infinite_pixel_masks_only_itself(landscape, tiny_gray):
    """One +inf pixel turned 7396 of 16384 outputs into NaN; now only its own 2x2 outputs are infinite."""
    image = landscape.copy()
    image[0, 40, 50] = np.inf
    image[0, 10, 90] = -np.inf
    normalization = Normalization.from_percentiles(image)
    result = upscale_array(image, tiny_gray, tiny_gray.spec, normalization, UpscaleOptions(tile_size=32))
    assert np.count_nonzero(~np.isfinite(result)) == 8
    assert (result[0, 80:82, 100:102] == np.inf).all() and (result[0, 20:22, 180:182] == -np.inf).all()


def test_upscale_api_masks_non_finite_values(landscape, tiny_gray):
    model = SRModel(tiny_gray, None, device="cpu")  # type: ignore[arg-type]  # upscale reads no checkpoint info
    image = landscape[0].copy()
    image[5:9, 5:9] = np.nan
    image[30, 30] = np.inf
    result = model.upscale(image)
    assert result.dtype == np.float32
    assert np.count_nonzero(~np.isfinite(result)) == 4 * 16 + 4


def _local_range(image: np.ndarray, valid: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    size = 2 * radius + 1
    low = ndimage.minimum_filter(np.where(valid, image, np.inf), size=size, mode="constant", cval=np.inf)
    high = ndimage.maximum_filter(np.where(valid, image, -np.inf), size=size, mode="constant", cval=-np.inf)
    return low, high


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_valid_outputs_next_to_masks_stay_in_the_local_valid_range(landscape, nets, dtype):
    """A sharpening network overshoots at the edge of the filled area (output -141 where the valid
    input is 27..852); each valid pixel within NEAR_MASK_RADIUS of a masked one is held to the range
    of the valid input pixels within that radius, and tiles still equal the whole image."""
    network = nets.seeded_generator("test-tiny", in_channels=1, scale=2)
    image = landscape.astype(dtype)
    rows, cols = np.mgrid[: image.shape[1], : image.shape[2]]
    masked = ((rows - 50) ** 2 + (cols - 60) ** 2 < 20**2) | (cols > 100)
    image[:, masked] = 0
    normalization = Normalization.from_percentiles(image, ~masked)
    whole = upscale_whole(image, network, network.spec, normalization, nodata=0)
    tiled = upscale_array(image, network, network.spec, normalization, UpscaleOptions(tile_size=24), nodata=0)
    # Other tile shapes sum in other orders: float32 results differ by rounding (1e-4 of the
    # value range at most), which can move an integer output across a rounding boundary (1 DN).
    difference = np.abs(tiled.astype(np.float64) - whole)
    assert difference.max() <= (1 if dtype == "uint16" else 1e-4 * 852)
    assert np.count_nonzero(difference) <= (0.005 if dtype == "uint16" else 1.0) * difference.size
    radius = min(NEAR_MASK_RADIUS, network.spec.receptive_field)
    near = ndimage.binary_dilation(masked, np.ones((2 * radius + 1,) * 2, bool)) & ~masked
    low, high = _local_range(image[0].astype(np.float64), ~masked, radius)
    grow = np.ones((2, 2))
    near_out = np.kron(near, grow).astype(bool)
    values = tiled[0].astype(np.float64)
    assert (values[near_out] >= np.kron(low, grow)[near_out]).all()
    assert (values[near_out] <= np.kron(high, grow)[near_out]).all()
    assert near_out.any() and (tiled[0][np.kron(masked, grow).astype(bool)] == 0).all()


def test_masks_are_per_band(landscape, nets, tiny_rgb):
    """A value missing in one band masks that band only: the other bands of the pixel are restored."""
    image = np.concatenate([landscape, landscape[:, ::-1], landscape * 0.5])
    image[1, 20:30, 40:60] = np.nan
    image[2, 60:64, 10:12] = -9999.0  # the nodata value, in one band only
    normalization = Normalization.fixed(0.0, 1000.0, 3)
    network = nets.NearestUpsampler(channels=3, offset=0.25)  # adds 250 to every network output
    result = upscale_array(image, network, network.spec, normalization, UpscaleOptions(tile_size=32), -9999.0)
    grow = np.ones((2, 2), bool)
    hole = np.kron(np.isnan(image[1]), grow)
    fill = np.kron(image[2] == -9999.0, grow)
    assert np.isnan(result[1][hole]).all() and (result[2][fill] == -9999.0).all()  # held, band by band
    expected = np.kron(image, np.ones((1, 2, 2))) + 250.0
    for band, masked in ((0, hole | fill), (1, fill), (2, hole)):
        np.testing.assert_allclose(result[band][masked], expected[band][masked], rtol=1e-6)  # restored
    # The same with a real network: tiles equal the whole image (1e-4 of the range: other tile
    # shapes sum in other orders in float32).
    whole = upscale_whole(image, tiny_rgb, tiny_rgb.spec, normalization, nodata=-9999.0)
    tiled = upscale_array(image, tiny_rgb, tiny_rgb.spec, normalization, UpscaleOptions(tile_size=24), -9999.0)
    np.testing.assert_array_equal(np.isnan(tiled), np.isnan(whole))
    finite = np.isfinite(whole)
    np.testing.assert_allclose(tiled[finite], whole[finite], atol=1e-4 * 1000)
