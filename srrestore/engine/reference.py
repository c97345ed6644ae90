"""Whole-image inference: the definition tiled inference must equal.

Fill nodata from the nearest valid pixel over the whole image, normalise, run
the network once on the image as it is (its own convolutions pad at the edges;
with ``pad_edges``, or for networks needing a size multiple, the image is first
padded by the halo replicating edge pixels), apply the guard, crop, and restore
stored values and nodata. Volumes under a 2-D network are
processed the same way plane by plane. Memory grows with the image: this is a
reference for tests and benchmarks, not a way to process large images.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

from srrestore.engine.grid import Tile
from srrestore.engine.io import ImageSpec, band_valid_mask
from srrestore.engine.nodata import NEAR_MASK_RADIUS, fill_nodata, local_bounds, nearest_valid
from srrestore.engine.normalize import Normalization
from srrestore.engine.padding import edge_pad
from srrestore.engine.plan import UpscaleOptions, make_plan
from srrestore.engine.region import Region
from srrestore.engine.stages import TileOutput, to_stored
from srrestore.models.spec import ModelSpec

__all__ = ["upscale_whole"]


def upscale_whole(
    array: np.ndarray,
    network: nn.Module,
    spec: ModelSpec,
    normalization: Normalization,
    nodata: float | None = None,
    options: UpscaleOptions | None = None,
) -> np.ndarray:
    """Upscale ``(C, *spatial)`` in one forward pass (one per plane for volumes).

    Args:
        array: ``(C, H, W)`` or ``(C, D, H, W)`` stored values.
        network: as for :func:`srrestore.engine.tiler.upscale`.
        spec: as for :func:`srrestore.engine.tiler.upscale`.
        normalization: as for :func:`srrestore.engine.tiler.upscale`.
        nodata: the image's nodata value (NaN allowed) or None.
        options: only ``device``, ``precision``, ``consistency``, ``plane_axes``,
            ``halo`` and ``pad_edges`` matter here.

    Returns:
        ``(C_out, *spatial*scale)`` array of ``array.dtype``.
    """
    options = options or UpscaleOptions()
    image = ImageSpec(array.shape[0], tuple(array.shape[1:]), array.dtype.name, nodata)
    plan = make_plan(image, spec, normalization, options)
    runner = plan.runner(network)
    layout = plan.layout
    output = np.empty((plan.out_channels, *layout.output_shape), dtype=array.dtype)
    iterated = layout.iterated_axes
    for index in itertools.product(*(range(layout.shape[axis]) for axis in iterated)):
        at = dict(zip(iterated, index))
        region = Region(
            tuple(at.get(axis, 0) for axis in range(len(layout.shape))),
            tuple(at[axis] + 1 if axis in at else n for axis, n in enumerate(layout.shape)),
        )
        target = (slice(None), *region.scaled(layout.scale).slices())
        values = array[(slice(None), *region.slices())]
        bands = band_valid_mask(values, nodata)
        valid = bands.all(axis=0)
        masks = None if bands.all() else bands
        held = None if masks is None else values
        radius = tuple(min(NEAR_MASK_RADIUS, halo) for halo in layout.halo)
        bounds = None if masks is None else local_bounds(values, bands, Region.from_shape(valid.shape), radius)
        if not valid.any():
            output[target] = to_stored(TileOutput(Tile(region, region), None, bands, None, held), plan.out_channels,
                                       layout, normalization, plan.dtype, nodata)
            continue
        if not valid.all():
            everything = Region.from_shape(valid.shape)
            indices, _, _ = nearest_valid(valid, everything, (True,) * valid.ndim, (True,) * valid.ndim)
            values = np.where(bands, values, fill_nodata(values, indices))
        multiple = layout.multiple
        core = Region(region.start, tuple(
            a + (-(-(b - a) // multiple) * multiple if axis in layout.net_axes else b - a)
            for axis, (a, b) in enumerate(zip(region.start, region.stop))
        ))
        window = layout.window(core)
        pixels = edge_pad(normalization.forward(values), region, window)
        sr, _ = runner([torch.from_numpy(np.ascontiguousarray(pixels))], [core.relative_to(window)])
        crop = (slice(None), *region.relative_to(core).scaled(layout.scale).slices())
        result = TileOutput(Tile(core, region), sr[0].numpy()[crop], masks, None, held, bounds)
        output[target] = to_stored(result, plan.out_channels, layout, normalization, plan.dtype, nodata)
    return output
