"""PatchDiscriminator: shapes, spectral normalisation, gradients, receptive field, config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data
from torch import nn
from torch.nn.utils import parametrize

from srrestore.errors import ConfigError, UnsupportedInputError
from srrestore.models.discriminator import (
    DISCRIMINATOR_CONFIGS,
    DiscriminatorConfig,
    PatchDiscriminator,
    create_discriminator,
)


def real_bands(bands: int, height: int, width: int) -> torch.Tensor:
    """``(1, bands, height, width)`` in [0, 1]: astronaut's RGB bands then camera, cycled."""
    stack = np.concatenate([data.astronaut(), data.camera()[..., None]], axis=-1)[:height, :width]
    chosen = stack[..., [band % stack.shape[-1] for band in range(bands)]]
    return torch.from_numpy(chosen.astype(np.float32) / 255).permute(2, 0, 1)[None]


@pytest.mark.parametrize("channels", [1, 3, 6, 16])
@pytest.mark.parametrize("size", [(32, 32), (48, 40), (33, 35)])
def test_logit_map_and_feature_shapes(channels, size):
    torch.manual_seed(0)
    discriminator = create_discriminator("test-tiny", in_channels=channels)
    images = real_bands(channels, *size).repeat(2, 1, 1, 1)
    logits, features = discriminator.forward_with_features(images)
    height, width = size
    assert logits.shape == (2, 1, height // 4, width // 4)
    assert [tuple(f.shape) for f in features] == [
        (2, 8, height, width),
        (2, 16, height // 2, width // 2),
        (2, 32, height // 4, width // 4),
    ]
    assert torch.isfinite(logits).all()
    assert torch.equal(discriminator.eval()(images), discriminator.forward_with_features(images)[0])


def test_default_configuration_downsamples_by_eight():
    discriminator = create_discriminator(in_channels=3)
    assert discriminator.config == DiscriminatorConfig(in_channels=3, num_features=64, num_layers=3)
    with torch.no_grad():
        assert discriminator(real_bands(3, 96, 64)).shape == (1, 1, 12, 8)
    assert discriminator.receptive_field == 68


def test_minimum_input_size_is_two_to_the_num_layers():
    discriminator = create_discriminator("test-tiny", in_channels=1)
    assert discriminator.min_size == 4
    assert discriminator(real_bands(1, 4, 4)).shape == (1, 1, 1, 1)
    with pytest.raises(UnsupportedInputError, match=r"H, W >= 4, got \(1, 1, 3, 8\)"):
        discriminator(real_bands(1, 3, 8))
    with pytest.raises(UnsupportedInputError, match=r"\(B, 1, H, W\)"):
        discriminator(real_bands(3, 8, 8))


def test_every_convolution_is_spectrally_normalised():
    torch.manual_seed(0)
    discriminator = create_discriminator("test-tiny", in_channels=3)
    convolutions = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert len(convolutions) == 1 + 2 * 2 + 1
    assert all(parametrize.is_parametrized(conv, "weight") for conv in convolutions)
    images = real_bands(3, 32, 32)
    for _ in range(30):  # each training-mode pass runs one power iteration
        discriminator(images)
    discriminator.eval()
    for conv in convolutions:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.05)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    discriminator = create_discriminator("test-tiny", in_channels=4)
    logits, features = discriminator.forward_with_features(real_bands(4, 24, 24))
    (logits.mean() + sum(f.square().mean() for f in features)).backward()
    parameters = dict(discriminator.named_parameters())
    assert len(parameters) == 2 * 6  # weight (original) and bias of six convolutions
    missing = [name for name, p in parameters.items() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_receptive_field_is_the_exact_patch_size():
    """The input rows and columns a central logit depends on span exactly ``receptive_field``."""
    torch.manual_seed(0)
    discriminator = create_discriminator("test-tiny", in_channels=1).double().eval()
    field = discriminator.receptive_field
    assert field == 32
    images = real_bands(1, 96, 96).double().requires_grad_(True)
    logits = discriminator(images)
    logits[0, 0, logits.shape[2] // 2, logits.shape[3] // 2].backward()
    rows = torch.nonzero(images.grad[0, 0].abs().sum(dim=1)).flatten()
    columns = torch.nonzero(images.grad[0, 0].abs().sum(dim=0)).flatten()
    assert int(rows[-1] - rows[0]) + 1 == field
    assert int(columns[-1] - columns[0]) + 1 == field


def test_config_round_trip_rebuilds_the_same_architecture():
    discriminator = create_discriminator("patch", in_channels=2, num_features=16, num_layers=4)
    saved = discriminator.config.to_dict()
    assert saved == {"in_channels": 2, "num_features": 16, "num_layers": 4}
    rebuilt = PatchDiscriminator.from_config(DiscriminatorConfig.from_dict(saved))
    rebuilt.load_state_dict(discriminator.state_dict())
    discriminator.eval()
    rebuilt.eval()
    images = real_bands(2, 32, 32)
    assert torch.equal(rebuilt(images), discriminator(images))


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"in_channels": 0}, "in_channels must be 1..16, got 0"),
        ({"in_channels": 17}, "in_channels must be 1..16, got 17"),
        ({"num_features": 0}, "num_features must be >= 1, got 0"),
        ({"num_layers": 9}, "num_layers must be 1..8, got 9"),
        ({"num_layer": 3}, "unknown discriminator option"),
    ],
)
def test_invalid_configs_are_refused(bad, message):
    with pytest.raises(ConfigError, match=message):
        DiscriminatorConfig.from_dict(bad)


def test_unknown_preset_suggests_the_closest():
    assert "patch" in DISCRIMINATOR_CONFIGS
    with pytest.raises(ConfigError, match="did you mean 'patch'"):
        create_discriminator("pach")
