"""AdversarialLoss against hand-computed values: vanilla (the seed's), relativistic, hinge."""

from __future__ import annotations

import math

import pytest
import torch

from srrestore.errors import ConfigError
from srrestore.losses.adversarial import AdversarialLoss

LN3 = math.log(3)


def test_vanilla_matches_the_seeds_formulas():
    """sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4."""
    loss = AdversarialLoss("vanilla")
    real = torch.tensor([0.0, LN3])  # D(real) = 1/2, 3/4
    fake = torch.tensor([0.0, -LN3])  # D(fake) = 1/2, 1/4
    # -E[log D(real)] - E[log(1 - D(fake))] = (ln 2 + ln 4/3)/2 + (ln 2 + ln 4/3)/2
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(math.log(2) + math.log(4 / 3))
    # -E[log D(fake)] = (ln 2 + ln 4)/2
    assert loss.generator_loss(fake).item() == pytest.approx(1.5 * math.log(2))


def test_vanilla_is_stable_for_extreme_logits():
    loss = AdversarialLoss()
    confident = loss.discriminator_loss(torch.tensor([200.0]), torch.tensor([-200.0]))
    fooled = loss.discriminator_loss(torch.tensor([-200.0]), torch.tensor([200.0]))
    assert confident.item() == pytest.approx(0.0, abs=1e-30)
    assert fooled.item() == pytest.approx(400.0)
    assert loss.generator_loss(torch.tensor([-200.0])).item() == pytest.approx(200.0)


def test_relativistic_matches_esrgan():
    loss = AdversarialLoss("relativistic")
    real = torch.tensor([1.0, 3.0])  # mean 2
    fake = torch.tensor([0.0, 2.0])  # mean 1

    def softplus(x: float) -> float:
        return math.log1p(math.exp(x))

    # -E[log sigmoid(real - mean fake)] - E[log(1 - sigmoid(fake - mean real))]
    expected_d = (softplus(-0.0) + softplus(-2.0)) / 2 + (softplus(-2.0) + softplus(0.0)) / 2
    # -E[log(1 - sigmoid(real - mean fake))] - E[log sigmoid(fake - mean real)]
    expected_g = (softplus(0.0) + softplus(2.0)) / 2 + (softplus(2.0) + softplus(0.0)) / 2
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(expected_d)
    assert loss.generator_loss(fake, real).item() == pytest.approx(expected_g)


def test_relativistic_generator_loss_treats_real_logits_as_constants():
    loss = AdversarialLoss("relativistic")
    real = torch.tensor([1.0, 3.0], requires_grad=True)
    fake = torch.tensor([0.0, 2.0], requires_grad=True)
    loss.generator_loss(fake, real).backward()
    assert real.grad is None and torch.any(fake.grad != 0)
    with pytest.raises(ConfigError, match="needs real_logits"):
        loss.generator_loss(fake)


def test_hinge():
    loss = AdversarialLoss("hinge")
    real = torch.tensor([0.5, 2.0])  # relu(1 - real) = 0.5, 0
    fake = torch.tensor([-2.0, 0.5])  # relu(1 + fake) = 0, 1.5
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(0.25 + 0.75)
    assert loss.generator_loss(fake).item() == pytest.approx(0.75)


def test_patch_logit_maps_are_averaged_over_every_element():
    loss = AdversarialLoss()
    logits = torch.tensor([[[[0.0, LN3], [0.0, LN3]]], [[[0.0, LN3], [0.0, LN3]]]])  # (2, 1, 2, 2)
    assert loss.generator_loss(logits).item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)


def test_unknown_kind_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'relativistic'"):
        AdversarialLoss("relativstic")
