"""Slice-profile degradation: how thick, spaced slices sample a finer grid along one axis.

A thick-slice acquisition measures, at each slice centre, the anatomy weighted
by the slice profile (the slice sensitivity profile of CT, the excitation
profile of 2-D MR), and places slices one spacing apart. On a grid of fine
pixels of size ``p`` (the in-plane spacing) that is, as in SMORE (Zhao et al.
2021) and ECLARE (Remedios et al. 2025):

1. a 1-D profile of full width ``thickness / p`` fine pixels: a box (the
   ideal slab), a Gaussian of that full width at half maximum, or a mix of
   the two (``(1 - g) * box + g * Gaussian``, the family between them that
   real slice sensitivity profiles fall in);
2. subsampling by the integer factor ``s = round(spacing / p)``.

Slices are cell-centred on the fine grid (as everywhere in srrestore): thick
sample ``i`` is centred at fine index ``s * i + (s - 1) / 2``, the middle of
the ``s`` fine pixels it replaces. Each tap of the profile is its integral over
one fine pixel ``[j - 1/2, j + 1/2]``, normalised to sum 1, so a box of width
``s`` averages each group of ``s`` fine pixels exactly. Borders are extended
symmetrically (``... x1 x0 | x0 x1 ...``).

Arrays are numpy; the degraded axis is any axis of an ``(..., n, ...)`` array.
A :class:`SliceProfile` is also a training degradation for a through-plane
model of scale ``(s, 1)``: it has the ``scale``, ``margin``, ``is_random``,
``apply`` and ``to_dict`` of :class:`srrestore.training.degradation.Degradation`,
degrading the rows of ``(C, H, W)`` images, so the fine-tuning core
(:func:`srrestore.training.finetune.finetune`) takes it as its degradation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from srrestore.errors import ConfigError, UnsupportedInputError, check_choice
from srrestore.models.generator import SUPPORTED_FACTORS

__all__ = ["PROFILE_KINDS", "RATIO_TOLERANCE", "SUPPORTED_SLICE_FACTORS", "SliceProfile", "factor_for_ratio",
           "slice_factor"]

PROFILE_KINDS = ("box", "gaussian", "mixed")
RATIO_TOLERANCE = 0.05  # a spacing ratio within 5 % of an integer is that integer (near-isotropic, no resampling)
GAUSSIAN_REACH = 3.0  # Gaussian taps reach 3 sigma
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
SUPPORTED_SLICE_FACTORS = tuple(f for f in SUPPORTED_FACTORS if f > 1)  # the generator's factors above 1


def factor_for_ratio(ratio: float, tolerance: float = RATIO_TOLERANCE) -> int:
    """The integer factor a spacing ratio needs: the nearest integer when within ``tolerance`` of it, else the next up.

    With the default 5 %, 2 mm slices over 0.98 mm pixels (ratio 2.05) are x2
    (1 mm slices: near-isotropic, no resampling); 3.3 is x4, whose output is
    then resampled onto the wanted spacing (restore), or whose training slices
    are resampled to it (fine-tuning).
    """
    nearest = round(ratio)
    return int(nearest) if nearest >= 1 and abs(ratio - nearest) <= tolerance * ratio else math.ceil(ratio)


def slice_factor(spacing: float, in_plane_spacing: float) -> int:
    """The integer through-plane factor of ``spacing / in-plane spacing`` (:func:`factor_for_ratio`).

    Args:
        spacing: distance between slice centres, mm.
        in_plane_spacing: pixel size of the in-plane (fine) grid, mm.

    Raises:
        ConfigError: a spacing that is not positive, or a ratio that does not
            round to a supported factor (:data:`SUPPORTED_SLICE_FACTORS`).
    """
    for name, value in (("slice spacing", spacing), ("in-plane spacing", in_plane_spacing)):
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number of mm, got {value!r}")
    ratio = spacing / in_plane_spacing
    factor = factor_for_ratio(ratio)
    if factor not in SUPPORTED_SLICE_FACTORS:
        raise ConfigError(
            f"slice spacing {spacing:g} mm is {ratio:.2f} times the in-plane spacing {in_plane_spacing:g} mm;"
            f" through-plane SR needs a ratio above 1 that rounds up to one of"
            f" {', '.join(map(str, SUPPORTED_SLICE_FACTORS))}"
        )
    return int(factor)


@dataclass(frozen=True)
class SliceProfile:
    """A slice profile and the subsampling of the slices, on the fine grid.

    Attributes:
        factor: integer subsampling ``s`` (slice spacing / fine pixel size).
        width: full width of the profile in fine pixels: the box width, or the
            Gaussian's full width at half maximum (slice thickness / fine pixel size).
        kind: ``"box"``, ``"gaussian"`` or ``"mixed"``.
        gaussian_share: the Gaussian's weight ``g`` in a mixed profile,
            ``(1 - g) * box + g * Gaussian`` of the same width (0..1; a box is 0,
            a Gaussian 1).
    """

    factor: int
    width: float
    kind: str = "gaussian"
    gaussian_share: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.factor, bool) or not isinstance(self.factor, (int, np.integer)) or self.factor < 1:
            raise ConfigError(f"slice factor must be a positive integer, got {self.factor!r}")
        if not (isinstance(self.width, (int, float)) and math.isfinite(self.width) and self.width > 0):
            raise ConfigError(f"slice profile width must be a positive number of pixels, got {self.width!r}")
        object.__setattr__(self, "kind", check_choice("slice profile", self.kind, PROFILE_KINDS))
        if not (isinstance(self.gaussian_share, (int, float)) and 0.0 <= self.gaussian_share <= 1.0):
            raise ConfigError(f"a mixed profile's Gaussian share must be in [0, 1], got {self.gaussian_share!r}")

    @classmethod
    def with_share(cls, factor: int, width: float, share: float) -> SliceProfile:
        """The profile whose Gaussian weight is ``share``: a box at 0, a Gaussian at 1, a mix between."""
        kind = "box" if share == 0 else "gaussian" if share == 1 else "mixed"
        return cls(factor, width, kind, share if kind == "mixed" else 0.5)

    @property
    def share(self) -> float:
        """The Gaussian's weight: 0 for a box, 1 for a Gaussian, ``gaussian_share`` for a mix."""
        return {"box": 0.0, "gaussian": 1.0}.get(self.kind, float(self.gaussian_share))

    def describe(self) -> str:
        """``"box of 4 px"``, ``"Gaussian of FWHM 4 px"`` or ``"mixed (0.3 Gaussian) of 4 px"``."""
        if self.kind == "box":
            return f"box of {self.width:.3g} px"
        if self.kind == "gaussian":
            return f"Gaussian of FWHM {self.width:.3g} px"
        return f"mixed ({self.gaussian_share:.2g} Gaussian) of {self.width:.3g} px"

    @classmethod
    def from_header(
        cls,
        spacing: float,
        in_plane_spacing: float,
        thickness: float | None = None,
        kind: str = "gaussian",
    ) -> SliceProfile:
        """The profile a header describes.

        Args:
            spacing: distance between slice centres, mm (DICOM IPP steps, NIfTI pixdim).
            in_plane_spacing: the fine pixel size, mm.
            thickness: SliceThickness in mm; None (NIfTI has none) takes the spacing.
            kind: ``"box"``, ``"gaussian"`` or ``"mixed"``.

        Raises:
            ConfigError: non-positive values, or a spacing ratio that is not a supported factor.
        """
        factor = slice_factor(spacing, in_plane_spacing)
        thickness = spacing if thickness is None else thickness
        if not (math.isfinite(thickness) and thickness > 0):
            raise ConfigError(f"slice thickness must be a positive number of mm, got {thickness!r}")
        return cls(factor, float(thickness / in_plane_spacing), kind)

    @property
    def reach(self) -> int:
        """Fine pixels the profile reaches beyond a slice's own ``s`` pixels, per side."""
        half = self.width / 2 if self.share == 0 else GAUSSIAN_REACH * self.width / FWHM_PER_SIGMA
        return max(0, math.ceil(half - self.factor / 2 - 1e-9))

    def taps(self) -> np.ndarray:
        """Weights of fine pixels ``s*i - reach ... s*i + s - 1 + reach`` in thick sample ``i``.

        Returns:
            ``(s + 2 * reach,)`` float64 weights summing to 1.
        """
        centre = (self.factor - 1) / 2
        offsets = np.arange(-self.reach, self.factor + self.reach, dtype=np.float64) - centre
        low, high = offsets - 0.5, offsets + 0.5
        half = self.width / 2
        box = np.clip(np.minimum(high, half) - np.maximum(low, -half), 0.0, None)
        scale = math.sqrt(2.0) * self.width / FWHM_PER_SIGMA
        gaussian = np.array([math.erf(h / scale) - math.erf(lo / scale) for lo, h in zip(low, high)])
        weights = (1.0 - self.share) * box / box.sum() + self.share * gaussian / gaussian.sum()
        return weights / weights.sum()

    def degrade(self, array: np.ndarray, axis: int = 0) -> np.ndarray:
        """Thick slices of ``array`` along ``axis``.

        Args:
            array: any-shape array, ``n`` fine pixels along ``axis``, ``n`` a
                multiple of ``factor``.
            axis: the axis the slices cut across.

        Returns:
            float64 array with ``n / factor`` samples along ``axis``.

        Raises:
            UnsupportedInputError: ``n`` is not a multiple of the factor.
        """
        values = np.moveaxis(np.asarray(array, dtype=np.float64), axis, 0)
        length = values.shape[0]
        if length == 0 or length % self.factor:
            raise UnsupportedInputError(
                f"axis {axis} has {length} pixels, not a positive multiple of the slice factor {self.factor}"
            )
        padded = np.pad(values, [(self.reach, self.reach)] + [(0, 0)] * (values.ndim - 1), mode="symmetric")
        count = length // self.factor
        result = np.zeros((count, *values.shape[1:]), dtype=np.float64)
        for offset, weight in enumerate(self.taps()):
            result += weight * padded[offset : offset + self.factor * count : self.factor]
        return np.moveaxis(result, 0, axis)

    @property
    def scale(self) -> tuple[int, int]:
        """The ``(sy, sx)`` factors of the model it trains: ``(s, 1)``, rows are the slice axis."""
        return (int(self.factor), 1)

    @property
    def margin(self) -> tuple[int, int]:
        """Thick samples per side ``(rows, columns)`` a patch is degraded with (then cropped).

        Degrading an image that extends this far beyond a patch gives the same
        thick samples the whole image's degradation gives there.
        """
        return (-(-self.reach // self.factor), 0)

    @property
    def is_random(self) -> bool:
        """Always False: the profile is fixed by the header."""
        return False

    def apply(self, image: np.ndarray, rng: np.random.Generator | None = None, levels: int | None = None) -> np.ndarray:
        """Degrade the rows of a ``(C, H, W)`` image (the training degradation protocol).

        Args:
            image: ``(C, H, W)`` normalised values, ``H`` a multiple of the factor.
            rng, levels: unused (the profile is deterministic; values are not
                quantised or clipped: normalised CT may leave ``[0, 1]``).

        Returns:
            ``(C, H / s, W)`` float32.
        """
        if np.ndim(image) != 3:
            raise UnsupportedInputError(f"expected a (C, H, W) image, got shape {np.shape(image)}")
        return self.degrade(image, axis=1).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """``{"kind", "width_pixels", "factor", "scale"}`` (and ``"gaussian_share"`` when mixed) for cards and sidecars."""
        data = {"kind": self.kind, "width_pixels": self.width, "factor": int(self.factor), "scale": list(self.scale)}
        return data | ({"gaussian_share": float(self.gaussian_share)} if self.kind == "mixed" else {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SliceProfile:
        """The profile :meth:`to_dict` recorded (a card's or sidecar's ``slice_profile``)."""
        return cls(int(data["factor"]), float(data["width_pixels"]), data["kind"], float(data.get("gaussian_share", 0.5)))

