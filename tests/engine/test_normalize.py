"""Normalization: invariants I1, I2, I3, I5, for every supported integer and float dtype."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from srrestore.engine.normalize import Normalization, to_dtype


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
def test_identity_round_trip_is_bit_exact_over_the_whole_dtype_range(dtype):
    info = np.iinfo(dtype)
    values = np.arange(info.min, info.max + 1, dtype=np.int64).astype(dtype)[None]
    for normalization in (Normalization.for_dtype(dtype, 1), Normalization.fixed(-1024, 3071, 1),
                          Normalization.from_percentiles(values)):
        assert np.array_equal(normalization.inverse(normalization.forward(values), dtype), values)


# Values of the 32- and 64-bit dtypes beyond int16: 2**22 consecutive-ish integers around a
# base that only the dtype holds (above int32's max for uint32, near 2**53 for the 64-bit ones).
WIDE_BASES = {"uint32": 3 * 2**30, "int32": -(2**31) + 5, "uint64": 2**53 - 2**22, "int64": -(2**53)}


@pytest.mark.parametrize("dtype", list(WIDE_BASES))
def test_wide_integers_round_trip_exactly_within_2_pow_23_of_the_offset(dtype):
    # Exact (tolerance 0): forward hands the network float32 (24-bit mantissa), so values
    # within 2**23 of the offset come back within 0.5 and rint restores them; all of
    # them are at most 2**53 in magnitude, so float64 holds them exactly.
    values = (WIDE_BASES[dtype] + np.arange(0, 2**22, 97, dtype=np.int64)).astype(dtype)[None]
    normalization = Normalization.from_percentiles(values)
    restored = normalization.inverse(normalization.forward(values), dtype)
    assert restored.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(restored, values)


@pytest.mark.parametrize("dtype", ["uint32", "int32"])
def test_full_32_bit_range_round_trips_within_the_float32_bound(dtype):
    # Farther from the offset than 2**23, float32's unit roundoff 2**-24 costs up to
    # |x - offset| * 2**-24 counts, plus 0.5 from rounding to an integer: that is the bound.
    info = np.iinfo(dtype)
    rng = np.random.default_rng(0)
    values = np.concatenate([[info.min, info.max], rng.integers(info.min, info.max, 4096)]).astype(dtype)[None]
    for normalization in (Normalization.for_dtype(dtype, 1), Normalization.from_percentiles(values)):
        restored = normalization.inverse(normalization.forward(values), dtype)
        error = np.abs(restored.astype(np.float64) - values.astype(np.float64))
        assert (error <= np.abs(values - normalization.offset[0]) * 2.0**-24 + 0.5).all()


def test_float64_round_trip_keeps_precision_float32_storage_would_lose():
    # 1e6 + k * 1e-3: float32 spacing at 1e6 is 0.0625, so storing these in float32 would
    # merge them. The offset is removed in float64 first: the error is float32's roundoff
    # of the normalised value, |x - offset| * 2**-24 (<= 3e-9 here), plus float64 roundoff.
    values = (1e6 + np.arange(1000) * 1e-3)[None]
    normalization = Normalization.from_percentiles(values)
    restored = normalization.inverse(normalization.forward(values), "float64")
    assert restored.dtype == np.float64
    bound = np.abs(values - normalization.offset[0]) * 2.0**-24 + 4 * np.spacing(values)
    assert (np.abs(restored - values) <= bound).all()
    assert len(np.unique(restored)) == values.size


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
    assert to_dtype(np.array([-300.0, 127.5, np.inf]), "int8").tolist() == [-128, 127, 127]


@pytest.mark.parametrize("dtype", ["int64", "uint64"])
def test_64_bit_integers_saturate_instead_of_wrapping(dtype):
    # float(iinfo.max) is 2**63 (2**64): clipping to it and casting would wrap to the
    # minimum. Everything at or above it must land exactly on the dtype's max.
    info = np.iinfo(dtype)
    values = np.array([-np.inf, -1e30, float(info.min), 0.4, 2.0**53, 2.0**62, float(info.max), 1e30, np.inf, np.nan])
    expected = [info.min, info.min, info.min, 0, 2**53, 2**62, info.max, info.max, info.max, 0]
    assert to_dtype(values, dtype).tolist() == expected


def test_zero_scale_is_refused():
    with pytest.raises(ValueError):
        Normalization((0.0,), (0.0,))
    flat = np.full((1, 4, 4), 7, dtype=np.uint16)
    assert Normalization.from_percentiles(flat).scale[0] > 0
