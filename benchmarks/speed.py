"""Bare generator throughput on this machine: output megapixels per second.

Runs the network alone (no I/O, no tiling) on random input of a fixed size, so
the figure shows what the architecture costs; ``--compile`` adds the same
network compiled by ``torch.compile`` (as ``srrestore restore --compile`` runs
it; the compilation is not timed); ``--onnx`` the network exported to ONNX and run
by ONNX Runtime (as ``srrestore restore --model m.onnx`` runs it; the export is
not timed). Every row is measured in the same run, so their ratios compare.
Usage::

    python benchmarks/speed.py --model srgan-rgb-x4-psnr --size 128 --threads 1 2 --compile --onnx
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from srrestore.engine.compilation import compiled
from srrestore.models.onnx import export_onnx
from srrestore.sr_model import SRModel, load_model


def measure(model: SRModel, size: int, threads: int, repeats: int, compile: bool = False) -> float:
    """Output megapixels per second of one ``(1, C, size, size)`` forward pass of ``model``'s network."""
    torch.set_num_threads(threads)
    if model.backend == "onnxruntime":
        model = load_model(str(model.source))  # a new session, with this many threads
    network = compiled(model.network) if compile else model.network
    sy, sx = model.spec.scale
    batch = torch.rand(1, model.spec.in_channels, size, size)
    with torch.no_grad():
        network(batch)
        start = time.perf_counter()
        for _ in range(repeats):
            network(batch)
        seconds = (time.perf_counter() - start) / repeats
    return size * size * sy * sx / seconds / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="srgan-rgb-x4-psnr")
    parser.add_argument("--size", type=int, default=128, help="input side in pixels")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also measure the network compiled by torch.compile")
    parser.add_argument("--onnx", action="store_true", help="also measure the ONNX export run by ONNX Runtime")
    args = parser.parse_args()
    model = load_model(args.model)
    rows = [("", model, False)] + ([(", compiled", model, True)] if args.compile else [])
    with tempfile.TemporaryDirectory() as folder:
        if args.onnx:
            exported = export_onnx(model.source, Path(folder) / "model.onnx")
            rows.append((", ONNX Runtime", load_model(str(exported)), False))
        print("| model | input | threads | output MP/s |\n|---|---|---|---|")
        for suffix, runnable, compile in rows:
            for threads in args.threads:
                rate = measure(runnable, args.size, threads, args.repeats, compile)
                print(f"| {args.model}{suffix} | {args.size}x{args.size} | {threads} | {rate:.2f} |")
    print(f"\nCommand: `python {shlex.join(sys.argv)}`  \nMachine: {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
