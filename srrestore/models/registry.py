"""Built-in models shipped in ``srrestore/models/weights`` and name resolution.

Built-in checkpoints are named ``srgan-{rgb|gray}-x{scale}-{psnr|gan}.safetensors``
(in-plane, scale ``(s, s)``) and ``srgan-slice-x{s}-psnr.safetensors``
(1-channel through-plane, scale ``(s, 1)``). ``"default"`` picks the built-in
that fits the data: the RGB model for 3-channel data, the 1-channel model
otherwise (multi-band data runs band by band), the slice model for a ``(s, 1)``
scale, PSNR-oriented unless the GAN phase is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path

from srrestore.errors import CheckpointError, ConfigError
from srrestore.models.checkpoint import CheckpointInfo, read_checkpoint_info

__all__ = ["WEIGHTS_DIR", "BuiltinModel", "builtin_slice_factors", "list_builtin_models", "resolve_checkpoint"]

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


def default_model_name(scale: int | tuple[int, int], channels: int, phase: str = "psnr") -> str:
    """Name of the built-in that fits ``channels`` at ``scale`` (``s``, ``(s, s)`` or the through-plane ``(s, 1)``).

    Raises:
        ConfigError: an unknown phase, or a scale no built-in family has (e.g. ``(1, 4)``, or ``(4, 1)`` on 3 channels).
    """
    if phase not in PHASES:
        raise ConfigError(f"phase must be one of {', '.join(PHASES)}; got {phase!r}")
    rows, columns = (scale, scale) if isinstance(scale, int) else (int(scale[0]), int(scale[1]))
    if rows == columns:
        family = "rgb" if channels == 3 else "gray"
        return f"srgan-{family}-x{rows}-{phase}"
    if columns == 1 and channels == 1:
        return f"srgan-slice-x{rows}-{phase}"
    raise ConfigError(f"no built-in model family upscales {channels}-channel data by {rows}x{columns}")


def builtin_slice_factors(phase: str = "psnr") -> list[int]:
    """The factors ``s`` of the built-in through-plane models ``srgan-slice-x{s}-{phase}``, ascending."""
    prefix, suffix = "srgan-slice-x", f"-{phase}.safetensors"
    names = [path.name for path in WEIGHTS_DIR.glob(f"{prefix}*{suffix}")]
    return sorted(int(name[len(prefix) : -len(suffix)]) for name in names if name[len(prefix) : -len(suffix)].isdigit())


def resolve_checkpoint(name_or_path: str, scale: int | tuple[int, int] = 4, channels: int = 3,
                       phase: str = "psnr") -> Path:
    """Path of the checkpoint a user names.

    Args:
        name_or_path: ``"default"``, a built-in name (see ``srrestore models``) or a file path.
        scale: wanted factor (used by ``"default"``): in-plane ``s``, or ``(s, 1)`` for a through-plane model.
        channels: channels of the data (used by ``"default"``).
        phase: ``"psnr"`` or ``"gan"`` (used by ``"default"``).
    """
    if name_or_path == "default":
        name_or_path = default_model_name(scale, channels, phase)
        builtin = WEIGHTS_DIR / f"{name_or_path}.safetensors"
        if not builtin.is_file():
            available = ", ".join(model.name for model in list_builtin_models()) or "none"
            wanted = scale if isinstance(scale, int) else "x".join(map(str, scale))
            hint = ("; the through-plane built-ins are PSNR-oriented: use --phase psnr, or a model `srrestore"
                    " finetune --adversarial` makes" if name_or_path.startswith("srgan-slice") and phase == "gan"
                    else "")
            raise CheckpointError(
                f"no built-in model for scale {wanted} ({name_or_path}); available: {available}{hint}")
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
