"""Shared pytest fixtures."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def one_thread():
    """Tests run tiny networks: one torch thread is fastest, and on shared, busy cores two
    OpenMP threads wait on each other at every operation (ten times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def seeded_torch() -> None:
    """Every test starts from the same torch random state, whatever ran before it (training
    seeds the global generator, unseeded networks draw from it); pytest-randomly does the
    same for ``random`` and numpy."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def dask_scheduler_left_as_found() -> Iterator[None]:
    """Fails the test that leaves dask's global scheduler set, e.g. by a ``distributed.Client``
    made the default and not closed: later tests' ``dask.compute`` would run on that client
    (or fail on its closed cluster), so they would pass or fail by the order of the tests."""
    yield
    dask = sys.modules.get("dask")  # only tests that use dask import it
    if dask is not None:
        scheduler = dask.config.get("scheduler", None)
        assert scheduler is None, f"dask's scheduler was left set to {scheduler!r}: close the Client this test made"


@pytest.fixture
def dask_clients() -> Iterator[dict[str, Any]]:
    """The clients ``restore --dask`` connects (one per address, kept for later restores in the process);
    closed and forgotten when the test ends, so no test sees another's client of a cluster now gone."""
    from srrestore.pipelines import common

    yield common._dask_clients
    while common._dask_clients:
        common._dask_clients.popitem()[1].close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the project; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Small committed test fixtures (each folder has its licence)."""
    return FIXTURES


@pytest.fixture
def read_only_folder(tmp_path: Path):
    """A folder nobody may write to: chmod for users, the immutable attribute for root."""
    import os
    import shutil
    import subprocess

    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
        pytest.skip("cannot make a folder read-only for root here")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.fixture
def fake_monai_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A torch hub cache holding the offline stand-in of Project-MONAI/perceptual-models
    (tests/fixtures/monai_hub: a small conv network in place of RadImageNet's ResNet50) and
    its fixed-seed weights file; ``TORCH_HOME`` points at it. Returns the hub folder."""
    import shutil

    hub = tmp_path / "torch" / "hub"
    repo = shutil.copytree(FIXTURES / "monai_hub", hub / "Project-MONAI_perceptual-models_main")
    torch.manual_seed(0)
    network = torch.hub.load(str(repo), "features", source="local")
    (hub / "monai_checkpoints").mkdir()
    torch.save(network.state_dict(), hub / "monai_checkpoints" / "RadImageNet-ResNet50_notop.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return hub
