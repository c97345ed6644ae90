"""`srrestore finetune`: a model `srrestore restore` accepts, format dispatch, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import imageio.v3 as iio
import pytest
import rasterio
import torch
from click.testing import CliRunner
from skimage import data

from srrestore.cli.finetune import finetune as finetune_command
from srrestore.cli.main import cli
from srrestore.models.checkpoint import load_generator, read_checkpoint_info, save_generator
from srrestore.models.generator import create_generator
from srrestore.training.finetune import FinetuneOptions, FinetuneReport

FAST = ["--steps", "3", "--batch-size", "2", "--patch-size", "16", "--no-adversarial", "--perceptual-weight", "0",
        "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_generator(tmp_path_factory.mktemp("models") / "tiny.safetensors",
                          create_generator("test-tiny", in_channels=3, scale=4))


@pytest.fixture
def scene(fixtures_dir) -> Path:
    return fixtures_dir / "satellite" / "landsat_rgb_nodata0.tif"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_finetune_writes_a_model_that_restore_accepts(tmp_path, scene, tiny):
    model = tmp_path / "scene.safetensors"
    result = run("finetune", scene, "--out", model, "--model", tiny, *FAST)
    assert result.exit_code == 0, result.output
    assert read_checkpoint_info(model).training["steps"] == {"pretrain": 3, "gan": 0}
    restored = tmp_path / "scene_x4.tif"
    result = run("restore", scene, restored, "--model", model, "--quiet")
    assert result.exit_code == 0, result.output
    with rasterio.open(scene) as source, rasterio.open(restored) as output:
        assert (output.width, output.height) == (4 * source.width, 4 * source.height)
        assert output.bounds == source.bounds


def test_finetune_reports_what_it_did(tmp_path, scene, tiny):
    result = run("finetune", scene, "--out", tmp_path / "m.safetensors", "--model", tiny, *FAST[:-1])
    assert result.exit_code == 0, result.output
    assert "3/3 steps" in result.output and "PSNR on held-out patches" in result.output
    assert "saved the weights of step" in result.output


def test_medical_inputs_go_to_the_medical_pipeline(tmp_path, tiny, monkeypatch):
    import nibabel as nib
    import numpy as np

    volume = tmp_path / "scan.nii.gz"
    slices = np.stack([data.camera()[:64, :64]] * 3, axis=-1).astype(np.int16)
    nib.save(nib.Nifti1Image(slices, np.eye(4)), volume)
    calls = []

    def finetune_medical(inputs: list[Path], output: Path, options: dict) -> FinetuneReport:
        calls.append((inputs, output, options))
        return FinetuneReport(output, "tiny", 1, (4, 4), "psnr", 3, 3, 1.0, False)

    module = types.ModuleType("srrestore.pipelines.medical.finetune")
    module.finetune_medical = finetune_medical  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "srrestore.pipelines.medical.finetune", module)
    result = run("finetune", volume, "--out", tmp_path / "m.safetensors", "--model", tiny, "--steps", "7", "--quiet")
    assert result.exit_code == 0, result.output
    assert calls[0][0] == [volume] and calls[0][2]["steps"] == 7 and calls[0][2]["model"] == str(tiny)
    assert calls[0][2]["slice_profile"] is None  # not given: the pipeline takes its default and says so
    result = run("finetune", volume, "--out", tmp_path / "m.safetensors", "--model", tiny, "--slice-profile", "box",
                 "--quiet")
    assert result.exit_code == 0, result.output
    assert calls[1][2]["slice_profile"] == "box"


@pytest.mark.parametrize(("arguments", "message"), [
    (["missing.tif"], "input not found: missing.tif"),
    (["{png}"], "fine-tuning takes GeoTIFF scenes or NIfTI/DICOM scans of one kind"),
    (["{scene}", "--blur-sigma", "wide"], "a sigma must be a number or MIN,MAX, got 'wide'"),
    (["{scene}", "--vgg-weights", "imagenett"], "did you mean 'imagenet'"),
    (["{scene}", "--vgg-layer", "relu9_9"], "unknown VGG19 layer 'relu9_9'"),
    (["{scene}", "--scale", "2"], "upscales by 4x4, not 2"),
    (["{scene}", "--patch-size", "18"], "patch size 18 must be a positive multiple of the scale"),
    (["{scene}", "--reference", "{scene}", "--reference", "{scene}"], "one --reference per scene"),
    (["{scene}", "--slice-profile", "box"], "option --slice-profile does not apply to GeoTIFF scenes"),
    (["{scene}", "--perceptual-network", "medicalnet_resnet10_23datasets"], "fine-tuning trains on 2-D patches"),
    (["{scene}", "--perceptual-network", "resnet50"], "unknown perceptual network 'resnet50'"),
])
def test_bad_input_is_one_line_and_exit_code_1(tmp_path, scene, tiny, arguments, message):
    png = tmp_path / "photo.png"
    iio.imwrite(png, data.astronaut()[:64, :64])
    output = tmp_path / "m.safetensors"
    filled = [argument.format(scene=scene, png=png) for argument in arguments]
    result = run("finetune", "--out", output, "--model", tiny, *FAST, *filled)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("srrestore: error: ") and message in lines[0]
    assert not output.exists()


def test_an_existing_output_needs_overwrite(tmp_path, scene, tiny):
    output = tmp_path / "m.safetensors"
    output.write_bytes(b"keep")
    result = run("finetune", scene, "--out", output, "--model", tiny, *FAST)
    assert result.exit_code == 1 and "exists; pass --overwrite" in result.output
    assert output.read_bytes() == b"keep"
    assert run("finetune", scene, "--out", output, "--model", tiny, *FAST, "--overwrite").exit_code == 0


def test_command_defaults_are_the_options_defaults():
    defaults = FinetuneOptions()
    for parameter in finetune_command.params:
        if parameter.name in ("learning_rate", "steps", "max_minutes", "batch_size", "patch_size", "pixel_loss",
                              "pixel_weight", "perceptual_weight", "perceptual_network", "adversarial",
                              "adversarial_weight",
                              "vgg_weights", "vgg_layer", "min_valid_fraction", "seed", "model", "phase", "device",
                              "holdout_fraction", "validation_interval", "patience"):
            assert parameter.default == getattr(defaults, parameter.name), parameter.name


def test_a_scan_fine_tunes_with_radimagenet_features_from_the_hub_cache(tmp_path, tiny, fake_monai_hub):
    import nibabel as nib
    import numpy as np

    volume = tmp_path / "thick.nii.gz"
    camera = data.camera().astype(np.int16)
    slices = np.stack([camera[64 * k : 64 * k + 64, 128:192] for k in range(6)], axis=-1)  # 1 x 1 x 2 mm
    nib.save(nib.Nifti1Image(slices, np.diag([1.0, 1.0, 2.0, 1.0])), volume)
    model = tmp_path / "scan.safetensors"
    result = run("finetune", volume, "--out", model, "--model", tiny, *FAST, "--perceptual-weight", "0.01",
                 "--perceptual-network", "radimagenet_resnet50")
    assert result.exit_code == 0, result.output
    info = read_checkpoint_info(model)
    assert info.card["losses"]["perceptual"].startswith("RadImageNet ResNet50 (MONAI PerceptualLoss")
    assert info.training["options"]["perceptual_network"] == "radimagenet_resnet50"
    assert info.training["losses"]["last"]["content"] > 0


def _torchrun(*arguments) -> subprocess.CompletedProcess[str]:
    """``srrestore ARGUMENTS`` under ``torchrun --nproc-per-node 2`` on the CPU (Gloo)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "srrestore", *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_a_scene_fine_tunes_in_bf16_on_the_cpu(tmp_path, scene, tiny):
    model = tmp_path / "bf16.safetensors"
    result = run("finetune", scene, "--out", model, "--model", tiny, *FAST, "--precision", "bf16")
    assert result.exit_code == 0, result.output
    info = read_checkpoint_info(model)
    assert info.training["precision"] == "bf16" and info.training["recipe"]["precision"] == "bf16"
    assert info.training["steps"] == {"pretrain": 3, "gan": 0}


@pytest.mark.slow
def test_a_scene_fine_tunes_under_torchrun_with_two_cpu_processes(tmp_path, scene, tiny):
    model, log = tmp_path / "ddp.safetensors", tmp_path / "ddp.jsonl"
    done = _torchrun("finetune", scene, "--out", model, "--model", tiny, *FAST, "--validation-interval", "2",
                     "--log-file", log)
    assert done.returncode == 0, done.stderr[-2000:]
    info = read_checkpoint_info(model)
    assert info.training["world_size"] == 2 and info.training["steps"] == {"pretrain": 3, "gan": 0}
    events = [json.loads(line) for line in log.read_text().splitlines()]  # rank 0 alone writes the log
    assert [event["step"] for event in events if event["event"] == "validation"] == [0, 2, 3]
    assert [event["step"] for event in events if event["event"] == "train"] == [3]


def test_an_interrupted_fine_tuning_resumes_exactly(tmp_path, scene, tiny):
    """Two sessions (2 + 2 steps) give the weights of one 4-step run, bit for bit (same process, same CPU)."""
    # A huge time budget: the schedule follows the steps alone (time progress would make runs differ).
    arguments = ("--model", tiny, *FAST, "--steps", "4", "--validation-interval", "1", "--max-minutes", "1e6")
    whole = tmp_path / "whole.safetensors"
    assert run("finetune", scene, "--out", whole, *arguments).exit_code == 0
    split, state = tmp_path / "split.safetensors", tmp_path / "split.state.safetensors"
    first = run("finetune", scene, "--out", split, *arguments, "--state", state, "--stop-after", "2")
    assert first.exit_code == 0, first.output
    assert state.is_file() and not split.exists()  # no model until the run ends
    second = run("finetune", scene, "--out", split, *arguments, "--resume", state)
    assert second.exit_code == 0, second.output
    whole_weights, split_weights = (load_generator(path)[0].state_dict() for path in (whole, split))
    for name, value in whole_weights.items():
        assert torch.equal(value, split_weights[name]), name
    assert read_checkpoint_info(split).training["steps"] == {"pretrain": 4, "gan": 0}
