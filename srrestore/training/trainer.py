"""Two-phase SR-GAN training: Algorithm 1 of the seed (SRGAN, Ledig et al. 2017).

Phase 1 (``pretrain_steps``) trains the generator with the pixel loss alone,
averaged over every pass of its feedback loop (deep supervision, as SRFBN).
Its exponential moving average (EMA) is saved as the PSNR-oriented model.

Phase 2 (``gan_steps``) starts from that model and alternates, per minibatch,
a discriminator step on ``L_D`` and a generator step on
``L = alpha * L_pixel + beta * L_adv + gamma * L_content``; its EMA is saved as
the GAN model.

Around that: Adam with a per-phase schedule, gradient clipping, AMP (bf16 or
fp16 with loss scaling; on CUDA, and on the CPU when asked for), channels-last
on CUDA, deterministic data, periodic validation of the EMA weights, a tqdm
progress bar, a JSONL log and resumable states that continue a run
bit-exactly on the CPU. Launched with ``torchrun``, it trains with
DistributedDataParallel (one process per GPU, or several on the CPU with Gloo;
rank 0 validates, logs and writes files; logged losses are rank 0's; rank 0's
clock and validation decide every stop).

The same loop fine-tunes (:mod:`srrestore.training.finetune`): a run that
starts from a trained generator (``initial``), on any dataset that follows
:class:`TrainingPatches` (whole-image patches, valid-pixel patches with a
held-out band, anisotropic slice pairs), with the recipe's ``keep_best``,
``patience`` and ``max_minutes``: the saved weights are the best on the
validation set, the start included, and a time budget ends the run cleanly.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from srrestore import __version__
from srrestore.storage.atomic import check_output_path
from srrestore.engine.devices import (
    autocast,
    precision_name,
    resolve_device,
    resolve_precision,
    strict_fp32,
    to_device,
)
from srrestore.errors import ConfigError
from srrestore.losses.pixel import PixelLoss
from srrestore.losses.total import GeneratorLoss
from srrestore.models.checkpoint import CheckpointInfo, save_generator, untrained_history_entry
from srrestore.models.discriminator import PatchDiscriminator, create_discriminator
from srrestore.models.generator import SRGenerator, create_generator
from srrestore.models.surgery import grow_generator
from srrestore.training.config import OptimizerConfig, TrainingConfig
from srrestore.training.data import StepSampler
from srrestore.training.describe import LOSS_WINDOW, describe_device, describe_losses, mean_losses
from srrestore.training.distributed import DistributedContext
from srrestore.training.ema import ModelEMA
from srrestore.training.selection import KeepBest
from srrestore.training.state import TrainingState, capture_rng, restore_rng, save_state

__all__ = ["Trainer", "TrainingOutputs", "TrainingPatches", "TrainingResult", "Validation"]


class TrainingPatches(Protocol):
    """What the loop trains on: ``(lr, hr)`` patch pairs, item ``i`` a pure function of ``(seed, i)``.

    Implemented by :class:`~srrestore.training.data.PatchDataset` (whole
    images, bicubic-style degradation) and
    :class:`~srrestore.training.patches.ValidPatches` (valid pixels only,
    sensor degradations, slice profiles or real pairs, held-out bands).
    Items are float32 tensors ``(C, patch / sy, patch / sx)`` and ``(C, patch, patch)``.
    """

    patch_size: int
    scale: tuple[int, int]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]: ...

    def summary(self) -> dict[str, Any]:
        """What the training summary records about the data."""
        ...


class Validation(Protocol):
    """A validation set: ``scores`` gives ``psnr`` (which ``keep_best`` compares), ``bicubic_psnr`` and more.

    Implemented by :class:`~srrestore.training.data.ValidationSet` (whole
    images, benchmark protocol) and
    :class:`~srrestore.training.patches.PatchValidation` (fixed patches in
    normalised units).
    """

    name: str
    protocol: str

    def scores(self, predict: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]: ...


@dataclass(frozen=True)
class TrainingOutputs:
    """Files a run writes.

    Attributes:
        model: the final generator: phase 2's EMA (phase ``"gan"``), or phase
            1's when there is no phase 2.
        psnr_model: phase 1's EMA generator (phase ``"psnr"``).
        state: the resumable training state (None: none is written, and an
            interrupted run cannot be resumed).
        log: the JSONL log (None: no log).
    """

    model: Path
    psnr_model: Path
    state: Path | None
    log: Path | None = None

    @classmethod
    def beside(
        cls,
        model: str | os.PathLike[str],
        gan_steps: int,
        psnr_model: str | os.PathLike[str] | None = None,
        state: str | os.PathLike[str] | None = None,
        log: str | os.PathLike[str] | None = None,
    ) -> "TrainingOutputs":
        """Defaults next to ``model`` (``M.safetensors``): ``M.psnr.safetensors``
        (or ``model`` itself without phase 2) and ``M.state.safetensors``."""
        model = Path(model)
        stem = model.name.removesuffix(".safetensors")
        default_psnr = model if gan_steps == 0 else model.with_name(f"{stem}.psnr.safetensors")
        return cls(
            model=model,
            psnr_model=Path(psnr_model) if psnr_model is not None else default_psnr,
            state=Path(state) if state is not None else model.with_name(f"{stem}.state.safetensors"),
            log=Path(log) if log is not None else None,
        )

    def files(self) -> list[Path]:
        return [path for path in (self.model, self.psnr_model, self.state, self.log) if path is not None]


@dataclass
class TrainingResult:
    """What :meth:`Trainer.run` did.

    Attributes:
        outputs: the files of the run.
        step: steps done so far (over all sessions of the run).
        finished: True when the run is over: both phases complete, or ended
            early by ``max_minutes`` or ``patience``.
        metrics: the saved weights' validation per phase and set:
            ``{"psnr": {"Set5": {"psnr": ..., ...}}}``.
        seconds: training wall time over all sessions.
        stopped_by: ``"time budget"`` or ``"patience"`` when the run ended
            early, else None.
        saved: the model files written by this session.
    """

    outputs: TrainingOutputs
    step: int
    finished: bool
    metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    seconds: float = 0.0
    stopped_by: str | None = None
    saved: list[Path] = field(default_factory=list)


def load_scaler_state(scaler: torch.amp.GradScaler, saved: dict[str, Any]) -> bool:
    """Continue fp16 loss scaling from a saved state when the saved run and this one both scale.

    A GradScaler is enabled only for fp16 on CUDA; a disabled one (CPU, MPS, bf16,
    fp32) saves ``{}``. A run resumed on another device or at another precision
    keeps ``scaler`` as built: fresh (scale 65536, halved at each overflow) when it
    is enabled, unused when it is not.

    Returns:
        Whether ``saved`` was loaded.
    """
    if not (scaler.is_enabled() and saved):
        return False
    scaler.load_state_dict(saved)
    return True


class _FeedbackPasses(nn.Module):
    """Wraps a generator so that ``forward`` returns every feedback pass (for DDP)."""

    def __init__(self, generator: SRGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.generator.forward_passes(x)


@dataclass
class _Adversary:
    """Everything phase 2 adds: the discriminator, its optimizer and the generator's total loss."""

    network: PatchDiscriminator
    parallel: nn.Module
    optimizer: torch.optim.Adam
    scaler: torch.amp.GradScaler
    loss: GeneratorLoss


class _StepTimer:
    """Sums per-step wall time and patches between log lines (throughput)."""

    def __init__(self) -> None:
        self.seconds, self.patches, self.last = 0.0, 0, time.perf_counter()

    def tick(self, patches: int) -> float:
        now = time.perf_counter()
        elapsed, self.last = now - self.last, now
        self.seconds += elapsed
        self.patches += patches
        return elapsed

    def skip(self) -> None:
        """Exclude the time since the last tick (validation, checkpoints)."""
        self.last = time.perf_counter()

    def rate(self) -> float:
        return self.patches / self.seconds if self.seconds > 0 else 0.0

    def reset(self) -> None:
        self.seconds, self.patches = 0.0, 0


class Trainer:
    """Runs (or resumes) one training run: two phases from scratch, or fine-tuning from ``initial``.

    Args:
        config: the recipe.
        dataset: training patches; their patch size and scale must be the recipe's.
        validation: sets measured every ``config.val_interval`` steps and at
            the end of each phase (may be empty; ``keep_best`` decides on the first).
        outputs: where the models, state and log go.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (under
            torchrun with CUDA, each rank takes ``cuda:LOCAL_RANK``).
        sources: training folders or files, recorded in the checkpoints.
        validation_sources: validation folders, recorded likewise.
        data_fingerprint: a hash of the training data
            (:func:`~srrestore.training.data.images_fingerprint`,
            :func:`~srrestore.training.patches.patches_fingerprint`); a resumed run must match it.
        resume_from: a state written by an earlier session of this run.
        initial: a trained generator and its checkpoint description to start
            from (``srrestore train --init``, fine-tuning): its weights seed the
            generator and its EMA, and its card's steps and seconds carry over, so
            several short sessions add up to one model's history.
        overwrite: replace existing output files (implied when resuming).
        progress: show a tqdm progress bar.
        started: ``time.monotonic()`` when the command started: the time
            before training (reading the data) counts toward ``max_minutes``;
            None: the budget counts from :meth:`run`.
        summary_entries: what the caller records in the training summary
            beside the recipe (fine-tuning: its options and starting model).

    Raises:
        ConfigError: bad configuration, or a state that does not fit it.
        OutputExistsError: an output exists and ``overwrite`` is False.
        WeightsUnavailableError: the content loss's VGG19 weights are missing.
    """

    def __init__(
        self,
        config: TrainingConfig,
        dataset: TrainingPatches,
        validation: Sequence[Validation],
        outputs: TrainingOutputs,
        device: str = "auto",
        sources: Sequence[str] = (),
        validation_sources: Sequence[str] = (),
        data_fingerprint: str = "",
        resume_from: TrainingState | None = None,
        initial: tuple[SRGenerator, CheckpointInfo] | None = None,
        overwrite: bool = False,
        progress: bool = True,
        started: float | None = None,
        summary_entries: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.validation = list(validation)
        self.outputs = outputs
        self.sources = [str(source) for source in sources]
        self.validation_sources = [str(source) for source in validation_sources]
        self.data_fingerprint = data_fingerprint
        self.progress = progress
        self.started = started
        self.summary_entries = dict(summary_entries or {})
        self.distributed = DistributedContext.from_environment()
        self.device = self.distributed.setup(resolve_device(device))
        self.amp_dtype = self._training_precision()
        on_cuda = self.device.type == "cuda"
        self.memory_format = torch.channels_last if on_cuda and config.channels_last else torch.contiguous_format
        if dataset.patch_size != config.patch_size or tuple(dataset.scale) != config.scale:
            raise ConfigError(f"the dataset's patch size {dataset.patch_size} or scale {tuple(dataset.scale)} differs "
                              f"from the recipe's ({config.patch_size}, {config.scale})")
        if config.keep_best and not self.validation:
            raise ConfigError("keep_best needs a validation set")

        def check_outputs() -> None:
            for path in outputs.files():
                check_output_path(path, overwrite)

        if resume_from is None:
            self.distributed.check_on_main(check_outputs)

        torch.manual_seed(config.seed)
        self.generator = self._build_generator()
        self.generator_passes = self._parallel(_FeedbackPasses(self.generator))
        self.ema = ModelEMA(self.generator, config.ema_decay)
        self.pixel_loss = PixelLoss(config.loss.pixel, config.loss.pixel_eps)
        self.pretrain_content = self._pretrain_content_loss()
        first_optimizer = config.pretrain_optimizer if config.pretrain_steps > 0 else config.generator_optimizer
        self.optimizer_g = self._adam(self.generator, first_optimizer)
        self.scaler_g = self._scaler()
        self.adversary = self._build_adversary() if config.gan_steps > 0 else None

        self.step = 0
        self.gan_started = False
        self.elapsed = 0.0
        self.metrics: dict[str, dict[str, dict[str, float]]] = {}
        self.history: list[dict[str, Any]] = []
        self.initial_phase: str | None = None
        self.selection: KeepBest | None = None  # the current phase's best weights (rank 0, keep_best)
        self.selections: dict[str, dict[str, Any]] = {}  # finished phases' keep-best records
        # This session's per-step losses: the first and the last LOSS_WINDOW steps (all a summary reports).
        self.first_losses: list[dict[str, float]] = []
        self.last_losses: collections.deque[dict[str, float]] = collections.deque(maxlen=LOSS_WINDOW)
        self.stopped_by: str | None = None
        self._validated_step = -1
        self._time_fraction = 0.0
        self._mark = time.perf_counter()
        self._saved: list[Path | None] = []  # this session's model files
        if initial is not None:
            self._initialise(*initial)
        if resume_from is not None:
            self._restore(resume_from)

    # -- construction -------------------------------------------------------------------------------

    def _training_precision(self) -> torch.dtype | None:
        """The autocast dtype: the recipe's precision on CUDA and, when asked for by name, on the CPU."""
        dtype = resolve_precision(self.config.precision, self.device)
        if self.device.type in ("cuda", "cpu"):
            return dtype
        if dtype is not None:
            raise ConfigError(f"{precision_name(dtype)} training runs on CUDA or the CPU, not {self.device.type}")
        return None

    def _scaler(self) -> torch.amp.GradScaler:
        """fp16 loss scaling (disabled at other precisions)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    def _build_generator(self) -> SRGenerator:
        config = self.config
        try:
            generator = create_generator(
                config.generator, **{**config.generator_options, "in_channels": config.channels, "scale": config.scale}
            )
        except (TypeError, ValueError) as error:
            raise ConfigError(f"cannot build generator {config.generator!r}: {error}") from error
        return generator.to(self.device, memory_format=self.memory_format).train()

    def _pretrain_content_loss(self) -> GeneratorLoss | None:
        """Phase 1's weighted content loss (None: phase 1 is pixel-only)."""
        weight = self.config.pretrain_content_weight
        if weight == 0:
            return None
        loss = dataclasses.replace(self.config.loss, alpha=0.0, beta=0.0, gamma=weight)
        return GeneratorLoss(loss).to(self.device)
    def _build_adversary(self) -> _Adversary:
        config = self.config
        try:
            discriminator = create_discriminator(
                config.discriminator, **{**config.discriminator_options, "in_channels": config.channels}
            )
        except TypeError as error:
            raise ConfigError(f"cannot build discriminator {config.discriminator!r}: {error}") from error
        if config.patch_size < discriminator.min_size:
            raise ConfigError(
                f"patch size {config.patch_size} is below the discriminator's minimum {discriminator.min_size}"
            )
        discriminator = discriminator.to(self.device, memory_format=self.memory_format).train()
        return _Adversary(
            network=discriminator,
            parallel=self._parallel(discriminator),
            optimizer=self._adam(discriminator, config.discriminator_optimizer),
            scaler=self._scaler(),
            loss=GeneratorLoss(config.loss).to(self.device),
        )

    def _parallel(self, module: nn.Module) -> nn.Module:
        if not self.distributed.enabled:
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)

    @staticmethod
    def _adam(module: nn.Module, settings: OptimizerConfig) -> torch.optim.Adam:
        return torch.optim.Adam(
            module.parameters(), lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay
        )

    def _initialise(self, generator: SRGenerator, info: CheckpointInfo) -> None:
        """Start from a trained generator; keep its training history.

        The recipe's generator may be deeper (more ``num_groups`` or
        ``blocks_per_group``): the added layers start as identities
        (:func:`~srrestore.models.surgery.grow_generator`) and the history records it.
        """
        grown = grow_generator(generator, self.generator)
        self.ema.module.load_state_dict(self.generator.state_dict())
        self.initial_phase = info.phase
        card = info.card
        self.history = list(card.get("history", [])) or [
            {"steps": card.get("steps", {}), "seconds": card.get("training_seconds", 0.0),
             "hardware": card.get("hardware", "unknown")}
        ]
        if grown:
            self.history.append(untrained_history_entry("grown", grown, "network growth"))

    def _session(self, phase: str) -> dict[str, Any]:
        """This run's entry in a card's history."""
        return {"steps": self._phase_steps(phase), "seconds": round(self.elapsed, 1),
                "hardware": describe_device(self.device)}

    def _phase_steps(self, phase: str) -> dict[str, int]:
        """Steps done per phase by this run when ``phase``'s model is saved."""
        pretrain = min(self.step, self.config.pretrain_steps)
        return {"pretrain": pretrain, "gan": self.step - pretrain if phase == "gan" else 0}

    def _lineage(self, phase: str) -> dict[str, Any]:
        """Steps, seconds and history summed over this run and the runs it started from."""
        sessions = [*self.history, self._session(phase)]
        steps = {name: sum(int(session["steps"].get(name, 0)) for session in sessions) for name in ("pretrain", "gan")}
        return {"steps": steps, "training_seconds": round(sum(float(s["seconds"]) for s in sessions), 1),
                "history": sessions}

    # -- state ----------------------------------------------------------------------------------------

    def state(self) -> TrainingState:
        """The resumable state after the current step."""
        modules = {"generator": self.generator.state_dict(), "ema": self.ema.module.state_dict()}
        optimizers = {"generator": self.optimizer_g.state_dict()}
        scalers = {"generator": self.scaler_g.state_dict()}
        if self.adversary is not None:
            modules["discriminator"] = self.adversary.network.state_dict()
            optimizers["discriminator"] = self.adversary.optimizer.state_dict()
            scalers["discriminator"] = self.adversary.scaler.state_dict()
        if self.selection is not None:
            modules["best"] = self.selection.state
        info = {
            "step": self.step,
            "gan_started": self.gan_started,
            "ema_updates": self.ema.num_updates,
            "elapsed_seconds": self.elapsed,
            "metrics": self.metrics,
            "recipe": self.config.to_dict(),
            "sources": self.sources,
            "validation_sources": self.validation_sources,
            "outputs": {name: None if path is None else str(path) for name, path in vars(self.outputs).items()},
            "data_fingerprint": self.data_fingerprint,
            "scalers": scalers,
            "history": self.history,
            "initial_phase": self.initial_phase,
            "selection": None if self.selection is None else self.selection.to_dict(),
            "selections": self.selections,
            "validated_step": self._validated_step,
        }
        return TrainingState(info=info, modules=modules, optimizers=optimizers, rng=capture_rng())

    def _restore(self, state: TrainingState) -> None:
        info = state.info
        stored = TrainingConfig.from_dict(info["recipe"])
        changed = self.config.resume_differences(stored)
        if changed:
            raise ConfigError(
                f"cannot resume with a different {', '.join(changed)}; only step counts and intervals may change"
            )
        if self.data_fingerprint and info.get("data_fingerprint") not in ("", self.data_fingerprint):
            raise ConfigError("the training images differ from those of the run being resumed")
        step, gan_started = int(info["step"]), bool(info["gan_started"])
        if gan_started and self.config.pretrain_steps != stored.pretrain_steps:
            raise ConfigError(f"cannot change pretrain_steps once phase 2 began (it was {stored.pretrain_steps})")
        if not gan_started and step > self.config.pretrain_steps:
            raise ConfigError(f"pretrain_steps {self.config.pretrain_steps} is below the {step} steps already done")
        if gan_started and self.adversary is None:
            raise ConfigError("this run is in phase 2; gan_steps must stay above 0")
        self.generator.load_state_dict(state.modules["generator"])
        self.ema.load_state_dict({"module": state.modules["ema"], "num_updates": info["ema_updates"]})
        if gan_started:
            self.optimizer_g = self._adam(self.generator, self.config.generator_optimizer)
        self.optimizer_g.load_state_dict(state.optimizers["generator"])
        load_scaler_state(self.scaler_g, info["scalers"]["generator"])
        if self.adversary is not None and "discriminator" in state.modules:
            self.adversary.network.load_state_dict(state.modules["discriminator"])
            self.adversary.optimizer.load_state_dict(state.optimizers["discriminator"])
            load_scaler_state(self.adversary.scaler, info["scalers"]["discriminator"])
        restore_rng(state.rng)
        self.step, self.gan_started = step, gan_started
        self.elapsed = float(info["elapsed_seconds"])
        self.metrics = info["metrics"]
        self.history = list(info.get("history", []))
        self.initial_phase = info.get("initial_phase", self.initial_phase)
        if info.get("selection") and self.distributed.is_main:
            self.selection = KeepBest.from_dict(info["selection"], state.modules["best"])
        self.selections = dict(info.get("selections", {}))
        self._validated_step = int(info.get("validated_step", -1))

    # -- steps ----------------------------------------------------------------------------------------

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        return autocast(self.device, self.amp_dtype)

    def _apply(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               module: nn.Module) -> None:
        """Backward, clip and step one network."""
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.config.grad_clip > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(module.parameters(), self.config.grad_clip)
        scaler.step(optimizer)
        scaler.update()

    @staticmethod
    def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lr

    def _schedule_step(self, phase_step: int, phase_steps: int) -> float:
        """Where a phase's schedule stands: its step, or further on when the time budget ran further."""
        return max(float(phase_step), self._time_fraction * phase_steps)

    def _pretrain_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        config = self.config
        schedule_step = self._schedule_step(self.step, config.pretrain_steps)
        self._set_lr(self.optimizer_g, config.pretrain_optimizer.lr_at(schedule_step, config.pretrain_steps))
        with self._autocast():
            passes = self.generator_passes(lr)
        parts: dict[str, torch.Tensor] = {}
        total = hr.new_zeros(())
        if config.pretrain_pixel_weight > 0:
            supervised = passes if config.deep_supervision else passes[-1:]
            parts["pixel"] = sum(self.pixel_loss(output.float(), hr) for output in supervised) / len(supervised)
            total = config.pretrain_pixel_weight * parts["pixel"]
        if self.pretrain_content is not None:
            with self._autocast():
                content, content_parts = self.pretrain_content(passes[-1].float(), hr)
            total, parts["content"] = total + content, content_parts["content"]
        self._apply(total, self.optimizer_g, self.scaler_g, self.generator)
        return {name: value.item() for name, value in parts.items()}

    def _start_gan_phase(self) -> None:
        """Phase 2 starts from the PSNR model (phase 1's EMA) with a fresh Adam and a restarted EMA warm-up.

        Restarting the warm-up makes the GAN model an average of phase-2
        weights: with the full decay (0.999) a 500-step phase 2 would keep
        60 % of the PSNR model in it.
        """
        if self.config.pretrain_steps > 0:
            self.generator.load_state_dict(self.ema.module.state_dict())
        self.ema.restart_warmup()
        self.optimizer_g = self._adam(self.generator, self.config.generator_optimizer)
        self.gan_started = True

    def _gan_step(self, lr: torch.Tensor, hr: torch.Tensor, adversary: _Adversary) -> dict[str, float]:
        config = self.config
        phase_step = self._schedule_step(self.step - config.pretrain_steps, config.gan_steps)
        self._set_lr(self.optimizer_g, config.generator_optimizer.lr_at(phase_step, config.gan_steps))
        self._set_lr(adversary.optimizer, config.discriminator_optimizer.lr_at(phase_step, config.gan_steps))
        with self._autocast():
            fake = self.generator_passes(lr)[-1]
        # Discriminator step on L_D (real and fake in one forward: one DDP reduction).
        adversary.network.requires_grad_(True)
        with self._autocast():
            logits = adversary.parallel(torch.cat([hr, fake.detach()]))
        real_logits, fake_logits = logits.float().chunk(2)
        loss_d = adversary.loss.adversarial.discriminator_loss(real_logits, fake_logits)
        self._apply(loss_d, adversary.optimizer, adversary.scaler, adversary.network)
        # Generator step on the total loss, through the updated, frozen discriminator.
        adversary.network.requires_grad_(False)
        with self._autocast():
            total, parts = adversary.loss(fake.float(), hr, discriminator=adversary.network)
        self._apply(total, self.optimizer_g, self.scaler_g, self.generator)
        adversary.network.requires_grad_(True)
        return {
            "d": loss_d.item(),
            "g": total.item(),
            **{name: value.item() for name, value in parts.items()},
            "d_real": real_logits.mean().item(),
            "d_fake": fake_logits.mean().item(),
        }

    # -- validation and outputs ---------------------------------------------------------------------

    @torch.no_grad()
    def _predict(self, lr: np.ndarray) -> np.ndarray:
        """EMA generator on one ``(C, h, w)`` image -> ``(C, H, W)`` float32."""
        batch = torch.from_numpy(lr)[None].to(self.device).contiguous(memory_format=self.memory_format)
        with self._autocast():
            output = self.ema.module(batch)
        return output.float()[0].cpu().numpy()

    def validate(self, phase: str) -> dict[str, dict[str, float]]:
        """Measure the EMA generator on every validation set (rank 0); returns and records the scores."""
        scores = {}
        for validation_set in self.validation:
            scores[validation_set.name] = validation_set.scores(self._predict)
        if scores:
            self.metrics[phase] = scores
        self._validated_step = self.step
        return scores

    def _phase(self) -> str:
        return "gan" if self.gan_started else "psnr"

    def _begin_selection(self, phase: str, handle: Any, bar: tqdm) -> None:
        """Keep-best (rank 0): score the weights ``phase`` starts from as its first best."""
        if not (self.config.keep_best and self.distributed.is_main):
            return
        previous = self.selections.get("psnr") if phase == "gan" else None
        if previous is not None:  # phase 2 starts from phase 1's saved weights, already scored
            scores = previous["saved"]
        else:
            scores = self._validate_and_log(phase, handle, bar)[self.validation[0].name]
        start_phase = "psnr" if previous is not None else (self.initial_phase or phase)
        self.selection = KeepBest.begin(self.ema.module, self.validation[0].name, start_phase, self.step, scores)

    def _validate_step(self, phase: str, handle: Any, bar: tqdm) -> bool:
        """Validate on rank 0 (see :meth:`_validate_on_main`); every rank learns whether patience ends the run."""
        stop = self._validate_on_main(phase, handle, bar) if self.distributed.is_main else False
        return bool(self.distributed.agree(float(stop)))

    def _validate_and_log(self, phase: str, handle: Any, bar: tqdm) -> dict[str, dict[str, float]]:
        """Validate (rank 0), write the scores to the log and above the progress bar."""
        scores = self.validate(phase)
        for name, values in scores.items():
            self._log(handle, {"event": "validation", "step": self.step, "phase": phase, "set": name, **values})
            extra = f", SSIM {values['ssim']:.4f}" if "ssim" in values else ""
            self._say(bar, f"step {self.step} {name}: PSNR {values['psnr']:.2f} dB "
                           f"(bicubic {values['bicubic_psnr']:.2f}){extra}")
        return scores

    def _validate_on_main(self, phase: str, handle: Any, bar: tqdm) -> bool:
        """Validate, log and offer the scores to keep-best; returns whether patience ends the run."""
        self._validate_and_log(phase, handle, bar)
        if self.selection is None:
            return False
        self.selection.offer(self.ema.module, self.step, self.metrics[phase][self.selection.set_name])
        return 0 < self.config.patience <= self.selection.stale

    def _end_phase(self, phase: str, handle: Any, bar: tqdm) -> Path | None:
        """Validate the last weights, swap in the best ones (keep_best) and save ``phase``'s model (rank 0).

        Under DDP every rank then takes rank 0's averaged weights, so that a
        following phase starts from the same weights everywhere.
        """
        saved = None
        if self.distributed.is_main:
            if self.validation and self._validated_step != self.step:
                self._validate_on_main(phase, handle, bar)
            selection = self.selection
            if selection is not None:
                selection.last = self.metrics[phase][selection.set_name]
                if selection.best_step != self.step:
                    self.ema.module.load_state_dict(selection.state)
                    self.validate(phase)  # the saved weights' scores on every set
                self.selections[phase] = {**selection.to_dict(), "saved": selection.best}
                self.selection = None
            saved = self._save_model(phase)
            self._say(bar, f"saved {saved}")
        if self.config.keep_best:
            self.distributed.share(self.ema.module)
        return saved

    def summary(self, phase: str) -> dict[str, Any]:
        """The training summary stored in a checkpoint of ``phase``."""
        config = self.config
        return {
            **self.summary_entries,
            "phase": phase,
            "data": self.sources,
            **self.dataset.summary(),
            "data_fingerprint": self.data_fingerprint,
            "validation_data": self.validation_sources,
            "validation_sets": [validation_set.name for validation_set in self.validation],
            "steps": self._phase_steps(phase),
            "planned_steps": {"pretrain": config.pretrain_steps, "gan": config.gan_steps if phase == "gan" else 0},
            "stopped_by": self.stopped_by,
            "losses": {"first": mean_losses(self.first_losses), "last": mean_losses(self.last_losses)},
            "metrics": self.metrics.get(phase, {}),
            "selection": self.selections.get(phase),
            "recipe": config.to_dict(),
            "device": describe_device(self.device),
            "precision": precision_name(self.amp_dtype),
            "world_size": self.distributed.world_size,
            "seconds": round(self.elapsed, 1),
            "torch": torch.__version__,
            "srrestore": __version__,
            "seed": config.seed,
        }

    def card(self, phase: str) -> dict[str, Any]:
        """The model card of a checkpoint of ``phase``: the recipe's card entries plus facts."""
        config = self.config
        scale = "x".join(map(str, config.scale)) if config.scale[0] != config.scale[1] else f"x{config.scale[0]}"
        protocol = "; ".join(dict.fromkeys(validation_set.protocol for validation_set in self.validation))
        selection = self.selections.get(phase)
        if selection is not None:
            protocol += (f"; saved: the best weights on {selection['set']} (step {selection['best_step']}, "
                         f"the start's weights included)")
        card = {
            **config.card,
            "phase": self.saved_phase(phase),
            "scale": scale,
            "channels": config.channels,
            "data": self.sources,
            "losses": describe_losses(config, phase),
            **self._lineage(phase),
            "hardware": describe_device(self.device),
            "validation": self.metrics.get(phase, {}),
            "validation_protocol": protocol,
        }
        if selection is not None:
            card["selection"] = selection
        return card

    def saved_phase(self, phase: str) -> str:
        """The checkpoint's phase: the start's when keep-best kept the weights a phase started from."""
        selection = self.selections.get(phase)
        if selection is not None and selection["best_step"] == selection["start_step"]:
            return str(selection["start_phase"])
        return phase

    def _save_model(self, phase: str) -> Path:
        path = self.outputs.psnr_model if phase == "psnr" else self.outputs.model
        return save_generator(path, self.ema.module, phase=self.saved_phase(phase), training=self.summary(phase),
                              card=self.card(phase))

    def save_state(self) -> Path | None:
        """Write the resumable state (rank 0); None when the run has no state file."""
        if self.outputs.state is None:
            return None
        return save_state(self.outputs.state, self.state())

    # -- the loop ---------------------------------------------------------------------------------------

    def _batches(self, end: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        sampler = StepSampler(self.config.batch_size, self.step, end, self.distributed.rank,
                              self.distributed.world_size)
        loader = DataLoader(
            self.dataset,  # type: ignore[arg-type]  # a map-style dataset (TrainingPatches)
            batch_size=self.config.batch_size,
            sampler=sampler,
            num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        for lr, hr in loader:
            yield (
                to_device(lr, self.device).contiguous(memory_format=self.memory_format),
                to_device(hr, self.device).contiguous(memory_format=self.memory_format),
            )

    def _log(self, handle: Any, record: dict[str, Any]) -> None:
        if handle is not None:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()

    def _open_log(self) -> Any:
        if not self.distributed.is_main or self.outputs.log is None:
            return None
        self.outputs.log.parent.mkdir(parents=True, exist_ok=True)
        return open(self.outputs.log, "a" if self.step > 0 else "w", encoding="utf-8")

    def _say(self, bar: tqdm, message: str) -> None:
        """A progress message above the bar (rank 0, unless progress is off)."""
        if self.progress and self.distributed.is_main:
            bar.write(message)

    def _elapsed_now(self) -> float:
        return self.elapsed + time.perf_counter() - self._mark

    def _tick(self) -> None:
        """Add the time since the last tick to ``elapsed``."""
        now = time.perf_counter()
        self.elapsed, self._mark = self.elapsed + now - self._mark, now

    def _out_of_time(self, step_seconds: float) -> bool:
        """Whether the next step would pass ``max_minutes`` (rank 0's clock); sets the schedule's time progress."""
        budget = self.config.max_minutes
        if budget is None:
            return False
        elapsed = self.distributed.agree(self._elapsed_now())
        step_seconds = self.distributed.agree(step_seconds)
        self._time_fraction = elapsed / (60.0 * budget)
        return elapsed + step_seconds > 60.0 * budget

    def _after_step(self, handle: Any, bar: tqdm) -> None:
        """Validation, model files and states due after the step just done; patience may end the run here."""
        config, step, phase = self.config, self.step, self._phase()
        phase_end = step == (config.pretrain_steps if phase == "psnr" else config.total_steps)
        validate = bool(self.validation) and (phase_end or step % config.val_interval == 0)
        checkpoint = phase_end or step % config.checkpoint_interval == 0
        if not (validate or checkpoint):
            return
        stop = self._validate_step(phase, handle, bar) if validate else False
        if stop:
            self.stopped_by = "patience"
        if phase_end or stop:
            self._saved.append(self._end_phase(phase, handle, bar))
        if checkpoint and self.distributed.is_main:
            self.save_state()
        self.distributed.barrier()

    def _step_precision(self) -> contextlib.AbstractContextManager[object]:
        """Around a whole step, backward included: training in fp32 on CUDA means TF32 off."""
        return strict_fp32() if self.device.type == "cuda" and self.amp_dtype is None else contextlib.nullcontext()

    def _enter_phase(self, handle: Any, bar: tqdm) -> None:
        """Start phase 2 when phase 1 is over; begin keep-best when a phase starts."""
        if self.step >= self.config.pretrain_steps and not self.gan_started:
            self._start_gan_phase()
            self._begin_selection("gan", handle, bar)
        elif self.step == 0 and self.selection is None:
            self._begin_selection("psnr", handle, bar)

    def _train_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        with self._step_precision():
            if not self.gan_started:
                return self._pretrain_step(lr, hr)
            if self.adversary is None:
                raise ConfigError("phase 2 needs gan_steps > 0")
            return self._gan_step(lr, hr, self.adversary)

    def run(self, stop_after: int | None = None) -> TrainingResult:
        """Train until the run is over, or for at most ``stop_after`` more steps.

        Writes each phase's model when the phase ends (or when ``max_minutes``
        or ``patience`` end the run), and the state every
        ``checkpoint_interval`` steps, at phase ends, when stopping early and
        on Ctrl-C.
        """
        config = self.config
        end = config.total_steps if stop_after is None else min(config.total_steps, self.step + max(stop_after, 0))
        main = self.distributed.is_main
        self._mark = time.perf_counter()
        if self.started is not None:  # the setup of this session counts toward the time budget
            self.elapsed += max(time.monotonic() - self.started, 0.0)
            self.started = None
        self._saved = []
        handle = self._open_log()
        bar = tqdm(total=config.total_steps, initial=self.step, disable=not (self.progress and main), unit="step",
                   dynamic_ncols=True, desc="train")
        timer, sums, count, step_seconds = _StepTimer(), {}, 0, 0.0
        try:
            for lr, hr in self._batches(end):
                self._enter_phase(handle, bar)
                if self._out_of_time(step_seconds):
                    self.stopped_by = "time budget"
                    break
                started_step = time.perf_counter()
                losses = self._train_step(lr, hr)
                self.ema.update(self.generator)
                self.step += 1
                if len(self.first_losses) < LOSS_WINDOW:
                    self.first_losses.append(losses)
                self.last_losses.append(losses)
                step_seconds = time.perf_counter() - started_step
                timer.tick(lr.shape[0] * self.distributed.world_size)
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + value
                count += 1
                bar.update(1)
                shown = {name: f"{value:.4g}" for name, value in losses.items() if name in ("pixel", "d", "g")}
                bar.set_postfix({"phase": self._phase(), **shown, "patch/s": f"{timer.rate():.1f}"}, refresh=False)
                self._tick()
                if self.step % config.log_interval == 0 or self.step == end:
                    self._log(handle, {
                        "event": "train", "step": self.step, "phase": self._phase(),
                        "lr": self.optimizer_g.param_groups[0]["lr"],
                        **{name: value / count for name, value in sums.items()},
                        "patches_per_s": round(timer.rate(), 2), "seconds": round(self.elapsed, 1),
                    })
                    sums, count = {}, 0
                    timer.reset()
                self._after_step(handle, bar)
                self._tick()
                timer.skip()
                if self.stopped_by is not None:
                    break
            if self.stopped_by == "time budget":
                self._saved.append(self._end_phase(self._phase(), handle, bar))
                self._tick()
        except KeyboardInterrupt:
            if main:
                state = self.save_state()
                self._say(bar, f"interrupted at step {self.step}" +
                          (f"; resume with --resume {state}" if state is not None else ""))
            raise
        finally:
            bar.close()
            if handle is not None:
                handle.close()
        finished = self.step >= config.total_steps or self.stopped_by is not None
        if main and (not finished or self.stopped_by is not None):
            self.save_state()
        return TrainingResult(self.outputs, self.step, finished, self.metrics, self.elapsed, self.stopped_by,
                              [path for path in self._saved if path is not None])
