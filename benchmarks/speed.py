"""Bare generator throughput on this machine: output megapixels per second.

Runs the network alone (no I/O, no tiling) on random input of a fixed size, so
the figure shows what the architecture costs; ``--compile`` adds the same
network compiled by ``torch.compile`` (as ``srrestore restore --compile`` runs
it; the compilation is not timed); ``--onnx`` the network exported to ONNX and run
by ONNX Runtime (as ``srrestore restore --model m.onnx`` runs it; the export is
not timed); ``--layouts`` the eager network in channels-last memory and under
bf16 autocast; ``--competing-jobs N`` the default CPU path beside N busy processes
(a competing job) at one thread, at every core and at the automatic thread count
(``srrestore.engine.threads``). Every row is measured in the same run, so their
ratios compare. Usage::

    python benchmarks/speed.py --model srgan-rgb-x4-psnr --size 128 --threads 1 2 --compile --onnx --layouts
    python benchmarks/speed.py --competing-jobs 1
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from srrestore.engine.allocator import keep_freed_memory
from srrestore.engine.compilation import compiled
from srrestore.engine.devices import cpu_flags
from srrestore.engine.threads import auto_threads, available_cores
from srrestore.models.onnx import export_onnx
from srrestore.sr_model import SRModel, load_model

from results_page import add_write_docs_option, command_line, cpu_model, load_average, write_results


NOTES = ("The network alone (no I/O, no tiling) on random input, after one untimed warm-up pass; output "
         "megapixels per second, the mean of the repeats. Freed memory stays in the process, as in the srrestore "
         "command (set SRRESTORE_MALLOC=system to measure without). Every row comes from the same run, so their "
         "ratios compare. Rows beside busy processes run the default CPU path (channels-last) while that many "
         "processes each keep a core busy; the automatic thread count is the one the srrestore command picks then "
         "(the cores this process may use minus the load average).")
LAYOUTS = ("fp32", "channels-last", "bf16")
"""CPU variants of the eager network: float32 as it is, float32 in channels-last memory, bf16 autocast."""


def measure(model: SRModel, size: int, threads: int, repeats: int, compile: bool = False,
            layout: str = "fp32") -> float:
    """Output megapixels per second of one ``(1, C, size, size)`` forward pass of ``model``'s network."""
    torch.set_num_threads(threads)
    if model.backend == "onnxruntime":
        model = load_model(str(model.source))  # a new session, with this many threads
    network = compiled(model.network) if compile else model.network
    sy, sx = model.spec.scale
    batch = torch.rand(1, model.spec.in_channels, size, size)
    if layout == "channels-last":
        network = network.to(memory_format=torch.channels_last)
        batch = batch.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=layout == "bf16")
    with torch.no_grad(), autocast:
        network(batch)
        start = time.perf_counter()
        for _ in range(repeats):
            network(batch)
        seconds = (time.perf_counter() - start) / repeats
    if layout == "channels-last":
        network.to(memory_format=torch.contiguous_format)
    return size * size * sy * sx / seconds / 1e6


def measure_training_step(model: SRModel, patch: int, batch_size: int, threads: int, repeats: int,
                          layout: str = "fp32") -> float:
    """HR training patches per second of one generator step: forward, L1 loss, backward and Adam.

    On a copy of ``model``'s network in train mode, with ``(batch_size, C, patch / sy, patch / sx)``
    inputs and ``(batch_size, C, patch, patch)`` targets, in ``layout`` (as :func:`measure`).
    """
    torch.set_num_threads(threads)
    network = copy.deepcopy(model.network).train()
    sy, sx = model.spec.scale
    channels = model.spec.in_channels
    lr, hr = torch.rand(batch_size, channels, patch // sy, patch // sx), torch.rand(batch_size, channels, patch, patch)
    if layout == "channels-last":
        network = network.to(memory_format=torch.channels_last)
        lr, hr = (tensor.contiguous(memory_format=torch.channels_last) for tensor in (lr, hr))
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-4)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=layout == "bf16"):
            output = network(lr)
        loss = torch.nn.functional.l1_loss(output.float(), hr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return batch_size * repeats / (time.perf_counter() - start)


def beside_competing_jobs(model: SRModel, jobs: int, size: int, repeats: int) -> list[str]:
    """Table lines: the default CPU path (channels-last) beside ``jobs`` busy processes, at one
    thread, at every core this process may use, and at the automatic count (:func:`auto_threads`).

    The automatic count reads the 1-minute load average, so the measurement waits (up to two
    minutes) until the average shows the busy processes.
    """
    cores = available_cores()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(jobs)]
    try:
        deadline = time.monotonic() + 120
        while os.getloadavg()[0] < jobs - 0.3 and time.monotonic() < deadline:
            time.sleep(5)
        load, automatic = os.getloadavg()[0], auto_threads()
        lines = ["", "| model | input | beside | threads | output MP/s |", "|---|---|---|---|---|"]
        print("\n".join(lines))
        for threads, how in ((1, "one"), (cores, "every core"), (automatic, f"automatic, load {load:.1f}")):
            rate = measure(model, size, threads, repeats, layout="channels-last")
            lines.append(f"| {model.name} | {size}x{size} | {jobs} busy process(es) | {threads} ({how}) | {rate:.2f} |")
            print(lines[-1])
        return lines
    finally:
        for process in busy:
            process.kill()
            process.wait()


def cpu_line() -> str:
    """The CPU model and the flags that decide the fast paths (oneDNN uses AMX or AVX512-BF16 for bf16)."""
    flags = cpu_flags()
    if flags is None:
        return cpu_model()
    wanted = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if flag in flags]
    return f"{cpu_model()} ({', '.join(wanted) or 'no AVX2'})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="srgan-rgb-x4-psnr")
    parser.add_argument("--size", type=int, default=128, help="input side in pixels")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also measure the network compiled by torch.compile")
    parser.add_argument("--onnx", action="store_true", help="also measure the ONNX export run by ONNX Runtime")
    parser.add_argument("--layouts", action="store_true",
                        help="also measure the eager network in channels-last memory and under bf16 autocast")
    parser.add_argument("--training-step", action="store_true",
                        help="also measure one training step (forward, L1, backward, Adam) per layout")
    parser.add_argument("--patch", type=int, default=64, help="HR patch side of the training step")
    parser.add_argument("--batch-size", type=int, default=4, help="patches per training step")
    parser.add_argument("--competing-jobs", type=int, default=0, metavar="N",
                        help="also measure the default CPU path beside N busy processes: one thread, every core, "
                             "and the automatic count")
    add_write_docs_option(parser, "speed")
    args = parser.parse_args(argv)
    keep_freed_memory()
    model = load_model(args.model)
    rows = [("", model, False, "fp32")] + ([(", compiled", model, True, "fp32")] if args.compile else [])
    if args.layouts:
        rows += [(f", {layout}", model, False, layout) for layout in LAYOUTS[1:]]
    lines = ["| model | input | threads | output MP/s |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        if args.onnx:
            exported = export_onnx(model.source, Path(folder) / "model.onnx")
            rows.append((", ONNX Runtime", load_model(str(exported)), False, "fp32"))
        print("\n".join(lines))
        for suffix, runnable, compile, layout in rows:
            for threads in args.threads:
                rate = measure(runnable, args.size, threads, args.repeats, compile, layout)
                lines.append(f"| {args.model}{suffix} | {args.size}x{args.size} | {threads} | {rate:.2f} |")
                print(lines[-1])
    if args.training_step:
        layouts = LAYOUTS if args.layouts else LAYOUTS[:1]
        training = ["", "| model | training step | layout | threads | HR patches/s |", "|---|---|---|---|---|"]
        print("\n".join(training))
        for layout in layouts:
            for threads in args.threads:
                rate = measure_training_step(model, args.patch, args.batch_size, threads, args.repeats, layout)
                training.append(f"| {args.model} | {args.batch_size} x {args.patch} px | {layout} | {threads} | "
                                f"{rate:.2f} |")
                print(training[-1])
        lines += training
    if args.competing_jobs:
        lines += beside_competing_jobs(model, args.competing_jobs, args.size, args.repeats)
    command = command_line(__file__, argv)
    machine = f"{cpu_line()}, torch {torch.__version__}, {load_average()}"
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"\nCommand: `{command}`  \nMachine: {machine}, {date}")
    if args.write_docs:
        body = "\n".join(lines) + f"\n\n{NOTES}"
        print(f"Page: {write_results('speed', 'Speed of the bare network', body, command, machine, date)}")


if __name__ == "__main__":
    main()
