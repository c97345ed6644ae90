"""Pixel-wise reconstruction losses: L2 (the seed's MSE), L1 and Charbonnier."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from srrestore.errors import ConfigError, UnsupportedInputError, check_choice

__all__ = ["PIXEL_KINDS", "PixelLoss"]

PIXEL_KINDS = ("l2", "l1", "charbonnier")


class PixelLoss(nn.Module):
    """Mean pixel loss between a prediction and its target.

    - ``"l2"``: ``mean((x - y)^2)`` (MSE; the seed's choice).
    - ``"l1"``: ``mean(|x - y|)``.
    - ``"charbonnier"``: ``mean(sqrt((x - y)^2 + eps^2))`` (Lai et al. 2017), a
      differentiable L1; its minimum is ``eps``, not 0.

    Args:
        kind: one of :data:`PIXEL_KINDS` (case-insensitive).
        eps: Charbonnier's smoothing constant in intensity units (> 0).

    Raises:
        ConfigError: unknown ``kind`` (with a "did you mean" hint) or ``eps <= 0``.
    """

    def __init__(self, kind: str = "l2", eps: float = 1e-3) -> None:
        super().__init__()
        self.kind = check_choice("pixel loss", kind, PIXEL_KINDS)
        if not eps > 0:
            raise ConfigError(f"charbonnier eps must be > 0, got {eps}")
        self.eps = float(eps)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of two equal-shape tensors, e.g. ``(B, C, H, W)``."""
        if prediction.shape != target.shape:
            raise UnsupportedInputError(
                f"pixel loss needs equal shapes, got {tuple(prediction.shape)} and {tuple(target.shape)}"
            )
        if self.kind == "l2":
            return F.mse_loss(prediction, target)
        if self.kind == "l1":
            return F.l1_loss(prediction, target)
        return torch.sqrt((prediction - target) ** 2 + self.eps**2).mean()

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}" + (f", eps={self.eps}" if self.kind == "charbonnier" else "")
