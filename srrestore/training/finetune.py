"""Self-supervised fine-tuning of a pretrained generator on the user's own data.

High-resolution ground truth rarely exists for a given sensor or scanner, so
the data play the HR role: each image is degraded by the model's scale (a
sensor-like :class:`~srrestore.training.degradation.Degradation` the domain
chooses) and the pretrained generator learns to undo that on patches drawn
where the data are valid (:class:`~srrestore.training.patches.ValidPatches`).
Real co-registered LR/HR pairs may be given instead (paired mode).

The domain-independent core, shared by every domain pipeline::

    pretrained = load_pretrained(options, channels)          # 1. the starting generator
    scale = pretrained.scale                                  #    (the domain needs its scale)
    images = [FinetuneImage(name, hr, valid), ...]            # 2. normalised as restore will
    degradation = Degradation(scale=scale, kernel="area", ..., clip=False)
    report = finetune(pretrained, images, output, options,    # 3. train, save, report
                      degradation=degradation, card={"normalization": ...})

Domain pipelines (``srrestore.pipelines``) have the signature
``finetune_<domain>(inputs: list[Path], output: Path, options: FinetuneOptions)
-> FinetuneReport``: ``finetune_satellite`` (GeoTIFF) and ``finetune_medical``
(NIfTI, DICOM); ``srrestore finetune`` dispatches to them by input format.

Training is a run of the one training loop
(:class:`~srrestore.training.trainer.Trainer`): :func:`finetune_recipe`
turns the options into a recipe, with the pretrained generator as the run's
``initial`` weights. Without the adversarial loss it is a phase-1 run on
``pixel_weight * L_pixel + perceptual_weight * L_VGG``; with it, a phase-2 run
on ``pixel_weight * L_pixel + adversarial_weight * L_adv + perceptual_weight *
L_VGG`` (:class:`~srrestore.losses.total.GeneratorLoss`), a fresh patch
discriminator taking one step per generator step. Adam with a cosine learning
rate driven by ``max(step / steps, elapsed / max_minutes)``, so a run stopped
by its time budget has annealed too; the exponential moving average (EMA) of
the weights is saved. The run stops after ``steps`` steps or before a step
that would pass ``max_minutes`` (counted from ``started``), and saves in both
cases. So fine-tuning has what training has: ``precision`` (bf16/fp16
autocast), DistributedDataParallel under ``torchrun``, a resumable ``state``
and a JSONL ``log``.

Perceptual features come from one explicit network (``perceptual_network``)
and source. ``"vgg19"`` (the default) takes ``vgg_weights``: ``"random"`` (the
default: generic features of a fixed-seed VGG19, no download), ``"imagenet"``
(torchvision's file, cached or downloaded with ``allow_download``) or a weights
file. ``"radimagenet_resnet50"`` is MONAI's perceptual loss on RadImageNet's
medical ResNet50 (:mod:`srrestore.losses.monai_perceptual`), read from torch
hub's cache or, with ``allow_download``, fetched. The network and source are
recorded in the model card and reported in the notes; never swapped silently.

Channels: the fine-tuned model takes the data's channel count. A pretrained
model with another count is adapted through grey by
:func:`~srrestore.models.surgery.adapt_channels` (a 1-channel model becomes a
``C``-channel one whose features start from the band mean).

Held-out validation and the saved weights: a band of each image (``holdout_fraction``
of its longer axis, see :func:`~srrestore.training.patches.holdout_band`) is
kept out of training. Every ``validation_interval`` steps and at the end, the
EMA weights are scored on fixed held-out patches
(:class:`~srrestore.training.patches.PatchValidation`: PSNR in normalised
units, data range 1); the recipe's ``keep_best`` saves the best weights, the
pretrained ones (step 0) included: fine-tuning never saves a model that does
worse on held-out data than where it started. Small data overfit fast, so this
matters most on small scenes and scans. Images too small for a band are
trained on in full; when no image has one, the scores come from fixed training
patches (which cannot show overfitting), patience never stops the run, and the
notes say so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from srrestore.errors import CheckpointError, ConfigError, check_choice
from srrestore.losses.monai_perceptual import MONAI_NETWORKS, check_perceptual_network
from srrestore.losses.perceptual import VGG19_LAYERS, resolve_vgg_weights
from srrestore.losses.pixel import PIXEL_KINDS
from srrestore.losses.total import LossConfig
from srrestore.models.checkpoint import CheckpointInfo, file_sha256, load_generator
from srrestore.models.generator import SRGenerator
from srrestore.models.registry import WEIGHTS_DIR, default_model_name, list_builtin_models, resolve_checkpoint
from srrestore.models.surgery import adapt_channels
from srrestore.storage.atomic import check_output_path
from srrestore.training.config import PRECISIONS, OptimizerConfig, TrainingConfig
from srrestore.training.degradation import Degradation
from srrestore.training.patches import FinetuneImage, PatchValidation, ValidPatches, patches_fingerprint
from srrestore.training.state import load_state
from srrestore.training.describe import mean_losses
from srrestore.training.trainer import Trainer, TrainingOutputs

__all__ = ["DEFAULT_LEARNING_RATE", "FinetuneImage", "FinetuneOptions", "FinetuneReport", "PretrainedModel", "finetune",
           "finetune_recipe", "load_pretrained"]

EVALUATION_PATCHES = 32
MIN_LR_RATIO = 0.01  # the cosine schedule's floor
DEFAULT_LEARNING_RATE = 2e-4  # when neither the user nor the domain pipeline gives one
ADAM_BETAS = (0.9, 0.99)
LOG_INTERVAL = 10  # steps between the JSONL log's training lines


@dataclass
class FinetuneOptions:
    """Every choice of a fine-tuning run that every domain reads (the ``srrestore finetune`` options).

    Scenes read three more (``SceneFinetuneOptions`` in
    :mod:`srrestore.pipelines.satellite.finetune`: ``reference``,
    ``blur_sigma``, ``noise_sigma``), scans one more (``ScanFinetuneOptions``
    in :mod:`srrestore.pipelines.medical.finetune`: ``slice_profile``).

    Attributes:
        model: pretrained generator: ``"default"`` (the built-in of ``scale``
            and ``phase`` that fits the data's channels, else another built-in
            of that scale, adapted), a built-in name or a checkpoint path.
        phase: built-in variant for ``"default"``: ``"psnr"`` or ``"gan"``.
        scale: wanted in-plane factor; None: the model's own (4 for ``"default"``).
        steps: generator steps at most.
        max_minutes: wall-clock budget of the whole run, in minutes (> 0).
        batch_size: patches per step.
        patch_size: HR patch side in pixels (a multiple of the scale).
        learning_rate: Adam's peak learning rate (cosine-annealed to 1 %); None:
            the domain's default (:data:`DEFAULT_LEARNING_RATE` unless the domain
            pipeline sets its own).
        holdout_fraction: share of each image's longer axis held out to score
            the weights, in ``[0, 0.5]``; 0 turns the held-out check off.
        validation_interval: steps between held-out scores (the best weights are saved).
        patience: stop after this many held-out scores in a row without a new
            best (only with held-out data); 0: never stop early.
        pixel_loss: ``"l1"``, ``"l2"`` or ``"charbonnier"``.
        pixel_weight: weight of the pixel loss (>= 0).
        perceptual_weight: weight of the perceptual loss (>= 0; 0 = off, the
            default: on the CPU VGG19 costs about 3 times a pixel-only step per band).
        perceptual_network: ``"vgg19"`` (the project's VGG19, default) or
            ``"radimagenet_resnet50"`` (MONAI's loss on RadImageNet's medical
            ResNet50, from torch hub's cache; LPIPS-style values in ``[0, 2]``,
            another scale than VGG19's MSE); ``medicalnet_*`` (3-D) are refused.
        adversarial: train a discriminator and use the adversarial loss (off by
            default: the defaults give a faithful, PSNR-oriented model within the
            CPU budget; ``adversarial=True, perceptual_weight=0.01`` a sharper one).
        adversarial_weight: weight of the adversarial loss when ``adversarial``.
        discriminator_features: width of the patch discriminator's stem.
        vgg_weights: ``"random"`` (generic features, default), ``"imagenet"`` or a
            file path (``perceptual_network="vgg19"`` only).
        vgg_layer: VGG19 layer of the perceptual loss (e.g. ``"relu2_2"``, ``"relu5_4"``).
        allow_download: let ``vgg_weights="imagenet"`` download torchvision's
            file, and ``"radimagenet_resnet50"`` its hub repository and weights.
        min_valid_fraction: least share of valid pixels in a patch, in ``(0, 1]``;
            the default 0.95 tolerates scattered nodata pixels (real scenes have
            them), which hold their nearest valid value, never the nodata value.
        ema_decay: decay of the weights' moving average (warmed up), in ``[0, 1)``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        precision: ``auto`` (bf16 or fp16 on CUDA GPUs, fp32 elsewhere),
            ``fp32``, ``bf16`` or ``fp16`` (autocast, on CUDA and the CPU).
        seed: seeds the data, the discriminator and the augmentations.
        progress: show a tqdm progress bar on stderr.
        overwrite: replace an existing output model.
        log: a JSONL log of the run (one line per 10 steps and per validation); None: none.
        state: the resumable state, written at every validation, at the end
            and when interrupted; None: none (an interrupted run cannot resume),
            or the ``resume`` file when resuming.
        resume: the state of an interrupted run to continue (same data and
            options; ``steps`` and ``max_minutes`` may change).
        stop_after: end this session after this many steps, saving ``state``
            (the model is written when the run ends); None: run to the end.
    """

    model: str = "default"
    phase: str = "psnr"
    scale: int | None = None
    steps: int = 1000
    max_minutes: float = 10.0
    batch_size: int = 8
    patch_size: int = 64
    learning_rate: float | None = None
    holdout_fraction: float = 0.1
    validation_interval: int = 50
    patience: int = 6
    pixel_loss: str = "l1"
    pixel_weight: float = 1.0
    perceptual_weight: float = 0.0
    perceptual_network: str = "vgg19"
    adversarial: bool = False
    adversarial_weight: float = 1e-3
    discriminator_features: int = 32
    vgg_weights: str = "random"
    vgg_layer: str = "relu2_2"
    allow_download: bool = False
    min_valid_fraction: float = 0.95
    ema_decay: float = 0.99
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    progress: bool = True
    overwrite: bool = False
    log: Path | None = None
    state: Path | None = None
    resume: Path | None = None
    stop_after: int | None = None

    def __post_init__(self) -> None:
        self.phase = check_choice("phase", self.phase, ("psnr", "gan"))
        self.pixel_loss = check_choice("pixel loss", self.pixel_loss, PIXEL_KINDS)
        self.perceptual_network = check_perceptual_network(self.perceptual_network)
        self.vgg_layer = check_choice("VGG19 layer", self.vgg_layer, VGG19_LAYERS)
        self.vgg_weights = str(resolve_vgg_weights(self.vgg_weights))
        self.precision = check_choice("precision", self.precision, PRECISIONS)
        for name in ("log", "state", "resume"):
            if getattr(self, name) is not None:
                setattr(self, name, Path(getattr(self, name)))
        checks = {
            "scale": self.scale is None or (isinstance(self.scale, int) and self.scale >= 1),
            "steps": isinstance(self.steps, int) and self.steps >= 1,
            "max_minutes": _finite(self.max_minutes) and self.max_minutes > 0,
            "batch_size": isinstance(self.batch_size, int) and self.batch_size >= 1,
            "patch_size": isinstance(self.patch_size, int) and self.patch_size >= 1,
            "learning_rate": self.learning_rate is None or (_finite(self.learning_rate) and self.learning_rate > 0),
            "holdout_fraction": _finite(self.holdout_fraction) and 0 <= self.holdout_fraction <= 0.5,
            "validation_interval": isinstance(self.validation_interval, int) and self.validation_interval >= 1,
            "patience": isinstance(self.patience, int) and self.patience >= 0,
            "pixel_weight": _finite(self.pixel_weight) and self.pixel_weight >= 0,
            "perceptual_weight": _finite(self.perceptual_weight) and self.perceptual_weight >= 0,
            "adversarial_weight": _finite(self.adversarial_weight) and self.adversarial_weight >= 0,
            "discriminator_features": isinstance(self.discriminator_features, int) and self.discriminator_features >= 1,
            "min_valid_fraction": _finite(self.min_valid_fraction) and 0 < self.min_valid_fraction <= 1,
            "ema_decay": _finite(self.ema_decay) and 0 <= self.ema_decay < 1,
            "stop_after": self.stop_after is None or (isinstance(self.stop_after, int) and self.stop_after >= 1),
        }
        for name, valid in checks.items():
            if not valid:
                raise ConfigError(f"invalid fine-tuning option {name}: {getattr(self, name)!r}")
        if self.pixel_weight == self.perceptual_weight == self.adversarial_loss_weight == 0:
            raise ConfigError("the pixel, perceptual and adversarial loss weights are all 0")

    @property
    def adversarial_loss_weight(self) -> float:
        """The adversarial weight in effect (0 when ``adversarial`` is off)."""
        return self.adversarial_weight if self.adversarial else 0.0

    def loss_config(self) -> LossConfig:
        """The generator loss these options ask for."""
        content = "vgg" if self.perceptual_network == "vgg19" else self.perceptual_network
        return LossConfig(
            pixel=self.pixel_loss,
            content=content if self.perceptual_weight > 0 else "none",
            vgg_weights=self.vgg_weights,
            vgg_layer=self.vgg_layer,
            allow_download=self.allow_download,
            alpha=self.pixel_weight,
            beta=self.adversarial_loss_weight,
            gamma=self.perceptual_weight,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (paths as strings)."""
        data = asdict(self)
        for name in ("log", "state", "resume"):
            data[name] = None if data[name] is None else str(data[name])
        return data

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> FinetuneOptions:
        """Build from keyword arguments, refusing unknown names with a hint."""
        names = [item.name for item in fields(cls)]
        return cls(**{check_choice("fine-tuning option", key, names): value for key, value in kwargs.items()})


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class PretrainedModel:
    """The generator a run starts from, fitted to the data's channel count.

    Attributes:
        generator: the network to fine-tune (CPU, train mode), ``C`` channels in and out.
        info: its checkpoint's description (of the original, before adaptation).
        name: the built-in name or the checkpoint file name.
        source: the checkpoint path.
        sha256: the checkpoint file's hash.
        adapted_from: the original channel count when it was adapted, else None.
    """

    generator: SRGenerator
    info: CheckpointInfo
    name: str
    source: Path
    sha256: str
    adapted_from: int | None = None

    @property
    def scale(self) -> tuple[int, int]:
        """``(sy, sx)`` upscale factors."""
        return (int(self.generator.config.scale[0]), int(self.generator.config.scale[1]))

    @property
    def channels(self) -> int:
        return int(self.generator.config.in_channels)

    def describe(self) -> dict[str, Any]:
        """What the model card records about the starting point."""
        return {"name": self.name, "sha256": self.sha256, "phase": self.info.phase,
                "channels": self.info.config.in_channels, "adapted_to": self.channels}


def _checkpoint_path(options: FinetuneOptions, channels: int) -> Path:
    """The checkpoint ``options.model`` names; ``"default"`` falls back to another built-in of the scale."""
    if options.model != "default":
        return resolve_checkpoint(options.model)
    scale = options.scale or 4
    for wanted in dict.fromkeys((channels, 3, 1)):
        path = WEIGHTS_DIR / f"{default_model_name(scale, wanted, options.phase)}.safetensors"
        if path.is_file():
            return path
    available = ", ".join(model.name for model in list_builtin_models()) or "none"
    raise CheckpointError(f"no built-in {options.phase} model for scale {scale}; available: {available}; "
                          f"give --model with a checkpoint file")


def load_pretrained(options: FinetuneOptions, channels: int) -> PretrainedModel:
    """Load the starting generator ``options.model`` and fit it to ``channels`` channels.

    Args:
        options: ``model``, ``phase`` and ``scale`` are read.
        channels: the data's channel count (1..16).

    Raises:
        CheckpointError: the model is missing, unreadable or cannot be adapted.
        ConfigError: the model's scale is not ``options.scale``.
    """
    if not 1 <= channels <= 16:
        raise ConfigError(f"fine-tuning takes 1 to 16 channels, the data have {channels}")
    path = _checkpoint_path(options, channels)
    generator, info = load_generator(path)
    scale = info.config.scale
    if options.scale is not None and max(scale) != options.scale:
        raise ConfigError(f"model {path.name} upscales by {'x'.join(map(str, scale))}, not {options.scale}")
    original = info.config.in_channels
    adapted = adapt_channels(generator, channels).train()
    name = path.name.removesuffix(".safetensors") if path.parent == WEIGHTS_DIR else path.name
    return PretrainedModel(adapted, info, name, path, file_sha256(path), original if original != channels else None)


@dataclass
class FinetuneReport:
    """What a fine-tuning run did (printed by the CLI, recorded in the model).

    Attributes:
        output: the saved model.
        pretrained: name of the starting model.
        channels: channels of the fine-tuned model.
        scale: its ``(sy, sx)`` factors.
        phase: ``"gan"`` when the adversarial loss was used, else ``"psnr"``.
        steps: steps done; ``planned_steps``: steps asked for.
        seconds: wall time from ``started`` to the end of training and evaluation.
        stopped_by_time: the ``max_minutes`` budget ended the run early.
        stopped_early: ``patience`` held-out scores in a row did not beat the best.
        first_losses, last_losses: mean unweighted loss parts (``pixel``,
            ``content``, ``adversarial``, ``discriminator``) over the first and
            last steps (up to 20 each).
        evaluation: ``{"bicubic" | "pretrained" | "last" | "finetuned": {"psnr", "l1"}}``
            in normalised units: bicubic, the starting weights, the last
            weights and the saved (best) ones, on ``evaluated_on`` patches.
        evaluated_on: ``"held-out"`` or ``"training"`` (no image had room for a held-out band).
        best_step: the step whose weights were saved (0: the pretrained ones).
        sources: the images that gave patches.
        notes: what the user should know (adaptation, perceptual network, skipped images).
        finished: False when ``stop_after`` ended the session first: no model
            was written yet, and the run continues with ``resume``.
    """

    output: Path
    pretrained: str
    channels: int
    scale: tuple[int, int]
    phase: str
    steps: int
    planned_steps: int
    seconds: float
    stopped_by_time: bool
    stopped_early: bool = False
    first_losses: dict[str, float] = field(default_factory=dict)
    last_losses: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, dict[str, float]] = field(default_factory=dict)
    evaluated_on: str = "held-out"
    best_step: int = 0
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    finished: bool = True


def finetune_recipe(options: FinetuneOptions, pretrained: PretrainedModel, patience: int,
                    card: Mapping[str, Any]) -> TrainingConfig:
    """The training recipe of a fine-tuning run.

    Args:
        options: the run's options (``learning_rate`` set).
        pretrained: the starting generator: the recipe builds its architecture.
        patience: validations without a new best that end the run (0: never).
        card: the model card's entries.
    """
    generator = pretrained.generator.config.to_dict()
    del generator["in_channels"], generator["scale"]
    adam = OptimizerConfig(lr=options.learning_rate, betas=ADAM_BETAS, schedule="cosine", min_lr_ratio=MIN_LR_RATIO)
    adversarial = options.adversarial_loss_weight > 0
    return TrainingConfig(
        channels=pretrained.channels, scale=pretrained.scale, generator="srgan", generator_options=generator,
        discriminator="patch", discriminator_options={"num_features": options.discriminator_features},
        patch_size=options.patch_size, batch_size=options.batch_size,
        pretrain_steps=0 if adversarial else options.steps, gan_steps=options.steps if adversarial else 0,
        deep_supervision=False, pretrain_pixel_weight=options.pixel_weight,
        pretrain_content_weight=0.0 if adversarial else options.perceptual_weight,
        degradation=None, loss=options.loss_config(),
        pretrain_optimizer=adam, generator_optimizer=adam,
        discriminator_optimizer=replace(adam, schedule="constant"),
        ema_decay=options.ema_decay, keep_best=True, patience=patience, max_minutes=options.max_minutes,
        precision=options.precision, seed=options.seed, augment=True, val_interval=options.validation_interval,
        log_interval=LOG_INTERVAL, checkpoint_interval=options.validation_interval, card=dict(card),
    )


def _loss_parts(losses: dict[str, float]) -> dict[str, float]:
    """A step's unweighted loss parts: ``pixel``, ``content``, ``adversarial``, ``discriminator``."""
    named = {"discriminator" if name == "d" else name: value for name, value in losses.items()}
    return {name: value for name, value in named.items() if name in ("pixel", "content", "adversarial", "discriminator")}


def _notes(options: FinetuneOptions, pretrained: PretrainedModel, dataset: ValidPatches) -> list[str]:
    notes = []
    if pretrained.adapted_from is not None:
        notes.append(f"pretrained model {pretrained.name} takes {pretrained.adapted_from} channel(s); "
                     f"adapted to {pretrained.channels} through grey before fine-tuning")
    if options.perceptual_weight > 0 and options.perceptual_network == "vgg19" and options.vgg_weights == "random":
        notes.append("perceptual loss on random VGG19 features (generic); pass --vgg-weights imagenet "
                     "(with --allow-download) or a weights file for ImageNet features")
    if options.perceptual_weight > 0 and options.perceptual_network in MONAI_NETWORKS:
        notes.append(f"perceptual loss on {MONAI_NETWORKS[options.perceptual_network]} "
                     f"from the torch hub cache {torch.hub.get_dir()}")
    if dataset.skipped:
        notes.append(f"no valid {options.patch_size}-pixel patch in {', '.join(dataset.skipped)}: not used")
    if options.holdout_fraction > 0 and not dataset.num_holdout:
        notes.append(f"the data are too small to hold out a band beside a {options.patch_size}-pixel training patch: "
                     f"the weights were scored on training patches, which cannot show overfitting")
    return notes


def _evaluation(selection: Mapping[str, Any] | None) -> tuple[dict[str, dict[str, float]], int]:
    """The report's scores (bicubic, pretrained, last, finetuned) and best step from a keep-best record."""
    if selection is None:
        return {}, 0

    def scores(values: Mapping[str, float]) -> dict[str, float]:
        return {"psnr": values["psnr"], "l1": values["l1"]}

    start = selection["start"]
    return ({"bicubic": {"psnr": start["bicubic_psnr"], "l1": start["bicubic_l1"]}, "pretrained": scores(start),
             "last": scores(selection["last"]), "finetuned": scores(selection["best"])}, int(selection["best_step"]))


def finetune(
    pretrained: PretrainedModel,
    images: Sequence[FinetuneImage],
    output: str | Path,
    options: FinetuneOptions,
    degradation: Degradation | None,
    card: Mapping[str, Any] | None = None,
    started: float | None = None,
) -> FinetuneReport:
    """Fine-tune ``pretrained`` on ``images`` and save the result to ``output``.

    Args:
        pretrained: from :func:`load_pretrained` with the images' channel count.
        images: the data, normalised as restore will normalise them (see
            :class:`~srrestore.training.patches.FinetuneImage`).
        output: the model file (``.safetensors``), written atomically.
        options: the run's options (``steps``, ``max_minutes``, losses...).
        degradation: makes the LR inputs of synthetic images: a
            :class:`~srrestore.training.degradation.Degradation` (use
            ``clip=False`` for data that may leave ``[0, 1]``) or another
            model with the same ``scale``, ``margin``, ``apply`` and ``to_dict``
            (a slice profile); its scale is the model's; None when every image is paired.
        card: domain entries for the model card (e.g. ``"normalization"``,
            ``"domain"``, ``"degradation_model"``); the core adds the rest.
        started: ``time.monotonic()`` when the command started (reading the
            data counts toward ``max_minutes``); None: now.

    Returns:
        The report (under torchrun, rank 0's is complete; the others carry no scores).

    Raises:
        ConfigError: bad options for these data (patch size, no valid patch...).
        OutputExistsError, OutputWriteError: the output exists (without
            ``overwrite``) or cannot be written.
        WeightsUnavailableError, CheckpointError: the perceptual network's weights asked for.
    """
    started = time.monotonic() if started is None else started
    if options.learning_rate is None:
        options = replace(options, learning_rate=DEFAULT_LEARNING_RATE)
    output = Path(output)
    if output.suffix != ".safetensors":
        raise ConfigError(f"the fine-tuned model is saved as safetensors; give an output ending in .safetensors, "
                          f"got {output}")
    state = load_state(options.resume) if options.resume is not None else None
    if state is None:
        check_output_path(output, options.overwrite)
    dataset = ValidPatches(images, options.patch_size, pretrained.scale, degradation, options.seed,
                           min_valid_fraction=options.min_valid_fraction, holdout_fraction=options.holdout_fraction)
    if dataset.channels != pretrained.channels:
        raise ConfigError(f"the images have {dataset.channels} channel(s), the model {pretrained.channels}")
    validation = PatchValidation(dataset, EVALUATION_PATCHES)
    sources = list(dict.fromkeys(dataset.names))
    model_card = {
        "description": f"{pretrained.name} fine-tuned on {len(sources)} file(s) of the user's data",
        **dict(card or {}),
        "fine_tuned_from": pretrained.describe(),
    }
    config = finetune_recipe(options, pretrained, options.patience if dataset.num_holdout else 0, model_card)
    trainer = Trainer(
        config, dataset, [validation], TrainingOutputs(output, output, options.state or options.resume, options.log),
        device=options.device, sources=sources, data_fingerprint=patches_fingerprint(images), resume_from=state,
        initial=(pretrained.generator, pretrained.info), overwrite=options.overwrite, progress=options.progress,
        started=started,
        summary_entries={"kind": "finetune", "options": options.to_dict(), "pretrained": pretrained.describe()},
    )
    result = trainer.run(stop_after=options.stop_after)
    phase = "gan" if config.gan_steps else "psnr"
    evaluation, best_step = _evaluation(trainer.selections.get(phase))
    report = FinetuneReport(
        output=output, pretrained=pretrained.name, channels=config.channels, scale=config.scale,
        phase=trainer.saved_phase(phase), steps=result.step, planned_steps=options.steps,
        seconds=round(time.monotonic() - started, 1), stopped_by_time=result.stopped_by == "time budget",
        stopped_early=result.stopped_by == "patience", first_losses=mean_losses([_loss_parts(losses) for losses in trainer.first_losses]),
        last_losses=mean_losses([_loss_parts(losses) for losses in trainer.last_losses]), evaluation=evaluation, evaluated_on=validation.name,
        best_step=best_step, sources=sources, notes=_notes(options, pretrained, dataset), finished=result.finished,
    )
    report.notes.extend(_outcome_notes(report, options))
    return report


def _outcome_notes(report: FinetuneReport, options: FinetuneOptions) -> list[str]:
    """What the user should know about how the run ended and which weights were saved."""
    if not report.finished:
        state = options.state or options.resume
        return [f"stopped after {report.steps} of {report.planned_steps} steps; continue with --resume {state}"]
    if not report.evaluation:  # not rank 0 under torchrun
        return []
    if report.steps == 0:
        return [f"the {options.max_minutes:g}-minute budget ran out before the first step; "
                f"the saved model is the pretrained one"]
    last, start = report.evaluation["last"]["psnr"], report.evaluation["pretrained"]["psnr"]
    if report.best_step == 0:
        return [f"no fine-tuned weights beat the pretrained model on {report.evaluated_on} patches "
                f"({last:.2f} dB after {report.steps} steps vs {start:.2f} dB): "
                f"the saved model is the pretrained one; the data may be too small to learn from"]
    if report.best_step < report.steps:
        return [f"saved the weights of step {report.best_step}, the best on {report.evaluated_on} patches "
                f"({report.evaluation['finetuned']['psnr']:.2f} dB; {last:.2f} dB at the end)"]
    return []
