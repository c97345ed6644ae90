"""Write outputs atomically: to a temporary sibling, renamed into place on success.

Nothing half-written is ever left at the output path: on any exception,
``KeyboardInterrupt`` included, the temporary file or folder is removed.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from srrestore.errors import OutputExistsError, OutputWriteError

__all__ = ["atomic_output", "check_output_path"]


def check_output_path(output: Path, overwrite: bool, inputs: Iterable[Path] = ()) -> None:
    """Refuse an output that would overwrite an input, exists without ``overwrite``,
    or lies in a folder that cannot be written.

    Raises:
        OutputWriteError: the output is an input, or its folder is not writable.
        OutputExistsError: the output exists and ``overwrite`` is False.
    """
    resolved = output.resolve()
    for source in inputs:
        if Path(source).resolve() == resolved:
            raise OutputWriteError(f"output {output} is the input itself; choose another output path")
    if output.exists() and not overwrite:
        raise OutputExistsError(f"output {output} exists; pass --overwrite to replace it")
    folder = resolved.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputWriteError(f"cannot write to folder {folder}: permission denied")


@contextmanager
def atomic_output(
    output: str | os.PathLike[str],
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
    directory: bool = False,
) -> Iterator[Path]:
    """Yield a temporary path beside ``output``; move it to ``output`` on success.

    Args:
        output: final file (or folder, with ``directory=True``) path.
        overwrite: replace an existing output.
        inputs: input paths the output must not equal.
        directory: the output is a folder (e.g. a DICOM series); the temporary
            folder is created before it is yielded.

    Yields:
        The temporary path, with the output's suffix so format drivers see it.
    """
    output = Path(output)
    check_output_path(output, overwrite, [Path(p) for p in inputs])
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputWriteError(f"cannot create folder {output.parent}: {error.strerror}") from error
    temporary = output.with_name(f".{output.name}.tmp-{uuid.uuid4().hex[:8]}{output.suffix}")
    try:
        if directory:
            temporary.mkdir()
        yield temporary
        _replace(temporary, output)
    except BaseException:
        _remove(temporary)
        raise


def _replace(temporary: Path, output: Path) -> None:
    if output.is_dir() and not output.is_symlink():
        backup = output.with_name(f".{output.name}.old-{uuid.uuid4().hex[:8]}")
        output.rename(backup)
        temporary.rename(output)
        shutil.rmtree(backup)
    else:
        os.replace(temporary, output)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
