"""Per-format restore options: each pipeline takes the options it reads and refuses another format's."""

from __future__ import annotations

import pytest

from srrestore.errors import ConfigError
from srrestore.pipelines.medical.options import DicomOptions, VolumeOptions
from srrestore.pipelines.options import RestoreOptions
from srrestore.pipelines.satellite.options import GeoTiffOptions


def test_a_format_takes_its_own_options_from_the_command_lines_values():
    given = {"model": "m.safetensors", "scale": 2, "cog": False, "nodata": None, "slice_scale": 3,
             "slice_model": None, "series_uid": "1.2.3", "resample_irregular": False}
    dicom = DicomOptions.for_format(given, "DICOM")
    assert (dicom.model, dicom.scale, dicom.slice_scale, dicom.series_uid) == ("m.safetensors", 2, 3, "1.2.3")
    with pytest.raises(ConfigError, match="option --series does not apply to NIfTI inputs"):
        VolumeOptions.for_format(given, "NIfTI")


@pytest.mark.parametrize(("options", "kind", "refused"), [
    (GeoTiffOptions(cog=True), VolumeOptions, "--cog"),
    (GeoTiffOptions(nodata=0.0), RestoreOptions, "--nodata"),  # 0 is a value given, not "unset"
    (VolumeOptions(slice_scale=2), GeoTiffOptions, "--slice-scale"),
    (DicomOptions(resample_irregular=True), VolumeOptions, "--resample-irregular"),
])
def test_another_formats_option_is_refused_when_given(options, kind, refused):
    with pytest.raises(ConfigError, match=f"option {refused} does not apply to X inputs"):
        kind.for_format(options, "X")


def test_common_options_carry_over_and_unset_format_options_are_dropped():
    adopted = GeoTiffOptions.for_format(VolumeOptions(model="a", tile_size=64, overwrite=True), "GeoTIFF")
    assert type(adopted) is GeoTiffOptions and (adopted.model, adopted.tile_size, adopted.overwrite) == ("a", 64, True)
    same = GeoTiffOptions(cog=True)
    assert GeoTiffOptions.for_format(same, "GeoTIFF") is same


def test_a_name_no_format_knows_is_refused():
    with pytest.raises(ConfigError, match="unknown option .frobnicate."):
        RestoreOptions.for_format({"frobnicate": 1}, "image")
