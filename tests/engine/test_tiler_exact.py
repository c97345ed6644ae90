"""Tiled inference equals whole-image inference with the real generator, on real images."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from skimage import data

from srrestore.engine import Normalization, UpscaleOptions, upscale_array, upscale_whole


def assert_uint_close(tiled: np.ndarray, whole: np.ndarray, share: float = 1e-4) -> None:
    """Equal, but for 1 DN on the few pixels where float32 rounding (~1e-7) crosses a .5 boundary.

    ``share``: fraction of pixels allowed to differ (uint16 steps are 256x finer than uint8's).
    """
    difference = np.abs(tiled.astype(np.int64) - whole.astype(np.int64))
    assert difference.max() <= 1
    assert np.count_nonzero(difference) <= max(2, share * difference.size)


@pytest.mark.parametrize("tile_size", [16, 37, 64, None])
def test_test_tiny_rgb_tiles_equal_whole_image(astronaut, tiny_rgb, tile_size):
    normalization = Normalization.for_dtype("uint8", 3)
    whole = upscale_whole(astronaut, tiny_rgb, tiny_rgb.spec, normalization)
    tiled = upscale_array(astronaut, tiny_rgb, tiny_rgb.spec, normalization,
                          UpscaleOptions(tile_size=tile_size, batch_size=2))
    assert tiled.shape == (3, 160, 192)
    assert_uint_close(tiled, whole)


def test_srgan_float_tiles_equal_whole_image_within_float_rounding(camera, nets):
    network = nets.seeded_generator("srgan", in_channels=1, scale=(2, 3), num_features=16, feedback_steps=1)
    image = (camera / 255.0).astype(np.float32)
    normalization = Normalization.fixed(0.0, 1.0, 1)
    whole = upscale_whole(image, network, network.spec, normalization)
    for tile_size in (16, 37):
        tiled = upscale_array(image, network, network.spec, normalization, UpscaleOptions(tile_size=tile_size))
        np.testing.assert_allclose(tiled, whole, atol=1e-5, rtol=0)
    # The receptive field is real: a halo below it changes the output.
    assert network.spec.receptive_field > 2


def test_uint16_tiles_equal_whole_image(tiny_gray):
    image = (data.moon()[200:264, 200:270].astype(np.uint16) * 250)[None]
    normalization = Normalization.for_dtype("uint16", 1)
    whole = upscale_whole(image, tiny_gray, tiny_gray.spec, normalization)
    tiled = upscale_array(image, tiny_gray, tiny_gray.spec, normalization, UpscaleOptions(tile_size=20))
    assert_uint_close(tiled, whole, share=0.005)


def test_volume_equals_per_slice_whole_inference(tiny_gray):
    camera = data.camera()
    volume = np.stack([camera[100 + 7 * k : 140 + 7 * k, 180:226] for k in range(4)])[None]  # (1, 4, 40, 46)
    normalization = Normalization.for_dtype("uint8", 1)
    tiled = upscale_array(volume, tiny_gray, tiny_gray.spec, normalization, UpscaleOptions(tile_size=24, batch_size=3))
    assert tiled.shape == (1, 4, 80, 92)
    for k in range(4):
        whole = upscale_whole(volume[:, k], tiny_gray, tiny_gray.spec, normalization)
        assert_uint_close(tiled[:, k], whole)
    assert_uint_close(tiled, upscale_whole(volume, tiny_gray, tiny_gray.spec, normalization))


def test_through_plane_volume_tiles_equal_whole(nets):
    network = nets.seeded_generator("test-tiny", in_channels=1, scale=(3, 1))
    camera = data.camera()
    volume = np.stack([camera[150 + d : 175 + d, 200:230] for d in range(30)])[None]  # (1, 30, 25, 30)
    normalization = Normalization.for_dtype("uint8", 1)
    options = UpscaleOptions(tile_size=16, plane_axes=(0, 2))
    tiled = upscale_array(volume, network, network.spec, normalization, options)
    assert tiled.shape == (1, 90, 25, 30)
    assert_uint_close(tiled, upscale_whole(volume, network, network.spec, normalization, options=options))


def test_a_spec_understating_the_receptive_field_breaks_exactness(astronaut, tiny_rgb):
    """Why the halo must cover the receptive field: with 8 pixels less, tile seams appear."""
    image = (astronaut / 255.0).astype(np.float32)
    normalization = Normalization.fixed(0.0, 1.0, 3)
    understated = replace(tiny_rgb.spec, receptive_field=tiny_rgb.spec.receptive_field - 8)
    whole = upscale_whole(image, tiny_rgb, understated, normalization)
    tiled = upscale_array(image, tiny_rgb, understated, normalization, UpscaleOptions(tile_size=16))
    assert np.abs(tiled - whole).max() > 1e-4
