"""The consistency guard: outputs that agree with the input under the degradation model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from srrestore.engine import (
    ArrayReader,
    ArrayWriter,
    Normalization,
    UpscaleOptions,
    upscale,
    upscale_array,
    upscale_whole,
)


def area_down(image: np.ndarray, factor: int) -> np.ndarray:
    channels, height, width = image.shape
    return image.reshape(channels, height // factor, factor, width // factor, factor).mean(axis=(2, 4))


@pytest.fixture(scope="module")
def astronaut_float(astronaut) -> np.ndarray:
    return (astronaut / 255.0).astype(np.float32)


def test_area_guard_makes_the_area_downscaled_output_equal_the_input(astronaut_float, tiny_rgb):
    normalization = Normalization.fixed(0.0, 1.0, 3)
    writer = ArrayWriter(3, (160, 192), np.float32)
    report = upscale(ArrayReader(astronaut_float), writer, tiny_rgb, tiny_rgb.spec, normalization,
                     UpscaleOptions(tile_size=32, consistency="area"))
    np.testing.assert_allclose(area_down(writer.array, 2), astronaut_float, atol=2e-6, rtol=0)
    assert report.consistency_error is not None and report.consistency_error < 2e-6
    unguarded = upscale(ArrayReader(astronaut_float), ArrayWriter(3, (160, 192), np.float32), tiny_rgb,
                        tiny_rgb.spec, normalization, UpscaleOptions(tile_size=32))
    assert unguarded.consistency_error > 1e-2  # measured without the guard too


def test_area_guard_on_uint8_keeps_box_means_within_rounding(astronaut, tiny_rgb):
    result = upscale_array(astronaut, tiny_rgb, tiny_rgb.spec, Normalization.for_dtype("uint8", 3),
                           UpscaleOptions(tile_size=40, consistency="area"))
    # Each output pixel is rounded by at most 0.5 DN; clipping at 0/255 can move a mean further.
    inside = (result > 0) & (result < 255)
    blocks = area_down(inside.astype(float), 2) == 1
    error = np.abs(area_down(result.astype(float), 2) - astronaut)
    assert error[blocks].max() <= 0.5


def test_bicubic_guard_reduces_the_bicubic_residual_and_tiles_stay_exact(astronaut_float, tiny_rgb):
    normalization = Normalization.fixed(0.0, 1.0, 3)

    def bicubic_misfit(output: np.ndarray) -> float:
        down = F.interpolate(torch.from_numpy(output)[None], scale_factor=0.5, mode="bicubic", antialias=True)
        return float((down[0].numpy() - astronaut_float)[:, 8:-8, 8:-8].__abs__().max())

    options = UpscaleOptions(tile_size=24, consistency="bicubic")
    guarded = upscale_array(astronaut_float, tiny_rgb, tiny_rgb.spec, normalization, options)
    plain = upscale_array(astronaut_float, tiny_rgb, tiny_rgb.spec, normalization, UpscaleOptions(tile_size=24))
    assert bicubic_misfit(guarded) < 0.25 * bicubic_misfit(plain)
    whole = upscale_whole(astronaut_float, tiny_rgb, tiny_rgb.spec, normalization, options=options)
    np.testing.assert_allclose(guarded, whole, atol=1e-5, rtol=0)


def test_the_bicubic_guard_widens_the_halo(camera, tiny_gray):
    writer = ArrayWriter(1, (144, 180), np.uint8)
    report = upscale(ArrayReader(camera), writer, tiny_gray, tiny_gray.spec, Normalization.for_dtype("uint8", 1),
                     UpscaleOptions(tile_size=32, consistency="bicubic"))
    assert report.halo > tiny_gray.spec.receptive_field
