"""Write a benchmark's results as a page of the documentation site: ``docs/results/<name>.md``.

Every benchmark script takes ``--write-docs``; with it, the script writes what it measured
with :func:`write_results`. A page starts with its title and one line naming the machine (CPU
model, cores, load), the date and the exact command, so figures on the site are never typed by
hand: rerunning the command rewrites the page. Run the scripts from the project root.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

__all__ = ["RESULTS", "add_write_docs_option", "command_line", "cpu_model", "load_average", "write_results"]

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def load_average() -> str:
    """The 1-minute load average, as ``load average 1.2``, or ``load unknown``."""
    return f"load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "load unknown"


def command_line(script: str, argv: list[str] | None = None) -> str:
    """The command that ran ``script`` (its ``__file__``) as typed from the project root:
    ``python benchmarks/x.py ARGS``, the arguments being ``argv`` or else the process's."""
    arguments = sys.argv[1:] if argv is None else argv
    return " ".join(["python", f"benchmarks/{Path(script).name}", *map(shlex.quote, arguments)])


def add_write_docs_option(parser: argparse.ArgumentParser, name: str) -> None:
    """Add ``--write-docs``: also write the results as ``docs/results/<name>.md``."""
    parser.add_argument("--write-docs", action="store_true",
                        help=f"also write the results as docs/results/{name}.md (machine, date and command on top)")


def write_results(name: str, title: str, body: str, command: str, machine: str, date: str | None = None,
                  folder: Path = RESULTS) -> Path:
    """Write ``folder/<name>.md``: ``title``, the line naming ``machine``, ``date`` and ``command``, then ``body``.

    Args:
        name: file name without ``.md`` (``quality``, ``speed``...).
        title: the page's heading.
        body: Markdown of the results (tables and the notes that read them).
        command: the exact command that measured them (:func:`command_line`).
        machine: what ran it; starts with the CPU model (:func:`cpu_model`).
        date: when it ran; now (UTC) by default.
    """
    when = date or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    page = (f"# {title}\n\n"
            "<!-- Written by the benchmark's --write-docs: rerun its command (below) to update, do not edit. -->\n\n"
            f"**Machine:** {machine}. **Date:** {when}. **Command:** `{command}`\n\n"
            f"{body.strip()}\n")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    path.write_text(page, encoding="utf-8")
    return path
