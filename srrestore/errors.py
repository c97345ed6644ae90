"""Every exception and warning srrestore raises.

Each error also inherits a built-in exception so callers can catch either
(``except srrestore.errors.InputReadError`` or ``except OSError``). The CLI turns
any :class:`SRRestoreError` into one line on stderr and exit code 1.
"""

from __future__ import annotations

import pickle
from difflib import get_close_matches
from typing import Iterable

__all__ = [
    "SRRestoreError",
    "ConfigError",
    "CheckpointError",
    "InputReadError",
    "UnsupportedInputError",
    "MetadataError",
    "OutputExistsError",
    "OutputWriteError",
    "MissingDependencyError",
    "WeightsUnavailableError",
    "Terminated",
    "SRRestoreWarning",
    "GeometryWarning",
    "check_choice",
    "one_line",
    "error_reason",
]


class SRRestoreError(Exception):
    """Root of every error srrestore raises on purpose."""


class ConfigError(SRRestoreError, ValueError):
    """An option or configuration value is invalid (the message echoes it)."""


def check_choice(option: str, value: str, choices: Iterable[str]) -> str:
    """Look up a string option, case-insensitively.

    Args:
        option: what the value is for, used in the message (e.g. ``"pixel loss"``).
        value: the value received.
        choices: the accepted lower-case spellings.

    Returns:
        The matching choice.

    Raises:
        ConfigError: ``value`` is not a choice; the message echoes it and suggests
            the closest choice ("did you mean ...").
    """
    known = list(choices)
    normalised = str(value).strip().lower()
    if normalised in known:
        return normalised
    hint = get_close_matches(normalised, known, n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise ConfigError(f"unknown {option} {value!r}{suggestion}; known: {', '.join(known)}")


def one_line(error: BaseException) -> str:
    """A library error as one line; for torch's long weights-only refusal, only its reason."""
    paragraphs = [" ".join(part.split()) for part in str(error).split("\n\n") if part.strip()]
    if isinstance(error, pickle.UnpicklingError) and len(paragraphs) >= 3:
        return paragraphs[-2]
    return " ".join(paragraphs) or type(error).__name__


def error_reason(error: BaseException) -> str:
    """The most telling one-line reason in an exception's chain (causes and contexts).

    An operating-system error's text wins (``"No space left on device"``, with a
    hint for ``EFBIG``); otherwise the innermost message that is not a pointer
    to another one (GDAL's "See previous exception for details"), prefixed by
    its type when it is a built-in Python error, whose bare text says little
    (``"IndexError: list index out of range"``).
    """
    import errno

    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    system = [e for e in chain if isinstance(e, OSError) and e.strerror]
    if system:
        innermost = system[-1]
        hint = " (the file size limit or the disk is full)" if innermost.errno == errno.EFBIG else ""
        return f"{innermost.strerror}{hint}"
    telling = [e for e in chain if "previous exception" not in str(e)]
    if not telling:
        return type(error).__name__
    innermost = telling[-1]
    message = one_line(innermost).splitlines()[0]
    return f"{type(innermost).__name__}: {message}" if type(innermost).__module__ == "builtins" else message


class CheckpointError(SRRestoreError, ValueError):
    """A checkpoint is missing, corrupt, unsafe or does not fit the request."""


class InputReadError(SRRestoreError, OSError):
    """An input file is missing, unreadable or corrupt."""


class UnsupportedInputError(SRRestoreError, ValueError):
    """An input is readable but cannot be processed (format, dtype, geometry)."""


class MetadataError(SRRestoreError, ValueError):
    """Metadata needed to write a correct output is missing or inconsistent."""


class OutputExistsError(SRRestoreError, FileExistsError):
    """The output exists and ``overwrite`` was not given."""


class OutputWriteError(SRRestoreError, OSError):
    """The output cannot be written (read-only folder, output equals input...)."""


class MissingDependencyError(SRRestoreError, ImportError):
    """An optional dependency needed for this operation is not installed."""


class WeightsUnavailableError(SRRestoreError, OSError):
    """Pretrained weights were asked for but cannot be found or downloaded."""


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM or SIGHUP (``timeout``, ``docker stop``, Slurm, Kubernetes).

    A ``KeyboardInterrupt``, so that every cleanup which runs for Ctrl-C runs for
    it too (partial outputs and scratch are removed, training saves its state).

    Attributes:
        signum: the signal's number (the CLI exits with ``128 + signum``).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class SRRestoreWarning(UserWarning):
    """Root of every warning srrestore emits."""


class GeometryWarning(SRRestoreWarning):
    """Geometry is incomplete (e.g. a raster without CRS) but processing goes on."""
