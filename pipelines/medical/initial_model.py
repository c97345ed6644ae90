"""The through-plane generator medical fine-tuning starts from.

With ``"default"``, the built-in through-plane model of the factor
(``srgan-slice-x{s}-psnr``) is the start, taken as it is; else a pretrained
model (a built-in 1-channel model, or the one given) is turned into
an ``(s, 1)`` generator by :func:`srrestore.models.surgery.through_plane_generator`.
Where no pretrained model exists (``"default"`` with no built-in of any usable
kind), the run starts from a randomly initialised ``srgan`` generator, and says so.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from srrestore.errors import CheckpointError
from srrestore.models.checkpoint import CheckpointInfo
from srrestore.models.generator import create_generator
from srrestore.models.registry import builtin_slice_factors, default_model_name
from srrestore.models.surgery import through_plane_generator
from srrestore.training.finetune import (
    FinetuneOptions,
    PretrainedModel,
    load_pretrained,
)

__all__ = ["through_plane_start"]

SCRATCH_GENERATOR = "srgan"


def _load(options: FinetuneOptions, factor: int) -> PretrainedModel | None:
    """The pretrained 1-channel model the options name (any scale), or None when "default" finds none."""
    tries = [replace(options, scale=None)]
    if options.model == "default":
        tries.insert(0, replace(options, scale=factor))
        if factor in builtin_slice_factors():  # the matching through-plane built-in first
            tries.insert(0, replace(options, model=default_model_name((factor, 1), 1), scale=factor))
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
