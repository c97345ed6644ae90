"""Exact, streaming, tiled upscaling.

Each tile is computed from its window (the tile grown by a halo at least the
model's receptive field, stopping at the image's edges the way whole-image
inference does; see :mod:`srrestore.engine.grid`), so tiled output equals
:func:`srrestore.engine.reference.upscale_whole` up to float rounding, whatever
the tile size. Tiles are read, computed and
written in row-major order by three threads with bounded queues: memory stays
flat in the image's size. On an out-of-memory error the batch is halved, then
the tile the network sees, and the run goes on.

One :class:`TiledUpscaler` may run regions from several threads at once (a
Dask worker's threads share one): each run keeps its own batch and window
sizes and counts its own out-of-memory errors; what a run learns (smaller
sizes) is kept, under a lock, as the start of later runs.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import nn

from srrestore.engine.devices import (
    auto_tile_and_batch,
    forward_bytes_per_pixel,
    free_memory,
    is_out_of_memory,
    precision_name,
    release_cached_memory,
)
from srrestore.engine.grid import count_tiles, split
from srrestore.engine.io import ArrayReader, ArrayWriter, ImageSpec, Reader, Writer
from srrestore.engine.normalize import Normalization
from srrestore.engine.pipeline import run_pipeline
from srrestore.engine.plan import UpscaleOptions, make_plan
from srrestore.engine.progress import Progress
from srrestore.engine.region import Region
from srrestore.engine.stages import TileInput, TileOutput, read_tile, to_stored
from srrestore.errors import ConfigError
from srrestore.models.spec import ModelSpec

__all__ = ["UpscaleOptions", "UpscaleReport", "TiledUpscaler", "upscale", "upscale_array"]

OUTPUT_QUEUE = 2  # finished tiles waiting for the writer
MIN_COMPUTE_TILE = 8  # LR pixels: below this, an out-of-memory error is final


@dataclass
class UpscaleReport:
    """What a run did.

    Attributes:
        tiles: tiles in the region processed.
        tiles_skipped: tiles entirely nodata, written without running the network.
        seconds: wall time of the run.
        output_megapixels: output pixels written, in millions (per channel).
        consistency_error: max abs ``lr - degrade(sr)`` over valid pixels, in
            normalised units, with the guard's degradation (area without a
            guard); None when no tile ran the network.
        tile_size: LR pixels per tile side read and written.
        batch_size: windows per forward at the end of the run.
        device: where the network ran.
        precision: ``fp32``, ``bf16`` or ``fp16``.
        halo: LR pixels read around each tile per side.
        compute_tile_size: LR side of the windows the network saw at the end
            (below ``tile_size`` after out-of-memory recovery).
        out_of_memory_events: out-of-memory errors this run recovered from.
        precision_note: the precision chosen and why (``--precision auto`` chooses per device).
    """

    tiles: int
    tiles_skipped: int
    seconds: float
    output_megapixels: float
    consistency_error: float | None
    tile_size: int
    batch_size: int
    device: str
    precision: str
    halo: int
    compute_tile_size: int
    out_of_memory_events: int = 0
    precision_note: str = ""


@dataclass
class _Assembly:
    """A tile's output being put together from the windows the network ran."""

    item: TileInput
    values: np.ndarray | None
    pending: int = 0
    error: float = 0.0


@dataclass
class _Window:
    """Part of a tile the network runs at once.

    Attributes:
        assembly: the tile it belongs to.
        core: the LR box it computes, relative to the tile's core.
        write: the part of ``core`` it delivers, relative to the tile's core.
        box: its window (the core grown by the halo), relative to the tile's window.
        core_in_box: ``core`` relative to ``box``: what the runner keeps of the output.
    """

    assembly: _Assembly
    core: Region
    write: Region
    box: Region
    core_in_box: Region

    @property
    def pixels(self) -> torch.Tensor:
        """``(C, *box)`` slice of the tile's input."""
        return self.assembly.item.pixels[(slice(None), *self.box.slices())]  # type: ignore[index]


@dataclass
class _Sizes:
    """Sizes one run uses, halved on out-of-memory errors.

    Attributes:
        batch_size: windows per forward.
        compute_tile: LR side of the windows the network sees.
        out_of_memory_events: out-of-memory errors this run recovered from.
    """

    batch_size: int
    compute_tile: int
    out_of_memory_events: int = 0


@dataclass
class _Totals:
    """Counters the writer thread keeps."""

    skipped: int = 0
    error: float | None = None
    pixels: int = 0


def _moved(region: Region, offset: tuple[int, ...]) -> Region:
    """``region`` translated by ``offset``."""
    return Region(tuple(a + o for a, o in zip(region.start, offset)), tuple(b + o for b, o in zip(region.stop, offset)))


class TiledUpscaler:
    """Runs one network over regions of one image, tile by tile.

    Args:
        network: ``(B, C, *n) -> (B, C_out, *n*scale)``, normalised in and out.
        spec: the network's spec (scale, channels, receptive field).
        normalization: stored <-> normalised map of the image.
        image: the image's spec.
        options: engine options (defaults when None).

    Raises:
        ConfigError, UnsupportedInputError: see :func:`srrestore.engine.plan.make_plan`.

    Attributes:
        tile_size: LR pixels per tile side read and written.
        batch_size, compute_tile: the batch and window side the next run starts
            from; out-of-memory recovery in any run lowers them (never raises them).
    """

    def __init__(
        self,
        network: nn.Module,
        spec: ModelSpec,
        normalization: Normalization,
        image: ImageSpec,
        options: UpscaleOptions | None = None,
    ) -> None:
        self.options = options or UpscaleOptions()
        self.image = image
        self.normalization = normalization
        self.plan = make_plan(image, spec, normalization, self.options)
        self.runner = self.plan.runner(network)
        layout = self.plan.layout
        self.halo = max(layout.halo)
        if self.options.tile_size is None or self.options.batch_size is None:
            self.tile_size, self.batch_size = self._auto_sizes()
        else:
            self.tile_size, self.batch_size = self.options.tile_size, self.options.batch_size
        self.compute_tile = self.tile_size
        self._sizes_lock = threading.Lock()

    def _auto_sizes(self) -> tuple[int, int]:
        """Tile and batch sized from this run's share of free memory (see :func:`auto_tile_and_batch`).

        The share is :func:`free_memory` divided by ``options.concurrent_runs``.
        """
        plan, layout = self.plan, self.plan.layout
        net_ndim = len(layout.net_axes)
        probe = -(-(2 * self.halo + 32) // layout.multiple) * layout.multiple
        channels = 1 if plan.band_by_band else self.image.channels
        per_pixel = forward_bytes_per_pixel(
            self.runner.network, channels, net_ndim, plan.device, plan.autocast_dtype, probe
        )
        if plan.band_by_band:
            per_pixel *= self.image.channels
        if plan.device.type == "cpu":  # finished output tiles share the host's memory
            per_pixel += plan.out_channels * math.prod(layout.scale) * 4 * (OUTPUT_QUEUE + 2)
        budget = free_memory(plan.device) // self.options.concurrent_runs
        return auto_tile_and_batch(
            per_pixel, budget, self.halo, layout.net_extent, layout.multiple, plan.device,
            self.options.tile_size, self.options.batch_size, layout.pad_edges,
        )

    def run(self, reader: Reader, writer: Writer, region: Region | None = None) -> UpscaleReport:
        """Upscale ``region`` of the image (all of it by default) into ``writer``.

        The writer receives output windows in row-major order, from one thread;
        it is not closed (the caller owns it).

        Raises:
            ConfigError: ``region`` leaves the image.
        """
        layout = self.plan.layout
        bounds = region or Region.from_shape(layout.shape)
        if bounds.clipped(layout.shape) != bounds:
            raise ConfigError(f"region {bounds} is not inside the image of shape {layout.shape}")
        core = layout.core_size(self.tile_size)
        tiles = split(bounds, layout.shape, core, shift=layout.multiple == 1)
        total = count_tiles(bounds, core)
        pin = self.plan.device.type == "cuda"
        with self._sizes_lock:
            sizes = _Sizes(self.batch_size, self.compute_tile)
        totals = _Totals()
        start = time.perf_counter()
        with Progress(total, self.options.progress) as progress:

            def consume(output: TileOutput) -> None:
                target = output.tile.write.scaled(layout.scale)
                writer.write(target, to_stored(output, self.plan.out_channels, layout, self.normalization,
                                               self.plan.dtype, self.plan.nodata))
                totals.pixels += target.num_pixels
                if output.error is None:
                    totals.skipped += 1
                else:
                    totals.error = max(totals.error or 0.0, output.error)
                progress.advance(target.num_pixels)

            run_pipeline(
                (read_tile(reader, layout, tile, self.normalization, pin) for tile in tiles),
                lambda items: self._compute(items, sizes),
                consume,
                depth=2 * sizes.batch_size + 1,
            )
        return UpscaleReport(
            tiles=total,
            tiles_skipped=totals.skipped,
            seconds=time.perf_counter() - start,
            output_megapixels=totals.pixels / 1e6,
            consistency_error=totals.error,
            tile_size=self.tile_size,
            batch_size=sizes.batch_size,
            device=str(self.plan.device),
            precision=precision_name(self.plan.autocast_dtype),
            halo=self.halo,
            compute_tile_size=sizes.compute_tile,
            out_of_memory_events=sizes.out_of_memory_events,
            precision_note=self.plan.precision_note,
        )

    # -- computing (caller's thread) -------------------------------------------------

    def _compute(self, items: Iterator[TileInput], sizes: _Sizes) -> Iterator[TileOutput]:
        """Batch windows of consecutive tiles through the network; yield tiles in order."""
        waiting: deque[_Assembly] = deque()
        pending: list[_Window] = []
        for item in items:
            assembly = self._assemble(item)
            waiting.append(assembly)
            pending.extend(self._windows(assembly, sizes.compute_tile))
            while batch := self._next_batch(pending, sizes.batch_size, final=False):
                pending = pending[len(batch) :]
                self._run(batch, sizes)
            yield from self._finished(waiting)
        while batch := self._next_batch(pending, sizes.batch_size, final=True):
            pending = pending[len(batch) :]
            self._run(batch, sizes)
        yield from self._finished(waiting)

    def _assemble(self, item: TileInput) -> _Assembly:
        if item.pixels is None:
            return _Assembly(item, None)
        size = item.tile.write.scaled(self.plan.layout.scale).size
        return _Assembly(item, np.empty((self.plan.out_channels, *size), dtype=np.float32))

    def _windows(self, assembly: _Assembly, side: int) -> list[_Window]:
        """Split a tile into windows of side ``side`` (the run's compute tile)."""
        if assembly.values is None:
            return []
        tile = assembly.item.tile
        return self._split(assembly, Region.from_shape(tile.core.size), tile.write.relative_to(tile.core), side)

    def _split(self, assembly: _Assembly, within: Region, write: Region, side: int) -> list[_Window]:
        """Windows of side ``side`` covering ``write``, cores inside ``within`` (tile-core frame)."""
        layout = self.plan.layout
        tile = assembly.item.tile
        tile_window = layout.window(tile.core)
        size = tuple(min(side, n) if axis in layout.net_axes else n for axis, n in enumerate(within.size))
        windows = []
        for piece in split(write.relative_to(within), within.size, size, shift=True):
            core = _moved(piece.core, within.start)
            absolute_core = _moved(core, tile.core.start)
            box = layout.window(absolute_core)
            windows.append(_Window(assembly, core, _moved(piece.write, within.start), box.relative_to(tile_window),
                                   absolute_core.relative_to(box)))
        assembly.pending += len(windows)
        return windows

    @staticmethod
    def _next_batch(pending: list[_Window], batch_size: int, final: bool) -> list[_Window]:
        """The next batch to run: up to ``batch_size`` leading windows of one shape.

        Empty while the batch could still grow (unless ``final``). Windows
        differ in shape where they stop at the image's edges.
        """
        if not pending:
            return []
        shape = pending[0].box.size
        count = 1
        while count < min(batch_size, len(pending)) and pending[count].box.size == shape:
            count += 1
        ready = final or count == batch_size or count < len(pending)
        return pending[:count] if ready else []

    def _run(self, windows: list[_Window], sizes: _Sizes) -> None:
        """Run windows through the network, recovering from out-of-memory errors."""
        try:
            sr, error = self.runner([window.pixels for window in windows], [window.core_in_box for window in windows])
        except Exception as failure:  # only out-of-memory errors are handled
            if not is_out_of_memory(failure):
                raise
            # Drop the traceback: its frames hold the batch's tensors.
            out_of_memory = failure.with_traceback(None)
        else:
            for window, values, residual in zip(windows, sr, error):
                self._deliver(window, values.numpy(), residual.numpy())
            return
        self._recover(out_of_memory, windows, sizes)

    def _recover(self, failure: BaseException, windows: list[_Window], sizes: _Sizes) -> None:
        """Halve this run's batch; at one window, halve the window and split it. Later runs
        start from the sizes that worked."""
        sizes.out_of_memory_events += 1
        release_cached_memory(self.plan.device)
        if len(windows) > 1:
            sizes.batch_size = max(1, len(windows) // 2)
            parts = windows
        else:
            (window,) = windows
            layout = self.plan.layout
            current = max(window.core.size[axis] for axis in layout.net_axes)
            smaller = current // 2 // layout.multiple * layout.multiple
            if smaller < max(MIN_COMPUTE_TILE, layout.multiple):
                raise failure
            sizes.compute_tile = min(sizes.compute_tile, smaller)
            window.assembly.pending -= 1
            parts = self._split(window.assembly, window.core, window.write, smaller)
        with self._sizes_lock:
            self.batch_size = min(self.batch_size, sizes.batch_size)
            self.compute_tile = min(self.compute_tile, sizes.compute_tile)
        while batch := self._next_batch(parts, sizes.batch_size, final=True):  # it may shrink again on the way
            parts = parts[len(batch) :]
            self._run(batch, sizes)

    def _deliver(self, window: _Window, values: np.ndarray, residual: np.ndarray) -> None:
        """Copy a window's output into its tile and track the consistency residual."""
        assembly = window.assembly
        tile = assembly.item.tile
        scale = self.plan.layout.scale
        source = window.write.relative_to(window.core)
        target = window.write.relative_to(tile.write.relative_to(tile.core))
        assembly.values[(slice(None), *target.scaled(scale).slices())] = values[  # type: ignore[index]
            (slice(None), *source.scaled(scale).slices())
        ]
        misfit = np.abs(residual[(slice(None), *source.slices())])
        if assembly.item.valid is not None:
            valid = assembly.item.valid[(slice(None), *target.slices())]
            misfit = misfit[valid] if valid.shape == misfit.shape else misfit[:, valid.all(axis=0)]
        if misfit.size:
            assembly.error = max(assembly.error, float(misfit.max()))
        assembly.pending -= 1

    @staticmethod
    def _finished(waiting: deque[_Assembly]) -> Iterator[TileOutput]:
        """Tiles at the head of the queue whose windows have all run, in order."""
        while waiting and waiting[0].pending == 0:
            assembly = waiting.popleft()
            skipped = assembly.values is None
            yield TileOutput(assembly.item.tile, assembly.values, assembly.item.valid,
                             None if skipped else assembly.error, assembly.item.held, assembly.item.bounds)


def upscale(
    reader: Reader,
    writer: Writer,
    network: nn.Module,
    spec: ModelSpec,
    normalization: Normalization,
    options: UpscaleOptions | None = None,
) -> UpscaleReport:
    """Upscale a whole image from ``reader`` into ``writer``, tile by tile.

    Args:
        reader: gives ``(C, *region)`` windows of the image, stored values.
        writer: takes ``(C_out, *region*scale)`` windows of the output, same dtype.
            Not closed here: the caller owns it.
        network: the generator, ``(B, C, H, W) -> (B, C_out, H*sy, W*sx)`` on normalised values.
        spec: its :class:`ModelSpec`.
        normalization: the image's stored <-> normalised map.
        options: engine options (defaults when None).

    Returns:
        An :class:`UpscaleReport`.
    """
    return TiledUpscaler(network, spec, normalization, reader.spec, options).run(reader, writer)


def upscale_array(
    array: np.ndarray,
    network: nn.Module,
    spec: ModelSpec,
    normalization: Normalization,
    options: UpscaleOptions | None = None,
    nodata: float | None = None,
) -> np.ndarray:
    """Upscale an in-memory ``(C, *spatial)`` array; returns ``(C_out, *spatial*scale)`` of the same dtype."""
    reader = ArrayReader(array, nodata)
    upscaler = TiledUpscaler(network, spec, normalization, reader.spec, options)
    writer = ArrayWriter(upscaler.plan.out_channels, upscaler.plan.layout.output_shape, array.dtype)
    upscaler.run(reader, writer)
    writer.close()
    return writer.array
