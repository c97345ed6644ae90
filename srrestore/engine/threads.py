"""How many CPU threads torch uses: the cores this process may run on, fewer on a busy machine.

torch starts one OpenMP thread per core of the machine, even when the process
may use fewer (``taskset``, containers, Slurm) and even when other jobs keep
those cores busy; then its threads wait on each other at every operation and a
run can be ten times slower than on one thread. :func:`auto_threads` takes the
cores of the process's affinity mask and leaves out as many as the machine's
load average says are busy (at least one thread). ``--threads N`` overrides it.
"""

from __future__ import annotations

import os

import torch

from srrestore.errors import ConfigError

__all__ = ["available_cores", "auto_threads", "set_threads"]


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; all cores where the system has none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def auto_threads(cores: int | None = None, load: float | None = None) -> int:
    """Threads for this process: its cores minus those the 1-minute load average says are busy.

    Args:
        cores: cores available (default: :func:`available_cores`).
        load: the machine's 1-minute load average (default: ``os.getloadavg()``; 0 where unknown).

    Returns:
        ``max(1, cores - round(load))``: all cores on an idle machine, one on a saturated one.
    """
    cores = available_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    return max(1, min(cores, cores - round(load)))


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads: ``threads``, or :func:`auto_threads` when None. Returns the count set.

    Raises:
        ConfigError: ``threads`` is below 1.
    """
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    count = auto_threads() if threads is None else threads
    torch.set_num_threads(count)
    return count
