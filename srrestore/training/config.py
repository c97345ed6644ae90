"""Training recipes: every choice of a training run in one dataclass.

A recipe is a TOML or JSON file whose top-level keys are the fields of
:class:`TrainingConfig`; the nested tables ``[degradation]``, ``[loss]``,
``[pretrain_optimizer]``, ``[generator_optimizer]``, ``[discriminator_optimizer]``,
``[generator_options]``, ``[discriminator_options]`` and ``[card]`` fill the
matching fields. Unknown keys are refused with a "did you mean" hint. The
recipe is recorded in every checkpoint, so a model can be re-trained from it.

Example (TOML)::

    channels = 3
    scale = 4            # or [1, 4] for anisotropic factors (rows, columns)
    pretrain_steps = 2000
    gan_steps = 500

    [degradation]
    kernel = "bicubic"

    [loss]
    content = "feature-matching"
    gamma = 0.01
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from srrestore.errors import ConfigError, InputReadError, MissingDependencyError, check_choice
from srrestore.losses.monai_perceptual import MONAI_NETWORKS
from srrestore.losses.total import LossConfig
from srrestore.models.generator import SUPPORTED_FACTORS
from srrestore.training.degradation import Degradation

__all__ = [
    "SCHEDULES",
    "PRECISIONS",
    "SUPPORTED_FACTORS",
    "OptimizerConfig",
    "TrainingConfig",
    "parse_scale",
    "load_recipe",
    "merge_recipes",
]

SCHEDULES = ("cosine", "multistep", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Fields a resumed run may change; every other field must equal the stored recipe. The precision
# may change (weights and Adam states are float32 whatever it is; fp16 loss scaling starts afresh).
RESUMABLE_FIELDS = ("pretrain_steps", "gan_steps", "log_interval", "val_interval", "checkpoint_interval",
                    "num_workers", "card", "precision", "max_minutes", "patience")


def parse_scale(value: Any) -> tuple[int, int]:
    """A scale option as ``(rows, columns)`` factors.

    Accepts ``4``, ``"4"``, ``"1x4"`` (rows x columns) or ``[1, 4]``.

    Raises:
        ConfigError: not two factors from :data:`SUPPORTED_FACTORS`, or both 1.
    """
    try:
        if isinstance(value, str):
            parts = [int(part) for part in value.lower().split("x")]
            pair = (parts[0], parts[0]) if len(parts) == 1 else tuple(parts)
        elif isinstance(value, int) and not isinstance(value, bool):
            pair = (value, value)
        else:
            pair = tuple(int(part) for part in value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"scale must look like 4 or 1x4, got {value!r}") from error
    if len(pair) != 2 or any(factor not in SUPPORTED_FACTORS for factor in pair) or pair == (1, 1):
        raise ConfigError(f"scale must be two factors from {SUPPORTED_FACTORS}, not both 1; got {value!r}")
    return int(pair[0]), int(pair[1])


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _from_table(cls: type, table: Any, label: str) -> Any:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys with a hint."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"recipe entry {label!r} must be a table, got {table!r}")
    names = [item.name for item in fields(cls)]
    return cls(**{check_choice(f"{label} option", key, names): value for key, value in table.items()})


@dataclass
class OptimizerConfig:
    """Adam and its learning-rate schedule for one network in one phase.

    Attributes:
        lr: peak learning rate.
        betas: Adam's ``(beta1, beta2)``.
        weight_decay: L2 penalty (Adam's, not decoupled).
        schedule: ``"cosine"`` (to ``min_lr_ratio * lr``), ``"multistep"``
            (times ``gamma`` at each milestone) or ``"constant"``.
        warmup_steps: linear warm-up from ``lr / warmup_steps``.
        min_lr_ratio: the cosine schedule's floor, relative to ``lr``.
        milestones: multistep milestones as fractions of the phase's steps.
        gamma: multistep factor.
    """

    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.01
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.5

    def __post_init__(self) -> None:
        self.schedule = check_choice("learning-rate schedule", self.schedule, SCHEDULES)
        self.betas = tuple(float(beta) for beta in self.betas)  # type: ignore[assignment]
        self.milestones = tuple(float(value) for value in self.milestones)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"learning rate must be > 0, got {self.lr!r}")
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            raise ConfigError(f"Adam betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.weight_decay < 0 or self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1 or self.gamma <= 0:
            raise ConfigError(
                f"bad optimizer settings: weight_decay={self.weight_decay}, warmup_steps={self.warmup_steps}, "
                f"min_lr_ratio={self.min_lr_ratio}, gamma={self.gamma}"
            )
        if not all(0 < value < 1 for value in self.milestones):
            raise ConfigError(f"multistep milestones are fractions of the phase in (0, 1), got {self.milestones!r}")

    def lr_at(self, step: int, total: int) -> float:
        """Learning rate for ``step`` (0-based) of a phase of ``total`` steps."""
        if self.warmup_steps and step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "multistep":
            passed = sum(step >= milestone * total for milestone in self.milestones)
            return self.lr * self.gamma**passed
        span = max(total - self.warmup_steps, 1)
        progress = min(max(step - self.warmup_steps, 0) / span, 1.0)
        floor = self.min_lr_ratio * self.lr
        return floor + 0.5 * (self.lr - floor) * (1 + math.cos(math.pi * progress))


@dataclass
class TrainingConfig:
    """Every choice of a two-phase SR-GAN training run (the recipe).

    Attributes:
        channels: image channels the model takes and returns.
        scale: ``(rows, columns)`` upscale factors.
        generator: registered generator configuration (``srgan``, ``srgan-large``...).
        generator_options: overrides of that configuration (e.g. ``feedback_steps``).
        discriminator: registered discriminator configuration (``patch``...).
        discriminator_options: overrides (e.g. ``num_features``).
        patch_size: HR patch side in pixels (a multiple of both factors).
        batch_size: patches per step (per process under DDP).
        pretrain_steps: phase 1 steps (no discriminator).
        gan_steps: phase 2 steps (alternating discriminator and generator).
        deep_supervision: phase 1 averages the pixel loss over every feedback pass.
        pretrain_pixel_weight: weight of the pixel loss in phase 1 (>= 0).
        pretrain_content_weight: weight of ``loss``'s content loss (on the
            last feedback pass) in phase 1 (>= 0; 0, the default: SRGAN's
            pixel-only pre-training). Fine-tuning with a perceptual loss and
            no adversary is a phase-1 run with this weight.
        degradation: how LR inputs are made (its scale follows ``scale``);
            None: the dataset makes them (fine-tuning: a sensor model, a slice
            profile or real pairs, recorded in the training summary).
        loss: phase 2 generator loss; its pixel kind is also phase 1's loss.
        pretrain_optimizer: the generator's Adam in phase 1.
        generator_optimizer: the generator's Adam in phase 2 (fresh state).
        discriminator_optimizer: the discriminator's Adam.
        ema_decay: exponential moving average of the generator's weights; the
            averaged weights are validated and saved.
        keep_best: at the end of each phase, keep the averaged weights that
            scored the best PSNR on the first validation set, the weights the
            phase started from included (scored before its first step): a run
            never saves weights worse there than where it started. Needs a
            validation set.
        patience: with ``keep_best``, end the phase after this many
            validations in a row without a new best (0: never).
        max_minutes: wall-clock budget of the whole run in minutes, over all
            sessions (None: none). The run ends before a step that would pass
            it, saving its models, and every learning-rate schedule runs on
            ``max(step progress, time progress)``, so a run the budget stops has
            annealed too.
        grad_clip: maximum gradient norm per network and step; 0 = no clipping.
        precision: ``auto`` (bf16 on CUDA GPUs with native bf16, fp16 on older
            ones; fp32 elsewhere), ``fp32``, ``bf16`` or ``fp16``; reduced
            precision is used on CUDA only. A resumed run may change it.
        channels_last: channels-last memory format on CUDA.
        seed: seeds the weights and the data.
        augment: random flips and transposes of patches.
        num_workers: data-loading processes.
        val_fraction: share of the training images held out for validation
            when no validation folder is given (0: none).
        val_interval: steps between validations.
        log_interval: steps between log lines.
        checkpoint_interval: steps between resumable states.
        card: extra model-card entries (``description``, ``license``...).
    """

    channels: int = 3
    scale: tuple[int, int] = (4, 4)
    generator: str = "srgan"
    generator_options: dict[str, Any] = field(default_factory=dict)
    discriminator: str = "patch"
    discriminator_options: dict[str, Any] = field(default_factory=dict)
    patch_size: int = 128
    batch_size: int = 16
    pretrain_steps: int = 2000
    gan_steps: int = 1000
    deep_supervision: bool = True
    pretrain_pixel_weight: float = 1.0
    pretrain_content_weight: float = 0.0
    degradation: Degradation | None = field(default_factory=dict)  # type: ignore[assignment]  # built with `scale`
    loss: LossConfig = field(default_factory=LossConfig)
    pretrain_optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    generator_optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-4))
    discriminator_optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-4))
    ema_decay: float = 0.999
    keep_best: bool = False
    patience: int = 0
    max_minutes: float | None = None
    grad_clip: float = 0.0
    precision: str = "auto"
    channels_last: bool = True
    seed: int = 0
    augment: bool = True
    num_workers: int = 0
    val_fraction: float = 0.0
    val_interval: int = 500
    log_interval: int = 50
    checkpoint_interval: int = 500
    card: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scale = parse_scale(self.scale)
        if isinstance(self.degradation, Mapping):
            self.degradation = _from_table(Degradation, {"scale": self.scale, **self.degradation}, "degradation")
        if self.degradation is not None and self.degradation.scale != self.scale:
            raise ConfigError(
                f"degradation scale {self.degradation.scale} differs from the training scale {self.scale}"
            )
        if isinstance(self.loss, Mapping):
            self.loss = LossConfig.from_dict(dict(self.loss))
        for name in ("pretrain_optimizer", "generator_optimizer", "discriminator_optimizer"):
            if isinstance(getattr(self, name), Mapping):
                setattr(self, name, _from_table(OptimizerConfig, getattr(self, name), name))
        self.precision = check_choice("precision", self.precision, PRECISIONS)
        for name in ("generator_options", "discriminator_options", "card"):
            if not isinstance(getattr(self, name), Mapping):
                raise ConfigError(f"recipe entry {name!r} must be a table, got {getattr(self, name)!r}")
        self._check_numbers()

    def _check_numbers(self) -> None:
        checks = {
            "channels": 1 <= self.channels <= 16,
            "batch_size": self.batch_size >= 1,
            "patch_size": self.patch_size >= 1 and all(self.patch_size % factor == 0 for factor in self.scale),
            "pretrain_steps": self.pretrain_steps >= 0,
            "gan_steps": self.gan_steps >= 0,
            "ema_decay": 0 <= self.ema_decay < 1,
            "pretrain_pixel_weight": _finite(self.pretrain_pixel_weight) and self.pretrain_pixel_weight >= 0,
            "pretrain_content_weight": _finite(self.pretrain_content_weight) and self.pretrain_content_weight >= 0,
            "patience": isinstance(self.patience, int) and self.patience >= 0,
            "max_minutes": self.max_minutes is None or (_finite(self.max_minutes) and self.max_minutes > 0),
            "grad_clip": self.grad_clip >= 0,
            "num_workers": self.num_workers >= 0,
            "val_fraction": 0 <= self.val_fraction < 1,
            "val_interval": self.val_interval >= 1,
            "log_interval": self.log_interval >= 1,
            "checkpoint_interval": self.checkpoint_interval >= 1,
        }
        for name, valid in checks.items():
            if not valid:
                hint = f" (a multiple of the scale {self.scale})" if name == "patch_size" else ""
                raise ConfigError(f"invalid {name}{hint}: {getattr(self, name)!r}")
        if self.pretrain_steps + self.gan_steps < 1:
            raise ConfigError("pretrain_steps + gan_steps must be at least 1")
        if self.pretrain_steps and self.pretrain_pixel_weight == self.pretrain_content_weight == 0:
            raise ConfigError("phase 1's pixel and content weights are both 0")
        if self.pretrain_content_weight > 0 and self.loss.content not in ("vgg", *MONAI_NETWORKS):
            raise ConfigError(f"pretrain_content_weight={self.pretrain_content_weight} needs a perceptual content "
                              f"loss in [loss] (content = \"vgg\" or a MONAI network), not {self.loss.content!r}")
        if self.patience and not self.keep_best:
            raise ConfigError("patience counts validations without a new best: set keep_best = true")

    @property
    def total_steps(self) -> int:
        return self.pretrain_steps + self.gan_steps

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready recipe (round-trips through :meth:`from_dict`)."""
        data = asdict(self)
        data["scale"] = list(self.scale)
        data["degradation"] = None if self.degradation is None else self.degradation.to_dict()
        data["loss"] = self.loss.to_dict()
        for name in ("pretrain_optimizer", "generator_optimizer", "discriminator_optimizer"):
            section = data[name]
            section["betas"], section["milestones"] = list(section["betas"]), list(section["milestones"])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainingConfig":
        """Build from a recipe mapping; unknown keys raise with a "did you mean" hint."""
        return _from_table(cls, data, "recipe")

    def resume_differences(self, stored: "TrainingConfig") -> list[str]:
        """Fields that differ from ``stored`` and may not change on resume."""
        mine, theirs = self.to_dict(), stored.to_dict()
        return sorted(key for key in mine if key not in RESUMABLE_FIELDS and mine[key] != theirs[key])


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or JSON (``.json``) recipe into a mapping.

    Raises:
        InputReadError: the file is missing or unreadable.
        ConfigError: it does not parse, or has another suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ConfigError(f"recipe {path} must be a .toml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputReadError(f"cannot read recipe {path}: {error.strerror or error}") from error
    try:
        if suffix == ".json":
            data = json.loads(text)
        else:
            data = _toml_loads(text)
    except ValueError as error:  # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
        raise ConfigError(f"recipe {path} does not parse: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must hold a table of options, got {type(data).__name__}")
    return data


def _toml_loads(text: str) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError as error:
            raise MissingDependencyError("TOML recipes on Python 3.10 need tomli: pip install tomli") from error
    return tomllib.loads(text)


def merge_recipes(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``override``; nested tables are merged key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_recipes(merged[key], value)
        else:
            merged[key] = value
    return merged
