"""Intensity maps of medical volumes: invariants I1-I3 and I5 on real data."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path
from srrestore.domains.medical.intensity import (
    CT_HU_WINDOW,
    ct_normalization,
    foreground_normalization,
    looks_like_ct,
    normalization_for,
)


def _stored(path):
    image = nib.load(path)
    return np.asarray(image.dataobj.get_unscaled())[None], image.dataobj.slope, image.dataobj.inter


@pytest.fixture(scope="module")
def mr(fixtures_dir):
    return _stored(fixtures_dir / "medical" / "totalsegmentator" / "example_mr_sm.nii.gz")


@pytest.fixture(scope="module")
def ct(fixtures_dir):
    return _stored(fixtures_dir / "medical" / "totalsegmentator" / "example_ct_sm.nii.gz")


@pytest.mark.parametrize(
    ("dtype", "low", "high", "intercept"),
    [("uint16", 0, 4095, -1024.0), ("int16", -2048, 2047, 0.0), ("int16", -32768, 32767, -1024.0)],
)
def test_i1_ct_round_trip_is_bit_exact_over_the_stored_range(dtype, low, high, intercept):
    stored = np.arange(low, high + 1, dtype=dtype)[None]
    normalization = ct_normalization(1.0, intercept)
    assert np.array_equal(normalization.inverse(normalization.forward(stored), dtype), stored)


def test_i2_ct_map_is_fixed_in_hounsfield_units_and_not_clipped():
    # stored 12-bit values with intercept -1024: HU -1024 -> 0, HU 3071 -> 1, beyond -> outside [0, 1]
    normalization = ct_normalization(1.0, -1024.0)
    stored = np.array([[0, 4095, 6000]], dtype=np.uint16)
    np.testing.assert_allclose(normalization.forward(stored)[0], [0.0, 1.0, (6000 - 0) / 4095], rtol=1e-6)
    scaled = ct_normalization(0.5, -1000.0)  # HU = 0.5 * stored - 1000
    hu = np.array(CT_HU_WINDOW)
    stored = ((hu + 1000.0) / 0.5)[None]
    np.testing.assert_allclose(scaled.forward(stored)[0], [0.0, 1.0], atol=1e-7)
    assert normalization.method == "ct-hu--1024-3071"


def test_i3_mr_percentiles_come_from_the_foreground_and_round_trip_exactly(mr):
    stored, _, _ = mr
    normalization = foreground_normalization(stored)
    whole = np.percentile(stored, [0.5, 99.5])
    assert normalization.offset[0] > whole[0]  # background (air) excluded
    forward = normalization.forward(stored)
    assert forward.min() < 0 or forward.max() > 1  # not clipped at the percentiles
    assert np.array_equal(normalization.inverse(forward, stored.dtype), stored)
    every_value = np.arange(-32768, 32768, dtype=np.int16)[None]
    assert np.array_equal(normalization.inverse(normalization.forward(every_value), np.int16), every_value)
    assert normalization.method == "foreground-percentile-0.5-99.5"


def test_i5_inverse_clips_instead_of_wrapping():
    normalization = ct_normalization(1.0, -1024.0)
    result = normalization.inverse(np.array([[-0.5, 20.0, np.nan]], dtype=np.float32), np.uint16)
    assert result.tolist() == [[0, 65535, 0]]  # a bare astype would wrap 81900 to 16364
    assert normalization.inverse(np.array([[-1.0]], dtype=np.float32), np.int16)[0, 0] == -4095


def test_ct_is_recognised_in_real_nifti_volumes(ct, mr):
    assert looks_like_ct(*ct)
    assert not looks_like_ct(*mr)
    anatomical = _stored(os.path.join(data_path, "anatomical.nii"))  # T1 with values down to -610
    assert not looks_like_ct(*anatomical)
    assert not looks_like_ct(ct[0].astype(np.float32), 1.0, 0.0)  # float data is not assumed to be HU
    assert normalization_for(ct[0], True, 1.0, 0.0).method.startswith("ct-hu")
    assert normalization_for(mr[0], False).method.startswith("foreground")


def test_foreground_normalization_is_per_channel_on_a_4d_series():
    image = nib.load(os.path.join(data_path, "example4d.nii.gz"))
    stored = np.moveaxis(np.asarray(image.dataobj.get_unscaled()), 3, 0)
    stored = np.stack([stored[0], stored[1] // 2])  # a second channel with another range
    normalization = foreground_normalization(stored)
    alone = [foreground_normalization(stored[c : c + 1]) for c in range(2)]
    assert normalization.offset == (alone[0].offset[0], alone[1].offset[0])
    assert normalization.scale == (alone[0].scale[0], alone[1].scale[0])
    assert normalization.offset[0] != normalization.offset[1]
