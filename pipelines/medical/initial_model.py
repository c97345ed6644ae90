"""The through-plane generator fine-tuning starts from: an ``(s, 1)`` network made from a pretrained one.

The built-in 1-channel models are isotropic, ``(s, s)``. Every layer of the
generator but the upsampler's convolution has the same shape whatever the
scale, so an ``(s, 1)`` generator takes them unchanged; the upsampler's
convolution has ``C * sy * sx`` output channels, read by the pixel shuffle as
``(C, sy, sx)`` sub-pixels:

- from ``(s, s)``: each output row sub-pixel ``i`` starts from the mean of the
  ``s`` column sub-pixels ``(i, j)``, i.e. the pretrained network's output
  averaged over each ``1 x s`` block (its residual seen at column resolution);
- from another scale: the upsampler keeps its fresh (random) initialisation;
- from an ``(s, 1)`` checkpoint (an earlier fine-tuning): taken as it is.

The bicubic skip of the generator follows its scale by itself. Where no
pretrained model exists (``"default"`` with no built-in of any usable kind), the
run starts from a randomly initialised ``srgan`` generator, and says so.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from srrestore.errors import CheckpointError
from srrestore.models.checkpoint import CheckpointInfo
from srrestore.models.generator import SRGenerator, create_generator
from srrestore.training.finetune import (
    FinetuneOptions,
    PretrainedModel,
    load_pretrained,
)

__all__ = ["UPSAMPLER_KEYS", "through_plane_generator", "through_plane_start"]

UPSAMPLER_KEYS = ("upsample.0.weight", "upsample.0.bias")
SCRATCH_GENERATOR = "srgan"


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


def _load(options: FinetuneOptions, factor: int) -> PretrainedModel | None:
    """The pretrained 1-channel model the options name (any scale), or None when "default" finds none."""
    tries = [replace(options, scale=None)]
    if options.model == "default":
        tries.insert(0, replace(options, scale=factor))
    for attempt in tries:
        try:
            return load_pretrained(attempt, 1)
        except CheckpointError:
            if options.model != "default":
                raise
    return None


def through_plane_start(options: FinetuneOptions, factor: int) -> tuple[PretrainedModel, str]:
    """The 1-channel ``(factor, 1)`` model a medical fine-tuning run starts from.

    Args:
        options: ``model`` (``"default"``, a built-in or a checkpoint path),
            ``phase`` and ``seed`` are read; ``scale`` is ignored (the factor rules).
        factor: the through-plane factor ``s``.

    Returns:
        The model, ready for :func:`~srrestore.training.finetune.finetune`,
        and one line for the report and the model card on how it was initialised.

    Raises:
        CheckpointError: a named model is missing, unreadable or cannot be adapted.
    """
    pretrained = _load(options, factor)
    if pretrained is None:
        torch.manual_seed(options.seed)
        generator = create_generator(SCRATCH_GENERATOR, in_channels=1, scale=(factor, 1)).train()
        start = PretrainedModel(generator, CheckpointInfo(generator.config), "none", Path(), "")
        return start, f"no pretrained model available: {SCRATCH_GENERATOR} generator randomly initialised"
    generator, how = through_plane_generator(pretrained.generator, factor)
    adapted = "" if pretrained.adapted_from is None else f", adapted from {pretrained.adapted_from} channels"
    return replace(pretrained, generator=generator), f"from {pretrained.name}{adapted}: {how}"
