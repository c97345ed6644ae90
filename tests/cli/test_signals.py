"""SIGTERM, SIGINT and SIGHUP stop a run with one line and leave nothing behind.

Each case starts ``python -m srrestore`` in a subprocess, waits until the run
has made its temporaries beside the output (so the signal lands mid-write),
sends the signal and checks the exit code ``128 + signal``, the one-line
message, an empty output folder and an unchanged input.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from srrestore.models.checkpoint import save_generator
from srrestore.models.generator import create_generator

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gray_model(tmp_path_factory):
    torch.manual_seed(0)
    return save_generator(tmp_path_factory.mktemp("model") / "gray.safetensors",
                          create_generator("test-tiny", in_channels=1, scale=2))


def _geotiff(path):
    values = (np.random.default_rng(0).random((1, 512, 512)) * 4000).astype("uint16")
    with rasterio.open(path, "w", driver="GTiff", width=512, height=512, count=1, dtype="uint16",
                       crs="EPSG:32618", transform=from_origin(0, 0, 30, 30)) as dataset:
        dataset.write(values)


def _nifti(path):
    values = (np.random.default_rng(0).random((96, 96, 24)) * 1000).astype("int16")
    nib.save(nib.Nifti1Image(values, np.diag([1.0, 1.0, 3.0, 1.0])), path)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wait_for_temporaries(process, folder, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.name.startswith(".") for p in folder.iterdir()):
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended before it could be stopped: {process.communicate()}")
        time.sleep(0.05)
    process.kill()
    pytest.fail("the run made no temporaries in time")


@pytest.mark.parametrize(("kind", "signum"), [("geotiff", signal.SIGTERM), ("nifti", signal.SIGTERM),
                                               ("geotiff", signal.SIGINT), ("nifti", signal.SIGHUP)])
def test_a_signal_mid_run_leaves_nothing_and_exits_128_plus_signal(tmp_path, gray_model, kind, signum):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    source = inputs / ("scene.tif" if kind == "geotiff" else "scan.nii")
    (_geotiff if kind == "geotiff" else _nifti)(source)
    before = _digest(source)
    target = outputs / ("scene_x2.tif" if kind == "geotiff" else "scan_x2.nii")
    extra = ["--scale", "2"] if kind == "nifti" else []
    process = subprocess.Popen(
        [sys.executable, "-m", "srrestore", "restore", str(source), str(target), "--model", str(gray_model),
         "--tile", "16", "--device", "cpu", "-q", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    _wait_for_temporaries(process, outputs)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, stderr
    assert stderr.strip().splitlines() == [f"srrestore: stopped by {signal.Signals(signum).name}; "
                                           "no partial output was kept"]
    assert list(outputs.iterdir()) == []
    assert [p.name for p in inputs.iterdir()] == [source.name] and _digest(source) == before


def test_a_killed_runs_temporaries_are_removed_by_the_next_run(tmp_path, gray_model):
    source, target = tmp_path / "scene.tif", tmp_path / "out" / "scene_x2.tif"
    target.parent.mkdir()
    _geotiff(source)
    process = subprocess.Popen(
        [sys.executable, "-m", "srrestore", "restore", str(source), str(target), "--model", str(gray_model),
         "--tile", "16", "--device", "cpu", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    _wait_for_temporaries(process, target.parent)
    process.kill()  # SIGKILL: no cleanup can run
    process.communicate(timeout=60)
    assert any(p.name.startswith(".") for p in target.parent.iterdir())
    from srrestore import restore

    restore(source, target.parent / "small.tif", model=str(gray_model), scale=None, tile_size=512, device="cpu")
    assert sorted(p.name for p in target.parent.iterdir()) == ["small.tif"]
