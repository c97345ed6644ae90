"""The slice profile estimated from a scan, on real volumes made thick by a known profile."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path
from srrestore.pipelines.medical.profile_estimate import estimate_profile, segment_power

from srrestore.training.slice_profile import SliceProfile


def normalised(path: Path) -> np.ndarray:
    values = np.asarray(nib.load(path).dataobj, dtype=np.float64)
    low, high = np.percentile(values, (1, 99))
    return (values - low) / (high - low)


def estimate(volume: np.ndarray, axis: int, factor: int, kind: str):
    """Thick slices along ``axis`` made by ``kind`` of the slice spacing, then the estimate from them alone."""
    length = volume.shape[axis] - volume.shape[axis] % factor
    thick = SliceProfile(factor, float(factor), kind).degrade(np.take(volume, np.arange(length), axis=axis), axis)
    planes = np.moveaxis(thick, axis, 0)
    fine = [image for plane in planes for image in (plane, plane.T)]  # in-plane slices, both orientations
    return estimate_profile([(thick, axis)], fine, factor, float(factor))


@pytest.mark.parametrize(("name", "axis", "factor"), [("t1", 2, 2), ("ct", 2, 3), ("ct", 0, 3), ("t1", 0, 2)])
def test_a_box_profile_is_found(fixtures_dir, name, axis, factor):
    """Averaged groups of thin slices (the issue's 4 mm T1 case): the estimate is the box, and says so."""
    path = Path(data_path) / "anatomical.nii" if name == "t1" else (
        fixtures_dir / "medical" / "totalsegmentator" / "example_ct_sm.nii.gz")
    found = estimate(normalised(path), axis, factor, "box")
    assert found is not None and found.profile.kind == "box" and found.profile.width == factor
    assert found.describe().startswith("estimated from the scan (spectra over ")


def test_a_gaussian_profile_is_not_taken_for_a_box():
    """Gaussian thick slices of the real T1: the estimate holds a Gaussian part (it leans to the box, see the module)."""
    found = estimate(normalised(Path(data_path) / "anatomical.nii"), 2, 2, "gaussian")
    assert found is not None and found.profile.share >= 0.5


def test_six_thick_slices_are_too_few_to_estimate():
    """The 2 mm T1 made into 6 box slices at x4 (read as 0.75 Gaussian from segments of 6): no estimate, the family."""
    assert estimate(normalised(Path(data_path) / "anatomical.nii"), 2, 4, "box") is None


def test_too_few_slices_give_no_estimate_and_nodata_segments_are_left_out():
    rng = np.random.default_rng(0)
    assert estimate_profile([(rng.random((4, 20, 20)), 0)], [rng.random((40, 40))], 2, 2.0) is None
    values = rng.random((10, 16))
    values[3, 5] = np.nan
    power, count = segment_power(values, 1, 8)
    assert power.shape == (4,) and count == 10 * 3 - 2 and np.all(power > 0)  # two segments hold the NaN
