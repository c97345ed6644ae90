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

Training: one phase from the pretrained weights with the generator loss
``pixel_weight * L_pixel + adversarial_weight * L_adv + perceptual_weight *
L_VGG`` (:class:`~srrestore.losses.total.GeneratorLoss`); with the adversarial
loss on, a fresh patch discriminator takes one step per generator step. Adam
with a cosine learning rate driven by ``max(step / steps, elapsed /
max_minutes)``, so a run stopped by its time budget has annealed too. The
exponential moving average (EMA) of the weights is saved. The run stops after
``steps`` steps or before a step that would pass ``max_minutes`` (counted from
``started``), and saves in both cases.

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
EMA weights are scored on fixed held-out patches (PSNR in normalised units,
data range 1); the best weights are saved, the pretrained ones (step 0)
included: fine-tuning never saves a model that does worse on held-out data
than where it started. Small data overfit fast, so this matters most on small
scenes and scans. Images too small for a band are trained on in full; when no
image has one, the scores come from fixed training patches (which cannot show
overfitting), patience never stops the run, and the notes say so.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from srrestore import __version__
from srrestore.storage.atomic import check_output_path
from srrestore.engine.devices import resolve_device
from srrestore.errors import CheckpointError, ConfigError, check_choice
from srrestore.losses.monai_perceptual import MONAI_NETWORKS, check_perceptual_network
from srrestore.losses.perceptual import VGG19_LAYERS, resolve_vgg_weights
from srrestore.losses.pixel import PIXEL_KINDS
from srrestore.losses.total import GeneratorLoss, LossConfig
from srrestore.models.checkpoint import CheckpointInfo, file_sha256, load_generator, save_generator
from srrestore.models.discriminator import PatchDiscriminator, create_discriminator
from srrestore.models.generator import SRGenerator
from srrestore.models.registry import WEIGHTS_DIR, default_model_name, list_builtin_models, resolve_checkpoint
from srrestore.models.surgery import adapt_channels
from srrestore.training.degradation import Degradation
from srrestore.training.ema import ModelEMA
from srrestore.training.patches import FinetuneImage, ValidPatches
from srrestore.training.trainer import describe_device

__all__ = ["DEFAULT_LEARNING_RATE", "FinetuneImage", "FinetuneOptions", "FinetuneReport", "PretrainedModel", "finetune", "load_pretrained"]

EVALUATION_KEY = 1 << 40  # keys of the fixed training patches scored when nothing is held out
EVALUATION_PATCHES = 32
LOSS_WINDOW = 20  # steps averaged for the reported first and last losses
MIN_LR_RATIO = 0.01  # the cosine schedule's floor
DEFAULT_LEARNING_RATE = 2e-4  # when neither the user nor the domain pipeline gives one
ADAM_BETAS = (0.9, 0.99)


@dataclass
class FinetuneOptions:
    """Every choice of a fine-tuning run (the ``srrestore finetune`` options).

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
        blur_sigma: Gaussian PSF of the synthetic degradation in HR pixels, a
            value or a ``(min, max)`` range; None: the domain's default.
        noise_sigma: Gaussian noise of the synthetic degradation in normalised
            units, a value or a range; None: the domain's default.
        min_valid_fraction: least share of valid pixels in a patch, in ``(0, 1]``;
            the default 0.95 tolerates scattered nodata pixels (real scenes have
            them), which hold their nearest valid value, never the nodata value.
        reference: paired mode: HR references, one per input, co-registered
            (the domain checks their grids); empty: synthetic mode.
        ema_decay: decay of the weights' moving average (warmed up), in ``[0, 1)``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        seed: seeds the data, the discriminator and the augmentations.
        progress: show a tqdm progress bar on stderr.
        overwrite: replace an existing output model.
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
    blur_sigma: float | tuple[float, float] | None = None
    noise_sigma: float | tuple[float, float] | None = None
    min_valid_fraction: float = 0.95
    reference: tuple[Path, ...] = ()
    ema_decay: float = 0.99
    device: str = "auto"
    seed: int = 0
    progress: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        self.phase = check_choice("phase", self.phase, ("psnr", "gan"))
        self.pixel_loss = check_choice("pixel loss", self.pixel_loss, PIXEL_KINDS)
        self.perceptual_network = check_perceptual_network(self.perceptual_network)
        self.vgg_layer = check_choice("VGG19 layer", self.vgg_layer, VGG19_LAYERS)
        self.vgg_weights = str(resolve_vgg_weights(self.vgg_weights))
        self.reference = tuple(Path(path) for path in self.reference)
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
        data["reference"] = [str(path) for path in self.reference]
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


class _Adversary:
    """The discriminator, its optimizer and its step."""

    def __init__(self, options: FinetuneOptions, channels: int, patch_size: int, device: torch.device) -> None:
        self.network: PatchDiscriminator = create_discriminator(
            "patch", in_channels=channels, num_features=options.discriminator_features
        )
        if patch_size < self.network.min_size:
            raise ConfigError(f"patch size {patch_size} is below the discriminator's minimum {self.network.min_size}")
        self.network = self.network.to(device).train()
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=options.learning_rate, betas=ADAM_BETAS)

    def step(self, loss: GeneratorLoss, real: torch.Tensor, fake: torch.Tensor) -> float:
        """One step on ``L_D`` for ``(B, C, H, W)`` real and (detached) fake batches; returns ``L_D``."""
        self.network.requires_grad_(True)
        real_logits, fake_logits = self.network(torch.cat([real, fake.detach()])).chunk(2)
        loss_d = loss.adversarial.discriminator_loss(real_logits, fake_logits)
        self.optimizer.zero_grad(set_to_none=True)
        loss_d.backward()
        self.optimizer.step()
        self.network.requires_grad_(False)
        return float(loss_d.item())


def _learning_rate(options: FinetuneOptions, progress: float) -> float:
    """Cosine from ``learning_rate`` to 1 % of it over ``progress`` in ``[0, 1]``."""
    floor = MIN_LR_RATIO * options.learning_rate
    return floor + 0.5 * (options.learning_rate - floor) * (1 + math.cos(math.pi * min(progress, 1.0)))


@torch.no_grad()
def _evaluate(network: nn.Module | None, lr: torch.Tensor, hr: torch.Tensor, scale: tuple[int, int],
              batch_size: int) -> dict[str, float]:
    """PSNR (data range 1) and mean absolute error of ``network`` (None: bicubic) on ``(B, C, h, w)`` patches."""
    outputs = []
    for start in range(0, len(lr), batch_size):
        chunk = lr[start : start + batch_size]
        if network is None:
            outputs.append(F.interpolate(chunk, scale_factor=scale, mode="bicubic", align_corners=False))
        else:
            outputs.append(network(chunk))
    prediction = torch.cat(outputs)
    mse = float(F.mse_loss(prediction, hr).item())
    return {"psnr": math.inf if mse == 0 else 10 * math.log10(1.0 / mse),
            "l1": float(F.l1_loss(prediction, hr).item())}


class _BestWeights:
    """The best-scoring weights so far (highest PSNR); step 0 holds the pretrained ones."""

    def __init__(self, module: nn.Module, scores: dict[str, float]) -> None:
        self.step, self.scores, self.stale = 0, scores, 0
        self.state = copy.deepcopy(module.state_dict())

    def offer(self, module: nn.Module, step: int, scores: dict[str, float]) -> None:
        """Keep ``module``'s weights if ``scores`` beat the best so far; else count one more stale offer."""
        if scores["psnr"] > self.scores["psnr"]:
            self.step, self.scores, self.stale = step, scores, 0
            self.state = copy.deepcopy(module.state_dict())
        else:
            self.stale += 1


def _mean(records: Sequence[dict[str, float]]) -> dict[str, float]:
    names = sorted({name for record in records for name in record})
    return {name: float(np.mean([record[name] for record in records if name in record])) for name in names}


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


def _train(generator: SRGenerator, ema: ModelEMA, loss: GeneratorLoss, adversary: _Adversary | None,
           dataset: ValidPatches, options: FinetuneOptions, device: torch.device,
           started: float, validate: Callable[[int], bool]) -> tuple[list[dict[str, float]], bool, bool]:
    """The training loop.

    ``validate(step)`` runs after every ``options.validation_interval`` steps
    and returns True to stop early.

    Returns:
        Each step's unweighted losses, whether the time budget stopped the run
        and whether ``validate`` did.
    """
    optimizer = torch.optim.Adam(generator.parameters(), lr=options.learning_rate, betas=ADAM_BETAS)
    budget = options.max_minutes * 60.0
    records: list[dict[str, float]] = []
    step_seconds, stopped_by_time, stopped_early = 0.0, False, False
    bar = tqdm(total=options.steps, disable=not options.progress, unit="step", desc="finetune", dynamic_ncols=True)
    try:
        for step in range(options.steps):
            now = time.monotonic()
            if now - started + step_seconds > budget:
                stopped_by_time = True
                break
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(options, max(step / options.steps, (now - started) / budget))
            lr, hr = (tensor.to(device) for tensor in dataset.batch(
                range(step * options.batch_size, (step + 1) * options.batch_size)))
            fake = generator(lr)
            record = {} if adversary is None else {"discriminator": adversary.step(loss, hr, fake)}
            total, parts = loss(fake, hr, discriminator=None if adversary is None else adversary.network)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            ema.update(generator)
            record.update({name: float(value.item()) for name, value in parts.items()})
            records.append(record)
            step_seconds = time.monotonic() - now
            bar.update(1)
            bar.set_postfix({name: f"{value:.4g}" for name, value in record.items()}, refresh=False)
            if len(records) % options.validation_interval == 0 and validate(len(records)):
                stopped_early = True
                break
    finally:
        bar.close()
    return records, stopped_by_time, stopped_early


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
        degradation: makes the LR inputs of synthetic images (its scale is the
            model's; use ``clip=False`` for data that may leave ``[0, 1]``);
            None when every image is paired.
        card: domain entries for the model card (e.g. ``"normalization"``,
            ``"domain"``, ``"degradation_model"``); the core adds the rest.
        started: ``time.monotonic()`` when the command started (reading the
            data counts toward ``max_minutes``); None: now.

    Returns:
        The report (also recorded as the checkpoint's ``training`` summary).

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
    check_output_path(output, options.overwrite)
    device = resolve_device(options.device)
    scale = pretrained.scale
    dataset = ValidPatches(images, options.patch_size, scale, degradation, options.seed,
                           min_valid_fraction=options.min_valid_fraction, holdout_fraction=options.holdout_fraction)
    if dataset.channels != pretrained.channels:
        raise ConfigError(f"the images have {dataset.channels} channel(s), the model {pretrained.channels}")
    torch.manual_seed(options.seed)
    loss = GeneratorLoss(options.loss_config()).to(device)
    adversary = None
    if options.adversarial_loss_weight > 0:
        adversary = _Adversary(options, dataset.channels, options.patch_size, device)
    generator = pretrained.generator.to(device).train()
    ema = ModelEMA(generator, options.ema_decay)
    evaluated_on = "held-out" if dataset.num_holdout else "training"
    evaluation_lr, evaluation_hr = (tensor.to(device) for tensor in (
        dataset.holdout_batch(EVALUATION_PATCHES) if dataset.num_holdout
        else dataset.batch(range(EVALUATION_KEY, EVALUATION_KEY + EVALUATION_PATCHES))))

    def score(network: nn.Module | None) -> dict[str, float]:
        return _evaluate(network, evaluation_lr, evaluation_hr, scale, options.batch_size)

    evaluation = {"bicubic": score(None), "pretrained": score(ema.module)}
    best = _BestWeights(ema.module, evaluation["pretrained"])

    def validate(step: int) -> bool:
        best.offer(ema.module, step, score(ema.module))
        return bool(dataset.num_holdout) and 0 < options.patience <= best.stale

    records, stopped_by_time, stopped_early = _train(generator, ema, loss, adversary, dataset, options, device,
                                                     started, validate)
    step = len(records)
    evaluation["last"] = score(ema.module)
    best.offer(ema.module, step, evaluation["last"])
    ema.module.load_state_dict(best.state)
    evaluation["finetuned"] = best.scores
    phase = pretrained.info.phase if best.step == 0 else "gan" if adversary is not None else "psnr"
    report = FinetuneReport(
        output=output, pretrained=pretrained.name, channels=dataset.channels, scale=scale, phase=phase,
        steps=step, planned_steps=options.steps, seconds=round(time.monotonic() - started, 1),
        stopped_by_time=stopped_by_time, stopped_early=stopped_early,
        first_losses=_mean(records[:LOSS_WINDOW]), last_losses=_mean(records[-LOSS_WINDOW:]),
        evaluation=evaluation, evaluated_on=evaluated_on, best_step=best.step,
        sources=list(dict.fromkeys(dataset.names)), notes=_notes(options, pretrained, dataset),
    )
    if step == 0:
        report.notes.append(f"the {options.max_minutes:g}-minute budget ran out before the first step; "
                            f"the saved model is the pretrained one")
    elif best.step == 0:
        report.notes.append(
            f"no fine-tuned weights beat the pretrained model on {evaluated_on} patches "
            f"({evaluation['last']['psnr']:.2f} dB after {step} steps vs {evaluation['pretrained']['psnr']:.2f} dB): "
            f"the saved model is the pretrained one; the data may be too small to learn from"
        )
    elif best.step < step:
        report.notes.append(f"saved the weights of step {best.step}, the best on {evaluated_on} patches "
                            f"({best.scores['psnr']:.2f} dB; {evaluation['last']['psnr']:.2f} dB at the end)")
    summary = _summary(report, options, pretrained, degradation, device, dataset)
    model_card = _card(report, options, pretrained, dict(card or {}), device)
    save_generator(output, ema.module.cpu(), phase=phase, training=summary, card=model_card,
                   overwrite=options.overwrite)
    return report


def _summary(report: FinetuneReport, options: FinetuneOptions, pretrained: PretrainedModel,
             degradation: Degradation | None, device: torch.device, dataset: ValidPatches) -> dict[str, Any]:
    """The checkpoint's ``training`` entry: everything about the run, JSON-ready."""
    return json.loads(json.dumps({
        "kind": "finetune",
        "phase": report.phase,
        "data": report.sources,
        "patch_positions": dataset.num_positions,
        "pretrained": pretrained.describe(),
        "steps": {"done": report.steps, "planned": report.planned_steps},
        "minutes": round(report.seconds / 60.0, 2),
        "stopped_by_time": report.stopped_by_time,
        "stopped_early": report.stopped_early,
        "losses": {"first": report.first_losses, "last": report.last_losses},
        "evaluation": report.evaluation,
        "evaluated_on": report.evaluated_on,
        "best_step": report.best_step,
        "degradation": degradation.to_dict() if degradation is not None else "paired",
        "options": options.to_dict(),
        "device": describe_device(device),
        "seed": options.seed,
        "torch": torch.__version__,
        "srrestore": __version__,
    }, default=str))


def _card(report: FinetuneReport, options: FinetuneOptions, pretrained: PretrainedModel, domain: dict[str, Any],
          device: torch.device) -> dict[str, Any]:
    """The model card: the domain's entries plus the facts of the run."""
    sy, sx = report.scale
    scale = f"x{sy}" if sy == sx else f"x{sy}x{sx}"
    losses = {"pixel": f"{options.pixel_loss} x {options.pixel_weight:g}"}
    if options.perceptual_weight > 0:
        network = MONAI_NETWORKS.get(options.perceptual_network,
                                     f"VGG19 {options.vgg_layer} ({options.vgg_weights} weights)")
        losses["perceptual"] = f"{network} x {options.perceptual_weight:g}"
    if options.adversarial_loss_weight > 0:
        losses["adversarial"] = f"vanilla GAN x {options.adversarial_loss_weight:g}"
    return {
        "description": (f"{pretrained.name} fine-tuned on {len(report.sources)} file(s) of the user's data "
                        f"({report.steps} steps, {report.seconds / 60:.1f} min)"),
        **domain,
        "phase": report.phase,
        "scale": scale,
        "channels": report.channels,
        "data": report.sources,
        "fine_tuned_from": pretrained.describe(),
        "losses": losses,
        "steps": {"finetune": report.steps},
        "hardware": describe_device(device),
        "training_seconds": report.seconds,
        "evaluation": report.evaluation,
        "evaluation_protocol": (f"{EVALUATION_PATCHES} fixed {report.evaluated_on} patches, normalised units, "
                                f"PSNR range 1; saved: the best weights (step {report.best_step})"),
    }
