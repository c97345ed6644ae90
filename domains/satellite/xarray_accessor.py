"""The ``DataArray.srrestore`` accessor: upscale georeferenced xarray rasters (rioxarray-compatible).

Importing this module registers the accessor::

    import rioxarray
    import srrestore.domains.satellite.xarray_accessor  # noqa: F401

    scene = rioxarray.open_rasterio("scene.tif", chunks={"x": 1024, "y": 1024})
    restored = scene.srrestore.upscale("model.safetensors")   # lazy: a dask array
    restored.rio.to_raster("restored.tif", tiled=True)

The result has the new pixel-centre ``x``/``y`` coordinates, the CRS, the
transform ``T * Affine.scale(1/s)`` written with ``rio.write_transform``
(invariant G4), the nodata value, attributes and encoding. A dask-backed input
gives a lazy, chunked result equal to the eager one.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor used below)
import xarray as xr
from affine import Affine

from srrestore.domains.satellite.geotiff import SAMPLE_SIDE
from srrestore.domains.satellite.meta import scale_transform
from srrestore.engine import ArrayReader, ArrayWriter, ImageSpec, Normalization, TiledUpscaler, UpscaleOptions
from srrestore.engine import upscale_array, valid_mask
from srrestore.engine.distributed import current_worker_options
from srrestore.engine.plan import make_plan
from srrestore.engine.region import Region
from srrestore.errors import ConfigError, UnsupportedInputError
from srrestore.sr_model import SUPPORTED_DTYPES, SRModel, load_model

__all__ = ["SRRestoreAccessor", "overlap_depth"]


def overlap_depth(halo: int) -> int:
    """LR pixels a dask block borrows from each neighbour so its output equals the whole image's.

    An output pixel sees ``halo`` pixels around it. A nodata pixel it sees lies
    at most ``halo * sqrt(2)`` from a valid pixel (the output pixel itself),
    so its nearest-valid fill is found within ``halo + ceil(halo * sqrt(2))``.
    """
    return halo + math.ceil(halo * math.sqrt(2))


def _upscale_block(block: np.ndarray, depth: tuple[int, int], upscaler_args: tuple[Any, ...],
                   nodata: float | None, block_info: dict[Any, Any] | None = None) -> np.ndarray:
    """Upscale the core of one overlapped ``(C, h, w)`` block; returns ``(C_out, core * scale)``.

    ``depth`` is the ``(y, x)`` overlap borrowed from each neighbouring block. Each
    block is a run of its own: its device is the worker's, and automatic tile and
    batch sizes take this thread's share of the device's memory
    (:func:`~srrestore.engine.distributed.current_worker_options`).
    """
    info = block_info[None]  # type: ignore[index]
    (_, row, col), (_, rows, cols) = info["chunk-location"], info["num-chunks"]
    depth_y, depth_x = depth
    core = Region(
        (depth_y if row > 0 else 0, depth_x if col > 0 else 0),
        (block.shape[1] - (depth_y if row < rows - 1 else 0), block.shape[2] - (depth_x if col < cols - 1 else 0)),
    )
    reader = ArrayReader(block, nodata)
    network, spec, normalization, options = upscaler_args
    import dask

    local_threads = dask.config.get("num_workers", None) or os.cpu_count() or 1
    upscaler = TiledUpscaler(network, spec, normalization, reader.spec, current_worker_options(options, local_threads))
    writer = ArrayWriter(upscaler.plan.out_channels, upscaler.plan.layout.output_shape, block.dtype)
    upscaler.run(reader, writer, core)
    return writer.array[(slice(None), *core.scaled(upscaler.plan.layout.scale).slices())]


def _axis_chunks(chunks: tuple[int, ...], depth: int) -> tuple[tuple[int, ...], int]:
    """Chunks along one spatial axis, each at least ``depth`` long, and the overlap depth to use there.

    An axis no longer than ``depth`` becomes one chunk with no overlap: it has no
    neighbour to borrow from (and dask refuses a depth larger than the array).
    """
    from dask.array.overlap import ensure_minimum_chunksize

    if sum(chunks) <= depth:
        return (sum(chunks),), 0
    return ensure_minimum_chunksize(depth, chunks), depth


def _upscale_lazy(data: Any, model: SRModel, normalization: Normalization, options: UpscaleOptions,
                  nodata: float | None) -> Any:
    """Dask ``(C, H, W)`` -> lazy ``(C_out, H*sy, W*sx)``, one task per (merged) input chunk."""
    from dask.array.overlap import overlap

    image = ImageSpec(data.shape[0], tuple(data.shape[1:]), data.dtype.name, nodata)
    # Checked here for early errors; the device and automatic sizes are the workers' (see _upscale_block).
    plan = make_plan(image, model.spec, normalization, replace(options, device="cpu"))
    options = replace(options, progress=False)
    depth = overlap_depth(max(plan.layout.halo))
    (chunks_y, depth_y), (chunks_x, depth_x) = (_axis_chunks(data.chunks[axis], depth) for axis in (1, 2))
    data = data.rechunk((data.shape[0], chunks_y, chunks_x))
    padded = overlap(data, depth={0: 0, 1: depth_y, 2: depth_x}, boundary="none")
    sy, sx = plan.layout.scale
    chunks = ((plan.out_channels,), tuple(c * sy for c in data.chunks[1]), tuple(c * sx for c in data.chunks[2]))
    return padded.map_blocks(
        _upscale_block, (depth_y, depth_x), (model.network, model.spec, normalization, options), nodata,
        chunks=chunks, dtype=data.dtype, meta=np.empty((0, 0, 0), dtype=data.dtype),
    )


def _resolve_model(model: SRModel | str, scale: int | None, channels: int) -> SRModel:
    if isinstance(model, SRModel):
        if scale is not None and max(model.spec.scale) != scale:
            raise ConfigError(f"model {model.name} upscales by {'x'.join(map(str, model.spec.scale))}, not {scale}")
    else:
        model = load_model(str(model), scale, channels)
    model.check_channels(channels)
    return model


def _normalization(model: SRModel, data: Any, nodata: float | None) -> Normalization:
    """The model's intensity map from every ``step``-th pixel (at most ``SAMPLE_SIDE`` a side)."""
    step = max(1, math.ceil(max(data.shape[1:]) / SAMPLE_SIDE))
    sample = np.asarray(data[:, ::step, ::step])
    return model.normalization_for(sample[:, valid_mask(sample, nodata)])


def _pixel_centres(transform: Affine, width: int, height: int, x_dim: str, y_dim: str) -> dict[str, np.ndarray]:
    """1-D ``x``/``y`` coordinates of pixel centres; none for a rotated grid (its transform says it all)."""
    if transform.b or transform.d:
        return {}
    centres = transform @ Affine.translation(0.5, 0.5)
    return {x_dim: centres.c + centres.a * np.arange(width), y_dim: centres.f + centres.e * np.arange(height)}


@xr.register_dataarray_accessor("srrestore")
class SRRestoreAccessor:
    """``da.srrestore``: super-resolution of a georeferenced ``(y, x)`` or ``(band, y, x)`` DataArray."""

    def __init__(self, data_array: xr.DataArray) -> None:
        self._obj = data_array

    def upscale(self, model: SRModel | str, scale: int | None = None,
                options: UpscaleOptions | None = None) -> xr.DataArray:
        """Upscale the raster; lazy and chunked when it is dask-backed.

        Args:
            model: a loaded :class:`~srrestore.sr_model.SRModel`, a
                built-in name or a checkpoint path.
            scale: the factor wanted (None: the model's own); a model of
                another factor is refused.
            options: engine options (default: the model's device and precision).

        Returns:
            ``(..., y*sy, x*sx)`` DataArray of the same dtype, dims, non-spatial
            coordinates, attributes, CRS and nodata, with pixel-centre ``x``/``y``
            coordinates (omitted for rotated grids) and ``rio.transform() == T * Affine.scale(1/s)``.

        Raises:
            UnsupportedInputError: not ``(y, x)`` / ``(band, y, x)``, or an unsupported dtype.
            ConfigError: the model's scale is not ``scale``.
        """
        da = self._obj
        y_dim, x_dim = da.rio.y_dim, da.rio.x_dim
        if da.ndim not in (2, 3) or da.dims[-2:] != (y_dim, x_dim):
            raise UnsupportedInputError(f"expected dims (y, x) or (band, y, x), got {da.dims}; transpose first")
        if da.dtype.name not in SUPPORTED_DTYPES:
            raise UnsupportedInputError(f"dtype {da.dtype} is not supported; use one of {', '.join(SUPPORTED_DTYPES)}")
        data = da.data if da.ndim == 3 else da.data[None]
        model = _resolve_model(model, scale, data.shape[0])
        nodata = da.rio.nodata
        normalization = _normalization(model, data, nodata)
        options = options or UpscaleOptions(device=model.device, precision=model.precision)
        if isinstance(data, np.ndarray):
            values = upscale_array(data, model.network, model.spec, normalization, options, nodata=nodata)
        else:
            values = _upscale_lazy(data, model, normalization, options, nodata)
        return self._georeferenced(values if da.ndim == 3 else values[0], model.spec.scale)

    def _georeferenced(self, values: Any, scale: tuple[int, ...]) -> xr.DataArray:
        """Wrap ``values`` in a DataArray on the upscaled grid, with CRS, transform and nodata."""
        da = self._obj
        y_dim, x_dim = da.rio.y_dim, da.rio.x_dim
        transform = scale_transform(da.rio.transform(), scale[0], scale[1])
        height, width = values.shape[-2:]
        coords = {name: coord for name, coord in da.coords.items() if not {y_dim, x_dim} & set(coord.dims)}
        coords.update(_pixel_centres(transform, width, height, x_dim, y_dim))
        result = xr.DataArray(values, dims=da.dims, coords=coords, attrs=dict(da.attrs), name=da.name)
        result.encoding = {key: value for key, value in da.encoding.items()
                           if key not in ("source", "preferred_chunks", "chunks")}
        if da.rio.crs is not None:
            result = result.rio.write_crs(da.rio.crs)
        result = result.rio.write_transform(transform)
        if da.rio.encoded_nodata is not None:
            result = result.rio.write_nodata(da.rio.encoded_nodata, encoded=True)
        elif da.rio.nodata is not None:
            result = result.rio.write_nodata(da.rio.nodata)
        return result
