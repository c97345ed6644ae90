"""`srrestore restore` on plain images: results, exit codes and one-line errors."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from skimage import data

from srrestore.cli.main import cli
from srrestore.models.checkpoint import save_generator
from srrestore.models.generator import create_generator


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    rgb = save_generator(folder / "rgb-x2.safetensors", create_generator("test-tiny", in_channels=3, scale=2))
    gray = save_generator(folder / "gray-x2.safetensors", create_generator("test-tiny", in_channels=1, scale=2))
    return {"rgb": rgb, "gray": gray}


@pytest.fixture
def astronaut_png(tmp_path):
    path = tmp_path / "astronaut.png"
    iio.imwrite(path, data.astronaut()[100:164, 180:260])
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_restore_png_writes_an_upscaled_image_of_the_same_dtype(tmp_path, astronaut_png, tiny_models):
    output = tmp_path / "out.png"
    result = run("restore", astronaut_png, output, "--model", tiny_models["rgb"], "--quiet")
    assert result.exit_code == 0, result.output
    restored = iio.imread(output)
    assert restored.shape == (128, 160, 3) and restored.dtype == np.uint8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["astronaut.png", "out.png"]


def test_compile_flag_runs_the_compiled_network(tmp_path, astronaut_png, tiny_models, monkeypatch):
    import srrestore.engine.runner as runner

    compiled_networks = []

    def record(network):
        compiled_networks.append(network)
        return network  # eager: the compiled path itself is tested in tests/engine/test_compilation.py

    monkeypatch.setattr(runner, "compiled", record)
    result = run("restore", astronaut_png, tmp_path / "out.png", "--model", tiny_models["rgb"], "--compile", "--quiet")
    assert result.exit_code == 0, result.output
    assert len(compiled_networks) == 1 and (tmp_path / "out.png").is_file()


def test_restore_folder_of_images_and_band_by_band_for_a_one_channel_model(tmp_path, tiny_models):
    folder = tmp_path / "in"
    folder.mkdir()
    iio.imwrite(folder / "a.png", data.camera()[:40, :50])
    iio.imwrite(folder / "b.png", data.astronaut()[:30, :20])
    result = run("restore", folder, tmp_path / "out", "--model", tiny_models["gray"], "--quiet")
    assert result.exit_code == 0, result.output
    assert iio.imread(tmp_path / "out" / "a.png").shape == (80, 100)
    assert iio.imread(tmp_path / "out" / "b.png").shape == (60, 40, 3)


def test_python_api_mirrors_the_cli(tmp_path, astronaut_png, tiny_models):
    import srrestore

    reports = srrestore.restore(astronaut_png, tmp_path / "api.png", model=str(tiny_models["rgb"]))
    cli_out = tmp_path / "cli.png"
    run("restore", astronaut_png, cli_out, "--model", tiny_models["rgb"], "--quiet")
    assert reports[0].format == "image"
    assert np.array_equal(iio.imread(tmp_path / "api.png"), iio.imread(cli_out))


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "input not found"),
        ("unsupported", "unsupported input"),
        ("corrupt", "cannot read image"),
        ("wrong-scale", "upscales by 2x2, not 4"),
        ("wrong-channels", "takes 3 channels, the data has 2"),
        ("exists", "exists; pass --overwrite"),
        ("unknown-model", "neither a built-in model nor a file"),
    ],
)
def test_bad_input_gives_one_line_exit_1_and_no_output(tmp_path, astronaut_png, tiny_models, case, message):
    source, output = astronaut_png, tmp_path / "out.png"
    extra = ["--model", str(tiny_models["rgb"])]
    if case == "missing":
        source = tmp_path / "nothing.png"
    elif case == "unsupported":
        source = tmp_path / "notes.txt"
        source.write_text("hello")
    elif case == "corrupt":
        source = tmp_path / "broken.png"
        source.write_bytes(astronaut_png.read_bytes()[:200])
    elif case == "wrong-scale":
        extra += ["--scale", "4"]
    elif case == "wrong-channels":
        source = tmp_path / "two.tif"
        import tifffile

        tifffile.imwrite(source, np.zeros((2, 16, 16), np.uint8), photometric="minisblack", planarconfig="separate")
    elif case == "exists":
        output.write_bytes(b"keep me")
    elif case == "unknown-model":
        extra = ["--model", "no-such-model"]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run("restore", source, output, *extra, "--quiet")
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("srrestore: error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if case == "exists":
        assert output.read_bytes() == b"keep me"


def test_gantry_tilt_series_is_refused_or_resampled_with_the_flag(fixtures_dir, tmp_path, tiny_models):
    from pydicom import dcmread
    from srrestore.domains.medical.dicom_series import open_series
    from srrestore.domains.medical.geometry import corner_points, slice_normal

    tilted = fixtures_dir / "medical" / "ct_head_gantry_tilt"  # 3 real slices, 18.5 degree tilt
    output = tmp_path / "sr"
    result = run("restore", tilted, output, "--scale", "2", "--model", tiny_models["gray"], "--quiet")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "gantry tilt of 18.50 degrees" in lines[0] and "--resample-irregular" in lines[0]
    assert not output.exists()
    flags = ("--resample-irregular", "--scale", "2", "--model", tiny_models["gray"], "--quiet")
    result = run("restore", tilted, output, *flags)
    assert result.exit_code == 0, result.output
    source, restored = open_series(tilted, resample_irregular=True), open_series(output)  # regular: no flag needed
    assert restored.shape == (3, 1024, 1024) and restored.resampling is None
    step = restored.affine[:3, 2] / np.linalg.norm(restored.affine[:3, 2])
    assert np.linalg.norm(np.cross(step, slice_normal(source.header.ImageOrientationPatient))) < 1e-6  # no shear
    error = corner_points(restored.affine, restored.shape[::-1]) - corner_points(source.affine, source.shape[::-1])
    assert np.abs(error).max() < 1e-4
    datasets = [dcmread(p) for p in sorted(output.iterdir())]
    assert "input resampled onto a regular grid (gantry tilt of 18.50 degrees corrected)" in (
        datasets[0].DerivationDescription
    )
    assert [d.SourceImageSequence[0].ReferencedSOPInstanceUID for d in datasets] == source.sop_instance_uids
    assert all(float(d.GantryDetectorTilt) == 0 for d in datasets)


def test_usage_errors_exit_2_and_debug_shows_the_traceback(tmp_path, astronaut_png, tiny_models):
    assert run("restore", astronaut_png).exit_code == 2
    assert run("restore", astronaut_png, tmp_path / "o.png", "--precision", "fp64").exit_code == 2
    result = CliRunner().invoke(cli, ["--debug", "restore", str(tmp_path / "none.png"), str(tmp_path / "o.png")])
    assert result.exit_code == 1 and result.exception is not None


def test_every_command_has_help_with_an_example():
    for command in ("restore", "train", "models"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "Example" in result.output, command



def test_read_only_output_folder_gives_a_clear_error_and_leaves_nothing(astronaut_png, tiny_models, read_only_folder):
    result = run("restore", astronaut_png, read_only_folder / "out.png", "--model", tiny_models["rgb"], "--quiet")
    assert result.exit_code == 1
    assert result.output.strip() == f"srrestore: error: cannot write to folder {read_only_folder}: permission denied"
    assert list(read_only_folder.iterdir()) == []


def test_the_summary_says_which_precision_ran_and_why(tmp_path, astronaut_png, tiny_models):
    result = run("restore", astronaut_png, tmp_path / "out.png", "--model", tiny_models["rgb"], "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "  precision: fp32 (auto: cpu); channels-last memory (auto: cpu)" in result.output.splitlines()
    result = run("restore", astronaut_png, tmp_path / "fp32.png", "--model", tiny_models["rgb"], "--device", "cpu",
                 "--precision", "fp32")
    assert "  precision: fp32 (asked for)" in result.output.splitlines()  # the plain reference: contiguous memory
