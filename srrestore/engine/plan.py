"""Engine options, checked once against an image and a model: the :class:`Plan` of a run.

Both tiled inference and the whole-image reference run from the same plan, so
they agree on axes, halo, bands, device, precision and guard.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from srrestore.engine import consistency as guard
from srrestore.engine.devices import precision_choice, resolve_device
from srrestore.engine.grid import Layout, make_layout
from srrestore.engine.io import ImageSpec
from srrestore.engine.normalize import Normalization
from srrestore.engine.runner import NetworkRunner
from srrestore.errors import ConfigError, SRRestoreWarning, UnsupportedInputError, check_choice
from srrestore.models.spec import ModelSpec

__all__ = ["UpscaleOptions", "Plan", "make_plan"]


@dataclass
class UpscaleOptions:
    """How the engine runs.

    Attributes:
        tile_size: LR pixels per tile side; None sizes it from free device memory.
        batch_size: windows per forward; None sizes it from free device memory.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:i`` or ``mps``.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (autocast for the network only).
        progress: show a tqdm bar on stderr (tiles, megapixels/s, ETA).
        consistency: None, ``"area"`` or ``"bicubic"``: the guard projecting the
            output onto the input under that degradation.
        plane_axes: for volumes, the two spatial axes a 2-D network sees; the
            other axis is walked plane by plane with a factor of 1.
        halo: LR pixels read around each tile per side; None takes the model's
            receptive field (plus what the guard needs). Smaller is refused.
        pad_edges: replicate edge pixels by the halo past the image's edges
            instead of letting the network pad there as it does on its training
            patches (the default, which scores higher and runs faster on small
            images). Tiled output equals whole-image output either way.
        compile: run the network compiled by ``torch.compile`` (see
            :mod:`srrestore.engine.compilation`): faster on large images after a
            one-off compilation; outputs agree with eager ones to float rounding.
        concurrent_runs: runs sharing the device at once (the threads of a Dask
            worker): automatic tile and batch sizes take ``1/concurrent_runs`` of
            the memory budget each.
    """

    tile_size: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    progress: bool = False
    consistency: str | None = None
    plane_axes: tuple[int, int] = (-2, -1)
    halo: int | None = None
    pad_edges: bool = False
    compile: bool = False
    concurrent_runs: int = 1


@dataclass(frozen=True)
class Plan:
    """Everything a run needs that does not change while it runs.

    Attributes:
        layout: how the network covers the image (axes, factors, halo).
        band_by_band: a 1-channel network runs on each band of a C-band image.
        out_channels: channels of the output image.
        dtype: numpy dtype of input and output.
        nodata: the image's nodata value (NaN allowed) or None.
        device: where the network runs.
        autocast_dtype: reduced precision for the network, or None (fp32).
        consistency: None, ``"area"`` or ``"bicubic"``.
        compile: run the network compiled by ``torch.compile``.
        precision_note: the precision chosen and why, e.g. ``"bf16 (auto: cuda:0,
            compute capability 8.0, native bf16)"`` (see :func:`~srrestore.engine.devices.precision_choice`).
        channels_last: run a 2-d network in channels-last memory (``precision="auto"``
            on the CPU: 1.10-1.14x faster on the RGB x4 and grey x2 built-ins at 128 and 304 px,
            one thread, in paired runs on a 2-core AMD EPYC;
            outputs within float32 rounding of the contiguous run's).
    """

    layout: Layout
    band_by_band: bool
    out_channels: int
    dtype: np.dtype
    nodata: float | None
    device: torch.device
    autocast_dtype: torch.dtype | None
    consistency: str | None
    compile: bool = False
    precision_note: str = ""
    channels_last: bool = False

    def runner(self, network: nn.Module) -> NetworkRunner:
        """Move ``network`` to the device and wrap it for this plan."""
        network.to(self.device)
        return NetworkRunner(
            network, self.layout, self.out_channels, self.band_by_band, self.device, self.autocast_dtype,
            self.consistency, self.compile, self.channels_last,
        )


def _check_channels(channels: int, spec: ModelSpec, normalization: Normalization) -> bool:
    """Whether bands run one by one; refuses any other channel mismatch."""
    if normalization.channels not in (1, channels):
        raise ConfigError(f"normalisation has {normalization.channels} channels, the image has {channels}")
    if spec.in_channels == spec.out_channels == channels:
        return False
    if spec.in_channels == spec.out_channels == 1:
        return True
    raise UnsupportedInputError(
        f"model takes {spec.in_channels} channel(s) and returns {spec.out_channels}; the image has {channels}"
    )


def _check_nodata(dtype: np.dtype, nodata: float | None) -> None:
    if nodata is None or not np.issubdtype(dtype, np.integer):
        return
    info = np.iinfo(dtype)
    if not (math.isfinite(nodata) and float(nodata).is_integer() and info.min <= nodata <= info.max):
        raise UnsupportedInputError(f"nodata {nodata} is not a {dtype} value")


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def make_plan(image: ImageSpec, spec: ModelSpec, normalization: Normalization, options: UpscaleOptions) -> Plan:
    """Check the options against an image and a model.

    Raises:
        ConfigError: an option is invalid, or the halo is below the receptive field.
        UnsupportedInputError: the image's channels, axes, dtype or nodata do not fit.
    """
    dtype = np.dtype(image.dtype)
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise UnsupportedInputError(f"dtype {dtype} is not supported; use an integer or float dtype")
    _check_nodata(dtype, image.nodata)
    band_by_band = _check_channels(image.channels, spec, normalization)
    _check_positive("tile_size", options.tile_size)
    _check_positive("batch_size", options.batch_size)
    _check_positive("concurrent_runs", options.concurrent_runs)
    method = None if options.consistency is None else check_choice("consistency", options.consistency, guard.METHODS)
    required = spec.receptive_field + guard.extra_halo(method)
    halo = required if options.halo is None else options.halo
    if halo < required:
        raise ConfigError(
            f"halo {halo} is below the {required} LR pixels the model's receptive field"
            f"{' and the bicubic guard' if method == 'bicubic' else ''} need; tiles would not match whole-image output"
        )
    if not spec.tileable:
        warnings.warn("this model is not tileable: tiled output may differ from whole-image output",
                      SRRestoreWarning, stacklevel=3)
    layout = make_layout(
        tuple(image.shape), spec, tuple(options.plane_axes), halo, options.pad_edges  # type: ignore[arg-type]
    )
    if method == "bicubic" and len(layout.net_axes) != 2:
        raise ConfigError("consistency 'bicubic' needs a 2-d network; use 'area' for volumes")
    multiple = layout.multiple
    if options.tile_size is not None and options.tile_size % multiple:
        raise ConfigError(f"tile_size {options.tile_size} must be a multiple of the model's size multiple {multiple}")
    device = resolve_device(options.device)
    autocast_dtype, precision_note = precision_choice(options.precision, device)
    channels_last = options.precision == "auto" and device.type == "cpu" and len(layout.net_axes) == 2
    if channels_last:
        precision_note += "; channels-last memory (auto: cpu)"
    return Plan(
        layout=layout,
        band_by_band=band_by_band,
        out_channels=image.channels if band_by_band else spec.out_channels,
        dtype=dtype,
        nodata=image.nodata,
        device=device,
        autocast_dtype=autocast_dtype,
        consistency=method,
        compile=options.compile,
        precision_note=precision_note,
        channels_last=channels_last,
    )
