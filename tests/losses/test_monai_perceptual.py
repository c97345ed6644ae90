"""MONAI's perceptual loss on RadImageNet through torch hub's cache: offline refusals, real images, gradients.

The ``fake_monai_hub`` fixture (tests/conftest.py) holds an offline stand-in of
the hub repository whose network is a small conv net in place of RadImageNet's
ResNet50: these tests check srrestore's construction, refusals and band
handling and MONAI's loss on real images, not RadImageNet's weights.
"""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from skimage import data
from skimage.filters import gaussian

from srrestore.errors import ConfigError, UnsupportedInputError, WeightsUnavailableError
from srrestore.losses.monai_perceptual import (
    HUB_REPO_FOLDER,
    RADIMAGENET_WEIGHTS,
    MonaiPerceptualLoss,
    cache_status,
    check_perceptual_network,
)
from srrestore.losses.total import GeneratorLoss, LossConfig


def camera(sigma: float = 0.0) -> torch.Tensor:
    """scikit-image's camera (a 128 px crop at half resolution) in [0, 1], blurred by ``sigma`` px: (1, 1, 64, 64)."""
    image = data.camera()[200:328:2, 200:328:2].astype(np.float64) / 255
    if sigma > 0:
        image = gaussian(image, sigma=sigma)
    return torch.from_numpy(image.astype(np.float32))[None, None]


@pytest.fixture
def loss(fake_monai_hub: Path) -> MonaiPerceptualLoss:
    return MonaiPerceptualLoss("radimagenet_resnet50")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every torch hub / MONAI download path fails the test when called."""
    import monai.apps.utils

    def refuse(*args, **kwargs):
        pytest.fail(f"a download was attempted: {args}")

    for module, name in ((torch.hub, "download_url_to_file"), (torch.hub, "urlopen"),
                         (monai.apps.utils, "download_url")):
        monkeypatch.setattr(module, name, refuse)
    return []


def test_identical_images_cost_nothing_and_more_blur_costs_more(loss):
    sharp = camera()
    assert loss(sharp, sharp.clone()).item() == 0.0
    slightly, strongly = loss(camera(1.0), sharp).item(), loss(camera(3.0), sharp).item()
    assert 0.0 < slightly < strongly


def test_gradients_reach_the_prediction_only(loss):
    prediction = camera(2.0).requires_grad_(True)
    target = camera().requires_grad_(True)
    loss(prediction, target).backward()
    assert prediction.grad is not None and torch.isfinite(prediction.grad).all() and prediction.grad.abs().sum() > 0
    assert target.grad is None
    assert not any(parameter.requires_grad for parameter in loss.parameters())
    same = camera().requires_grad_(True)
    loss(same, camera()).backward()  # MONAI's eps inside the sqrt keeps the gradient finite at zero distance
    assert torch.isfinite(same.grad).all()


def test_bands_are_compared_as_grey_images_and_values_are_clamped(loss):
    sharp, blurred, smooth = camera(), camera(1.0), camera(3.0)
    two_bands = loss(torch.cat([blurred, smooth], 1), torch.cat([sharp, sharp], 1))
    assert torch.isclose(two_bands, (loss(blurred, sharp) + loss(smooth, sharp)) / 2)
    stretched = 1.6 * sharp - 0.3  # about a third of the pixels leave [0, 1]
    assert ((stretched < 0) | (stretched > 1)).float().mean() > 0.2
    assert loss(stretched, blurred).item() == pytest.approx(loss(stretched.clamp(0, 1), blurred).item(), abs=1e-7)
    with pytest.raises(UnsupportedInputError, match=r"got \(1, 1, 64, 64\) and \(1, 2, 64, 64\)"):
        loss(sharp, torch.cat([sharp, sharp], 1))


def test_the_network_stays_frozen_in_eval_mode(loss):
    before = loss(camera(2.0), camera()).item()
    loss.train()
    assert loss.training and not any(module.training for module in loss.loss.modules())
    assert loss(camera(2.0), camera()).item() == before  # batch norms keep their running statistics


def test_without_the_cache_nothing_is_fetched_run_or_written(tmp_path, monkeypatch, no_network):
    home = tmp_path / "empty-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    with pytest.raises(WeightsUnavailableError, match="pass --allow-download") as caught:
        MonaiPerceptualLoss("radimagenet_resnet50")
    message = str(caught.value)
    assert "\n" not in message and str(home / "hub" / HUB_REPO_FOLDER) in message and "TORCH_HOME" in message
    assert not home.exists()


def test_a_cached_repository_without_its_weights_is_refused_too(fake_monai_hub, no_network):
    (fake_monai_hub / "monai_checkpoints" / RADIMAGENET_WEIGHTS).unlink()
    hub, missing = cache_status()
    assert hub == fake_monai_hub and missing == [fake_monai_hub / "monai_checkpoints" / RADIMAGENET_WEIGHTS]
    with pytest.raises(WeightsUnavailableError, match=f"missing {missing[0]}"):
        MonaiPerceptualLoss("radimagenet_resnet50")
    (fake_monai_hub / RADIMAGENET_WEIGHTS).write_bytes(b"")  # the hub code's first place counts as well
    assert cache_status()[1] == []


def test_allow_download_asks_torch_hub_and_its_failure_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    asked = []

    def offline(request, *args, **kwargs):
        asked.append(getattr(request, "full_url", request))
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "urlopen", offline)
    with pytest.raises(WeightsUnavailableError, match="cannot load perceptual network radimagenet_resnet50 from "
                                                      "torch hub .*no network") as caught:
        MonaiPerceptualLoss("radimagenet_resnet50", allow_download=True)
    assert asked and "Project-MONAI/perceptual-models" in asked[0]
    assert isinstance(caught.value.__cause__, URLError) and "\n" not in str(caught.value)


def test_errors_of_the_hub_code_become_weights_unavailable(fake_monai_hub):
    (fake_monai_hub / "monai_checkpoints" / RADIMAGENET_WEIGHTS).write_bytes(b"not a state dict")
    with pytest.raises(WeightsUnavailableError, match="cannot load perceptual network") as caught:
        MonaiPerceptualLoss("radimagenet_resnet50")
    assert caught.value.__cause__ is not None and "\n" not in str(caught.value)


def test_3d_and_torchvision_networks_are_refused():
    with pytest.raises(ConfigError, match="3-D MedicalNet and fine-tuning trains on 2-D patches"):
        check_perceptual_network("medicalnet_resnet10_23datasets")
    with pytest.raises(ConfigError, match="unknown perceptual network 'alex'"):
        check_perceptual_network("alex")
    with pytest.raises(ConfigError, match="did you mean 'vgg19'"):
        check_perceptual_network("vgg")
    assert check_perceptual_network(" RadImageNet_ResNet50") == "radimagenet_resnet50"
    with pytest.raises(ConfigError, match="unknown MONAI perceptual network 'vgg19'"):
        MonaiPerceptualLoss("vgg19")


def test_the_generator_loss_weighs_the_radimagenet_content(fake_monai_hub):
    generator_loss = GeneratorLoss(LossConfig(content="radimagenet_resnet50", beta=0, gamma=0.5))
    assert isinstance(generator_loss.content, MonaiPerceptualLoss)
    prediction, target = camera(2.0), camera()
    total, parts = generator_loss(prediction, target)
    assert parts["content"].item() == pytest.approx(generator_loss.content(prediction, target).item())
    assert total.item() == pytest.approx(parts["pixel"].item() + 0.5 * parts["content"].item())
