"""How training runs describe themselves in summaries and model cards: hardware, losses, loss means."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from srrestore.losses.monai_perceptual import MONAI_NETWORKS
from srrestore.losses.total import LossConfig
from srrestore.training.config import TrainingConfig

__all__ = ["LOSS_WINDOW", "describe_content", "describe_device", "describe_losses", "mean_losses"]

LOSS_WINDOW = 20  # steps averaged for the first and last losses of a training summary


def describe_device(device: torch.device) -> str:
    """A human description of the training hardware, e.g. ``"cpu: AMD EPYC 7B13 (2 threads)"``."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{device.type}: {name} ({torch.get_num_threads()} threads)"


def mean_losses(records: Sequence[dict[str, float]]) -> dict[str, float]:
    """Each loss's mean over ``records`` (per-step losses)."""
    names = sorted({name for record in records for name in record})
    return {name: float(np.mean([record[name] for record in records if name in record])) for name in names}


def describe_losses(config: TrainingConfig, phase: str) -> dict[str, str]:
    """The losses and weights a ``phase`` model was trained with, as a model card names them."""
    loss = config.loss
    content = describe_content(loss)
    if phase == "psnr":
        weights = {"pixel": config.pretrain_pixel_weight, "perceptual": config.pretrain_content_weight}
        return {name: f"{content if name == 'perceptual' else loss.pixel} x {weight:g}"
                for name, weight in weights.items() if weight > 0}
    losses = {"pixel": f"{loss.pixel} x {loss.alpha:g}"} if loss.alpha > 0 else {}
    if loss.beta > 0:
        losses["adversarial"] = f"{loss.adversarial} GAN x {loss.beta:g}"
    if loss.gamma > 0:
        losses["perceptual" if loss.content != "feature-matching" else "content"] = f"{content} x {loss.gamma:g}"
    return losses


def describe_content(loss: LossConfig) -> str:
    """The content loss's network and weights, e.g. ``"VGG19 relu2_2 (random weights)"``."""
    if loss.content in MONAI_NETWORKS:
        return MONAI_NETWORKS[loss.content]
    if loss.content == "vgg":
        return f"VGG19 {loss.vgg_layer} ({loss.vgg_weights} weights)"
    return loss.content
