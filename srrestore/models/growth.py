"""Deepen a trained generator without changing what it computes (Net2Net-style growth).

A generator trained to its capacity can continue as a deeper one: every trained
weight is copied into a generator with more residual groups or more residual
blocks per group, and each added group or block starts as the identity (its
last convolution zero, so its residual branch adds nothing). The deeper
generator therefore returns exactly the smaller one's output until training
moves the new layers (Chen, Goodfellow and Shlens, "Net2Net", ICLR 2016;
zero-initialised residual branches as in Goyal et al. 2017).
"""

from __future__ import annotations

import torch
from torch import nn

from srrestore.errors import ConfigError
from srrestore.models.generator import GeneratorConfig, SRGenerator

__all__ = ["GROWABLE", "growth", "grow_generator"]

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
