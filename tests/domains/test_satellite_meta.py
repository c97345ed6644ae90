"""derive_output_meta against metadata-invariants.md G1, G2, G3, G7 and G8 (pure, no I/O but the fixtures' metadata)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.rpc import RPC
from rasterio.transform import RPCTransformer, array_bounds, from_gcps

from srrestore.domains.satellite import RasterMeta, derive_output_meta, read_meta
from srrestore.errors import ConfigError


def fixture_meta(fixtures_dir, name: str) -> RasterMeta:
    with rasterio.open(fixtures_dir / "satellite" / name) as dataset:
        return read_meta(dataset)


def bounds(meta: RasterMeta) -> tuple[float, float, float, float]:
    return array_bounds(meta.height, meta.width, meta.transform)


@pytest.mark.parametrize("name", ["landsat_rgb_nodata0.tif", "goes_mask_jpeg.tif", "s1_gamma0_nan.tif"])
def test_transform_keeps_the_corner_and_bounds_exactly(fixtures_dir, name):
    meta = fixture_meta(fixtures_dir, name)
    out = derive_output_meta(meta, 2)
    assert (out.width, out.height) == (2 * meta.width, 2 * meta.height)
    assert out.transform == meta.transform @ Affine.scale(0.5)  # G1
    assert bounds(out) == bounds(meta)  # exactly, not approximately
    # The centre of new pixel (0, 0) lies at old pixel coordinate (1/4, 1/4).
    assert out.transform @ (0.5, 0.5) == pytest.approx(meta.transform @ (0.25, 0.25), abs=1e-9)
    assert out.crs == meta.crs
    assert out.nodata == meta.nodata or (np.isnan(out.nodata) and np.isnan(meta.nodata))


def test_rotated_and_anisotropic_transforms_scale_every_term():
    rotated = Affine.translation(500000, 4000000) @ Affine.rotation(20) @ Affine.scale(10, -10)
    meta = RasterMeta(width=30, height=20, count=1, dtype="uint8", transform=rotated)
    out = derive_output_meta(meta, (2, 4))
    assert (out.height, out.width) == (40, 120)
    assert out.transform.c == rotated.c and out.transform.f == rotated.f
    assert out.transform.almost_equals(rotated @ Affine.scale(1 / 4, 1 / 2), precision=1e-12)
    corners = [(0, 0), (30, 0), (0, 20), (30, 20)]
    for (col, row) in corners:
        assert out.transform @ (4 * col, 2 * row) == pytest.approx(rotated @ (col, row), abs=1e-6)


def test_odd_factor_keeps_bounds_to_float_precision(fixtures_dir):
    meta = fixture_meta(fixtures_dir, "landsat_rgb_nodata0.tif")
    assert bounds(derive_output_meta(meta, 3)) == pytest.approx(bounds(meta), abs=1e-9)


def test_pixel_is_point_keeps_its_tag_and_takes_the_same_transform(fixtures_dir):
    meta = fixture_meta(fixtures_dir, "landsat_blue_uint16_point.tif")
    assert meta.area_or_point == "Point"
    out = derive_output_meta(meta, 2)
    assert out.area_or_point == "Point"  # G2: GDAL moves the raw tiepoint itself
    assert out.transform == meta.transform @ Affine.scale(0.5)


def test_tags_kept_except_statistics_and_overview_resampling(fixtures_dir):
    meta = fixture_meta(fixtures_dir, "s1_gamma0_nan.tif")
    out = derive_output_meta(meta, 2)
    assert "OVR_RESAMPLING_ALG" in meta.tags and "OVR_RESAMPLING_ALG" not in out.tags
    assert {k: v for k, v in meta.tags.items() if k != "OVR_RESAMPLING_ALG"} == out.tags
    assert out.descriptions == meta.descriptions == ("Gamma0_VV",)
    blue = fixture_meta(fixtures_dir, "landsat_blue_uint16_point.tif")
    assert any(key.startswith("STATISTICS_") for key in blue.band_tags[0])
    assert derive_output_meta(blue, 2).band_tags == ({},)
    rgbn = fixture_meta(fixtures_dir, "rgbn_nodata0.tif")
    kept = derive_output_meta(rgbn, 2)
    assert kept.band_tags == rgbn.band_tags and kept.tags == rgbn.tags
    assert (kept.colorinterp, kept.scales, kept.offsets, kept.units) == (
        rgbn.colorinterp, rgbn.scales, rgbn.offsets, rgbn.units)


def test_gcps_rescale_and_keep_the_geolocation_of_old_pixel_centres(fixtures_dir):
    meta = fixture_meta(fixtures_dir, "s1_grd_gcps.tif")
    assert len(meta.gcps) == 210 and not meta.has_transform and meta.georeferenced
    out = derive_output_meta(meta, 2)
    assert out.transform == Affine.identity()  # GCP rasters carry no geotransform
    assert [(g.row, g.col) for g in out.gcps] == [(2 * g.row, 2 * g.col) for g in meta.gcps]  # G7
    assert [(g.x, g.y, g.z, g.id) for g in out.gcps] == [(g.x, g.y, g.z, g.id) for g in meta.gcps]
    old, new = from_gcps(meta.gcps), from_gcps(out.gcps)
    for row, col in [(0, 0), (10, 50), (95, 127)]:
        # Old pixel centre (row + 1/2, col + 1/2) is new pixel coordinate 2 * (row + 1/2).
        assert new @ (2 * (col + 0.5), 2 * (row + 0.5)) == pytest.approx(old @ (col + 0.5, row + 0.5), abs=1e-9)


def make_rpcs() -> RPC:
    """A real-looking RPC: a 64 x 64 image over 0.2 deg, with cross terms."""
    line_num = [0.0, 0.01, -1.0, 0.002] + [0.0] * 16
    samp_num = [0.0, 1.0, 0.01, -0.001, 0.0, 0.003] + [0.0] * 14
    return RPC(height_off=100.0, height_scale=500.0, lat_off=45.0, lat_scale=0.1, line_den_coeff=[1.0] + [0.0] * 19,
               line_num_coeff=line_num, line_off=31.5, line_scale=32.0, long_off=-100.0, long_scale=0.1,
               samp_den_coeff=[1.0] + [0.0] * 19, samp_num_coeff=samp_num, samp_off=31.5, samp_scale=32.0,
               err_bias=1.0, err_rand=0.5)


def pixel_positions(rpcs: RPC, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Continuous (row, col), corner convention, that GDAL's RPC transformer gives geo points."""
    with RPCTransformer(rpcs) as transformer:
        rows, cols = transformer.rowcol(lon, lat, np.zeros_like(lon), op=lambda values: values)
    return np.stack([rows, cols])


@pytest.mark.parametrize("scale", [2, 3, (2, 4)])
def test_rpcs_follow_the_centre_convention(scale):
    rpcs = make_rpcs()
    meta = RasterMeta(width=64, height=64, count=1, dtype="uint16", rpcs=rpcs)
    out = derive_output_meta(meta, scale).rpcs
    sy, sx = (scale, scale) if isinstance(scale, int) else scale
    assert out.line_off == sy * (31.5 + 0.5) - 0.5 and out.samp_scale == sx * 32.0  # G8
    assert (out.line_num_coeff, out.lat_off, out.height_scale) == (rpcs.line_num_coeff, 45.0, 500.0)
    lon, lat = np.array([-100.0, -100.04, -99.97]), np.array([45.0, 45.03, 44.95])
    old, new = pixel_positions(rpcs, lon, lat), pixel_positions(out, lon, lat)
    np.testing.assert_allclose(new, old * np.array([[sy], [sx]]), atol=1e-6)
    naive = RPC(**{**rpcs.to_dict(), "line_off": sy * rpcs.line_off, "line_scale": sy * rpcs.line_scale})
    assert np.abs(pixel_positions(naive, lon, lat)[0] - sy * old[0]).max() == pytest.approx((sy - 1) / 2)


def test_input_metadata_is_not_modified(fixtures_dir):
    meta = fixture_meta(fixtures_dir, "landsat_blue_uint16_point.tif")
    snapshot = copy.deepcopy(meta)
    derive_output_meta(meta, 4)
    assert meta == snapshot


@pytest.mark.parametrize("scale", [0, -2, 1.5, (2,), (2, 2, 2), True])
def test_invalid_scale_is_refused(scale):
    meta = RasterMeta(width=4, height=4, count=1, dtype="uint8")
    with pytest.raises(ConfigError, match="scale"):
        derive_output_meta(meta, scale)
