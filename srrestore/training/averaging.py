"""Weight averaging of generators trained from one start (a "model soup").

Generators fine-tuned from the same checkpoint stay in one basin of the loss,
and the average of their weights often scores above each of them (Wortsman et
al., "Model soups", ICML 2022; the EMA the trainer keeps is the same idea along
one run). :func:`average_generators` averages the weights of such checkpoints;
the result is an ordinary checkpoint whose card continues the first model's
(put the model with the longest training lineage first) and names every model
averaged, with its SHA-256 and weight, in its ``history``.

Typical use (what ``srrestore average`` does)::

    generator, info = average_generators(["stage.safetensors", "start.safetensors"])
    info = measured(generator, info, [ValidationSet(...)])   # optional
    save_generator("soup.safetensors", generator, info.phase, info.training, info.card)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from srrestore.errors import CheckpointError, ConfigError
from srrestore.models.checkpoint import CheckpointInfo, file_sha256, load_generator, untrained_history_entry
from srrestore.models.generator import SRGenerator
from srrestore.training.data import ValidationSet

__all__ = ["average_generators", "measured"]

# Card entries measured on the first model's weights, not the average's.
STALE_CARD_KEYS = ("validation", "benchmark")


def _weights(count: int, weights: Sequence[float] | None) -> list[float]:
    """Positive weights summing to 1 (uniform when None)."""
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count:
        raise ConfigError(f"{len(weights)} weights given for {count} models")
    if any(not np.isfinite(weight) or weight <= 0 for weight in weights):
        raise ConfigError(f"weights must be positive, got {list(weights)}")
    total = float(sum(weights))
    return [float(weight) / total for weight in weights]


def average_generators(
    paths: Sequence[str | os.PathLike[str]], weights: Sequence[float] | None = None
) -> tuple[SRGenerator, CheckpointInfo]:
    """The weighted mean of checkpoints of one architecture and phase.

    Floating-point tensors are averaged in float64 and stored in their own
    dtype; any other tensor must be equal in every checkpoint.

    Args:
        paths: two or more checkpoint files, the model whose card continues first.
        weights: one positive weight per checkpoint (normalised to sum 1);
            None averages uniformly.

    Returns:
        The averaged generator (CPU, eval mode) and its description: the first
        checkpoint's, with figures measured on other weights removed and a
        ``history`` entry naming the averaged files.

    Raises:
        ConfigError: fewer than two checkpoints, or bad weights.
        CheckpointError: unreadable checkpoints, or ones of another
            architecture, configuration or phase than the first.
    """
    if len(paths) < 2:
        raise ConfigError(f"averaging needs two or more models, got {len(paths)}")
    shares = _weights(len(paths), weights)
    loaded = [load_generator(path) for path in paths]
    first, first_info = loaded[0]
    for path, (_, info) in zip(paths[1:], loaded[1:]):
        if info.config.to_dict() != first_info.config.to_dict() or info.phase != first_info.phase:
            raise CheckpointError(
                f"{path} is not a {first_info.phase} model of the configuration of {paths[0]}; "
                "only models trained from one start can be averaged"
            )
    states = [generator.state_dict() for generator, _ in loaded]
    averaged = {}
    for name, tensor in states[0].items():
        if tensor.is_floating_point():
            total = sum(share * state[name].double() for share, state in zip(shares, states))
            averaged[name] = total.to(tensor.dtype)
        elif all(torch.equal(tensor, state[name]) for state in states[1:]):
            averaged[name] = tensor
        else:
            raise CheckpointError(f"the models differ in {name}, which cannot be averaged")
    first.load_state_dict(averaged)
    averaged_files = [{"file": Path(path).name, "sha256": file_sha256(path), "weight": round(share, 6)}
                      for path, share in zip(paths, shares)]
    entry = untrained_history_entry("averaged", averaged_files, "weight averaging")
    card = {key: value for key, value in first_info.card.items() if key not in STALE_CARD_KEYS}
    card["history"] = [*first_info.card.get("history", []), entry]
    training = {key: value for key, value in first_info.training.items() if key != "metrics"}
    training["averaged"] = averaged_files
    info = CheckpointInfo(first_info.config, first_info.phase, first_info.architecture, training, card)
    return first.eval(), info


@torch.no_grad()
def measured(generator: SRGenerator, info: CheckpointInfo, validation: Sequence[ValidationSet]) -> CheckpointInfo:
    """``info`` with the generator's scores on ``validation`` as its card's and summary's figures.

    The scores are the trainer's (:meth:`ValidationSet.scores`): PSNR and SSIM
    beside bicubic, on CPU in float32.
    """

    def predict(lr: np.ndarray) -> np.ndarray:
        return generator(torch.from_numpy(lr)[None])[0].numpy()

    scores = {validation_set.name: validation_set.scores(predict) for validation_set in validation}
    card = {**info.card, "validation": scores}
    training = {**info.training, "metrics": scores, "validation_sets": list(scores)}
    return CheckpointInfo(info.config, info.phase, info.architecture, training, card)
