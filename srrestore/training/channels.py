"""Fit a pretrained generator to another channel count, keeping what it learnt.

A generator trained on ``C0`` channels (3 for RGB, 1 for grey) is turned into
one taking and returning ``C`` channels by going through grey:

- the shallow convolution's weights are summed over the ``C0`` input channels
  (its response to a grey image replicated ``C0`` times) and shared by the
  ``C`` new input channels divided by ``C``: the features see the band mean;
- the upsampler's weights and biases are averaged over the ``C0`` output
  channels (per sub-pixel position) and replicated to the ``C`` new ones.

So on an input whose ``C`` bands are equal (a grey image ``g``), every output
band equals the mean over channels of the pretrained generator's output on
``g`` replicated ``C0`` times (exactly, up to float rounding); for ``C0 = 1``
that is the pretrained output itself. Distinct bands keep their own bicubic
skip and share the learnt residual of their mean until fine-tuning adapts it.
The alternative, a 1-channel model run band by band, ignores the correlation
between bands and costs ``C`` times the compute per pixel; fine-tuning a
``C``-channel model learns from all bands at once.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from srrestore.errors import CheckpointError
from srrestore.models.generator import SRGenerator

__all__ = ["adapt_channels"]

INPUT_KEY = "shallow.weight"
OUTPUT_KEYS = ("upsample.0.weight", "upsample.0.bias")


def adapt_channels(generator: SRGenerator, channels: int) -> SRGenerator:
    """A generator like ``generator`` that takes and returns ``channels`` channels.

    Args:
        generator: the pretrained network, ``(B, C0, H, W) -> (B, C0, H*sy, W*sx)``.
        channels: the wanted channel count ``C`` (1..16).

    Returns:
        A new network ``(B, C, H, W) -> (B, C, H*sy, W*sx)`` (a copy when ``C == C0``),
        initialised as the module docstring describes, in the input's mode.

    Raises:
        CheckpointError: the generator's input and output channel counts differ.
    """
    config = generator.config
    if config.in_channels != config.out_channels:
        raise CheckpointError(
            f"cannot adapt a generator with {config.in_channels} input and {config.out_channels} output channels"
        )
    if config.in_channels == channels:
        return copy.deepcopy(generator)
    adapted = SRGenerator(replace(config, in_channels=channels, out_channels=channels))
    state = {name: value.detach().clone() for name, value in generator.state_dict().items()}
    grey = state[INPUT_KEY].sum(dim=1, keepdim=True)  # (F, 1, k, k)
    state[INPUT_KEY] = (grey / channels).repeat(1, channels, 1, 1)
    subpixels = config.scale[0] * config.scale[1]
    for key in OUTPUT_KEYS:
        value = state[key]  # (C0 * sy * sx, ...): channel-major, as PixelShuffleND reads it
        per_channel = value.reshape(config.in_channels, subpixels, *value.shape[1:]).mean(dim=0)
        state[key] = per_channel.repeat(channels, *([1] * (value.ndim - 1)))
    adapted.load_state_dict(state, strict=True)
    return adapted.train(generator.training)
