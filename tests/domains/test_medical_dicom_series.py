"""Reading DICOM series: decoding, sorting (D1), geometry (D3), checks (D2) and clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from srrestore.domains.medical.dicom_series import open_series
from srrestore.domains.medical.dicom_writer import derive_series
from srrestore.domains.medical.geometry import slice_normal

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
    return sorted(p for p in folder.iterdir() if p.name.startswith("CT.") or p.suffix == ".dcm")


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
    with pytest.raises(
        UnsupportedInputError,
        match=r"gantry tilt of 18\.50 degrees.*; `srrestore restore --resample-irregular` resamples it onto a regular grid$",
    ):
        open_series(tilted)


def source_stack(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(stack, positions, orientation)`` of a folder's slices sorted along their normal, read with pydicom alone."""
    datasets = [pydicom.dcmread(path) for path in dicom_files(folder)]
    orientation = np.array(datasets[0].ImageOrientationPatient, dtype=float)
    datasets.sort(key=lambda d: np.array(d.ImagePositionPatient, dtype=float) @ slice_normal(orientation))
    positions = np.array([d.ImagePositionPatient for d in datasets], dtype=float)
    return np.stack([d.pixel_array for d in datasets]), positions, orientation


def check_regular_grid(series, positions: np.ndarray, orientation: np.ndarray) -> None:
    """No shear, first plane at the first slice, last plane at the last slice's projection, even spacing."""
    normal = slice_normal(orientation)
    step = series.affine[:3, 2]
    assert np.linalg.norm(np.cross(step / np.linalg.norm(step), normal)) < 1e-6 and step @ normal > 0
    assert series.slice_spacing == pytest.approx(np.linalg.norm(step), abs=1e-9)
    np.testing.assert_allclose(series.affine[:3, 3], positions[0], atol=1e-9)
    last = series.affine @ [0, 0, series.shape[0] - 1, 1]
    assert abs((last[:3] - positions[-1]) @ normal) < 1e-4
    steps = np.diff(positions @ normal)
    assert series.shape[0] == round(steps.sum() / np.median(steps)) + 1


def test_d2_gantry_tilt_resampled_onto_a_regular_grid_on_request(tilted):
    series = open_series(tilted, resample_irregular=True)
    stack, positions, orientation = source_stack(tilted)
    check_regular_grid(series, positions, orientation)
    assert series.shape == (3, 512, 512) and series.slice_spacing == pytest.approx(4.0, abs=0.01)
    assert series.notes == [
        (
            "resampled onto a regular grid (gantry tilt of 18.50 degrees corrected): 3 source slices to 3 slices at"
            " 4.002 mm along the slice normal (linear interpolation)"
        )
    ]
    volume = series.read_volume()
    assert volume.dtype == np.int16 == stack.dtype
    assert np.array_equal(volume[0], stack[0])  # the first slice is where the grids coincide
    padding = int(series.header.PixelPaddingValue)
    assert volume[volume != padding].min() >= stack[stack != padding].min()  # padding never bleeds into values
    # plane k is slice k moved in-plane by its shear: rows only here (tilt about the patient's left-right axis)
    row_spacing = float(series.header.PixelSpacing[0])
    for k in (1, 2):
        offset = positions[k] - positions[0]
        shear = offset - (offset @ slice_normal(orientation)) * slice_normal(orientation)
        assert abs(shear @ orientation[:3]) < 1e-9
        rows = np.arange(150, 350)
        source_rows = rows - (shear @ orientation[3:]) / row_spacing
        below = np.floor(source_rows).astype(int)
        fraction = (source_rows - below)[:, None]
        lower, upper = stack[k, below, 150:350].astype(float), stack[k, below + 1, 150:350].astype(float)
        expected = (1 - fraction) * lower + fraction * upper
        assert np.abs(volume[k, rows, 150:350] - expected).max() <= 0.5 + 1e-9  # rounded to stored integers
        plane = volume[k, rows, 150:350]
        assert np.all((np.minimum(lower, upper) <= plane) & (plane <= np.maximum(lower, upper)))
        assert not np.array_equal(volume[k], stack[k])


def move_slices(abdomen: Path, folder: Path, offsets: list[float]) -> None:
    """The real abdomen slices (2 mm apart) with slice k moved to ``offsets[k]`` mm above the first one."""
    folder.mkdir()
    files = sorted(dicom_files(abdomen), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    first = pydicom.dcmread(files[0]).ImagePositionPatient
    for path, offset in zip(files, offsets):
        rewrite(path, folder / path.name, ImagePositionPatient=[first[0], first[1], float(first[2]) + offset])


def test_d2_uneven_series_resampled_keeps_the_slices_on_the_grid_and_interpolates_between(abdomen, tmp_path):
    move_slices(abdomen, tmp_path / "uneven", [0.0, 2.0, 5.0, 6.0])  # steps 2, 3, 1 mm: planes at 0, 2, 4, 6
    with pytest.raises(UnsupportedInputError, match=r"spacing \(steps 1 to 3 mm.*--resample-irregular"):
        open_series(tmp_path / "uneven")
    series = open_series(tmp_path / "uneven", resample_irregular=True)
    stack, positions, orientation = source_stack(tmp_path / "uneven")
    check_regular_grid(series, positions, orientation)
    assert series.shape == (4, 512, 512) and series.slice_spacing == pytest.approx(2.0)
    assert "slice steps of 1 to 3 mm made uniform): 4 source slices to 4 slices at 2.000 mm" in series.notes[0]
    volume = series.read_volume()
    assert volume.dtype == np.uint16 and volume.max() <= 4095
    for plane, source in ((0, 0), (1, 1), (3, 3)):  # planes at 0, 2 and 6 mm land on source slices
        assert np.array_equal(volume[plane], stack[source])
    lower, upper = stack[1].astype(float), stack[2].astype(float)  # plane 2 (4 mm) lies 2/3 of the way from 2 to 5 mm
    assert np.abs(volume[2] - (lower / 3 + 2 * upper / 3)).max() <= 0.5 + 1e-9
    assert np.all((np.minimum(lower, upper) <= volume[2]) & (volume[2] <= np.maximum(lower, upper)))


def test_resampled_slice_count_differs_and_outputs_reference_the_nearest_source_slice(abdomen, tmp_path):
    move_slices(abdomen, tmp_path / "uneven", [0.0, 1.0, 2.5, 6.0])  # median step 1.5 mm: 5 planes, 0 to 6 mm
    series = open_series(tmp_path / "uneven", resample_irregular=True)
    assert series.shape[0] == 5 and len(series.headers) == 4
    derived = derive_series(series, (1, 1, 1), "test")
    assert [derived.source_index(i) for i in range(5)] == [0, 1, 2, 3, 3]  # planes at 0, 1.5, 3, 4.5, 6 mm
    assert "input resampled onto a regular grid (slice steps of 1 to 3.5 mm made uniform)" in (
        derived.derivation_description
    )
    regular = derive_series(open_series(abdomen), (2, 1, 1), "test")
    assert [regular.source_index(i) for i in range(8)] == [0, 0, 1, 1, 2, 2, 3, 3]


def test_d2_full_gantry_tilt_series_reports_tilt_and_uneven_spacing(shared_data):
    with pytest.raises(UnsupportedInputError, match=r"gantry tilt of 18\.50 degrees.*non-uniform slice spacing"):
        open_series(shared_data / "medical" / "dicom" / "ct_head_gantry_tilt" / "series")
    folder = shared_data / "medical" / "dicom" / "ct_head_gantry_tilt" / "series"  # 13 steps of 4 mm, 13 of 7 mm
    series = open_series(folder, resample_irregular=True)
    stack, positions, orientation = source_stack(folder)
    check_regular_grid(series, positions, orientation)
    assert series.shape == (37, 512, 512) and len(series.headers) == 28
    assert "(gantry tilt of 18.50 degrees corrected, slice steps of 1.081 to 6.999 mm made uniform)" in series.notes[0]
    volume = series.read_volume()
    assert np.array_equal(volume[0], stack[0]) and volume.dtype == np.int16


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
    series = open_series(tmp_path, resample_irregular=True)  # slices at 0, 4, 6 mm: median step 3 mm
    assert series.shape == (3, 512, 512) and series.slice_spacing == pytest.approx(3.0)
    stack, _, _ = source_stack(tmp_path)
    volume = series.read_volume()
    assert np.array_equal(volume[0], stack[0]) and np.array_equal(volume[2], stack[2])


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
