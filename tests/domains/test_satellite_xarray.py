"""The DataArray.srrestore accessor: georeferencing (G4), nodata, attrs, and lazy == eager."""

from __future__ import annotations

from pathlib import Path

import dask.array
import numpy as np
import pytest
import rasterio
import rioxarray
import torch
import xarray as xr
from affine import Affine
from torch import nn

from srrestore.domains.satellite import xarray_accessor
from srrestore.errors import ConfigError, UnsupportedInputError
from srrestore.models.checkpoint import CheckpointInfo, save_generator
from srrestore.models.generator import create_generator
from srrestore.sr_model import SRModel, load_model
from srrestore.models.spec import ModelSpec
from srrestore.pipelines.options import RestoreOptions
from srrestore.pipelines.satellite.restore import restore_geotiff


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    return {
        channels: save_generator(folder / f"tiny{channels}.safetensors",
                                 create_generator("test-tiny", in_channels=channels, scale=2))
        for channels in (1, 3)
    }


@pytest.fixture
def satellite(fixtures_dir) -> Path:
    return fixtures_dir / "satellite"


def assert_close_uint(a: np.ndarray, b: np.ndarray) -> None:
    """Tiled and whole-image inference agree up to one rounding step on rare pixels (engine contract)."""
    difference = np.abs(a.astype(np.int64) - b.astype(np.int64))
    assert difference.max() <= 1 and np.count_nonzero(difference) <= 1e-3 * difference.size


def test_eager_result_is_georeferenced_and_matches_the_geotiff_pipeline(satellite, tmp_path, checkpoints):
    source = satellite / "landsat_rgb_nodata0.tif"
    da = rioxarray.open_rasterio(source)
    da.attrs["long_name"] = ("red", "green", "blue")
    model = load_model(str(checkpoints[3]))
    out = da.srrestore.upscale(model, scale=2)
    transform = da.rio.transform() @ Affine.scale(0.5)
    assert out.dims == da.dims and out.shape == (3, 2 * da.sizes["y"], 2 * da.sizes["x"])
    assert out.dtype == np.uint8 and isinstance(out.data, np.ndarray)
    assert out.rio.transform() == transform  # G4: not the stale GeoTransform of the copied spatial_ref
    assert out.spatial_ref.attrs["GeoTransform"].split() == [repr(v) for v in transform.to_gdal()]
    np.testing.assert_allclose(out.x.values, transform.c + transform.a * (np.arange(out.sizes["x"]) + 0.5))
    np.testing.assert_allclose(out.y.values, transform.f + transform.e * (np.arange(out.sizes["y"]) + 0.5))
    assert out.rio.crs == da.rio.crs and out.rio.nodata == 0
    assert out.rio.bounds() == pytest.approx(da.rio.bounds(), abs=1e-9)
    assert out.attrs == da.attrs and list(out.band.values) == [1, 2, 3]
    restore_geotiff(source, tmp_path / "out.tif", RestoreOptions(model=str(checkpoints[3]), progress=False))
    with rasterio.open(tmp_path / "out.tif") as dataset:
        assert_close_uint(out.values, dataset.read())  # same normalisation, same network


def test_two_dimensional_array_and_model_path(satellite, checkpoints):
    da = rioxarray.open_rasterio(satellite / "landsat_blue_uint16_point.tif").squeeze("band", drop=True)
    out = da.srrestore.upscale(str(checkpoints[1]))
    assert out.dims == ("y", "x") and out.shape == (224, 256) and out.dtype == np.uint16
    assert out.rio.transform() == da.rio.transform() @ Affine.scale(0.5)
    assert ((out.values == 0) == np.kron(da.values == 0, np.ones((2, 2), bool))).all()


@pytest.mark.parametrize(("name", "channels", "chunks"), [
    ("landsat_rgb_nodata0.tif", 3, {"x": 64, "y": 48}),  # nodata 0 crossing chunk borders
    ("s1_gamma0_nan.tif", 1, {"x": 48, "y": 64}),        # float32, NaN nodata
])
def test_dask_input_gives_a_lazy_result_equal_to_the_eager_one(satellite, checkpoints, name, channels, chunks):
    model = load_model(str(checkpoints[channels]))
    eager = rioxarray.open_rasterio(satellite / name).srrestore.upscale(model)
    lazy_input = rioxarray.open_rasterio(satellite / name, chunks=chunks)
    lazy = lazy_input.srrestore.upscale(model)
    assert isinstance(lazy.data, dask.array.Array)
    assert lazy.data.npartitions > 1
    assert lazy.rio.transform() == eager.rio.transform() and lazy.rio.crs == eager.rio.crs
    computed = lazy.values
    if computed.dtype.kind == "f":
        np.testing.assert_array_equal(np.isnan(computed), np.isnan(eager.values))
        np.testing.assert_allclose(computed, eager.values, rtol=0, atol=1e-4 * np.nanmax(eager.values))
    else:
        assert_close_uint(computed, eager.values)
        np.testing.assert_array_equal(computed == 0, eager.values == 0)


@pytest.mark.parametrize(("shape", "chunks"), [
    ((1, 20, 20), (1, 10, 10)),   # both axes shorter than the overlap depth: one block
    ((1, 24, 120), (1, 12, 16)),  # y shorter than the depth (one chunk), x cut into blocks
])
def test_dask_arrays_smaller_than_the_overlap_depth_equal_the_numpy_result(checkpoints, shape, chunks):
    model = load_model(str(checkpoints[1]))
    assert shape[1] < xarray_accessor.overlap_depth(model.spec.receptive_field)  # dask alone would refuse the depth
    values = np.random.default_rng(0).random(shape, dtype=np.float32)
    eager = xr.DataArray(values, dims=("band", "y", "x")).srrestore.upscale(model)
    lazy = xr.DataArray(dask.array.from_array(values, chunks=chunks), dims=("band", "y", "x")).srrestore.upscale(model)
    assert isinstance(lazy.data, dask.array.Array) and lazy.shape == eager.shape == (1, 2 * shape[1], 2 * shape[2])
    # float32 in the same process: blocks cut their tiles elsewhere than the whole image and
    # sum in another order, which moves values by float rounding only (~1e-7 of the range).
    np.testing.assert_allclose(lazy.values, eager.values, rtol=0, atol=1e-5 * np.ptp(eager.values))


class BoxUpsampler(nn.Module):
    """Mean over a ``(2 reach + 1)^2`` box, then x2 repetition: every output sees exactly ``reach`` pixels."""

    def __init__(self, reach: int) -> None:
        super().__init__()
        self.reach = reach
        self.spec = ModelSpec(scale=(2, 2), in_channels=1, out_channels=1, receptive_field=reach)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = nn.functional.avg_pool2d(x, 2 * self.reach + 1, stride=1, padding=self.reach, count_include_pad=False)
        return mean.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def test_blocks_borrow_enough_context_for_the_nodata_fill(monkeypatch):
    # Columns 16-19 are nodata, just past the chunk border at 16. In the whole image column 19
    # is filled from column 20 (250); a block that sees only its halo (4) fills it from column 15 (40).
    # The left part rises (10..40) so that holding outputs next to the mask to the local valid
    # range (32..40 at column 15) does not hide the difference.
    image = np.full((1, 40, 64), 10, np.uint8)
    image[:, :, :16] += 2 * np.arange(16, dtype=np.uint8)
    image[:, :, 20:] = 250
    image[:, :, 16:20] = 0
    da = xr.DataArray(image, dims=("band", "y", "x"),
                      coords={"band": [1], "y": np.arange(40)[::-1] + 0.5, "x": np.arange(64) + 0.5})
    da = da.rio.write_nodata(0)
    model = SRModel(BoxUpsampler(4), CheckpointInfo(create_generator("test-tiny").config, "psnr"))
    eager = da.srrestore.upscale(model).values
    assert xarray_accessor.overlap_depth(4) == 10
    # Exact: in a block as in the whole image, each output pixel's box mean sums the same pixels
    # in the same order, in this process, so both round alike.
    np.testing.assert_array_equal(da.chunk({"x": 16}).srrestore.upscale(model).values, eager)
    monkeypatch.setattr(xarray_accessor, "overlap_depth", lambda halo: halo)
    assert (da.chunk({"x": 16}).srrestore.upscale(model).values != eager).any()  # the halo alone is not enough


def test_masked_arrays_keep_their_encoded_nodata(satellite, checkpoints):
    da = rioxarray.open_rasterio(satellite / "landsat_blue_uint16_point.tif", masked=True)
    assert da.dtype == np.float32 and da.rio.encoded_nodata == 0
    out = da.srrestore.upscale(str(checkpoints[1]))
    assert out.rio.encoded_nodata == 0 and np.isnan(out.rio.nodata)
    np.testing.assert_array_equal(np.isnan(out.values), np.kron(np.isnan(da.values), np.ones((1, 2, 2), bool)))


def test_bad_requests_are_refused(satellite, checkpoints):
    da = rioxarray.open_rasterio(satellite / "landsat_rgb_nodata0.tif")
    with pytest.raises(ConfigError, match="not 4"):
        da.srrestore.upscale(load_model(str(checkpoints[3])), scale=4)
    with pytest.raises(UnsupportedInputError, match="dims"):
        da.transpose("y", "x", "band").srrestore.upscale(str(checkpoints[3]))
    with pytest.raises(UnsupportedInputError, match="float16"):
        da.astype(np.float16).srrestore.upscale(str(checkpoints[3]))
