"""Visual comparison of restorations with their reference (``srrestore report``).

One matplotlib figure (Agg canvas, no pyplot state), ``2 x (1 + n)`` panels for
``n`` restorations:

- top row: the same crop of the reference and of each restoration, each with
  a zoom inset (nearest-neighbour magnification of the crop's most detailed
  third); titles give PSNR/SSIM of the whole image, as ``srrestore evaluate``
  measures them;
- bottom row: where the crop lies in the reference, then ``|restored -
  reference|`` over the crop for each restoration (stored units, averaged over
  the displayed channels, one shared colour scale).

The crop, unless given, is the window of the reference with the most detail
(highest mean squared gradient) among windows holding only valid pixels (and,
for medical volumes, only pixels of the body mask). Volumes show their middle
slice (first spatial axis). Three or more channels display as RGB (the first
three); fewer as grey (the first). 8-bit data display over ``[0, 255]``,
other data over the reference's 0.5-99.5 percentiles per channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from srrestore.storage.atomic import atomic_output
from srrestore.engine.io import valid_mask
from srrestore.errors import ConfigError, UnsupportedInputError
from srrestore.pipelines.arrays import read_array
from srrestore.pipelines.evaluate import Evaluation, body_mask, evaluate_arrays

__all__ = ["Crop", "Report", "pick_crop", "middle_plane", "report_figure", "save_figure", "write_report"]

PANEL_INCHES = 3.2
TITLES_INCHES = 0.9  # figure height beyond the two rows of panels
COLORBAR_INCHES = 0.8  # figure width beyond the panels
DPI = 100
DISPLAY_PERCENTILES = (0.5, 99.5)
DIFFERENCE_PERCENTILE = 99.5
INSET_FRACTION = 0.45
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


@dataclass(frozen=True)
class Crop:
    """A square window ``[y, y + size) x [x, x + size)`` in pixels of the displayed plane."""

    y: int
    x: int
    size: int

    @classmethod
    def parse(cls, text: str) -> "Crop":
        """From ``"Y,X,SIZE"`` (the ``--crop`` option)."""
        try:
            y, x, size = (int(part) for part in text.split(","))
        except ValueError as error:
            raise ConfigError(f"--crop must be Y,X,SIZE in pixels, got {text!r}") from error
        if y < 0 or x < 0 or size < 4:
            raise ConfigError(f"--crop needs Y, X >= 0 and SIZE >= 4, got {text!r}")
        return cls(y, x, size)

    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.size), slice(self.x, self.x + self.size)


@dataclass(frozen=True)
class Report:
    """A comparison figure and what it shows.

    Attributes:
        figure: the ``matplotlib.figure.Figure`` (Agg canvas).
        crop: the window shown, in pixels of the displayed plane.
        evaluations: PSNR/SSIM of each restoration, as in the titles.
    """

    figure: Any
    crop: Crop
    evaluations: tuple[Evaluation, ...]


def middle_plane(array: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` as is; ``(C, D, H, W)`` volumes give their middle slice ``(C, H, W)``."""
    return array[:, array.shape[1] // 2] if array.ndim == 4 else array


def _display_channels(plane: np.ndarray) -> np.ndarray:
    """The channels shown: the first three as RGB, else the first as grey, ``(1 or 3, H, W)``."""
    return plane[:3] if plane.shape[0] >= 3 else plane[:1]


def _windows(reference: np.ndarray, valid: np.ndarray) -> list[tuple[float, float]]:
    """Display range per shown channel of ``(C, H, W)`` reference values."""
    if reference.dtype == np.uint8:
        return [(0.0, 255.0)] * reference.shape[0]
    windows = []
    for channel in reference:
        values = channel[valid] if valid.any() else channel.ravel()
        low, high = np.percentile(values.astype(np.float64), DISPLAY_PERCENTILES)
        windows.append((float(low), float(high) if high > low else float(low) + 1.0))
    return windows


def _to_display(plane: np.ndarray, windows: Sequence[tuple[float, float]]) -> np.ndarray:
    """``(C, H, W)`` values to an ``(H, W)`` or ``(H, W, 3)`` float image in ``[0, 1]``."""
    scaled = np.stack(
        [(channel.astype(np.float64) - low) / (high - low) for channel, (low, high) in zip(plane, windows)]
    )
    scaled = np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0)
    return scaled[0] if scaled.shape[0] == 1 else np.moveaxis(scaled, 0, -1)


def _local_detail(gray: np.ndarray, valid: np.ndarray, size: int) -> np.ndarray:
    """Mean squared gradient of every ``size x size`` window, indexed by its top-left pixel.

    -inf where a window holds an invalid pixel.
    """
    from scipy import ndimage

    energy = ndimage.sobel(gray, axis=0) ** 2 + ndimage.sobel(gray, axis=1) ** 2
    detail = ndimage.uniform_filter(energy, size, mode="nearest")
    complete = ndimage.uniform_filter(valid.astype(np.float64), size, mode="nearest") > 1.0 - 1e-9
    detail = np.where(complete, detail, -np.inf)
    half = size // 2
    height, width = gray.shape
    return detail[half : height - size + half + 1, half : width - size + half + 1]


def pick_crop(display: np.ndarray, valid: np.ndarray, size: int | None = None) -> Crop:
    """The most detailed square window of a displayed reference.

    Args:
        display: ``(H, W)`` or ``(H, W, 3)`` image in ``[0, 1]``.
        valid: ``(H, W)`` bool, True for valid pixels.
        size: window side; None: a quarter of the shorter side, clamped to ``[16, 128]``.

    Returns:
        The window of most detail (mean squared Sobel gradient) among those of
        valid pixels only (among all windows if none is entirely valid).
    """
    gray = display.mean(axis=-1) if display.ndim == 3 else display
    shortest = min(gray.shape)
    size = min(shortest, size or int(np.clip(shortest // 4, 16, 128)))
    detail = _local_detail(gray, valid, size)
    if not np.isfinite(detail).any():
        detail = _local_detail(gray, np.ones_like(valid), size)
    y, x = np.unravel_index(int(np.argmax(detail)), detail.shape)
    return Crop(int(y), int(x), size)


def _figures(evaluation: Evaluation) -> str:
    value = "inf" if np.isinf(evaluation.psnr) else f"{evaluation.psnr:.2f}"
    return f"PSNR {value} dB, SSIM {evaluation.ssim:.4f}"


def _style(image: np.ndarray) -> dict[str, Any]:
    """imshow options for an ``(H, W)`` grey or ``(H, W, 3)`` RGB image in ``[0, 1]``."""
    return {"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if image.ndim == 2 else {}


def _show_crop(axes: Any, image: np.ndarray, zoom: Crop, title: str) -> None:
    """Show a crop on matplotlib ``axes`` with a zoom inset of ``zoom`` (crop coordinates), in the corner away from it."""
    style = _style(image)
    axes.imshow(image, interpolation="nearest", **style)
    axes.set_title(title, fontsize=9)
    axes.set_axis_off()
    size = image.shape[0]
    left = 0.0 if zoom.x + zoom.size / 2 > size / 2 else 1.0 - INSET_FRACTION
    bottom = 0.0 if zoom.y + zoom.size / 2 < size / 2 else 1.0 - INSET_FRACTION
    inset = axes.inset_axes([left, bottom, INSET_FRACTION, INSET_FRACTION])
    inset.imshow(image, interpolation="nearest", **style)
    inset.set_xlim(zoom.x - 0.5, zoom.x + zoom.size - 0.5)
    inset.set_ylim(zoom.y + zoom.size - 0.5, zoom.y - 0.5)
    inset.set_xticks([])
    inset.set_yticks([])
    for spine in inset.spines.values():
        spine.set_edgecolor("yellow")
    axes.indicate_inset_zoom(inset, edgecolor="yellow", alpha=0.9)


def report_figure(
    reference: np.ndarray,
    restored: Sequence[np.ndarray],
    labels: Sequence[str],
    nodata: float | None = None,
    kind: str = "image",
    crop: Crop | None = None,
    shave: int = 0,
) -> Report:
    """Build the comparison figure (layout in the module docstring).

    Args:
        reference: ``(C, H, W)`` or ``(C, D, H, W)`` stored values.
        restored: restorations of the reference's shape.
        labels: one title per restoration.
        nodata: the reference's nodata value, or None.
        kind: the reference's format (``"image"``, ``"geotiff"``, ``"nifti"``, ``"dicom"``),
            which sets how :func:`~srrestore.pipelines.evaluate.evaluate_arrays` measures.
        crop: the window to show, in pixels of the displayed plane; None: picked.
        shave: border pixels left out of PSNR/SSIM.

    Returns:
        The figure of ``2 x (1 + n)`` panels on an Agg canvas, the crop and the figures.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if len(labels) != len(restored):
        raise ConfigError(f"got {len(labels)} labels for {len(restored)} restored images")
    if not restored:
        raise ConfigError("give at least one restored image to compare with the reference")
    evaluations = tuple(evaluate_arrays(reference, image, nodata, kind, shave) for image in restored)
    plane = _display_channels(middle_plane(reference))
    valid = valid_mask(middle_plane(reference), nodata)
    if evaluations[0].body_mask:
        valid &= middle_plane(body_mask(reference)[None])[0]
    windows = _windows(plane, valid)
    display = _to_display(plane, windows)
    crop = crop or pick_crop(display, valid)
    height, width = valid.shape
    if crop.y + crop.size > height or crop.x + crop.size > width:
        raise ConfigError(f"crop {crop.y},{crop.x},{crop.size} does not fit the {height}x{width} image")
    rows, columns = crop.slices()
    inner = display[rows, columns]
    zoom = pick_crop(inner, valid[rows, columns], max(4, crop.size // 3))
    shown = [_display_channels(middle_plane(image)) for image in restored]
    differences, top = _difference_maps(shown, plane, valid, crop)

    count = len(restored) + 1
    size = (PANEL_INCHES * count + COLORBAR_INCHES, 2 * PANEL_INCHES + TITLES_INCHES)
    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(2, count, squeeze=False)
    _show_crop(grid[0, 0], inner, zoom, "reference")
    overview = grid[1, 0]
    overview.imshow(display, interpolation="antialiased", **_style(display))
    overview.add_patch(_rectangle(crop))
    overview.set_title(f"crop y={crop.y} x={crop.x} size={crop.size}", fontsize=9)
    overview.set_axis_off()
    picture = None
    for column, (label, image, evaluation, difference) in enumerate(zip(labels, shown, evaluations, differences), 1):
        _show_crop(grid[0, column], _to_display(image, windows)[rows, columns], zoom,
                   f"{label}\n{_figures(evaluation)}")
        picture = grid[1, column].imshow(difference, cmap="inferno", vmin=0.0, vmax=top, interpolation="nearest")
        grid[1, column].set_title(f"|{label} - reference|", fontsize=9)
        grid[1, column].set_axis_off()
    figure.colorbar(picture, ax=list(grid[1, 1:]), shrink=0.8, label="absolute difference (stored units)")
    return Report(figure, crop, evaluations)


def _difference_maps(
    shown: Sequence[np.ndarray], plane: np.ndarray, valid: np.ndarray, crop: Crop
) -> tuple[list[np.ndarray], float]:
    """``|restored - reference|`` over ``crop``, averaged over the shown channels (NaN where invalid).

    Args:
        shown: ``(c, H, W)`` displayed channels of each restoration.
        plane: ``(c, H, W)`` the reference's.
        valid: ``(H, W)`` pixels that count.
        crop: the window.

    Returns:
        One ``(size, size)`` map per restoration, and the shared colour-scale top
        (the 99.5th percentile of all valid differences).
    """
    rows, columns = crop.slices()
    inside = valid[rows, columns]
    maps = [np.where(inside, np.abs(image[:, rows, columns] - plane[:, rows, columns].astype(np.float64)).mean(axis=0),
                     np.nan) for image in shown]
    finite = np.concatenate([values[np.isfinite(values)] for values in maps])
    top = float(np.percentile(finite, DIFFERENCE_PERCENTILE)) if finite.size else 0.0
    return maps, max(top, 1e-12)


def _rectangle(crop: Crop) -> Any:
    """A matplotlib ``Rectangle`` outlining ``crop``."""
    from matplotlib.patches import Rectangle

    return Rectangle((crop.x - 0.5, crop.y - 0.5), crop.size, crop.size, fill=False, edgecolor="yellow", linewidth=1.5)


def _check_suffix(output: Path) -> None:
    if output.suffix.lower() not in FIGURE_SUFFIXES:
        raise ConfigError(f"figure {output} must end in {', '.join(FIGURE_SUFFIXES)}")


def save_figure(figure: Any, output: Path, overwrite: bool = False, inputs: Sequence[Path] = ()) -> None:
    """Write a matplotlib figure atomically; the format follows the suffix (.png, .pdf or .svg)."""
    _check_suffix(output)
    with atomic_output(output, overwrite, inputs) as temporary:
        figure.savefig(temporary, dpi=DPI, format=output.suffix.lstrip(".").lower())


def write_report(
    reference: Path,
    restored: Sequence[Path],
    output: Path,
    labels: Sequence[str] | None = None,
    crop: Crop | None = None,
    shave: int = 0,
    overwrite: bool = False,
) -> Report:
    """Read the files, build the figure and write it (``srrestore report``).

    Args:
        reference: the ground truth (image, GeoTIFF, NIfTI, DICOM series).
        restored: restorations of the same shape (e.g. bicubic, model A, model B).
        output: the figure file (``.png``, ``.pdf``, ``.svg``).
        labels: titles for the restorations; None: their file names.
        crop: the window to show; None: the most detailed one.
        shave: border pixels left out of PSNR/SSIM.
        overwrite: replace an existing output.

    Returns:
        What was drawn (figure, crop, PSNR/SSIM per restoration).
    """
    _check_suffix(output)
    truth = read_array(reference)
    images = []
    for path in restored:
        loaded = read_array(path)
        if loaded.array.shape != truth.array.shape:
            raise UnsupportedInputError(
                f"restored {path} has shape (C, *spatial) {loaded.array.shape}, the reference {truth.array.shape}"
            )
        images.append(loaded.array)
    names = list(labels) if labels is not None else [Path(path).name for path in restored]
    report = report_figure(truth.array, images, names, truth.nodata, truth.kind, crop, shave)
    save_figure(report.figure, output, overwrite, [reference, *restored])
    return report
