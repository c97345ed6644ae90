"""Compare a restored image with its reference: PSNR, SSIM and consistency error.

What ``srrestore evaluate`` measures, for every supported format:

- **Channels.** 8-bit RGB plain images are measured on the BT.601 luma ``Y``
  (the super-resolution protocol). Everything else is measured channel by
  channel and the figures are the means over channels.
- **Data range.** 255 for uint8 references. Otherwise, per channel, the
  reference's valid range: ``max - min`` of the reference over the measured pixels.
- **Measured pixels.** Pixels valid in both images (nodata excluded, NaN
  included), and for medical volumes (NIfTI, DICOM) inside the body mask:
  the largest connected region of the reference above the Otsu threshold of
  its values above its minimum (so air, scanner padding and the table are left
  out), holes filled slice by slice.
  ``shave`` pixels are dropped off every border of every spatial axis.
  Pixels outside the measured set take the nearest measured reference value
  in both images before SSIM, so its window sees neither the nodata value nor
  errors from pixels that are not measured.
- **Volumes** ``(C, D, H, W)``: PSNR over all measured voxels; SSIM in-plane,
  slice by slice, averaged over slices weighted by their measured voxels.
- **Consistency error** (with the low-resolution input): the restored image
  area-downscaled by the factor per axis, minus the input, in stored units,
  over input pixels whose whole block is valid: maximum absolute value and RMSE.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from srrestore.engine.io import valid_mask
from srrestore.errors import ConfigError, UnsupportedInputError
from srrestore.metrics import psnr, rgb_to_y, ssim
from srrestore.pipelines.arrays import read_array
from srrestore.training.degradation import downscale

__all__ = [
    "MEDICAL_KINDS",
    "Consistency",
    "Evaluation",
    "area_downscale",
    "body_mask",
    "consistency_error",
    "evaluate_arrays",
    "evaluate_files",
    "scale_factors",
]

MEDICAL_KINDS = ("nifti", "dicom")


@dataclass(frozen=True)
class Consistency:
    """How far ``area_downscale(restored)`` is from the low-resolution input.

    Attributes:
        scale: factor per spatial axis.
        max_abs: largest absolute difference, stored units.
        rmse: root-mean-square difference, stored units.
    """

    scale: tuple[int, ...]
    max_abs: float
    rmse: float


@dataclass(frozen=True)
class Evaluation:
    """Figures comparing a restored image with its reference.

    Attributes:
        psnr: dB (mean over channels unless ``y_channel``); ``inf`` if identical.
        ssim: mean SSIM (Gaussian window 11, sigma 1.5).
        y_channel: measured on BT.601 luma.
        data_range: the PSNR/SSIM peak per measured channel.
        shave: pixels dropped off each border of each spatial axis.
        measured_fraction: share of the (shaved) pixels measured.
        body_mask: the medical body mask was applied.
        shape: ``(C, *spatial)`` of the images.
        consistency: the consistency error, when a low-resolution input was given.
    """

    psnr: float
    ssim: float
    y_channel: bool
    data_range: tuple[float, ...]
    shave: int
    measured_fraction: float
    body_mask: bool
    shape: tuple[int, ...]
    consistency: Consistency | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (an infinite PSNR becomes the string ``"inf"``)."""
        data = asdict(self)
        if math.isinf(self.psnr):
            data["psnr"] = "inf"
        return data


def body_mask(reference: np.ndarray) -> np.ndarray:
    """Voxels inside the body (or head) of a medical volume.

    Args:
        reference: ``(C, *spatial)`` stored values; the first channel is used.

    Returns:
        ``(*spatial)`` bool: the largest connected region above the Otsu
        threshold of the values above the minimum (the body, not the table or
        noise specks), with holes filled in each in-plane slice.
    """
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    values = np.asarray(reference[0], dtype=np.float64)
    finite = values[np.isfinite(values)]
    above = finite[finite > finite.min()] if finite.size else finite
    if above.size == 0 or above.min() == above.max():
        return np.isfinite(values)
    labels, count = ndimage.label(values > threshold_otsu(above))
    if count == 0:
        return np.zeros(values.shape, dtype=bool)
    mask = labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    planes = mask.reshape(-1, *mask.shape[-2:])
    return np.stack([ndimage.binary_fill_holes(plane) for plane in planes]).reshape(mask.shape)


def evaluate_arrays(
    reference: np.ndarray,
    restored: np.ndarray,
    nodata: float | None = None,
    kind: str = "image",
    shave: int = 0,
    y_channel: bool | None = None,
    use_body_mask: bool | None = None,
    restored_nodata: float | None = None,
) -> Evaluation:
    """PSNR and SSIM of ``restored`` against ``reference`` (rules in the module docstring).

    Args:
        reference: ``(C, H, W)`` or ``(C, D, H, W)`` stored values.
        restored: same shape; any real dtype.
        nodata: the reference's nodata value (NaN allowed) or None.
        kind: ``"image"``, ``"geotiff"``, ``"nifti"`` or ``"dicom"`` (sets the defaults).
        shave: pixels to drop off each border of each spatial axis.
        y_channel: measure BT.601 luma; None: for 3-channel uint8 plain images.
        use_body_mask: restrict to the body mask; None: for NIfTI and DICOM.
        restored_nodata: the restored image's nodata value, if it has its own.

    Raises:
        UnsupportedInputError: shapes differ, or nothing is left to measure.
        ConfigError: ``y_channel`` on data that is not 3-channel, or a negative shave.
    """
    if reference.shape != restored.shape:
        raise UnsupportedInputError(
            f"reference and restored differ in shape (C, *spatial): {reference.shape} vs {restored.shape}"
        )
    if reference.ndim not in (3, 4):
        raise UnsupportedInputError(f"expected (C, H, W) or (C, D, H, W) arrays, got shape {reference.shape}")
    if shave < 0:
        raise ConfigError(f"shave must be >= 0, got {shave}")
    is_rgb8 = reference.shape[0] == 3 and reference.dtype == np.uint8
    if y_channel is None:
        y_channel = is_rgb8 and kind == "image"
    if y_channel and reference.shape[0] != 3:
        raise ConfigError(f"--y-channel needs 3-channel (RGB) data, got {reference.shape[0]} channels")
    if use_body_mask is None:
        use_body_mask = kind in MEDICAL_KINDS
    valid = valid_mask(reference, nodata) & valid_mask(restored, restored_nodata if restored_nodata is not None else nodata)
    if use_body_mask:
        valid &= body_mask(reference)
    first = _fill_invalid(np.asarray(reference, dtype=np.float64), valid)
    second = np.where(valid, np.asarray(restored, dtype=np.float64), first)
    peak = 255.0 if reference.dtype == np.uint8 else None
    if y_channel:
        first, second = rgb_to_y(first, peak or 1.0)[None], rgb_to_y(second, peak or 1.0)[None]
    first, second, valid = _shave(first, shave), _shave(second, shave), _shave(valid, shave)
    if not valid.any():
        raise UnsupportedInputError("no valid pixel is left to measure (nodata, body mask and shave cover everything)")
    ranges = tuple(peak if peak else _valid_range(channel, valid) for channel in first)
    mask = None if valid.all() else valid
    psnrs = [_psnr(a, b, r, mask) for a, b, r in zip(first, second, ranges)]
    ssims = [_ssim(a, b, r, mask) for a, b, r in zip(first, second, ranges)]
    return Evaluation(
        psnr=float(np.mean(psnrs)),
        ssim=float(np.mean(ssims)),
        y_channel=bool(y_channel),
        data_range=ranges,
        shave=shave,
        measured_fraction=float(valid.mean()),
        body_mask=bool(use_body_mask),
        shape=tuple(reference.shape),
    )


def _fill_invalid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(C, *spatial)`` values with each invalid pixel replaced by its nearest valid one."""
    if valid.all() or not valid.any():
        return values
    from scipy import ndimage

    indices = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return values[(slice(None), *indices)]


def _shave(array: np.ndarray, shave: int) -> np.ndarray:
    """Drop ``shave`` pixels off each border of the last spatial axes (``(*spatial)`` or ``(C, *spatial)``)."""
    if shave == 0:
        return array
    spatial = array.shape[-3:] if array.ndim == 4 else array.shape[-2:] if array.ndim == 3 else array.shape
    if min(spatial) <= 2 * shave:
        raise UnsupportedInputError(f"cannot shave {shave} pixels off each border of spatial shape {spatial}")
    crop = (slice(shave, -shave),) * len(spatial)
    return array[(..., *crop)]


def _valid_range(channel: np.ndarray, valid: np.ndarray) -> float:
    values = channel[valid]
    extent = float(values.max() - values.min())
    if extent <= 0:
        raise UnsupportedInputError(f"the reference is constant ({values.min():g}) over the measured pixels; PSNR is undefined")
    return extent


def _psnr(first: np.ndarray, second: np.ndarray, data_range: float, mask: np.ndarray | None) -> float:
    """PSNR of one ``(*spatial)`` channel; volumes are flattened to 2-D (PSNR ignores neighbours)."""
    width = first.shape[-1]
    flat_mask = None if mask is None else mask.reshape(-1, width)
    return psnr(first.reshape(-1, width), second.reshape(-1, width), data_range, flat_mask)


def _ssim(first: np.ndarray, second: np.ndarray, data_range: float, mask: np.ndarray | None) -> float:
    """SSIM of one ``(H, W)`` or ``(D, H, W)`` channel (volumes: in-plane, weighted over slices)."""
    if first.ndim == 2:
        return ssim(first, second, data_range, mask)
    values, weights = [], []
    for index in range(first.shape[0]):
        plane_mask = None if mask is None else mask[index]
        if plane_mask is not None and not plane_mask.any():
            continue
        values.append(ssim(first[index], second[index], data_range, plane_mask))
        weights.append(first[index].size if plane_mask is None else int(plane_mask.sum()))
    return float(np.average(values, weights=weights))


def scale_factors(restored_shape: Sequence[int], low_res_shape: Sequence[int], scale: int | None = None) -> tuple[int, ...]:
    """Integer factor per spatial axis between a low-resolution input and its restoration.

    Args:
        restored_shape, low_res_shape: ``(C, *spatial)`` shapes.
        scale: the expected in-plane factor (the last two axes), or None.

    Raises:
        UnsupportedInputError: channels or dimensions differ, or a ratio is not an integer
            (or not ``scale`` in-plane).
    """
    if len(restored_shape) != len(low_res_shape) or restored_shape[0] != low_res_shape[0]:
        raise UnsupportedInputError(
            f"low-resolution input of shape {tuple(low_res_shape)} does not match restored {tuple(restored_shape)}"
        )
    pairs = list(zip(restored_shape[1:], low_res_shape[1:]))
    if any(small == 0 or big % small for big, small in pairs):
        raise UnsupportedInputError(
            f"restored shape {tuple(restored_shape)} is not an integer multiple of the input's {tuple(low_res_shape)}"
        )
    factors = tuple(big // small for big, small in pairs)
    if scale is not None and factors[-2:] != (scale, scale):
        raise UnsupportedInputError(
            f"restored shape {tuple(restored_shape)} is {'x'.join(map(str, factors))} the input's, not --scale {scale}"
        )
    return factors


def area_downscale(array: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Mean over each block of ``factors`` pixels: ``(C, *spatial)`` to ``(C, *spatial / factors)`` float64."""
    result = np.asarray(array, dtype=np.float64)
    if result.ndim == 4:
        channels, depth = result.shape[:2]
        result = downscale(result.reshape(channels * depth, *result.shape[2:]), tuple(factors[1:]), "area")
        planes = result.shape[1:]
        result = downscale(result.reshape(channels, depth, -1), (factors[0], 1), "area")
        return result.reshape(channels, depth // factors[0], *planes)
    return downscale(result, tuple(factors), "area")


def consistency_error(
    restored: np.ndarray, low_res: np.ndarray, scale: int | None = None, nodata: float | None = None
) -> Consistency:
    """Area-downscale ``restored`` and compare it with the low-resolution input.

    Args:
        restored: ``(C, *spatial * factors)`` stored values.
        low_res: ``(C, *spatial)`` stored values, the input that was restored.
        scale: expected in-plane factor (checked), or None to infer it from the shapes.
        nodata: nodata value of both (NaN allowed), or None.

    Returns:
        Maximum absolute difference and RMSE, in stored units, over input pixels
        that are valid and whose block in ``restored`` is valid everywhere.
    """
    factors = scale_factors(restored.shape, low_res.shape, scale)
    blocks_valid = area_downscale(valid_mask(restored, nodata)[None].astype(np.float64), factors)[0] == 1.0
    valid = valid_mask(low_res, nodata) & blocks_valid
    if not valid.any():
        raise UnsupportedInputError("no valid low-resolution pixel to check consistency against")
    difference = (area_downscale(np.where(valid_mask(restored, nodata), restored, 0), factors) - low_res)[:, valid]
    return Consistency(factors, float(np.abs(difference).max()), float(np.sqrt(np.mean(difference**2))))


def evaluate_files(
    reference: Path,
    restored: Path,
    low_res: Path | None = None,
    shave: int | None = None,
    scale: int | None = None,
    y_channel: bool | None = None,
    use_body_mask: bool | None = None,
) -> Evaluation:
    """Read two files of any supported format and compare them (``srrestore evaluate``).

    Args:
        reference: the ground truth (image, GeoTIFF, NIfTI, DICOM series).
        restored: the restored output, same shape as the reference.
        low_res: the low-resolution input, for the consistency error.
        shave: border pixels to drop; None: ``scale`` if given, else 0.
        scale: the in-plane factor (sets the default shave; checked against ``low_res``).
        y_channel, use_body_mask: see :func:`evaluate_arrays` (None: automatic).
    """
    first, second = read_array(reference), read_array(restored)
    if first.array.shape != second.array.shape:
        raise UnsupportedInputError(
            f"reference {reference} has shape (C, *spatial) {first.array.shape} "
            f"but restored {restored} has {second.array.shape}"
        )
    evaluation = evaluate_arrays(
        first.array,
        second.array,
        first.nodata,
        first.kind,
        shave if shave is not None else scale or 0,
        y_channel,
        use_body_mask,
        second.nodata,
    )
    if low_res is None:
        return evaluation
    source = read_array(low_res)
    nodata = source.nodata if source.nodata is not None else second.nodata
    return replace(evaluation, consistency=consistency_error(second.array, source.array, scale, nodata))
