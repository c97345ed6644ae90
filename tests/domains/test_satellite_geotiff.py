"""GeoTiffReader and GeoTiffWriter through the engine, with an analytic nearest-neighbour network.

Nearest upsampling makes the output known exactly, so every pixel, the mask and
every metadata invariant (G1-G12, G14) are asserted on the committed fixtures.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import tifffile
import torch
from affine import Affine
from rio_cogeo.cogeo import cog_validate
from torch import nn

from srrestore.domains.satellite import GeoTiffReader, GeoTiffWriter, derive_output_meta
from srrestore.domains.satellite.geotiff import creation_options, overview_factors
from srrestore.engine import Normalization, UpscaleOptions, upscale, valid_mask
from srrestore.engine.region import Region
from srrestore.errors import ConfigError, InputReadError, OutputWriteError, UnsupportedInputError
from srrestore.models.spec import ModelSpec

FIXTURES = [
    "landsat_rgb_nodata0.tif",
    "goes_mask_jpeg.tif",
    "rgbn_nodata0.tif",
    "s1_gamma0_nan.tif",
    "s1_grd_gcps.tif",
    "landsat_blue_uint16_point.tif",
]
BLOCK = 32  # output block side: the engine's 24-px tiles (48 px out) cut blocks


class NearestUpsampler(nn.Module):
    """``(B, C, H, W) -> (B, C, sH, sW)`` by pixel repetition: an exactly known output."""

    def __init__(self, channels: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.spec = ModelSpec(scale=(scale, scale), in_channels=channels, out_channels=channels, receptive_field=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(self.scale, dim=-2).repeat_interleave(self.scale, dim=-1)


class ThreadRecordingReader(GeoTiffReader):
    """Records the threads that touch the dataset (G14)."""

    threads: set[int]

    def read(self, region: Region) -> np.ndarray:
        self.threads.add(threading.get_ident())
        return super().read(region)

    def read_valid(self, region: Region) -> np.ndarray:
        self.threads.add(threading.get_ident())
        return super().read_valid(region)


def identity_normalization(dtype: str, channels: int) -> Normalization:
    if np.issubdtype(np.dtype(dtype), np.integer):
        return Normalization.for_dtype(dtype, channels)
    return Normalization.fixed(0.0, 1.0, channels)


def nearest_restore(source: Path, target: Path, scale: int = 2, cog: bool = False, **writer_options) -> dict:
    """Upscale ``source`` into ``target`` with nearest repetition, as the pipeline does; returns thread ids."""
    with ThreadRecordingReader(source) as reader:
        reader.threads = set()
        network = NearestUpsampler(reader.spec.channels, scale)
        normalization = identity_normalization(reader.spec.dtype, reader.spec.channels)
        meta = derive_output_meta(reader.meta, scale)
        with GeoTiffWriter(target, meta, cog=cog, **{"block_size": BLOCK, **writer_options}) as writer:
            writes: set[int] = set()
            original = writer.write

            def write(region: Region, array: np.ndarray) -> None:
                writes.add(threading.get_ident())
                original(region, array)

            writer.write = write  # type: ignore[method-assign]
            upscale(reader, writer, network, network.spec, normalization,
                    UpscaleOptions(tile_size=24, batch_size=2, device="cpu"))
            if reader.meta.has_mask:
                with GeoTiffReader(source) as mask_source:
                    writer.write_mask_from(mask_source)
    return {"reader": reader.threads, "writer": writes}


def expected_output(source: Path, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-upsampled values and mask of ``source`` (masked pixels keep their input values)."""
    with rasterio.open(source) as dataset:
        values = dataset.read()
        valid = valid_mask(values, dataset.nodata)
        if dataset.mask_flag_enums[0][0] == rasterio.enums.MaskFlags.per_dataset:
            valid &= dataset.read_masks(1) > 0
    grow = np.ones((1, scale, scale), dtype=values.dtype)
    return np.kron(values, grow), np.kron(valid, np.ones((scale, scale), dtype=bool))


def without(tags: dict, prefixes: tuple[str, ...]) -> dict:
    return {key: value for key, value in tags.items() if not key.startswith(prefixes)}


@pytest.fixture
def satellite(fixtures_dir) -> Path:
    return fixtures_dir / "satellite"


# -- reader ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURES)
def test_reader_reads_windows_of_stored_values(satellite, name):
    region = Region((5, 7), (61, 90))
    with GeoTiffReader(satellite / name) as reader, rasterio.open(satellite / name) as dataset:
        assert reader.spec.channels == dataset.count
        assert reader.spec.shape == (dataset.height, dataset.width)
        assert reader.spec.dtype == dataset.dtypes[0]
        window = rasterio.windows.Window(7, 5, 83, 56)
        values = reader.read(region)
        np.testing.assert_array_equal(values, dataset.read(window=window))
        assert values.dtype == np.dtype(dataset.dtypes[0])
        valid = reader.read_valid(region)  # band by band
        assert valid.shape == (dataset.count, 56, 83) and valid.dtype == bool
        np.testing.assert_array_equal(valid.all(axis=0), expected_output(satellite / name, 1)[1][region.slices()])


def test_reader_mask_band_and_nan_nodata_mark_invalid_pixels(satellite):
    with GeoTiffReader(satellite / "goes_mask_jpeg.tif") as reader:
        assert reader.meta.has_mask and reader.meta.nodata is None
        valid = reader.read_valid(Region((0, 0), reader.spec.shape))
        assert 0.3 < valid.mean() < 0.9 and (valid == valid[0]).all()  # the edge of the Earth's disk, every band
    with GeoTiffReader(satellite / "s1_gamma0_nan.tif") as reader:
        assert np.isnan(reader.spec.nodata)
        region = Region((0, 0), reader.spec.shape)
        np.testing.assert_array_equal(reader.read_valid(region), ~np.isnan(reader.read(region)))


def test_sample_is_decimated_and_excludes_nodata(satellite):
    with GeoTiffReader(satellite / "landsat_blue_uint16_point.tif") as reader:
        sample = reader.sample(max_side=40)
        assert sample.values.shape == (1, 28, 32)  # step ceil(128 / 40) = 4
        assert 0 < sample.valid.mean() < 1
        assert (sample.values[:, sample.valid] != 0).all() and (sample.values[:, ~sample.valid] == 0).all()
    with GeoTiffReader(satellite / "s1_gamma0_nan.tif") as reader:
        sample = reader.sample()
        assert sample.values.shape == (1, 128, 128)
        assert np.isfinite(sample.values[:, sample.valid]).all()


def write_raster(path: Path, array: np.ndarray, **profile) -> Path:
    profile = dict(driver="GTiff", width=array.shape[2], height=array.shape[1], count=array.shape[0],
                   dtype=array.dtype, crs="EPSG:32618", transform=Affine(10, 0, 500000, 0, -10, 4000000)) | profile
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(array)
    return path


def test_reader_refuses_unsupported_dtypes_and_palettes(tmp_path):
    complex_path = write_raster(tmp_path / "complex.tif", np.ones((1, 16, 16), np.complex64))
    with pytest.raises(UnsupportedInputError, match="complex64"):
        GeoTiffReader(complex_path)
    assert GeoTiffReader(write_raster(tmp_path / "f64.tif", np.ones((1, 16, 16), np.float64))).spec.dtype == "float64"
    palette_path = write_raster(tmp_path / "palette.tif", np.zeros((1, 16, 16), np.uint8))
    with rasterio.open(palette_path, "r+") as dataset:
        dataset.write_colormap(1, {0: (255, 0, 0, 255), 1: (0, 0, 255, 255)})
    with pytest.raises(UnsupportedInputError, match="palette"):
        GeoTiffReader(palette_path)


def test_reader_reports_missing_and_truncated_files(tmp_path, satellite):
    with pytest.raises(InputReadError, match="missing.tif"):
        GeoTiffReader(tmp_path / "missing.tif")
    data = (satellite / "landsat_blue_uint16_point.tif").read_bytes()
    header_only = tmp_path / "header.tif"
    header_only.write_bytes(data[:200])
    with pytest.raises(InputReadError):
        GeoTiffReader(header_only)
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputReadError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with GeoTiffReader(truncated) as reader:
            reader.read(Region((0, 0), reader.spec.shape))


# -- writer ----------------------------------------------------------------------------


@pytest.mark.parametrize("cog", [False, True], ids=["gtiff", "cog"])
@pytest.mark.parametrize("name", FIXTURES)
def test_nearest_round_trip_keeps_pixels_geometry_and_metadata(satellite, tmp_path, name, cog):
    source, target = satellite / name, tmp_path / "out.tif"
    threads = nearest_restore(source, target, cog=cog)
    values, valid = expected_output(source, 2)
    with rasterio.open(source) as src, rasterio.open(target) as dst:
        # Pixels, nodata and mask (G5, G6).
        np.testing.assert_array_equal(dst.read(), values)
        assert dst.dtypes == src.dtypes
        assert dst.nodata == src.nodata or (np.isnan(dst.nodata) and np.isnan(src.nodata))
        np.testing.assert_array_equal(dst.dataset_mask() > 0, valid)
        assert (dst.dataset_mask() > 0).mean() == (src.dataset_mask() > 0).mean()
        if src.mask_flag_enums[0] == [rasterio.enums.MaskFlags.per_dataset]:
            assert dst.mask_flag_enums[0] == [rasterio.enums.MaskFlags.per_dataset]
            np.testing.assert_array_equal(dst.read_masks(1), np.kron(src.read_masks(1), np.ones((2, 2), np.uint8)))
        # Geometry (G1, G7).
        assert dst.crs == src.crs
        if src.gcps[0]:
            assert [(g.row, g.col, g.x, g.y) for g in dst.gcps[0]] == [(2 * g.row, 2 * g.col, g.x, g.y)
                                                                       for g in src.gcps[0]]
            assert dst.gcps[1] == src.gcps[1]
        else:
            assert dst.transform == src.transform @ Affine.scale(0.5)
            assert dst.bounds == src.bounds
        # Metadata profile does not carry (G2, G3).
        assert without(dst.tags(), ("OVR_RESAMPLING_ALG",)) == without(src.tags(), ("OVR_RESAMPLING_ALG",))
        assert dst.tags()["AREA_OR_POINT"] == src.tags()["AREA_OR_POINT"]
        for band in range(1, src.count + 1):
            assert dst.tags(band) == without(src.tags(band), ("STATISTICS_",))
        assert (dst.descriptions, dst.colorinterp) == (src.descriptions, src.colorinterp)
        assert (dst.scales, dst.offsets, dst.units) == (src.scales, src.offsets, src.units)
        # Layout (G9, G11, G12).
        structure = dst.tags(ns="IMAGE_STRUCTURE")
        lossless = src.compression is None or src.compression.name in ("lzw", "deflate")
        if src.compression is None:
            assert dst.compression is None
        else:
            assert dst.compression == (src.compression if lossless else rasterio.enums.Compression.deflate)
            assert structure["PREDICTOR"] == ("3" if src.dtypes[0] == "float32" else "2")
        if cog:
            assert structure["LAYOUT"] == "COG"
            assert dst.block_shapes[0] == (512, 512)
            assert cog_validate(target)[0]
        else:
            assert dst.block_shapes[0] == (BLOCK, BLOCK) and dst.profile["tiled"]
            assert bool(dst.overviews(1)) == bool(src.overviews(1))
            assert dst.tags().get("OVR_RESAMPLING_ALG") == ("AVERAGE" if src.overviews(1) else None)
    # One thread reads, another writes (G14).
    assert len(threads["reader"]) == 1 and len(threads["writer"]) == 1
    assert threads["reader"] != threads["writer"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]  # no staging file left


def test_int16_round_trip_is_exact(tmp_path, satellite):
    with rasterio.open(satellite / "landsat_blue_uint16_point.tif") as dataset:
        profile = dataset.profile
        stored = dataset.read().astype(np.int32) - 30000
    stored = np.where(stored == -30000, -32768, stored).astype(np.int16)  # nodata 0 -> -32768
    source = write_raster(tmp_path / "int16.tif", stored, crs=profile["crs"], transform=profile["transform"],
                          nodata=-32768, compress="deflate", predictor=2)
    nearest_restore(source, tmp_path / "out.tif")
    with rasterio.open(tmp_path / "out.tif") as dst:
        assert dst.dtypes[0] == "int16" and dst.nodata == -32768
        np.testing.assert_array_equal(dst.read(), expected_output(source, 2)[0])
        assert dst.read().min() == -32768 and dst.read().max() > 0


def test_pixel_is_point_tiepoint_moves_by_half_a_new_pixel(satellite, tmp_path):
    source = satellite / "landsat_blue_uint16_point.tif"
    nearest_restore(source, tmp_path / "out.tif")

    def raw(path: Path) -> tuple[tuple[float, ...], int]:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]
            return page.tags["ModelTiepointTag"].value, page.geotiff_tags["GTRasterTypeGeoKey"]

    (_, _, _, x, y, _), kind = raw(source)
    (_, _, _, x2, y2, _), kind2 = raw(tmp_path / "out.tif")
    assert int(kind) == int(kind2) == 2  # RasterPixelIsPoint
    with rasterio.open(source) as dataset:
        a, e = dataset.transform.a, dataset.transform.e
    # G2: tie' = tie + (1/s - 1)/2 * res; the corner (and every bound) is unchanged.
    assert (x2, y2) == pytest.approx((x + (0.5 - 1) / 2 * a, y + (0.5 - 1) / 2 * e), abs=1e-9)


def test_scale_three_and_four(satellite, tmp_path):
    source = satellite / "rgbn_nodata0.tif"
    for scale in (3, 4):
        target = tmp_path / f"x{scale}.tif"
        nearest_restore(source, target, scale=scale)
        with rasterio.open(source) as src, rasterio.open(target) as dst:
            assert dst.shape == (scale * src.height, scale * src.width)
            assert dst.bounds == pytest.approx(src.bounds, abs=1e-9)
            np.testing.assert_array_equal(dst.read(), expected_output(source, scale)[0])


def header_magic(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[2:4], "little")


@pytest.mark.parametrize("cog", [False, True], ids=["gtiff", "cog"])
def test_bigtiff_switches_on_above_the_threshold(satellite, tmp_path, cog):
    source = satellite / "rgbn_nodata0.tif"
    with GeoTiffReader(source) as reader:
        meta = derive_output_meta(reader.meta, 2)
    output_bytes = meta.width * meta.height * meta.count
    assert creation_options(meta)["BIGTIFF"] == "IF_SAFER"
    assert creation_options(meta, bigtiff_threshold=output_bytes - 1)["BIGTIFF"] == "YES"
    assert creation_options(meta, bigtiff_threshold=output_bytes)["BIGTIFF"] == "IF_SAFER"
    nearest_restore(source, tmp_path / "classic.tif", cog=cog)
    nearest_restore(source, tmp_path / "big.tif", cog=cog, bigtiff_threshold=output_bytes - 1)
    assert header_magic(tmp_path / "classic.tif") == 42
    assert header_magic(tmp_path / "big.tif") == 43  # G10
    with rasterio.open(tmp_path / "big.tif") as big, rasterio.open(tmp_path / "classic.tif") as classic:
        np.testing.assert_array_equal(big.read(), classic.read())


def test_overviews_go_down_to_one_block(satellite, tmp_path):
    assert overview_factors(1000, 300, 256) == [2, 4]
    assert overview_factors(100, 100, 512) == [2]
    nearest_restore(satellite / "landsat_blue_uint16_point.tif", tmp_path / "out.tif", block_size=64)
    with rasterio.open(tmp_path / "out.tif") as dst:
        assert dst.overviews(1) == [2, 4]  # 256 / 4 = 64: the smallest level fits one block (G11)
        assert dst.tags()["OVR_RESAMPLING_ALG"] == "AVERAGE"


def test_block_size_must_be_a_multiple_of_16(satellite, tmp_path):
    with GeoTiffReader(satellite / "rgbn_nodata0.tif") as reader:
        with pytest.raises(ConfigError, match="multiple of 16"):
            GeoTiffWriter(tmp_path / "out.tif", reader.meta, block_size=40)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("cog", [False, True], ids=["gtiff", "cog"])
def test_failures_leave_no_file(satellite, tmp_path, cog):
    with GeoTiffReader(satellite / "rgbn_nodata0.tif") as reader:
        meta = derive_output_meta(reader.meta, 2)
    with pytest.raises(RuntimeError, match="engine failed"):
        with GeoTiffWriter(tmp_path / "out.tif", meta, cog=cog, block_size=BLOCK) as writer:
            writer.write(Region((0, 0), (40, 40)), np.ones((4, 40, 40), np.uint8))
            raise RuntimeError("engine failed")
    assert not list(tmp_path.iterdir())
    with pytest.raises(OutputWriteError, match="partly written"):
        with GeoTiffWriter(tmp_path / "out.tif", meta, cog=cog, block_size=BLOCK) as writer:
            writer.write(Region((0, 0), (40, 40)), np.ones((4, 40, 40), np.uint8))
    assert not list(tmp_path.iterdir())


def test_writer_reports_an_unwritable_path(satellite, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with GeoTiffReader(satellite / "rgbn_nodata0.tif") as reader:
        with pytest.raises(OutputWriteError, match="cannot create"):
            GeoTiffWriter(tmp_path / "file" / "out.tif", reader.meta)
