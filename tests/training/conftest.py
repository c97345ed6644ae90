"""Real photographs (scikit-image's) as training images, and a tiny recipe."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
from skimage import data

from srrestore.training.config import TrainingConfig
from srrestore.training.data import TrainingImage, prepare_image


def _photo(name: str, crop: tuple[slice, slice]) -> np.ndarray:
    image = getattr(data, name)()[crop]
    return image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)


PHOTOS = {
    "astronaut": (slice(0, 160), slice(100, 260)),
    "coffee": (slice(100, 260), slice(200, 360)),
    "chelsea": (slice(0, 160), slice(100, 260)),
}


@pytest.fixture(scope="session")
def photos() -> Callable[[int], list[TrainingImage]]:
    """``photos(channels)``: 160x160 crops of astronaut, coffee and chelsea (uint8)."""
    return lambda channels: [prepare_image(_photo(name, crop), channels, name) for name, crop in PHOTOS.items()]


@pytest.fixture(scope="session")
def tiny_config() -> Callable[..., TrainingConfig]:
    """``tiny_config(**overrides)``: test-tiny networks, 32-pixel patches, a few steps, no VGG."""

    def build(**overrides: Any) -> TrainingConfig:
        recipe = {
            "generator": "test-tiny",
            "discriminator": "test-tiny",
            "patch_size": 32,
            "batch_size": 2,
            "pretrain_steps": 4,
            "gan_steps": 2,
            "loss": {"content": "feature-matching", "gamma": 0.01},
            "pretrain_optimizer": {"lr": 2e-3},
            "val_interval": 1000,
            "log_interval": 1,
        }
        recipe.update(overrides)
        return TrainingConfig.from_dict(recipe)

    return build
