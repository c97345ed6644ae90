"""Derived DICOM series (D3-D10, C1, I1): real slices through the engine with a nearest-neighbour network.

A nearest-neighbour "network" makes every output value known exactly: the
restored volume must equal the input repeated ``s`` times along each factor axis.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian
from srrestore.domains.medical.dicom_series import DicomSeries, open_series
from srrestore.domains.medical.dicom_writer import DicomSeriesWriter, derive_series
from srrestore.domains.medical.geometry import corner_points, slice_normal
from srrestore.domains.medical.intensity import ct_normalization
from torch import nn
from torch.nn import functional as F

from srrestore.engine import ArrayReader, UpscaleOptions, upscale
from srrestore.models.spec import ModelSpec


class Nearest(nn.Module):
    """``(B, C, H, W) -> (B, C, H*sy, W*sx)`` by repetition, times ``gain``."""

    def __init__(self, scale: tuple[int, int], gain: float = 1.0) -> None:
        super().__init__()
        self.scale, self.gain = scale, gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="nearest") * self.gain


def restore(series: DicomSeries, folder: Path, factors: tuple[int, int, int], gain: float = 1.0) -> np.ndarray:
    """Write ``series`` upscaled by ``factors`` (slice, row, column) into ``folder``; return the input volume."""
    through, row, _ = factors
    scale, axes = ((through, 1), (0, 1)) if through > 1 else ((row, row), (1, 2))
    volume = series.read_volume()[None]
    normalization = ct_normalization(series.slope, series.intercept)
    derived = derive_series(series, factors, "test: nearest neighbour (PSNR phase)")
    writer = DicomSeriesWriter(folder, derived)
    upscale(
        ArrayReader(volume, series.padding_value),
        writer,
        Nearest(scale, gain),
        ModelSpec(scale, 1, 1, 0),
        normalization,
        UpscaleOptions(plane_axes=axes, tile_size=256, device="cpu"),
    )
    writer.close()
    return volume[0]


@pytest.fixture(scope="module")
def abdomen(fixtures_dir) -> Path:
    return fixtures_dir / "medical" / "ct_abdomen_j2k"


@pytest.fixture(scope="module")
def in_plane(abdomen, tmp_path_factory):
    """(source series, output folder, input volume) for in-plane x2."""
    folder = tmp_path_factory.mktemp("in_plane")
    series = open_series(abdomen)
    return series, folder, restore(series, folder, (1, 2, 2))


@pytest.fixture(scope="module")
def through_plane(abdomen, tmp_path_factory):
    """(source series, output folder, input volume) for through-plane x2."""
    folder = tmp_path_factory.mktemp("through_plane")
    series = open_series(abdomen)
    return series, folder, restore(series, folder, (2, 1, 1))


def read_all(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(folder.iterdir())]


@pytest.mark.parametrize("case", ["in_plane", "through_plane"])
def test_i1_nearest_network_round_trips_the_stored_values_bit_exactly(case, request):
    _, folder, volume = request.getfixturevalue(case)
    factors = (1, 2, 2) if case == "in_plane" else (2, 1, 1)
    restored = open_series(folder).read_volume()
    expected = volume
    for axis, factor in enumerate(factors):
        expected = expected.repeat(factor, axis=axis)
    assert restored.dtype == volume.dtype and np.array_equal(restored, expected)


@pytest.mark.parametrize("case", ["in_plane", "through_plane"])
def test_c1_d3_output_re_reads_with_the_scaled_geometry_and_the_same_bounds(case, request):
    series, folder, _ = request.getfixturevalue(case)
    factors = (1, 2, 2) if case == "in_plane" else (2, 1, 1)
    output = open_series(folder)
    assert output.shape == tuple(n * f for n, f in zip(series.shape, factors))
    shape_before = series.shape[::-1]  # affine index order (column, row, slice)
    shape_after = output.shape[::-1]
    assert np.abs(corner_points(output.affine, shape_after) - corner_points(series.affine, shape_before)).max() < 1e-4
    assert output.slice_spacing == pytest.approx(series.slice_spacing / factors[0], abs=1e-6)
    assert output.pixel_spacing == pytest.approx(
        (series.pixel_spacing[0] / factors[1], series.pixel_spacing[1] / factors[2])
    )
    # every new slice lies on the line through the first one along the step
    normal = slice_normal(output.header.ImageOrientationPatient)
    positions = np.array([h.ImagePositionPatient for h in output.headers], dtype=float)
    offsets = positions - positions[0]
    assert np.abs(offsets - np.outer(offsets @ normal, normal)).max() < 1e-6


def test_d4_slice_attributes(in_plane, through_plane):
    for (series, folder, _), thickness in ((in_plane, 3.0), (through_plane, 1.0)):
        datasets = read_all(folder)
        assert [d.InstanceNumber for d in datasets] == list(range(1, len(datasets) + 1))
        normal = slice_normal(datasets[0].ImageOrientationPatient)
        projections = [normal @ np.array(d.ImagePositionPatient, dtype=float) for d in datasets]
        assert np.all(np.diff(projections) > 0)  # InstanceNumber runs in spatial order
        for dataset, projection in zip(datasets, projections):
            assert float(dataset.SliceThickness) == pytest.approx(thickness)  # in-plane: kept; through: spacing / 2
            assert float(dataset.SliceLocation) == pytest.approx(projection, abs=1e-6)
            assert "SpacingBetweenSlices" not in dataset  # not in the source, not in the CT Image IOD
            assert dataset.ImageOrientationPatient == series.header.ImageOrientationPatient
    assert "source SliceThickness 3 mm, slice spacing 2 mm" in read_all(through_plane[1])[0].DerivationDescription


def test_d5_to_d7_uids_study_image_type_and_derivation(in_plane):
    series, folder, _ = in_plane
    datasets = read_all(folder)
    source_uids = set(series.sop_instance_uids)
    new_uids = [d.SOPInstanceUID for d in datasets]
    assert len(set(new_uids)) == len(new_uids) and not source_uids & set(new_uids)
    assert len({d.SeriesInstanceUID for d in datasets}) == 1 and datasets[0].SeriesInstanceUID != series.series_uid
    for dataset, source in zip(datasets, series.headers):
        assert dataset.file_meta.MediaStorageSOPInstanceUID == dataset.SOPInstanceUID
        assert dataset.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage, from the source file meta
        for keyword in ("StudyInstanceUID", "FrameOfReferenceUID", "PatientID", "StudyDate", "AccessionNumber"):
            assert dataset.get(keyword) == source.get(keyword)
        assert dataset.SeriesNumber == 1000  # the source has none
        assert dataset.SeriesDescription == "CT Body 3.0 SR x2"
        assert list(dataset.ImageType) == ["DERIVED", "SECONDARY", "AXIAL", "CT_SOM5 SPI"]
        assert "nearest neighbour (PSNR phase)" in dataset.DerivationDescription
        code = dataset.DerivationCodeSequence[0]
        assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
            "113085",
            "DCM",
            "Spatial resampling",
        )
        reference = dataset.SourceImageSequence
        assert len(reference) == 1
        assert reference[0].ReferencedSOPInstanceUID == source.file_meta.MediaStorageSOPInstanceUID
        assert reference[0].PurposeOfReferenceCodeSequence[0].CodeValue == "121322"


def test_d8_to_d10_pixel_module_rescale_window_and_encoding(in_plane):
    series, folder, _ = in_plane
    for dataset, source in zip(read_all(folder), series.headers):
        for keyword in (
            "BitsAllocated",
            "BitsStored",
            "HighBit",
            "PixelRepresentation",
            "PhotometricInterpretation",
            "RescaleSlope",
            "RescaleIntercept",
            "RescaleType",
            "WindowCenter",
            "WindowWidth",
        ):
            assert dataset.get(keyword) == source.get(keyword), keyword
        assert (dataset.Rows, dataset.Columns) == (1024, 1024)
        assert [float(v) for v in dataset.PixelSpacing] == [0.48828125, 0.48828125]
        assert "SmallestImagePixelValue" not in dataset and "LargestImagePixelValue" not in dataset
        assert not any(element.tag.is_private for element in dataset)
        assert dataset.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert "LossyImageCompression" not in dataset  # JPEG 2000 lossless source


def test_d8_values_are_clipped_into_bits_stored(abdomen, tmp_path):
    series = open_series(abdomen)
    restore(series, tmp_path, (1, 2, 2), gain=3.0)  # pushes values past 4095
    restored = open_series(tmp_path).read_volume()
    assert restored.max() == 4095 and restored.min() >= 0


def test_d9_d10_lossy_source_marks_the_output_lossy(tmp_path):
    source = open_series(Path(get_testdata_file("693_J2KI.dcm")))  # JPEG 2000 (lossy), LossyImageCompression 01
    assert source.lossy
    restore(source, tmp_path, (1, 2, 2))
    (output,) = read_all(tmp_path)
    assert output.LossyImageCompression == "01"
    assert output.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert output.BitsStored == source.header.BitsStored


def test_d4_spacing_between_slices_is_rewritten_when_the_source_has_it(tmp_path):
    source = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    normal = slice_normal(source.ImageOrientationPatient)
    folder = tmp_path / "mr"
    folder.mkdir()
    for index in range(3):  # a 3-slice MR series, 1.5 mm apart, with SpacingBetweenSlices
        dataset = copy.deepcopy(source)
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        dataset.ImagePositionPatient = list(np.array(source.ImagePositionPatient, dtype=float) + 1.5 * index * normal)
        dataset.SpacingBetweenSlices = 1.5
        dataset.save_as(folder / f"{index}.dcm")
    series = open_series(folder)
    (tmp_path / "out").mkdir()
    restore(series, tmp_path / "out", (2, 1, 1))
    datasets = read_all(tmp_path / "out")
    assert len(datasets) == 6
    for dataset in datasets:
        assert float(dataset.SpacingBetweenSlices) == pytest.approx(0.75)
        assert float(dataset.SliceThickness) == pytest.approx(0.75)
        assert dataset.Modality == "MR" and dataset.SOPClassUID == series.sop_class_uid
