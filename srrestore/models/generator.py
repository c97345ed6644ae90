"""The srrestore SR-GAN generator.

Design (the project's seed): a shallow feature convolution; residual groups of
residual blocks with *local* channel attention and a lightweight transformer
block (sliding-window neighbourhood attention); an iterative feedback loop in
which the deep features of pass ``t`` are fed back into the shallow stage of
pass ``t + 1`` (as in SRFBN, Li et al. 2019), each pass producing an output that
training can supervise; a pixel-shuffle upsampler; and a global skip from the
bicubically interpolated input. Training follows SRGAN (Ledig et al. 2017).

Every layer is local, so the receptive field is finite
(:attr:`SRGenerator.receptive_field`, in low-resolution pixels per side) and
tiled inference with a halo of that width equals whole-image inference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from srrestore.models.layers import PixelShuffleND, ResidualGroup
from srrestore.models.spec import ModelSpec

__all__ = ["GeneratorConfig", "SRGenerator", "GENERATOR_CONFIGS", "SUPPORTED_FACTORS", "create_generator"]

SUPPORTED_FACTORS = (1, 2, 3, 4, 5, 6, 8)  # pixel shuffle takes any integer; these are tested
BICUBIC_REACH = 2  # bicubic interpolation reads 2 input pixels on each side


@dataclass
class GeneratorConfig:
    """Hyperparameters of :class:`SRGenerator` (all recorded in checkpoints).

    Attributes:
        in_channels: input channels (1 for CT/MR or one band, 3 for RGB, up to 16 bands).
        out_channels: output channels; None means ``in_channels``.
        scale: upscale factor per axis ``(sy, sx)``; each in 1, 2, 3, 4, 5, 6, 8, not both 1.
        num_features: width of the feature maps.
        num_groups: residual groups in the deep body.
        blocks_per_group: residual attention blocks per group.
        attention_window: odd neighbourhood size of the local channel attention.
        num_heads: heads of the neighbourhood self-attention.
        transformer_window: odd neighbourhood size of the self-attention.
        mlp_ratio: hidden width of the transformer MLP relative to ``num_features``.
        feedback_steps: refinement passes ``T`` of the feedback loop (>= 1).
    """

    in_channels: int = 3
    out_channels: int | None = None
    scale: tuple[int, int] = (4, 4)
    num_features: int = 32
    num_groups: int = 2
    blocks_per_group: int = 1
    attention_window: int = 5
    num_heads: int = 2
    transformer_window: int = 5
    mlp_ratio: float = 2.0
    feedback_steps: int = 2
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.scale, int):
            self.scale = (self.scale, self.scale)
        self.scale = tuple(int(s) for s in self.scale)  # type: ignore[assignment]
        if len(self.scale) != 2 or any(s not in SUPPORTED_FACTORS for s in self.scale) or self.scale == (1, 1):
            raise ValueError(f"scale must be two factors from {SUPPORTED_FACTORS}, not both 1; got {self.scale}")
        if self.out_channels is None:
            self.out_channels = self.in_channels
        if not 1 <= self.in_channels <= 16 or not 1 <= self.out_channels <= 16:
            raise ValueError(f"channels must be 1..16, got in={self.in_channels} out={self.out_channels}")
        if self.feedback_steps < 1:
            raise ValueError(f"feedback_steps must be >= 1, got {self.feedback_steps}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["scale"] = list(self.scale)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeneratorConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["scale"] = tuple(known.get("scale", (4, 4)))
        return cls(**known)


class SRGenerator(nn.Module):
    """Super-resolution generator; ``(B, C_in, H, W) -> (B, C_out, H*sy, W*sx)``.

    Inputs are normalised intensities (about ``[0, 1]``); outputs are in the
    same units. ``forward`` returns the last pass; ``forward_passes`` returns
    every pass of the feedback loop for deep supervision.
    """

    architecture = "srrestore-srgan"

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        features = config.num_features
        sy, sx = config.scale
        self.shallow = nn.Conv2d(config.in_channels, features, 3, padding=1)
        self.fuse = nn.Conv2d(2 * features, features, 1)
        self.groups = nn.ModuleList(
            ResidualGroup(
                features,
                config.blocks_per_group,
                config.attention_window,
                config.num_heads,
                config.transformer_window,
                config.mlp_ratio,
            )
            for _ in range(config.num_groups)
        )
        self.body_tail = nn.Conv2d(features, features, 3, padding=1)
        self.upsample = nn.Sequential(
            nn.Conv2d(features, config.out_channels * sy * sx, 3, padding=1), PixelShuffleND((sy, sx))
        )
        self.skip_projection = (
            nn.Conv2d(config.in_channels, config.out_channels, 1)
            if config.in_channels != config.out_channels
            else None
        )

    @property
    def receptive_field(self) -> int:
        """Low-resolution pixels per side an output pixel depends on.

        ``1`` (shallow conv) ``+ T * body`` (each feedback pass re-runs the deep
        body) ``+ 1`` (upsampler conv), or the bicubic skip's 2 if larger.
        """
        body = sum(group.reach for group in self.groups) + 1
        return max(BICUBIC_REACH, 1 + self.config.feedback_steps * body + 1)

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(
            scale=tuple(self.config.scale),
            in_channels=self.config.in_channels,
            out_channels=int(self.config.out_channels),  # type: ignore[arg-type]
            receptive_field=self.receptive_field,
        )

    def _skip(self, x: torch.Tensor) -> torch.Tensor:
        # Row-major input: CPU bicubic runs about 1.7x slower on channels-last, and the
        # pixel shuffle this is added to returns row-major anyway.
        skip = F.interpolate(x.contiguous(), scale_factor=self.config.scale, mode="bicubic", align_corners=False)
        return skip if self.skip_projection is None else self.skip_projection(skip)

    def _feedback_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The fed-back features of each of the ``T`` passes, each ``(B, F, H, W)``."""
        shallow = self.shallow(x)
        feedback = torch.zeros_like(shallow)
        passes = []
        for _ in range(self.config.feedback_steps):
            features = self.fuse(torch.cat([shallow, feedback], dim=1))
            deep = features
            for group in self.groups:
                deep = group(deep)
            feedback = self.body_tail(deep) + features
            passes.append(feedback)
        return passes

    def forward_passes(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All ``T`` outputs of the feedback loop, each ``(B, C_out, H*sy, W*sx)``."""
        skip = self._skip(x)
        return [self.upsample(features) + skip for features in self._feedback_features(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` -> ``(B, C_out, H*sy, W*sx)``: the last feedback pass (only it is upsampled)."""
        return self.upsample(self._feedback_features(x)[-1]) + self._skip(x)


GENERATOR_CONFIGS: dict[str, dict[str, Any]] = {
    # The default: about 0.1 M parameters, fast enough for CPUs.
    "srgan": {},
    # A wider, deeper variant for GPUs.
    "srgan-large": {"num_features": 64, "num_groups": 4, "blocks_per_group": 2, "num_heads": 4},
    # Tiny configuration for tests.
    "test-tiny": {"num_features": 8, "num_groups": 1, "blocks_per_group": 1, "num_heads": 2,
                  "attention_window": 3, "transformer_window": 3},
}


def create_generator(name: str = "srgan", **overrides: Any) -> SRGenerator:
    """Build a registered generator configuration, e.g. ``create_generator("srgan", in_channels=1, scale=2)``."""
    if name not in GENERATOR_CONFIGS:
        from difflib import get_close_matches

        hint = get_close_matches(name, GENERATOR_CONFIGS, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"unknown generator {name!r}{suggestion}; known: {', '.join(GENERATOR_CONFIGS)}")
    return SRGenerator(GeneratorConfig(**{**GENERATOR_CONFIGS[name], **overrides}))
