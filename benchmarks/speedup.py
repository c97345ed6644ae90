"""Speed-up of this code over an earlier commit, measured side by side on this machine.

Speed targets are ratios against the code as it ran before (by default ``886de2f^``, the commit
before the CPU speed work: fp32 eager network in row-major memory, the C library's malloc). The
script checks that commit out into a temporary git worktree, then runs the two codes in turn,
each in a fresh child process, and takes the ratio pair by pair (so a machine whose speed drifts
during the run still compares like with like):

- the bare built-in network on random input, one untimed warm-up pass then ``--repeats`` passes:
  the reference as it ran (fp32, row-major, system malloc) against this code's default CPU path
  (channels-last memory, freed memory kept in the process: what ``srrestore restore`` does);
- with ``--restore``, the whole ``srrestore restore`` command on real files (start-up, reading,
  tiling and writing included), wall seconds of each child.

Both sides run with ``--threads`` torch threads. Run from the project root, in a git checkout::

    python benchmarks/speedup.py --threads 1 --pairs 5 --sizes 128 304 432 --restore --write-docs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_page import add_write_docs_option, command_line, cpu_model, load_average, write_results

REPOSITORY = Path(__file__).resolve().parents[1]
DATA = REPOSITORY.parent / "shared" / "data"
REFERENCE = "886de2f^"
MODELS = ("srgan-rgb-x4-psnr", "srgan-gray-x2-psnr")
RESTORES = (
    # (name, input, the command's options, output suffix): the examples, on the shared data
    ("Set14 baboon (500 x 480 RGB), x4", DATA / "sr" / "val" / "Set14" / "baboon.png", ("--scale", "4"), ".png"),
    ("one 512 x 512 CT slice (DICOM), x2", DATA / "medical" / "dicom" / "ct_abdomen_j2k" / "series", ("--scale", "2"),
     ""),
)
NOTES = ("Reference: the code at the commit named, as it ran then (fp32 eager, row-major memory, the C library's "
         "malloc); current: this checkout's default CPU path (channels-last memory, freed memory kept in the "
         "process). Each figure is the median of the pairs; the speed-up is the median of the pair-by-pair ratios, "
         "each pair run back to back in fresh processes.")


def child_network(model: str, size: int, threads: int, repeats: int, current: bool) -> dict[str, float]:
    """Output MP/s of one built-in network, in the code found first on ``sys.path``.

    Not ``speed.py``'s ``measure``: this child runs the reference code too, so it uses only the
    functions both codes have (``resolve_checkpoint``, ``load_generator``).
    """
    import torch

    from srrestore.models.checkpoint import load_generator
    from srrestore.models.registry import resolve_checkpoint

    torch.set_num_threads(threads)
    network, _ = load_generator(resolve_checkpoint(model))
    network.eval()
    batch = torch.rand(1, network.config.in_channels, size, size)
    if current:
        from srrestore.engine.allocator import keep_freed_memory

        keep_freed_memory()
        network = network.to(memory_format=torch.channels_last)
        batch = batch.contiguous(memory_format=torch.channels_last)
    sy, sx = network.config.scale
    with torch.no_grad():
        network(batch)
        start = time.perf_counter()
        for _ in range(repeats):
            network(batch)
        seconds = (time.perf_counter() - start) / repeats
    return {"mp_per_s": size * size * sy * sx / seconds / 1e6}


def code_environment(code: Path, threads: int) -> dict[str, str]:
    """The environment of a child that imports srrestore from ``code``, with ``threads`` OpenMP threads."""
    return {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": str(threads)}


def run_network(code: Path, current: bool, args: argparse.Namespace, model: str, size: int) -> float:
    command = [sys.executable, __file__, "--child", model, "--size", str(size), "--threads", str(args.threads),
               "--repeats", str(args.repeats)] + (["--current"] if current else [])
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=code,
                            env=code_environment(code, args.threads))
    return json.loads(result.stdout.strip().splitlines()[-1])["mp_per_s"]


def run_restore(code: Path, current: bool, args: argparse.Namespace, source: Path, options: tuple[str, ...],
                suffix: str, scratch: Path) -> float:
    """Wall seconds of one ``srrestore restore`` child (the reference has no --threads: OMP_NUM_THREADS sets it)."""
    output = scratch / f"restored-by-{'current' if current else 'reference'}{suffix}"
    command = [sys.executable, "-m", "srrestore", "restore", str(source), str(output), *options, "--overwrite"]
    if current:
        command += ["--threads", str(args.threads)]
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, text=True, check=True, cwd=code,
                   env=code_environment(code, args.threads))
    return time.perf_counter() - start


def paired(measure_reference, measure_current, pairs: int, faster: str) -> tuple[float, float, float]:
    """Medians of the reference's and the current code's figures, and the median pair-by-pair speed-up.

    ``faster``: ``"higher"`` for rates (speed-up = current / reference), ``"lower"`` for seconds.
    """
    reference, current = [], []
    for _ in range(pairs):
        reference.append(measure_reference())
        current.append(measure_current())
    speedups = [c / r if faster == "higher" else r / c for r, c in zip(reference, current)]
    return statistics.median(reference), statistics.median(current), statistics.median(speedups)


def reference_worktree(commit: str, folder: Path) -> Path:
    """Check ``commit`` out into ``folder`` and link its format adapters where the package imports them."""
    subprocess.run(["git", "-C", str(REPOSITORY), "worktree", "add", "--detach", "--force", str(folder), commit],
                   capture_output=True, text=True, check=True)
    for part in ("domains", "pipelines"):  # an installed package maps them under srrestore/
        link = folder / "srrestore" / part
        if not link.exists():
            link.symlink_to(folder / part)
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", default=REFERENCE, help=f"commit to compare with (default {REFERENCE})")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 304, 432], help="input sides in pixels")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="timed forward passes per child")
    parser.add_argument("--restore", action="store_true", help="also time the whole restore command on real files")
    add_write_docs_option(parser, "speedup")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--current", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child_network(args.child, args.size, args.threads, args.repeats, args.current)))
        return
    with tempfile.TemporaryDirectory(prefix="srrestore-speedup-") as scratch_name:
        scratch = Path(scratch_name)
        reference = reference_worktree(args.reference, scratch / "reference")
        try:
            lines = measure_all(args, reference, scratch)
        finally:
            subprocess.run(["git", "-C", str(REPOSITORY), "worktree", "remove", "--force", str(reference)],
                           capture_output=True, check=False)
    command = command_line(__file__, argv)
    machine = f"{cpu_model()}, {os.cpu_count()} CPUs, {load_average()}, {args.threads} thread(s) each side"
    print(f"\nCommand: `{command}`  \nMachine: {machine}")
    if args.write_docs:
        body = "\n".join(lines) + f"\n\n{NOTES}"
        print(f"Page: {write_results('speedup', f'Speed-up over {args.reference}', body, command, machine)}")


def measure_all(args: argparse.Namespace, reference: Path, scratch: Path) -> list[str]:
    """Every paired measurement, as Markdown table lines (printed as they come)."""
    lines = ["| what | input | reference | current | speed-up |", "|---|---|---|---|---|"]
    print("\n".join(lines))
    for model in args.models:
        for size in args.sizes:
            old, new, ratio = paired(lambda: run_network(reference, False, args, model, size),
                                     lambda: run_network(REPOSITORY, True, args, model, size), args.pairs, "higher")
            lines.append(f"| {model}, bare network | {size} x {size} | {old:.3f} MP/s | {new:.3f} MP/s | {ratio:.2f}x |")
            print(lines[-1])
    if args.restore:
        for name, source, options, suffix in RESTORES:
            if not source.exists():
                print(f"skipped {name}: {source} not found")
                continue
            if source.is_dir():  # one slice of the series
                source = sorted(source.iterdir())[0]
            old, new, ratio = paired(
                lambda: run_restore(reference, False, args, source, options, suffix, scratch),
                lambda: run_restore(REPOSITORY, True, args, source, options, suffix, scratch), args.pairs, "lower")
            lines.append(f"| `srrestore restore`, whole process | {name} | {old:.1f} s | {new:.1f} s | {ratio:.2f}x |")
            print(lines[-1])
    return lines


if __name__ == "__main__":
    main()
