"""Consistency guard: make the output agree with the input under a degradation model.

``area`` (box averaging): one exact step ``sr += up_nearest(lr - down_area(sr))``
after which ``down_area(sr) == lr`` up to float rounding. ``bicubic``
(antialiased bicubic downscaling, what most SR training uses): iterative
back-projection, :data:`BICUBIC_ITERATIONS` steps of
``sr += up_bicubic(lr - down_bicubic(sr))``.

All in normalised float32, on ``(B, C, *spatial)`` tensors. Each bicubic step
reads :data:`BICUBIC_REACH` LR pixels further, so the engine widens the halo by
:func:`extra_halo` to stay exact.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["METHODS", "extra_halo", "degrade", "project", "residual"]

METHODS = ("area", "bicubic")
BICUBIC_ITERATIONS = 4
BICUBIC_REACH = 4  # LR pixels per side: the downscale kernel reads 2, the upscale 2


def extra_halo(method: str | None) -> int:
    """LR pixels per side the guard adds to the halo."""
    return BICUBIC_ITERATIONS * BICUBIC_REACH if method == "bicubic" else 0


def _area_down(sr: torch.Tensor, scale: tuple[int, ...]) -> torch.Tensor:
    shape = list(sr.shape[:2])
    for size, factor in zip(sr.shape[2:], scale):
        shape += [size // factor, factor]
    reduce = tuple(range(3, len(shape), 2))
    return sr.reshape(shape).mean(dim=reduce)


def _nearest_up(lr: torch.Tensor, scale: tuple[int, ...]) -> torch.Tensor:
    for axis, factor in enumerate(scale, start=2):
        if factor != 1:
            lr = lr.repeat_interleave(factor, dim=axis)
    return lr


def _bicubic_down(sr: torch.Tensor, scale: tuple[int, ...]) -> torch.Tensor:
    size = [n // f for n, f in zip(sr.shape[2:], scale)]
    return F.interpolate(sr, size=size, mode="bicubic", align_corners=False, antialias=True)


def _bicubic_up(lr: torch.Tensor, scale: tuple[int, ...]) -> torch.Tensor:
    size = [n * f for n, f in zip(lr.shape[2:], scale)]
    return F.interpolate(lr, size=size, mode="bicubic", align_corners=False)


def degrade(sr: torch.Tensor, scale: tuple[int, ...], method: str | None) -> torch.Tensor:
    """Downscale ``(B, C, *spatial*scale)`` to ``(B, C, *spatial)`` with the method's model (area for None)."""
    return _bicubic_down(sr, scale) if method == "bicubic" else _area_down(sr, scale)


def project(sr: torch.Tensor, lr: torch.Tensor, scale: tuple[int, ...], method: str) -> torch.Tensor:
    """Correct ``sr`` so that ``degrade(sr) == lr`` (exactly for area, closely for bicubic).

    Args:
        sr: ``(B, C, *spatial*scale)`` network output, normalised.
        lr: ``(B, C, *spatial)`` network input, normalised.
        scale: factor per spatial axis.
        method: ``"area"`` or ``"bicubic"``.
    """
    if method == "area":
        return sr + _nearest_up(lr - _area_down(sr, scale), scale)
    for _ in range(BICUBIC_ITERATIONS):
        sr = sr + _bicubic_up(lr - _bicubic_down(sr, scale), scale)
    return sr


def residual(sr: torch.Tensor, lr: torch.Tensor, scale: tuple[int, ...], method: str | None) -> torch.Tensor:
    """``lr - degrade(sr)``, ``(B, C, *spatial)``: how far the output is from consistent."""
    return lr - degrade(sr, scale, method)
