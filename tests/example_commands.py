"""Running ``srrestore`` command lines from the documentation on small stand-ins, in seconds.

Shared by the test that runs every ``--help`` example (``tests/cli/test_help_examples.py``)
and the one that runs every example of the README and ``docs/`` (``tests/test_doc_examples.py``).
:func:`run_command_line` runs one command line for real in the working directory. Inputs are
found in this order:

- a path that exists in the working directory (written by an earlier command of the same
  page, or a repository folder the caller linked there) is used as it is;
- a file the repository holds (``examples/data/*``, ``configs/*``) is copied;
- anything else gets a small stand-in made by :class:`Workspace` from the parameter the path
  binds to and its suffix: a 32x32 PNG, a 48x48 three-band GeoTIFF (its reference twice as
  large, its low-resolution input half as large), a thick-slice NIfTI, a four-slice DICOM
  series built from pydicom's ``CT_small.dcm``, folders of small HR PNGs for
  ``../shared/data/sr/...``, tiny untrained checkpoints for model files, a training state made
  by a two-step run for ``--resume``.

Every flag of the command line is kept; only limits are appended (:func:`limits`) so that each
runs in seconds on a CPU:

- ``restore``: ``--model <tiny checkpoint of the example's factor>`` unless it names a model,
  ``--device cpu``;
- ``finetune``: ``--model <tiny checkpoint>`` unless given, ``--steps 2 --batch-size 2
  --patch-size 16 --device cpu``;
- ``train``: ``--pretrain-steps 2 --gan-steps 0 --batch-size 2 --patch-size 32 --device cpu``
  (``--gan-steps 0``: the default recipe's adversarial phase uses ImageNet VGG19 weights,
  which are downloaded), or with ``--resume`` ``--pretrain-steps 2 --gan-steps 1 --device cpu``
  (a resumed run may only grow its step counts); ``torchrun`` command lines run through
  ``python -m torch.distributed.run --standalone`` (a free rendezvous port, not 29500, which
  concurrent runs would share).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import imageio.v3 as iio
import nibabel as nib
import numpy as np
import pydicom
import rasterio
import torch
from click.testing import CliRunner
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from rasterio.transform import from_origin

from srrestore.cli.main import cli
from srrestore.models.checkpoint import save_generator
from srrestore.models.generator import create_generator

__all__ = ["ROOT", "Workspace", "limits", "prepare", "run_command_line"]

ROOT = Path(__file__).resolve().parents[1]

# Parameters whose values are written by the command; every other path-like value is an input.
OUTPUT_PARAMETERS = {"output_path", "out", "output", "psnr_out", "state_path", "log_path", "state", "log"}
MODEL_SUFFIXES = (".safetensors", ".pth")


def factor_of(arguments: list[str], flags: tuple[str, ...], default: int) -> int:
    """The value of the last of ``flags`` in ``arguments`` (an int), else ``default``."""
    value = default
    for index, argument in enumerate(arguments[:-1]):
        if argument in flags:
            value = int(arguments[index + 1])
    return value


def has_option(arguments: list[str], *flags: str) -> bool:
    return any(argument in flags or argument.split("=")[0] in flags for argument in arguments)


# The smallest generator the architecture allows: no residual groups, one pass (no feedback). Examples check that
# commands run, not what they restore; on 512 px slices this runs about 16 times faster than plain "test-tiny".
STAND_IN_GENERATOR = {"num_groups": 0, "feedback_steps": 1}


def tiny_model(path: Path, channels: int, scale: int | tuple[int, int]) -> Path:
    """An untrained stand-in checkpoint (:data:`STAND_IN_GENERATOR`) at ``path``."""
    torch.manual_seed(0)
    return save_generator(path, create_generator("test-tiny", in_channels=channels, scale=scale, **STAND_IN_GENERATOR))


def write_png(path: Path, size: int = 32, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    smooth = 128 + 90 * np.sin(0.3 * y[..., None] + 0.2 * x[..., None] + np.arange(3))
    iio.imwrite(path, np.clip(smooth + 10 * rng.standard_normal((size, size, 3)), 0, 255).astype(np.uint8))
    return path


def write_geotiff(path: Path, size: int = 48, pixel: float = 30.0) -> Path:
    """A three-band uint16 scene of ``size`` pixels over the same 1440 m square, a zero corner (fill)."""
    y, x = np.mgrid[:size, :size] * (48 / size)
    values = np.stack([2000 + 900 * np.sin(0.25 * y + 0.15 * x + band) for band in range(3)])
    values[:, (y + x) < 6] = 0
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint16",
                       crs="EPSG:32618", transform=from_origin(500000, 4000000, 1440 / size, 1440 / size)) as dataset:
        dataset.write(values.astype(np.uint16))
    return path


def write_nifti(path: Path) -> Path:
    """A 48x48x6 int16 MR-like volume of 1 x 1 x 4 mm voxels (thick slices: factor 4)."""
    z, y, x = np.meshgrid(np.arange(6), np.arange(48), np.arange(48), indexing="ij")
    volume = 300 + 200 * np.sin(0.3 * x + 0.2 * y + 0.5 * z)
    nib.save(nib.Nifti1Image(np.moveaxis(volume, 0, -1).astype(np.int16), np.diag([1.0, 1.0, 4.0, 1.0])), path)
    return path


def write_dicom_series(folder: Path, slices: int = 4) -> Path:
    """``CT_small.dcm`` (one 128x128 CT slice) stacked into a series of ``slices`` 5 mm apart."""
    folder.mkdir(parents=True)
    source = get_testdata_file("CT_small.dcm")
    first = pydicom.dcmread(source)
    series, normal = generate_uid(), np.cross(*np.reshape(np.array(first.ImageOrientationPatient, float), (2, 3)))
    for k in range(slices):
        dataset = pydicom.dcmread(source)
        position = np.array(first.ImagePositionPatient, float) + 5.0 * k * normal
        dataset.ImagePositionPatient = [float(v) for v in position]
        dataset.SliceLocation = float(position @ normal)
        dataset.SliceThickness = 5.0
        dataset.InstanceNumber = k + 1
        dataset.SeriesInstanceUID = series
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.save_as(folder / f"ct{k}.dcm")
    return folder


def write_image_folder(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        write_png(folder / f"hr{index}.png", size=48, seed=index)
    return folder


class Workspace:
    """Makes the stand-in of each input path of an example, in one folder."""

    def __init__(self, root: Path, command: str, arguments: list[str]) -> None:
        self.root = root
        self.command = command
        self.arguments = arguments
        self.made: dict[str, Path] = {}

    def place(self, token: str) -> Path:
        """Where the stand-in of ``token`` goes: inside the workspace, named after the token."""
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", token.strip("/").replace("../", "up_")) or "input"
        return self.root / "inputs" / name

    def stand_in(self, token: str, parameter: str) -> str:
        if token in self.made:
            return str(self.made[token])
        self.made[token] = path = self.make(token, parameter)
        return str(path)

    def make(self, token: str, parameter: str) -> Path:
        if not token.startswith("..") and not Path(token).is_absolute() and (self.root / token).exists():
            return self.root / token  # an earlier command's output, or a folder the caller linked here
        repository_file = ROOT / token
        if not token.startswith("..") and repository_file.is_file():  # examples/data/*, configs/*
            target = self.place(token)
            target.parent.mkdir(parents=True, exist_ok=True)
            return Path(shutil.copy(repository_file, target))
        target = self.place(token)
        target.parent.mkdir(parents=True, exist_ok=True)
        lower = token.lower()
        if parameter in ("hr_dirs", "val_dirs"):
            return write_image_folder(target)
        if parameter == "resume_path":
            return self.training_state(target)
        if parameter == "resume":
            return self.finetuning_state(target)
        if lower.endswith(MODEL_SUFFIXES):
            return self.model(token, target)
        if lower.endswith(".png"):
            return write_png(target)
        if lower.endswith((".tif", ".tiff")):
            return write_geotiff(target, size=self.raster_size(parameter))
        if lower.endswith((".nii", ".nii.gz")):
            return write_nifti(target)
        if token.endswith("/") or "." not in Path(token).name:
            if self.command in ("restore", "finetune", "evaluate") and re.search(r"ct|mr|dicom|series", lower):
                return write_dicom_series(target)
            return write_image_folder(target)
        raise AssertionError(f"no stand-in for {token!r} ({parameter}): teach Workspace.make this kind of file")

    def raster_size(self, parameter: str) -> int:
        """48 pixels; a fine-tuning reference ``--scale`` times larger, an ``evaluate --lr`` input smaller."""
        if self.command == "finetune" and parameter == "reference":
            return 48 * factor_of(self.arguments, ("--scale", "-s"), 4)
        if self.command == "evaluate" and parameter == "low_res":
            return 48 // factor_of(self.arguments, ("--scale", "-s"), 2)
        return 48

    def model(self, token: str, target: Path) -> Path:
        """A model file: for ``average``, a copy of the built-in it is averaged with (same architecture);
        else a tiny checkpoint of the factor in its name (``_x4``) or the example's ``--scale``, an
        ``(s, 1)`` through-plane one when the example gives ``--slice-scale`` alone."""
        if self.command == "average":
            from srrestore.models.registry import resolve_checkpoint

            built_in = next((a for a in self.arguments[1:] if a != token and not a.startswith("-")
                             and not a.endswith(MODEL_SUFFIXES) and "/" not in a), None)
            if built_in is not None:
                return Path(shutil.copy(resolve_checkpoint(built_in), target))
        named = re.search(r"x(\d)", Path(token).stem)
        scale = int(named.group(1)) if named else factor_of(self.arguments, ("--scale", "-s"), 2)
        through = has_option(self.arguments, "--slice-scale") and not has_option(self.arguments, "--scale", "-s")
        return tiny_model(target, 1, (scale, 1) if through else scale)  # a volume's only pass: through-plane

    def training_state(self, target: Path) -> Path:
        """A resumable state: a two-step run of the built-in RGB x4 recipe (no downloads in its GAN phase)."""
        assert target.name.endswith(".state.safetensors"), target
        model = target.with_name(target.name.replace(".state.safetensors", ".safetensors"))
        result = CliRunner().invoke(cli, [
            "train", str(write_image_folder(self.root / "inputs" / "state_hr")), "--out", str(model),
            "--config", str(ROOT / "configs/builtin/_shared/srgan-base.toml"),
            "--config", str(ROOT / "configs/builtin/srgan-rgb-x4-psnr/01-start-96px.toml"),
            "--pretrain-steps", "2", "--gan-steps", "0", "--batch-size", "2", "--patch-size", "32", "--device", "cpu",
            "--quiet"])
        assert result.exit_code == 0, result.output
        assert target.is_file(), sorted(p.name for p in target.parent.iterdir())
        return target

    def finetuning_state(self, target: Path) -> Path:
        """A fine-tuning state: the example's run (same inputs, options and limits) stopped after one step."""
        inputs = [token for token in self.arguments[1:] if token in self.made]
        assert inputs, f"make the inputs of {self.arguments} before their state"
        result = CliRunner().invoke(cli, [
            "finetune", *(str(self.made[token]) for token in inputs),
            "--out", str(target.with_name("session-1.safetensors")), "--state", str(target), "--stop-after", "1",
            "--quiet", *limits("finetune", self.arguments, self.root)])
        assert result.exit_code == 0, result.output
        assert target.is_file(), sorted(p.name for p in target.parent.iterdir())
        return target


def bound_parameters(command: str, arguments: list[str]) -> dict[str, Any]:
    """``token -> click parameter`` for every argument value of ``arguments`` (click's own parsing)."""
    click_command = cli.commands[command]
    ctx = click_command.make_context(command, list(arguments), resilient_parsing=True)
    parameters = {parameter.name: parameter for parameter in click_command.params}
    bound = {}
    for name, value in ctx.params.items():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if not isinstance(item, (str, os.PathLike)):
                continue
            for token in arguments:
                if not token.startswith("-") and os.path.normpath(token) == os.path.normpath(str(item)):
                    bound[token] = parameters[name]
    return bound


MODEL_PARAMETERS = ("model", "models", "init_model", "slice_model")


def is_path(token: str, parameter: Any) -> bool:
    """A file or folder the command reads or writes: a ``click.Path`` value, or a model given as a file."""
    if parameter is None:
        return False
    if parameter.name in MODEL_PARAMETERS:
        return token.lower().endswith(MODEL_SUFFIXES)
    return isinstance(parameter.type, click.Path)


def is_volume(arguments: list[str]) -> bool:
    """True when the example's input (its first positional argument after the command) is a NIfTI file or a DICOM
    series."""
    token = next((a for a in arguments[1:] if not a.startswith("-")), "").lower()
    folder = token.endswith("/") or "." not in Path(token).name
    return token.endswith((".nii", ".nii.gz", ".dcm")) or (folder and re.search(r"ct|mr|dicom|series", token) is not None)


def limits(command: str, arguments: list[str], root: Path) -> list[str]:
    """The options appended to an example so that it runs in seconds (see the module docstring)."""
    models = root / "models"
    models.mkdir(exist_ok=True)
    if command == "restore":
        extra = ["--device", "cpu"]
        slice_scale = next((arguments[i + 1] for i, a in enumerate(arguments[:-1]) if a == "--slice-scale"), None)
        if not has_option(arguments, "--model", "-m"):
            if not has_option(arguments, "--scale", "-s") and slice_scale in (None, "auto") and is_volume(arguments):
                pass  # a volume's default, through-plane: the built-in slice models run (they are small)
            elif has_option(arguments, "--slice-scale"):
                through = factor_of(arguments, ("--slice-scale",), 2)
                through_model = tiny_model(models / f"through{through}.safetensors", 1, (through, 1))
                if has_option(arguments, "--scale", "-s"):
                    scale = factor_of(arguments, ("--scale", "-s"), 2)
                    extra += ["--model", str(tiny_model(models / f"in{scale}.safetensors", 1, scale))]
                    if not has_option(arguments, "--slice-model"):
                        extra += ["--slice-model", str(through_model)]
                else:
                    extra += ["--model", str(through_model)]
            else:
                scale = factor_of(arguments, ("--scale", "-s"), 2)
                extra += ["--model", str(tiny_model(models / f"in{scale}.safetensors", 1, scale))]
        return extra
    if command == "finetune":
        extra = ["--steps", "2", "--batch-size", "2", "--patch-size", "16", "--device", "cpu"]
        if not has_option(arguments, "--model", "-m"):
            scale = factor_of(arguments, ("--scale", "-s"), 4)
            scan = any(a.lower().endswith((".nii", ".nii.gz", ".dcm")) for a in arguments)
            channels = 1 if scan else 3
            extra += ["--model", str(tiny_model(models / f"tiny{channels}x{scale}.safetensors", channels, scale))]
        return extra
    if command == "train":
        if has_option(arguments, "--resume"):
            return ["--pretrain-steps", "2", "--gan-steps", "1", "--device", "cpu"]
        return ["--pretrain-steps", "2", "--gan-steps", "0", "--batch-size", "2", "--patch-size", "32",
                "--device", "cpu"]
    return []


def prepare(example: str, root: Path) -> tuple[list[str], list[str], list[str]]:
    """``(launcher, srrestore arguments with stand-ins and limits, output paths)`` of an example."""
    tokens = shlex.split(example)
    if tokens[0] == "torchrun":
        index = tokens.index("srrestore")
        assert tokens[index - 1] == "-m", example
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", *tokens[1 : index - 1], "-m",
                    "srrestore"]
        arguments = tokens[index + 1 :]
    else:
        assert tokens[0] == "srrestore", f"not an srrestore command line: {example}"
        launcher, arguments = [], tokens[1:]
    command = arguments[0]
    assert command in cli.commands, f"unknown command in {example!r}"
    workspace = Workspace(root, command, arguments)
    bound = bound_parameters(command, arguments[1:])
    substituted, outputs = [command], []
    for token in arguments[1:]:
        parameter = bound.get(token)
        if not is_path(token, parameter):
            substituted.append(token)  # an option, a number, a built-in model name...
        elif parameter.name in OUTPUT_PARAMETERS:
            output = str(root / Path(token).name) if token.startswith(("..", "/")) else token
            substituted.append(output)
            outputs.append(output)
        else:
            substituted.append(workspace.stand_in(token, parameter.name))
    return launcher, [*substituted, *limits(command, arguments, root)], outputs


def run_command_line(line: str, root: Path) -> None:
    """Run one ``srrestore`` (or ``torchrun ... -m srrestore``) command line in ``root``, the working
    directory, on stand-ins and with limits; assert that it succeeded and wrote its outputs."""
    launcher, arguments, outputs = prepare(line, root)
    if launcher:
        result = subprocess.run([*launcher, *arguments], capture_output=True, text=True, timeout=300, check=False,
                                cwd=root, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, f"{line}\n{' '.join(arguments)}\n{result.stdout}\n{result.stderr[-4000:]}"
    else:
        result = CliRunner().invoke(cli, arguments)
        assert result.exit_code == 0, f"{line}\nran: srrestore {' '.join(arguments)}\n{result.output}"
    for output in outputs:
        assert (root / output).exists(), f"{line}: {output} was not written"
