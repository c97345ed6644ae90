"""BlockAligner: every window reaching GDAL is block-aligned (G9), every pixel written once."""

from __future__ import annotations

import numpy as np
import pytest

from srrestore.domains.satellite.blocks import BlockAligner
from srrestore.engine.region import Region


def tiles(shape: tuple[int, int], size: tuple[int, int]) -> list[Region]:
    """Row-major tiles of ``size`` covering ``shape`` (the engine's order)."""
    return [
        Region((top, left), (min(top + size[0], shape[0]), min(left + size[1], shape[1])))
        for top in range(0, shape[0], size[0])
        for left in range(0, shape[1], size[1])
    ]


@pytest.mark.parametrize(("shape", "tile", "block"), [
    ((100, 130), (48, 48), (32, 32)),   # tiles cut blocks on both axes; edges are partial blocks
    ((96, 96), (32, 32), (32, 32)),     # already aligned: passed straight through
    ((50, 70), (7, 90), (16, 16)),      # strips narrower than a block
    ((33, 17), (40, 40), (16, 16)),     # one tile larger than the image
])
def test_windows_are_aligned_and_the_image_is_complete(shape, tile, block):
    image = np.arange(2 * shape[0] * shape[1], dtype=np.uint16).reshape(2, *shape)
    output = np.zeros_like(image)
    emitted: list[Region] = []

    def sink(region: Region, array: np.ndarray) -> None:
        emitted.append(region)
        assert array.shape == (2, *region.size)
        output[(slice(None), *region.slices())] = array

    aligner = BlockAligner(shape, 2, image.dtype, block, sink)
    for region in tiles(shape, tile):
        aligner.write(region, image[(slice(None), *region.slices())])
    assert aligner.pending == 0
    np.testing.assert_array_equal(output, image)
    for region in emitted:
        for axis in range(2):
            assert region.start[axis] % block[axis] == 0
            assert region.stop[axis] % block[axis] == 0 or region.stop[axis] == shape[axis]
    written = np.zeros(shape, dtype=int)
    for region in emitted:
        written[region.slices()] += 1
    assert (written == 1).all()  # no block is written twice


def test_aligned_tiles_pass_through_as_one_window():
    emitted: list[Region] = []
    aligner = BlockAligner((64, 64), 1, np.uint8, (32, 32), lambda region, array: emitted.append(region))
    aligner.write(Region((0, 0), (64, 64)), np.zeros((1, 64, 64), np.uint8))
    assert emitted == [Region((0, 0), (64, 64))]


def test_partial_blocks_wait_for_their_neighbours():
    emitted: list[Region] = []
    aligner = BlockAligner((32, 64), 1, np.uint8, (32, 32), lambda region, array: emitted.append(region))
    aligner.write(Region((0, 0), (32, 40)), np.zeros((1, 32, 40), np.uint8))
    assert emitted == [Region((0, 0), (32, 32))] and aligner.pending == 1
    aligner.write(Region((0, 40), (32, 64)), np.zeros((1, 32, 24), np.uint8))
    assert emitted[-1] == Region((0, 32), (32, 64)) and aligner.pending == 0
