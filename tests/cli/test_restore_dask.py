"""`srrestore restore --dask ADDRESS` equals the local run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from srrestore.cli.main import cli
from srrestore.models.checkpoint import save_generator
from srrestore.models.generator import create_generator

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "landsat_rgb.tif"


@pytest.mark.slow
def test_dask_restore_of_a_geotiff_equals_the_local_run(tmp_path):
    distributed = pytest.importorskip("distributed")
    torch.manual_seed(0)
    model = save_generator(tmp_path / "m.safetensors", create_generator("test-tiny", in_channels=3, scale=2))
    common = ["--model", str(model), "--tile", "48", "--quiet"]
    local = CliRunner().invoke(cli, ["restore", str(EXAMPLE), str(tmp_path / "local.tif"), *common])
    assert local.exit_code == 0, local.output
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        remote = CliRunner().invoke(
            cli, ["restore", str(EXAMPLE), str(tmp_path / "dask.tif"), "--dask", cluster.scheduler_address, *common])
        assert remote.exit_code == 0, remote.output
    with rasterio.open(tmp_path / "local.tif") as a, rasterio.open(tmp_path / "dask.tif") as b:
        assert a.bounds == b.bounds and a.crs == b.crs
        assert np.array_equal(a.read(), b.read())


def test_unreachable_scheduler_is_one_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["restore", str(EXAMPLE), str(tmp_path / "o.tif"), "--dask",
                                      "tcp://127.0.0.1:9", "--quiet"])
    assert result.exit_code == 1
    assert "cannot reach the Dask scheduler" in result.output
    assert not (tmp_path / "o.tif").exists()
