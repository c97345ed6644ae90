"""SRGenerator: shapes, gradients and the receptive-field claim."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from srrestore.models.generator import GENERATOR_CONFIGS, GeneratorConfig, create_generator


@pytest.mark.parametrize("scale", [2, 3, 4, 5, 6, 8, (1, 4), (4, 1), (6, 1), (2, 3)])
@pytest.mark.parametrize("channels", [1, 3, 4, 16])
def test_output_shape_for_every_scale_and_channel_count(scale, channels):
    torch.manual_seed(0)
    generator = create_generator("test-tiny", in_channels=channels, scale=scale).eval()
    sy, sx = (scale, scale) if isinstance(scale, int) else scale
    with torch.no_grad():
        output = generator(torch.rand(2, channels, 11, 7))
    assert output.shape == (2, channels, 11 * sy, 7 * sx)
    assert torch.isfinite(output).all()
    assert generator.spec.scale == (sy, sx)


@pytest.mark.parametrize("name", sorted(GENERATOR_CONFIGS))
def test_every_registered_config_builds_and_trains(name):
    torch.manual_seed(0)
    generator = create_generator(name, in_channels=3, scale=2)
    passes = generator.forward_passes(torch.rand(1, 3, 12, 12))
    assert len(passes) == generator.config.feedback_steps
    sum(p.square().mean() for p in passes).backward()
    missing = [n for n, p in generator.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_other_output_channels_use_a_projected_skip():
    generator = create_generator("test-tiny", in_channels=1, out_channels=3, scale=2)
    assert generator(torch.rand(1, 1, 8, 8)).shape == (1, 3, 16, 16)


@pytest.mark.parametrize("bad", [{"scale": 7}, {"scale": (1, 1)}, {"in_channels": 0}, {"feedback_steps": 0}])
def test_invalid_configs_are_refused(bad):
    with pytest.raises(ValueError):
        GeneratorConfig(**bad)


def test_unknown_config_name_suggests_the_closest():
    with pytest.raises(ValueError, match="did you mean 'srgan'"):
        create_generator("srgam")


def test_receptive_field_bounds_the_dependence_on_input_pixels():
    """A pixel farther than the receptive field never changes an output pixel; a nearer one does."""
    torch.manual_seed(1)
    generator = create_generator("test-tiny", in_channels=1, scale=2).double().eval()
    field = generator.receptive_field
    assert field == 1 + 2 * (3 + 1 + 1 + 1) + 1  # shallow + T*(block+attention+group tail+body tail) + upsampler
    camera = data.camera()[100:100 + 2 * field + 24, 200:200 + 2 * field + 24].astype(np.float64) / 255
    image = torch.from_numpy(camera)[None, None]
    centre = image.shape[-1] // 2
    with torch.no_grad():
        reference = generator(image)[0, 0, 2 * centre:2 * centre + 2, 2 * centre:2 * centre + 2]
        for distance, should_change in [(field + 1, False), (field + 3, False), (field, True)]:
            for dy, dx in [(distance, 0), (0, -distance), (distance, distance)]:
                changed = image.clone()
                changed[0, 0, centre + dy, centre + dx] += 5.0
                output = generator(changed)[0, 0, 2 * centre:2 * centre + 2, 2 * centre:2 * centre + 2]
                difference = (output - reference).abs().max().item()
                if should_change:
                    assert difference > 0.0, (distance, dy, dx)  # tight: the field is not over-stated
                else:
                    assert difference == 0.0, (distance, dy, dx, difference)


def test_default_config_receptive_field_is_documented_value():
    assert create_generator("srgan").receptive_field == 32


@pytest.mark.parametrize("window", [3, 5, 7])
def test_local_mean_is_the_inside_only_average_pool(window):
    from torch.nn import functional as F

    from srrestore.models.layers import local_mean

    photo = torch.from_numpy(data.astronaut()[:37, :29].astype(np.float32) / 255).permute(2, 0, 1)[None]
    expected = F.avg_pool2d(photo, window, stride=1, padding=window // 2, count_include_pad=False)
    assert torch.allclose(local_mean(photo, window), expected, atol=1e-6)


def test_forward_is_the_last_feedback_pass():
    torch.manual_seed(0)
    network = create_generator("srgan", scale=(2, 4)).eval()
    image = torch.from_numpy(data.camera()[100:140, 200:230].astype(np.float32) / 255)[None, None].repeat(1, 3, 1, 1)
    with torch.no_grad():
        passes = network.forward_passes(image)
        assert len(passes) == network.config.feedback_steps
        assert torch.equal(network(image), passes[-1])
