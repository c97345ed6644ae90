"""Resumable training state in one safetensors file (never pickle).

Tensors are stored under flat keys:

- ``module/<name>/<parameter>``: network state dicts (``generator``,
  ``discriminator``, ``ema``);
- ``optimizer/<name>/<index>/<key>``: optimizer per-parameter tensors (Adam's
  ``step``, ``exp_avg``, ``exp_avg_sq``);
- ``rng/<name>``: random number generator states (``torch``, ``cuda``).

The metadata holds ``format`` (:data:`STATE_FORMAT`), ``info`` (JSON: step,
phase, recipe, counters, metrics; anything JSON can hold) and ``optimizers``
(JSON: each optimizer's ``param_groups`` and non-tensor per-parameter values).
Floats go through JSON's shortest round-trip representation, so a reloaded
state is bit-identical.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from srrestore.storage.atomic import atomic_output
from srrestore.errors import CheckpointError

__all__ = ["STATE_FORMAT", "TrainingState", "save_state", "load_state", "capture_rng", "restore_rng"]

STATE_FORMAT = "srrestore-train-state/1"


@dataclass
class TrainingState:
    """Everything needed to continue a run exactly.

    Attributes:
        info: JSON-ready values (step, phase, recipe, counters, metrics...).
        modules: state dicts by network name.
        optimizers: ``torch.optim.Optimizer.state_dict()`` results by name.
        rng: generator states by name (``capture_rng()``).
    """

    info: dict[str, Any] = field(default_factory=dict)
    modules: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    optimizers: dict[str, dict[str, Any]] = field(default_factory=dict)
    rng: dict[str, torch.Tensor] = field(default_factory=dict)


def capture_rng() -> dict[str, torch.Tensor]:
    """torch's CPU generator state and, when CUDA is initialised, every CUDA device's."""
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return states


def restore_rng(states: dict[str, torch.Tensor]) -> None:
    """Undo :func:`capture_rng` (CUDA states only when this machine has as many devices)."""
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and torch.cuda.device_count() == len(states["cuda"]):
        torch.cuda.set_rng_state_all(list(states["cuda"]))


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu").contiguous().clone()


def save_state(path: str | os.PathLike[str], state: TrainingState) -> Path:
    """Write ``state`` atomically (replacing an older state) and return its path."""
    tensors: dict[str, torch.Tensor] = {}
    for name, module_state in state.modules.items():
        tensors.update({f"module/{name}/{key}": _plain(value) for key, value in module_state.items()})
    optimizers: dict[str, Any] = {}
    for name, optimizer_state in state.optimizers.items():
        extra: dict[str, dict[str, Any]] = defaultdict(dict)
        for index, values in optimizer_state["state"].items():
            for key, value in values.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer/{name}/{index}/{key}"] = _plain(value)
                else:
                    extra[str(index)][key] = value
        optimizers[name] = {"param_groups": optimizer_state["param_groups"], "extra": extra,
                            "indices": [str(index) for index in optimizer_state["state"]]}
    tensors.update({f"rng/{name}": _plain(value) for name, value in state.rng.items()})
    metadata = {
        "format": STATE_FORMAT,
        "info": json.dumps(state.info, sort_keys=True),
        "optimizers": json.dumps(optimizers, sort_keys=True),
    }
    with atomic_output(path, overwrite=True) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)
    return Path(path)


def load_state(path: str | os.PathLike[str]) -> TrainingState:
    """Read a state written by :func:`save_state` (tensors on the CPU).

    Raises:
        CheckpointError: missing, unreadable or not a training state.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"training state not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != STATE_FORMAT:
                raise CheckpointError(f"{path} is not an srrestore training state (format {metadata.get('format')!r})")
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        info = json.loads(metadata["info"])
        optimizer_meta = json.loads(metadata["optimizers"])
    except CheckpointError:
        raise
    except Exception as error:  # safetensors' own error type, JSON errors, missing keys
        raise CheckpointError(f"cannot read training state {path}: {error}") from error
    state = TrainingState(info=info)
    per_optimizer: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for key, tensor in tensors.items():
        kind, _, rest = key.partition("/")
        if kind == "module":
            name, _, parameter = rest.partition("/")
            state.modules.setdefault(name, {})[parameter] = tensor
        elif kind == "optimizer":
            name, index, entry = rest.split("/", 2)
            per_optimizer[name][index][entry] = tensor
        elif kind == "rng":
            state.rng[rest] = tensor
    for name, meta in optimizer_meta.items():
        values = {index: {**per_optimizer[name][index], **meta["extra"].get(index, {})} for index in meta["indices"]}
        state.optimizers[name] = {
            "state": {int(index): value for index, value in values.items()},
            "param_groups": meta["param_groups"],
        }
    return state
