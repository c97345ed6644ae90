"""Out-of-memory recovery, errors from any thread, and interruption."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from srrestore.engine import ArrayReader, ArrayWriter, Normalization, Region, UpscaleOptions, upscale, upscale_array
from srrestore.storage.atomic import atomic_output
from srrestore.engine.pipeline import run_pipeline


def engine_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("srrestore-")]


def test_out_of_memory_halves_the_batch_then_the_tile_and_goes_on(astronaut, nets):
    inner = nets.NearestUpsampler(channels=3)
    # 2 windows of 32 px with their halo-free input fit; anything larger "runs out of memory".
    network = nets.FailsWhenLarge(inner, limit=3 * 32 * 32 * 2)
    normalization = Normalization.for_dtype("uint8", 3)
    writer = ArrayWriter(3, (160, 192), np.uint8)
    report = upscale(ArrayReader(astronaut), writer, network, inner.spec, normalization,
                     UpscaleOptions(tile_size=64, batch_size=4))
    np.testing.assert_array_equal(writer.array, np.kron(astronaut, np.ones((1, 2, 2), np.uint8)))
    assert network.failures >= 2 and report.out_of_memory_events == network.failures
    assert report.batch_size < 4 and report.compute_tile_size == 32 and report.tile_size == 64


def test_out_of_memory_recovery_stays_exact_with_a_real_generator(astronaut, tiny_rgb, nets):
    normalization = Normalization.for_dtype("uint8", 3)
    reference = upscale_array(astronaut, tiny_rgb, tiny_rgb.spec, normalization, UpscaleOptions(tile_size=48))
    # Every 48-px tile's window (its core and the halo inside the image) is larger than 48 x 48.
    network = nets.FailsWhenLarge(tiny_rgb, limit=3 * 48 * 48)
    recovered = upscale_array(astronaut, network, tiny_rgb.spec, normalization,
                              UpscaleOptions(tile_size=48, batch_size=1))
    assert network.failures >= 1
    assert np.abs(recovered.astype(int) - reference).max() <= 1


def test_an_out_of_memory_error_that_cannot_shrink_further_is_raised(camera, nets):
    inner = nets.NearestUpsampler()
    network = nets.FailsWhenLarge(inner, limit=1)
    with pytest.raises(RuntimeError, match="out of memory"):
        upscale_array(camera, network, inner.spec, Normalization.for_dtype("uint8", 1), UpscaleOptions(tile_size=32))
    assert not engine_threads()


class FailingReader(ArrayReader):
    def read(self, region: Region) -> np.ndarray:
        if region.start[0] > 20:
            raise OSError(f"corrupt block at {region.start}")
        return super().read(region)


class FailingWriter(ArrayWriter):
    def write(self, region: Region, array: np.ndarray) -> None:
        if region.start[0] > 0:
            raise OSError("disk full")
        super().write(region, array)


def test_reader_and_writer_errors_reach_the_caller(camera, nets):
    network = nets.NearestUpsampler()
    normalization = Normalization.for_dtype("uint8", 1)
    with pytest.raises(OSError, match="corrupt block"):
        upscale(FailingReader(camera), ArrayWriter(1, (144, 180), np.uint8), network, network.spec, normalization,
                UpscaleOptions(tile_size=16))
    with pytest.raises(OSError, match="disk full"):
        upscale(ArrayReader(camera), FailingWriter(1, (144, 180), np.uint8), network, network.spec, normalization,
                UpscaleOptions(tile_size=16))
    assert not engine_threads()


def test_a_writer_failure_stops_the_run_promptly():
    consumed: list[int] = []
    produced: list[int] = []

    def produce():
        for index in range(10_000):
            produced.append(index)
            yield index

    def compute(items):
        for item in items:
            time.sleep(0.001)
            yield item

    def consume(item):
        consumed.append(item)
        if item == 3:
            raise ValueError("writer broke")

    with pytest.raises(ValueError, match="writer broke"):
        run_pipeline(produce(), compute, consume, depth=2)
    assert len(produced) < 100 and consumed[-1] == 3


class SigintNetwork:
    """Sends SIGINT to this process during its third forward, like Ctrl-C in a terminal."""

    def __init__(self, network) -> None:
        self.network = network
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        if self.calls == 3:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        return self.network(x)

    def to(self, device):
        return self


class NpyWriter:
    """Writes into a memory-mapped .npy file."""

    def __init__(self, path, shape) -> None:
        self.array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)

    def write(self, region: Region, array: np.ndarray) -> None:
        self.array[(slice(None), *region.slices())] = array

    def close(self) -> None:
        self.array.flush()


def test_sigint_stops_the_threads_and_leaves_no_partial_output(tmp_path, camera, nets):
    inner = nets.NearestUpsampler()
    network = SigintNetwork(inner)
    target = tmp_path / "out.npy"
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as temporary:
        writer = NpyWriter(temporary, (1, 144, 180))
        upscale(ArrayReader(camera), writer, network, inner.spec, Normalization.for_dtype("uint8", 1),
                UpscaleOptions(tile_size=16, batch_size=1))
        writer.close()
    assert network.calls == 3
    assert not target.exists() and list(tmp_path.iterdir()) == []
    assert not engine_threads()
