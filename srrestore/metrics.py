"""Image-quality metrics for super-resolution: PSNR and SSIM, with the standard protocol.

The super-resolution literature measures on the BT.601 luma ``Y`` of RGB images
(``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with RGB in ``[0, 1]``), after
shaving ``scale`` pixels off each border, with data range 255 (here: the
range of the data given). SSIM is Wang et al. (2004) with an 11-tap Gaussian
window (sigma 1.5) and population covariances, i.e. scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)``.

Every metric takes an optional validity ``mask`` (True = valid) so nodata
pixels of rasters and background of scans can be left out. Arrays are numpy,
``(H, W)`` or channels-first ``(C, H, W)``; computations run in float64.
"""

from __future__ import annotations

import math

import numpy as np

from srrestore.errors import ConfigError, UnsupportedInputError

__all__ = [
    "BT601_Y_WEIGHTS",
    "rgb_to_y",
    "gaussian_filter",
    "shave_border",
    "psnr",
    "ssim",
    "sr_metrics",
    "detail_ratio",
]

# Y = 16/255 + weights . (R, G, B) for RGB in [0, 1] and Y in [0, 1] (ITU-R BT.601, studio swing).
BT601_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
BT601_Y_OFFSET = 16.0 / 255.0
SSIM_K1, SSIM_K2 = 0.01, 0.03


def rgb_to_y(rgb: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """BT.601 luma of an RGB image, in the units of the input.

    Args:
        rgb: ``(3, H, W)`` with values in ``[0, data_range]``.
        data_range: the value of full intensity (1 for floats, 255 for 8-bit).

    Returns:
        ``(H, W)`` float64 ``Y`` in ``[16/255, 235/255] * data_range`` (for 8-bit
        data: the familiar ``16 + 65.481 R + 128.553 G + 24.966 B`` with R, G, B in [0, 1]).
    """
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise UnsupportedInputError(f"rgb_to_y expects a (3, H, W) array, got shape {rgb.shape}")
    unit = np.asarray(rgb, dtype=np.float64) / data_range
    weights = np.asarray(BT601_Y_WEIGHTS)[:, None, None]
    return (BT601_Y_OFFSET + (weights * unit).sum(axis=0)) * data_range


def gaussian_filter(image: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Separable Gaussian filter over the last two axes, mirrored at the borders.

    Same result as ``scipy.ndimage.gaussian_filter(image, sigma, mode="reflect",
    truncate=truncate)`` over those axes (scipy's "reflect" mirrors the edge
    pixel too: ``d c b a | a b c d``).

    Args:
        image: ``(..., H, W)`` array.
        sigma: standard deviation in pixels (> 0).
        truncate: the kernel reaches ``int(truncate * sigma + 0.5)`` pixels per side.

    Returns:
        float64 array of ``image``'s shape.
    """
    if not sigma > 0:
        raise ConfigError(f"Gaussian sigma must be > 0, got {sigma}")
    radius = int(truncate * sigma + 0.5)
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    result = np.asarray(image, dtype=np.float64)
    for axis in (-2, -1):
        moved = np.moveaxis(result, axis, -1)
        padded = np.pad(moved, [(0, 0)] * (moved.ndim - 1) + [(radius, radius)], mode="symmetric")
        length = moved.shape[-1]
        filtered = np.zeros_like(moved)
        for offset, weight in enumerate(kernel):
            filtered += weight * padded[..., offset : offset + length]
        result = np.moveaxis(filtered, -1, axis)
    return result


def _shave_pair(shave: int | tuple[int, int]) -> tuple[int, int]:
    pair = (shave, shave) if isinstance(shave, (int, np.integer)) else tuple(shave)
    if len(pair) != 2 or any(int(value) < 0 for value in pair):
        raise ConfigError(f"shave must be an int or two ints >= 0, got {shave!r}")
    return int(pair[0]), int(pair[1])


def shave_border(array: np.ndarray, shave: int | tuple[int, int]) -> np.ndarray:
    """Drop ``shave`` pixels (or ``(rows, columns)``) off each border of the last two axes."""
    rows, columns = _shave_pair(shave)
    height, width = array.shape[-2:]
    if 2 * rows >= height or 2 * columns >= width:
        raise UnsupportedInputError(f"cannot shave {(rows, columns)} pixels off an image of {height}x{width}")
    return array[..., rows : height - rows, columns : width - columns]


def _prepare(
    reference: np.ndarray, restored: np.ndarray, mask: np.ndarray | None, shave: int | tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check shapes; return ``(C, H, W)`` float64 images and an ``(H, W)`` mask, shaved."""
    if reference.shape != restored.shape:
        raise UnsupportedInputError(f"images differ in shape: {reference.shape} and {restored.shape}")
    if reference.ndim not in (2, 3):
        raise UnsupportedInputError(f"expected an (H, W) or (C, H, W) image, got shape {reference.shape}")
    first = np.asarray(reference, dtype=np.float64)
    second = np.asarray(restored, dtype=np.float64)
    if first.ndim == 2:
        first, second = first[None], second[None]
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != first.shape[-2:]:
            raise UnsupportedInputError(f"mask shape {mask.shape} does not match the image's {first.shape[-2:]}")
        mask = shave_border(mask, shave)
        if not mask.any():
            raise UnsupportedInputError("the mask leaves no valid pixel to measure")
    return shave_border(first, shave), shave_border(second, shave), mask


def psnr(
    reference: np.ndarray,
    restored: np.ndarray,
    data_range: float,
    mask: np.ndarray | None = None,
    shave: int | tuple[int, int] = 0,
) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``.

    Args:
        reference: ground truth, ``(H, W)`` or ``(C, H, W)``.
        restored: same shape.
        data_range: peak value (255 for 8-bit, 1 for unit floats).
        mask: ``(H, W)`` bool, True where pixels count (all channels); None: all.
        shave: border pixels to drop per side, an int or ``(rows, columns)``.

    Returns:
        PSNR over the valid pixels; ``inf`` for identical images.
    """
    first, second, mask = _prepare(reference, restored, mask, shave)
    squared = (first - second) ** 2
    mse = float(squared.mean() if mask is None else squared[:, mask].mean())
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def _ssim_map(first: np.ndarray, second: np.ndarray, data_range: float, sigma: float, truncate: float) -> np.ndarray:
    """Per-pixel SSIM of two ``(H, W)`` images (population covariances)."""
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mean_x = gaussian_filter(first, sigma, truncate)
    mean_y = gaussian_filter(second, sigma, truncate)
    var_x = gaussian_filter(first * first, sigma, truncate) - mean_x * mean_x
    var_y = gaussian_filter(second * second, sigma, truncate) - mean_y * mean_y
    cov = gaussian_filter(first * second, sigma, truncate) - mean_x * mean_y
    numerator = (2 * mean_x * mean_y + c1) * (2 * cov + c2)
    denominator = (mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2)
    return numerator / denominator


def ssim(
    reference: np.ndarray,
    restored: np.ndarray,
    data_range: float,
    mask: np.ndarray | None = None,
    shave: int | tuple[int, int] = 0,
    sigma: float = 1.5,
    truncate: float = 3.5,
) -> float:
    """Mean structural similarity with a Gaussian window (11 taps for sigma 1.5).

    Without a mask this equals ``skimage.metrics.structural_similarity(reference,
    restored, data_range=data_range, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, channel_axis=0)``: the SSIM map's border of
    ``window // 2`` pixels is left out and channels are averaged. With a mask,
    the map is averaged over valid pixels of that interior (the window still
    reads invalid neighbours: fill nodata before measuring if it matters).

    Args:
        reference, restored, data_range, mask, shave: as for :func:`psnr`.
        sigma: Gaussian window standard deviation in pixels.
        truncate: window radius in sigmas (3.5 gives 11 taps for sigma 1.5).
    """
    first, second, mask = _prepare(reference, restored, mask, shave)
    border = int(truncate * sigma + 0.5)
    if min(first.shape[-2:]) <= 2 * border:
        raise UnsupportedInputError(f"SSIM needs images larger than {2 * border + 1} pixels, got {first.shape[-2:]}")
    inner = (slice(border, -border), slice(border, -border))
    valid = None if mask is None else mask[inner]
    if valid is not None and not valid.any():
        raise UnsupportedInputError("the mask leaves no valid pixel inside the SSIM window border")
    values = []
    for channel_a, channel_b in zip(first, second):
        similarity = _ssim_map(channel_a, channel_b, data_range, sigma, truncate)[inner]
        values.append(similarity.mean() if valid is None else similarity[valid].mean())
    return float(np.mean(values))


def sr_metrics(
    reference: np.ndarray,
    restored: np.ndarray,
    data_range: float,
    shave: int | tuple[int, int] = 0,
    mask: np.ndarray | None = None,
    y_channel: bool = True,
) -> dict[str, float]:
    """PSNR and SSIM as super-resolution papers report them.

    Args:
        reference, restored: ``(H, W)`` or ``(C, H, W)`` in ``[0, data_range]``;
            quantise ``restored`` to the reference's grid first to match
            published protocols (they measure 8-bit outputs).
        data_range: peak value.
        shave: border pixels dropped per side (the protocol shaves ``scale``).
        mask: ``(H, W)`` validity mask, True = valid.
        y_channel: measure 3-channel images on their BT.601 ``Y`` (the protocol);
            other channel counts are measured on all channels.

    Returns:
        ``{"psnr": dB, "ssim": value}``.
    """
    if y_channel and reference.ndim == 3 and reference.shape[0] == 3:
        reference, restored = rgb_to_y(reference, data_range), rgb_to_y(restored, data_range)
    return {
        "psnr": psnr(reference, restored, data_range, mask, shave),
        "ssim": ssim(reference, restored, data_range, mask, shave),
    }


def detail_ratio(
    reference: np.ndarray, restored: np.ndarray, shave: int | tuple[int, int] = 0, mask: np.ndarray | None = None
) -> float:
    """Gradient energy of ``restored`` relative to ``reference``: a sharpness figure.

    The ratio of the mean squared gradient (forward differences along rows
    and columns, over every channel) of the two images, at the valid pixels
    of the shaved image. 1 means edges and texture as strong as the
    reference's; blurry results score below 1, over-sharpened or noisy ones
    above. It says nothing about fidelity: read it beside PSNR.

    Args:
        reference, restored: ``(H, W)`` or ``(C, H, W)``, same shape and units.
        shave: border pixels dropped per side before measuring.
        mask: ``(H, W)`` validity mask, True = valid.

    Raises:
        UnsupportedInputError: shapes differ, or the reference is flat.
    """
    first, second, valid = _prepare(reference, restored, mask, shave)

    def energy(image: np.ndarray) -> float:
        squared = (image[:, 1:, 1:] - image[:, :-1, 1:]) ** 2 + (image[:, 1:, 1:] - image[:, 1:, :-1]) ** 2
        return float(squared.mean() if valid is None else squared[:, valid[1:, 1:]].mean())

    reference_energy = energy(first)
    if reference_energy == 0.0:
        raise UnsupportedInputError("the reference is flat: it has no detail to compare with")
    return energy(second) / reference_energy
