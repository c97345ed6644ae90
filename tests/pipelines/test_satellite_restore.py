"""restore_geotiff end to end with a real (tiny) generator on the committed satellite fixtures."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import tifffile
import torch
from affine import Affine
from rasterio.rpc import RPC
from rio_cogeo.cogeo import cog_validate

from srrestore.engine import valid_mask
from srrestore.errors import (
    GeometryWarning,
    InputReadError,
    OutputExistsError,
    OutputWriteError,
    UnsupportedInputError,
)
from srrestore.models.checkpoint import save_generator
from srrestore.models.generator import create_generator
from srrestore.pipelines.satellite.options import GeoTiffOptions
from srrestore.domains.satellite.sniff import sniff_geotiff
from srrestore.pipelines.satellite.restore import restore_geotiff

CHANNELS = {"landsat_rgb_nodata0.tif": 3, "rgbn_nodata0.tif": 4, "s1_gamma0_nan.tif": 1,
            "landsat_blue_uint16_point.tif": 1, "s1_grd_gcps.tif": 1, "goes_mask_jpeg.tif": 3}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[int, Path]:
    """Tiny x2 generators for 1, 3 and 4 channels, saved as checkpoints."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    return {
        channels: save_generator(folder / f"tiny{channels}.safetensors",
                                 create_generator("test-tiny", in_channels=channels, scale=2))
        for channels in (1, 3, 4)
    }


@pytest.fixture
def satellite(fixtures_dir) -> Path:
    return fixtures_dir / "satellite"


def run(source: Path, target: Path, model: Path, **options):
    return restore_geotiff(source, target, GeoTiffOptions(model=str(model), progress=False, **options))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_raster(source: Path, target: Path, values: np.ndarray | None = None, **changes) -> Path:
    """Copy a raster with its tags, changing pixels or profile entries (for edited fixtures)."""
    with rasterio.open(source) as src:
        profile = src.profile | changes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(target, "w", **profile) as dst:
                dst.update_tags(**src.tags())
                dst.write(src.read() if values is None else values)
    return target


@pytest.mark.parametrize("name", ["landsat_rgb_nodata0.tif", "rgbn_nodata0.tif", "s1_gamma0_nan.tif",
                                  "landsat_blue_uint16_point.tif"])
def test_restore_keeps_geometry_nodata_metadata_and_records_provenance(satellite, tmp_path, models, name):
    source, target = satellite / name, tmp_path / "out.tif"
    model = models[CHANNELS[name]]
    report = run(source, target, model)
    assert report.format == "geotiff" and report.scale == (2, 2) and report.output == target
    with rasterio.open(source) as src, rasterio.open(target) as dst:
        assert dst.shape == (2 * src.height, 2 * src.width) and dst.count == src.count
        assert dst.transform == src.transform @ Affine.scale(0.5) and dst.bounds == src.bounds  # G1
        assert dst.crs == src.crs and dst.dtypes == src.dtypes  # G5
        assert dst.tags()["AREA_OR_POINT"] == src.tags()["AREA_OR_POINT"]  # G2
        assert dst.descriptions == src.descriptions and dst.colorinterp == src.colorinterp  # G3
        values, nodata = dst.read(), src.nodata
        valid = valid_mask(values, nodata)
        expected = np.kron(valid_mask(src.read(), nodata), np.ones((2, 2), dtype=bool))
        np.testing.assert_array_equal(valid, expected)  # G5: NN-upsampled mask, same nodata fraction
        if np.isnan(nodata):
            assert np.isfinite(values[:, valid]).all() and np.isnan(values[:, ~valid]).all()
        else:
            assert (values[:, valid] != nodata).all() and (values[:, ~valid] == nodata).all()  # G6
        tags = dst.tags()
    assert tags["SRRESTORE_MODEL_SHA256"] == sha256(model)
    assert tags["SRRESTORE_SCALE"] == "2x2" and tags["SRRESTORE_MODEL"] == model.stem
    assert json.loads(tags["SRRESTORE_NORMALIZATION"]) == report.normalization


def test_uint8_uses_the_dtype_range_and_uint16_percentiles_of_valid_pixels(satellite, tmp_path, models):
    rgb = run(satellite / "landsat_rgb_nodata0.tif", tmp_path / "rgb.tif", models[3])
    assert rgb.normalization == {"offset": [0.0] * 3, "scale": [255.0] * 3, "method": "dtype-range"}
    blue = run(satellite / "landsat_blue_uint16_point.tif", tmp_path / "blue.tif", models[1])
    with rasterio.open(satellite / "landsat_blue_uint16_point.tif") as dataset:
        stored = dataset.read(1)
    low, high = np.percentile(stored[stored != 0].astype(np.float64), [0.5, 99.5])  # nodata 0 excluded
    assert blue.normalization["offset"] == [pytest.approx(low)]
    assert blue.normalization["scale"] == [pytest.approx(high - low)]
    assert blue.normalization["method"] == "percentile-0.5-99.5"


def test_the_nodata_sentinel_does_not_bleed_into_valid_pixels(satellite, tmp_path, models):
    source = satellite / "landsat_blue_uint16_point.tif"
    with rasterio.open(source) as dataset:
        stored = dataset.read()
    other = copy_raster(source, tmp_path / "nodata65535.tif", np.where(stored == 0, 65535, stored).astype(np.uint16),
                        nodata=65535)
    run(source, tmp_path / "zero.tif", models[1])
    run(other, tmp_path / "max.tif", models[1])
    with rasterio.open(tmp_path / "zero.tif") as zero, rasterio.open(tmp_path / "max.tif") as high:
        a, b = zero.read(), high.read()
    invalid = np.kron(stored == 0, np.ones((2, 2), dtype=bool))
    np.testing.assert_array_equal(a == 0, invalid)
    np.testing.assert_array_equal(b == 65535, invalid)
    # G6: valid outputs are bit-identical, except those kept off each sentinel (0 -> 1, 65535 -> 65534).
    differ = (a != b) & ~invalid
    kept_off = ((a == 1) & (b == 0)) | ((a == 65535) & (b == 65534))
    np.testing.assert_array_equal(differ, kept_off & ~invalid)
    assert 0 < invalid.mean() < 0.5


def test_tiles_match_whole_image_inference(satellite, tmp_path, models):
    source = satellite / "landsat_rgb_nodata0.tif"
    run(source, tmp_path / "tiled.tif", models[3], tile_size=48)
    run(source, tmp_path / "whole.tif", models[3], tile_size=160)
    with rasterio.open(tmp_path / "tiled.tif") as tiled, rasterio.open(tmp_path / "whole.tif") as whole:
        difference = np.abs(tiled.read().astype(int) - whole.read().astype(int))
    assert difference.max() <= 1 and np.count_nonzero(difference) <= 1e-3 * difference.size  # G13


def test_cog_output_is_valid_and_keeps_the_mask(satellite, tmp_path, models):
    source, target = satellite / "goes_mask_jpeg.tif", tmp_path / "out.tif"
    report = run(source, target, models[3], cog=True)
    assert any("JPEG" in note for note in report.notes)
    valid, errors, _ = cog_validate(target)
    assert valid, errors
    with rasterio.open(source) as src, rasterio.open(target) as dst:
        assert dst.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"  # G12
        assert dst.compression == rasterio.enums.Compression.deflate  # lossy JPEG replaced
        np.testing.assert_array_equal(dst.read_masks(1), np.kron(src.read_masks(1), np.ones((2, 2), np.uint8)))
        assert dst.crs == src.crs and dst.bounds == src.bounds
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]


def test_gcp_only_raster_keeps_rescaled_gcps_without_warning(satellite, tmp_path, models):
    source, target = satellite / "s1_grd_gcps.tif", tmp_path / "out.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeometryWarning)
        run(source, target, models[1])
    with rasterio.open(source) as src, rasterio.open(target) as dst:
        assert [(g.row, g.col, g.x, g.y, g.z) for g in dst.gcps[0]] == [
            (2 * g.row, 2 * g.col, g.x, g.y, g.z) for g in src.gcps[0]]  # G7
        assert dst.gcps[1] == src.gcps[1] and dst.crs is None
        assert dst.tags()["TIFFTAG_IMAGEDESCRIPTION"] == "Sentinel-1A IW GRD HR L1"


def test_rpcs_are_rescaled(satellite, tmp_path, models):
    rpcs = RPC(height_off=250.0, height_scale=400.0, lat_off=10.7, lat_scale=0.05, line_den_coeff=[1.0] + [0.0] * 19,
               line_num_coeff=[0.0, 0.02, -1.0] + [0.0] * 17, line_off=47.5, line_scale=48.0, long_off=78.1,
               long_scale=0.07, samp_den_coeff=[1.0] + [0.0] * 19, samp_num_coeff=[0.0, 1.0, 0.03] + [0.0] * 17,
               samp_off=63.5, samp_scale=64.0)
    source = copy_raster(satellite / "s1_grd_gcps.tif", tmp_path / "rpc.tif", gcps=None, rpcs=rpcs)
    with rasterio.open(source) as dataset:
        assert dataset.rpcs is not None and not dataset.gcps[0]
    assert sniff_geotiff(source)
    run(source, tmp_path / "out.tif", models[1])
    with rasterio.open(tmp_path / "out.tif") as dst:
        out = dst.rpcs
    assert (out.line_off, out.samp_off) == (2 * 48.0 - 0.5, 2 * 64.0 - 0.5)  # G8
    assert (out.line_scale, out.samp_scale) == (96.0, 128.0)
    assert out.samp_num_coeff == rpcs.samp_num_coeff and out.lat_off == rpcs.lat_off


def test_raster_without_crs_works_with_a_warning(satellite, tmp_path, models):
    source = copy_raster(satellite / "rgbn_nodata0.tif", tmp_path / "nocrs.tif", crs=None)
    with pytest.warns(GeometryWarning, match="no CRS"):
        report = run(source, tmp_path / "out.tif", models[4])
    assert any("no CRS" in note for note in report.notes)
    with rasterio.open(source) as src, rasterio.open(tmp_path / "out.tif") as dst:
        assert dst.crs is None and dst.transform == src.transform @ Affine.scale(0.5)


def test_sniff_geotiff_needs_georeferencing_or_damage(satellite, tmp_path):
    for name in CHANNELS:
        assert sniff_geotiff(satellite / name), name
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((16, 16), np.uint8))
    assert not sniff_geotiff(plain)  # a plain TIFF is an image
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes((satellite / "rgbn_nodata0.tif").read_bytes()[:100])
    assert sniff_geotiff(truncated)  # nothing opens it: the GeoTIFF reader names the damage
    assert not sniff_geotiff(tmp_path / "missing.tif")


def test_restore_dispatches_georeferenced_tiffs_here(satellite, tmp_path, models):
    from srrestore.pipelines.restore import restore

    (report,) = restore(satellite / "s1_grd_gcps.tif", tmp_path / "out.tif", model=str(models[1]))
    assert report.format == "geotiff"
    with rasterio.open(tmp_path / "out.tif") as dataset:
        assert len(dataset.gcps[0]) == 210


# -- bad input: a clear error, nothing written, the input untouched ---------------------------


def assert_only(folder: Path, names: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} == names


def test_truncated_raster_is_an_input_error(satellite, tmp_path, models):
    data = (satellite / "landsat_blue_uint16_point.tif").read_bytes()
    source = tmp_path / "truncated.tif"
    source.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputReadError, match="truncated.tif"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(source, tmp_path / "out.tif", models[1])
    assert_only(tmp_path, {"truncated.tif"})


def test_complex_raster_is_refused(tmp_path, models):
    source = tmp_path / "complex.tif"
    with rasterio.open(source, "w", driver="GTiff", width=8, height=8, count=1, dtype="complex64",
                       crs="EPSG:4326", transform=Affine(0.1, 0, 10, 0, -0.1, 50)) as dataset:
        dataset.write(np.ones((1, 8, 8), np.complex64))
    with pytest.raises(UnsupportedInputError, match="complex64"):
        run(source, tmp_path / "out.tif", models[1])
    assert_only(tmp_path, {"complex.tif"})


def test_model_channels_must_fit_the_bands(satellite, tmp_path, models):
    with pytest.raises(UnsupportedInputError, match="3 channels.*4"):
        run(satellite / "rgbn_nodata0.tif", tmp_path / "out.tif", models[3])
    assert_only(tmp_path, set())


def test_output_equal_to_input_is_refused(satellite, tmp_path, models):
    source = tmp_path / "in.tif"
    source.write_bytes((satellite / "rgbn_nodata0.tif").read_bytes())
    before = sha256(source)
    with pytest.raises(OutputWriteError, match="is the input"):
        run(source, source, models[4], overwrite=True)
    assert sha256(source) == before
    assert_only(tmp_path, {"in.tif"})


def test_existing_output_needs_overwrite(satellite, tmp_path, models):
    source, target = satellite / "rgbn_nodata0.tif", tmp_path / "out.tif"
    target.write_bytes(b"previous result")
    before = sha256(source)
    with pytest.raises(OutputExistsError, match="overwrite"):
        run(source, target, models[4])
    assert target.read_bytes() == b"previous result" and sha256(source) == before
    assert_only(tmp_path, {"out.tif"})
    run(source, target, models[4], overwrite=True)
    with rasterio.open(target) as dataset:
        assert dataset.count == 4
    assert_only(tmp_path, {"out.tif"})


def test_output_folder_that_cannot_be_written(satellite, tmp_path, models):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")
    with pytest.raises(OutputWriteError, match="not-a-folder"):
        run(satellite / "rgbn_nodata0.tif", blocker / "out.tif", models[4])
    assert blocker.read_text() == "a file where the output folder should be"


def test_read_only_output_folder(satellite, models, read_only_folder):
    with pytest.raises(OutputWriteError, match="permission denied"):
        run(satellite / "rgbn_nodata0.tif", read_only_folder / "out.tif", models[4])
    assert not list(read_only_folder.iterdir())
