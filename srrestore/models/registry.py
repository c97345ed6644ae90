"""Built-in models shipped in ``srrestore/models/weights`` and name resolution.

Built-in checkpoints are named ``srgan-{rgb|gray}-x{scale}-{psnr|gan}.safetensors``.
``"default"`` picks the built-in that fits the data: the RGB model for
3-channel data, the 1-channel model otherwise (multi-band data runs band by
band), PSNR-oriented unless the GAN phase is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path

from srrestore.errors import CheckpointError, ConfigError
from srrestore.models.checkpoint import CheckpointInfo, read_checkpoint_info

__all__ = ["WEIGHTS_DIR", "BuiltinModel", "list_builtin_models", "resolve_checkpoint"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
PHASES = ("psnr", "gan")


@dataclass(frozen=True)
class BuiltinModel:
    """A checkpoint shipped with the package."""

    name: str
    path: Path
    info: CheckpointInfo


def list_builtin_models() -> list[BuiltinModel]:
    """Every built-in checkpoint, sorted by name."""
    return [
        BuiltinModel(path.name.removesuffix(".safetensors"), path, read_checkpoint_info(path))
        for path in sorted(WEIGHTS_DIR.glob("*.safetensors"))
    ]


def default_model_name(scale: int, channels: int, phase: str = "psnr") -> str:
    """Name of the built-in that fits ``channels`` at ``scale``."""
    if phase not in PHASES:
        raise ConfigError(f"phase must be one of {', '.join(PHASES)}; got {phase!r}")
    family = "rgb" if channels == 3 else "gray"
    return f"srgan-{family}-x{scale}-{phase}"


def resolve_checkpoint(name_or_path: str, scale: int = 4, channels: int = 3, phase: str = "psnr") -> Path:
    """Path of the checkpoint a user names.

    Args:
        name_or_path: ``"default"``, a built-in name (see ``srrestore models``) or a file path.
        scale: wanted in-plane factor (used by ``"default"``).
        channels: channels of the data (used by ``"default"``).
        phase: ``"psnr"`` or ``"gan"`` (used by ``"default"``).
    """
    if name_or_path == "default":
        name_or_path = default_model_name(scale, channels, phase)
        builtin = WEIGHTS_DIR / f"{name_or_path}.safetensors"
        if not builtin.is_file():
            available = ", ".join(model.name for model in list_builtin_models()) or "none"
            raise CheckpointError(f"no built-in model for scale {scale} ({name_or_path}); available: {available}")
        return builtin
    builtin = WEIGHTS_DIR / f"{name_or_path}.safetensors"
    if builtin.is_file():
        return builtin
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    names = [model.name for model in list_builtin_models()]
    hint = get_close_matches(name_or_path, names, n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise CheckpointError(f"model {name_or_path!r} is neither a built-in model nor a file{suggestion}")
