"""Options shared by every restore pipeline (the CLI's ``restore`` options)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Sequence

from srrestore.errors import ConfigError

__all__ = ["RestoreOptions", "FORMAT_OPTIONS"]

FORMAT_OPTIONS = {
    "cog": "--cog",
    "series_uid": "--series",
    "resample_irregular": "--resample-irregular",
    "slice_scale": "--slice-scale",
    "slice_model": "--slice-model",
    "nodata": "--nodata",
}
"""Options that only some formats read, with their command-line spelling."""


@dataclass
class RestoreOptions:
    """What to run and how; every format reads the fields it understands.

    Attributes:
        model: ``"default"``, a built-in name or a checkpoint path.
        scale: in-plane factor (None: the model's own; 4 for ``"default"``).
        slice_scale: through-plane factor for volumes (None: the format's default).
        phase: built-in variant for ``"default"``: ``"psnr"`` or ``"gan"``.
        tile_size, batch_size, device, precision, consistency, compile: engine options.
        overwrite: replace an existing output.
        progress: show a progress bar on stderr.
        cog: write a Cloud-Optimised GeoTIFF (satellite).
        series_uid: which DICOM series of a folder to restore (medical).
        resample_irregular: resample DICOM series with uneven spacing or gantry tilt instead of refusing.
        dask: address of a Dask scheduler (``tcp://host:8786``) to compute on; None runs locally.
        slice_model: model for the through-plane pass of a volume when both ``scale`` and
            ``slice_scale`` are given (None: ``model``); it must upscale one axis only, e.g. ``(4, 1)``.
        nodata: declares the nodata value of a raster that has none (GeoTIFF); it is
            masked like a declared one and written into the output.
        backend: ``"torch"``, ``"onnxruntime"`` (an ``.onnx`` model) or ``"auto"`` (by the model file).
    """

    model: str = "default"
    scale: int | None = None
    slice_scale: int | None = None
    phase: str = "psnr"
    tile_size: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    consistency: str | None = None
    compile: bool = False
    overwrite: bool = False
    progress: bool = True
    cog: bool = False
    series_uid: str | None = None
    resample_irregular: bool = False
    slice_model: str | None = None
    dask: str | None = None
    nodata: float | None = None
    backend: str = "auto"

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "RestoreOptions":
        """Build from keyword arguments, refusing unknown names with a hint."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ConfigError(f"unknown restore option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**kwargs)

    def check_applies(self, kind: str, allowed: Sequence[str]) -> None:
        """Refuse format-specific options given for a format they do not apply to.

        Args:
            kind: the input's format, for the message (``"GeoTIFF"``...).
            allowed: names of the format-specific fields this format reads.

        Raises:
            ConfigError: e.g. ``--cog`` for a PNG, ``--slice-scale`` for a 2-D raster.
        """
        for name, flag in FORMAT_OPTIONS.items():
            value = getattr(self, name)
            if value is not None and value is not False and name not in allowed:  # nodata 0 is given
                raise ConfigError(f"option {flag} does not apply to {kind} inputs")
