"""Normalization: invariants I1, I2, I3, I5."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from srrestore.engine.normalize import Normalization, to_dtype


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16"])
def test_identity_round_trip_is_bit_exact_over_the_whole_dtype_range(dtype):
    info = np.iinfo(dtype)
    values = np.arange(info.min, info.max + 1, dtype=np.int64).astype(dtype)[None]
    for normalization in (Normalization.for_dtype(dtype, 1), Normalization.fixed(-1024, 3071, 1),
                          Normalization.from_percentiles(values)):
        assert np.array_equal(normalization.inverse(normalization.forward(values), dtype), values)


def test_ct_mapping_does_not_clip_the_input():
    normalization = Normalization.fixed(-1024, 3071, 1)
    hu = np.array([[-2000, -1024, 3071, 5000]], dtype=np.int16)
    assert np.allclose(normalization.forward(hu), [[-976 / 4095, 0, 1, 6024 / 4095]])


def test_percentiles_use_valid_pixels_only_and_are_recorded():
    image = data.camera().astype(np.uint16)[None] * 100
    valid = np.ones(image.shape[1:], bool)
    valid[:50] = False
    image[0, :50] = 65535
    normalization = Normalization.from_percentiles(image, valid)
    low, high = np.percentile(image[0][valid], [0.5, 99.5])
    assert normalization.offset == (low,) and normalization.scale == (high - low,)
    assert Normalization.from_dict(normalization.to_dict()) == normalization


def test_to_dtype_rounds_and_clips_never_wraps():
    values = np.array([-1.2, 0.5, 1.5, 70000.0, np.nan])
    assert to_dtype(values, "uint16").tolist() == [0, 0, 2, 65535, 0]
    assert to_dtype(np.array([-40000.0, 40000.0]), "int16").tolist() == [-32768, 32767]
    assert to_dtype(values, "float32").dtype == np.float32


def test_zero_scale_is_refused():
    with pytest.raises(ValueError):
        Normalization((0.0,), (0.0,))
    flat = np.full((1, 4, 4), 7, dtype=np.uint16)
    assert Normalization.from_percentiles(flat).scale[0] > 0
