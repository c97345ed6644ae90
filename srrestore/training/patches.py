"""Training patches from the user's own data: only where the data are valid.

Fine-tuning learns from the images a user wants restored, which often hold
nodata (outside a satellite swath, padding around a scan). Each image comes as
normalised values (the units restore will feed the network) and a validity
mask. A patch is drawn only where at least ``min_valid_fraction`` of its HR
pixels are valid (1.0 by default: the whole patch); patch corners lie on the
scale grid so that LR and HR pixels align.

Invalid pixels (and NaN) are first replaced by their nearest valid pixel, as
restore fills them before the network (invariant G6): they never reach a
patch as nodata values, neither inside a patch (with ``min_valid_fraction <
1``) nor through the margin a degradation reads around it.

Two kinds of pairs:

- synthetic: the image plays the HR role and its LR input is made by a
  :class:`~srrestore.training.degradation.Degradation` from the HR window plus
  the degradation's margin (mirrored at the image's edges), so the LR patch
  equals the crop of the whole image's degradation there;
- paired: a co-registered LR image (e.g. a real coarser acquisition) is given
  with the HR one, ``HR shape = LR shape * scale``; both masks must be valid.

Item ``index`` is a pure function of ``(seed, index)``: a position drawn
uniformly over every valid position of every image (larger images give more
patches), the degradation's random parameters, then flips and, for an
isotropic scale, a transpose.

Held-out patches (``holdout_fraction > 0``): a band at the end of each
image's longer axis (that share of it, at least one validation patch) is kept
out of training, with a gap of the degradation's margin so that no training
input reads a held-out pixel (:func:`holdout_band`).
:meth:`ValidPatches.holdout_batch` draws validation patches there (not
augmented); they are training-sized, or as small as
:data:`MIN_HOLDOUT_LR` LR pixels where the images are small. An image
without room for a band is used for training only.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

from srrestore.engine.nodata import fill_nodata, nearest_valid, upsample_mask
from srrestore.engine.region import Region
from srrestore.errors import ConfigError, UnsupportedInputError
from srrestore.training.data import augment_pair
from srrestore.training.degradation import Degradation

__all__ = ["FinetuneImage", "HoldoutBand", "PatchValidation", "ValidPatches", "holdout_band", "patches_fingerprint",
           "valid_positions"]

MIN_HOLDOUT_LR = 8  # LR pixels a side of the smallest validation patch
MAX_HOLDOUT_SHARE = 0.25  # of an axis, the most a band may take when the asked share is below one patch

HOLDOUT_STREAM = 1 << 41  # seeds the held-out draws, far from every training item's key
EVALUATION_KEY = 1 << 40  # keys of the fixed training patches scored when nothing is held out


@dataclass(frozen=True)
class FinetuneImage:
    """One image to fine-tune on, in the network's units.

    Attributes:
        name: where it came from (file path), recorded in the model's summary.
        hr: ``(C, H, W)`` float32 normalised values, exactly as restore
            normalises this data; invalid pixels may hold anything (nodata, NaN).
        valid: ``(H, W)`` bool, True where ``hr`` is valid; None: all finite pixels.
        lr: paired mode: the co-registered ``(C, H / sy, W / sx)`` input in the
            same units; None: synthetic mode (made by the degradation).
        lr_valid: ``(H / sy, W / sx)`` bool validity of ``lr``; None: its finite pixels.
        levels: synthetic mode: the integer grid of the normalised values
            (255 for 8-bit data mapped from ``[0, 255]``), used by the
            degradation's ``quantize``; None for anything else.
    """

    name: str
    hr: np.ndarray
    valid: np.ndarray | None = None
    lr: np.ndarray | None = None
    lr_valid: np.ndarray | None = None
    levels: int | None = None

    @property
    def channels(self) -> int:
        return int(self.hr.shape[0])


def valid_positions(
    valid: np.ndarray, patch_size: int, scale: tuple[int, int], min_valid_fraction: float = 1.0
) -> np.ndarray:
    """Top-left corners of the patches with enough valid pixels.

    Args:
        valid: ``(H, W)`` bool mask.
        patch_size: HR patch side in pixels.
        scale: ``(sy, sx)``; corners are multiples of it.
        min_valid_fraction: least share of valid pixels in a patch, in ``(0, 1]``.

    Returns:
        ``(N, 2)`` int64 ``(row, column)`` corners, row-major (empty when none fits).
    """
    height, width = valid.shape
    if height < patch_size or width < patch_size:
        return np.zeros((0, 2), dtype=np.int64)
    table = np.zeros((height + 1, width + 1), dtype=np.int64)
    table[1:, 1:] = valid.astype(np.int64).cumsum(axis=0).cumsum(axis=1)
    tops = np.arange(0, height - patch_size + 1, scale[0])
    lefts = np.arange(0, width - patch_size + 1, scale[1])
    bottoms, rights = tops + patch_size, lefts + patch_size
    counts = (table[np.ix_(bottoms, rights)] - table[np.ix_(tops, rights)]
              - table[np.ix_(bottoms, lefts)] + table[np.ix_(tops, lefts)])
    needed = max(1, math.ceil(min_valid_fraction * patch_size * patch_size - 1e-9))
    rows, columns = np.nonzero(counts >= needed)
    return np.stack([tops[rows], lefts[columns]], axis=1).astype(np.int64)


@dataclass(frozen=True)
class HoldoutBand:
    """The held-out band ``[start, end)`` of an image along ``axis`` (0: rows, 1: columns).

    Attributes:
        axis: the image's longer axis.
        start: first held-out pixel along it (HR pixels, on the scale grid).
        patch_size: the largest validation patch side that fits in the band
            (a multiple of both scale factors, at most the training patch).
    """

    axis: int
    start: int
    patch_size: int


def holdout_band(
    shape: tuple[int, int], patch_size: int, scale: tuple[int, int], gap: tuple[int, int], fraction: float
) -> HoldoutBand | None:
    """The image's held-out band, or None when it has no room for one.

    The band runs along the longer axis (rows on a tie) and takes ``fraction``
    of it, or the side of the smallest validation patch (``MIN_HOLDOUT_LR`` LR
    pixels, at most ``patch_size``) if that is more, its start on the scale
    grid. There is no band when that would take more than twice the share
    asked for and more than :data:`MAX_HOLDOUT_SHARE` of the axis, or when no
    training patch fits before it with ``gap[axis]`` pixels to spare.

    Args:
        shape: ``(H, W)`` HR pixels.
        patch_size: HR training patch side in pixels, a multiple of both factors.
        scale: ``(sy, sx)``.
        gap: ``(rows, columns)`` a training input reads beyond its patch (the degradation's margin).
        fraction: share of the axis held out, in ``[0, 1)``; 0: none.
    """
    if fraction <= 0:
        return None
    axis = 0 if shape[0] >= shape[1] else 1
    extent, step = shape[axis], math.lcm(*scale)
    smallest = max(step, min(patch_size, MIN_HOLDOUT_LR * max(scale)) // step * step)
    start = (extent - max(smallest, math.ceil(fraction * extent))) // scale[axis] * scale[axis]
    length = extent - start
    if length > max(2 * fraction, MAX_HOLDOUT_SHARE) * extent or start - gap[axis] < patch_size:
        return None
    return HoldoutBand(axis, start, min(patch_size, length // step * step))


def _filled(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` float32 with every invalid pixel replaced by its nearest valid one."""
    values = np.asarray(values, dtype=np.float32)
    if valid.all():
        return values
    indices, _, _ = nearest_valid(valid, Region.from_shape(valid.shape), (True, True), (True, True))
    return np.ascontiguousarray(fill_nodata(values, indices))


def _mask(values: np.ndarray, valid: np.ndarray | None, name: str) -> np.ndarray:
    """The given mask (checked) and'ed with "every band finite"."""
    finite = np.isfinite(values).all(axis=0)
    if valid is None:
        return finite
    valid = np.asarray(valid)
    if valid.shape != finite.shape or valid.dtype != bool:
        raise UnsupportedInputError(f"{name}: validity mask of shape {valid.shape} and dtype {valid.dtype} "
                                    f"does not fit an image of {finite.shape}; expected bool")
    return valid & finite


@dataclass(frozen=True)
class _Source:
    """One image ready for sampling: filled HR (padded by the margin) or filled pair, and its positions."""

    hr: np.ndarray
    lr: np.ndarray | None
    levels: int | None
    positions: np.ndarray
    holdout: np.ndarray


class ValidPatches(Dataset):
    """``(lr, hr)`` patch pairs drawn where the images are valid (see the module docstring).

    Args:
        images: the images, all with the same channel count.
        patch_size: HR patch side in pixels, a multiple of both scale factors.
        scale: ``(sy, sx)`` upscale factors.
        degradation: makes synthetic LR inputs (its scale must be ``scale``);
            may be None when every image is paired.
        seed: the data seed.
        augment: random flips (and transposes for an isotropic scale).
        min_valid_fraction: least share of valid HR pixels in a patch, in ``(0, 1]``.
        holdout_fraction: share of each image's longer axis held out for
            validation, in ``[0, 1)`` (see :func:`holdout_band`); 0: none.

    Items are float32 tensors ``lr`` ``(C, patch / sy, patch / sx)`` and ``hr``
    ``(C, patch, patch)``, not clipped (normalised data may leave ``[0, 1]``).

    Attributes:
        names: the images that gave patches; ``skipped``: those that gave none.
        num_positions: valid training patch positions over all images (``len()``).
        num_holdout: valid held-out patch positions over all images.
        holdout_size: side of the validation patches (the smallest band's; 0 without bands).

    Raises:
        ConfigError: bad patch size or fraction, a missing degradation, or no valid patch at all.
        UnsupportedInputError: images of other shapes, channel counts or masks.
    """

    def __init__(
        self,
        images: Sequence[FinetuneImage],
        patch_size: int,
        scale: tuple[int, int],
        degradation: Degradation | None,
        seed: int = 0,
        augment: bool = True,
        min_valid_fraction: float = 1.0,
        holdout_fraction: float = 0.0,
    ) -> None:
        if not images:
            raise ConfigError("no image to fine-tune on")
        if patch_size < 1 or any(patch_size % factor for factor in scale):
            raise ConfigError(f"patch size {patch_size} must be a positive multiple of the scale {scale}")
        if not 0 < min_valid_fraction <= 1:
            raise ConfigError(f"min_valid_fraction must be in (0, 1], got {min_valid_fraction}")
        if not 0 <= holdout_fraction < 1:
            raise ConfigError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
        if degradation is not None and degradation.scale != tuple(scale):
            raise ConfigError(f"degradation scale {degradation.scale} differs from the model's scale {tuple(scale)}")
        channels = {image.channels for image in images}
        if len(channels) != 1 or any(image.hr.ndim != 3 for image in images):
            raise UnsupportedInputError(f"images must all be (C, H, W) with one channel count, got "
                                        f"{sorted(str(image.hr.shape) for image in images)}")
        self.scale = (int(scale[0]), int(scale[1]))
        self.patch_size = patch_size
        self.degradation = degradation
        self.seed = seed
        self.augment = augment
        self.channels = channels.pop()
        margin = degradation.margin if degradation is not None else (0, 0)
        self.margin_hr = (margin[0] * self.scale[0], margin[1] * self.scale[1])
        self.names: list[str] = []
        self.skipped: list[str] = []
        self._sources: list[_Source] = []
        bands = [holdout_band(image.hr.shape[1:], patch_size, self.scale, self.margin_hr, holdout_fraction)
                 for image in images]
        self.holdout_size = min((band.patch_size for band in bands if band is not None), default=0)
        for image, band in zip(images, bands):
            source = self._prepare(image, min_valid_fraction, band)
            if len(source.positions):
                self.names.append(image.name)
                self._sources.append(source)
            else:
                self.skipped.append(image.name)
        if not self._sources:
            names = ", ".join(self.skipped)
            raise ConfigError(
                f"no {patch_size}-pixel patch with at least {min_valid_fraction:.0%} valid pixels in {names}; "
                f"lower the patch size or the minimum valid fraction"
            )
        self._ends = np.cumsum([len(source.positions) for source in self._sources])
        self.num_positions = int(self._ends[-1])
        self._holdout_ends = np.cumsum([len(source.holdout) for source in self._sources])
        self.num_holdout = int(self._holdout_ends[-1])

    def _prepare(self, image: FinetuneImage, min_valid_fraction: float, band: HoldoutBand | None) -> _Source:
        valid = _mask(image.hr, image.valid, image.name)
        lr_valid = None
        if image.lr is not None:
            expected = (self.channels, image.hr.shape[1] // self.scale[0], image.hr.shape[2] // self.scale[1])
            if image.lr.shape != expected or any(size % f for size, f in zip(image.hr.shape[1:], self.scale)):
                raise UnsupportedInputError(
                    f"{image.name}: paired LR of shape {image.lr.shape} does not fit HR {image.hr.shape} "
                    f"at scale {self.scale} (expected {expected})"
                )
            lr_valid = _mask(image.lr, image.lr_valid, image.name)
            valid = valid & upsample_mask(lr_valid, self.scale)
        elif self.degradation is None:
            raise ConfigError(f"{image.name}: no paired LR image and no degradation to make one")
        positions, holdout = self._split(valid, min_valid_fraction, band)
        if not len(positions):
            return _Source(np.zeros((0, 0, 0), np.float32), None, None, positions, holdout)
        hr = _filled(image.hr, valid)
        if lr_valid is not None:
            return _Source(hr, _filled(image.lr, lr_valid), None, positions, holdout)  # type: ignore[arg-type]
        (my, mx) = self.margin_hr
        height, width = hr.shape[1] - hr.shape[1] % self.scale[0], hr.shape[2] - hr.shape[2] % self.scale[1]
        padded = np.pad(hr[:, :height, :width], ((0, 0), (my, my), (mx, mx)), mode="symmetric")
        return _Source(np.ascontiguousarray(padded), None, image.levels, positions, holdout)

    def _split(self, valid: np.ndarray, min_valid_fraction: float,
               band: HoldoutBand | None) -> tuple[np.ndarray, np.ndarray]:
        """Training and held-out (``holdout_size``) corners; all training without a band or if a side is empty."""
        positions = valid_positions(valid, self.patch_size, self.scale, min_valid_fraction)
        none = np.zeros((0, 2), dtype=np.int64)
        if band is None:
            return positions, none
        training = positions[positions[:, band.axis] + self.patch_size + self.margin_hr[band.axis] <= band.start]
        holdout = valid_positions(valid, self.holdout_size, self.scale, min_valid_fraction)
        holdout = holdout[holdout[:, band.axis] >= band.start]
        if not len(training) or not len(holdout):
            return positions, none
        return training, holdout

    def __len__(self) -> int:
        return self.num_positions

    def summary(self) -> dict[str, Any]:
        """What a model's training summary records about these patches."""
        return {"patch_positions": self.num_positions, "held_out_positions": self.num_holdout,
                "degradation": self.degradation.to_dict() if self.degradation is not None else "paired"}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index < 0:
            raise IndexError(f"patch index must be >= 0, got {index}")
        rng = np.random.default_rng([self.seed, int(index)])
        source, (top, left) = self._draw(rng, self._ends, "positions")
        lr, hr = self._pair(source, int(top), int(left), self.patch_size, rng)
        if self.augment:
            lr, hr = augment_pair(lr, hr, rng, self.scale)
        return (torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(hr, dtype=np.float32)))

    def _draw(self, rng: np.random.Generator, ends: np.ndarray, kind: str) -> tuple[_Source, np.ndarray]:
        """A source and one of its ``kind`` (``"positions"`` or ``"holdout"``) corners, uniformly over all images."""
        draw = int(rng.integers(int(ends[-1])))
        which = int(np.searchsorted(ends, draw, side="right"))
        source = self._sources[which]
        return source, getattr(source, kind)[draw - (ends[which - 1] if which else 0)]

    def _pair(self, source: _Source, top: int, left: int, patch: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The ``(lr, hr)`` arrays of the ``patch``-pixel patch at HR corner ``(top, left)``."""
        (sy, sx) = self.scale
        if source.lr is not None:
            hr = source.hr[:, top : top + patch, left : left + patch]
            lr = source.lr[:, top // sy : (top + patch) // sy, left // sx : (left + patch) // sx]
        else:
            (my, mx) = self.margin_hr
            window = source.hr[:, top : top + patch + 2 * my, left : left + patch + 2 * mx]
            lr = self.degradation.apply(window, rng, source.levels)  # type: ignore[union-attr]
            lr = lr[:, my // sy : my // sy + patch // sy, mx // sx : mx // sx + patch // sx]
            hr = window[:, my : my + patch, mx : mx + patch]
        return lr, hr

    def batch(self, keys: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Items ``keys`` stacked: ``(B, C, patch / sy, patch / sx)`` and ``(B, C, patch, patch)``."""
        pairs = [self[key] for key in keys]
        return torch.stack([lr for lr, _ in pairs]), torch.stack([hr for _, hr in pairs])

    def holdout_batch(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` held-out pairs, fixed by the seed and not augmented.

        Returns:
            ``(count, C, v / sy, v / sx)`` LR and ``(count, C, v, v)`` HR, ``v = holdout_size``.

        Raises:
            ConfigError: no image has a held-out band (``num_holdout`` is 0).
        """
        if not self.num_holdout:
            raise ConfigError("no held-out patches: the images are too small for a held-out band, or "
                              "holdout_fraction is 0")
        rng = np.random.default_rng([self.seed, HOLDOUT_STREAM])
        pairs = []
        for _ in range(count):
            source, (top, left) = self._draw(rng, self._holdout_ends, "holdout")
            pairs.append(self._pair(source, int(top), int(left), self.holdout_size, rng))
        return (torch.from_numpy(np.stack([lr for lr, _ in pairs]).astype(np.float32)),
                torch.from_numpy(np.stack([hr for _, hr in pairs]).astype(np.float32)))


def patches_fingerprint(images: Sequence[FinetuneImage]) -> str:
    """SHA-256 of the images' names, values and masks: a resumed fine-tuning run must see the same data."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(image.name.encode())
        for array in (image.hr, image.valid, image.lr, image.lr_valid):
            if array is not None:
                digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


class PatchValidation:
    """Fixed patches of a :class:`ValidPatches`, scored in normalised units: fine-tuning's validation set.

    Held-out patches (:meth:`ValidPatches.holdout_batch`) when the images
    have held-out bands, else fixed training patches, which cannot show
    overfitting (``name`` says which: ``"held-out"`` or ``"training"``).
    Scores: PSNR over all patches' pixels (data range 1) and mean absolute
    error, beside bicubic upscaling's.

    Args:
        patches: the fine-tuning patches.
        count: how many patches are scored.
    """

    def __init__(self, patches: ValidPatches, count: int = 32) -> None:
        self.name = "held-out" if patches.num_holdout else "training"
        self.lr, self.hr = (patches.holdout_batch(count) if patches.num_holdout
                            else patches.batch(range(EVALUATION_KEY, EVALUATION_KEY + count)))
        self.protocol = f"{count} fixed {self.name} patches, normalised units, PSNR range 1"
        bicubic = F.interpolate(self.lr, scale_factor=patches.scale, mode="bicubic", align_corners=False)
        self._bicubic = {f"bicubic_{name}": value for name, value in _patch_scores(bicubic, self.hr).items()}

    def scores(self, predict: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
        """``psnr`` and ``l1`` of ``predict(lr (C, h, w)) -> (C, H, W)`` on every patch, and bicubic's."""
        predictions = torch.from_numpy(np.stack([predict(lr) for lr in self.lr.numpy()]))
        return {**_patch_scores(predictions, self.hr), **self._bicubic}


def _patch_scores(prediction: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
    mse = float(F.mse_loss(prediction, hr).item())
    return {"psnr": math.inf if mse == 0 else 10 * math.log10(1.0 / mse), "l1": float(F.l1_loss(prediction, hr).item())}
