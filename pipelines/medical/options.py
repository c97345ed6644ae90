"""The options a volume restore reads beside the common ones (NIfTI; DICOM reads two more)."""

from __future__ import annotations

from dataclasses import dataclass

from srrestore.pipelines.options import RestoreOptions

__all__ = ["DicomOptions", "VolumeOptions"]


@dataclass
class VolumeOptions(RestoreOptions):
    """:class:`~srrestore.pipelines.options.RestoreOptions` plus the through-plane pass of a volume.

    Attributes:
        slice_scale: through-plane factor: an integer, ``"auto"`` (from the
            header's spacings), or None (see :mod:`srrestore.pipelines.medical.plan`).
        slice_model: model for the through-plane pass when both ``scale`` and
            ``slice_scale`` are given (None: ``model``); it must upscale one
            axis only, e.g. ``(4, 1)``.
        target_spacing: the output's slice spacing in mm (None: the in-plane
            spacing, isotropic); a spacing the model's factor does not reach
            exactly is reached by resampling the model's output.
    """

    slice_scale: int | str | None = None
    slice_model: str | None = None
    target_spacing: float | None = None


@dataclass
class DicomOptions(VolumeOptions):
    """:class:`VolumeOptions` plus the choice of series and the handling of irregular ones.

    Attributes:
        series_uid: which DICOM series of a folder to restore.
        resample_irregular: resample series with uneven spacing or gantry tilt instead of refusing.
    """

    series_uid: str | None = None
    resample_irregular: bool = False
