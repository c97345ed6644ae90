"""The generator's own operations compute their definitions, in any memory layout and strip count.

The fast forms (neighbourhood attention over strips of rows, the channel
attention's mean taken after its squeeze, box sums of shifted views, 1x1
convolutions as matrix products that change the memory layout) are checked
against plain reference forms written here from the definitions, on real photo
features, within 1e-5 in float32 (the issue's bound; measured maxima are about
3e-7, float rounding of sums taken in another order).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data
from torch.nn import functional as F

from srrestore.models import layers
from srrestore.models.layers import LocalChannelAttention, NeighbourhoodAttention, PointwiseConv, memory_format_of, strip_rows

TOLERANCE = 1e-5


def photo_features(channels: int, height: int, width: int) -> torch.Tensor:
    """``(1, channels, height, width)`` float32: a crop of the astronaut photo, its 3 colours
    mixed into ``channels`` maps by a fixed random projection (zero-mean, unit-scale values)."""
    generator = torch.Generator().manual_seed(0)
    photo = torch.from_numpy(data.astronaut()[100 : 100 + height, 150 : 150 + width].astype(np.float32) / 255)
    mixing = torch.randn(channels, 3, generator=generator)
    return torch.einsum("kc,hwc->khw", mixing, photo - 0.5)[None] * 4


def reference_attention(attention: NeighbourhoodAttention, x: torch.Tensor) -> torch.Tensor:
    """Neighbourhood attention from its definition: for each pixel, softmax over the ``window**2``
    zero-padded neighbours of ``q . k / sqrt(head_dim) + bias``, then the weighted sum of values."""
    batch, channels, height, width = x.shape
    heads, window = attention.num_heads, attention.window
    head_dim = channels // heads
    query, key, value = attention.qkv(x).chunk(3, dim=1)
    # (B, heads, head_dim, window**2, H*W): every neighbour of every pixel, zero outside the image
    neighbours = [F.unfold(t, window, padding=window // 2).view(batch, heads, head_dim, window**2, -1)
                  for t in (key, value)]
    query = query.reshape(batch, heads, head_dim, 1, height * width)
    logits = (query * neighbours[0]).sum(dim=2) / head_dim**0.5 + attention.position_bias[None, :, :, None]
    attended = (logits.softmax(dim=2)[:, :, None] * neighbours[1]).sum(dim=3)
    return attention.proj(attended.reshape(batch, channels, height, width))


@pytest.fixture
def attention() -> NeighbourhoodAttention:
    torch.manual_seed(0)
    module = NeighbourhoodAttention(8, num_heads=2, window=5).eval()
    with torch.no_grad():
        module.position_bias.normal_()
    return module


@torch.no_grad()
def test_neighbourhood_attention_computes_its_definition(attention):
    features = photo_features(8, 23, 31)
    assert torch.allclose(attention(features), reference_attention(attention, features), atol=TOLERANCE)


@torch.no_grad()
@pytest.mark.parametrize("strip_pixels", [31, 3 * 31, 1000])
def test_attention_over_strips_equals_one_pass(attention, monkeypatch, strip_pixels):
    features = photo_features(8, 23, 31)
    whole = attention(features)
    monkeypatch.setattr(layers, "STRIP_PIXELS", strip_pixels)  # 1 row, 3 rows (last strip 2), 23 rows
    assert strip_rows(23, 31) == min(23, strip_pixels // 31)
    assert torch.allclose(attention(features), whole, atol=TOLERANCE)


@torch.no_grad()
def test_attention_in_channels_last_memory_equals_row_major(attention):
    features = photo_features(8, 20, 24)
    expected = attention(features)
    actual = attention.to(memory_format=torch.channels_last)(features.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(actual, expected, atol=TOLERANCE)


def test_strip_rows_cover_the_map():
    assert strip_rows(4096, 4096) == max(1, layers.STRIP_PIXELS // 4096)
    assert strip_rows(10, 100_000) == 1
    assert strip_rows(7, 5) == 7


@torch.no_grad()
def test_channel_attention_equals_squeezing_the_local_mean():
    torch.manual_seed(0)
    block = LocalChannelAttention(16, window=5).eval()
    features = photo_features(16, 29, 33)
    mean = F.avg_pool2d(features, 5, stride=1, padding=2, count_include_pad=False)
    expected = features * torch.sigmoid(block.excite(F.relu(block.squeeze(mean))))
    assert torch.allclose(block(features), expected, atol=TOLERANCE)


def test_attention_trains_through_strips(attention, monkeypatch):
    features = photo_features(8, 12, 10).requires_grad_()
    attention(features).square().sum().backward()
    whole = features.grad.clone()
    features.grad = None
    monkeypatch.setattr(layers, "STRIP_PIXELS", 20)  # 2 rows per strip
    attention(features).square().sum().backward()
    assert torch.allclose(features.grad, whole, atol=TOLERANCE)


LAYOUTS = [torch.contiguous_format, torch.channels_last]


@torch.no_grad()
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("wanted", LAYOUTS)
@pytest.mark.parametrize("given", LAYOUTS)
def test_pointwise_equals_the_convolution_in_the_wanted_layout(batch, given, wanted):
    torch.manual_seed(0)
    conv = PointwiseConv(8, 12)
    features = torch.cat([photo_features(8, 17, 19) * (1 + index) for index in range(batch)])
    result = conv(features.contiguous(memory_format=given), wanted)
    assert memory_format_of(result) == wanted
    assert torch.allclose(result, F.conv2d(features, conv.weight, conv.bias), atol=TOLERANCE)


def test_pointwise_trains_like_the_convolution():
    torch.manual_seed(0)
    conv = PointwiseConv(8, 6)
    features = photo_features(8, 9, 11).contiguous(memory_format=torch.channels_last).requires_grad_()
    gradients = []
    for run in (lambda x: conv(x).contiguous(), lambda x: conv(x, torch.contiguous_format)):
        run(features).square().sum().backward()
        gradients.append([features.grad.clone(), conv.weight.grad.clone(), conv.bias.grad.clone()])
        features.grad = conv.weight.grad = conv.bias.grad = None
    for expected, actual in zip(*gradients):
        assert torch.allclose(actual, expected, atol=1e-4 * expected.abs().max())


def test_memory_format_of_names_the_layout():
    maps = torch.zeros(2, 4, 5, 6)
    assert memory_format_of(maps) == torch.contiguous_format
    assert memory_format_of(maps.contiguous(memory_format=torch.channels_last)) == torch.channels_last
    assert memory_format_of(maps.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)) == torch.channels_last
    assert memory_format_of(torch.zeros(2, 1, 5, 6)) == torch.contiguous_format  # both layouts at once


def test_pointwise_outputs_reach_forward_hooks(attention):
    """The engine's CPU memory probe sizes tiles from the module outputs its hooks see."""
    seen = []
    for module in (attention.qkv, attention.proj):
        module.register_forward_hook(lambda _module, _inputs, output: seen.append(tuple(output.shape)))
    attention(photo_features(8, 6, 7).contiguous(memory_format=torch.channels_last))
    assert seen == [(1, 24, 6, 7), (1, 8, 6, 7)]
