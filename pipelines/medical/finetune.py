"""Self-supervised through-plane fine-tuning on the scan itself (SMORE, ECLARE): ``srrestore finetune SCAN``.

A thick-slice CT or MR scan has no high-resolution ground truth along its slice
axis, but its in-plane slices are sharp. So (Zhao et al. 2021, Remedios et al.
2025):

1. the in-plane slices, normalised as restore normalises the scan, are the
   high-resolution images (:mod:`srrestore.pipelines.medical.pairs`);
2. the header's slice profile (thickness and spacing over the in-plane
   spacing, :mod:`srrestore.training.slice_profile`) degrades one of
   their axes, giving the thick-slice view: the training pairs of an
   anisotropic ``(s, 1)`` model;
3. the pretrained generator, turned into an ``(s, 1)`` one
   (:mod:`srrestore.pipelines.medical.initial_model`), is fine-tuned on these pairs by
   the shared core (:func:`srrestore.training.finetune.finetune`): pixel and
   perceptual losses, and the adversarial loss only when
   ``options.adversarial`` is set (the checkpoint's phase and card record
   ``"psnr"`` or ``"gan"``).

The saved model restores the scan through-plane with ``srrestore restore SCAN
OUT --model M.safetensors``: on both orthogonal planes holding the slice axis,
averaged (:mod:`srrestore.pipelines.medical.planes`), and its outputs record
the model's phase.
"""

from __future__ import annotations

import math
import time

import numpy as np
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from srrestore.training.slice_profile import (
    SUPPORTED_SLICE_FACTORS,
    SliceProfile,
)
from srrestore.pipelines.medical.initial_model import through_plane_start
from srrestore.pipelines.medical.pairs import TrainingScan, in_plane_images, read_scan
from srrestore.pipelines.medical.profile_estimate import SHORTEST_SEGMENT, estimate_profile

from srrestore.storage.atomic import check_output_path
from srrestore.errors import ConfigError, check_choice
from srrestore.models.discriminator import DiscriminatorConfig
from srrestore.pipelines.options import options_for
from srrestore.training.degradation import Degradation
from srrestore.training.finetune import FinetuneOptions, FinetuneReport, finetune
from srrestore.training.patches import FinetuneImage

__all__ = ["PROFILE_CHOICES", "PROFILE_TOLERANCE", "ScanFinetuneOptions", "finetune_medical"]

PROFILE_CHOICES = ("auto", "gaussian", "box", "family")  # --slice-profile
PROFILE_TOLERANCE = 0.01  # relative difference of profile widths still taken as one profile


@dataclass
class ScanFinetuneOptions(FinetuneOptions):
    """:class:`~srrestore.training.finetune.FinetuneOptions` plus what scans read.

    Attributes:
        slice_profile: ``"auto"`` (the default when None: estimated from the
            scans, :mod:`srrestore.pipelines.medical.profile_estimate`),
            ``"gaussian"`` (full width at half maximum = slice thickness, as
            SMORE), ``"box"`` (an ideal slab of the slice thickness) or
            ``"family"`` (a box, a Gaussian or a mix drawn per training image,
            all of the slice thickness: no guess, as the built-in slice models
            are trained; ``"auto"`` falls back to it on scans too short to estimate).
    """

    slice_profile: str | None = None


def _common_factor(scans: list[TrainingScan], scale: int | None) -> int:
    """The through-plane factor: ``scale`` when given, else the one every scan's header gives."""
    if scale is not None:
        if scale not in SUPPORTED_SLICE_FACTORS:
            raise ConfigError(
                f"through-plane factor {scale} is not supported; use one of {', '.join(map(str, SUPPORTED_SLICE_FACTORS))}"
            )
        return scale
    factors = {scan.factor for scan in scans}
    if len(factors) > 1:
        found = ", ".join(f"{scan.path.name}: x{scan.factor}" for scan in scans)
        raise ConfigError(f"the inputs need different through-plane factors ({found}); fine-tune them separately")
    return factors.pop()


def _common_profile(scans: list[TrainingScan], kind: str, factor: int) -> SliceProfile:
    """The one slice profile of all scans (widths within 1 %)."""
    profiles = [scan.profile(kind, factor) for scan in scans]
    widths = [profile.width for profile in profiles]
    if max(widths) > min(widths) * (1 + PROFILE_TOLERANCE):
        found = ", ".join(f"{scan.path.name}: {p.width:.3g} px" for scan, p in zip(scans, profiles))
        raise ConfigError(f"the inputs have different slice profiles ({found}); fine-tune them separately")
    return profiles[0]


class TrainingProfile(NamedTuple):
    """The slice profile fine-tuning degrades the in-plane slices with.

    Attributes:
        degradation: the fixed :class:`SliceProfile`, or a family
            :class:`~srrestore.training.degradation.Degradation` (a box, a
            Gaussian or a mix of the slice thickness, drawn per image).
        description: e.g. ``"box of 4 px"``.
        record: the card's ``slice_profile`` (``SliceProfile.to_dict()``, or
            ``{"kind": "family", "width_pixels", "factor", "scale"}``).
        source: where it came from (``--slice-profile``, or the estimate).
    """

    degradation: SliceProfile | Degradation
    description: str
    record: dict[str, Any]
    source: str


def _fixed(profile: SliceProfile, source: str) -> TrainingProfile:
    return TrainingProfile(profile, profile.describe(), profile.to_dict(), source)


def _family(header: SliceProfile, source: str) -> TrainingProfile:
    """Every profile kind of the header's width, drawn per training image."""
    degradation = Degradation(scale=header.scale, slice_profile="family", slice_thickness=header.width / header.factor,
                              quantize=False, clip=False)
    record = {"kind": "family", "width_pixels": header.width, "factor": int(header.factor), "scale": list(header.scale)}
    return TrainingProfile(degradation, f"family (box, Gaussian or a mix per image) of {header.width:.3g} px", record,
                           source)


def _profile(scans: list[TrainingScan], images: list[FinetuneImage], kind: str, factor: int) -> TrainingProfile:
    """The slice profile to train with: ``--slice-profile``'s, or estimated from the scans (the family when too short)."""
    if kind in ("gaussian", "box"):
        return _fixed(_common_profile(scans, kind, factor), "--slice-profile")
    header = _common_profile(scans, "gaussian", factor)  # the width every scan's header gives
    if kind == "family":
        return _family(header, "--slice-profile")
    thick = [(np.where(scan.valid, channel, np.nan), scan.axis) for scan in scans for channel in scan.normalised]
    fine = [np.where(image.valid, image.hr[0], np.nan) for image in images]
    estimate = estimate_profile(thick, fine, factor, header.width)
    if estimate is None:
        return _family(header, f"not estimable: fewer than {SHORTEST_SEGMENT} slices, or no signal along them")
    return _fixed(estimate.profile, estimate.describe())


def _fitted_patch_size(options: FinetuneOptions, images: list[FinetuneImage], factor: int) -> int:
    """The patch size, lowered to the largest multiple of ``factor`` the smallest training image holds."""
    smallest = min(min(image.hr.shape[1:]) for image in images)
    fitted = min(options.patch_size, smallest - smallest % factor)
    lowest = math.lcm(factor, 2 ** DiscriminatorConfig().num_layers) if options.adversarial else factor
    if fitted < max(lowest, 2 * factor):
        raise ConfigError(
            f"in-plane slices of {smallest} pixels are too small to fine-tune a x{factor} through-plane model"
        )
    return fitted


def finetune_medical(
    inputs: list[Path], output: Path, options: ScanFinetuneOptions | FinetuneOptions | Mapping[str, Any],
    slice_profile: str | None = None,
) -> FinetuneReport:
    """Fine-tune a through-plane ``(s, 1)`` model on NIfTI volumes or DICOM series (see the module docstring).

    Args:
        inputs: NIfTI files (``.nii``, ``.nii.gz``) and/or DICOM series (a
            folder holding one series, or a file); all must need the same
            through-plane factor and slice profile.
        output: the model file (``.safetensors``).
        options: the fine-tuning options. ``scale`` is the through-plane factor
            (None: ``round(slice spacing / in-plane spacing)`` from the header);
            ``model`` and ``phase`` pick the pretrained start (see
            :func:`~srrestore.pipelines.medical.initial_model.through_plane_start`);
            ``patch_size`` is lowered to fit small slices.
        slice_profile: overrides ``options.slice_profile`` when given.

    Returns:
        The core's report, with notes on the slice profile, the start and the
        restore command.

    Raises:
        ConfigError: no input, options that do not apply, inputs needing
            different factors or profiles, slices too small for a patch.
        InputReadError, UnsupportedInputError: see :func:`~srrestore.pipelines.medical.pairs.read_scan`.
        CheckpointError: a named pretrained model is missing or unreadable.
        OutputExistsError, OutputWriteError: the output exists or cannot be written.
    """
    started = time.monotonic()
    options = options_for(ScanFinetuneOptions, options, "NIfTI and DICOM scans")
    if slice_profile is not None:
        options = replace(options, slice_profile=slice_profile)
    kind = check_choice("slice profile", options.slice_profile or "auto", PROFILE_CHOICES)
    if not inputs:
        raise ConfigError("no input scan to fine-tune on")
    check_output_path(Path(output), options.overwrite, inputs)  # before reading the scans (the core checks again)
    scans = [read_scan(Path(path)) for path in inputs]
    factor = _common_factor(scans, options.scale)
    factor_from = "--scale" if options.scale is not None else (
        f"the header: slice spacing {scans[0].spacings[scans[0].axis]:g} mm over in-plane"
        f" {scans[0].in_plane_spacing:g} mm")
    images = [image for scan in scans for image in in_plane_images(scan, factor)]
    profile = _profile(scans, images, kind, factor)
    patch_size = _fitted_patch_size(options, images, factor)
    start, initialisation = through_plane_start(options, factor)
    card = {
        "domain": "medical",
        "task": f"through-plane x{factor}: apply along the slice axis on both orthogonal planes, averaged",
        "degradation_model": {"slice_profile": profile.record, "from": "header slice thickness and spacing",
                              "factor_from": factor_from, "profile_from": profile.source},
        "training_pairs": "in-plane slices (both orientations) degraded along one axis by the slice profile",
        "normalization": {str(scan.path): scan.normalization.to_dict() for scan in scans},
        "initialisation": initialisation,
        "intended_use": "restoring the scan(s) it was fine-tuned on: srrestore restore SCAN OUT --model THIS_FILE",
    }
    run_options = replace(options, scale=factor, patch_size=patch_size)
    report = finetune(start, images, output, run_options, profile.degradation, card, started)
    report.sources = list(dict.fromkeys(report.sources))
    pixel = scans[0].resampled_spacing(scans[0].in_plane_spacing, factor)
    axes = ", ".join(str(scan.axis) for scan in scans)
    kind_of_model = "adversarial (GAN)" if report.phase == "gan" else "PSNR-oriented (no adversarial loss)"
    report.notes[:0] = [
        (f"through-plane x{factor} along axis {axes} (factor from {factor_from}): slice profile"
         f" {profile.description} of {pixel:.3g} mm ({profile.source}); {len(images)} in-plane"
         " slice images"),
        f"start: {initialisation}",
        *([f"patch size lowered from {options.patch_size} to {patch_size} to fit the slices"]
          if patch_size != options.patch_size else []),
        f"{kind_of_model} model; restore with: srrestore restore SCAN OUT --model {output}",
    ]
    return report
