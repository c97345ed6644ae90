"""Tiled upscaling with analytic predictors: the stitched output is known exactly."""

from __future__ import annotations

import tracemalloc
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from srrestore.engine import (
    ArrayReader,
    Normalization,
    Region,
    UpscaleOptions,
    upscale,
    upscale_array,
    upscale_whole,
)
from srrestore.errors import ConfigError, UnsupportedInputError


def kron(image: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    return np.kron(image, np.ones((1, *factors), dtype=image.dtype))


class RecordingWriter:
    """Keeps every write's region; stores nothing big."""

    def __init__(self) -> None:
        self.regions: list[Region] = []
        self.checksum = 0

    def write(self, region: Region, array: np.ndarray) -> None:
        assert array.shape[1:] == region.size
        self.regions.append(region)
        self.checksum += int(array.astype(np.int64).sum())

    def close(self) -> None:
        pass


@pytest.mark.parametrize("tile_size", [1, 7, 16, 37, 64, 200])
def test_nearest_upsampler_stitches_exactly(astronaut, nets, tile_size):
    network = nets.NearestUpsampler(channels=3)
    result = upscale_array(astronaut, network, network.spec, Normalization.for_dtype("uint8", 3),
                           UpscaleOptions(tile_size=tile_size, batch_size=3))
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, kron(astronaut, (2, 2)))


def test_plus_one_predictor_shifts_every_pixel_by_one_dn(camera, nets):
    network = nets.NearestUpsampler(channels=1, offset=1 / 255)
    result = upscale_array(camera, network, network.spec, Normalization.for_dtype("uint8", 1),
                           UpscaleOptions(tile_size=24))
    expected = np.minimum(kron(camera, (2, 2)).astype(np.int64) + 1, 255)
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("tile_size", [5, 16, 33])
@pytest.mark.parametrize(("pad_edges", "scipy_mode"), [(False, "constant"), (True, "nearest")])
def test_halo_and_edge_handling_match_the_whole_image_definition(camera, nets, tile_size, pad_edges, scipy_mode):
    # 3x3 mean, then x2 nearest. By default the network pads the image's edges itself (zeros here,
    # scipy's "constant"); with pad_edges the engine first replicates edge pixels (scipy's "nearest").
    network = nets.BoxThenNearest()
    normalization = Normalization.for_dtype("uint8", 1)
    options = UpscaleOptions(tile_size=tile_size, pad_edges=pad_edges)
    expected = ndimage.uniform_filter(camera[0].astype(np.float64), size=3, mode=scipy_mode)
    expected = kron(np.rint(expected)[None], (2, 2)).astype(np.uint8)
    tiled = upscale_array(camera, network, network.spec, normalization, options)
    np.testing.assert_array_equal(tiled, expected)
    np.testing.assert_array_equal(upscale_whole(camera, network, network.spec, normalization, options=options), expected)


def test_windows_stop_at_the_image_edges_unless_edges_are_padded(camera, nets):
    network = nets.NearestUpsampler()
    normalization = Normalization.for_dtype("uint8", 1)
    whole = UpscaleOptions(tile_size=200, batch_size=1, halo=4)
    upscale_array(camera, network, network.spec, normalization, whole)
    assert network.calls == [(1, 1, 72, 90)]  # a small image runs on its own pixels only
    network.calls.clear()
    upscale_array(camera, network, network.spec, normalization, replace(whole, pad_edges=True))
    assert network.calls == [(1, 1, 80, 98)]
    network.calls.clear()
    upscale_array(camera, network, network.spec, normalization, UpscaleOptions(tile_size=24, batch_size=4, halo=4))
    # Rows of tiles at 0, 24, 48 (of 72): edge tiles get the halo on their inner side only, and a
    # batch never mixes window shapes.
    assert sorted({shape[2] for shape in network.calls}) == [28, 32]
    assert sum(shape[0] for shape in network.calls) == 3 * 4


def test_a_halo_below_the_receptive_field_is_refused(camera, nets):
    network = nets.BoxThenNearest()
    with pytest.raises(ConfigError, match="halo 0 is below"):
        upscale_array(camera, network, network.spec, Normalization.for_dtype("uint8", 1),
                      UpscaleOptions(tile_size=16, halo=0))


def test_a_larger_halo_gives_the_same_output(camera, nets):
    network = nets.BoxThenNearest()
    normalization = Normalization.for_dtype("uint8", 1)
    reference = upscale_array(camera, network, network.spec, normalization, UpscaleOptions(tile_size=16))
    wider = upscale_array(camera, network, network.spec, normalization, UpscaleOptions(tile_size=16, halo=5))
    np.testing.assert_array_equal(wider, reference)


def test_writes_stream_in_row_major_order_and_cover_the_output_once(astronaut, nets):
    network = nets.NearestUpsampler(channels=3, scale=(2, 3))
    writer = RecordingWriter()
    report = upscale(ArrayReader(astronaut), writer, network, network.spec, Normalization.for_dtype("uint8", 3),
                     UpscaleOptions(tile_size=32))
    starts = [region.start for region in writer.regions]
    assert starts == sorted(starts)
    assert report.tiles == len(writer.regions) == 3 * 3
    cover = np.zeros((80 * 2, 96 * 3), dtype=int)
    for region in writer.regions:
        assert region.size[0] <= 32 * 2 and region.size[1] <= 32 * 3
        cover[region.slices()] += 1
    assert (cover == 1).all()
    assert writer.checksum == int(kron(astronaut, (2, 3)).astype(np.int64).sum())


class PatternReader:
    """A large image generated window by window: nothing image-sized exists in memory."""

    def __init__(self, size: int) -> None:
        from srrestore.engine import ImageSpec

        self.spec = ImageSpec(3, (size, size), "uint8", None)

    def read(self, region: Region) -> np.ndarray:
        rows, cols = np.ogrid[region.start[0]:region.stop[0], region.start[1]:region.stop[1]]
        plane = ((rows * 7 + cols * 3) % 251).astype(np.uint8)
        return np.stack([plane, 250 - plane, plane // 2])

    def read_valid(self, region: Region) -> np.ndarray:
        return np.ones(region.size, dtype=bool)


def traced_peak(network, size: int, tile: int) -> int:
    """Peak numpy memory (tracemalloc sees numpy's allocations) of one streamed run."""
    tracemalloc.start()
    try:
        upscale(PatternReader(size), RecordingWriter(), network, network.spec, Normalization.for_dtype("uint8", 3),
                UpscaleOptions(tile_size=tile))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_flat_in_the_image_size(nets):
    network = nets.NearestUpsampler(channels=3)
    # 9 times the pixels: memory that grew with the image would grow about 9 times. The peak varies by up
    # to 25 % with thread timing (how full the bounded queues get), hence the 1.5 margin.
    small, large = traced_peak(network, 512, 64), traced_peak(network, 1536, 64)
    assert large < 1.5 * small, f"peak grew from {small} to {large} bytes"
    assert large < 3 * (2 * 1536) ** 2 / 4, "peak a quarter of the uint8 output"


def test_volume_plane_by_plane_in_plane_axes(nets):
    volume = np.random.default_rng(0).integers(0, 255, (2, 5, 20, 24), dtype=np.uint8)
    network = nets.NearestUpsampler(channels=1, scale=(2, 3))
    normalization = Normalization.for_dtype("uint8", 2)
    result = upscale_array(volume, network, network.spec, normalization, UpscaleOptions(tile_size=8))
    np.testing.assert_array_equal(result, kron(volume, (1, 2, 3)))  # 1-channel model run band by band
    sagittal = upscale_array(volume, network, network.spec, normalization,
                             UpscaleOptions(tile_size=8, plane_axes=(0, 2)))
    np.testing.assert_array_equal(sagittal, kron(volume, (2, 1, 3)))


def test_one_channel_model_runs_band_by_band_and_other_mismatches_are_refused(astronaut, nets):
    gray = nets.NearestUpsampler(channels=1)
    result = upscale_array(astronaut, gray, gray.spec, Normalization.for_dtype("uint8", 3),
                           UpscaleOptions(tile_size=40, batch_size=2))
    np.testing.assert_array_equal(result, kron(astronaut, (2, 2)))
    assert gray.calls and all(shape[1] == 1 and shape[0] % 3 == 0 for shape in gray.calls)
    four = nets.NearestUpsampler(channels=4)
    with pytest.raises(UnsupportedInputError, match="takes 4 channel"):
        upscale_array(astronaut, four, four.spec, Normalization.for_dtype("uint8", 3))


def test_float_images_keep_their_dtype_and_values(nets):
    image = np.random.default_rng(1).normal(size=(2, 30, 31)).astype(np.float32)
    network = nets.NearestUpsampler(channels=2)
    result = upscale_array(image, network, network.spec, Normalization.fixed(-3, 3, 2), UpscaleOptions(tile_size=9))
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, kron(image, (2, 2)), atol=1e-6)


def test_bad_options_are_refused_with_the_value(camera, nets):
    network = nets.NearestUpsampler()
    normalization = Normalization.for_dtype("uint8", 1)
    with pytest.raises(ConfigError, match="tile_size must be a positive integer, got 0"):
        upscale_array(camera, network, network.spec, normalization, UpscaleOptions(tile_size=0))
    with pytest.raises(ConfigError, match="unknown consistency 'areal'"):
        upscale_array(camera, network, network.spec, normalization, UpscaleOptions(consistency="areal"))
    with pytest.raises(ConfigError, match="plane_axes must be two different axes"):
        upscale_array(camera[:, None], network, network.spec, normalization, UpscaleOptions(plane_axes=(1, 1)))


def test_a_3d_network_tiles_a_volume_in_three_dimensions(nets):
    volume = np.random.default_rng(2).integers(0, 255, (1, 9, 10, 11), dtype=np.uint8)
    network = nets.NearestUpsampler(channels=1, scale=(2, 1, 3))
    result = upscale_array(volume, network, network.spec, Normalization.for_dtype("uint8", 1),
                           UpscaleOptions(tile_size=4, batch_size=2, consistency="area"))
    np.testing.assert_array_equal(result, kron(volume, (2, 1, 3)))
    assert all(len(shape) == 5 and shape[2] <= 4 for shape in network.calls)
