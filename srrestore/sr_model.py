"""`SRModel`: a loaded generator plus what is needed to run it on real data."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from srrestore.engine.io import valid_mask
from srrestore.engine.normalize import Normalization
from srrestore.errors import ConfigError, UnsupportedInputError, check_choice
from srrestore.models.checkpoint import CheckpointInfo, file_sha256, load_generator
from srrestore.models.generator import SRGenerator
from srrestore.models.onnx import OnnxGenerator, is_onnx, load_onnx
from srrestore.models.registry import resolve_checkpoint
from srrestore.models.spec import ModelSpec

__all__ = ["BACKENDS", "SRModel", "load_model", "SUPPORTED_DTYPES"]

BACKENDS = ("auto", "torch", "onnxruntime")

# Every numeric GDAL dtype but complex; float16 is left out (rasterio 1.4 on GDAL 3.10 cannot write it).
# Outputs keep the input's dtype; integer outputs are rounded and clipped into it.
SUPPORTED_DTYPES = (
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64",
)


class SRModel:
    """A generator ready for inference on numpy arrays or through the engine.

    Attributes:
        network: the generator, in eval mode.
        info: what its checkpoint records (config, phase, training summary, card).
        source: checkpoint path (None for an in-memory network).
        device, precision: engine settings used by :meth:`upscale`.
    """

    def __init__(
        self,
        network: SRGenerator | OnnxGenerator,
        info: CheckpointInfo,
        source: Path | None = None,
        device: str = "auto",
        precision: str = "auto",
    ) -> None:
        self.network = network.eval()
        self.info = info
        self.source = source
        self.device = device
        self.precision = precision

    @property
    def spec(self) -> ModelSpec:
        return self.network.spec

    @property
    def name(self) -> str:
        return self.source.name.removesuffix(".safetensors").removesuffix(".onnx") if self.source else "in-memory"

    @property
    def backend(self) -> str:
        """``"onnxruntime"`` for an ONNX export, else ``"torch"``."""
        return "onnxruntime" if isinstance(self.network, OnnxGenerator) else "torch"

    @cached_property
    def sha256(self) -> str:
        """SHA-256 of the checkpoint file (provenance), or "" for an in-memory network."""
        return file_sha256(self.source) if self.source else ""

    def check_channels(self, channels: int) -> None:
        """Refuse data the network cannot take (1-channel models take any band count, band by band)."""
        if channels != self.spec.in_channels and self.spec.in_channels != 1:
            raise UnsupportedInputError(
                f"model {self.name} takes {self.spec.in_channels} channels, the data has {channels}"
            )

    @staticmethod
    def normalization_for(sample: np.ndarray, nodata: float | None = None) -> Normalization:
        """The intensity map for data like ``sample`` (``(C, *spatial)`` stored values).

        uint8: the dtype's full range ``[0, 255]``. Every other dtype (int8, the
        16-, 32- and 64-bit integers, float32, float64): per-channel 0.5/99.5
        percentiles of the valid pixels, since such data rarely fill their
        dtype's range (invariants I1, I3). The map is recorded in outputs.

        Args:
            sample: ``(C, *spatial)`` stored values of any supported dtype.
            nodata: value of invalid pixels (excluded from the percentiles), or None.
        """
        if sample.dtype == np.uint8:
            return Normalization.for_dtype(np.uint8, sample.shape[0])
        return Normalization.from_percentiles(sample, valid_mask(sample, nodata))

    def upscale(
        self,
        array: np.ndarray,
        nodata: float | None = None,
        tile_size: int | None = None,
        batch_size: int | None = None,
        progress: bool = False,
        compile: bool = False,
        channels_last: bool = False,
    ) -> np.ndarray:
        """Upscale a numpy image, returning the same dtype and layout.

        Layout: a 2-D array is ``(H, W)``; a 3-D array is channels-first
        ``(C, H, W)``, or ``(H, W, C)`` with ``channels_last=True``. A 3-D array
        that looks channels-last is refused rather than read as ``H`` channels:
        its last axis is 1, 3 or 4 and its first axis is not a channel count the
        model takes (the model's ``in_channels``; for a 1-channel model, which
        takes any band count band by band, a first axis above 4).

        Args:
            array: ``(H, W)``, ``(C, H, W)`` or, with ``channels_last``, ``(H, W, C)``;
                any dtype of ``SUPPORTED_DTYPES``.
            nodata: value marking invalid pixels (kept as nodata in the output).
            tile_size: engine option (None: automatic); see :class:`srrestore.engine.UpscaleOptions`.
            batch_size: engine option (None: automatic); see :class:`srrestore.engine.UpscaleOptions`.
            progress: show a progress bar on stderr.
            compile: run the network compiled by ``torch.compile``.
            channels_last: ``array`` is ``(H, W, C)``, as images from PIL or
                imageio are; the result is then ``(H*sy, W*sx, C)``.

        Returns:
            ``(H*sy, W*sx)``, ``(C, H*sy, W*sx)`` or ``(H*sy, W*sx, C)`` array of ``array.dtype``.

        Raises:
            UnsupportedInputError: an unsupported dtype, not 2-D or 3-D (3-D for
                ``channels_last``), an empty array, an array that looks
                channels-last (the message says how to pass it), or a channel
                count the model does not take.
        """
        from srrestore.engine import UpscaleOptions, upscale_array

        if array.dtype.name not in SUPPORTED_DTYPES:
            raise UnsupportedInputError(f"dtype {array.dtype} is not supported; use one of {', '.join(SUPPORTED_DTYPES)}")
        if channels_last and array.ndim != 3:
            raise UnsupportedInputError(f"channels_last=True expects an (H, W, C) array, got shape {array.shape}")
        if array.ndim not in (2, 3):
            raise UnsupportedInputError(f"expected an (H, W) or (C, H, W) array, got shape {array.shape}")
        if array.size == 0:
            raise UnsupportedInputError(f"array of shape {array.shape} is empty: there is nothing to upscale")
        channels = self.spec.in_channels
        takes_first_axis = array.shape[0] == channels if channels > 1 else array.shape[0] <= 4
        if array.ndim == 3 and not channels_last and array.shape[-1] in (1, 3, 4) and not takes_first_axis:
            raise UnsupportedInputError(
                f"array of shape {array.shape} looks channels-last (H, W, C); pass channels_last=True "
                "or array.transpose(2, 0, 1)"
            )
        if channels_last:
            image = np.moveaxis(array, -1, 0)
        else:
            image = array[None] if array.ndim == 2 else array
        self.check_channels(image.shape[0])
        options = UpscaleOptions(
            tile_size=tile_size, batch_size=batch_size, device=self.device, precision=self.precision, progress=progress,
            compile=compile,
        )
        normalization = self.normalization_for(image, nodata)
        result = upscale_array(image, self.network, self.spec, normalization, options, nodata=nodata)
        if channels_last:
            return np.ascontiguousarray(np.moveaxis(result, 0, -1))
        return result[0] if array.ndim == 2 else result


def load_model(
    name_or_path: str = "default",
    scale: int | tuple[int, int] | None = None,
    channels: int = 3,
    phase: str = "psnr",
    device: str = "auto",
    precision: str = "auto",
    backend: str = "auto",
) -> SRModel:
    """Load a built-in model, a checkpoint file or an ONNX export.

    Args:
        name_or_path: ``"default"``, a built-in name (``srrestore models``), a
            ``.safetensors`` / ``.pth`` path, or an ``.onnx`` file from ``srrestore export``.
        scale: upscale factor wanted: ``s`` (the model's largest factor), or
            ``(sy, sx)`` exactly (``(s, 1)``: a through-plane model); None takes
            the model's own (``"default"`` then means 4). A model of another scale is refused.
        channels: channels of the data, to pick the RGB or 1-channel built-in.
        phase: ``"psnr"`` (faithful, the default) or ``"gan"`` (sharper) built-in.
        device: where the engine runs it (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``).
        precision: how the engine runs it (``"auto"``, ``"fp32"``, ``"bf16"``, ``"fp16"``).
        backend: ``"torch"``, ``"onnxruntime"`` (an ``.onnx`` file) or ``"auto"`` (by the file's suffix).

    Raises:
        ConfigError: a backend that cannot run the file, or a model of another scale.
    """
    backend = check_choice("backend", backend, BACKENDS)
    path = resolve_checkpoint(name_or_path, scale or 4, channels, phase)
    if backend == "auto":
        backend = "onnxruntime" if is_onnx(path) else "torch"
    if (backend == "onnxruntime") != is_onnx(path):
        hint = "" if is_onnx(path) else f"; export it first: srrestore export {name_or_path} --out model.onnx"
        raise ConfigError(f"backend {backend} cannot run {path.name}{hint}")
    network, info = load_onnx(path) if backend == "onnxruntime" else load_generator(path)
    model = SRModel(network, info, path, device, precision)
    if scale is not None and (tuple(model.spec.scale) != tuple(scale) if isinstance(scale, tuple)
                              else max(model.spec.scale) != scale):
        wanted = scale if isinstance(scale, int) else "x".join(map(str, scale))
        raise ConfigError(f"model {model.name} upscales by {'x'.join(map(str, model.spec.scale))}, not {wanted}")
    return model
