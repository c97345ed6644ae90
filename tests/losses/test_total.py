"""LossConfig validation and round trip; GeneratorLoss = alpha*pixel + beta*adv + gamma*content."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from srrestore.errors import ConfigError, WeightsUnavailableError
from srrestore.losses.adversarial import AdversarialLoss
from srrestore.losses.perceptual import FeatureMatchingLoss, PerceptualLoss
from srrestore.losses.pixel import PixelLoss
from srrestore.losses.total import GeneratorLoss, LossConfig
from srrestore.models.discriminator import create_discriminator
from srrestore.models.generator import create_generator


def test_defaults_are_srgans_and_round_trip_through_json():
    config = LossConfig()
    assert (config.pixel, config.adversarial, config.content) == ("l2", "vanilla", "vgg")
    assert (config.vgg_weights, config.vgg_layer, config.allow_download) == ("imagenet", "relu5_4", False)
    assert (config.alpha, config.beta, config.gamma) == (1.0, 1e-3, 0.006)
    custom = LossConfig(pixel="Charbonnier", pixel_eps=1e-2, adversarial="HINGE", content="feature-matching", beta=0.1)
    assert (custom.pixel, custom.adversarial) == ("charbonnier", "hinge")
    assert LossConfig.from_dict(json.loads(json.dumps(custom.to_dict()))) == custom


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"pixel": "l3"}, "unknown pixel loss 'l3'"),
        ({"adversarial": "ragan"}, "unknown adversarial loss 'ragan'"),
        ({"content": "feature_matching"}, "did you mean 'feature-matching'"),
        ({"vgg_layer": "conv5_5"}, "did you mean 'conv5_4'"),
        ({"vgg_weights": "imagnet"}, "did you mean 'imagenet'"),
        ({"beta": -1.0}, "beta must be a finite number >= 0, got -1.0"),
        ({"gamma": float("nan")}, "gamma must be a finite number >= 0, got nan"),
        ({"content": "none"}, "gamma=0.006 weighs no content loss"),
        ({"alpha": 0, "beta": 0, "gamma": 0}, "all 0"),
    ],
)
def test_invalid_configs_are_refused_with_the_value(bad, message):
    with pytest.raises(ConfigError, match=message):
        LossConfig(**bad)


def test_unknown_keys_suggest_the_closest():
    with pytest.raises(ConfigError, match="unknown loss option 'gama' \\(did you mean 'gamma'\\?\\)"):
        LossConfig.from_dict({"gama": 0.1})


def test_gamma_zero_builds_no_vgg():
    loss = GeneratorLoss(LossConfig(gamma=0))
    assert loss.content is None
    assert not any(isinstance(module, nn.Conv2d) for module in loss.modules())
    assert list(loss.parameters()) == []


def test_missing_imagenet_weights_are_never_replaced_silently(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="weights='random'"):
        GeneratorLoss(LossConfig(vgg_model_dir=str(tmp_path)))


def test_total_is_the_weighted_sum_of_the_parts_with_vgg(real_images):
    torch.manual_seed(0)
    config = LossConfig(vgg_weights="random", alpha=0.5, beta=0.25, gamma=2.0)
    discriminator = create_discriminator("test-tiny", in_channels=3).eval()
    target = real_images(3, 32)
    prediction = target.flip(-1).requires_grad_(True)
    loss = GeneratorLoss(config)
    total, parts = loss(prediction, target, discriminator)
    assert isinstance(loss.content, PerceptualLoss)
    pixel = PixelLoss("l2")(prediction, target)
    adversarial = AdversarialLoss("vanilla").generator_loss(discriminator(prediction))
    content = loss.content(prediction, target)
    assert sorted(parts) == ["adversarial", "content", "pixel"]
    for name, expected in (("pixel", pixel), ("adversarial", adversarial), ("content", content)):
        assert parts[name].item() == pytest.approx(expected.item(), rel=1e-6)
        assert not parts[name].requires_grad
    expected = 0.5 * pixel.item() + 0.25 * adversarial.item() + 2.0 * content.item()
    assert total.item() == pytest.approx(expected, rel=1e-6)


def test_feature_matching_and_relativistic_parts(real_images):
    torch.manual_seed(0)
    config = LossConfig(adversarial="relativistic", content="feature-matching", alpha=0, beta=1.0, gamma=3.0)
    discriminator = create_discriminator("test-tiny", in_channels=3).eval()
    target = real_images(3, 32)
    prediction = (0.5 * target).requires_grad_(True)
    total, parts = GeneratorLoss(config)(prediction, target, discriminator)
    assert sorted(parts) == ["adversarial", "content"]
    fake_logits, fake_features = discriminator.forward_with_features(prediction)
    real_logits, real_features = discriminator.forward_with_features(target)
    adversarial = AdversarialLoss("relativistic").generator_loss(fake_logits, real_logits)
    content = FeatureMatchingLoss()(fake_features, real_features)
    assert parts["adversarial"].item() == pytest.approx(adversarial.item(), rel=1e-6)
    assert parts["content"].item() == pytest.approx(content.item(), rel=1e-6)
    assert total.item() == pytest.approx(adversarial.item() + 3.0 * content.item(), rel=1e-6)


def test_gradient_reaches_every_generator_parameter(real_images):
    torch.manual_seed(0)
    generator = create_generator("test-tiny", in_channels=1, scale=2)
    discriminator = create_discriminator("test-tiny", in_channels=1).requires_grad_(False)
    target = real_images(1, 32)
    low_resolution = nn.functional.avg_pool2d(target, 2)
    loss = GeneratorLoss(LossConfig(pixel="l1", content="feature-matching"))
    total, _ = loss(generator(low_resolution), target, discriminator)
    total.backward()
    missing = [n for n, p in generator.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_discriminator_is_required_when_needed(real_images):
    image = real_images(3, 16)
    with pytest.raises(ConfigError, match="needs the discriminator"):
        GeneratorLoss(LossConfig(gamma=0))(image, image)
    pixel_only = GeneratorLoss(LossConfig(beta=0, gamma=0))
    assert not pixel_only.needs_discriminator
    total, parts = pixel_only(image, image.flip(-1))
    assert list(parts) == ["pixel"] and total.item() == pytest.approx(parts["pixel"].item())
