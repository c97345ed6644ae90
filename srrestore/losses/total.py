"""The seed's generator objective ``L = alpha * L_pixel + beta * L_adv + gamma * L_content``.

:class:`LossConfig` holds every choice (read by training from JSON/YAML);
:class:`GeneratorLoss` builds the parts it needs (no VGG19 when ``gamma = 0``)
and returns the total with its unweighted parts for logging.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from srrestore.errors import ConfigError, check_choice
from srrestore.losses.adversarial import ADVERSARIAL_KINDS, AdversarialLoss
from srrestore.losses.monai_perceptual import MONAI_NETWORKS, MonaiPerceptualLoss
from srrestore.losses.perceptual import VGG19_LAYERS, FeatureMatchingLoss, PerceptualLoss, resolve_vgg_weights
from srrestore.losses.pixel import PIXEL_KINDS, PixelLoss
from srrestore.models.discriminator import PatchDiscriminator

__all__ = ["CONTENT_KINDS", "LossConfig", "GeneratorLoss"]

CONTENT_KINDS = ("vgg", *MONAI_NETWORKS, "feature-matching", "none")


@dataclass
class LossConfig:
    """Every choice of the generator loss; string options are case-insensitive.

    Defaults follow SRGAN: MSE, the standard GAN loss with weight ``1e-3`` and
    the ImageNet VGG19 ``relu5_4`` loss with weight ``1/12.75^2 ~ 0.006``.

    Attributes:
        pixel: ``"l2"``, ``"l1"`` or ``"charbonnier"`` (:class:`PixelLoss`).
        pixel_eps: Charbonnier's ``eps`` in intensity units.
        adversarial: ``"vanilla"``, ``"relativistic"`` or ``"hinge"`` (:class:`AdversarialLoss`).
        content: ``"vgg"`` (:class:`PerceptualLoss`), ``"radimagenet_resnet50"``
            (:class:`MonaiPerceptualLoss`, MONAI's loss on RadImageNet's
            ResNet50 from torch hub's cache), ``"feature-matching"``
            (:class:`FeatureMatchingLoss` over the discriminator) or ``"none"``.
        vgg_weights: ``"imagenet"``, ``"random"`` or a weights file path (:func:`load_vgg19`).
        vgg_layer: VGG19 layer name, e.g. ``"relu5_4"`` or ``"conv5_4"``.
        allow_download: let ``"imagenet"`` download torchvision's file, and
            ``"radimagenet_resnet50"`` its torch hub repository and weights, when not cached.
        vgg_model_dir: cache folder for ImageNet weights (None: torch hub's).
        alpha: weight of the pixel loss (>= 0).
        beta: weight of the adversarial loss (>= 0).
        gamma: weight of the content loss (>= 0; must be 0 with ``content="none"``).
    """

    pixel: str = "l2"
    pixel_eps: float = 1e-3
    adversarial: str = "vanilla"
    content: str = "vgg"
    vgg_weights: str = "imagenet"
    vgg_layer: str = "relu5_4"
    allow_download: bool = False
    vgg_model_dir: str | None = None
    alpha: float = 1.0
    beta: float = 1e-3
    gamma: float = 0.006

    def __post_init__(self) -> None:
        self.pixel = check_choice("pixel loss", self.pixel, PIXEL_KINDS)
        self.adversarial = check_choice("adversarial loss", self.adversarial, ADVERSARIAL_KINDS)
        self.content = check_choice("content loss", self.content, CONTENT_KINDS)
        self.vgg_layer = check_choice("VGG19 layer", self.vgg_layer, VGG19_LAYERS)
        self.vgg_weights = str(resolve_vgg_weights(self.vgg_weights))
        for name in ("alpha", "beta", "gamma"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"loss weight {name} must be a finite number >= 0, got {value!r}")
        if self.content == "none" and self.gamma > 0:
            raise ConfigError(f"gamma={self.gamma} weighs no content loss (content='none'); set gamma=0")
        if self.alpha == self.beta == self.gamma == 0:
            raise ConfigError("loss weights alpha, beta and gamma are all 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LossConfig":
        """Build from a JSON/YAML mapping; unknown keys raise with a "did you mean" hint."""
        names = [field.name for field in fields(cls)]
        return cls(**{check_choice("loss option", key, names): value for key, value in data.items()})


class GeneratorLoss(nn.Module):
    """``L = alpha * L_pixel + beta * L_adv + gamma * L_content`` for the generator step.

    Parts with weight 0 are neither built nor computed. Put this module on the
    generator's device; do not checkpoint it (rebuild it from its config).

    Args:
        config: the choices; None means ``LossConfig()``.

    Raises:
        WeightsUnavailableError, CheckpointError: VGG19 weights (see :func:`load_vgg19`)
            or the MONAI network (see :class:`MonaiPerceptualLoss`).
    """

    def __init__(self, config: LossConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else LossConfig()
        self.pixel = PixelLoss(self.config.pixel, self.config.pixel_eps)
        self.adversarial = AdversarialLoss(self.config.adversarial)
        self.content: PerceptualLoss | MonaiPerceptualLoss | FeatureMatchingLoss | None = None
        if self.config.gamma > 0 and self.config.content == "vgg":
            self.content = PerceptualLoss(
                self.config.vgg_layer,
                self.config.vgg_weights,
                allow_download=self.config.allow_download,
                model_dir=self.config.vgg_model_dir,
            )
        elif self.config.gamma > 0 and self.config.content in MONAI_NETWORKS:
            self.content = MonaiPerceptualLoss(self.config.content, allow_download=self.config.allow_download)
        elif self.config.gamma > 0:
            self.content = FeatureMatchingLoss()

    @property
    def needs_discriminator(self) -> bool:
        """True when :meth:`forward` must be given the discriminator."""
        return self.config.beta > 0 or isinstance(self.content, FeatureMatchingLoss)

    def forward(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        discriminator: PatchDiscriminator | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its parts.

        Args:
            prediction: ``G(lr)``, ``(B, C, H, W)`` in ``[0, 1]``, with gradient.
            target: ``hr``, same shape.
            discriminator: needed when :attr:`needs_discriminator`. It runs on
                ``prediction`` with gradient (freeze its parameters in the
                generator step) and on ``target`` without, when needed.

        Returns:
            The scalar total and the unweighted, detached parts computed
            (keys ``"pixel"``, ``"adversarial"``, ``"content"``).

        Raises:
            ConfigError: the discriminator is needed but not given.
        """
        config = self.config
        parts: dict[str, torch.Tensor] = {}
        if config.alpha > 0:
            parts["pixel"] = self.pixel(prediction, target)
        if self.needs_discriminator:
            if discriminator is None:
                raise ConfigError(
                    f"generator loss (beta={config.beta}, content={config.content!r}) needs the discriminator, got None"
                )
            matching = isinstance(self.content, FeatureMatchingLoss)
            fake_logits, fake_features = discriminator.forward_with_features(prediction)
            real_logits, real_features = None, []
            if matching or (config.beta > 0 and config.adversarial == "relativistic"):
                with torch.no_grad():
                    real_logits, real_features = discriminator.forward_with_features(target)
            if config.beta > 0:
                parts["adversarial"] = self.adversarial.generator_loss(fake_logits, real_logits)
            if matching:
                parts["content"] = self.content(fake_features, real_features)
        if isinstance(self.content, (PerceptualLoss, MonaiPerceptualLoss)):
            parts["content"] = self.content(prediction, target)
        weights = {"pixel": config.alpha, "adversarial": config.beta, "content": config.gamma}
        total = sum((weights[name] * value for name, value in parts.items()), start=prediction.new_zeros(()))
        return total, {name: value.detach() for name, value in parts.items()}
