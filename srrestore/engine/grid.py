"""Tile geometry: how a network's axes cover an image, and the tiles that cover a region.

A 2-D network sees ``(H, W)`` images directly; on a volume ``(D, H, W)`` it
sees the two ``plane_axes`` and the third axis is *iterated*: tiles are one
plane thick there, with no halo and a factor of 1. A network with as many axes
as the image sees them all.

Every tile of a run computes a core of the same size. With ``size_multiple ==
1`` the last tile along an axis is shifted back to end at the image's edge (it
overlaps its neighbour and writes only the new part); with ``size_multiple >
1`` tiles stay on the network's grid and the last one reaches past the edge
instead.

A window is its core grown by the halo. By default it stops at the image's
edges: the network sees the image as it is and its own convolutions pad there,
exactly as on its training patches and in whole-image inference. With
``pad_edges`` (forced for ``size_multiple > 1``, whose windows must keep their
size) windows reach past the edges and are padded by replicating edge pixels,
the same way whole-image inference then pads.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterator

from srrestore.engine.region import Region
from srrestore.errors import ConfigError, UnsupportedInputError
from srrestore.models.spec import ModelSpec

__all__ = ["Layout", "Tile", "make_layout", "split", "count_tiles"]


@dataclass(frozen=True)
class Layout:
    """How a network covers the spatial axes of one image.

    Attributes:
        shape: spatial shape of the image, ``(H, W)`` or ``(D, H, W)``, LR pixels.
        net_axes: spatial axes the network sees, in its own axis order.
        scale: upscale factor per spatial axis (1 on an iterated axis).
        halo: LR pixels read around a tile per spatial axis (0 on an iterated axis).
        multiple: the network's ``size_multiple``.
        pad_edges: windows reach past the image's edges (edge-replicated)
            instead of stopping there.
    """

    shape: tuple[int, ...]
    net_axes: tuple[int, ...]
    scale: tuple[int, ...]
    halo: tuple[int, ...]
    multiple: int = 1
    pad_edges: bool = False

    @property
    def iterated_axes(self) -> tuple[int, ...]:
        """Spatial axes walked plane by plane."""
        return tuple(axis for axis in range(len(self.shape)) if axis not in self.net_axes)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(n * s for n, s in zip(self.shape, self.scale))

    @property
    def net_extent(self) -> tuple[int, ...]:
        """The image's size along the network's axes."""
        return tuple(self.shape[axis] for axis in self.net_axes)

    def window(self, core: Region) -> Region:
        """The LR box a core is computed from: the core grown by the halo, inside the image unless ``pad_edges``."""
        grown = core.padded(self.halo)
        return grown if self.pad_edges else grown.clipped(self.shape)

    def core_size(self, tile_size: int) -> tuple[int, ...]:
        """Per-axis size of every tile's core for a ``tile_size`` side."""
        sizes = []
        for axis, extent in enumerate(self.shape):
            if axis not in self.net_axes:
                sizes.append(1)
            elif self.multiple == 1:
                sizes.append(min(tile_size, extent))
            else:
                sizes.append(min(tile_size, -(-extent // self.multiple) * self.multiple))
        return tuple(sizes)


@dataclass(frozen=True)
class Tile:
    """One unit of work.

    Attributes:
        core: LR box the network computes (its window is ``layout.window(core)``).
        write: the part of ``core`` this tile writes (inside the image and the region asked for).
    """

    core: Region
    write: Region


def _normalise_axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ConfigError(f"plane axis {axis} is out of range for a {ndim}-d image")
    return axis % ndim


def make_layout(
    shape: tuple[int, ...], spec: ModelSpec, plane_axes: tuple[int, int], halo: int, pad_edges: bool = False
) -> Layout:
    """Map a network onto an image.

    Args:
        shape: spatial shape of the image.
        spec: the network's spec (``len(spec.scale)`` axes).
        plane_axes: for a volume under a 2-D network, the two spatial axes the
            network sees (negative indices count from the end).
        halo: LR pixels per side read around each tile (rounded up to ``spec.size_multiple``).
        pad_edges: pad windows past the image's edges (always for ``size_multiple > 1``).

    Raises:
        UnsupportedInputError: the image has neither the network's number of axes nor one more.
        ConfigError: ``plane_axes`` are invalid.
    """
    ndim, net_ndim = len(shape), len(spec.scale)
    if ndim == net_ndim:
        net_axes = tuple(range(ndim))
    elif ndim == net_ndim + 1 == 3:
        if len(plane_axes) != 2:
            raise ConfigError(f"plane_axes needs two axes, got {plane_axes}")
        net_axes = tuple(_normalise_axis(axis, ndim) for axis in plane_axes)
        if net_axes[0] == net_axes[1]:
            raise ConfigError(f"plane_axes must be two different axes, got {plane_axes}")
    else:
        raise UnsupportedInputError(
            f"a {net_ndim}-d network cannot process a {ndim}-d image of spatial shape {shape}"
        )
    multiple = max(1, spec.size_multiple)
    halo = -(-halo // multiple) * multiple
    scale = [1] * ndim
    halos = [0] * ndim
    for factor, axis in zip(spec.scale, net_axes):
        scale[axis] = int(factor)
        halos[axis] = halo
    return Layout(tuple(int(n) for n in shape), net_axes, tuple(scale), tuple(halos), multiple,
                  pad_edges or multiple > 1)


def _split_axis(low: int, high: int, extent: int, size: int, shift: bool) -> list[tuple[int, int, int]]:
    """Cover ``[low, high)`` with cores of ``size`` inside ``[0, extent)``.

    Returns:
        ``(core_start, write_start, write_stop)`` per piece, in order.
    """
    pieces = []
    for start in range(low, high, size):
        core_start = max(min(start, extent - size), 0) if shift else start
        pieces.append((core_start, start, min(start + size, high)))
    return pieces


def split(bounds: Region, extent: tuple[int, ...], size: tuple[int, ...], shift: bool) -> Iterator[Tile]:
    """Tiles whose writes cover ``bounds`` exactly once, lazily, in row-major order.

    Args:
        bounds: box to cover (writes stay inside it).
        extent: size of the grid the cores must stay inside when ``shift``.
        size: core size per axis.
        shift: move the last core back inside ``extent`` instead of letting it reach past.
    """
    axes = [_split_axis(a, b, n, s, shift) for a, b, n, s in zip(bounds.start, bounds.stop, extent, size)]
    for pieces in itertools.product(*axes):
        core = Region(tuple(p[0] for p in pieces), tuple(p[0] + s for p, s in zip(pieces, size)))
        write = Region(tuple(p[1] for p in pieces), tuple(p[2] for p in pieces))
        yield Tile(core, write)


def count_tiles(bounds: Region, size: tuple[int, ...]) -> int:
    """How many tiles :func:`split` returns, without building them."""
    return math.prod(-(-(b - a) // s) for a, b, s in zip(bounds.start, bounds.stop, size))
