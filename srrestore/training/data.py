"""Training and validation data: random HR patches with LR inputs made on the fly.

Images are read once into memory in their stored dtype by a reader the caller
passes in (the CLI passes :func:`srrestore.domains.image.read_image`), so the
core imports no image-format library. Each is cropped to a multiple of the
scale (the protocol's "modcrop"), converted to the wanted channel count and
mirrored by the degradation's margin, so the LR input of a patch equals the
crop of the whole image's degradation at that place.

Patches are deterministic: item ``index`` of :class:`PatchDataset` is a pure
function of ``(seed, index)``, whatever the worker, process or sampler. The
index is a key: any integer ``>= 0`` is valid and indices past ``len()``
give new patches. :class:`StepSampler` hands step ``k`` of rank ``r`` the keys
``(k * world_size + r) * batch_size + j``, so training resumes exactly and
ranks never share a patch; any other sampler (e.g. ``DistributedSampler``)
works too.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from srrestore.errors import ConfigError, InputReadError, SRRestoreWarning, UnsupportedInputError
from srrestore.metrics import sr_metrics
from srrestore.training.degradation import Degradation, upscale_bicubic

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageReader",
    "TrainingImage",
    "unit_intensity",
    "find_images",
    "prepare_image",
    "load_images",
    "split_images",
    "images_fingerprint",
    "PatchDataset",
    "ValidationPair",
    "ValidationSet",
    "StepSampler",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma, as Pillow's "L" conversion
VALIDATION_KEY = 1 << 40  # keeps validation degradations apart from training keys

ImageReader = Callable[[Path], np.ndarray]
"""Reads a file into ``(C, H, W)`` stored values (uint8, uint16 or float in [0, 1])."""


@dataclass(frozen=True)
class TrainingImage:
    """One image held in memory.

    Attributes:
        name: file path (for messages and fingerprints).
        pixels: ``(C, H, W)`` stored values, uint8, uint16 or float32 in ``[0, 1]``.
        levels: the integer grid (255, 65535) or None for float data.
    """

    name: str
    pixels: np.ndarray
    levels: int | None

    def unit(self) -> np.ndarray:
        """The image as float64 in ``[0, 1]``, ``(C, H, W)``."""
        return unit_intensity(self.pixels, self.levels)


def unit_intensity(pixels: np.ndarray, levels: int | None) -> np.ndarray:
    """Stored values to float64 in ``[0, 1]`` (``pixels / levels``)."""
    values = np.asarray(pixels, dtype=np.float64)
    return values / levels if levels is not None else np.clip(values, 0.0, 1.0)


def find_images(folders: Sequence[str | Path]) -> list[Path]:
    """Every image file under ``folders`` (recursively, hidden files skipped), sorted.

    Raises:
        InputReadError: a folder does not exist.
        ConfigError: no image at all (the message names the suffixes looked for).
    """
    found: list[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise InputReadError(f"training folder not found: {folder}")
        found += sorted(
            path
            for path in folder.rglob("*")
            if path.suffix.lower() in IMAGE_SUFFIXES
            and path.is_file()
            and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        )
    if not found:
        names = ", ".join(str(folder) for folder in folders)
        raise ConfigError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {names}")
    return found


def prepare_image(array: np.ndarray, channels: int, name: str) -> TrainingImage:
    """Bring a ``(C, H, W)`` image read from ``name`` to ``channels`` channels.

    RGB(A) becomes 1 channel through BT.601 luma (rounded back to the stored
    dtype, as if the file were grey); grey becomes 3 channels by repetition;
    an alpha channel is dropped. Other channel counts must match exactly.

    Raises:
        UnsupportedInputError: unsupported dtype or channel count.
    """
    if array.ndim != 3:
        raise UnsupportedInputError(f"{name}: expected a (C, H, W) image, got shape {array.shape}")
    if array.dtype == np.uint8 or array.dtype == np.uint16:
        levels: int | None = int(np.iinfo(array.dtype).max)
    elif array.dtype.kind == "f":
        levels, array = None, array.astype(np.float32)
    else:
        raise UnsupportedInputError(f"{name}: training images must be uint8, uint16 or float, got {array.dtype}")
    have = array.shape[0]
    if have in (2, 4) and channels in (1, 3):
        array, have = array[: have - 1], have - 1
    if have == 3 and channels == 1:
        luma = np.tensordot(np.asarray(LUMA_WEIGHTS), array.astype(np.float64), axes=1)[None]
        array = luma.astype(np.float32) if levels is None else np.rint(luma).astype(array.dtype)
    elif have == 1 and channels == 3:
        array = np.repeat(array, 3, axis=0)
    elif have != channels:
        raise UnsupportedInputError(f"{name}: has {have} channels, training asks for {channels}")
    return TrainingImage(name, np.ascontiguousarray(array), levels)


def load_images(paths: Sequence[Path], channels: int, reader: ImageReader) -> list[TrainingImage]:
    """Read and prepare every file (see :func:`prepare_image`)."""
    return [prepare_image(reader(path), channels, str(path)) for path in paths]


def split_images(
    images: Sequence[TrainingImage], fraction: float, seed: int
) -> tuple[list[TrainingImage], list[TrainingImage]]:
    """Hold out a deterministic ``fraction`` of the images (at least one) for validation.

    Returns:
        ``(training, held_out)``.
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction}")
    if len(images) < 2:
        raise ConfigError(f"cannot hold out a validation split from {len(images)} image(s); give --val-dir")
    order = np.random.default_rng([seed, VALIDATION_KEY]).permutation(len(images))
    held = set(order[: max(1, round(fraction * len(images)))].tolist())
    return (
        [image for index, image in enumerate(images) if index not in held],
        [image for index, image in enumerate(images) if index in held],
    )


def images_fingerprint(images: Sequence[TrainingImage]) -> str:
    """Short hash of the image names, shapes and contents (to check a resumed run's data)."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(Path(image.name).name.encode())
        digest.update(str(image.pixels.shape).encode())
        digest.update(image.pixels.tobytes())
    return digest.hexdigest()[:16]


def _modcrop(pixels: np.ndarray, scale: tuple[int, int]) -> np.ndarray:
    height, width = pixels.shape[-2:]
    return pixels[:, : height - height % scale[0], : width - width % scale[1]]


def augment_pair(
    lr: np.ndarray, hr: np.ndarray, rng: np.random.Generator, scale: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The same random flips (and transpose, for equal factors) of an LR/HR pair of ``(C, h, w)`` arrays."""
    flip_rows, flip_columns, transpose = rng.random(3) < 0.5
    if flip_rows:
        lr, hr = lr[:, ::-1], hr[:, ::-1]
    if flip_columns:
        lr, hr = lr[:, :, ::-1], hr[:, :, ::-1]
    if transpose and scale[0] == scale[1]:
        lr, hr = lr.transpose(0, 2, 1), hr.transpose(0, 2, 1)
    return lr, hr


class PatchDataset(Dataset):
    """Random ``(lr, hr)`` patch pairs from images held in memory.

    Item ``index`` draws from ``numpy.random.default_rng([seed, index])``: an
    image (uniformly), an LR-aligned position, the degradation's random
    parameters, then flips (and a transpose for square patches of an isotropic
    scale) when ``augment``.

    Args:
        images: the training images; those smaller than the patch are skipped
            with a warning.
        patch_size: HR patch side in pixels, a multiple of both scale factors.
        degradation: how LR inputs are made.
        seed: the data seed.
        augment: random flips and transposes.
        length: nominal ``len()`` (default: one patch per image).

    Items are ``(lr, hr)`` float32 tensors ``(C, patch / sy, patch / sx)`` and
    ``(C, patch, patch)`` in ``[0, 1]``.

    Raises:
        ConfigError: bad patch size, or no image is large enough.
    """

    def __init__(
        self,
        images: Sequence[TrainingImage],
        patch_size: int,
        degradation: Degradation,
        seed: int = 0,
        augment: bool = True,
        length: int | None = None,
    ) -> None:
        self.scale = degradation.scale
        if patch_size < 1 or any(patch_size % factor for factor in self.scale):
            raise ConfigError(f"patch size {patch_size} must be a positive multiple of the scale {self.scale}")
        self.patch_size = patch_size
        self.degradation = degradation
        self.seed = seed
        self.augment = augment
        margin = degradation.margin
        self.margin_hr = (margin[0] * self.scale[0], margin[1] * self.scale[1])
        usable = [image for image in images if min(_modcrop(image.pixels, self.scale).shape[-2:]) >= patch_size]
        skipped = len(images) - len(usable)
        if not usable:
            raise ConfigError(f"no training image is at least {patch_size} pixels on each side (the patch size)")
        if skipped:
            warnings.warn(f"{skipped} image(s) smaller than the {patch_size}-pixel patch are skipped", SRRestoreWarning)
        self.images = usable
        self._padded = [self._pad(image.pixels) for image in usable]
        self.length = length if length is not None else len(usable)

    def _pad(self, pixels: np.ndarray) -> np.ndarray:
        (my, mx) = self.margin_hr
        return np.pad(_modcrop(pixels, self.scale), ((0, 0), (my, my), (mx, mx)), mode="symmetric")

    def __len__(self) -> int:
        return self.length

    def summary(self) -> dict[str, Any]:
        """What a model's training summary records about these patches."""
        return {"images": len(self.images)}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index < 0:
            raise IndexError(f"patch index must be >= 0, got {index}")
        rng = np.random.default_rng([self.seed, int(index)])
        which = int(rng.integers(len(self.images)))
        image, padded = self.images[which], self._padded[which]
        (sy, sx), (my, mx), patch = self.scale, self.margin_hr, self.patch_size
        height = padded.shape[1] - 2 * my
        width = padded.shape[2] - 2 * mx
        top = int(rng.integers((height - patch) // sy + 1)) * sy
        left = int(rng.integers((width - patch) // sx + 1)) * sx
        window = unit_intensity(padded[:, top : top + patch + 2 * my, left : left + patch + 2 * mx], image.levels)
        lr = self.degradation.apply(window, rng, image.levels)
        lr = lr[:, my // sy : my // sy + patch // sy, mx // sx : mx // sx + patch // sx]
        hr = window[:, my : my + patch, mx : mx + patch].astype(np.float32)
        if self.augment:
            lr, hr = augment_pair(lr, hr, rng, self.scale)
        return torch.from_numpy(np.ascontiguousarray(lr)), torch.from_numpy(np.ascontiguousarray(hr))



@dataclass(frozen=True)
class ValidationPair:
    """One validation image: ``hr`` ``(C, H, W)`` float64 and its ``lr`` ``(C, H/sy, W/sx)`` float32."""

    name: str
    lr: np.ndarray
    hr: np.ndarray
    levels: int | None


class ValidationSet:
    """Whole images degraded once, measured with the benchmark protocol.

    Each HR image is cropped to a multiple of the scale and degraded with a
    fixed random stream; predictions are clipped to ``[0, 1]``, rounded to the
    source's grid and compared on BT.601 ``Y`` (RGB) or all channels, with
    ``max(scale)`` pixels shaved per border (``sy, sx`` for anisotropic scales).

    Args:
        name: label in logs and model cards (e.g. ``"Set5"``).
        images: the HR images.
        degradation: how LR inputs are made.
        seed: the data seed.
    """

    def __init__(self, name: str, images: Sequence[TrainingImage], degradation: Degradation, seed: int = 0) -> None:
        if not images:
            raise ConfigError(f"validation set {name!r} has no image")
        self.name = name
        self.scale = degradation.scale
        channels = "BT.601 Y" if images[0].pixels.shape[0] == 3 else "all channels"
        factors = f"x{self.scale[0]}" if self.scale[0] == self.scale[1] else "x".join(map(str, self.scale))
        self.protocol = (f"{degradation.kernel} downscaling {factors} (MATLAB imresize), outputs rounded to the "
                         f"source grid, {channels}, border shave = scale")
        self.pairs = []
        for index, image in enumerate(images):
            hr = unit_intensity(_modcrop(image.pixels, self.scale), image.levels)
            rng = np.random.default_rng([seed, VALIDATION_KEY, index])
            self.pairs.append(ValidationPair(image.name, degradation.apply(hr, rng, image.levels), hr, image.levels))
        self._bicubic: dict[str, float] | None = None

    @classmethod
    def from_folder(cls, folder: str | Path, channels: int, degradation: Degradation, reader: ImageReader,
                    seed: int = 0) -> "ValidationSet":
        """The HR images found under ``folder`` (e.g. ``.../Set5``), named after it."""
        return cls(Path(folder).name, load_images(find_images([folder]), channels, reader), degradation, seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def measure(self, predictions: Sequence[np.ndarray]) -> dict[str, float]:
        """Mean PSNR (dB) and SSIM of ``predictions`` (one ``(C, H, W)`` per pair, any float range)."""
        scores = []
        for pair, prediction in zip(self.pairs, predictions, strict=True):
            restored = np.clip(np.asarray(prediction, dtype=np.float64), 0.0, 1.0)
            if pair.levels is not None:
                restored = np.rint(restored * pair.levels) / pair.levels
            scores.append(sr_metrics(pair.hr, restored, data_range=1.0, shave=self.scale))
        return {key: float(np.mean([score[key] for score in scores])) for key in ("psnr", "ssim")}

    def evaluate(self, predict: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
        """Mean PSNR/SSIM of ``predict(lr) -> (C, H, W)`` over the set."""
        return self.measure([predict(pair.lr) for pair in self.pairs])

    def scores(self, predict: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
        """:meth:`evaluate` beside the bicubic baseline: ``psnr``, ``ssim``, ``bicubic_psnr``, ``bicubic_ssim``."""
        bicubic = self.bicubic()
        return {**self.evaluate(predict), "bicubic_psnr": bicubic["psnr"], "bicubic_ssim": bicubic["ssim"]}

    def bicubic(self) -> dict[str, float]:
        """The bicubic-upscaling baseline's PSNR/SSIM on this set (computed once)."""
        if self._bicubic is None:
            self._bicubic = self.evaluate(lambda lr: upscale_bicubic(lr, self.scale))
        return self._bicubic


class StepSampler(Sampler[int]):
    """Patch keys for training steps ``start_step, start_step + 1, ...``.

    Step ``k`` of rank ``r`` gets keys ``(k * world_size + r) * batch_size + j``
    for ``j < batch_size``: a pure function of the step, so a resumed run sees
    the same batches as an uninterrupted one.

    Args:
        batch_size: patches per step and rank.
        start_step: first step (the resumed step counter).
        total_steps: one past the last step; None: endless.
        rank, world_size: this process and the number of processes (DDP).
    """

    def __init__(
        self, batch_size: int, start_step: int = 0, total_steps: int | None = None, rank: int = 0, world_size: int = 1
    ) -> None:
        if batch_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"bad sampler settings: batch_size={batch_size}, rank={rank}, world_size={world_size}")
        self.batch_size, self.start_step, self.total_steps = batch_size, start_step, total_steps
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[int]:
        steps = count(self.start_step) if self.total_steps is None else range(self.start_step, self.total_steps)
        for step in steps:
            first = (step * self.world_size + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)

    def __len__(self) -> int:
        if self.total_steps is None:
            raise TypeError("an endless StepSampler has no length")
        return max(self.total_steps - self.start_step, 0) * self.batch_size
