"""Every numeric GDAL dtype but complex, end to end, with its dtype kept (issue 15).

Rasters are small (24x24, 1 and 3 bands) smooth ramps written in tmp_path, each
in a range only its dtype holds (uint32 above int32's max, the 64-bit ones near
2**53), so a silent cast to a narrower dtype would show. float16 is absent:
rasterio 1.4 on GDAL 3.10 cannot write it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import tifffile
import torch
from affine import Affine
from torch import nn

import srrestore
from srrestore.domains.satellite import GeoTiffReader
from srrestore.engine.region import Region
from srrestore.errors import UnsupportedInputError
from srrestore.models.checkpoint import CheckpointInfo, save_generator
from srrestore.models.generator import create_generator
from srrestore.models.spec import ModelSpec
from srrestore.sr_model import SUPPORTED_DTYPES, SRModel

# dtype -> (lowest value, step): values are lowest + step * (y + x + 3 band), so a 24x24 ramp
# spans 52 steps. Integer spans stay below 2**23, where the float32 network input is exact.
RAMPS: dict[str, tuple[float, float]] = {
    "uint8": (20, 4),
    "int8": (-100, 4),
    "uint16": (1000, 1000),
    "int16": (-20000, 1000),
    "uint32": (3 * 2**30, 2**16),
    "int32": (-(2**31) + 1000, 2**16),
    "uint64": (2**53 - 2**22, 2**16),
    "int64": (-(2**52), 2**16),
    "float32": (-3.5e3, 0.25),
    "float64": (1e6, 1e-3),  # steps float32 could not hold (its spacing at 1e6 is 0.0625)
}
SIDE = 24
TRANSFORM = Affine(30, 0, 500000, 0, -30, 4000000)  # 30 m pixels, EPSG:32618 (UTM 18N)


def ramp(dtype: str, bands: int) -> np.ndarray:
    """``(bands, SIDE, SIDE)`` smooth ramp of ``dtype`` (see RAMPS); built in int64 or float64."""
    low, step = RAMPS[dtype]
    y, x = np.mgrid[:SIDE, :SIDE]
    steps = (y + x)[None] + 3 * np.arange(bands)[:, None, None]
    if np.issubdtype(np.dtype(dtype), np.integer):
        return (int(low) + steps.astype(np.int64) * int(step)).astype(dtype)
    return (low + steps * step).astype(dtype)


def write_raster(path: Path, array: np.ndarray, **profile) -> Path:
    """A DEFLATE GeoTIFF (so the output uses PREDICTOR 2 or 3) of ``(C, H, W)`` ``array``."""
    profile = dict(driver="GTiff", width=array.shape[2], height=array.shape[1], count=array.shape[0],
                   dtype=array.dtype, crs="EPSG:32618", transform=TRANSFORM, compress="deflate") | profile
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(array)
    return path


class NearestUpsampler(nn.Module):
    """x2 pixel repetition: the restored array must be the input repeated."""

    def __init__(self) -> None:
        super().__init__()
        self.spec = ModelSpec(scale=(2, 2), in_channels=1, out_channels=1, receptive_field=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[int, Path]:
    """Tiny x2 generators (fixed seed) for 1 and 3 channels, saved as checkpoints."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    return {channels: save_generator(folder / f"tiny{channels}.safetensors",
                                     create_generator("test-tiny", in_channels=channels, scale=2))
            for channels in (1, 3)}


def test_every_numeric_gdal_dtype_but_complex_is_supported():
    assert set(SUPPORTED_DTYPES) == set(RAMPS)


@pytest.mark.parametrize("dtype", list(RAMPS))
def test_reader_returns_stored_values_in_their_dtype(tmp_path, dtype):
    values = ramp(dtype, 3)
    with GeoTiffReader(write_raster(tmp_path / "in.tif", values)) as reader:
        assert reader.spec.dtype == dtype
        window = reader.read(Region((0, 0), (SIDE, SIDE)))
        sample = reader.sample()
    assert window.dtype == np.dtype(dtype) and sample.values.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(window, values)


@pytest.mark.parametrize("bands", [1, 3])
@pytest.mark.parametrize("dtype", list(RAMPS))
def test_restore_keeps_the_dtype_and_bounds_with_values_in_a_sane_range(tmp_path, tiny_models, dtype, bands):
    values = ramp(dtype, bands)
    source, target = write_raster(tmp_path / "in.tif", values), tmp_path / "out.tif"
    report, = srrestore.restore(source, target, model=str(tiny_models[bands]))
    with rasterio.open(source) as src, rasterio.open(target) as dst:
        assert dst.dtypes == (dtype,) * bands and dst.shape == (2 * SIDE, 2 * SIDE)
        assert dst.bounds == src.bounds and dst.crs == src.crs
        restored = dst.read()
        recorded = json.loads(dst.tags()["SRRESTORE_NORMALIZATION"])
    # An untrained network is no identity, so only a sane range is asserted: the input's
    # [min, max] widened by its span on both sides (the tiny model stays within 0.31 spans).
    low, high = float(values.min()), float(values.max())
    as_float = restored.astype(np.float64)
    assert np.isfinite(as_float).all()
    assert (as_float >= low - (high - low)).all() and (as_float <= high + (high - low)).all()
    assert recorded == report.normalization
    assert recorded["method"] == ("dtype-range" if dtype == "uint8" else "percentile-0.5-99.5")


@pytest.mark.parametrize("bands", [1, 3])
@pytest.mark.parametrize("dtype", list(RAMPS))
def test_upscale_with_a_nearest_network_returns_the_input_repeated(dtype, bands):
    model = SRModel(NearestUpsampler(), CheckpointInfo(create_generator("test-tiny").config, "psnr"), device="cpu")
    values = ramp(dtype, bands)
    array = values[0] if bands == 1 else values
    restored = model.upscale(array)
    expected = array.repeat(2, axis=-2).repeat(2, axis=-1)
    assert restored.dtype == np.dtype(dtype) and restored.shape == expected.shape
    if np.issubdtype(np.dtype(dtype), np.integer):
        # Tolerance 0: every ramp lies within 2**23 of its offset, where the float32
        # network input holds integers to < 0.5, and rounding restores them.
        np.testing.assert_array_equal(restored, expected)
    else:
        # The network sees float32: its unit roundoff 2**-24, relative to the normalised
        # value, costs up to |x - offset| * 2**-24 <= span * 2**-24 (3e-9 for float64,
        # far below its 1e-3 steps; 8e-7 for float32), plus one ulp of x for storing
        # the result in the dtype.
        span = float(values.max()) - float(values.min())
        tolerance = span * 2.0**-24 + float(np.spacing(np.abs(array).max()))
        np.testing.assert_allclose(restored, expected, rtol=0, atol=tolerance)


@pytest.mark.parametrize("dtype", ["int64", "uint64"])
def test_64_bit_nodata_rasterio_cannot_write_back_is_refused(tmp_path, dtype):
    # rasterio writes an int64 nodata of -2**63 as "-9.2233720368547758e+18", which GDAL
    # reads back as -9; a GDAL-written file holds the exact integer. Patch the tag to that.
    nodata = "-9223372036854775808" if dtype == "int64" else str(2**63)
    source = write_raster(tmp_path / "in.tif", ramp(dtype, 1), nodata=0)
    with tifffile.TiffFile(source, mode="r+") as tiff:
        tiff.pages[0].tags["GDAL_NODATA"].overwrite(nodata)
    with pytest.raises(UnsupportedInputError, match=r"nodata .* beyond ±2\*\*53"):
        GeoTiffReader(source)
    shutil.copy(source, tmp_path / "copy.tif")
    with rasterio.open(tmp_path / "copy.tif", "r+") as dataset:
        dataset.nodata = 7  # small nodata values are fine
    with GeoTiffReader(tmp_path / "copy.tif") as reader:
        assert reader.meta.nodata == 7
