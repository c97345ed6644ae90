"""Reading DICOM series: decoding, sorting (D1), geometry (D3), checks (D2) and clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from srrestore.domains.medical.dicom_series import open_series

from srrestore.errors import ConfigError, InputReadError, UnsupportedInputError


@pytest.fixture(scope="module")
def abdomen(fixtures_dir) -> Path:
    """4 real JPEG 2000 lossless CT slices, 2 mm apart."""
    return fixtures_dir / "medical" / "ct_abdomen_j2k"


@pytest.fixture(scope="module")
def tilted(fixtures_dir) -> Path:
    """3 real RLE-encoded head CT slices with an 18.5 degree gantry tilt."""
    return fixtures_dir / "medical" / "ct_head_gantry_tilt"


def dicom_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(("CT.", "0")))


def rewrite(source: Path, target: Path, **changes) -> None:
    """Copy a DICOM file with some attributes changed (pixel data untouched)."""
    dataset = pydicom.dcmread(source)
    for keyword, value in changes.items():
        setattr(dataset, keyword, value)
    dataset.save_as(target)


def test_jpeg2000_series_decodes_to_the_values_the_scanner_recorded(abdomen):
    series = open_series(abdomen)
    volume = series.read_volume()
    assert volume.shape == (4, 512, 512) and volume.dtype == np.uint16
    assert not series.lossy and series.modality == "CT"
    assert (series.slope, series.intercept) == (1.0, -1024.0)
    for index, header in enumerate(series.headers):
        # Smallest/LargestImagePixelValue were written by the scanner before compression
        assert (volume[index].min(), volume[index].max()) == (
            header.SmallestImagePixelValue,
            header.LargestImagePixelValue,
        )
    assert volume.max() <= 4095  # 12 bits stored


def test_d3_affine_of_the_abdomen_series(abdomen):
    series = open_series(abdomen)
    expected = np.array(
        [
            [0.9765625, 0, 0, -249.51171875],
            [0, 0.9765625, 0, -437.51171875],
            [0, 0, 2.0, -772.5],
            [0, 0, 0, 1],
        ]
    )
    np.testing.assert_allclose(series.affine, expected, atol=1e-9)
    assert series.slice_spacing == pytest.approx(2.0)
    assert [float(h.ImagePositionPatient[2]) for h in series.headers] == [-772.5, -770.5, -768.5, -766.5]


def test_d1_shuffled_files_with_scrambled_numbers_sort_by_position(abdomen, tmp_path):
    reference = open_series(abdomen)
    names = ["d.dcm", "a.dcm", "c.dcm", "b.dcm"]
    numbers = [2, 4, 1, 3]
    locations = [10.0, -3.0, 7.5, 0.0]
    for source, name, number, location in zip(dicom_files(abdomen), names, numbers, locations):
        rewrite(source, tmp_path / name, InstanceNumber=number, SliceLocation=location)
    shuffled = open_series(tmp_path)
    np.testing.assert_allclose(shuffled.affine, reference.affine)
    assert np.array_equal(shuffled.read_volume(), reference.read_volume())
    positions = np.array([h.ImagePositionPatient for h in shuffled.headers], dtype=float)
    assert np.all(np.diff(positions @ np.array([0, 0, 1.0])) > 0)


def test_d2_gantry_tilt_is_refused_with_a_message_that_says_so(tilted):
    with pytest.raises(UnsupportedInputError, match=r"gantry tilt of 18\.50 degrees"):
        open_series(tilted)
    with pytest.raises(ConfigError, match="not implemented yet"):
        open_series(tilted, resample_irregular=True)


def test_d2_full_gantry_tilt_series_reports_tilt_and_uneven_spacing(shared_data):
    with pytest.raises(UnsupportedInputError, match=r"gantry tilt of 18\.50 degrees.*non-uniform slice spacing"):
        open_series(shared_data / "medical" / "dicom" / "ct_head_gantry_tilt" / "series")


def test_rle_slices_decode_bit_identical_to_the_uncompressed_original(tilted, shared_data):
    compressed = open_series(tilted / "01.dcm").read_volume()
    original = pydicom.dcmread(shared_data / "medical" / "dicom" / "ct_head_gantry_tilt" / "series" / "01.dcm")
    assert np.array_equal(compressed[0], original.pixel_array)


def test_d2_missing_slice_is_non_uniform_spacing(abdomen, tmp_path):
    files = dicom_files(abdomen)
    for source in files[:2] + files[3:]:
        shutil.copy(source, tmp_path)
    with pytest.raises(UnsupportedInputError, match=r"non-uniform slice spacing \(steps 2 to 4 mm"):
        open_series(tmp_path)


def test_d1_several_orientations_frames_of_reference_or_stacks_are_refused(abdomen, tmp_path):
    files = dicom_files(abdomen)
    first_position = pydicom.dcmread(files[0]).ImagePositionPatient
    cases = {
        "orientations": {"ImageOrientationPatient": [1, 0, 0, 0, 0.9998, 0.02]},
        "FrameOfReferenceUID": {"FrameOfReferenceUID": "1.2.3.4"},
        "share a position": {"ImagePositionPatient": first_position},
    }
    for message, change in cases.items():
        folder = tmp_path / message.replace(" ", "_")
        folder.mkdir()
        for source in files[:3]:
            shutil.copy(source, folder)
        rewrite(files[3], folder / files[3].name, **change)
        with pytest.raises(UnsupportedInputError, match=message):
            open_series(folder)


def test_folder_with_two_series_lists_them_and_series_option_picks_one(abdomen, tmp_path):
    for source in dicom_files(abdomen):
        shutil.copy(source, tmp_path)
    small = Path(get_testdata_file("CT_small.dcm"))
    shutil.copy(small, tmp_path / "small.dcm")
    uid = pydicom.dcmread(small).SeriesInstanceUID
    with pytest.raises(
        UnsupportedInputError, match=rf"2 series: \(empty UID\) \(4 files.*{uid} \(1 files.*--series UID"
    ):
        open_series(tmp_path)
    assert open_series(tmp_path, series_uid=uid).shape == (1, 128, 128)
    assert open_series(tmp_path, series_uid="").shape == (4, 512, 512)
    with pytest.raises(ConfigError, match="'9.9.9' is not in"):
        open_series(tmp_path, series_uid="9.9.9")


def test_non_image_dicom_is_refused_or_skipped(abdomen, tmp_path):
    plan = Path(get_testdata_file("rtplan.dcm"))
    with pytest.raises(UnsupportedInputError, match="RT Plan Storage object, not an image"):
        open_series(plan)
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(plan, only / "plan.dcm")
    (only / "notes.txt").write_text("not DICOM")
    with pytest.raises(
        UnsupportedInputError, match=r"no DICOM image in this folder; non-image DICOM objects: plan\.dcm"
    ):
        open_series(only)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for source in dicom_files(abdomen):
        shutil.copy(source, mixed)
    shutil.copy(plan, mixed / "plan.dcm")
    series = open_series(mixed)
    assert series.shape == (4, 512, 512)
    assert series.notes == ["skipped non-image DICOM objects: plan.dcm (RT Plan Storage)"]


def test_truncated_files_give_clear_read_errors(tmp_path):
    truncated_pixels = Path(get_testdata_file("MR_truncated.dcm"))
    series = open_series(truncated_pixels)
    with pytest.raises(InputReadError, match="MR_truncated.dcm.*less than expected"):
        series.read_volume()
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:3000])  # stops inside the header
    with pytest.raises(InputReadError, match="cut.dcm: a CT Image Storage file without Rows/Columns; truncated"):
        open_series(cut)


def test_single_file_is_a_one_slice_volume_with_its_thickness_as_spacing():
    series = open_series(Path(get_testdata_file("CT_small.dcm")))
    assert series.shape == (1, 128, 128) and series.dtype == np.int16
    assert series.slice_spacing == pytest.approx(float(series.header.SliceThickness))
    assert series.read_volume().shape == (1, 128, 128)


def test_colour_and_missing_paths_are_refused(tmp_path):
    with pytest.raises(UnsupportedInputError, match="colour"):
        open_series(Path(get_testdata_file("SC_rgb_rle.dcm")))
    with pytest.raises(InputReadError, match="input not found"):
        open_series(tmp_path / "nope")
