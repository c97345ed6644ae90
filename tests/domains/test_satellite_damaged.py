"""Truncated and corrupt GeoTIFFs fail with one line naming the file (issue 15).

Each case damages a valid 64x64, 3-band uint16 GeoTIFF written in tmp_path, in
two byte layouts GDAL produces:

- ``ifd-first``: GDAL's CreateCopy (as gdal_translate and COGs): header, IFD and
  tag data first, pixel blocks after them;
- ``ifd-last``: rasterio's write mode (GDAL's Create): pixel blocks first, the
  IFD written at the end on close, so any cut loses it;

tiled (16x16 tiles, DEFLATE) and striped (4-row strips, uncompressed), and five
damages: cut to 50 % and 90 % of its bytes, cut to its metadata (everything
before the first pixel block), cut to the 8-byte TIFF header, and garbage after
the TIFF header.
"""

from __future__ import annotations

import functools
import struct
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
import tifffile
import torch
from affine import Affine
from click.testing import CliRunner

from srrestore.cli.main import cli
from srrestore.domains.satellite import GeoTiffReader
from srrestore.engine.region import Region
from srrestore.errors import InputReadError
from srrestore.models.checkpoint import save_generator
from srrestore.models.generator import create_generator

LAYOUTS = ("ifd-first", "ifd-last")
TILINGS = ("tiled", "striped")
DAMAGES = ("cut-50", "cut-90", "metadata-only", "tiff-header", "garbage")
SIDE = 64
PROFILE = dict(driver="GTiff", width=SIDE, height=SIDE, count=3, dtype="uint16", crs="EPSG:32618",
               transform=Affine(30, 0, 500000, 0, -30, 4000000))
BLOCKS = {"tiled": dict(tiled=True, blockxsize=16, blockysize=16, compress="deflate"),
          "striped": dict(tiled=False, blockysize=4)}
CONFUSING = ("list index out of range", "See previous exception")  # what rasterio says on its own


def valid_raster(folder: Path, layout: str, tiling: str) -> Path:
    """``folder/valid.tif``: a GeoTIFF of the given byte layout and blocks (see the module docstring)."""
    y, x = np.mgrid[:SIDE, :SIDE]
    values = np.stack([1000 + 10 * (y + x) + band for band in range(3)]).astype(np.uint16)
    written, valid = folder / "written.tif", folder / "valid.tif"
    with rasterio.open(written, "w", **PROFILE, **BLOCKS[tiling]) as dataset:
        dataset.write(values)
        dataset.update_tags(SOURCE="srrestore test")  # tags after the pixels: GDAL moves the IFD to the end
    if layout == "ifd-first":
        rasterio.shutil.copy(written, valid, driver="GTiff", **BLOCKS[tiling])
        written.unlink()
    else:
        written.rename(valid)
    with open(valid, "rb") as file:
        first_ifd = struct.unpack("<I", file.read(8)[4:])[0]  # little-endian classic TIFF header
    assert (first_ifd == 8) == (layout == "ifd-first")
    return valid


def damaged_raster(folder: Path, layout: str, tiling: str, damage: str) -> Path:
    """``folder/damaged.tif``: a valid raster with ``damage`` done to its bytes."""
    source = valid_raster(folder, layout, tiling)
    data = source.read_bytes()
    if damage == "cut-50":
        data = data[: len(data) // 2]
    elif damage == "cut-90":
        data = data[: len(data) * 9 // 10]
    elif damage == "metadata-only":
        with tifffile.TiffFile(source) as tiff:
            data = data[: min(tiff.pages[0].dataoffsets)]
    elif damage == "tiff-header":
        data = data[:8]
    else:
        noise = np.random.default_rng(0).integers(0, 256, len(data) - 8, dtype=np.uint8)
        data = data[:8] + noise.tobytes()
    path = folder / "damaged.tif"
    path.write_bytes(data)
    return path


def assert_one_clear_line(message: str, path: Path) -> None:
    assert len(message.splitlines()) == 1, message
    assert str(path) in message and "truncated or corrupt" in message, message
    assert not any(confusing in message for confusing in CONFUSING), message


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("tiling", TILINGS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_reader_reports_damage_in_one_line_naming_the_file(tmp_path, layout, tiling, damage):
    path = damaged_raster(tmp_path, layout, tiling, damage)
    whole = Region((0, 0), (SIDE, SIDE))
    with pytest.raises(InputReadError) as caught:
        with GeoTiffReader(path) as reader:  # fails here when the header or IFD is lost
            reader.sample()  # ... else at the first read reaching a damaged block
            reader.read(whole)
            reader.read_mask(whole)
    assert_one_clear_line(str(caught.value), path)


@pytest.mark.parametrize("call", ["tags", "read", "read_masks"])
def test_python_errors_from_rasterio_become_input_read_errors(tmp_path, monkeypatch, call):
    # rasterio raises IndexError (and other non-GDAL errors) on some corrupt metadata.
    path = valid_raster(tmp_path, "ifd-first", "tiled")

    def broken(*args, **kwargs):
        raise IndexError("list index out of range")

    if call == "tags":
        monkeypatch.setattr(rasterio.io.DatasetReader, "tags", broken)
        with pytest.raises(InputReadError, match=r"the metadata .*IndexError: list index out of range") as caught:
            GeoTiffReader(path)
    else:
        with GeoTiffReader(path) as reader:
            monkeypatch.setattr(rasterio.io.DatasetReader, call, broken)
            with pytest.raises(InputReadError, match=r"IndexError: list index out of range\)$") as caught:
                if call == "read":
                    reader.sample()
                else:
                    reader.read_mask(Region((0, 0), (SIDE, SIDE)))
    assert str(path) in str(caught.value) and "truncated or corrupt" in str(caught.value)


@pytest.fixture(scope="module")
def tiny_rgb(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_generator(tmp_path_factory.mktemp("models") / "tiny3.safetensors",
                          create_generator("test-tiny", in_channels=3, scale=2))


def restore_with_the_cli(source: Path, output_folder: Path, model: Path, *extra: str):
    output_folder.mkdir()
    return CliRunner().invoke(cli, ["restore", str(source), str(output_folder / "restored.tif"), "--model", str(model),
                                    "--quiet", *extra])


# A cut that loses the IFD, and garbage in place of it, leave a file neither GDAL nor the
# image reader can open: restore sends it to the GeoTIFF reader, which names the damage.
CLI_CASES = [(layout, tiling, damage) for layout in LAYOUTS for tiling in TILINGS for damage in DAMAGES]


@pytest.mark.parametrize("layout, tiling, damage", CLI_CASES)
def test_cli_exits_1_with_one_line_and_leaves_no_output(tmp_path, tiny_rgb, layout, tiling, damage):
    source = damaged_raster(tmp_path, layout, tiling, damage)
    result = restore_with_the_cli(source, tmp_path / "out", tiny_rgb)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("srrestore: error: ")
    assert_one_clear_line(result.output.strip(), source)
    assert list((tmp_path / "out").iterdir()) == []


def test_damage_met_mid_run_leaves_no_partial_output(tmp_path, tiny_rgb, monkeypatch):
    # A COG keeps its overviews before the full-resolution tiles, so a 90 % cut damages
    # only the latter. The normalisation sample of a large raster comes from an overview:
    # with max_side 32 this 64-px one's does too, so the damage is met by the engine's
    # window reads, after the temporary output was created.
    plain = valid_raster(tmp_path, "ifd-last", "tiled")
    cog = tmp_path / "cog.tif"
    rasterio.shutil.copy(plain, cog, driver="COG", BLOCKSIZE=16, OVERVIEW_RESAMPLING="NEAREST")
    source = tmp_path / "cut.tif"
    source.write_bytes(cog.read_bytes()[: cog.stat().st_size * 9 // 10])
    monkeypatch.setattr(GeoTiffReader, "sample", functools.partialmethod(GeoTiffReader.sample, max_side=32))
    with GeoTiffReader(source) as reader:
        reader.sample()  # the overview is intact
    result = restore_with_the_cli(source, tmp_path / "out", tiny_rgb, "--tile", "16")
    assert result.exit_code == 1, result.output
    assert result.output.startswith("srrestore: error: cannot read rows ")
    assert_one_clear_line(result.output.strip(), source)
    assert list((tmp_path / "out").iterdir()) == []
