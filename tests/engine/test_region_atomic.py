"""Region arithmetic and atomic outputs."""

from __future__ import annotations

import pytest

from srrestore.storage.atomic import atomic_output
from srrestore.engine.region import Region
from srrestore.errors import OutputWriteError


def test_region_padding_scaling_clipping():
    region = Region((10, 20), (30, 25))
    assert region.size == (20, 5) and region.num_pixels == 100
    padded = region.padded(4)
    assert padded == Region((6, 16), (34, 29))
    assert padded.clipped((32, 100)) == Region((6, 16), (32, 29))
    assert region.scaled((2, 3)) == Region((20, 60), (60, 75))
    assert region.relative_to(padded) == Region((4, 4), (24, 9))
    assert Region.from_shape((3, 4)).slices() == (slice(0, 3), slice(0, 4))
    with pytest.raises(ValueError):
        Region((5,), (4,))


def test_atomic_output_renames_on_success(tmp_path):
    target = tmp_path / "sub" / "out.png"
    with atomic_output(target) as temporary:
        assert temporary.suffix == ".png" and temporary.parent == target.parent
        temporary.write_bytes(b"done")
    assert target.read_bytes() == b"done"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.png"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_output_leaves_nothing_on_failure(tmp_path, error):
    target = tmp_path / "out.tif"
    with pytest.raises(error):
        with atomic_output(target) as temporary:
            temporary.write_bytes(b"half")
            raise error()
    assert list(tmp_path.iterdir()) == []


def test_output_equal_to_input_is_refused(tmp_path):
    source = tmp_path / "in.tif"
    source.write_bytes(b"data")
    with pytest.raises(OutputWriteError, match="input itself"):
        with atomic_output(source, overwrite=True, inputs=[source]):
            pass
    assert source.read_bytes() == b"data"
