"""Fixtures for the engine tests: analytic predictors whose stitched output is known exactly,
small seeded generators, and real images from scikit-image."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skimage import data
from torch import nn
from torch.nn import functional as F

from srrestore.models.generator import SRGenerator, create_generator
from srrestore.models.spec import ModelSpec


class NearestUpsampler(nn.Module):
    """``(B, C, H, W) -> (B, C, H*sy, W*sx)`` nearest-neighbour upsampling plus ``offset``; receptive field 0."""

    def __init__(self, channels: int = 1, scale: tuple[int, ...] = (2, 2), offset: float = 0.0) -> None:
        super().__init__()
        self.scale = scale
        self.offset = offset
        self.spec = ModelSpec(scale=scale, in_channels=channels, out_channels=channels, receptive_field=0)
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        for axis, factor in enumerate(self.scale, start=2):
            x = x.repeat_interleave(factor, dim=axis)
        return x + self.offset


class BoxThenNearest(nn.Module):
    """3x3 mean with zero padding, then nearest upsampling by 2: receptive field 1.

    Zero padding differs from edge padding, so a wrong halo or wrong edge
    handling shows in the stitched output.
    """

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.channels = channels
        self.spec = ModelSpec(scale=(2, 2), in_channels=channels, out_channels=channels, receptive_field=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = torch.full((self.channels, 1, 3, 3), 1 / 9, dtype=x.dtype)
        return F.interpolate(F.conv2d(x, kernel, padding=1, groups=self.channels), scale_factor=2, mode="nearest")


class FailsWhenLarge(nn.Module):
    """Wraps a network; raises a CUDA-style out-of-memory error for inputs above ``limit`` values."""

    def __init__(self, network: nn.Module, limit: int) -> None:
        super().__init__()
        self.network = network
        self.limit = limit
        self.failures = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() > self.limit:
            self.failures += 1
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return self.network(x)


def seeded_generator(name: str, residual_gain: float = 1.0, **overrides: object) -> SRGenerator:
    """A generator with fixed random weights (position bias included, so attention is not uniform).

    ``residual_gain`` scales the learned residual added to the bicubic skip: below 1
    the output stays near the input's range, as a trained model's does.
    """
    torch.manual_seed(1234)
    network = create_generator(name, **overrides).eval()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
        network.upsample[0].weight.mul_(residual_gain)
        network.upsample[0].bias.mul_(residual_gain)
    return network


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """``(3, 80, 96)`` uint8 crop of scikit-image's astronaut (face and edges)."""
    return np.ascontiguousarray(data.astronaut()[60:140, 170:266].transpose(2, 0, 1))


@pytest.fixture(scope="session")
def camera() -> np.ndarray:
    """``(1, 72, 90)`` uint8 crop of scikit-image's camera man."""
    return np.ascontiguousarray(data.camera()[100:172, 200:290][None])


@pytest.fixture(scope="session")
def tiny_rgb() -> SRGenerator:
    """Seeded test-tiny generator, RGB, x2."""
    return seeded_generator("test-tiny", in_channels=3, scale=2)


@pytest.fixture(scope="session")
def tiny_gray() -> SRGenerator:
    """Seeded test-tiny generator, 1 channel, x2."""
    return seeded_generator("test-tiny", in_channels=1, scale=2)


@pytest.fixture(scope="session")
def nets() -> SimpleNamespace:
    """The analytic networks and the generator factory above, for tests to build with their own settings."""
    return SimpleNamespace(
        NearestUpsampler=NearestUpsampler,
        BoxThenNearest=BoxThenNearest,
        FailsWhenLarge=FailsWhenLarge,
        seeded_generator=seeded_generator,
    )
