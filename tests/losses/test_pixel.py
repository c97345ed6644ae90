"""PixelLoss against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from srrestore.errors import ConfigError, UnsupportedInputError
from srrestore.losses.pixel import PixelLoss

PREDICTION = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]])
TARGET = torch.tensor([[[[0.5, 0.5], [0.0, 1.0]]]])  # differences -0.5, 0, 1, -0.75


def test_l2_is_the_mean_squared_error():
    assert PixelLoss("l2")(PREDICTION, TARGET).item() == pytest.approx((0.25 + 0 + 1 + 0.5625) / 4)


def test_l1_is_the_mean_absolute_error():
    assert PixelLoss("l1")(PREDICTION, TARGET).item() == pytest.approx((0.5 + 0 + 1 + 0.75) / 4)


def test_charbonnier_is_the_mean_of_sqrt_of_squares_plus_eps_squared():
    prediction = torch.tensor([[[[0.1, 0.9], [0.5, 0.2]]]])
    target = torch.tensor([[[[0.1, 0.5], [0.9, 0.2]]]])  # differences 0, 0.4, -0.4, 0
    loss = PixelLoss("charbonnier", eps=0.3)(prediction, target)
    assert loss.item() == pytest.approx((0.3 + 0.5 + 0.5 + 0.3) / 4)  # sqrt(0.4^2 + 0.3^2) = 0.5


def test_default_is_the_seeds_mse_and_kinds_are_case_insensitive():
    assert PixelLoss().kind == "l2"
    assert PixelLoss("L1").kind == "l1"


def test_gradient_reaches_the_prediction(real_images):
    target = real_images(3, 16)
    prediction = (target + 0.1 * torch.randn_like(target)).requires_grad_(True)
    for kind in ("l2", "l1", "charbonnier"):
        prediction.grad = None
        loss = PixelLoss(kind)(prediction, target)
        loss.backward()
        assert loss > 0 and torch.any(prediction.grad != 0)


def test_unknown_kind_suggests_the_closest():
    with pytest.raises(ConfigError, match="unknown pixel loss 'charbonier' \\(did you mean 'charbonnier'\\?\\)"):
        PixelLoss("charbonier")


def test_non_positive_eps_and_shape_mismatch_are_refused():
    with pytest.raises(ConfigError, match="eps must be > 0, got 0"):
        PixelLoss("charbonnier", eps=0)
    with pytest.raises(UnsupportedInputError, match=r"\(1, 1, 2, 2\) and \(1, 1, 2, 1\)"):
        PixelLoss()(PREDICTION, TARGET[..., :1])
