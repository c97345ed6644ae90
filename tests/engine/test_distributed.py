"""The Dask path equals the local path."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from srrestore.engine import ArrayReader, ArrayWriter, Normalization, UpscaleOptions, upscale_array
from srrestore.engine.distributed import map_files, upscale_dask

distributed = pytest.importorskip("distributed")


def assert_within_one_dn(actual: np.ndarray, expected: np.ndarray, share: float) -> None:
    """Equal but for 1 DN on at most ``share`` of the pixels.

    float32 convolutions round differently when oneDNN picks another kernel (AMX, AVX-512
    or AVX2 path, another blocking for another tile shape or thread count), so a value
    within ~1e-6 of a .5 DN boundary may round either way: integer outputs computed by
    another process or with other tiles may differ there by 1 DN.
    """
    difference = np.abs(actual.astype(np.int64) - expected.astype(np.int64))
    assert difference.max() <= 1
    assert np.count_nonzero(difference) <= max(2, share * difference.size)


@pytest.fixture(scope="module")
def client():
    """An in-process cluster; its client is passed explicitly, never made dask's default scheduler."""
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        yield client


def test_dask_blocks_equal_the_local_run(client, astronaut, tiny_rgb, tmp_path):
    normalization = Normalization.for_dtype("uint8", 3)
    image = astronaut.copy()
    image[:, :30, :40] = 0
    options = UpscaleOptions(tile_size=24)
    local = upscale_array(image, tiny_rgb, tiny_rgb.spec, normalization, options, nodata=0)
    log = tmp_path / "builds.txt"

    def network():  # tasks are pickled even in-process: count builds in a file
        with open(log, "a") as file:
            file.write("built\n")
        return tiny_rgb

    writer = ArrayWriter(3, (160, 192), np.uint8)
    report = upscale_dask(client, partial(ArrayReader, image, 0), writer, network, tiny_rgb.spec, normalization,
                          options, block_size=48, max_in_flight=2)
    # Exact: 48-px blocks hold whole 24-px tiles, so every tile is the local run's, computed in
    # this process by a worker thread with the same torch thread count.
    np.testing.assert_array_equal(writer.array, local)
    assert log.read_text().count("built") == 1  # once per worker process, not once per block
    assert report.tiles == 4 * 4 and report.tiles_skipped == 1 and report.output_megapixels == 160 * 192 / 1e6


def test_dask_volume_blocks_equal_the_local_run(client, tiny_gray):
    volume = np.random.default_rng(3).integers(0, 255, (1, 3, 30, 34), dtype=np.uint8)
    normalization = Normalization.for_dtype("uint8", 1)
    options = UpscaleOptions(tile_size=16)
    writer = ArrayWriter(1, (3, 60, 68), np.uint8)
    upscale_dask(client, partial(ArrayReader, volume), writer, lambda: tiny_gray, tiny_gray.spec, normalization,
                 options, block_size=20)
    local = upscale_array(volume, tiny_gray, tiny_gray.spec, normalization, options)
    assert_within_one_dn(writer.array, local, share=1e-3)  # 20-px blocks cut 16-px tiles elsewhere than the local run


def square(value: int) -> int:
    if value == 7:
        raise ValueError("job 7 failed")
    return value * value


def test_map_files_keeps_the_order_of_the_jobs_and_raises_failures(client):
    assert map_files(client, range(6), square, max_in_flight=2) == [0, 1, 4, 9, 16, 25]
    with pytest.raises(ValueError, match="job 7 failed"):
        map_files(client, range(10), square)


def seeded_tiny():
    """Builds the same network in any process."""
    import torch

    from srrestore.models.generator import create_generator

    torch.manual_seed(7)
    return create_generator("test-tiny", in_channels=3, scale=2).eval()


@pytest.mark.slow
def test_process_workers_build_the_network_themselves(astronaut):
    network = seeded_tiny()
    normalization = Normalization.for_dtype("uint8", 3)
    options = UpscaleOptions(tile_size=32)
    local = upscale_array(astronaut, network, network.spec, normalization, options)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=40) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        writer = ArrayWriter(3, (160, 192), np.uint8)
        upscale_dask(client, partial(ArrayReader, astronaut), writer, seeded_tiny, network.spec, normalization,
                     options, block_size=40)
    # 1 DN: the worker is another process, with its own torch threads and oneDNN kernels, and its
    # 40-px blocks cut 32-px tiles elsewhere than the local run.
    assert_within_one_dn(writer.array, local, share=1e-3)
