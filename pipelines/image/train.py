"""Train a generator from folders of plain images (``srrestore train HR_DIR...``).

The pipeline reads the recipe files and the images, makes the training
patches and validation sets, and runs the one training loop
(:class:`~srrestore.training.trainer.Trainer`): a new run, a run started from
a model (``init``), or an interrupted run continued from its state
(``resume``). The command line only parses options.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from srrestore.domains.image import read_image
from srrestore.engine.devices import resolve_device
from srrestore.errors import ConfigError
from srrestore.models.checkpoint import CheckpointInfo, load_generator, untrained_history_entry
from srrestore.models.generator import SRGenerator
from srrestore.models.surgery import through_plane_generator
from srrestore.models.registry import resolve_checkpoint
from srrestore.training.config import TrainingConfig, load_recipe, merge_recipes
from srrestore.training.data import (
    PatchDataset,
    ValidationSet,
    find_images,
    images_fingerprint,
    load_images,
    split_images,
)
from srrestore.training.state import load_state
from srrestore.training.trainer import Trainer, TrainingOutputs, TrainingResult

__all__ = ["TrainingFiles", "TrainingRun", "train_images"]


@dataclass(frozen=True)
class TrainingFiles:
    """Where a training run writes (None: the default beside ``model``, or the resumed run's).

    Attributes:
        model: the final model (``.safetensors``); None only when resuming.
        psnr_model: phase 1's model.
        state: the resumable state.
        log: the JSONL log.
    """

    model: Path | None = None
    psnr_model: Path | None = None
    state: Path | None = None
    log: Path | None = None


@dataclass(frozen=True)
class TrainingRun:
    """What :func:`train_images` did: the run's result, its recipe and whether this process is rank 0."""

    result: TrainingResult
    config: TrainingConfig
    is_main: bool


def train_images(
    hr_dirs: list[Path],
    files: TrainingFiles,
    recipe_paths: list[Path] = (),  # type: ignore[assignment]
    overrides: dict[str, Any] | None = None,
    val_dirs: list[Path] = (),  # type: ignore[assignment]
    resume: Path | None = None,
    init: str | None = None,
    stop_after: int | None = None,
    overwrite: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> TrainingRun:
    """Train (or continue training) on the images under ``hr_dirs``.

    Args:
        hr_dirs: folders searched recursively for HR images; empty when resuming
            (the run's own folders).
        files: the output files.
        recipe_paths: recipe files, later ones overriding earlier ones key by key.
        overrides: recipe entries given on the command line (over every file).
        val_dirs: folders of validation images (e.g. Set5); empty: the
            resumed run's, or ``val_fraction`` of the training images.
        resume: the state of the run to continue.
        init: a model to start from (built-in name or checkpoint).
        stop_after: end this session after this many steps (saving the state).
        overwrite: replace existing outputs.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        progress: show the progress bar and messages.

    Raises:
        ConfigError: no data or output, ``init`` with ``resume``, or a bad recipe.
        InputReadError, CheckpointError: unreadable images, recipes, states or models.
        OutputExistsError: an output exists and ``overwrite`` is False.
    """
    state = load_state(resume) if resume is not None else None
    stored: dict[str, Any] = state.info if state is not None else {}
    if not hr_dirs and not stored:
        raise ConfigError("give at least one HR_DIR (or --resume a run)")
    if files.model is None and not stored:
        raise ConfigError("give --out MODEL.safetensors (or --resume a run)")
    if init is not None and state is not None:
        raise ConfigError("--init starts a new run; a resumed run already has its weights")

    recipe = dict(stored.get("recipe", {}))
    for recipe_path in recipe_paths:
        recipe = merge_recipes(recipe, load_recipe(recipe_path))
    config = TrainingConfig.from_dict(merge_recipes(recipe, overrides or {}))
    if config.degradation is None:
        raise ConfigError("training from images needs a [degradation] in the recipe")
    resolve_device(device)  # refuse a bad device before reading the images
    initial = _initial_model(init, config) if init is not None else None

    sources = [str(folder) for folder in hr_dirs] or stored["sources"]
    validation_sources = [str(folder) for folder in val_dirs] or stored.get("validation_sources", [])
    images = load_images(find_images(sources), config.channels, read_image)
    validation = [ValidationSet.from_folder(folder, config.channels, config.degradation, read_image, config.seed)
                  for folder in validation_sources]
    if not validation and config.val_fraction > 0:
        images, held_out = split_images(images, config.val_fraction, config.seed)
        validation = [ValidationSet("held-out", held_out, config.degradation, config.seed)]
    dataset = PatchDataset(images, config.patch_size, config.degradation, config.seed, config.augment)

    trainer = Trainer(
        config, dataset, validation, _outputs(files, config, stored, resume), device=device, sources=sources,
        validation_sources=validation_sources, data_fingerprint=images_fingerprint(images),
        resume_from=state, initial=initial, overwrite=overwrite, progress=progress,
    )
    return TrainingRun(trainer.run(stop_after=stop_after), config, trainer.distributed.is_main)


def _initial_model(init: str, config: TrainingConfig) -> tuple[SRGenerator, CheckpointInfo]:
    """The model a run starts from; an in-plane one made ``(s, 1)`` when the recipe trains a through-plane model.

    The change of scale is a history entry of the card (weight surgery,
    :func:`~srrestore.models.surgery.through_plane_generator`).
    """
    generator, info = load_generator(resolve_checkpoint(init, config.scale[0], config.channels))
    if config.scale[1] != 1 or tuple(generator.config.scale) == tuple(config.scale):
        return generator, info
    generator, how = through_plane_generator(generator, config.scale[0])
    entry = untrained_history_entry("made_through_plane", {"scale": list(config.scale), "how": how}, "weight surgery")
    card = {**info.card, "history": [*info.card.get("history", []), entry]}
    return generator, replace(info, config=generator.config, card=card)


def _outputs(files: TrainingFiles, config: TrainingConfig, stored: dict[str, Any],
             resume: Path | None) -> TrainingOutputs:
    """The run's files: those given, else a resumed run's own (when no new model is named), else the defaults."""
    previous = stored.get("outputs", {}) if files.model is None else {}
    return TrainingOutputs.beside(
        files.model if files.model is not None else previous["model"],
        config.gan_steps,
        psnr_model=files.psnr_model if files.psnr_model is not None else previous.get("psnr_model"),
        state=files.state if files.state is not None else (resume if files.model is None else None),
        log=files.log if files.log is not None else previous.get("log"),
    )
