"""Losses of SR-GAN training: pixel, adversarial, content (VGG19 perceptual, MONAI's
perceptual loss on RadImageNet, or discriminator feature matching) and the weighted
generator total."""

from srrestore.losses.adversarial import ADVERSARIAL_KINDS, AdversarialLoss
from srrestore.losses.monai_perceptual import PERCEPTUAL_NETWORKS, MonaiPerceptualLoss, check_perceptual_network
from srrestore.losses.perceptual import (
    VGG19,
    VGG19_IMAGENET_URL,
    VGG19_LAYERS,
    VGG_WEIGHT_SOURCES,
    FeatureMatchingLoss,
    PerceptualLoss,
    load_vgg19,
    resolve_vgg_weights,
)
from srrestore.losses.pixel import PIXEL_KINDS, PixelLoss
from srrestore.losses.total import CONTENT_KINDS, GeneratorLoss, LossConfig

__all__ = [
    "ADVERSARIAL_KINDS",
    "AdversarialLoss",
    "CONTENT_KINDS",
    "FeatureMatchingLoss",
    "GeneratorLoss",
    "LossConfig",
    "MonaiPerceptualLoss",
    "PERCEPTUAL_NETWORKS",
    "PIXEL_KINDS",
    "PerceptualLoss",
    "PixelLoss",
    "VGG19",
    "VGG19_IMAGENET_URL",
    "VGG19_LAYERS",
    "VGG_WEIGHT_SOURCES",
    "check_perceptual_network",
    "load_vgg19",
    "resolve_vgg_weights",
]
