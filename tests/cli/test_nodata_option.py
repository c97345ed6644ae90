"""``--nodata VALUE`` declares a missing nodata; an undeclared constant border is reported (issue 15, item 10)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from rasterio.transform import from_origin
from scipy import ndimage
from skimage import data

from srrestore.cli.main import cli
from srrestore.models.checkpoint import save_generator
from srrestore.models.generator import create_generator


@pytest.fixture(scope="module")
def gray_model(tmp_path_factory):
    torch.manual_seed(0)
    return save_generator(tmp_path_factory.mktemp("model") / "gray.safetensors",
                          create_generator("test-tiny", in_channels=1, scale=2))


@pytest.fixture
def padded_scene(tmp_path):
    """A uint16 scene (the moon, 15000..40000) inside an undeclared fill of 0, as projected tiles come."""
    values = np.zeros((1, 72, 80), np.uint16)
    values[0, 6:66, 9:75] = data.moon()[100:160, 100:166].astype(np.uint16) * 100 + 15000
    path = tmp_path / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", width=80, height=72, count=1, dtype="uint16", crs="EPSG:32618",
                       transform=from_origin(500000, 4000000, 30, 30)) as dataset:
        dataset.write(values)
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_an_undeclared_constant_border_is_reported_in_one_line(tmp_path, padded_scene, gray_model):
    result = run("restore", padded_scene, tmp_path / "out.tif", "--model", gray_model, "-q")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines() == [
        "srrestore: warning: the raster's edge is a constant 0 in every band but no nodata is declared; if that is"
        " fill, restore with --nodata 0 (now it is restored as data)"
    ]


def test_nodata_declared_on_the_command_line_is_masked_and_written(tmp_path, padded_scene, gray_model):
    output = tmp_path / "out.tif"
    result = run("restore", padded_scene, output, "--model", gray_model, "-q", "--nodata", "0")
    assert result.exit_code == 0 and result.output == "", result.output
    with rasterio.open(padded_scene) as source, rasterio.open(output) as restored:
        before, after = source.read(1), restored.read(1)
        assert source.nodata is None and restored.nodata == 0
    fill = np.kron(before == 0, np.ones((2, 2), bool))
    assert (after[fill] == 0).all()
    # Next to the fill, outputs stay in the range of the valid pixels around them: no dark halo
    # (the seeded tiny network is random: far from the fill it may leave the range, not here).
    near = ndimage.binary_dilation(before == 0, np.ones((9, 9), bool)) & (before > 0)
    near = np.kron(near, np.ones((2, 2), bool))
    valid = before[before > 0]
    assert near.any() and after[near].min() >= valid.min() and after[near].max() <= valid.max()


@pytest.mark.parametrize(("value", "message"), [("1.5", "--nodata 1.5 is not a uint16 value"),
                                                ("70000", "--nodata 70000 is not a uint16 value")])
def test_a_nodata_the_dtype_cannot_hold_is_refused(tmp_path, padded_scene, gray_model, value, message):
    result = run("restore", padded_scene, tmp_path / "out.tif", "--model", gray_model, "-q", "--nodata", value)
    assert result.exit_code == 1 and result.output.strip() == f"srrestore: error: {message}"
    assert list(tmp_path.glob("out*")) == []


def test_a_nodata_that_contradicts_the_raster_is_refused(tmp_path, padded_scene, gray_model):
    with rasterio.open(padded_scene, "r+") as dataset:
        dataset.nodata = 0
    result = run("restore", padded_scene, tmp_path / "out.tif", "--model", gray_model, "-q", "--nodata", "5")
    assert result.exit_code == 1 and "declares nodata 0; --nodata 5 differs from it" in result.output
    result = run("restore", padded_scene, tmp_path / "out.tif", "--model", gray_model, "-q", "--nodata", "0")
    assert result.exit_code == 0, result.output  # the same value is no contradiction


def test_the_api_takes_nodata_too(tmp_path, padded_scene, gray_model):
    from srrestore import restore

    restore(padded_scene, tmp_path / "out.tif", model=str(gray_model), nodata=0)
    with rasterio.open(tmp_path / "out.tif") as restored:
        assert restored.nodata == 0
