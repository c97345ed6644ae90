"""The ``srrestore`` command line: a click group; one module per command.

Every :class:`~srrestore.errors.SRRestoreError` becomes one line on stderr and
exit code 1 (usage errors exit 2, as click does). ``--debug`` shows tracebacks.
SIGINT, SIGTERM and SIGHUP stop the command the same way: what it was writing
is removed, one line says so, and the exit code is ``128 + signal number``
(130, 143, 129), as shells report a process killed by that signal.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType
from typing import Any

import click

from srrestore import __version__
from srrestore.errors import SRRestoreError, Terminated

__all__ = ["cli", "main"]


class SRRestoreGroup(click.Group):
    """A click group that reports every error in one line: srrestore's, and click's usage errors."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """As click's, but a usage error (bad option or value) is one line and exit code 2."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as error:
            where = error.ctx.command_path if error.ctx is not None else (prog_name or "srrestore")
            click.echo(f"srrestore: error: {error.format_message()} (see '{where} --help')", err=True)
            sys.exit(error.exit_code)
        except click.ClickException as error:
            click.echo(f"srrestore: error: {error.format_message()}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("srrestore: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SRRestoreError as error:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"srrestore: error: {error}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt as error:
            signum = error.signum if isinstance(error, Terminated) else signal.SIGINT
            name = signal.Signals(signum).name
            click.echo(f"srrestore: stopped by {name}; no partial output was kept", err=True)
            ctx.exit(128 + signum)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop(signum: int, frame: FrameType | None) -> None:
    """Signal handler: raise :class:`Terminated` once; later signals wait for the cleanup it starts."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def handle_stop_signals() -> None:
    """Turn SIGINT, SIGTERM and SIGHUP into exceptions in the main thread, so cleanup runs."""
    for number in STOP_SIGNALS:
        if signal.getsignal(number) is not signal.SIG_IGN:  # keep nohup's choice
            signal.signal(number, _stop)


@click.group(cls=SRRestoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="srrestore")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Restore and super-resolve images, satellite rasters and medical scans.

    \b
    Example:
      srrestore restore examples/data/landsat_rgb.tif out.tif --scale 4
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if not debug:  # GDAL's "ERROR 1: ..." and codecs' log lines would repeat the one-line error
        os.environ.setdefault("CPL_LOG", os.devnull)
        logging.getLogger("tifffile").addHandler(logging.NullHandler())


def _apply_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    """Set torch's CPU threads as soon as the command's options are parsed."""
    from srrestore.engine.threads import set_threads

    set_threads(value)


THREADS_OPTION = click.Option(
    ["--threads"], type=click.IntRange(1), default=None, expose_value=False, callback=_apply_threads,
    help="CPU threads for torch [default: the cores this process may use, minus those the load average says "
         "are busy].",
)


def _add_commands() -> None:
    """Attach every command, each with ``--threads``; each lives in its own module under ``srrestore.cli``."""
    from srrestore.cli.average import average
    from srrestore.cli.evaluate import evaluate
    from srrestore.cli.export import export
    from srrestore.cli.finetune import finetune
    from srrestore.cli.models import models
    from srrestore.cli.report import report
    from srrestore.cli.restore import restore
    from srrestore.cli.train import train

    for command in (restore, train, average, finetune, export, models, evaluate, report):
        command.params.append(THREADS_OPTION)
        cli.add_command(command)


_add_commands()


def main() -> None:
    """Console-script entry point: stop signals become exceptions, freed tensor memory stays in the process."""
    from srrestore.engine.allocator import keep_freed_memory

    handle_stop_signals()
    keep_freed_memory()
    cli(prog_name="srrestore")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
