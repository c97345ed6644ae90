"""What a volume restore does: its engine passes and the grid of its output, each choice with its origin.

A volume goes through one or two engine passes of a 2-D network:

- in-plane (``scale``): an isotropic ``(s, s)`` model on the planes across the
  slice axis, slice by slice;
- through-plane (``slice_scale``): a model that upscales one axis only,
  ``(s, 1)`` or ``(1, s)``, on both orthogonal planes holding the slice axis.

The through-plane output grid (:class:`SliceGrid`) has the integer factor
``s`` of the model; where the wanted slice spacing is not the input's divided
by an integer (slice spacing 3.3 mm towards 1 mm), the model's output, ``s``
times finer (``s`` the next integer above the ratio), is resampled along the
slice axis onto the wanted spacing, adjusted so that the output's slices
exactly fill the input's box (:mod:`srrestore.domains.medical.resample`).
The default target (the in-plane spacing) counts as met within 5 % (2 mm
slices over 0.98 mm pixels are x2, 1 mm, without resampling); a given
``--target-spacing`` is met exactly. Where the wanted factor is above the
largest built-in slice model's (x6), that model runs and its slices are
interpolated onto the target; the report's line says so. A named model
without ``--slice-scale`` runs with its own factor, resampled onto the target.

Defaults (no ``--scale``, no ``--slice-scale``): a volume with one coarse axis
(spacing at least
:data:`~srrestore.domains.medical.geometry.COARSE_RATIO` times the others) is restored
through-plane only, onto the in-plane spacing (isotropic); any other volume
in-plane with the model's own factor. ``--slice-scale auto`` takes the
factor from the header's spacings; ``--target-spacing MM`` chooses the output
spacing (the default is the in-plane spacing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from srrestore.domains.medical.geometry import coarse_axis, in_plane_spacing
from srrestore.pipelines.medical.options import VolumeOptions

from srrestore.errors import ConfigError
from srrestore.models.registry import builtin_slice_factors
from srrestore.training.slice_profile import RATIO_TOLERANCE, SliceProfile, factor_for_ratio
from srrestore.sr_model import SRModel, load_model

__all__ = ["EXACT_TOLERANCE", "SRPass", "SliceGrid", "VolumePlan", "plan_volume"]


EXACT_TOLERANCE = 1e-6  # relative: a given --target-spacing that a factor meets this closely needs no resampling


@dataclass(frozen=True)
class SRPass:
    """One engine pass over a volume.

    Attributes:
        kind: ``"through-plane"`` or ``"in-plane"``.
        model: the 2-D model.
        plane_axes: the volume's spatial axes the network sees, in its axis order.
        factors: upscale factor per spatial axis of the volume.
        second_plane: through-plane passes: the other plane holding the slice
            axis; the pass averages the runs on both planes. None: one plane.
        origin: where the factor came from (an option, the header, the model).
    """

    kind: str
    model: SRModel
    plane_axes: tuple[int, int]
    factors: tuple[int, int, int]
    second_plane: tuple[int, int] | None = None
    origin: str = ""

    @property
    def axis(self) -> int | None:
        """The slice axis of a through-plane pass (None for in-plane)."""
        return next(a for a, f in enumerate(self.factors) if f > 1) if self.kind == "through-plane" else None

    def describe(self) -> str:
        """One line: the pass, its factor and axis, its model, the slice profile and where each came from."""
        where = f" along axis {self.axis}" if self.axis is not None else ""
        profile = f"; slice profile {model_slice_profile(self.model)}" if self.kind == "through-plane" else ""
        return f"{self.kind} x{max(self.factors)}{where} by {self.model.name} (factor from {self.origin}){profile}"

    @property
    def planes(self) -> list[tuple[int, int]]:
        """Every plane the pass runs on."""
        return [self.plane_axes] if self.second_plane is None else [self.plane_axes, self.second_plane]


def model_slice_profile(model: SRModel) -> str:
    """The slice profile a through-plane model was trained for, as its card and recipe record it."""
    recorded = model.info.card.get("degradation_model", {}).get("slice_profile")
    if recorded and recorded["kind"] == "family":
        return (f"any of box, Gaussian and their mixes of {float(recorded['width_pixels']):.3g} px"
                " (fine-tuned over the family)")
    if recorded:
        return f"{SliceProfile.from_dict(recorded).describe()} (fine-tuned for it)"
    degradation = model.info.training.get("recipe", {}).get("degradation") or {}
    if degradation.get("slice_profile") == "family":
        low, high = degradation.get("slice_thickness", (1.0, 1.0))
        return f"any of box, Gaussian and their mixes, thickness {low:g}-{high:g} slice spacings (trained over the family)"
    if degradation.get("slice_profile"):
        return f"{degradation['slice_profile']} (trained for it)"
    return "not recorded by the model"


@dataclass(frozen=True)
class SliceGrid:
    """The through-plane output grid along the slice axis.

    Attributes:
        axis: the spatial axis of the slices.
        source_spacing: distance between the input's slices, mm.
        source_count: the input's slices ``n``.
        factor: the model's integer factor ``s``.
        count: the output's slices ``m``: ``n * s``, or fewer when resampled
            onto a wanted spacing (``m = round(n * source_spacing / target)``).
        origin: where the factor and the spacing came from, for the one-line report.
    """

    axis: int
    source_spacing: float
    source_count: int
    factor: int
    count: int
    origin: str

    @property
    def resamples(self) -> bool:
        """True when the model's ``n * s`` slices are resampled onto ``count``."""
        return self.count != self.source_count * self.factor

    @property
    def spacing(self) -> float:
        """The output's slice spacing, mm: the input's box over ``count`` slices."""
        return self.source_spacing * self.source_count / self.count

    def describe(self) -> str:
        """E.g. ``"slices along axis 2: 3.3 mm -> 1.001 mm (x3.295: x4 by the model, resampled from 244 to 201 slices); ..."``."""
        zoom = self.count / self.source_count
        how = (f"x{self.factor} by the model, resampled from {self.source_count * self.factor} to {self.count} slices"
               if self.resamples else f"x{self.factor} by the model")
        return (f"slices along axis {self.axis}: {self.source_spacing:g} mm -> {self.spacing:.4g} mm (x{zoom:.4g}: {how});"
                f" {self.origin}")


def _slice_grid(options: VolumeOptions, spacings: Sequence[float], axis: int, count: int,
                largest: int | None, model_factor: int | None) -> SliceGrid:
    """The through-plane grid from ``--slice-scale``, ``--target-spacing``, the header and the model.

    Args:
        options: ``slice_scale`` (an integer, ``"auto"`` or None) and ``target_spacing`` are read.
        spacings: voxel size per spatial axis, mm.
        axis: the slice axis.
        count: the input's slices.
        largest: the largest built-in slice factor (``"default"`` models), else None.
        model_factor: a named model's factor (None for ``"default"``). Without
            ``--slice-scale`` it is the factor, and its output is resampled onto
            the target spacing when it does not reach it exactly.

    A wanted factor above ``largest`` takes ``largest``, whose output is then
    interpolated onto the target spacing (and the origin says so).
    """
    spacing = float(spacings[axis])
    in_plane = in_plane_spacing(spacings, axis)
    header = f"header: slice spacing {spacing:g} mm, in-plane {in_plane:g} mm"
    target_from = (f"--target-spacing {options.target_spacing:g} mm" if options.target_spacing is not None
                   else "the in-plane spacing (isotropic)")
    target = in_plane if options.target_spacing is None else float(options.target_spacing)
    ratio = spacing / target
    # The default target (isotropic) is met within 5 % without resampling; a given --target-spacing exactly.
    tolerance = RATIO_TOLERANCE if options.target_spacing is None else EXACT_TOLERANCE

    def resampled(factor: int, origin: str) -> SliceGrid:
        exact = abs(ratio - factor) <= tolerance * ratio  # the model's own grid
        return SliceGrid(axis, spacing, count, factor, count * factor if exact else max(1, round(count * ratio)),
                         origin)

    if isinstance(options.slice_scale, int):
        factor = options.slice_scale
        if options.target_spacing is None:
            return SliceGrid(axis, spacing, count, factor, count * factor, f"--slice-scale {factor}")
        if round(count * ratio) > count * factor:
            raise ConfigError(
                f"--slice-scale {factor} gives {spacing / factor:g} mm slices, coarser than {target_from};"
                f" use --slice-scale {math.ceil(ratio - 1e-9)} or leave it out (auto)"
            )
        return resampled(factor, f"--slice-scale {factor}, spacing from {target_from} ({header})")
    if options.slice_scale is None and model_factor is not None:
        return resampled(model_factor, f"the model's x{model_factor}, spacing from {target_from} ({header})")
    if ratio <= 1 + tolerance:
        raise ConfigError(
            f"slices {spacing:g} mm apart are not coarser than the target spacing {target:g} mm ({target_from}):"
            " nothing to do through-plane; give a smaller --target-spacing, or --scale for in-plane SR"
        )
    factor = factor_for_ratio(ratio, tolerance)
    origin = f"ratio {ratio:.3g} = slice spacing over {target_from} ({header})"
    if largest is not None and factor > largest:
        factor = largest
        origin += f"; x{largest} is the largest built-in slice model, its slices are interpolated onto the target"
    return resampled(factor, origin)


def _load(name: str, scale: int | tuple[int, int] | None, options: VolumeOptions) -> SRModel:
    return load_model(name, scale, 1, options.phase, options.device, options.precision, options.backend)


def _through_plane(options: VolumeOptions, spacings: Sequence[float], axis: int, count: int
                   ) -> tuple[SRPass, SliceGrid]:
    """The through-plane pass and its output grid; a named model is loaded first (its factor may decide)."""
    name = options.slice_model or options.model
    model = None if name == "default" else _load(name, None, options)
    builtins = builtin_slice_factors(options.phase) if model is None else []
    largest = max(builtins) if builtins else None
    own = max(model.spec.scale) if model is not None and min(model.spec.scale) == 1 else None
    grid = _slice_grid(options, spacings, axis, count, largest, own)
    if model is None:
        model = _load(name, (grid.factor, 1), options)
    rows, columns = model.spec.scale
    if min(rows, columns) != 1:
        raise ConfigError(
            f"through-plane SR needs a model that upscales one axis only, e.g. scale ({grid.factor}, 1); model"
            f" {model.name} upscales by {rows}x{columns} (an in-plane model: use it with --scale, or train a"
            " through-plane model with `srrestore finetune`)"
        )
    if max(rows, columns) != grid.factor:
        own = max(rows, columns)
        raise ConfigError(
            f"model {model.name} is a x{own} through-plane model; these slices need x{grid.factor} ({grid.origin});"
            f" use --slice-scale {own} (with --target-spacing to resample), or fine-tune a x{grid.factor} model:"
            f" srrestore finetune SCAN --scale {grid.factor} --out MODEL.safetensors"
        )
    other, third = (a for a in range(3) if a != axis)
    plane_axes, second_plane = ((axis, other), (axis, third)) if rows > 1 else ((other, axis), (third, axis))
    factors = [1, 1, 1]
    factors[axis] = grid.factor
    step = SRPass("through-plane", model, plane_axes, tuple(factors), second_plane, grid.origin)  # type: ignore[arg-type]
    return step, grid


def _in_plane(options: VolumeOptions, axis: int) -> SRPass:
    model = _load(options.model, options.scale, options)
    rows, columns = model.spec.scale
    if rows != columns:
        raise ConfigError(
            f"in-plane SR needs a model with equal factors, e.g. scale ({max(rows, columns)}, {max(rows, columns)});"
            f" model {model.name} upscales by {rows}x{columns} (a through-plane model: use it with --slice-scale)"
        )
    plane_axes = tuple(a for a in range(3) if a != axis)
    factors = [rows, rows, rows]
    factors[axis] = 1
    origin = "--scale" if options.scale is not None else f"the model {model.name}"
    return SRPass("in-plane", model, plane_axes, tuple(factors), None, origin)  # type: ignore[arg-type]


@dataclass(frozen=True)
class VolumePlan:
    """The passes of a volume restore and its output grid.

    Attributes:
        passes: the through-plane pass first (if any), then the in-plane pass (if any).
        grid: the through-plane output grid (None without a through-plane pass).
        shape: the input's spatial shape.
    """

    passes: list[SRPass]
    grid: SliceGrid | None
    shape: tuple[int, int, int]

    @property
    def factors(self) -> tuple[int, int, int]:
        """The passes' integer factor per spatial axis (before any resampling)."""
        return tuple(math.prod(p.factors[a] for p in self.passes) for a in range(3))  # type: ignore[return-value]

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """The output's spatial shape (the grid's slice count on its axis)."""
        shape = [n * f for n, f in zip(self.shape, self.factors)]
        if self.grid is not None:
            shape[self.grid.axis] = self.grid.count
        return tuple(shape)  # type: ignore[return-value]

    @property
    def zooms(self) -> tuple[float, float, float]:
        """Output over input samples per spatial axis (integers but where the slices are resampled)."""
        return tuple(m / n for m, n in zip(self.output_shape, self.shape))  # type: ignore[return-value]

    @property
    def resampling(self) -> tuple[int, int] | None:
        """``(axis, count)`` when the passes' output is resampled along ``axis`` onto ``count`` samples."""
        return (self.grid.axis, self.grid.count) if self.grid is not None and self.grid.resamples else None

    def describe(self) -> list[str]:
        """One line per pass, and the slice grid's line."""
        return [p.describe() for p in self.passes] + ([self.grid.describe()] if self.grid is not None else [])


def plan_volume(
    options: VolumeOptions, spacings: Sequence[float], slice_axis: int, shape: Sequence[int]
) -> VolumePlan:
    """Choose the passes and the output grid of a volume.

    Args:
        options: ``scale``, ``slice_scale`` (an integer, ``"auto"`` or None),
            ``target_spacing``, ``model``, ``slice_model``, ``phase``...
        spacings: voxel size per spatial axis, mm.
        slice_axis: the acquisition slice axis (used when no axis is coarse).
        shape: spatial shape.

    Raises:
        ConfigError: a factor that is not a positive integer or ``auto``, a
            model that does not fit its pass (the message names the model
            needed), through-plane SR on a single slice, or slices already at
            the target spacing.
    """
    for name, value in (("scale", options.scale), ("slice_scale", options.slice_scale)):
        allowed = value is None or (name == "slice_scale" and value == "auto")
        if not allowed and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be a positive integer{' or auto' if name == 'slice_scale' else ''},"
                              f" got {value!r}")
    if options.target_spacing is not None and not (math.isfinite(options.target_spacing) and options.target_spacing > 0):
        raise ConfigError(f"--target-spacing must be a positive number of mm, got {options.target_spacing!r}")
    coarse = coarse_axis(spacings)
    if coarse is not None and shape[coarse] < 2:
        coarse = None
    axis = slice_axis if coarse is None else coarse
    through, in_plane = options.slice_scale, options.scale
    wants_through = (
        through == "auto" or (isinstance(through, int) and through > 1) or options.target_spacing is not None
        or (through is None and in_plane is None and coarse is not None)
    )
    wants_in_plane = (in_plane is not None and in_plane > 1) or (
        through is None and in_plane is None and coarse is None and options.target_spacing is None
    )
    if wants_through and shape[axis] < 2:
        raise ConfigError(f"through-plane SR needs at least 2 slices; the volume has {shape[axis]} along axis {axis}")
    passes, grid = [], None
    if wants_through:
        step, grid = _through_plane(options, spacings, axis, int(shape[axis]))
        passes.append(step)
    if wants_in_plane:
        passes.append(_in_plane(options, axis))
    if not passes:
        raise ConfigError(f"nothing to do: --scale {in_plane or 'not given'} and --slice-scale {through or 'not given'}"
                          " upscale nothing")
    return VolumePlan(passes, grid, tuple(int(n) for n in shape))  # type: ignore[arg-type]
