"""`Region`: an N-d box of pixel indices, the unit of work of the engine.

Like rasterio's ``Window`` but N-dimensional and immutable. ``start`` is
inclusive, ``stop`` exclusive, both in pixel indices of one image grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

__all__ = ["Region"]


def _per_axis(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * ndim
    values = tuple(int(v) for v in value)
    if len(values) != ndim:
        raise ValueError(f"{name} has {len(values)} values for a {ndim}-d region: {values}")
    return values


@dataclass(frozen=True)
class Region:
    """Box ``[start, stop)`` per axis in pixel indices.

    Attributes:
        start: first index on each axis (may be negative for padded regions).
        stop: one past the last index on each axis.
    """

    start: tuple[int, ...]
    stop: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.start) != len(self.stop):
            raise ValueError(f"start {self.start} and stop {self.stop} differ in length")
        if any(b < a for a, b in zip(self.start, self.stop)):
            raise ValueError(f"empty or inverted region: start {self.start}, stop {self.stop}")

    @classmethod
    def from_shape(cls, shape: Sequence[int]) -> "Region":
        """The whole grid of ``shape``."""
        return cls(tuple(0 for _ in shape), tuple(int(s) for s in shape))

    @property
    def ndim(self) -> int:
        return len(self.start)

    @property
    def size(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.start, self.stop))

    @property
    def num_pixels(self) -> int:
        count = 1
        for extent in self.size:
            count *= extent
        return count

    def padded(self, halo: int | Sequence[int]) -> "Region":
        """Grow by ``halo`` pixels on both sides of each axis (may leave the grid)."""
        pad = _per_axis(halo, self.ndim, "halo")
        return Region(
            tuple(a - p for a, p in zip(self.start, pad)),
            tuple(b + p for b, p in zip(self.stop, pad)),
        )

    def scaled(self, scale: int | Sequence[int]) -> "Region":
        """The same box on a grid ``scale`` times finer (cell-centred upsampling)."""
        factors = _per_axis(scale, self.ndim, "scale")
        return Region(
            tuple(a * f for a, f in zip(self.start, factors)),
            tuple(b * f for b, f in zip(self.stop, factors)),
        )

    def clipped(self, shape: Sequence[int]) -> "Region":
        """Intersection with the grid ``[0, shape)``."""
        limits = _per_axis(tuple(shape), self.ndim, "shape")
        start = tuple(min(max(a, 0), n) for a, n in zip(self.start, limits))
        stop = tuple(min(max(b, 0), n) for b, n in zip(self.stop, limits))
        return Region(start, tuple(max(a, b) for a, b in zip(start, stop)))

    def relative_to(self, outer: "Region") -> "Region":
        """This region in the index frame of ``outer`` (whose start becomes 0)."""
        return Region(
            tuple(a - o for a, o in zip(self.start, outer.start)),
            tuple(b - o for b, o in zip(self.stop, outer.start)),
        )

    def slices(self) -> tuple[slice, ...]:
        """Slices selecting this region from an array whose grid starts at 0."""
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))
