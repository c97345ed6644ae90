"""Fine-tune a generator on the user's own GeoTIFF scenes (``srrestore finetune SCENE.tif...``).

Synthetic mode (no high-resolution ground truth, the usual case): each scene
plays the HR role and is degraded by the model's scale with a sensor-like
model: a Gaussian point-spread function (PSF), area downscaling (the detector
integrates over its pixel), Gaussian noise and, for 8-bit scenes, rounding to
the 8-bit grid. Nodata, NaN and masked pixels are never sampled (see
:mod:`srrestore.training.patches`).

Paired mode (``reference``): each scene is the LR input and its reference the
HR target, e.g. a 60 m band against its 30 m original. The grids must match:
same CRS, the reference's transform is the scene's scaled by ``1/s`` (equal
bounds) and its size is the scene's times ``s``.

Normalisation: every scene is normalised exactly as ``srrestore restore``
will normalise it (:func:`~srrestore.pipelines.satellite.restore.raster_normalization`:
uint8 by the dtype's range, other dtypes by per-band 0.5/99.5 percentiles of
the valid pixels of a decimated read); references take their scene's
constants (same physical units assumed). The constants are recorded in the
model card under ``normalization``. The result restores with
``srrestore restore SCENE.tif OUT.tif --model M.safetensors``.

The default learning rate is :data:`SCENE_LEARNING_RATE`, lower than the
core's: the built-in model already does the scene's task (isotropic x4 of
the same kind of data), and a few-hundred-pixel scene overfits fast at the
core's rate (measured by ``benchmarks/satellite.py``).

Rasters larger than :data:`MAX_SIDE` pixels on a side (``MAX_SIDE / s`` in paired
mode) are trained on their central window of that size (noted in the report).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.transform import array_bounds

from srrestore.domains.satellite import GeoTiffReader, RasterMeta
from srrestore.domains.satellite.meta import scale_transform
from srrestore.storage.atomic import check_output_path
from srrestore.engine.normalize import Normalization
from srrestore.engine.region import Region
from srrestore.errors import ConfigError, UnsupportedInputError
from srrestore.sr_model import SRModel
from srrestore.pipelines.options import options_for
from srrestore.pipelines.satellite.restore import raster_normalization
from srrestore.training.degradation import Degradation
from srrestore.training.finetune import FinetuneOptions, FinetuneReport, PretrainedModel, finetune, load_pretrained
from srrestore.training.patches import FinetuneImage

__all__ = ["MAX_SIDE", "SCENE_LEARNING_RATE", "SceneFinetuneOptions", "check_reference_grid", "finetune_satellite",
           "sensor_degradation"]

MAX_SIDE = 4096  # pixels per side read for training (central window of larger rasters)
PSF_SIGMA_LR = (0.0, 0.5)  # default Gaussian PSF range, in LR pixels (x scale = HR pixels)
NOISE_SIGMA = (0.0, 0.01)  # default Gaussian noise range, in normalised units
SCENE_LEARNING_RATE = 5e-5  # default peak learning rate for scenes (see the module docstring)
GRID_TOLERANCE = 1e-3  # of a reference pixel: how far grid corners may differ


@dataclass
class SceneFinetuneOptions(FinetuneOptions):
    """:class:`~srrestore.training.finetune.FinetuneOptions` plus what scenes read.

    Attributes:
        reference: paired mode: HR references, one per scene, on the scene's
            grid refined by the scale (:func:`check_reference_grid`); empty: synthetic mode.
        blur_sigma: Gaussian PSF of the synthetic degradation in HR pixels, a
            value or a ``(min, max)`` range; None: 0 to 0.5 LR pixels.
        noise_sigma: Gaussian noise of the synthetic degradation in normalised
            units, a value or a range; None: 0 to 1 % of the normalised range.
    """

    reference: tuple[Path, ...] = ()
    blur_sigma: float | tuple[float, float] | None = None
    noise_sigma: float | tuple[float, float] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.reference = tuple(Path(path) for path in self.reference)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (paths as strings)."""
        return {**super().to_dict(), "reference": [str(path) for path in self.reference]}


def sensor_degradation(scale: tuple[int, int], options: SceneFinetuneOptions) -> Degradation:
    """The sensor-like degradation: Gaussian PSF, area downscaling, Gaussian noise, no clipping.

    8-bit scenes (:class:`~srrestore.training.patches.FinetuneImage` ``levels``
    255) also get their LR inputs rounded to the 8-bit grid.

    Args:
        scale: ``(sy, sx)``.
        options: ``blur_sigma`` (HR pixels) and ``noise_sigma`` (normalised
            units); None takes the defaults, a PSF of 0 to 0.5 LR pixels and
            noise of 0 to 1 % of the normalised range.
    """
    blur = options.blur_sigma if options.blur_sigma is not None else tuple(
        value * max(scale) for value in PSF_SIGMA_LR)
    noise = options.noise_sigma if options.noise_sigma is not None else NOISE_SIGMA
    noisy = (noise if isinstance(noise, (int, float)) else max(noise)) > 0
    return Degradation(scale=scale, kernel="area", blur_sigma=blur, noise="gaussian" if noisy else "none",
                       noise_sigma=noise, quantize=True, clip=False)


def _bounds(meta: RasterMeta) -> tuple[float, float, float, float]:
    return array_bounds(meta.height, meta.width, meta.transform)


def check_reference_grid(scene: RasterMeta, reference: RasterMeta, scale: tuple[int, int], name: str) -> None:
    """Refuse a reference that is not the scene's grid refined by ``scale``.

    Raises:
        UnsupportedInputError: the rasters lack a transform, or differ in CRS,
            band count, size ratio, resolution ratio or bounds (the message gives both).
    """
    sy, sx = scale
    if not (scene.has_transform and reference.has_transform):
        raise UnsupportedInputError(f"reference {name}: paired fine-tuning needs rasters georeferenced by a transform")
    if scene.crs != reference.crs:
        raise UnsupportedInputError(f"reference {name}: CRS {reference.crs} differs from the scene's {scene.crs}")
    if scene.count != reference.count:
        raise UnsupportedInputError(f"reference {name}: {reference.count} band(s), the scene has {scene.count}")
    ratio = (abs(scene.transform.e / reference.transform.e), abs(scene.transform.a / reference.transform.a))
    if not all(math.isclose(have, want, rel_tol=1e-6) for have, want in zip(ratio, (sy, sx))):
        raise UnsupportedInputError(
            f"reference {name}: resolution {abs(reference.transform.a):g} x {abs(reference.transform.e):g} is "
            f"{ratio[1]:g} x {ratio[0]:g} times finer than the scene's, the model's scale is {sx} x {sy}"
        )
    if (reference.height, reference.width) != (scene.height * sy, scene.width * sx):
        raise UnsupportedInputError(
            f"reference {name}: {reference.width} x {reference.height} pixels, expected the scene's "
            f"{scene.width} x {scene.height} times the scale ({scene.width * sx} x {scene.height * sy})"
        )
    expected = scale_transform(scene.transform, sy, sx)
    tolerance = GRID_TOLERANCE * max(abs(expected.a), abs(expected.e))
    if not reference.transform.almost_equals(expected, precision=tolerance):
        raise UnsupportedInputError(
            f"reference {name}: bounds {tuple(round(v, 6) for v in _bounds(reference))} differ from the scene's "
            f"{tuple(round(v, 6) for v in _bounds(scene))}"
        )


@dataclass(frozen=True)
class _Raster:
    """A raster's (central) window, its normalised values and its pixels valid in every band."""

    values: np.ndarray
    valid: np.ndarray
    window: Region


def _central(meta: RasterMeta, side: int) -> Region:
    """The central window of at most ``side`` pixels a side."""
    size = tuple(min(extent, side) for extent in (meta.height, meta.width))
    start = tuple((extent - length) // 2 for extent, length in zip((meta.height, meta.width), size))
    return Region(start, tuple(a + n for a, n in zip(start, size)))


def _read(reader: GeoTiffReader, window: Region, normalization: Normalization) -> _Raster:
    return _Raster(normalization.forward(reader.read(window)), reader.read_valid(window).all(axis=0), window)


def _scene_images(
    scenes: Sequence[Path], references: Sequence[Path], pretrained: PretrainedModel
) -> tuple[list[FinetuneImage], dict[str, dict[str, object]], list[str]]:
    """Training images, per-scene normalisation constants and notes."""
    model = SRModel(pretrained.generator, pretrained.info)
    images, constants, notes = [], {}, []
    # Paired mode reads the reference window `scale` times larger: the scene window shrinks to match.
    side = MAX_SIDE // max(pretrained.scale) if references else MAX_SIDE
    for index, path in enumerate(scenes):
        with GeoTiffReader(path) as reader:
            normalization = raster_normalization(reader, model)
            constants[str(path)] = normalization.to_dict()
            window = _central(reader.meta, side)
            if window.size != (reader.meta.height, reader.meta.width):
                notes.append(f"{path}: trained on its central {window.size[1]} x {window.size[0]} window")
            scene = _read(reader, window, normalization)
            if not references:
                levels = 255 if normalization.method == "dtype-range" and reader.meta.dtype == "uint8" else None
                images.append(FinetuneImage(str(path), scene.values, scene.valid, levels=levels))
                continue
            with GeoTiffReader(references[index]) as hr_reader:
                check_reference_grid(reader.meta, hr_reader.meta, pretrained.scale, str(references[index]))
                hr = _read(hr_reader, window.scaled(pretrained.scale), normalization)
            images.append(FinetuneImage(f"{path} -> {references[index]}", hr.values, hr.valid,
                                        lr=scene.values, lr_valid=scene.valid))
    return images, constants, notes


def finetune_satellite(inputs: list[Path], output: Path,
                       options: SceneFinetuneOptions | FinetuneOptions | Mapping[str, Any]) -> FinetuneReport:
    """Fine-tune on GeoTIFF/COG scenes and save the model (see the module docstring).

    Args:
        inputs: the scenes (any band count, all the same; any numeric dtype but complex).
        output: the model file (``.safetensors``).
        options: the run's options; ``reference`` (one per scene) selects paired mode.

    Returns:
        The fine-tuning report.

    Raises:
        InputReadError: a missing or corrupt raster.
        UnsupportedInputError: scenes of different band counts; a reference off the scene's grid.
        ConfigError, CheckpointError: bad options or pretrained model.
        OutputExistsError, OutputWriteError: see :func:`~srrestore.training.finetune.finetune`.
    """
    started = time.monotonic()
    options = options_for(SceneFinetuneOptions, options, "GeoTIFF scenes")
    if options.learning_rate is None:
        options = replace(options, learning_rate=SCENE_LEARNING_RATE)
    scenes, references = [Path(path) for path in inputs], list(options.reference)
    if not scenes:
        raise ConfigError("give at least one scene to fine-tune on")
    if references and len(references) != len(scenes):
        raise ConfigError(f"give one --reference per scene: {len(scenes)} scene(s), {len(references)} reference(s)")
    check_output_path(Path(output), options.overwrite, [*scenes, *references])
    counts = {}
    for path in scenes:
        with GeoTiffReader(path) as reader:
            counts[str(path)] = reader.spec.channels  # data bands: an alpha band is a mask, not data
    if len(set(counts.values())) != 1:
        raise UnsupportedInputError(f"scenes must have the same band count, got {counts}")
    pretrained = load_pretrained(options, next(iter(counts.values())))
    images, constants, notes = _scene_images(scenes, references, pretrained)
    degradation = None if references else sensor_degradation(pretrained.scale, options)
    card = {
        "domain": "satellite",
        "normalization": constants,
        "degradation_model": "paired references" if references else
        "Gaussian PSF, area downscaling, Gaussian noise (self-supervised: the scene plays the HR role)",
        "restore": "srrestore restore SCENE.tif OUT.tif --model MODEL.safetensors",
    }
    report = finetune(pretrained, images, output, options, degradation, card=card, started=started)
    report.notes[:0] = notes
    return report
