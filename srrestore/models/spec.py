"""`ModelSpec`: what the engine needs to know about a generator."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ModelSpec"]


@dataclass(frozen=True)
class ModelSpec:
    """Static facts about a super-resolution generator.

    Attributes:
        scale: integer upscale factor per spatial axis, e.g. ``(4, 4)`` or ``(1, 4)``.
        in_channels: channels the network takes.
        out_channels: channels it returns.
        receptive_field: how far (in low-resolution pixels, per side) an output
            pixel can see. Changing an input pixel farther away than this never
            changes the output pixel; tiles need a halo at least this wide.
        size_multiple: input sizes must be a multiple of this (1: any size).
        tileable: True when tiled inference equals whole-image inference.
    """

    scale: tuple[int, ...]
    in_channels: int
    out_channels: int
    receptive_field: int
    size_multiple: int = 1
    tileable: bool = True
