"""`SRModel.upscale`: which array layouts it takes, which it refuses, and ``channels_last``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srrestore.errors import UnsupportedInputError
from srrestore.models.checkpoint import CheckpointInfo
from srrestore.models.generator import create_generator
from srrestore.sr_model import SRModel


def tiny_model(channels: int) -> SRModel:
    """A seeded x2 test-tiny model taking ``channels`` channels, on the CPU."""
    torch.manual_seed(0)
    network = create_generator("test-tiny", in_channels=channels, scale=2)
    return SRModel(network, CheckpointInfo(network.config, "psnr"), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def rgb_model() -> SRModel:
    return tiny_model(3)


@pytest.fixture(scope="module")
def gray_model() -> SRModel:
    return tiny_model(1)


def image(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("shape", [(0, 0), (0, 12), (12, 0), (3, 0, 12), (0, 12, 12), (12, 0, 3)])
def test_empty_arrays_are_refused_in_one_clear_error(gray_model, shape):
    channels_last = len(shape) == 3 and shape[-1] == 3
    with pytest.raises(UnsupportedInputError, match=r"is empty: there is nothing to upscale"):
        gray_model.upscale(np.zeros(shape, np.uint8), channels_last=channels_last)


def test_two_dimensional_arrays_are_height_by_width(gray_model):
    assert gray_model.upscale(image((10, 14))).shape == (20, 28)


@pytest.mark.parametrize(("channels", "shape"), [
    (3, (16, 12, 3)),   # an RGB image as PIL or imageio give it
    (3, (16, 12, 4)),   # RGBA
    (1, (16, 12, 3)),   # a 1-channel model takes any band count, but 16 bands of 12x3 pixels is not plausible
    (1, (5, 12, 4)),
    (1, (16, 12, 1)),   # a grey image with a trailing channel axis
])
def test_arrays_that_look_channels_last_are_refused_with_how_to_pass_them(rgb_model, gray_model, channels, shape):
    model = rgb_model if channels == 3 else gray_model
    how = r"looks channels-last \(H, W, C\); pass channels_last=True or array\.transpose\(2, 0, 1\)"
    with pytest.raises(UnsupportedInputError, match=how):
        model.upscale(image(shape))


@pytest.mark.parametrize(("channels", "shape"), [
    (3, (3, 16, 4)),   # the model's channel count first: channels-first, whatever the last axis
    (1, (4, 16, 3)),   # at most 4 bands for a 1-channel model: channels-first
    (1, (20, 16, 5)),  # last axis not 1, 3 or 4: channels-first
])
def test_plausible_channels_first_arrays_are_taken_as_such(rgb_model, gray_model, channels, shape):
    model = rgb_model if channels == 3 else gray_model
    assert model.upscale(image(shape)).shape == (shape[0], 2 * shape[1], 2 * shape[2])


def test_channels_last_gives_the_channels_first_result_transposed(rgb_model):
    hwc = image((18, 22, 3))
    out = rgb_model.upscale(hwc, channels_last=True)
    assert out.shape == (36, 44, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    chw = rgb_model.upscale(np.ascontiguousarray(hwc.transpose(2, 0, 1)))
    # Exact: the same network, tiles and thread count in this process see the same values.
    np.testing.assert_array_equal(out, chw.transpose(1, 2, 0))


def test_channels_last_needs_three_dimensions(gray_model):
    with pytest.raises(UnsupportedInputError, match=r"channels_last=True expects an \(H, W, C\) array"):
        gray_model.upscale(image((12, 12)), channels_last=True)


def test_a_channel_count_the_model_does_not_take_is_refused(rgb_model):
    with pytest.raises(UnsupportedInputError, match="takes 3 channels, the data has 2"):
        rgb_model.upscale(image((16, 12, 2)), channels_last=True)
