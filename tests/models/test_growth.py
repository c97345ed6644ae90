"""Network growth: a deeper generator that starts with the trained one's output, then trains on."""

from __future__ import annotations

import re

import pytest
import torch
from skimage import data

from srrestore.errors import ConfigError
from srrestore.models.generator import create_generator
from srrestore.models.surgery import grow_generator


def trained_tiny() -> torch.nn.Module:
    """A test-tiny x2 RGB generator with every weight non-zero (as after training)."""
    torch.manual_seed(0)
    generator = create_generator("test-tiny", scale=2)
    with torch.no_grad():
        for weight in generator.parameters():
            weight.add_(0.05 * torch.randn_like(weight))
    return generator.eval()


def astronaut_crop() -> torch.Tensor:
    """(1, 3, 24, 20) in [0, 1]."""
    return torch.from_numpy(data.astronaut()[200:224, 180:200]).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("deeper", [{"blocks_per_group": 3}, {"num_groups": 2}, {"num_groups": 3, "blocks_per_group": 2}])
def test_the_grown_generator_starts_with_the_same_output(deeper):
    smaller = trained_tiny()
    grown = create_generator("test-tiny", scale=2, **deeper).eval()
    changes = grow_generator(smaller, grown)
    assert changes == {key: [1, value] for key, value in deeper.items()}
    image = astronaut_crop()
    with torch.no_grad():
        assert torch.equal(grown(image), smaller(image))
    assert grown.receptive_field > smaller.receptive_field


def test_the_added_layers_learn():
    smaller = trained_tiny()
    grown = create_generator("test-tiny", scale=2, blocks_per_group=2).train()
    grow_generator(smaller, grown)
    image = astronaut_crop()
    added = grown.groups[0].blocks[1]
    optimizer = torch.optim.SGD(grown.parameters(), lr=0.1)
    grown(image).square().mean().backward()
    assert torch.any(added.conv2.weight.grad != 0)  # the zeroed convolution moves first...
    optimizer.step()
    optimizer.zero_grad()
    grown(image).square().mean().backward()
    assert torch.any(added.conv1.weight.grad != 0)  # ...then the branch before it learns too


@pytest.mark.parametrize("other, message", [
    ({"num_features": 12}, "(num_features 8 vs 12); only num_groups and blocks_per_group may grow"),
    ({"scale": 4}, "(scale [2, 2] vs [4, 4])"),
])
def test_anything_but_more_depth_is_refused(other, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        grow_generator(trained_tiny(), create_generator("test-tiny", **{"scale": 2, **other}))


def test_a_shallower_generator_is_refused():
    deep = create_generator("test-tiny", scale=2, num_groups=2)
    with pytest.raises(ConfigError, match="num_groups 2 vs 1"):
        grow_generator(deep, create_generator("test-tiny", scale=2))
