"""Weight surgery: a trained generator turned into another one that starts from what it learnt.

Three operations, each returning a network whose output is known at the start:

**Growing deeper** (:func:`grow_generator`, Net2Net-style). A generator trained to its capacity can continue as a deeper one: every trained
weight is copied into a generator with more residual groups or more residual
blocks per group, and each added group or block starts as the identity (its
last convolution zero, so its residual branch adds nothing). The deeper
generator therefore returns exactly the smaller one's output until training
moves the new layers (Chen, Goodfellow and Shlens, "Net2Net", ICLR 2016;
zero-initialised residual branches as in Goyal et al. 2017).

**Changing the channel count** (:func:`adapt_channels`). A generator trained on ``C0`` channels (3 for RGB, 1 for grey) is turned into
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

**Making a through-plane model** (:func:`through_plane_generator`): an ``(s, 1)``
network from a pretrained one. The built-in 1-channel models are isotropic, ``(s, s)``. Every layer of the
generator but the upsampler's convolution has the same shape whatever the
scale, so an ``(s, 1)`` generator takes them unchanged; the upsampler's
convolution has ``C * sy * sx`` output channels, read by the pixel shuffle as
``(C, sy, sx)`` sub-pixels:

- from ``(s, s)``: each output row sub-pixel ``i`` starts from the mean of the
  ``s`` column sub-pixels ``(i, j)``, i.e. the pretrained network's output
  averaged over each ``1 x s`` block (its residual seen at column resolution);
- from another scale: the upsampler keeps its fresh (random) initialisation;
- from an ``(s, 1)`` checkpoint (an earlier fine-tuning): taken as it is.

The bicubic skip of the generator follows its scale by itself.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
from torch import nn

from srrestore.errors import CheckpointError, ConfigError
from srrestore.models.generator import GeneratorConfig, SRGenerator

__all__ = ["GROWABLE", "UPSAMPLER_KEYS", "adapt_channels", "grow_generator", "growth", "through_plane_generator"]

UPSAMPLER_KEYS = ("upsample.0.weight", "upsample.0.bias")


GROWABLE = ("num_groups", "blocks_per_group")


def growth(smaller: GeneratorConfig, deeper: GeneratorConfig) -> dict[str, list[int]]:
    """The depth settings that ``deeper`` grows from ``smaller``, as ``{name: [from, to]}``.

    Empty when the two configurations are equal.

    Raises:
        ConfigError: the configurations differ in anything but a larger depth.
    """
    ours, theirs = deeper.to_dict(), smaller.to_dict()
    changed = sorted(key for key in ours if ours[key] != theirs.get(key))
    fixed = [key for key in changed if key not in GROWABLE or ours[key] < theirs[key]]
    if fixed:
        details = ", ".join(f"{key} {theirs.get(key)} vs {ours[key]}" for key in fixed)
        raise ConfigError(
            f"the initial model's architecture differs from the recipe's ({details}); "
            f"only {' and '.join(GROWABLE)} may grow"
        )
    return {key: [int(theirs[key]), int(ours[key])] for key in changed}


def _silence(branch_end: nn.Conv2d) -> None:
    """Zero a residual branch's last convolution, making its block the identity."""
    nn.init.zeros_(branch_end.weight)
    if branch_end.bias is not None:
        nn.init.zeros_(branch_end.bias)


@torch.no_grad()
def grow_generator(smaller: SRGenerator, deeper: SRGenerator) -> dict[str, list[int]]:
    """Load ``smaller``'s weights into ``deeper``, whose added groups and blocks become identities.

    Existing groups keep their place and their blocks come first, so
    ``deeper(x) == smaller(x)`` for every input ``(B, C_in, H, W)`` up to
    floating-point rounding. The added layers keep their random initialisation
    except each residual branch's last convolution, which is zeroed.

    Args:
        smaller: the trained generator.
        deeper: a generator of the same configuration but for larger
            ``num_groups`` and/or ``blocks_per_group``; modified in place.

    Returns:
        The grown depth settings, ``{name: [from, to]}`` (empty: a plain copy).

    Raises:
        ConfigError: the configurations differ in anything but a larger depth.
    """
    grown = growth(smaller.config, deeper.config)
    deeper.load_state_dict(smaller.state_dict(), strict=False)  # the added layers' weights are missing
    for index, group in enumerate(deeper.groups):
        if index >= len(smaller.groups):
            _silence(group.tail)
            continue
        for block in group.blocks[len(smaller.groups[index].blocks):]:
            _silence(block.conv2)
    return grown


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


def through_plane_generator(generator: SRGenerator, factor: int) -> tuple[SRGenerator, str]:
    """An ``(factor, 1)`` generator initialised from ``generator`` (see the module docstring).

    Args:
        generator: the pretrained network, any scale, ``C`` channels.
        factor: the through-plane factor ``s``.

    Returns:
        The new network (in ``generator``'s train/eval mode) and one line
        saying how its upsampler was initialised.
    """
    config = generator.config
    wanted = (int(factor), 1)
    if tuple(config.scale) == wanted:
        return generator, f"taken as it is (scale {wanted})"
    result = SRGenerator(replace(config, scale=wanted))
    state = {name: value.detach().clone() for name, value in generator.state_dict().items()}
    sy, sx = config.scale
    if (sy, sx) == (factor, factor):
        for key in UPSAMPLER_KEYS:
            value = state[key]  # (C * sy * sx, ...), channel-major as PixelShuffleND reads it
            blocks = value.reshape(config.out_channels, sy, sx, *value.shape[1:])
            state[key] = blocks.mean(dim=2).reshape(config.out_channels * sy, *value.shape[1:])
        how = f"upsampler from the ({sy}, {sx}) one, averaged over the {sx} column sub-pixels"
    else:
        fresh = result.state_dict()
        for key in UPSAMPLER_KEYS:
            state[key] = fresh[key]
        how = f"every layer but the upsampler (pretrained scale ({sy}, {sx})); upsampler randomly initialised"
    result.load_state_dict(state, strict=True)
    return result.train(generator.training), how
