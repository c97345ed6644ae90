"""Patch discriminator with spectral normalisation for SR-GAN training.

A fully convolutional discriminator in the spirit of PatchGAN (Isola et al.
2017), built like the SRGAN discriminator (Ledig et al. 2017) from pairs of a
strided and a plain convolution with LeakyReLU, but without its dense head:
instead of one real/fake score per image it returns a map of logits,
one per overlapping patch of :attr:`PatchDiscriminator.receptive_field`
pixels. Batch normalisation is replaced by spectral normalisation of every
convolution (Miyato et al. 2018), which bounds the discriminator's Lipschitz
constant and needs no batch statistics, so any batch size works. The spectral
norm (power iteration and division) runs with autocast off, in the weights'
float32, also inside a reduced-precision forward.

Layout for ``num_layers = L``: a stem ``conv3x3 (C -> F)``; ``L`` levels of
``conv4x4 stride 2`` then ``conv3x3``, the width doubling per level up to
``8 F``; a head ``conv3x3 -> 1``. Every convolution but the head is followed
by LeakyReLU(0.2). Tensors are ``(B, C, H, W)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm

from srrestore.errors import ConfigError, UnsupportedInputError, check_choice

__all__ = ["DiscriminatorConfig", "PatchDiscriminator", "DISCRIMINATOR_CONFIGS", "create_discriminator"]

NEGATIVE_SLOPE = 0.2
MAX_WIDTH_FACTOR = 8


@dataclass
class DiscriminatorConfig:
    """Hyperparameters of :class:`PatchDiscriminator` (all recorded in checkpoints).

    Attributes:
        in_channels: image channels, 1..16 (same as the generator's output).
        num_features: width ``F`` of the stem; level ``i`` has ``F * min(2**i, 8)``.
        num_layers: stride-2 levels ``L``, 1..8. Inputs need ``H, W >= 2**L`` and
            the logit map is ``(H // 2**L, W // 2**L)`` for sizes that are
            multiples of ``2**L`` (``floor`` halving at each level otherwise).
    """

    in_channels: int = 3
    num_features: int = 64
    num_layers: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.in_channels <= 16:
            raise ConfigError(f"discriminator in_channels must be 1..16, got {self.in_channels}")
        if self.num_features < 1:
            raise ConfigError(f"discriminator num_features must be >= 1, got {self.num_features}")
        if not 1 <= self.num_layers <= 8:
            raise ConfigError(f"discriminator num_layers must be 1..8, got {self.num_layers}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DiscriminatorConfig":
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown discriminator option(s) {', '.join(unknown)}")
        return cls(**data)


class _Float32SpectralNorm(_SpectralNorm):
    """torch's spectral normalisation with autocast off: in the weights' dtype (float32 in training).

    Under CUDA autocast the power iteration's ``torch.mv`` would run in fp16/bf16:
    ``sigma`` (hence the Lipschitz bound) in reduced precision, and ``vdot`` then
    mixing dtypes (torch 2.3.0 failed there). State-dict keys are those of
    ``torch.nn.utils.parametrizations.spectral_norm``.
    """

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=weight.device.type, enabled=False):
            return super().forward(weight)


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Module:
    """Spectrally normalised convolution with padding 1.

    3x3 stride 1 keeps the size; 4x4 stride 2 maps ``H`` to ``H // 2``.
    """
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=1)
    parametrize.register_parametrization(conv, "weight", _Float32SpectralNorm(conv.weight))
    return conv


class PatchDiscriminator(nn.Module):
    """Spectrally normalised patch discriminator; ``(B, C, H, W) -> (B, 1, h, w)`` logits.

    ``h = H // 2**num_layers`` and ``w = W // 2**num_layers`` when the sizes are
    multiples of ``2**num_layers`` (each level halves with ``floor``); the
    minimum input size is ``2**num_layers`` per axis (:attr:`min_size`).
    Logits are raw scores (no sigmoid): positive means "real".

    Args:
        in_channels: image channels, 1..16.
        num_features: width of the stem.
        num_layers: number of stride-2 levels.
    """

    architecture = "srrestore-patch-discriminator"

    def __init__(self, in_channels: int = 3, num_features: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        self.config = DiscriminatorConfig(in_channels, num_features, num_layers)
        self.stem = nn.Sequential(_conv(in_channels, num_features, 3), nn.LeakyReLU(NEGATIVE_SLOPE))
        widths = [num_features * min(2**level, MAX_WIDTH_FACTOR) for level in range(num_layers + 1)]
        self.levels = nn.ModuleList(
            nn.Sequential(
                _conv(widths[level], widths[level + 1], 4, stride=2),
                nn.LeakyReLU(NEGATIVE_SLOPE),
                _conv(widths[level + 1], widths[level + 1], 3),
                nn.LeakyReLU(NEGATIVE_SLOPE),
            )
            for level in range(num_layers)
        )
        self.head = _conv(widths[-1], 1, 3)

    @classmethod
    def from_config(cls, config: DiscriminatorConfig) -> "PatchDiscriminator":
        return cls(config.in_channels, config.num_features, config.num_layers)

    @property
    def min_size(self) -> int:
        """Smallest input height/width in pixels: ``2**num_layers``."""
        return 2**self.config.num_layers

    @property
    def receptive_field(self) -> int:
        """Width in input pixels of the patch one logit sees (68 for ``num_layers=3``).

        Stem and head add 2 pixels each at their stride; each level adds 3 (the
        4x4 conv) at the current stride, then doubles it, then 2 (the 3x3 conv).
        """
        size, stride = 1 + 2, 1
        for _ in range(self.config.num_layers):
            size += 3 * stride
            stride *= 2
            size += 2 * stride
        return size + 2 * stride

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Intermediate activations for feature matching.

        Args:
            x: ``(B, C, H, W)`` images, ``H, W >= min_size``.

        Returns:
            ``num_layers + 1`` tensors: the stem's ``(B, F, H, W)`` then each
            level's ``(B, F_i, H_i, W_i)`` with ``H_i = H_(i-1) // 2``.
        """
        if x.ndim != 4 or x.shape[1] != self.config.in_channels or min(x.shape[-2:]) < self.min_size:
            raise UnsupportedInputError(
                f"discriminator expects (B, {self.config.in_channels}, H, W) with H, W >= {self.min_size}, "
                f"got {tuple(x.shape)}"
            )
        activations = [self.stem(x)]
        for level in self.levels:
            activations.append(level(activations[-1]))
        return activations

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits ``(B, 1, h, w)`` and :meth:`features` from one pass."""
        activations = self.features(x)
        return self.head(activations[-1]), activations

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> logits ``(B, 1, h, w)``."""
        return self.forward_with_features(x)[0]


DISCRIMINATOR_CONFIGS: dict[str, dict[str, Any]] = {
    # The default: 68-pixel patches, about 5.9 M parameters.
    "patch": {},
    # Tiny configuration for tests.
    "test-tiny": {"num_features": 8, "num_layers": 2},
}


def create_discriminator(name: str = "patch", **overrides: Any) -> PatchDiscriminator:
    """Build a registered configuration, e.g. ``create_discriminator("patch", in_channels=1)``."""
    preset = DISCRIMINATOR_CONFIGS[check_choice("discriminator", name, DISCRIMINATOR_CONFIGS)]
    return PatchDiscriminator.from_config(DiscriminatorConfig.from_dict({**preset, **overrides}))
