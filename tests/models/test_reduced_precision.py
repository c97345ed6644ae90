"""Reduced precision (bf16 autocast on the CPU) computes what fp32 computes, equally everywhere in a window.

bf16 holds integers exactly only up to 256 and keeps 8 significant bits: pixel
indices, window sums, softmax inputs and the attention's weighted sums must run
in float32 (see :mod:`srrestore.models.layers`). These tests run the shipped
networks on strips of a real photograph 300-1100 px wide, so every window
crosses index 256 (and 1024), and compare with fp32.

Tolerance, in normalised units (1.0 = the data's full range, 255 DN for uint8):
:data:`BF16_TOLERANCE` for whole networks (measured maxima on these strips:
0.004 grey x2, 0.006 RGB x4; tiled bf16 equalled whole-image bf16 exactly);
one bf16 step for a single float32 computation rounded to bf16.
Uniformity: the error beyond column 256 is at most twice the error before it,
plus one bf16 step at 1.0 (:data:`BF16_STEP`).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from srrestore import load_model
from srrestore.engine import Normalization, UpscaleOptions, upscale_array
from srrestore.engine.reference import upscale_whole
from srrestore.models.layers import LocalChannelAttention, NeighbourhoodAttention, _window_counts, local_mean

BF16_TOLERANCE = 0.02  # normalised units: about 5 DN of uint8
BF16_STEP = 2.0**-8  # spacing of bf16 values in [1, 2): the rounding of one output value near 1.0
BF16_EXACT = 256  # integers above this are not all bf16 values


def photo_strip(width: int, height: int = 16, channels: int = 1) -> np.ndarray:
    """``(C, height, width)`` float32 in [0, 1]: rows 200.. of scikit-image's astronaut,
    mirrored side by side until ``width`` is reached (no seam: each copy is reflected)."""
    image = data.astronaut().astype(np.float32) / 255
    copies = [image if index % 2 == 0 else image[:, ::-1] for index in range(-(-width // image.shape[1]))]
    strip = np.concatenate(copies, axis=1)[200 : 200 + height, :width]
    if channels == 1:
        strip = strip.mean(axis=2, keepdims=True)
    return np.ascontiguousarray(strip.transpose(2, 0, 1))


def column_errors(expected: np.ndarray, actual: np.ndarray, scale: int) -> np.ndarray:
    """Max absolute difference per *input* column: ``(C, H*s, W*s)`` pairs -> ``(W,)``."""
    per_output_column = np.abs(expected.astype(np.float64) - actual).max(axis=(0, 1))
    return per_output_column.reshape(-1, scale).max(axis=1)


def assert_uniform(errors: np.ndarray) -> None:
    """The error past index 256 (where bf16 stops counting exactly) is not larger than before it."""
    before, after = errors[:BF16_EXACT].max(), errors[BF16_EXACT:].max()
    assert after <= 2 * before + BF16_STEP, (before, after)


def test_window_counts_are_exact_past_bf16_integers():
    counts = _window_counts(1100, 2, torch.device("cpu"))
    assert counts.dtype == torch.float32
    assert counts[:2].tolist() == [3.0, 4.0] and counts[-2:].tolist() == [4.0, 3.0]
    assert torch.all(counts[2:-2] == 5.0)


def test_local_mean_of_bf16_features_is_the_fp32_mean_rounded_once():
    """Only the final rounding to bf16 remains: at most half a bf16 step of the mean (values <= 1)."""
    strip = torch.from_numpy(photo_strip(1100, 16))[None].bfloat16()
    expected = local_mean(strip.float(), 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        actual = local_mean(strip, 5)
    assert actual.dtype == torch.bfloat16
    assert (actual.float() - expected).abs().max().item() <= BF16_STEP / 2


def test_sharp_channel_attention_gates_agree_on_both_sides_of_index_256():
    """Gates that switch within +-0.1 of a local mean of 0.5 (the shipped models tolerate wrong
    means, a sharper model would not): bf16 gates equal fp32 gates everywhere in the window."""
    block = LocalChannelAttention(8, window=5).eval()
    with torch.no_grad():
        block.squeeze.weight.fill_(1 / 8)  # every hidden unit: the mean over channels of the local mean
        block.squeeze.bias.zero_()
        block.excite.weight.fill_(10.0 / 4)  # gate = sigmoid(10 * (local mean - 0.5)), slope 2.5
        block.excite.bias.fill_(-5.0)
    # In a network the block's input is a bf16 convolution output.
    features = torch.from_numpy(photo_strip(700, 16, 3)).repeat(1, 3, 1, 1)[:, :8].bfloat16()
    with torch.no_grad():
        expected = block(features.float())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            actual = block(features).float()
    errors = (actual - expected).abs().amax(dim=(0, 1, 2)).numpy()
    assert errors.max() <= BF16_TOLERANCE
    assert_uniform(errors)


def test_neighbourhood_attention_averages_in_float32_under_bf16_autocast():
    """Attention with zero queries and keys weighs the 25 neighbours equally: with identity
    value and output projections it is the 5 x 5 box mean of its input. Under bf16 autocast
    only the output's rounding may remain (one bf16 step at 1.0); summing the 25 weighted
    values in bf16 was 4.6 steps off."""
    attention = NeighbourhoodAttention(8, num_heads=2, window=5).eval()
    with torch.no_grad():
        for conv in (attention.qkv, attention.proj):
            conv.weight.zero_()
            conv.bias.zero_()
        attention.qkv.weight[16:24, :, 0, 0] = torch.eye(8)  # value = input; query = key = 0
        attention.proj.weight[:, :, 0, 0] = torch.eye(8)
    features = torch.from_numpy(photo_strip(300, 16, 3)).repeat(1, 3, 1, 1)[:, :8].bfloat16()
    with torch.no_grad():
        expected = attention(features.float())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            actual = attention(features)
    inside = (..., slice(2, -2), slice(2, -2))
    assert torch.allclose(expected[inside], local_mean(features.float(), 5)[inside], atol=1e-6)
    assert actual.dtype == torch.bfloat16
    assert (actual.float() - expected).abs().max().item() <= BF16_STEP


@pytest.mark.parametrize(
    ("scale", "channels", "width", "tile_size"),
    [(4, 3, 300, None), (2, 1, 700, None), (2, 1, 1100, 512)],
    ids=["rgb-x4-300px", "grey-x2-700px", "grey-x2-1100px-tiled"],
)
def test_builtin_networks_in_bf16_match_fp32_across_the_window(scale, channels, width, tile_size):
    """Whole-image bf16 vs fp32 on one window ``width`` px wide; tiled bf16 vs whole-image bf16."""
    model = load_model("default", scale, channels, device="cpu")
    strip = photo_strip(width, channels=channels)
    identity = Normalization.fixed(0.0, 1.0, channels)  # stored float32 values are the normalised values

    def whole(precision: str) -> np.ndarray:
        return upscale_whole(strip, model.network, model.spec, identity,
                             options=UpscaleOptions(device="cpu", precision=precision))

    fp32, bf16 = whole("fp32"), whole("bf16")
    errors = column_errors(fp32, bf16, scale)
    assert errors.max() <= BF16_TOLERANCE, errors.max()
    assert_uniform(errors)
    if width > 1024:
        assert errors[1024:].max() <= 2 * errors[:BF16_EXACT].max() + BF16_STEP
    if tile_size is not None:
        tiled = upscale_array(strip, model.network, model.spec, identity,
                              UpscaleOptions(tile_size=tile_size, batch_size=1, device="cpu", precision="bf16"))
        assert np.abs(tiled.astype(np.float64) - bf16).max() <= BF16_TOLERANCE
