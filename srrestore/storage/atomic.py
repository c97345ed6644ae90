"""Write outputs atomically and exclusively; never replace anything but the output asked for.

An output is written to a hidden temporary sibling (see :mod:`srrestore.storage.scratch`)
and moved into place only when it is complete:

- a file output is linked into place with ``os.link``, which fails when the
  output exists, so two runs writing the same output without ``overwrite``
  cannot both succeed (no check-then-rename race); ``overwrite`` uses an atomic
  ``os.replace``;
- a folder output (a DICOM series, a folder of images) appears whole or not at
  all; ``rename`` refuses to move it onto a folder that is not empty. An existing
  folder is replaced (``overwrite``) only when it is itself a previous srrestore
  output, recognised by the marker file :data:`OUTPUT_MARKER` inside it, or by
  the provenance its format records (a DICOM series: see ``recognise``).

Whatever the output, it may not be an input, hold an input, or lie inside an
input folder. On any exception, ``KeyboardInterrupt`` and signals included, the
temporary is removed; a raw disk error (``ENOSPC``...) becomes one
:class:`~srrestore.errors.OutputWriteError` line.
"""

from __future__ import annotations

import errno
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from srrestore import __version__
from srrestore.storage.scratch import remove_path, remove_stale, require_free_space, temporary_name
from srrestore.errors import OutputExistsError, OutputWriteError, SRRestoreError, error_reason

__all__ = ["OUTPUT_MARKER", "atomic_output", "check_output_path", "is_srrestore_output", "disk_error"]

OUTPUT_MARKER = ".srrestore-output.json"
"""File inside every folder output naming the srrestore version and inputs that made it."""

DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
"""Errors of the disk being written (full, over quota, over the file size limit, read-only)."""


def is_srrestore_output(folder: Path) -> bool:
    """Whether ``folder`` is a folder srrestore wrote (it holds :data:`OUTPUT_MARKER`)."""
    return (folder / OUTPUT_MARKER).is_file()


def _inside(path: Path, folder: Path) -> bool:
    return path != folder and path.is_relative_to(folder)


Recogniser = Callable[[Path], bool]
"""Tells whether an existing folder is a previous srrestore output."""


def check_output_path(output: Path, overwrite: bool, inputs: Iterable[Path] = (), directory: bool = False,
                      recognise: Recogniser = is_srrestore_output) -> None:
    """Refuse an output that could lose data, before any work is done.

    Args:
        output: the output file or folder.
        overwrite: an existing output may be replaced (a folder only when it is an srrestore output).
        inputs: input files or folders the output must not equal, hold, or lie inside.
        directory: the output is a folder.
        recognise: whether an existing folder is a previous srrestore output (default: it holds
            :data:`OUTPUT_MARKER`).

    Raises:
        OutputWriteError: the output is, holds or lies inside an input; an existing folder that
            srrestore did not write; a file where a folder is wanted or the reverse; an unwritable folder.
        OutputExistsError: the output exists and ``overwrite`` is False.
    """
    resolved = output.resolve()
    for source in inputs:
        source = Path(source).resolve()
        if source == resolved:
            raise OutputWriteError(f"output {output} is the input itself; choose another output path")
        if _inside(source, resolved):
            raise OutputWriteError(f"output {output} holds the input {source}; choose another output path")
        if _inside(resolved, source):
            raise OutputWriteError(f"output {output} lies inside the input folder {source}; write it elsewhere")
    if output.exists() or output.is_symlink():
        _check_existing(output, overwrite, directory, recognise)
    folder = resolved.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputWriteError(f"cannot write to folder {folder}: permission denied")


def _check_existing(output: Path, overwrite: bool, directory: bool, recognise: Recogniser) -> None:
    is_folder = output.is_dir() and not output.is_symlink()
    if directory and not is_folder:
        raise OutputWriteError(f"output {output} exists and is not a folder; this output is a folder")
    if not directory and is_folder:
        raise OutputWriteError(f"output {output} is a folder; this output is a file: give a file name")
    if directory and not any(output.iterdir()):
        return  # an empty folder holds nothing to lose
    if not overwrite:
        raise OutputExistsError(f"output {output} exists; pass --overwrite to replace it")
    if directory and not recognise(output):
        raise OutputWriteError(
            f"output folder {output} exists and was not written by srrestore; "
            "it is never replaced: remove it yourself or choose another output"
        )


def disk_error(error: OSError, path: Path) -> OutputWriteError:
    """One line for an operating-system error met while writing ``path``."""
    return OutputWriteError(f"cannot write {path}: {error_reason(error)}")


@contextmanager
def atomic_output(
    output: str | os.PathLike[str],
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
    directory: bool = False,
    recognise: Recogniser | None = None,
    size: int | None = None,
) -> Iterator[Path]:
    """Yield a temporary path beside ``output``; move it to ``output`` when the body succeeds.

    Args:
        output: final file (or folder, with ``directory=True``) path.
        overwrite: replace an existing output (a folder only if srrestore wrote it).
        inputs: input paths the output must not equal, hold or lie inside.
        directory: the output is a folder (e.g. a DICOM series); the temporary
            folder is created before it is yielded.
        recognise: for a folder whose format records its own provenance (a DICOM
            series), how to tell a previous srrestore output; None: the folder gets
            :data:`OUTPUT_MARKER`, which tells it.
        size: bytes the output will take, where known (an uncompressed format):
            refused up front when the disk has less free space.

    Yields:
        The temporary path, with the output's suffix so format drivers see it.

    Raises:
        See :func:`check_output_path`; ``OutputExistsError`` also when another
        run created the output meanwhile; ``OutputWriteError`` for disk errors.
    """
    output = Path(output)
    inputs = [Path(p) for p in inputs]
    marked = recognise is None
    recognise = recognise or is_srrestore_output
    check_output_path(output, overwrite, inputs, directory, recognise)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputWriteError(f"cannot create folder {output.parent}: {error.strerror}") from error
    remove_stale(output.parent)
    if size is not None:
        require_free_space(output.parent, size, f"output {output}")
    temporary = output.parent / temporary_name(output.name, "" if directory else output.suffix)
    try:
        if directory:
            temporary.mkdir()
        yield temporary
        if directory and marked:
            marker = {"srrestore": __version__, "inputs": [str(p.resolve()) for p in inputs]}
            (temporary / OUTPUT_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        _commit(temporary, output, overwrite, directory, recognise)
    except SRRestoreError as error:
        remove_path(temporary)
        message = str(error)
        if str(temporary) not in message:
            raise
        raise type(error)(message.replace(str(temporary), str(output))) from error  # users know the output's name
    except OSError as error:
        remove_path(temporary)
        if error.errno not in DISK_ERRNOS:
            raise
        raise disk_error(error, output) from error
    except BaseException:
        remove_path(temporary)
        raise


def _commit(temporary: Path, output: Path, overwrite: bool, directory: bool, recognise: Recogniser) -> None:
    """Move the finished temporary into place (exclusively without ``overwrite``)."""
    if directory:
        _commit_folder(temporary, output, overwrite, recognise)
    elif overwrite:
        os.replace(temporary, output)
    else:
        _link_exclusively(temporary, output)


def _appeared(output: Path) -> OutputExistsError:
    return OutputExistsError(f"output {output} was created by someone else while this run wrote it; nothing replaced")


def _link_exclusively(temporary: Path, output: Path) -> None:
    """``temporary`` becomes ``output`` only if ``output`` does not exist (hard link, else an O_EXCL claim)."""
    try:
        os.link(temporary, output)
    except FileExistsError as error:
        raise _appeared(output) from error
    except OSError:  # a file system without hard links: claim the name, then replace the claim
        try:
            os.close(os.open(output, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError as error:
            raise _appeared(output) from error
        os.replace(temporary, output)
        return
    temporary.unlink()


def _commit_folder(temporary: Path, output: Path, overwrite: bool, recognise: Recogniser) -> None:
    if overwrite and output.is_dir() and any(output.iterdir()):
        if not recognise(output):
            raise OutputWriteError(f"output folder {output} is no longer an srrestore output; nothing replaced")
        backup = output.parent / temporary_name(output.name, ".replaced")
        output.rename(backup)
        try:
            temporary.rename(output)
        except BaseException:
            backup.rename(output)
            raise
        remove_path(backup)
        return
    try:
        temporary.rename(output)  # refused by the system when ``output`` is a folder that is not empty
    except OSError as error:
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise _appeared(output) from error
        raise
