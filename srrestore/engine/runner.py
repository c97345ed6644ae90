"""Running the network on windows: device, axes, bands, autocast, guard, crop to the cores."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from srrestore.engine import consistency as guard
from srrestore.engine.compilation import compiled
from srrestore.engine.devices import autocast, to_device
from srrestore.engine.grid import Layout
from srrestore.engine.region import Region
from srrestore.errors import ConfigError

__all__ = ["NetworkRunner"]


class NetworkRunner:
    """Turns a batch of normalised windows into normalised output cores.

    Windows are ``(C, *window)`` over the image's spatial axes. The runner moves
    them to the device, reorders them to the network's axes and drops iterated
    (size-1) axes, folds bands into the batch when a 1-channel network runs on
    a C-band image, runs the network under autocast, applies the consistency
    guard to the whole window, then crops each window to its core.

    Args:
        network: maps ``(B, C_in, *n)`` to ``(B, C_out, *n*scale)``; already on ``device``.
        layout: how the network covers the image.
        out_channels: ``C_out`` of the network.
        band_by_band: run each band through a 1-channel network.
        device: where the network runs.
        dtype: autocast dtype, or None for fp32.
        consistency: None, ``"area"`` or ``"bicubic"``.
        compile: run ``network`` compiled by ``torch.compile`` (``network`` itself stays eager).
        channels_last: run a convolutional network (4-d weights) in channels-last
            memory (its weights are converted in place; their values do not change).
    """

    def __init__(
        self,
        network: nn.Module,
        layout: Layout,
        out_channels: int,
        band_by_band: bool,
        device: torch.device,
        dtype: torch.dtype | None,
        consistency: str | None,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        self.channels_last = channels_last and isinstance(network, nn.Module) and any(
            parameter.ndim == 4 for parameter in network.parameters())
        if self.channels_last:  # in place: each weight is swapped whole, values unchanged, so concurrent runs stay right
            network.to(memory_format=torch.channels_last)
        self.network = network
        self._run_network = compiled(network) if compile else network
        self.layout = layout
        self.out_channels = out_channels
        self.band_by_band = band_by_band
        self.device = device
        self.dtype = dtype
        self.consistency = consistency
        spatial = tuple(2 + axis for axis in (*layout.net_axes, *layout.iterated_axes))
        self._to_network = (0, 1, *spatial)
        # One window (no batch axis): network layout (C, *net, *iterated) back to (C, *spatial).
        self._from_network = tuple(self._to_network.index(axis) - 1 for axis in range(1, len(self._to_network)))
        self._net_scale = tuple(layout.scale[axis] for axis in layout.net_axes)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """``(B, C, *n)`` normalised, network axes only -> ``(B, C_out, *n*scale)`` float32."""
        batch, channels = lr.shape[:2]
        inputs = lr.reshape(batch * channels, 1, *lr.shape[2:]) if self.band_by_band else lr
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), autocast(self.device, self.dtype):
            output = self._run_network(inputs)
        expected = (inputs.shape[0], 1 if self.band_by_band else self.out_channels) + tuple(
            n * s for n, s in zip(lr.shape[2:], self._net_scale)
        )
        if tuple(output.shape) != expected:
            raise ConfigError(
                f"network returned shape {tuple(output.shape)} for input {tuple(inputs.shape)}; "
                f"its spec promises {expected}"
            )
        output = output.float()
        return output.reshape(batch, channels, *output.shape[2:]) if self.band_by_band else output

    def __call__(
        self, windows: Sequence[torch.Tensor], cores: Sequence[Region]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Run a batch.

        Args:
            windows: ``B`` tensors ``(C, *window)`` of normalised float32 values
                (pinned host memory on CUDA), all the same shape.
            cores: per window, the box of its core relative to the window
                (image axis order): what is kept of the output.

        Returns:
            ``sr``: ``B`` tensors ``(C_out, *core*scale)`` float32 on the host;
            ``residual``: ``B`` tensors ``(C, *core)`` float32 on the host,
            ``lr - degrade(sr)`` with the guard's degradation (area when there is no guard).
        """
        stacked = torch.stack([to_device(window, self.device) for window in windows])
        permuted = stacked.permute(self._to_network)
        net_ndim = len(self.layout.net_axes)
        lr = permuted.reshape(permuted.shape[: 2 + net_ndim])
        sr = self.forward(lr)
        if self.consistency is not None:
            sr = guard.project(sr, lr, self._net_scale, self.consistency)
        error = guard.residual(sr, lr, self._net_scale, self.consistency)
        kept_sr, kept_error = [], []
        for index, core in enumerate(cores):
            net_core = Region(tuple(core.start[axis] for axis in self.layout.net_axes),
                              tuple(core.stop[axis] for axis in self.layout.net_axes))
            kept_sr.append(self._restore_axes(sr[(index, slice(None), *net_core.scaled(self._net_scale).slices())]).cpu())
            kept_error.append(self._restore_axes(error[(index, slice(None), *net_core.slices())]).cpu())
        return kept_sr, kept_error

    def _restore_axes(self, values: torch.Tensor) -> torch.Tensor:
        """Network layout ``(C, *net)`` back to image layout ``(C, *spatial)``."""
        ones = (1,) * len(self.layout.iterated_axes)
        return values.reshape(*values.shape, *ones).permute(self._from_network)
