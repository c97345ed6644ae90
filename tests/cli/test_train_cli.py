"""`srrestore train`: a real run, resume, exit codes and one-line errors."""

from __future__ import annotations

import json

import imageio.v3 as iio
import pytest
import torch
from click.testing import CliRunner
from skimage import data

from srrestore.cli.main import cli
from srrestore.models.checkpoint import load_generator


@pytest.fixture
def hr_dir(tmp_path):
    folder = tmp_path / "hr" / "nested"
    folder.mkdir(parents=True)
    iio.imwrite(folder / "astronaut.png", data.astronaut()[:96, 100:196])
    iio.imwrite(folder / "coffee.jpg", data.coffee()[100:196, 200:296], quality=95)
    iio.imwrite(folder.parent / "chelsea.bmp", data.chelsea()[:96, 100:196])
    return folder.parent


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(
        'generator = "test-tiny"\ndiscriminator = "test-tiny"\npatch_size = 32\nbatch_size = 2\n'
        "log_interval = 1\n[loss]\ncontent = \"feature-matching\"\ngamma = 0.01\n"
    )
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_train_writes_both_models_and_a_log(tmp_path, hr_dir, recipe):
    out = tmp_path / "m.safetensors"
    result = run("train", hr_dir, "--out", out, "--config", recipe, "--scale", "2", "--channels", "1",
                 "--pretrain-steps", 3, "--gan-steps", 2, "--val-fraction", 0.34, "--log", tmp_path / "log.jsonl",
                 "--device", "cpu", "--seed", 4)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "psnr model on held-out: PSNR" in result.output
    gan, info = load_generator(out)
    psnr, psnr_info = load_generator(tmp_path / "m.psnr.safetensors")
    assert info.phase == "gan" and psnr_info.phase == "psnr"
    assert gan.config.scale == (2, 2) and gan.config.in_channels == 1
    assert info.training["recipe"]["seed"] == 4 and info.training["images"] == 2
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines if '"train"' in line] == [1, 2, 3, 4, 5]


def test_stop_and_resume_from_the_command_line(tmp_path, hr_dir, recipe):
    out = tmp_path / "m.safetensors"
    first = run("train", hr_dir, "--out", out, "--config", recipe, "--pretrain-steps", 2, "--gan-steps", 1,
                "--stop-after", 1, "--quiet")
    assert first.exit_code == 0, first.output
    assert not out.exists() and (tmp_path / "m.state.safetensors").exists()
    second = run("train", "--resume", tmp_path / "m.state.safetensors", "--gan-steps", 2)
    assert second.exit_code == 0, second.output
    _, info = load_generator(out)
    assert info.training["steps"] == {"pretrain": 2, "gan": 2}
    changed = run("train", "--resume", tmp_path / "m.state.safetensors", "--batch-size", 3)
    assert changed.exit_code == 1 and "cannot resume with a different batch_size" in changed.output


def test_init_continues_from_a_model_and_adds_up_its_history(tmp_path, hr_dir, recipe):
    first = tmp_path / "first.safetensors"
    assert run("train", hr_dir, "--out", first, "--config", recipe, "--pretrain-steps", 2, "--gan-steps", 0,
               "--quiet").exit_code == 0
    started, first_info = load_generator(first)
    second = tmp_path / "second.safetensors"
    result = run("train", hr_dir, "--out", second, "--config", recipe, "--pretrain-steps", 3, "--gan-steps", 0,
                 "--init", first, "--quiet")
    assert result.exit_code == 0, result.output
    trained, info = load_generator(second)
    assert info.card["steps"] == {"pretrain": 5, "gan": 0}
    assert [entry["steps"]["pretrain"] for entry in info.card["history"]] == [2, 3]
    seconds = [entry["seconds"] for entry in info.card["history"]]
    assert info.card["training_seconds"] == pytest.approx(sum(seconds), abs=0.2)
    assert seconds[0] == first_info.card["training_seconds"]
    assert any(not torch.equal(w, trained.state_dict()[n]) for n, w in started.state_dict().items())


def test_init_refuses_another_architecture_and_a_resumed_run(tmp_path, hr_dir, recipe):
    first = tmp_path / "first.safetensors"
    assert run("train", hr_dir, "--out", first, "--config", recipe, "--pretrain-steps", 1, "--gan-steps", 0,
               "--quiet").exit_code == 0
    other = run("train", hr_dir, "--out", tmp_path / "x2.safetensors", "--config", recipe, "--scale", 2,
                "--pretrain-steps", 1, "--gan-steps", 0, "--init", first)
    assert other.exit_code == 1 and "architecture differs from the recipe's (scale" in other.output
    assert not (tmp_path / "x2.safetensors").exists()
    resumed = run("train", "--resume", tmp_path / "first.state.safetensors", "--init", first)
    assert resumed.exit_code == 2 and "--init starts a new run" in resumed.output


def test_help_describes_the_command_with_an_example():
    result = run("train", "--help")
    assert result.exit_code == 0
    assert "Train an SR-GAN generator" in result.output and "srrestore train ../shared/data/sr/train" in result.output


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["{missing}", "--out", "{out}"], "training folder not found"),
        (["{empty}", "--out", "{out}"], "no images"),
        (["{hr}", "--out", "{out}", "--scale", "7"], "scale must be two factors"),
        (["{hr}", "--out", "{out}", "--config", "{bad_recipe}"], "did you mean 'patch_size'"),
        (["{hr}", "--out", "{out}", "--patch-size", "30"], "patch_size (a multiple of the scale"),
        (["{hr}", "--out", "{out}", "--device", "gpu"], "unknown device 'gpu'"),
        (["--resume", "{out}"], "training state not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(tmp_path, hr_dir, arguments, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.json").write_text(json.dumps({"patch_sise": 64}))
    names = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "hr": hr_dir,
             "out": tmp_path / "m.safetensors", "bad_recipe": tmp_path / "bad.json"}
    result = run("train", *[argument.format(**names) for argument in arguments])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("srrestore: error:") and message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "m.safetensors").exists()


def test_existing_output_needs_overwrite(tmp_path, hr_dir, recipe):
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"old")
    result = run("train", hr_dir, "--out", out, "--config", recipe, "--pretrain-steps", 1, "--gan-steps", 0)
    assert result.exit_code == 1 and "exists; pass --overwrite" in result.output
    assert out.read_bytes() == b"old"


@pytest.mark.parametrize(
    "arguments, message",
    [
        ([], "give at least one HR_DIR"),
        (["{hr}"], "give --out"),
        (["{hr}", "--out", "m.safetensors", "--channels", "0"], "Invalid value for '--channels'"),
        (["{hr}", "--out", "m.safetensors", "--frobnicate"], "No such option"),
    ],
)
def test_usage_errors_exit_2(hr_dir, arguments, message):
    result = run("train", *[argument.format(hr=hr_dir) for argument in arguments])
    assert result.exit_code == 2 and message in result.output


@pytest.mark.slow
def test_torchrun_trains_with_two_cpu_processes(tmp_path, hr_dir, recipe):
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp.safetensors"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "srrestore", "train", str(hr_dir), "--out", str(out), "--config", str(recipe),
               "--pretrain-steps", "2", "--gan-steps", "1", "--device", "cpu", "--quiet",
               "--log-file", str(tmp_path / "ddp.jsonl")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    _, info = load_generator(out)
    assert info.training["world_size"] == 2
    lines = [json.loads(line) for line in (tmp_path / "ddp.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3]  # rank 0 alone writes the log


def test_later_recipes_override_earlier_ones_key_by_key(tmp_path, hr_dir, recipe):
    stage = tmp_path / "stage.toml"
    stage.write_text("batch_size = 3\n[loss]\nbeta = 0.005\n")
    out = tmp_path / "m.safetensors"
    result = run("train", hr_dir, "--out", out, "--config", recipe, "--config", stage, "--pretrain-steps", 1,
                 "--gan-steps", 1, "--quiet")
    assert result.exit_code == 0, result.output
    stored = load_generator(out)[1].training["recipe"]
    assert stored["batch_size"] == 3 and stored["patch_size"] == 32  # the second file's key, the first file's other
    assert stored["loss"]["beta"] == 0.005 and stored["loss"]["content"] == "feature-matching"


def test_init_grows_a_model_into_a_deeper_recipe(tmp_path, hr_dir, recipe):
    first = tmp_path / "first.safetensors"
    assert run("train", hr_dir, "--out", first, "--config", recipe, "--pretrain-steps", 1, "--gan-steps", 0,
               "--quiet").exit_code == 0
    deeper = tmp_path / "deeper.toml"
    deeper.write_text("[generator_options]\nblocks_per_group = 2\n")
    out = tmp_path / "grown.safetensors"
    result = run("train", hr_dir, "--out", out, "--config", recipe, "--config", deeper, "--pretrain-steps", 1,
                 "--gan-steps", 0, "--init", first, "--quiet")
    assert result.exit_code == 0, result.output
    grown, info = load_generator(out)
    assert grown.config.blocks_per_group == 2
    assert [entry.get("grown") for entry in info.card["history"]] == [None, {"blocks_per_group": [1, 2]}, None]
    assert info.card["steps"] == {"pretrain": 2, "gan": 0}


def test_init_makes_an_in_plane_model_through_plane_for_a_slice_recipe(tmp_path, hr_dir, recipe):
    """A ``(s, 1)`` recipe started from an ``(s, s)`` model: weight surgery, recorded in the card's history."""
    first = tmp_path / "first.safetensors"
    assert run("train", hr_dir, "--out", first, "--config", recipe, "--scale", 2, "--channels", 1,
               "--pretrain-steps", 1, "--gan-steps", 0, "--quiet").exit_code == 0
    slices = tmp_path / "slices.toml"
    slices.write_text('scale = [2, 1]\n[degradation]\nslice_profile = "family"\nquantize = false\n')
    out = tmp_path / "slices.safetensors"
    result = run("train", hr_dir, "--out", out, "--config", recipe, "--config", slices, "--channels", 1,
                 "--pretrain-steps", 1, "--gan-steps", 0, "--init", first, "--quiet")
    assert result.exit_code == 0, result.output
    model, info = load_generator(out)
    assert model.config.scale == (2, 1)
    surgery = info.card["history"][1]["made_through_plane"]
    assert surgery["scale"] == [2, 1] and "averaged over the 2 column sub-pixels" in surgery["how"]
    assert info.training["recipe"]["degradation"]["slice_profile"] == "family"
