"""Options: those every format reads, and how a format takes its own (restore and fine-tuning).

:class:`RestoreOptions` holds what every restore pipeline reads (the model,
the factor, the engine). Each format that reads more has its own subclass in
its pipeline package: :class:`~srrestore.pipelines.satellite.options.GeoTiffOptions`
(``cog``, ``nodata``), :class:`~srrestore.pipelines.medical.options.VolumeOptions`
(``slice_scale``, ``slice_model``: NIfTI) and
:class:`~srrestore.pipelines.medical.options.DicomOptions` (also
``series_uid``, ``resample_irregular``). A pipeline takes its options with
:meth:`RestoreOptions.for_format`, from a mapping (the command line's values)
or from another options object, and refuses an option of another format that
was given (``--cog`` for a NIfTI input), so none is ignored silently.
Fine-tuning does the same with :func:`options_for`: the core's
:class:`~srrestore.training.finetune.FinetuneOptions`, scenes'
``SceneFinetuneOptions`` (``reference``, ``blur_sigma``, ``noise_sigma``) and
scans' ``ScanFinetuneOptions`` (``slice_profile``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from srrestore.errors import ConfigError

__all__ = ["FORMAT_OPTIONS", "RestoreOptions", "options_for"]

FORMAT_OPTIONS = {
    "cog": "--cog",
    "nodata": "--nodata",
    "series_uid": "--series",
    "resample_irregular": "--resample-irregular",
    "slice_scale": "--slice-scale",
    "slice_model": "--slice-model",
    "target_spacing": "--target-spacing",
    "reference": "--reference",
    "blur_sigma": "--blur-sigma",
    "noise_sigma": "--noise-sigma",
    "slice_profile": "--slice-profile",
}
"""Options that only some formats read, with their command-line spelling."""

Options = TypeVar("Options")


def options_for(cls: type[Options], values: Mapping[str, Any] | Any, kind: str) -> Options:
    """The options dataclass ``cls`` of one format from ``values`` (a mapping or another options object).

    Another format's option (:data:`FORMAT_OPTIONS`) is dropped when not
    given (None, False or empty) and refused when given.

    Args:
        cls: the format's options class.
        values: option values by field name, or an options dataclass.
        kind: the inputs' format, for the message (``"GeoTIFF"``...).

    Raises:
        ConfigError: e.g. ``--cog`` for a PNG, ``--reference`` for a scan; or a name no format knows.
    """
    if type(values) is cls:
        return values
    if not isinstance(values, Mapping):
        values = {field.name: getattr(values, field.name) for field in fields(values)}
    known = {field.name for field in fields(cls)}  # type: ignore[arg-type]
    kept = {}
    for name, value in values.items():
        if name in known:
            kept[name] = value
        elif name not in FORMAT_OPTIONS:
            raise ConfigError(f"unknown option {name!r}")
        elif value is not None and value is not False and value != ():  # nodata 0 is given
            raise ConfigError(f"option {FORMAT_OPTIONS[name]} does not apply to {kind}")
    return cls(**kept)


@dataclass
class RestoreOptions:
    """What to run and how: the options every format reads (plain images read only these).

    Attributes:
        model: ``"default"``, a built-in name or a checkpoint path.
        scale: in-plane factor (None: the model's own; 4 for ``"default"``).
        phase: built-in variant for ``"default"``: ``"psnr"`` or ``"gan"``.
        tile_size, batch_size, device, precision, consistency, compile: engine options.
        overwrite: replace an existing output.
        progress: show a progress bar on stderr.
        dask: address of a Dask scheduler (``tcp://host:8786``) to compute on; None runs locally.
        backend: ``"torch"``, ``"onnxruntime"`` (an ``.onnx`` model) or ``"auto"`` (by the model file).
    """

    model: str = "default"
    scale: int | None = None
    phase: str = "psnr"
    tile_size: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    consistency: str | None = None
    compile: bool = False
    overwrite: bool = False
    progress: bool = True
    dask: str | None = None
    backend: str = "auto"

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Any:
        """Build from keyword arguments, refusing unknown names with a hint."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ConfigError(f"unknown restore option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**kwargs)

    @classmethod
    def for_format(cls: type[RestoreOptions], values: Mapping[str, Any] | RestoreOptions, kind: str) -> Any:
        """This format's options from ``values`` (see :func:`options_for`), e.g.
        ``GeoTiffOptions.for_format(values, "GeoTIFF")``; ``kind`` names the format."""
        return options_for(cls, values, f"{kind} inputs")
