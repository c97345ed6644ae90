"""`srrestore restore --dask ADDRESS` equals the local run; a bad address is one clear error."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from srrestore.cli.main import cli
from srrestore.errors import ConfigError
from srrestore.models.checkpoint import save_generator
from srrestore.models.generator import create_generator
from srrestore.pipelines import common

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "landsat_rgb.tif"
SMALL_GEOTIFF = Path(__file__).resolve().parents[1] / "fixtures" / "satellite" / "landsat_rgb_nodata0.tif"

distributed = pytest.importorskip("distributed")


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    """A seeded x2 RGB test-tiny checkpoint, in a folder of its own."""
    torch.manual_seed(0)
    (tmp_path / "model").mkdir()
    return save_generator(tmp_path / "model" / "m.safetensors", create_generator("test-tiny", in_channels=3, scale=2))


@pytest.mark.slow
def test_dask_restore_of_a_geotiff_equals_the_local_run(tmp_path, tiny_checkpoint, dask_clients):
    common_options = ["--model", str(tiny_checkpoint), "--tile", "48", "--quiet"]
    local = CliRunner().invoke(cli, ["restore", str(EXAMPLE), str(tmp_path / "local.tif"), *common_options])
    assert local.exit_code == 0, local.output
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        remote = CliRunner().invoke(cli, ["restore", str(EXAMPLE), str(tmp_path / "dask.tif"),
                                          "--dask", cluster.scheduler_address, *common_options])
        assert remote.exit_code == 0, remote.output
        assert list(dask_clients) == [cluster.scheduler_address]
        # The restore's client is not left as dask's default scheduler for the rest of the process.
        assert dask.config.get("scheduler", None) is None
    with rasterio.open(tmp_path / "local.tif") as a, rasterio.open(tmp_path / "dask.tif") as b:
        assert a.bounds == b.bounds and a.crs == b.crs
        # Exact: one block of the same 48-px tiles, run in this process by a worker thread with
        # the same torch thread count as the local run.
        assert np.array_equal(a.read(), b.read())


@pytest.mark.parametrize("address", [
    "not a url",
    pytest.param("tcp://127.0.0.1:9", marks=pytest.mark.slow),  # nothing listens: refused until the 10 s timeout
])
def test_a_bad_scheduler_address_is_one_line_and_leaves_nothing(tmp_path, tiny_checkpoint, address):
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(cli, ["restore", str(SMALL_GEOTIFF), str(out / "o.tif"), "--model",
                                      str(tiny_checkpoint), "--dask", address])
    assert result.exit_code == 1
    assert result.output.startswith(f"srrestore: error: cannot reach the Dask scheduler at {address!r}: ")
    assert len(result.output.splitlines()) == 1, result.output
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("error", [
    ValueError("missing port number in address 'x'"),
    TypeError("Can't instantiate abstract class UCXConnector"),
    OSError("Timed out trying to connect to tcp://h:1 after 10 s\n\nmore detail"),
    TimeoutError(),
    asyncio.TimeoutError(),  # not a TimeoutError before Python 3.11
])
def test_any_connection_failure_becomes_one_config_error(monkeypatch, error):
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(distributed, "Client", refuse)
    with pytest.raises(ConfigError, match=r"^cannot reach the Dask scheduler at 'tcp://h:1': \S") as caught:
        common.dask_client("tcp://h:1")
    assert "\n" not in str(caught.value)


class FakeClient:
    """Stands in for ``distributed.Client``; records how it was made."""

    def __init__(self, address: str, **options: Any) -> None:
        self.address, self.options, self.status = address, options, "running"


def test_one_client_per_address_never_the_default_and_remade_once_closed(monkeypatch):
    monkeypatch.setattr(distributed, "Client", FakeClient)
    monkeypatch.setattr(common, "_dask_clients", {})
    first = common.dask_client("tcp://h:1")
    assert first.options["set_as_default"] is False
    assert common.dask_client("tcp://h:1") is first and common.dask_client("tcp://h:2") is not first
    first.status = "closed"  # e.g. the scheduler went away
    assert common.dask_client("tcp://h:1") is not first
