"""Running the network on padded windows: device, axes, bands, autocast, guard, crop."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from srrestore.engine import consistency as guard
from srrestore.engine.devices import autocast
from srrestore.engine.grid import Layout
from srrestore.errors import ConfigError

__all__ = ["NetworkRunner"]


class NetworkRunner:
    """Turns a batch of normalised windows into normalised output cores.

    Windows are ``(C, *window)`` over the image's spatial axes. The runner moves
    them to the device, reorders them to the network's axes and drops iterated
    (size-1) axes, folds bands into the batch when a 1-channel network runs on
    a C-band image, runs the network under autocast, applies the consistency
    guard to the whole window, then crops the halo.

    Args:
        network: maps ``(B, C_in, *n)`` to ``(B, C_out, *n*scale)``; already on ``device``.
        layout: how the network covers the image.
        out_channels: ``C_out`` of the network.
        band_by_band: run each band through a 1-channel network.
        device: where the network runs.
        dtype: autocast dtype, or None for fp32.
        consistency: None, ``"area"`` or ``"bicubic"``.
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
    ) -> None:
        self.network = network
        self.layout = layout
        self.out_channels = out_channels
        self.band_by_band = band_by_band
        self.device = device
        self.dtype = dtype
        self.consistency = consistency
        spatial = tuple(2 + axis for axis in (*layout.net_axes, *layout.iterated_axes))
        self._to_network = (0, 1, *spatial)
        self._from_network = tuple(self._to_network.index(axis) for axis in range(len(self._to_network)))
        self._net_scale = tuple(layout.scale[axis] for axis in layout.net_axes)
        self._net_halo = tuple(layout.halo[axis] for axis in layout.net_axes)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """``(B, C, *n)`` normalised, network axes only -> ``(B, C_out, *n*scale)`` float32."""
        batch, channels = lr.shape[:2]
        inputs = lr.reshape(batch * channels, 1, *lr.shape[2:]) if self.band_by_band else lr
        with torch.no_grad(), autocast(self.device, self.dtype):
            output = self.network(inputs)
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

    def __call__(self, windows: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Run a batch.

        Args:
            windows: ``B`` tensors ``(C, *window)`` of normalised float32 values
                (pinned host memory on CUDA), all the same shape.

        Returns:
            ``sr``: ``(B, C_out, *core*scale)`` float32 on the host;
            ``residual``: ``(B, C, *core)`` float32 on the host, ``lr - degrade(sr)``
            with the guard's degradation (area when there is no guard).
        """
        stacked = torch.stack([window.to(self.device, non_blocking=True) for window in windows])
        permuted = stacked.permute(self._to_network)
        net_ndim = len(self.layout.net_axes)
        lr = permuted.reshape(permuted.shape[: 2 + net_ndim])
        sr = self.forward(lr)
        if self.consistency is not None:
            sr = guard.project(sr, lr, self._net_scale, self.consistency)
        error = guard.residual(sr, lr, self._net_scale, self.consistency)
        sr = sr[(slice(None), slice(None), *(slice(h * s, n - h * s) for h, s, n in
                                             zip(self._net_halo, self._net_scale, sr.shape[2:])))]
        error = error[(slice(None), slice(None), *(slice(h, n - h) for h, n in zip(self._net_halo, error.shape[2:])))]
        return self._restore_axes(sr).cpu(), self._restore_axes(error).cpu()

    def _restore_axes(self, values: torch.Tensor) -> torch.Tensor:
        """Network layout ``(B, C, *net)`` back to image layout ``(B, C, *spatial)``."""
        ones = (1,) * len(self.layout.iterated_axes)
        return values.reshape(*values.shape, *ones).permute(self._from_network)
