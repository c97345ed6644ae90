"""Real images as loss inputs, and a shared random-weight VGG19 loss."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import torch
from skimage import data
from torch.nn import functional as F

from srrestore.losses.perceptual import PerceptualLoss


def _bands(bands: int, size: int) -> torch.Tensor:
    """``(1, bands, size, size)`` in [0, 1]: astronaut RGB, chelsea RGB, camera, cycled; area-downsampled."""
    stack = np.concatenate(
        [data.astronaut()[:300, :300], data.chelsea()[:300, :300], data.camera()[:300, :300, None]], axis=-1
    )
    chosen = stack[..., [band % stack.shape[-1] for band in range(bands)]]
    images = torch.from_numpy(chosen.astype(np.float32) / 255).permute(2, 0, 1)[None]
    return F.adaptive_avg_pool2d(images, size)


@pytest.fixture(scope="session")
def real_images() -> Callable[[int, int], torch.Tensor]:
    """``real_images(bands, size) -> (1, bands, size, size)`` crops of scikit-image's photographs."""
    return _bands


@pytest.fixture(scope="session")
def random_vgg_loss() -> PerceptualLoss:
    """SRGAN's ``relu5_4`` loss on the fixed-seed random VGG19 (built once: it takes about a second)."""
    return PerceptualLoss("relu5_4", weights="random")
