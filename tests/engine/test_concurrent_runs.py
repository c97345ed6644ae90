"""One upscaler run from several threads (a Dask worker's), each Dask worker on its own GPU,
memory shared by the threads of a worker. No GPU: out-of-memory errors come from a fake network
(``FailsWhenLarge``), devices are option strings."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from srrestore.engine import ArrayReader, ArrayWriter, Normalization, Region, TiledUpscaler, UpscaleOptions, tiler
from srrestore.engine.distributed import current_worker_options, worker_options


class Slow(nn.Module):
    """Sleeps 2 ms per forward, so that runs in several threads interleave."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.002)
        return self.network(x)


def test_runs_in_several_threads_keep_their_own_sizes_and_out_of_memory_counts(astronaut, nets):
    inner = nets.NearestUpsampler(channels=3)
    failures = nets.FailsWhenLarge(inner, limit=3 * 32 * 32 * 2)  # two 32-px windows fit, more "run out"
    network = Slow(failures)
    upscaler = TiledUpscaler(network, inner.spec, Normalization.for_dtype("uint8", 3),
                             ArrayReader(astronaut).spec, UpscaleOptions(tile_size=32, batch_size=4))
    # (3, 80, 96): the whole image, its halves, and one 16 x 16 tile (which always fits).
    regions = [Region((0, 0), (80, 96)), Region((0, 0), (40, 96)), Region((40, 0), (80, 96)),
               Region((64, 80), (80, 96))]
    expected = np.kron(astronaut, np.ones((1, 2, 2), np.uint8))
    start = threading.Barrier(len(regions))
    reports, errors = {}, []

    def run(index: int, region: Region) -> None:
        writer = ArrayWriter(3, (160, 192), np.uint8)
        try:
            start.wait(5)
            reports[index] = upscaler.run(ArrayReader(astronaut), writer, region)
            target = (slice(None), *region.scaled((2, 2)).slices())
            np.testing.assert_array_equal(writer.array[target], expected[target])
        except Exception as error:  # reported below, from the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=item) for item in enumerate(regions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    # Each out-of-memory error is counted once, by the run it happened in; the small run had none.
    assert sum(report.out_of_memory_events for report in reports.values()) == failures.failures > 0
    assert reports[3].out_of_memory_events == 0
    assert all(report.batch_size <= 2 for index, report in reports.items() if report.out_of_memory_events)
    # What the runs learnt is where the next run starts, and it needs no recovery.
    assert upscaler.batch_size <= 2 and upscaler.compute_tile == 32
    assert upscaler.run(ArrayReader(astronaut), ArrayWriter(3, (160, 192), np.uint8)).out_of_memory_events == 0


def test_concurrent_runs_share_the_memory_budget(astronaut, tiny_rgb, monkeypatch):
    monkeypatch.setattr(tiler, "free_memory", lambda device: 256 << 20)  # bytes, whatever the host has
    image = ArrayReader(np.zeros((3, 2000, 2000), np.uint8)).spec

    def auto_tile(runs: int) -> int:
        return TiledUpscaler(tiny_rgb, tiny_rgb.spec, Normalization.for_dtype("uint8", 3), image,
                             UpscaleOptions(device="cpu", concurrent_runs=runs)).tile_size

    alone, one_of_four = auto_tile(1), auto_tile(4)
    assert one_of_four < alone
    assert 1.5 < (alone / one_of_four) ** 2 < 8  # about 4 times fewer pixels (tiles are multiples of 16)


@pytest.mark.parametrize(("device", "name", "cuda", "expected"), [
    ("cuda", "cuda:1", False, "cuda:1"),
    ("cuda", "cuda:3-0", False, "cuda:3"),  # dask worker --nworkers 2 --name cuda:3 names them cuda:3-0, cuda:3-1
    ("auto", "cuda:1", True, "cuda:1"),
    ("auto", "cuda:1", False, "auto"),  # no CUDA here: auto stays auto (CPU or MPS)
    ("cuda:0", "cuda:1", True, "cuda:0"),  # an explicit GPU wins
    ("cuda", "worker-7", True, "cuda"),  # not pinned: torch's current device (CUDA_VISIBLE_DEVICES decides)
    ("cpu", "cuda:1", True, "cpu"),
])
def test_a_worker_named_cuda_n_runs_on_gpu_n(monkeypatch, device, name, cuda, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    options = worker_options(UpscaleOptions(device=device), name, threads=3)
    assert options.device == expected and options.concurrent_runs == 3


def test_a_dask_worker_thread_takes_its_share_of_the_device():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=3, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        options = client.submit(current_worker_options, UpscaleOptions(device="cpu")).result()
    assert options.device == "cpu" and options.concurrent_runs == 3
    assert current_worker_options(UpscaleOptions(), local_threads=2).concurrent_runs == 2  # outside a worker
