"""Names and lifetimes of every temporary file a run makes, and cleaning after dead runs.

Every temporary path srrestore creates (the staging sibling of an output, the
scratch folder of a volume) is a hidden sibling of the output named
``.{stem}.srrestore-{host}-{pid}-{random}{suffix}``. A run removes its own
temporaries when it ends, by success, error or signal. A run killed outright
(SIGKILL, power loss) cannot; the next run writing into the same folder removes
them: a temporary is stale when it was made on this host by a process that no
longer exists. Temporaries of other hosts (a shared file system) and of live
processes are never touched.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from srrestore.errors import OutputWriteError, error_reason

__all__ = ["temporary_name", "scratch_folder", "remove_stale", "allocate_array", "remove_path", "require_free_space",
           "TAG"]

TAG = "srrestore"
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:32] or "host"
_PATTERN = re.compile(rf"^\..*\.{TAG}-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[0-9a-f]{{8}}")


def temporary_name(stem: str, suffix: str = "") -> str:
    """A hidden, unique name for a temporary of this process: ``.{stem}.srrestore-{host}-{pid}-{hex}{suffix}``."""
    return f".{stem}.{TAG}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale(folder: Path) -> list[Path]:
    """Remove the temporaries in ``folder`` left by dead srrestore processes of this host.

    Returns:
        The paths removed.
    """
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _PATTERN.match(entry.name)
        if match is None or match["host"] != _HOST or _process_alive(int(match["pid"])):
            continue
        remove_path(entry)
        removed.append(entry)
    return removed


def remove_path(path: Path) -> None:
    """Remove a file, link or folder tree if it exists (errors ignored: best effort cleanup).

    A stop signal arriving meanwhile (its handler raises ``KeyboardInterrupt``)
    does not cut the removal short: it is finished first, then the interrupt
    goes on. The CLI's handler raises only once, so one retry suffices.
    """
    interrupted: KeyboardInterrupt | None = None
    for _ in range(2):
        try:
            _remove(path)
            break
        except KeyboardInterrupt as error:
            interrupted = interrupted or error
    if interrupted is not None:
        raise interrupted


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


@contextmanager
def scratch_folder(parent: Path, stem: str = "scratch") -> Iterator[Path]:
    """A new hidden folder in ``parent`` for intermediate arrays, removed on exit (whatever the exit)."""
    folder = parent / temporary_name(stem)
    try:
        folder.mkdir()
    except OSError as error:
        raise OutputWriteError(f"cannot create a scratch folder in {parent}: {error.strerror or error}") from error
    try:
        yield folder
    finally:
        remove_path(folder)


def allocate_array(path: Path, dtype: np.dtype | str, shape: tuple[int, ...]) -> np.memmap:
    """A zero-filled memory-mapped array whose disk blocks are reserved before use.

    A plain ``np.memmap`` on a sparse file kills the process with SIGBUS when the
    disk fills while pages are written back; reserving the blocks first turns a
    full disk into one clear error here.

    Raises:
        OutputWriteError: not enough free space (or the file cannot be created).
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    try:
        with open(path, "wb") as handle:
            if size:
                _reserve(handle.fileno(), size)
    except OSError as error:
        path.unlink(missing_ok=True)
        visible = next(folder for folder in path.parents if not folder.name.startswith("."))
        raise OutputWriteError(
            f"cannot reserve {size / 2**20:.1f} MiB of scratch space in {visible}: {error_reason(error)}"
        ) from error
    if size == 0:
        return np.zeros(shape, dtype=dtype)  # type: ignore[return-value]
    return np.memmap(path, dtype=dtype, mode="r+", shape=shape)


def require_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuse to start writing ``needed`` bytes into ``folder`` when its disk has less free space.

    Raises:
        OutputWriteError: naming ``what``, the space needed and the space free.
    """
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # cannot tell: the write itself will report a full disk
    if free < needed:
        raise OutputWriteError(
            f"{what} needs {needed / 2**20:.1f} MiB, but only {free / 2**20:.1f} MiB are free in {folder}"
        )


def _reserve(descriptor: int, size: int) -> None:
    """Reserve ``size`` bytes of disk for a file (``posix_fallocate``; extending where unsupported)."""
    try:
        os.posix_fallocate(descriptor, 0, size)
    except OSError as error:
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)):
            raise
        os.ftruncate(descriptor, size)
    except AttributeError:  # no posix_fallocate on this platform
        os.ftruncate(descriptor, size)
