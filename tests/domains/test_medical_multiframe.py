"""Enhanced multi-frame DICOM (D11): read and write, on an Enhanced CT built from the real JPEG 2000 slices.

pydicom ships no enhanced CT/MR file that is available offline, so the test
builds one from the 4 real abdomen slices, with its frames stored out of
spatial order, the way scanners and highdicom lay out functional groups.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from srrestore.domains.medical.dicom_series import open_series
from srrestore.domains.medical.dicom_writer import DicomSeriesWriter, derive_series
from srrestore.domains.medical.geometry import corner_points
from srrestore.domains.medical.intensity import ct_normalization
from torch import nn
from torch.nn import functional as F

from srrestore.engine import ArrayReader, UpscaleOptions, upscale
from srrestore.errors import UnsupportedInputError
from srrestore.models.spec import ModelSpec

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
STORED_ORDER = [2, 0, 3, 1]  # frame i of the file is spatial slice STORED_ORDER[i]


def item(**attributes) -> Dataset:
    dataset = Dataset()
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    return dataset


def build_enhanced_ct(single_frame_folder: Path, path: Path) -> None:
    """Write an Enhanced CT multi-frame file holding the slices of a single-frame series."""
    reference = open_series(single_frame_folder)
    volume = reference.read_volume()
    first = reference.header
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = ENHANCED_CT
    dataset.SOPClassUID = ENHANCED_CT
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    dataset.FrameOfReferenceUID = first.FrameOfReferenceUID
    dataset.Modality, dataset.PatientName, dataset.SeriesNumber = "CT", "Test^Enhanced", 7
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    dataset.DimensionIndexSequence = Sequence(
        [item(DimensionIndexPointer=0x00209057, FunctionalGroupPointer=0x00209111)]
    )
    dataset.SharedFunctionalGroupsSequence = Sequence(
        [
            item(
                PlaneOrientationSequence=Sequence([item(ImageOrientationPatient=first.ImageOrientationPatient)]),
                PixelMeasuresSequence=Sequence(
                    [item(PixelSpacing=first.PixelSpacing, SliceThickness=3.0, SpacingBetweenSlices=2.0)]
                ),
                PixelValueTransformationSequence=Sequence(
                    [item(RescaleIntercept=-1024, RescaleSlope=1, RescaleType="HU")]
                ),
                FrameVOILUTSequence=Sequence([item(WindowCenter=40, WindowWidth=300)]),
                CTImageFrameTypeSequence=Sequence([item(FrameType=["ORIGINAL", "PRIMARY", "VOLUME", "NONE"])]),
            )
        ]
    )
    dataset.PerFrameFunctionalGroupsSequence = Sequence(
        [
            item(
                PlanePositionSequence=Sequence([item(ImagePositionPatient=reference.headers[k].ImagePositionPatient)]),
                FrameContentSequence=Sequence([item(InStackPositionNumber=k + 1, DimensionIndexValues=[k + 1])]),
            )
            for k in STORED_ORDER
        ]
    )
    dataset.set_pixel_data(volume[STORED_ORDER], "MONOCHROME2", 12, generate_instance_uid=False)
    dataset.save_as(path, enforce_file_format=True)


class Nearest(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=(2, 1), mode="nearest")


@pytest.fixture(scope="module")
def enhanced(fixtures_dir, tmp_path_factory) -> tuple[Path, Path]:
    folder = fixtures_dir / "medical" / "ct_abdomen_j2k"
    path = tmp_path_factory.mktemp("enhanced") / "enhanced.dcm"
    build_enhanced_ct(folder, path)
    return folder, path


@pytest.fixture(scope="module")
def restored(enhanced, tmp_path_factory):
    """Through-plane x2 of the enhanced file with a nearest-neighbour network."""
    _, path = enhanced
    series = open_series(path)
    folder = tmp_path_factory.mktemp("enhanced_out")
    writer = DicomSeriesWriter(folder, derive_series(series, (2, 1, 1), "test"))
    upscale(
        ArrayReader(series.read_volume()[None]),
        writer,
        Nearest(),
        ModelSpec((2, 1), 1, 1, 0),
        ct_normalization(series.slope, series.intercept),
        UpscaleOptions(plane_axes=(0, 1), device="cpu"),
    )
    writer.close()
    return series, folder


def test_d11_reads_geometry_from_functional_groups_and_sorts_frames(enhanced):
    single_frame_folder, path = enhanced
    single = open_series(single_frame_folder)
    multi = open_series(path)
    assert multi.multiframe and multi.frames == [1, 3, 0, 2]
    np.testing.assert_allclose(multi.affine, single.affine)
    assert (multi.slope, multi.intercept, multi.slice_thickness) == (1.0, -1024.0, 3.0)
    assert np.array_equal(multi.read_volume(), single.read_volume())


def test_d11_writes_one_multiframe_file_with_rebuilt_per_frame_groups(restored):
    series, folder = restored
    (path,) = sorted(folder.iterdir())
    dataset = pydicom.dcmread(path)
    assert dataset.NumberOfFrames == 8 and dataset.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    shared = dataset.SharedFunctionalGroupsSequence[0]
    measures = shared.PixelMeasuresSequence[0]
    assert float(measures.SliceThickness) == 1.0 and float(measures.SpacingBetweenSlices) == 1.0
    assert [float(v) for v in measures.PixelSpacing] == [float(v) for v in series.pixel_spacing]
    assert shared.PixelValueTransformationSequence[0].RescaleIntercept == -1024
    assert shared.FrameVOILUTSequence[0].WindowWidth == 300
    assert list(shared.CTImageFrameTypeSequence[0].FrameType) == ["DERIVED", "SECONDARY", "VOLUME", "NONE"]
    assert list(dataset.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert dataset.SOPClassUID == ENHANCED_CT and dataset.SeriesNumber == 1007
    for index, frame in enumerate(dataset.PerFrameFunctionalGroupsSequence):
        content = frame.FrameContentSequence[0]
        assert content.InStackPositionNumber == index + 1 and content.DimensionIndexValues == index + 1
        source = frame.DerivationImageSequence[0].SourceImageSequence[0]
        assert source.ReferencedSOPInstanceUID == series.header.SOPInstanceUID
        assert source.ReferencedFrameNumber == series.frames[index // 2] + 1


def test_d11_output_re_reads_with_the_same_bounds_and_exact_values(restored):
    series, folder = restored
    output = open_series(next(folder.iterdir()))
    assert output.shape == (8, 512, 512)
    assert (
        np.abs(
            corner_points(output.affine, output.shape[::-1]) - corner_points(series.affine, series.shape[::-1])
        ).max()
        < 1e-4
    )
    assert np.array_equal(output.read_volume(), series.read_volume().repeat(2, axis=0))


def test_multiframe_without_functional_groups_is_refused():
    from pydicom.data import get_testdata_file

    with pytest.raises(UnsupportedInputError, match="multi-frame file without per-frame plane positions"):
        open_series(Path(get_testdata_file("rtdose.dcm")))
