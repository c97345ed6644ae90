"""The recipe tree of the built-in models: the stages that made each one, and the commands that remake it.

``configs/builtin/<model>/`` holds one training recipe per stage, ``NN-<what>.toml`` (``NN``: the
stage's number), each stating only what differs from the recipes it is layered over, and
``stages.toml``, how the stages run:

- ``data``, ``validation``: the training folders and the ``--val-dir`` folders of every stage;
- ``threads`` (optional): the CPU threads every stage trained on (``--threads``);
- ``start`` (optional), ``"MODEL/NN"``: the model continues from stage ``NN`` of MODEL, whose stages
  up to ``NN`` it shares (a GAN model branches off its PSNR model);
- ``[stage.NN]``, one per stage file: ``over``, the recipes the stage is layered over, in order:
  ``"NN"`` (a stage of this model), ``"MODEL/NN"`` (a stage of another), each with everything it is
  layered over, or a file under ``configs/builtin`` (``"_shared/srgan-base.toml"``);
  ``data`` (optional), the stage's own training folders instead of the manifest's (``[]``: none, the
  stage trains on its exported data alone);
  ``exported_data`` (optional), scripts that write extra training folders (``python SCRIPT FOLDER``);
  ``average_with_start`` (optional), average the trained weights with those the stage started from
  (``srrestore average``).

A stage starts from the previous stage's model (the first from ``start``'s, or from scratch). Its
model is the phase 1 (PSNR) output when its recipe has phase 1 steps, else the phase 2 (GAN) output.
Recipes are read and merged by :mod:`srrestore.training.config`, as ``srrestore train --config``
reads them; ``stages.toml`` is not a recipe.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srrestore.errors import ConfigError, check_choice
from srrestore.training.config import TrainingConfig, load_recipe, merge_recipes

__all__ = ["PROJECT_ROOT", "RECIPES_DIR", "project_path", "Stage", "Command", "RecipeTree"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RECIPES_DIR = PROJECT_ROOT / "configs" / "builtin"
MANIFEST = "stages.toml"
MANIFEST_KEYS = ("data", "validation", "threads", "start", "stage")
STAGE_KEYS = ("over", "data", "exported_data", "average_with_start")


def project_path(path: Path) -> str:
    """``path`` as named from the project root (``configs/builtin/...``), else as it is."""
    try:
        return path.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return path.as_posix()


@dataclass(frozen=True)
class Stage:
    """One training run (and its averaging) in a built-in model's history.

    Attributes:
        model: the model whose folder holds the stage's recipe.
        number: the stage's place in that model's history (1 = first).
        layers: every recipe the run layers (``--config``), in order, the stage's own file last.
        data: the training folders.
        validation: the ``--val-dir`` folders.
        threads: the CPU threads it trained on (None: not recorded).
        exported_data: scripts that write extra training folders (``python SCRIPT FOLDER``).
        average_with_start: average the trained weights with those the run started from.
    """

    model: str
    number: int
    layers: tuple[Path, ...]
    data: tuple[str, ...]
    validation: tuple[str, ...]
    threads: int | None = None
    exported_data: tuple[str, ...] = ()
    average_with_start: bool = False

    @property
    def recipe(self) -> Path:
        """The stage's own recipe file."""
        return self.layers[-1]

    @property
    def name(self) -> str:
        """The recipe file's name without suffix, e.g. ``07-l1-half-lr``."""
        return self.recipe.stem

    def config_files(self) -> list[str]:
        """The layers as ``srrestore train --config`` takes them from the project root."""
        return [project_path(layer) for layer in self.layers]

    def merged_recipe(self) -> dict[str, Any]:
        """The run's recipe: its layers merged key by key, as ``srrestore train --config`` merges them."""
        merged: dict[str, Any] = {}
        for layer in self.layers:
            merged = merge_recipes(merged, load_recipe(layer))
        return merged

    def config(self) -> TrainingConfig:
        """The run's :class:`TrainingConfig` (raises ConfigError when the layers do not make a valid one)."""
        return TrainingConfig.from_dict(self.merged_recipe())


@dataclass(frozen=True)
class Command:
    """One command of a model's reproduction: what it does and its arguments."""

    title: str
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return shlex.join(self.argv)


class RecipeTree:
    """The stages of the built-in models, read from ``configs/builtin`` (or another ``root``)."""

    def __init__(self, root: Path = RECIPES_DIR) -> None:
        self.root = root
        self._manifests: dict[str, dict[str, Any]] = {}

    def names(self) -> list[str]:
        """The models that have a recipe folder, sorted."""
        return sorted(path.parent.name for path in self.root.glob(f"*/{MANIFEST}"))

    def stages(self, model: str) -> list[Stage]:
        """Every stage that made ``model``, first to last (those it shares with its ``start`` model first)."""
        manifest = self._manifest(model)
        stages = [self._stage(model, number) for number in sorted(self._files(model))]
        if "start" in manifest:
            start_model, start_number = self._reference(manifest["start"], model)
            if "start" in self._manifest(start_model):
                raise ConfigError(f"{model} starts from {start_model}, which starts from another model itself")
            stages = [stage for stage in self.stages(start_model) if stage.number <= start_number] + stages
        numbers = [stage.number for stage in stages]
        if numbers != list(range(1, len(stages) + 1)):
            raise ConfigError(f"{model}: stages {numbers} are not numbered 1 to {len(stages)}")
        return stages

    def commands(self, model: str, runs: str = "runs") -> list[Command]:
        """The commands that remake ``model`` from the project root, its outputs under ``runs/<model>``."""
        folder = f"{runs}/{model}"
        commands: list[Command] = []
        exported: dict[str, str] = {}
        previous: str | None = None
        for stage in self.stages(model):
            for script in stage.exported_data:
                if script not in exported:
                    exported[script] = f"{folder}/{Path(script).stem}"
                    commands.append(Command(f"the training folder {script} writes",
                                            ("python", script, exported[script])))
            output = self._output(folder, stage)
            trained = f"{folder}/{stage.name}.trained.safetensors" if stage.average_with_start else output
            argv = ["srrestore", "train", *stage.data, *(exported[script] for script in stage.exported_data)]
            for config_file in stage.config_files():
                argv += ["--config", config_file]
            if previous is not None:
                argv += ["--init", previous]
            argv += self._outputs(stage.config(), trained)
            if stage.threads is not None:
                argv += ["--threads", str(stage.threads)]
            for folder_path in stage.validation:
                argv += ["--val-dir", folder_path]
            commands.append(Command(f"stage {stage.name} of {stage.model}", tuple(argv)))
            if stage.average_with_start:
                if previous is None:
                    raise ConfigError(f"{stage.model} stage {stage.name}: averaging needs a model to start from")
                average = ["srrestore", "average", trained, previous, "--out", output]
                for folder_path in stage.validation:
                    average += ["--val-dir", folder_path]
                commands.append(Command(f"stage {stage.name}: average with its start", tuple(average)))
            previous = output
        return commands

    def model_path(self, model: str, runs: str = "runs") -> str:
        """Where :meth:`commands` leaves ``model``: the output of its last stage."""
        return self._output(f"{runs}/{model}", self.stages(model)[-1])

    @staticmethod
    def _output(folder: str, stage: Stage) -> str:
        return f"{folder}/{stage.name}.safetensors"

    @staticmethod
    def _outputs(config: TrainingConfig, model: str) -> list[str]:
        """``--out`` (and ``--psnr-out``) so that the stage's model, phase 1's if it has steps, lands at ``model``."""
        if config.pretrain_steps and config.gan_steps:
            return ["--out", model.replace(".safetensors", ".gan.safetensors"), "--psnr-out", model]
        return ["--out", model]

    def _manifest(self, model: str) -> dict[str, Any]:
        """The model's ``stages.toml``, its keys checked."""
        if model not in self._manifests:
            path = self.root / model / MANIFEST
            if not self.root.is_dir():
                raise ConfigError(f"no recipe tree at {self.root}: the built-in models' recipes come with the "
                                  "source checkout (configs/builtin), not with an installed package")
            if not path.is_file():
                check_choice("built-in recipe", model, self.names())
                raise ConfigError(f"no {path}")
            manifest = load_recipe(path)
            for key in manifest:
                check_choice(f"key of {path}", key, MANIFEST_KEYS)
            if "data" not in manifest:
                raise ConfigError(f"{path} names no training data (data = [...])")
            for key, table in manifest.get("stage", {}).items():
                if not key.isdigit():
                    raise ConfigError(f"{path}: [stage.{key}] is not a stage number")
                for option in table:
                    check_choice(f"key of [stage.{key}] in {path}", option, STAGE_KEYS)
            self._manifests[model] = manifest
        return self._manifests[model]

    def _files(self, model: str) -> dict[int, Path]:
        """``number -> NN-*.toml`` of the model's folder; each number once, each with a manifest entry."""
        files: dict[int, Path] = {}
        for path in sorted((self.root / model).glob("[0-9][0-9]-*.toml")):
            number = int(path.name[:2])
            if number in files:
                raise ConfigError(f"{model}: two recipes for stage {number:02d}: {files[number].name}, {path.name}")
            files[number] = path
        entries = set(self._entries(model))
        if entries != set(files):
            raise ConfigError(f"{model}: stage files {sorted(files)} and {MANIFEST} entries {sorted(entries)} differ")
        return files

    def _entries(self, model: str) -> dict[int, dict[str, Any]]:
        """``number -> [stage.NN] table`` of the model's manifest."""
        return {int(key): table for key, table in self._manifest(model).get("stage", {}).items()}

    def _start_model(self, model: str) -> str | None:
        """The model whose stages ``model`` continues, if any."""
        start = self._manifest(model).get("start")
        return None if start is None else self._reference(start, model)[0]

    def _reference(self, reference: str, model: str) -> tuple[str, int]:
        """``"NN"`` or ``"MODEL/NN"`` as ``(model, number)``."""
        owner, _, number = reference.rpartition("/")
        if not number.isdigit():
            raise ConfigError(f"{model}: {reference!r} names no stage (write NN or MODEL/NN)")
        return owner or model, int(number)

    def _stage(self, model: str, number: int) -> Stage:
        manifest = self._manifest(model)
        files = self._files(model)
        if number not in files:
            raise ConfigError(f"{model} has no stage {number:02d} (stages: {sorted(files)})")
        entry = self._entries(model)[number]
        layers: list[Path] = []
        for reference in entry.get("over", []):
            if reference.endswith(".toml"):
                layer = self.root / reference
                if not layer.is_file():
                    raise ConfigError(f"{model} stage {number:02d}: no recipe {layer}")
                layers.append(layer)
                continue
            owner, other = self._reference(reference, model)
            if owner == model and other >= number:
                raise ConfigError(f"{model} stage {number:02d} is layered over a later stage, {reference!r}")
            if owner not in (model, self._start_model(model)):
                raise ConfigError(f"{model} stage {number:02d} is layered over {reference!r}, "
                                  "a stage of neither this model nor the one it starts from")
            layers += self._stage(owner, other).layers
        return Stage(
            model=model, number=number, layers=(*layers, files[number]),
            data=tuple(entry.get("data", manifest["data"])), validation=tuple(manifest.get("validation", ())),
            threads=manifest.get("threads"),
            exported_data=tuple(entry.get("exported_data", ())),
            average_with_start=bool(entry.get("average_with_start", False)),
        )
