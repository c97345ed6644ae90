"""Generator checkpoints: safetensors weights plus a JSON description.

A checkpoint is one ``.safetensors`` file whose metadata holds:

- ``format``: ``"srrestore-generator/1"``
- ``architecture``: the generator family (``"srrestore-srgan"``)
- ``config``: JSON of :class:`~srrestore.models.generator.GeneratorConfig`
- ``phase``: ``"psnr"`` (pixel pre-training) or ``"gan"`` (adversarial)
- ``training``: JSON summary (data, steps, metrics, hardware, time)
- ``card``: JSON model card (free-form description for ``srrestore models``)

Inputs to a generator are normalised intensities (about ``[0, 1]``).
``.pth`` files are read only through ``torch.load(weights_only=True)``: no
arbitrary object is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from srrestore.storage.atomic import atomic_output
from srrestore.errors import CheckpointError
from srrestore.models.generator import GeneratorConfig, SRGenerator

__all__ = ["CheckpointInfo", "save_generator", "load_generator", "read_checkpoint_info", "file_sha256",
           "untrained_history_entry"]

FORMAT = "srrestore-generator/1"
PHASES = ("psnr", "gan")


@dataclass
class CheckpointInfo:
    """Everything a checkpoint says about its generator, besides the weights."""

    config: GeneratorConfig
    phase: str = "psnr"
    architecture: str = SRGenerator.architecture
    training: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "architecture": self.architecture,
            "config": json.dumps(self.config.to_dict(), sort_keys=True),
            "phase": self.phase,
            "training": json.dumps(self.training, sort_keys=True),
            "card": json.dumps(self.card, sort_keys=True),
        }

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], source: Path) -> "CheckpointInfo":
        if metadata.get("format") != FORMAT:
            raise CheckpointError(f"{source} is not an srrestore generator checkpoint (format {metadata.get('format')!r})")
        if metadata.get("architecture") != SRGenerator.architecture:
            raise CheckpointError(f"{source}: unknown architecture {metadata.get('architecture')!r}")
        try:
            return cls(
                config=GeneratorConfig.from_dict(json.loads(metadata["config"])),
                phase=metadata.get("phase", "psnr"),
                training=json.loads(metadata.get("training", "{}")),
                card=json.loads(metadata.get("card", "{}")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{source}: invalid checkpoint metadata ({error})") from error


def save_generator(
    path: str | os.PathLike[str],
    generator: SRGenerator,
    phase: str = "psnr",
    training: dict[str, Any] | None = None,
    card: dict[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write ``generator`` as a safetensors checkpoint (atomically) and return its path."""
    if phase not in PHASES:
        raise CheckpointError(f"phase must be one of {PHASES}, got {phase!r}")
    info = CheckpointInfo(generator.config, phase, training=training or {}, card=card or {})
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in generator.state_dict().items()}
    with atomic_output(path, overwrite=overwrite) as temporary:
        save_file(tensors, str(temporary), metadata=info.to_metadata())
        temporary.chmod(_readable_mode())  # safetensors creates 0600 files; weights are shareable data
    return Path(path)


def _readable_mode() -> int:
    """0o666 less the process umask, as ``open()`` would create a file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def read_checkpoint_info(path: str | os.PathLike[str]) -> CheckpointInfo:
    """The description of a safetensors checkpoint without loading its weights."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except FileNotFoundError as error:
        raise CheckpointError(f"checkpoint not found: {path}") from error
    except Exception as error:  # safetensors raises its own SafetensorError
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    return CheckpointInfo.from_metadata(metadata, path)


def _load_pth(path: Path) -> tuple[dict[str, torch.Tensor], CheckpointInfo]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise CheckpointError(f"checkpoint not found: {path}") from error
    except Exception as error:  # pickle.UnpicklingError for anything but plain tensors/containers
        raise CheckpointError(
            f"refused to load {path}: it is not a plain weights file ({type(error).__name__}); "
            "only tensors and plain containers are accepted"
        ) from error
    if not isinstance(payload, dict) or "state_dict" not in payload or "config" not in payload:
        raise CheckpointError(f"{path}: a .pth checkpoint must be a dict with 'config' and 'state_dict'")
    info = CheckpointInfo(GeneratorConfig.from_dict(payload["config"]), str(payload.get("phase", "psnr")))
    return payload["state_dict"], info


def load_generator(path: str | os.PathLike[str]) -> tuple[SRGenerator, CheckpointInfo]:
    """Build the generator a checkpoint describes and load its weights (on CPU, eval mode)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".pth" or path.suffix == ".pt":
        state, info = _load_pth(path)
    else:
        info = read_checkpoint_info(path)
        try:
            state = load_file(str(path), device="cpu")
        except Exception as error:
            raise CheckpointError(f"cannot read weights from {path}: {error}") from error
    generator = SRGenerator(info.config)
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not match the recorded architecture ({first_line})") from error
    return generator.eval(), info


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file (for provenance tags)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def untrained_history_entry(change: str, detail: Any, how: str) -> dict[str, Any]:
    """A card ``history`` entry for a change of weights without training steps.

    E.g. ``untrained_history_entry("grown", {"blocks_per_group": [1, 2]}, "network growth")``:
    ``{"grown": {...}, "steps": {"pretrain": 0, "gan": 0}, "seconds": 0.0, "hardware": "none (network growth)"}``,
    so the card's step and time sums stay those of the training sessions.
    """
    return {change: detail, "steps": {"pretrain": 0, "gan": 0}, "seconds": 0.0, "hardware": f"none ({how})"}
