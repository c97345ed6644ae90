"""Nodata: skipped tiles, nearest-valid filling, masks re-imposed, sentinels that never leak (G5, G6)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from srrestore.engine import (
    ArrayReader,
    ArrayWriter,
    Normalization,
    Region,
    UpscaleOptions,
    upscale,
    upscale_array,
    upscale_whole,
)


def holes(shape: tuple[int, int]) -> np.ndarray:
    """Irregular nodata: a disc, a band along the right edge, a corner block, scattered pixels."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    mask = ((rows - 30) ** 2 + (cols - 40) ** 2 < 18**2) | (cols > shape[1] - 12) | ((rows < 10) & (cols < 25))
    mask |= np.random.default_rng(5).random(shape) < 0.02
    return mask


@pytest.fixture(scope="module")
def moon16() -> np.ndarray:
    """``(2, 64, 80)`` uint16 from scikit-image's moon, values 15000..46000: far from 0 and 65535,
    so no output is clipped to the dtype's ends (which the sentinel rule would move)."""
    moon = data.moon()[180:244, 180:260].astype(np.uint16)
    return np.stack([moon * 100 + 15000, (255 - moon) * 100 + 20000])


class CountingReader(ArrayReader):
    """Records the regions read."""

    def __init__(self, array: np.ndarray, nodata: float | None) -> None:
        super().__init__(array, nodata)
        self.reads: list[Region] = []

    def read(self, region: Region) -> np.ndarray:
        self.reads.append(region)
        return super().read(region)


def test_all_nodata_tiles_are_written_as_nodata_without_the_network(moon16, nets):
    image = moon16.copy()
    image[:, :, :32] = 0  # two columns of 16-px tiles
    network = nets.NearestUpsampler(channels=2)
    writer = ArrayWriter(2, (128, 160), np.uint16)
    report = upscale(ArrayReader(image, nodata=0), writer, network, network.spec, Normalization.for_dtype("uint16", 2),
                     UpscaleOptions(tile_size=16, batch_size=1))
    assert report.tiles == 4 * 5 and report.tiles_skipped == 4 * 2
    assert len(network.calls) == report.tiles - report.tiles_skipped
    assert (writer.array[:, :, :64] == 0).all()
    np.testing.assert_array_equal(writer.array[:, :, 64:], np.kron(image[:, :, 32:], np.ones((1, 2, 2), np.uint16)))


@pytest.mark.parametrize("tile_size", [16, 23, 48])
def test_tiles_equal_whole_image_with_nodata(moon16, tiny_gray, tile_size):
    image = moon16.copy()
    mask = holes(image.shape[1:])
    image[:, mask] = 0
    normalization = Normalization.for_dtype("uint16", 2)
    whole = upscale_whole(image, tiny_gray, tiny_gray.spec, normalization, nodata=0)
    options = UpscaleOptions(tile_size=tile_size)
    tiled = upscale_array(image, tiny_gray, tiny_gray.spec, normalization, options, nodata=0)
    difference = np.abs(tiled.astype(np.int64) - whole)
    assert difference.max() <= 1 and np.count_nonzero(difference) <= 0.005 * difference.size
    invalid = np.kron(mask, np.ones((2, 2), dtype=bool))
    assert (tiled[:, invalid] == 0).all()  # the nearest-upsampled mask is re-imposed
    assert (tiled[:, ~invalid] != 0).all()  # and no valid pixel reads as nodata


def test_the_fill_reads_more_context_when_the_nearest_valid_pixel_is_far(moon16, tiny_gray):
    image = moon16.copy()
    image[:, :, 20:] = 0
    image[:, 40, 70] = 5000  # one valid pixel far inside the nodata area
    normalization = Normalization.for_dtype("uint16", 2)
    reader = CountingReader(image, nodata=0)
    writer = ArrayWriter(2, (128, 160), np.uint16)
    upscale(reader, writer, tiny_gray, tiny_gray.spec, normalization, UpscaleOptions(tile_size=16))
    window = 16 + 2 * tiny_gray.spec.receptive_field
    assert max(region.size[1] for region in reader.reads) > window
    whole = upscale_whole(image, tiny_gray, tiny_gray.spec, normalization, nodata=0)
    assert np.abs(writer.array.astype(np.int64) - whole).max() <= 1


def test_changing_the_sentinel_leaves_valid_outputs_bit_identical(moon16, nets):
    tiny_gray = nets.seeded_generator("test-tiny", residual_gain=0.1, in_channels=1, scale=2)
    mask = holes(moon16.shape[1:])
    normalization = Normalization.for_dtype("uint16", 2)
    outputs = []
    for sentinel in (0, 65535):
        image = moon16.copy()
        image[:, mask] = sentinel
        outputs.append(upscale_array(image, tiny_gray, tiny_gray.spec, normalization, UpscaleOptions(tile_size=24),
                                     nodata=sentinel))
    valid = ~np.kron(mask, np.ones((2, 2), dtype=bool))
    np.testing.assert_array_equal(outputs[0][:, valid], outputs[1][:, valid])
    assert (outputs[0][:, ~valid] == 0).all() and (outputs[1][:, ~valid] == 65535).all()


@pytest.mark.parametrize(("sentinel", "offset", "expected"), [(0, -20, 1), (255, 20, 254), (120, 0, None)])
def test_valid_outputs_never_equal_the_sentinel(camera, nets, sentinel, offset, expected):
    network = nets.NearestUpsampler(channels=1, offset=offset / 255)
    image = camera.copy()
    image[:, :5, :5] = sentinel
    result = upscale_array(image, network, network.spec, Normalization.for_dtype("uint8", 1),
                           UpscaleOptions(tile_size=32), nodata=sentinel)
    invalid = np.kron(image[0] == sentinel, np.ones((2, 2), dtype=bool))
    assert (result[0][invalid] == sentinel).all()
    assert not (result[0][~invalid] == sentinel).any()
    if expected is not None:  # clipped onto the sentinel, then moved one step inside the range
        assert (result[0][~invalid] == expected).any()


def test_nan_nodata_float_images(tiny_gray):
    image = (data.camera()[300:350, 100:170] / 255.0).astype(np.float32)[None]
    mask = holes(image.shape[1:])
    image[:, mask] = np.nan
    normalization = Normalization.fixed(0.0, 1.0, 1)
    tiled = upscale_array(image, tiny_gray, tiny_gray.spec, normalization, UpscaleOptions(tile_size=20),
                          nodata=float("nan"))
    whole = upscale_whole(image, tiny_gray, tiny_gray.spec, normalization, nodata=float("nan"))
    invalid = np.kron(mask, np.ones((2, 2), dtype=bool))
    assert np.isnan(tiled[:, invalid]).all() and np.isfinite(tiled[:, ~invalid]).all()
    np.testing.assert_allclose(tiled[:, ~invalid], whole[:, ~invalid], atol=1e-5, rtol=0)
