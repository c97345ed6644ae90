"""Slice-profile degradation: shapes, energy, alignment, the training protocol and header values, on real data."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from srrestore.domains.medical.dicom_series import open_series
from srrestore.training.slice_profile import SliceProfile, slice_factor

from srrestore.errors import ConfigError, UnsupportedInputError


@pytest.fixture(scope="module")
def camera() -> np.ndarray:
    """A real 512x512 greyscale photograph in [0, 1]."""
    return skimage.data.camera().astype(np.float64) / 255.0


@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("axis", [0, 1])
def test_box_of_the_slice_spacing_averages_each_group_of_slices(camera, factor, axis):
    image = np.take(camera, np.arange(camera.shape[axis] // factor * factor), axis=axis)
    thick = SliceProfile(factor, float(factor), "box").degrade(image, axis)
    moved = np.moveaxis(image, axis, 0)
    expected = moved.reshape(-1, factor, moved.shape[1]).mean(axis=1)
    assert thick.shape[axis] == image.shape[axis] // factor
    assert np.allclose(np.moveaxis(thick, axis, 0), expected, atol=1e-12)


@pytest.mark.parametrize(("kind", "width"), [("box", 3.07), ("box", 6.5), ("gaussian", 2.0), ("gaussian", 4.0)])
def test_profiles_keep_the_energy_of_every_column(camera, kind, width):
    """Taps sum to 1 and are symmetric; a volume's total signal is kept up to the border extension."""
    profile = SliceProfile(2, width, kind)
    taps = profile.taps()
    assert taps.sum() == pytest.approx(1.0) and np.allclose(taps, taps[::-1]) and (taps >= 0).all()
    thick = profile.degrade(camera, 0)
    assert thick.shape == (256, 512)
    assert thick.sum() * 2 == pytest.approx(camera.sum(), rel=2e-3)
    assert np.allclose(profile.degrade(np.full((32, 5), 0.7), 0), 0.7)


def test_box_taps_cover_the_fractional_width_exactly():
    """Thickness 3 mm over 0.977 mm pixels at spacing 2 mm: a 3.07-pixel box centred on 2 pixels."""
    taps = SliceProfile(2, 3.07, "box").taps()
    assert np.allclose(taps, np.array([0.535, 1.0, 1.0, 0.535]) / 3.07)


def test_gaussian_has_the_thickness_as_full_width_at_half_maximum():
    """An impulse spread by a fine-grid Gaussian profile (factor 1): the half maximum lies at +-FWHM/2."""
    profile = SliceProfile(1, 6.0, "gaussian")
    impulse = np.zeros(41)
    impulse[20] = 1.0
    spread = profile.degrade(impulse)
    assert spread.sum() == pytest.approx(1.0)
    sigma = 6.0 / (2 * np.sqrt(2 * np.log(2)))
    analytic = np.exp(-0.5 * (np.arange(-3, 4) / sigma) ** 2)
    assert np.allclose(spread[17:24] / spread[20], analytic, atol=0.01)


def test_thick_samples_sit_at_the_centre_of_their_pixels():
    """A linear ramp keeps its values at the slice centres s*i + (s-1)/2 (away from the borders)."""
    ramp = np.arange(64, dtype=np.float64)
    for kind in ("box", "gaussian"):
        thick = SliceProfile(4, 5.0, kind).degrade(ramp)
        centres = 4 * np.arange(16) + 1.5
        assert np.allclose(thick[2:-2], centres[2:-2])


def test_the_training_protocol_degrades_rows_and_its_margin_is_exact(camera):
    """``apply`` thins the rows of (C, H, W); a window grown by ``margin`` gives the whole image's samples."""
    profile = SliceProfile(4, 7.3, "gaussian")
    image = np.stack([camera, camera * 2.0])  # normalised data may exceed 1: nothing is clipped
    assert profile.scale == (4, 1) and not profile.is_random and profile.margin == (2, 0)
    whole = profile.apply(image)
    assert whole.shape == (2, 128, 512) and whole.dtype == np.float32 and whole.max() > 1.0
    rows = profile.margin[0]
    top = 40  # a patch of 64 rows starting at row 40 (10 thick samples)
    window = image[:, top - 4 * rows : top + 64 + 4 * rows]
    patch = profile.apply(window)[:, rows : rows + 16]
    assert np.allclose(patch, whole[:, 10:26], atol=1e-6)
    with pytest.raises(UnsupportedInputError, match=r"expected a \(C, H, W\) image"):
        profile.apply(camera)


def test_profile_from_a_real_dicom_header(fixtures_dir):
    """The abdomen CT: 3 mm thick slices every 2 mm, 0.977 mm pixels: x2 with a 3.07-pixel profile."""
    series = open_series(fixtures_dir / "medical" / "ct_abdomen_j2k")
    assert series.slice_thickness == pytest.approx(3.0)
    profile = SliceProfile.from_header(series.slice_spacing, max(series.pixel_spacing), series.slice_thickness, "box")
    assert profile.factor == 2 and profile.width == pytest.approx(3.0 / 0.9765625)
    assert profile.to_dict() == {"kind": "box", "width_pixels": profile.width, "factor": 2, "scale": [2, 1]}
    assert SliceProfile.from_header(8.0, 1.0).width == 8.0  # no thickness (NIfTI): the spacing


def test_bad_profiles_are_refused_with_the_value():
    with pytest.raises(ConfigError, match=r"0\.90 times the in-plane spacing"):
        slice_factor(0.9, 1.0)  # finer slices than pixels: nothing to do through-plane
    with pytest.raises(ConfigError, match="slice spacing must be a positive number of mm, got -2"):
        slice_factor(-2.0, 1.0)
    with pytest.raises(ConfigError, match="slice thickness must be a positive number of mm, got 0"):
        SliceProfile.from_header(4.0, 1.0, 0.0)
    with pytest.raises(ConfigError, match="did you mean 'box'"):
        SliceProfile(2, 2.0, "boxx")
    with pytest.raises(ConfigError, match="width must be a positive number of pixels, got nan"):
        SliceProfile(2, float("nan"))
    with pytest.raises(UnsupportedInputError, match="axis 0 has 30 pixels, not a positive multiple of the slice factor 4"):
        SliceProfile(4, 4.0).degrade(np.zeros((30, 3)))


def test_a_mixed_profile_lies_between_box_and_gaussian(camera):
    """Taps of a mix are the share-weighted sum of the box's and the Gaussian's (each on the Gaussian's reach)."""
    box, gaussian = SliceProfile(4, 5.0, "box"), SliceProfile(4, 5.0, "gaussian")
    mixed = SliceProfile(4, 5.0, "mixed", 0.25)
    pad = (gaussian.reach - box.reach, gaussian.reach - box.reach)
    assert np.allclose(mixed.taps(), 0.75 * np.pad(box.taps(), pad) + 0.25 * gaussian.taps())
    assert SliceProfile(4, 5.0, "mixed", 0.0).degrade(camera).tolist() == box.degrade(camera).tolist()
    assert mixed.to_dict()["gaussian_share"] == 0.25 and "gaussian_share" not in box.to_dict()
    assert mixed.describe() == "mixed (0.25 Gaussian) of 5 px"
    with pytest.raises(ConfigError, match="Gaussian share must be in"):
        SliceProfile(4, 5.0, "mixed", 1.5)


def test_the_family_degradation_draws_profiles_and_its_margin_covers_the_widest(camera):
    """A recipe's ``slice_profile = "family"`` draws box, Gaussian and mixes of drawn thickness, reproducibly."""
    from srrestore.training.degradation import Degradation

    family = Degradation(scale=(4, 1), slice_profile="family", slice_thickness=(0.75, 1.5), quantize=False)
    assert family.is_random and family.margin == (-(-SliceProfile(4, 6.0, "gaussian").reach // 4), 0)
    rng = np.random.default_rng(0)
    drawn = [family.draw_profile(rng) for _ in range(60)]
    assert {p.kind for p in drawn} == {"box", "gaussian", "mixed"}
    assert all(3.0 <= p.width <= 6.0 for p in drawn) and len({p.width for p in drawn}) == 60
    image = camera[None]
    first, again = family.apply(image, np.random.default_rng(7)), family.apply(image, np.random.default_rng(7))
    assert first.shape == (1, 128, 512) and np.array_equal(first, again)
    fixed = Degradation(scale=(4, 1), slice_profile="box", quantize=False)
    assert not fixed.is_random
    assert np.allclose(fixed.apply(image), SliceProfile(4, 4.0, "box").apply(image))
    with pytest.raises(ConfigError, match=r"the scale must be \(s, 1\)"):
        Degradation(scale=(4, 4), slice_profile="box")
