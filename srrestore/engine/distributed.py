"""Spreading work over a Dask cluster (``distributed``).

:func:`upscale_dask` cuts one image into blocks; each worker process builds the
network once (cached), computes its blocks with the local engine and returns
the output; the client writes each block as it completes, keeping a bounded
number of blocks in flight, so client memory stays bounded too. The result
equals :func:`srrestore.engine.upscale` (tiles are exact, so block borders
do not show). :func:`map_files` runs one task per job, e.g. per file.

On a real cluster::

    from distributed import Client
    client = Client("tcp://scheduler:8786")
    upscale_dask(client, partial(GeoTiffReader, "scene.tif"), writer,
                 "model.safetensors", spec, normalization)

Readers are built on the workers from ``reader_factory`` (one per task, never
shared between threads); the factory, the network factory and the options
must pickle when workers are separate processes.

Devices and memory on the workers (:func:`worker_options`):

- ``cuda:N`` runs on GPU ``N`` in every worker.
- ``cuda`` (and ``auto`` where CUDA is available) runs on the worker's own
  GPU: ``cuda:N`` when the worker is named ``cuda:N`` (``dask worker ADDRESS
  --name cuda:1``; a ``-k`` suffix, as ``--nworkers`` adds, is allowed), else
  torch's current device, GPU 0 of those the worker sees. Give each worker its
  own GPU by name, or by ``CUDA_VISIBLE_DEVICES`` as dask-cuda's
  ``LocalCUDACluster`` does; without either, every worker of a multi-GPU node
  runs on GPU 0.
- The worker's threads share its device: automatic tile and batch sizes take
  ``1/threads`` of the memory budget each (``UpscaleOptions.concurrent_runs``);
  every block is its own run, with its own out-of-memory recovery.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeVar

import numpy as np
import torch
from torch import nn

from srrestore.engine.grid import split
from srrestore.engine.io import ImageSpec, Reader, Writer
from srrestore.engine.normalize import Normalization
from srrestore.engine.plan import UpscaleOptions, make_plan
from srrestore.engine.progress import Progress
from srrestore.engine.region import Region
from srrestore.engine.tiler import TiledUpscaler, UpscaleReport
from srrestore.errors import ConfigError, MissingDependencyError
from srrestore.models.spec import ModelSpec

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["upscale_dask", "map_files", "worker_options", "current_worker_options"]

NetworkSource = Callable[[], nn.Module] | str | os.PathLike
Job = TypeVar("Job")
Result = TypeVar("Result")

DEFAULT_BLOCK_SIZE = 2048  # LR pixels per block side
CACHE_SIZE = 2  # networks / upscalers kept per worker process

_lock = threading.Lock()
_networks: "OrderedDict[str, nn.Module]" = OrderedDict()
_upscalers: "OrderedDict[str, TiledUpscaler]" = OrderedDict()


_WORKER_GPU = re.compile(r"cuda:(\d+)(-\d+)?")


def worker_options(options: UpscaleOptions, worker_name: str | None = None, threads: int = 1) -> UpscaleOptions:
    """``options`` as one thread of a Dask worker runs them: its device pinned, its share of the memory.

    Args:
        options: the options the client was given.
        worker_name: the worker's name (None: not a Dask worker).
        threads: the worker's threads, all running blocks on the same device.

    Returns:
        ``options`` with ``device`` ``cuda:N`` for a worker named ``cuda:N`` (when
        the device is ``cuda``, or ``auto`` with CUDA available) and
        ``concurrent_runs`` multiplied by ``threads``.
    """
    device = options.device.strip().lower()
    pinned = _WORKER_GPU.fullmatch(str(worker_name)) if worker_name is not None else None
    if pinned and (device == "cuda" or (device == "auto" and torch.cuda.is_available())):
        device = f"cuda:{pinned.group(1)}"
    return replace(options, device=device, concurrent_runs=options.concurrent_runs * max(1, threads))


def current_worker_options(options: UpscaleOptions, local_threads: int = 1) -> UpscaleOptions:
    """:func:`worker_options` for the thread running this task.

    Args:
        options: the options the client was given.
        local_threads: threads sharing the device when this is not a Dask
            ``distributed`` worker (dask's local threaded scheduler).
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not inside a distributed worker
        return worker_options(options, None, local_threads)
    return worker_options(options, str(worker.name), worker.state.nthreads)


def _cached(cache: "OrderedDict[str, Any]", key: str, build: Callable[[], Any]) -> Any:
    """Least-recently-used cache shared by the worker's threads (caller holds ``_lock``)."""
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = build()
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return value


def _build_network(source: NetworkSource) -> nn.Module:
    if callable(source):
        return source().eval()
    from srrestore.models.checkpoint import load_generator

    return load_generator(source)[0].eval()


@dataclass
class _BlockResult:
    region: Region
    array: np.ndarray
    report: UpscaleReport


class _BlockWriter:
    """Collects the output windows of one block in memory."""

    def __init__(self, region: Region, channels: int, dtype: np.dtype) -> None:
        self.region = region
        self.array = np.empty((channels, *region.size), dtype=dtype)

    def write(self, region: Region, array: np.ndarray) -> None:
        self.array[(slice(None), *region.relative_to(self.region).slices())] = array

    def close(self) -> None:
        """Nothing to finish: the array is returned to the client."""


def _compute_block(
    run: str,
    token: str,
    source: NetworkSource,
    reader_factory: Callable[[], Reader],
    spec: ModelSpec,
    normalization: Normalization,
    options: UpscaleOptions,
    block: Region,
) -> _BlockResult:
    """Worker task: upscale one block of the image with the process's cached network.

    The worker's threads share one upscaler per run; each block is a run of its own
    (:class:`~srrestore.engine.tiler.TiledUpscaler` keeps per-run sizes and recovery).
    """
    local = current_worker_options(options)
    reader = reader_factory()
    try:
        with _lock:  # keyed by device too: in-process workers share these caches
            network = _cached(_networks, f"{token} {local.device}", lambda: _build_network(source))
            upscaler = _cached(
                _upscalers, f"{run} {local.device}",
                lambda: TiledUpscaler(network, spec, normalization, reader.spec, local),
            )
        target = block.scaled(upscaler.plan.layout.scale)
        writer = _BlockWriter(target, upscaler.plan.out_channels, upscaler.plan.dtype)
        report = upscaler.run(reader, writer, block)
    finally:
        close = getattr(reader, "close", None)
        if callable(close):
            close()
    return _BlockResult(target, writer.array, report)


def _client_api() -> Any:
    try:
        import distributed
    except ImportError as error:
        raise MissingDependencyError("the Dask API needs 'distributed': pip install distributed") from error
    return distributed


def _bounded(client: "Client", calls: Iterator[tuple[Any, Callable[..., Any], tuple[Any, ...]]],
             max_in_flight: int | None) -> Iterator[tuple[Any, Any]]:
    """Submit ``(key, function, args)`` calls, at most ``max_in_flight`` at once; yield ``(key, result)`` as done.

    A failed task raises its exception here after the other tasks are cancelled.
    """
    distributed = _client_api()
    limit = max_in_flight or 2 * max(1, sum(client.nthreads().values()))
    if limit < 1:
        raise ConfigError(f"max_in_flight must be at least 1, got {max_in_flight}")
    keys: dict["Future", Any] = {}
    # This client's loop: as_completed() alone looks for a default client, and callers need not make one.
    running = distributed.as_completed(loop=client.loop)

    def submit_next() -> None:
        call = next(calls, None)
        if call is not None:
            key, function, args = call
            future = client.submit(function, *args, pure=False)
            keys[future] = key
            running.add(future)

    for _ in range(limit):
        submit_next()
    try:
        for future in running:
            result = future.result()
            yield keys.pop(future), result
            future.release()
            submit_next()
    except BaseException:
        client.cancel(list(keys))
        raise


def upscale_dask(
    client: "Client",
    reader_factory: Callable[[], Reader],
    writer: Writer,
    network: NetworkSource,
    spec: ModelSpec,
    normalization: Normalization,
    options: UpscaleOptions | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    max_in_flight: int | None = None,
) -> UpscaleReport:
    """Upscale one image on a Dask cluster; the client writes the blocks.

    Args:
        client: a ``distributed.Client`` (it need not be dask's default scheduler).
        reader_factory: builds a reader of the image (called once on the client
            for the image's spec, and once per block on the workers).
        writer: receives ``(C_out, *block*scale)`` windows on the client's
            thread, in completion order (not closed here).
        network: a callable building the network, or a checkpoint path
            (:func:`srrestore.models.checkpoint.load_generator`); built once per worker process.
        spec: as for :func:`srrestore.engine.upscale`.
        normalization: as for :func:`srrestore.engine.upscale`.
        options: as for :func:`srrestore.engine.upscale` (``options.device`` is resolved on
            each worker: see the module's notes).
        block_size: LR pixels per block side along the network's axes.
        max_in_flight: blocks submitted but not yet written (default: twice the cluster's threads).

    Returns:
        The runs' reports merged (seconds are the client's wall time).
    """
    from dask.base import tokenize

    options = options or UpscaleOptions()
    if block_size < 1:
        raise ConfigError(f"block_size must be at least 1, got {block_size}")
    reader = reader_factory()
    image: ImageSpec = reader.spec
    close = getattr(reader, "close", None)
    if callable(close):
        close()
    # Checked here for early errors; the device is resolved on the workers, not the client.
    layout = make_plan(image, spec, normalization, replace(options, device="cpu")).layout
    blocks = [tile.write for tile in split(Region.from_shape(layout.shape), layout.shape,
                                           layout.core_size(block_size), shift=False)]
    run, token = uuid.uuid4().hex, tokenize(network)
    worker_options = replace(options, progress=False)
    calls = ((block, _compute_block, (run, token, network, reader_factory, spec, normalization, worker_options,
                                      block)) for block in blocks)
    start = time.perf_counter()
    reports: list[UpscaleReport] = []
    with Progress(len(blocks), options.progress, "blocks") as progress:
        for _, result in _bounded(client, calls, max_in_flight):
            writer.write(result.region, result.array)
            reports.append(result.report)
            progress.advance(result.region.num_pixels)
    errors = [report.consistency_error for report in reports if report.consistency_error is not None]
    last = reports[-1]
    return UpscaleReport(
        tiles=sum(report.tiles for report in reports),
        tiles_skipped=sum(report.tiles_skipped for report in reports),
        seconds=time.perf_counter() - start,
        output_megapixels=sum(report.output_megapixels for report in reports),
        consistency_error=max(errors) if errors else None,
        tile_size=last.tile_size,
        batch_size=min(report.batch_size for report in reports),
        device=last.device,
        precision=last.precision,
        halo=last.halo,
        compute_tile_size=min(report.compute_tile_size for report in reports),
        out_of_memory_events=sum(report.out_of_memory_events for report in reports),
        precision_note=last.precision_note,
    )


def map_files(
    client: "Client", jobs: Iterable[Job], fn: Callable[[Job], Result], max_in_flight: int | None = None
) -> list[Result]:
    """Run ``fn(job)`` for every job on the cluster (e.g. one restore per file).

    Args:
        client: a ``distributed.Client``.
        jobs: arguments, one task each (must pickle for process workers).
        fn: the task; it opens its own files, so nothing is shared between workers.
        max_in_flight: tasks submitted at once (default: twice the cluster's threads).

    Returns:
        The results in the order of ``jobs``.
    """
    calls = ((index, fn, (job,)) for index, job in enumerate(jobs))
    done = dict(_bounded(client, calls, max_in_flight))
    return [done[index] for index in range(len(done))]
