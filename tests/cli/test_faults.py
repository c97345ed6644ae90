"""The fault corpus: each bad request, bad input or failing disk gives one line, a non-zero
exit, nothing left behind and the input unchanged (issue 15's guarantees, through the CLI).

Every case checks the same four things with :func:`assert_refused`: the exit
code, exactly one ``srrestore: error:`` line, the output folder holding only
what was there before, and every input byte unchanged.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from rasterio.transform import from_origin
from skimage import data

from srrestore.cli.main import cli
from srrestore.storage.atomic import OUTPUT_MARKER
from srrestore.models.checkpoint import save_generator
from srrestore.models.generator import create_generator


@pytest.fixture(scope="module")
def gray_model(tmp_path_factory):
    torch.manual_seed(0)
    return save_generator(tmp_path_factory.mktemp("model") / "gray.safetensors",
                          create_generator("test-tiny", in_channels=1, scale=2))


def _geotiff(path, size=48, dtype="uint16", compress=None):
    values = (np.random.default_rng(0).random((1, size, size)) * 4000).astype(dtype)
    extra = {"compress": compress} if compress else {}
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype=dtype,
                       crs="EPSG:32618", transform=from_origin(500000, 4000000, 30, 30), **extra) as dataset:
        dataset.write(values)
    return path


def _nifti(path, shape=(40, 40, 6)):
    values = (np.random.default_rng(0).random(shape) * 1000).astype("int16")
    nib.save(nib.Nifti1Image(values, np.diag([1.0, 1.0, 3.0, 1.0])), path)
    return path


def _dicom(folder):
    from pydicom.data import get_testdata_file

    folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "ct.dcm")  # one 128x128 CT slice
    return folder


def _snapshot(*roots):
    """Every file under ``roots`` with its digest."""
    found = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_refused(result_code, output_text, before, roots, message, code=1):
    lines = output_text.strip().splitlines()
    assert result_code == code, output_text
    assert len(lines) == 1 and lines[0].startswith("srrestore: error:"), output_text
    assert message in lines[0], lines[0]
    assert _snapshot(*roots) == before  # nothing added, removed or changed, hidden files included


def test_overwrite_never_deletes_a_folder_holding_the_input(tmp_path, gray_model):
    study = tmp_path / "study"
    study.mkdir()
    series = _dicom(study / "series")
    notes = study / "notes.txt"
    notes.write_text("the user's own file")
    before = _snapshot(tmp_path)
    for target, message in ((study, "holds the input"), (series, "is the input itself"), (tmp_path, "holds the input")):
        result = run("restore", series, target, "--overwrite", "--model", gray_model, "-q", "--scale", "2")
        assert_refused(result.exit_code, result.output, before, [tmp_path], message)
    assert series.is_dir()


def test_overwrite_never_replaces_a_folder_srrestore_did_not_write(tmp_path, gray_model):
    source = _dicom(tmp_path / "series")
    user = tmp_path / "results"
    user.mkdir()
    (user / "analysis.csv").write_text("1,2,3")
    before = _snapshot(tmp_path)
    result = run("restore", source, user, "--overwrite", "--model", gray_model, "-q", "--scale", "2")
    assert_refused(result.exit_code, result.output, before, [tmp_path], "was not written by srrestore")
    result = run("restore", source, tmp_path / "sr", "--model", gray_model, "-q", "--scale", "2")
    assert result.exit_code == 0, result.output
    result = run("restore", source, tmp_path / "sr", "--overwrite", "--model", gray_model, "-q", "--scale", "2")
    assert result.exit_code == 0, result.output  # its own previous output: replaced
    assert [p.suffix for p in (tmp_path / "sr").iterdir()] == [".dcm"]  # DICOM tells by provenance: no marker


@pytest.mark.parametrize(("source_kind", "output_name", "message"), [
    ("geotiff", "o.png", "name it .tif or .tiff"),
    ("geotiff", "o.nii", "name it .tif or .tiff"),
    ("dicom", "o.tif", "written as a folder"),
    ("dicom", "o.dcm", "written as a folder"),
    ("nifti", "o.tif", "name it .nii or .nii.gz"),
    ("image", "o.nii.gz", "name it .png"),
    ("images", "o.png", "written as a folder"),
])
def test_the_output_name_decides_the_format_or_the_run_refuses(tmp_path, gray_model, source_kind, output_name,
                                                               message):
    inputs = tmp_path / "in"
    inputs.mkdir()
    source = {
        "geotiff": lambda: _geotiff(inputs / "s.tif"),
        "dicom": lambda: _dicom(inputs / "series"),
        "nifti": lambda: _nifti(inputs / "v.nii"),
        "image": lambda: iio.imwrite(inputs / "a.png", data.camera()[:32, :32]) or inputs / "a.png",
        "images": lambda: iio.imwrite(inputs / "a.png", data.camera()[:32, :32]) or inputs,
    }[source_kind]()
    before = _snapshot(tmp_path)
    result = run("restore", source, tmp_path / output_name, "--model", gray_model, "-q", "--scale", "2")
    assert_refused(result.exit_code, result.output, before, [tmp_path], message)


@pytest.mark.parametrize(("source_kind", "option", "message"), [
    ("image", ["--cog"], "option --cog does not apply to image"),
    ("geotiff", ["--slice-scale", "2"], "option --slice-scale does not apply to GeoTIFF"),
    ("image", ["--series", "1.2.3"], "option --series does not apply to image"),
    ("nifti", ["--cog"], "option --cog does not apply to NIfTI"),
])
def test_options_that_do_not_apply_are_refused_not_ignored(tmp_path, gray_model, source_kind, option, message):
    source = {"image": lambda: iio.imwrite(tmp_path / "a.png", data.camera()[:32, :32]) or tmp_path / "a.png",
              "geotiff": lambda: _geotiff(tmp_path / "s.tif"),
              "nifti": lambda: _nifti(tmp_path / "v.nii")}[source_kind]()
    target = tmp_path / ("o" + "".join(source.suffixes))
    before = _snapshot(tmp_path)
    result = run("restore", source, target, *option, "--model", gray_model, "-q", "--scale", "2")
    assert_refused(result.exit_code, result.output, before, [tmp_path], message)


def test_a_folder_with_one_unreadable_image_leaves_no_output_folder(tmp_path, gray_model):
    folder = tmp_path / "in"
    folder.mkdir()
    iio.imwrite(folder / "a.png", data.camera()[:32, :32])
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    iio.imwrite(folder / "c.png", data.camera()[32:64, :32])
    before = _snapshot(tmp_path)
    result = run("restore", folder, tmp_path / "out", "--model", gray_model, "-q")
    assert_refused(result.exit_code, result.output, before, [tmp_path], "b.png")


def test_output_that_is_an_existing_folder_is_refused_for_a_file(tmp_path, gray_model):
    source = _geotiff(tmp_path / "s.tif")
    (tmp_path / "o.tif").mkdir()
    (tmp_path / "o.tif" / "keep.txt").write_text("x")
    before = _snapshot(tmp_path)
    result = run("restore", source, tmp_path / "o.tif", "--overwrite", "--model", gray_model, "-q")
    assert_refused(result.exit_code, result.output, before, [tmp_path], "is a folder")


def test_read_only_output_folder(tmp_path, gray_model, read_only_folder):
    source = _geotiff(tmp_path / "s.tif")
    before = _snapshot(tmp_path)
    result = run("restore", source, read_only_folder / "o.tif", "--model", gray_model, "-q")
    assert_refused(result.exit_code, result.output, before, [tmp_path], "")


def _run_with_file_size_limit(limit, *args):
    """The CLI in a subprocess whose files may not grow past ``limit`` bytes (writes fail with EFBIG),
    a full disk that needs no privileges."""
    def limit_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "srrestore", *map(str, args)], capture_output=True, text=True,
                          preexec_fn=limit_files, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)


@pytest.mark.parametrize("kind", ["geotiff", "geotiff-deflate", "nifti", "nifti-gz", "dicom", "png"])
def test_a_full_disk_gives_one_line_and_leaves_nothing(tmp_path, gray_model, kind):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    source, target, extra = {
        "geotiff": (lambda: _geotiff(inputs / "s.tif", 96), "o.tif", []),
        "geotiff-deflate": (lambda: _geotiff(inputs / "s.tif", 96, compress="deflate"), "o.tif", []),
        "nifti": (lambda: _nifti(inputs / "v.nii"), "o.nii", ["--scale", "2"]),
        "nifti-gz": (lambda: _nifti(inputs / "v.nii"), "o.nii.gz", ["--scale", "2"]),
        "dicom": (lambda: _dicom(inputs / "series"), "sr", ["--scale", "2"]),
        "png": (lambda: iio.imwrite(inputs / "a.png", data.camera()[:160, :160]) or inputs / "a.png", "o.png", []),
    }[kind]
    source = source()
    before = _snapshot(tmp_path)
    result = _run_with_file_size_limit(20_000, "restore", source, outputs / target, "--model", gray_model, "-q",
                                       *extra)
    stderr = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("_tiffWriteProc"))
    assert_refused(result.returncode, stderr, before, [tmp_path], "file size limit")  # GDAL's own stderr line aside


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 256 KiB tmpfs (root only; skipped elsewhere): a disk that really fills."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize(("target", "message"), [("o.tif", "only 0.2 MiB are free"),
                                                 ("o.nii", "only 0.2 MiB are free"),
                                                 ("o.nii.gz", "No space left on device")])
def test_a_really_full_disk(tmp_path, gray_model, small_tmpfs, target, message):
    source = _geotiff(tmp_path / "s.tif", 256) if target == "o.tif" else _nifti(tmp_path / "v.nii", (96, 96, 8))
    before = _snapshot(tmp_path / source.name)
    result = run("restore", source, small_tmpfs / target, "--model", gray_model, "-q", "--scale", "2")
    assert_refused(result.exit_code, result.output, before, [tmp_path / source.name], message)
    assert list(small_tmpfs.iterdir()) == []


def test_an_existing_output_is_kept_without_overwrite(tmp_path, gray_model):
    source = _geotiff(tmp_path / "s.tif")
    (tmp_path / "o.tif").write_bytes(b"previous result")
    before = _snapshot(tmp_path)
    result = run("restore", source, tmp_path / "o.tif", "--model", gray_model, "-q")
    assert_refused(result.exit_code, result.output, before, [tmp_path], "pass --overwrite")
    assert Path(tmp_path / "o.tif").read_bytes() == b"previous result"
    assert not any(p.name == OUTPUT_MARKER for p in tmp_path.iterdir())


def test_two_runs_writing_the_same_output_one_wins_the_other_says_so(tmp_path, gray_model):
    """Two processes, no --overwrite: whichever finishes second is refused, whatever the timing."""
    source = _geotiff(tmp_path / "s.tif", 128)
    target = tmp_path / "out" / "o.tif"
    command = [sys.executable, "-m", "srrestore", "restore", str(source), str(target), "--model", str(gray_model),
               "-q", "--tile", "32"]
    runs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            for _ in range(2)]
    results = sorted((run.wait(timeout=300), run.stderr.read().strip()) for run in runs)
    assert [code for code, _ in results] == [0, 1], results
    assert results[0][1] == "" and len(results[1][1].splitlines()) == 1
    assert "exists" in results[1][1] or "created by someone else" in results[1][1]
    assert [p.name for p in target.parent.iterdir()] == ["o.tif"]
    with rasterio.open(target) as dataset:
        assert dataset.shape == (256, 256)


@pytest.mark.parametrize("arguments", [
    ["restore", "{source}"],
    ["restore", "{source}", "{out}", "--scale", "0"],
    ["restore", "{source}", "{out}", "--precision", "fp64"],
    ["restore", "{source}", "{out}", "--tile", "4"],
    ["restore", "{source}", "{out}", "--frobnicate"],
    ["restore", "{source}", "{out}", "--nodata", "zero"],
    ["evaluate", "{source}"],
    ["train", "--out"],
])
def test_a_wrong_option_is_one_line_and_exit_2(tmp_path, arguments):
    source = _geotiff(tmp_path / "s.tif")
    before = _snapshot(tmp_path)
    args = [a.format(source=source, out=tmp_path / "o.tif") for a in arguments]
    process = subprocess.run([sys.executable, "-m", "srrestore", *args], capture_output=True, text=True, timeout=120)
    assert_refused(process.returncode, process.stderr, before, [tmp_path], " --help')", code=2)
    assert process.stdout == ""
