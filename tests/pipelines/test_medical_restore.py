"""restore_dicom / restore_nifti end to end with tiny real generators, on real series and volumes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from nibabel.testing import data_path
from pydicom.data import get_testdata_file
from srrestore.domains.medical.dicom_series import open_series
from srrestore.domains.medical.geometry import corner_points
from srrestore.domains.medical.dicom_series import sniff_dicom
from srrestore.domains.medical.nifti import sniff_nifti
from srrestore.pipelines.medical.restore import restore_dicom, restore_nifti

from srrestore.errors import ConfigError, InputReadError, OutputExistsError, UnsupportedInputError
from srrestore.models.checkpoint import save_generator
from srrestore.models.generator import create_generator


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """Tiny 1-channel generators: in-plane x2, through-plane (2, 1) and (1, 2), and a GAN-phase one."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    paths = {}
    for name, scale, phase in (
        ("in2", (2, 2), "psnr"),
        ("t21", (2, 1), "psnr"),
        ("t12", (1, 2), "psnr"),
        ("t21gan", (2, 1), "gan"),
    ):
        path = folder / f"{name}.safetensors"
        save_generator(path, create_generator("test-tiny", in_channels=1, scale=scale), phase=phase)
        paths[name] = str(path)
    return paths


@pytest.fixture(scope="module")
def abdomen(fixtures_dir) -> Path:
    return fixtures_dir / "medical" / "ct_abdomen_j2k"


@pytest.fixture(scope="module")
def small_abdomen(abdomen, tmp_path_factory) -> Path:
    """The 4 real abdomen slices cropped to 48x40 pixels (geometry moved with the crop)."""
    folder = tmp_path_factory.mktemp("small_abdomen")
    top, left = 230, 200
    for path in sorted(abdomen.glob("CT.*")):
        dataset = pydicom.dcmread(path)
        row_spacing, column_spacing = (float(v) for v in dataset.PixelSpacing)
        cosines = np.array(dataset.ImageOrientationPatient, dtype=float)
        origin = np.array(dataset.ImagePositionPatient, dtype=float)
        dataset.ImagePositionPatient = list(
            origin + left * column_spacing * cosines[:3] + top * row_spacing * cosines[3:]
        )
        dataset.set_pixel_data(
            dataset.pixel_array[top : top + 48, left : left + 40], "MONOCHROME2", 12, generate_instance_uid=False
        )
        dataset.save_as(folder / path.name)
    return folder


def options(**kwargs) -> dict[str, object]:
    """Restore options by name, as the command line gives them: each pipeline takes its own and refuses others."""
    return {"progress": False, "device": "cpu", **kwargs}


def check_geometry(source: Path, output: Path, factors: tuple[int, int, int]) -> None:
    """Output re-reads as a series with the expected shape, spacing and the same world bounds."""
    before, after = open_series(source), open_series(output)
    assert after.shape == tuple(n * f for n, f in zip(before.shape, factors))
    assert after.slice_spacing == pytest.approx(before.slice_spacing / factors[0], abs=1e-6)
    assert after.pixel_spacing == pytest.approx(tuple(s / f for s, f in zip(before.pixel_spacing, factors[1:])))
    error = corner_points(after.affine, after.shape[::-1]) - corner_points(before.affine, before.shape[::-1])
    assert np.abs(error).max() < 1e-4


def test_restore_dicom_in_plane_on_a_real_ct_series(small_abdomen, tmp_path, models):
    output = tmp_path / "sr"
    report = restore_dicom(small_abdomen, output, options(model=models["in2"], scale=2))
    assert report.scale == (1, 2, 2) and report.format == "dicom"
    assert report.normalization["method"] == "ct-hu--1024-3071"
    check_geometry(small_abdomen, output, (1, 2, 2))
    source, result = open_series(small_abdomen), open_series(output)
    datasets = [pydicom.dcmread(p) for p in sorted(output.iterdir())]
    uids = {d.SOPInstanceUID for d in datasets}
    assert len(uids) == 4 and not uids & set(source.sop_instance_uids)
    assert {d.SeriesInstanceUID for d in datasets} == {result.series_uid} and result.series_uid != source.series_uid
    assert all(d.StudyInstanceUID == source.header.StudyInstanceUID for d in datasets)
    volume = result.read_volume()
    assert volume.dtype == np.uint16 and 0 <= volume.min() and volume.max() <= 4095
    assert "in2 (PSNR phase" in datasets[0].DerivationDescription


def test_restore_dicom_decodes_a_jpeg2000_file(abdomen, tmp_path, models):
    source = next(abdomen.glob("CT.*"))
    restore_dicom(source, tmp_path / "sr", options(model=models["in2"], scale=2))
    (output,) = (tmp_path / "sr").iterdir()
    dataset = pydicom.dcmread(output)
    assert (dataset.Rows, dataset.Columns) == (1024, 1024)
    assert dataset.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert "LossyImageCompression" not in dataset  # JPEG 2000 lossless stays lossless
    assert 0 <= dataset.pixel_array.min() and dataset.pixel_array.max() <= 4095


def test_restore_dicom_through_plane_then_in_plane_records_the_gan_phase(small_abdomen, tmp_path, models):
    output = tmp_path / "sr"
    report = restore_dicom(
        small_abdomen, output, options(model=models["in2"], slice_model=models["t21gan"], scale=2, slice_scale=2)
    )
    assert report.scale == (2, 2, 2) and report.model == "t21gan + in2" and len(report.engine) == 2
    check_geometry(small_abdomen, output, (2, 2, 2))
    first = pydicom.dcmread(min(output.iterdir()))
    assert "through-plane x2 by model t21gan (GAN phase" in first.DerivationDescription
    assert "in-plane x2 by model in2 (PSNR phase" in first.DerivationDescription
    assert first.SeriesDescription.endswith("SR x2 in-plane, x2 through-plane")
    assert float(first.SliceThickness) == pytest.approx(1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr"]  # no scratch left


@pytest.mark.parametrize("model", ["t21", "t12"])
def test_thick_series_defaults_to_through_plane(small_abdomen, tmp_path, models, model):
    report = restore_dicom(small_abdomen, tmp_path / "sr", options(model=models[model]))  # 2 mm vs 0.98 mm
    assert report.scale == (2, 1, 1)
    check_geometry(small_abdomen, tmp_path / "sr", (2, 1, 1))


def test_isotropic_model_on_a_thick_series_explains_the_model_needed(small_abdomen, tmp_path, models):
    with pytest.raises(
        ConfigError, match=r"through-plane SR needs a model that upscales one axis only, e.g. scale \(2, 1\)"
    ):
        restore_dicom(small_abdomen, tmp_path / "sr", options(model=models["in2"]))
    with pytest.raises(ConfigError, match="in-plane SR needs a model with equal factors"):
        restore_dicom(small_abdomen, tmp_path / "sr", options(model=models["t21"], scale=2))
    assert not (tmp_path / "sr").exists()


def test_bad_dicom_inputs_write_nothing(fixtures_dir, abdomen, tmp_path, models):
    output = tmp_path / "sr"
    with pytest.raises(UnsupportedInputError, match="gantry tilt of 18.50 degrees"):
        restore_dicom(fixtures_dir / "medical" / "ct_head_gantry_tilt", output, options(model=models["in2"], scale=2))
    two = tmp_path / "two"
    two.mkdir()
    for path in abdomen.glob("CT.*"):
        shutil.copy(path, two)
    shutil.copy(get_testdata_file("CT_small.dcm"), two / "small.dcm")
    with pytest.raises(UnsupportedInputError, match="holds 2 series.*--series UID"):
        restore_dicom(two, output, options(model=models["in2"], scale=2))
    with pytest.raises(UnsupportedInputError, match="not an image"):
        restore_dicom(Path(get_testdata_file("rtplan.dcm")), output, options(model=models["in2"], scale=2))
    with pytest.raises(InputReadError, match="less than expected"):
        restore_dicom(Path(get_testdata_file("MR_truncated.dcm")), output, options(model=models["in2"], scale=2))
    with pytest.raises(ConfigError, match="option --cog does not apply to DICOM"):
        restore_dicom(abdomen, output, options(model=models["in2"], scale=2, cog=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two"]


def test_series_option_restores_one_series_of_a_folder(abdomen, tmp_path, models):
    shutil.copytree(abdomen, tmp_path / "two")
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "two" / "small.dcm")
    uid = pydicom.dcmread(get_testdata_file("CT_small.dcm")).SeriesInstanceUID
    report = restore_dicom(tmp_path / "two", tmp_path / "sr", options(model=models["in2"], series_uid=uid))
    assert report.scale == (1, 2, 2)
    (output,) = (tmp_path / "sr").iterdir()
    assert pydicom.dcmread(output).Rows == 256
    with pytest.raises(OutputExistsError):
        restore_dicom(tmp_path / "two", tmp_path / "sr", options(model=models["in2"], series_uid=uid))


def test_uneven_series_is_resampled_on_request_and_written_as_a_regular_series(small_abdomen, tmp_path, models):
    """Slices moved to 0, 1, 2.5 and 6 mm: 5 planes 1.5 mm apart from 4 source slices, then x2 in-plane."""
    uneven = tmp_path / "uneven"
    uneven.mkdir()
    paths = sorted(small_abdomen.glob("CT.*"), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    first = pydicom.dcmread(paths[0]).ImagePositionPatient
    for path, offset in zip(paths, (0.0, 1.0, 2.5, 6.0)):
        dataset = pydicom.dcmread(path)
        dataset.ImagePositionPatient = [first[0], first[1], float(first[2]) + offset]
        dataset.save_as(uneven / path.name)
    with pytest.raises(UnsupportedInputError, match="non-uniform slice spacing.*--resample-irregular"):
        restore_dicom(uneven, tmp_path / "refused", options(model=models["in2"], scale=2))
    assert not (tmp_path / "refused").exists()
    output = tmp_path / "sr"
    report = restore_dicom(uneven, output, options(model=models["in2"], scale=2, resample_irregular=True))
    source, result = open_series(uneven, resample_irregular=True), open_series(output)
    assert source.shape == (5, 48, 40) and result.shape == (5, 96, 80) and result.resampling is None
    assert result.slice_spacing == pytest.approx(1.5, abs=1e-6)
    error = corner_points(result.affine, result.shape[::-1]) - corner_points(source.affine, source.shape[::-1])
    assert np.abs(error).max() < 1e-4
    assert any("slice steps of 1 to 3.5 mm made uniform" in note for note in report.notes)
    datasets = [pydicom.dcmread(p) for p in sorted(output.iterdir())]
    references = [d.SourceImageSequence[0].ReferencedSOPInstanceUID for d in datasets]
    assert references == [source.sop_instance_uids[k] for k in (0, 1, 2, 3, 3)]  # nearest along the normal
    assert "input resampled onto a regular grid (slice steps" in datasets[0].DerivationDescription


def test_pixel_padding_stays_padding_and_nothing_else_becomes_padding(fixtures_dir, tmp_path, models):
    source = fixtures_dir / "medical" / "ct_head_gantry_tilt" / "01.dcm"  # one slice: no tilt to detect
    padding = pydicom.dcmread(source).PixelPaddingValue  # -1500 outside the scanned circle
    restore_dicom(source, tmp_path / "sr", options(model=models["in2"], scale=2))
    before = open_series(source).read_volume()[0]
    after = open_series(tmp_path / "sr").read_volume()[0]
    mask = (before == padding).repeat(2, axis=0).repeat(2, axis=1)
    assert mask.any() and np.array_equal(after == padding, mask)


def test_restore_nifti_mr_in_plane_keeps_geometry_dtype_and_records_provenance(fixtures_dir, tmp_path, models):
    source = fixtures_dir / "medical" / "totalsegmentator" / "example_mr_sm.nii.gz"
    output = tmp_path / "mr_sr.nii.gz"
    report = restore_nifti(source, output, options(model=models["in2"]))  # isotropic 3 mm: in-plane
    assert report.scale == (2, 2, 1)
    before, after = nib.load(source), nib.load(output)
    assert after.shape == (234, 182, 20) and after.header.get_data_dtype() == before.header.get_data_dtype()
    for form in ("get_sform", "get_qform"):
        error = corner_points(getattr(after.header, form)(), after.shape) - corner_points(
            getattr(before.header, form)(), before.shape
        )
        assert np.abs(error).max() < 1e-4
    assert (int(after.header["sform_code"]), int(after.header["qform_code"])) == (
        int(before.header["sform_code"]),
        int(before.header["qform_code"]),
    )
    sidecar = json.loads((tmp_path / "mr_sr.json").read_text())
    assert sidecar["passes"][0]["phase"] == "psnr" and sidecar["modality_guess"] == "other"
    assert sidecar["normalization"]["method"] == "foreground-percentile-0.5-99.5"
    assert b"psnr" in after.header["descrip"].tobytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mr_sr.json", "mr_sr.nii.gz"]


def test_restore_nifti_ct_through_plane_uses_hounsfield_units(fixtures_dir, tmp_path, models):
    full = nib.load(fixtures_dir / "medical" / "totalsegmentator" / "example_ct_sm.nii.gz")
    source = tmp_path / "ct.nii.gz"
    nib.save(full.slicer[40:80, 30:62, :], source)  # a real 40x32x30 crop, affine moved by nibabel
    output = tmp_path / "ct_sr.nii"
    report = restore_nifti(source, output, options(model=models["t21"], slice_scale=2))
    assert report.scale == (1, 1, 2) and report.normalization["method"] == "ct-hu--1024-3071"
    before, result = nib.load(source), nib.load(output)
    assert result.shape == (40, 32, 60) and np.allclose(result.header.get_zooms(), (3.0, 3.0, 1.5))
    error = corner_points(result.affine, result.shape) - corner_points(before.affine, before.shape)
    assert np.abs(error).max() < 1e-4
    assert result.header.get_data_dtype() == np.int16
    # No silent choice: the report and the sidecar say which pass ran, along which axis, and why.
    assert report.notes[0] == ("through-plane x2 along axis 2 by t21 (factor from --slice-scale 2); slice profile not"
                               " recorded by the model")
    assert report.notes[1] == "slices along axis 2: 3 mm -> 1.5 mm (x2: x2 by the model); --slice-scale 2"
    assert json.loads((tmp_path / "ct_sr.json").read_text())["passes"][0]["factor_from"] == "--slice-scale 2"


def test_restore_nifti_4d_series_and_its_unsupported_options(tmp_path, models):
    source = tmp_path / "functional.nii"  # 17x21x3 x 4 time points, 4x4x8 mm, scl_slope/inter set
    full = nib.load(Path(data_path) / "functional.nii")
    nib.save(full.slicer[..., :4], source)
    with pytest.raises(ConfigError, match="option --series does not apply to NIfTI"):
        restore_nifti(source, tmp_path / "f.nii", options(model=models["t21"], series_uid="1.2.3"))
    with pytest.raises(ConfigError, match="name it .nii or .nii.gz"):
        restore_nifti(source, tmp_path / "f.img", options(model=models["t21"]))
    assert [p.name for p in tmp_path.iterdir()] == ["functional.nii"]
    report = restore_nifti(source, tmp_path / "f.nii", options(model=models["t21"]))  # 8 mm axis: through-plane
    result = nib.load(tmp_path / "f.nii")
    assert report.scale == (1, 1, 2) and result.shape == (17, 21, 6, 4)
    scaled = nib.load(source).dataobj  # nibabel rescaled the crop on save: compare with what it wrote
    assert (result.dataobj.slope, result.dataobj.inter) == (scaled.slope, scaled.inter) and scaled.slope != 1.0


def test_format_detection(abdomen, fixtures_dir, tmp_path):
    assert sniff_dicom(abdomen) and sniff_dicom(next(abdomen.glob("CT.*")))
    assert not sniff_dicom(fixtures_dir / "medical" / "totalsegmentator")
    assert sniff_nifti(fixtures_dir / "medical" / "totalsegmentator" / "example_mr_sm.nii.gz")
    assert not sniff_nifti(abdomen) and not sniff_nifti(tmp_path / "missing.nii")


def test_two_passes_round_to_the_stored_dtype_once(tmp_path, models):
    """In-plane then through-plane on an int16 MR equals its float32 copy's output rounded once.

    The float32 copy is never rounded, so equality means the int16 run did not round between
    the passes (both normalise by the same foreground percentiles of the same values).
    Tolerance: 1 where a value lies within float32 rounding of a .5 tie (the float32 output is
    cast before it is rounded here); such voxels are rare (< 0.1 %).
    """
    t1 = nib.load(Path(data_path) / "anatomical.nii")
    stored = np.asarray(t1.dataobj)[4:28, 8:32, 8:16].astype(np.int16)
    for name, values in (("int16", stored), ("float32", stored.astype(np.float32))):
        nib.save(nib.Nifti1Image(values, t1.affine), tmp_path / f"{name}.nii.gz")
    both = options(model=models["in2"], slice_model=models["t21"], scale=2, slice_scale=2)
    methods = {restore_nifti(tmp_path / f"{name}.nii.gz", tmp_path / f"{name}_sr.nii.gz", both).normalization["method"]
               for name in ("int16", "float32")}
    assert methods == {"foreground-percentile-0.5-99.5"}
    rounded = np.asarray(nib.load(tmp_path / "int16_sr.nii.gz").dataobj)
    unrounded = np.asarray(nib.load(tmp_path / "float32_sr.nii.gz").dataobj)
    assert rounded.dtype == np.int16 and unrounded.dtype == np.float32 and rounded.shape == (48, 48, 16)
    difference = np.abs(rounded.astype(np.float64) - np.rint(unrounded))
    assert difference.max() <= 1 and np.mean(difference > 0) < 1e-3
