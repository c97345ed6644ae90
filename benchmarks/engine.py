"""Inference engine benchmark: exactness, overhead, memory, throughput, and MONAI side by side.

1. Exactness: max abs difference, tiled vs whole-image output, tile sizes 64/128/512,
   on real images from ``DATA`` (Set14 ``baboon``, research-only, read never copied;
   Landsat ``RGB.byte.tif`` with its nodata 0; a uint16 crop of the rio-tiler ``cog.tif``).
2. Overhead: engine time / bare network forward time on the same windows, at the
   default (automatic) tile; also against one whole-image forward (which needs no halo).
3. Memory: peak RSS of a process upscaling generated inputs of 1k and 4k pixels a side
   (16k with ``--with-16k``), each in its own subprocess (``VmHWM``); on a CUDA device also the
   peak GPU memory torch allocated. ``--channels 1 --scale 2`` measures the grey x2 shape,
   ``--precision`` the engine's precision (``auto``: bf16 on GPUs that have it).
4. Throughput: output megapixels per second of those runs.
5. MONAI: ``monai.inferers.sliding_window_inference`` running the same network on the
   same input (window = the engine's window at ``--side-tile``, overlap 0.25, gaussian
   blending): time, peak RSS and max difference to whole-image output, each side in its
   own subprocess.

Networks are the project's generators with seeded random weights: speed, memory and
exactness do not depend on training. Everything runs on the CPU unless ``--device``.
Timings on a shared machine follow its load (printed in the header). Examples::

    python benchmarks/engine.py                                   # everything, srgan x4 (slow on 2 cores)
    python benchmarks/engine.py --only exactness --model test-tiny --crop 768
    python benchmarks/engine.py --only memory --memory-model test-tiny --sizes 1024 4096 --with-16k
    python benchmarks/engine.py --only memory --device cuda --memory-model srgan --sizes 4096 --with-16k \
        --precision bf16 --write-docs --page engine-gpu                  # the built-ins' size on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from srrestore.engine import (
    ArrayReader,
    ImageSpec,
    Normalization,
    Region,
    TiledUpscaler,
    UpscaleOptions,
    upscale_array,
    upscale_whole,
)
from srrestore.engine.allocator import keep_freed_memory
from srrestore.engine.grid import split
from srrestore.engine.padding import edge_pad
from srrestore.models.generator import SRGenerator, create_generator

from results_page import add_write_docs_option, command_line, cpu_model, load_average, write_results

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPOSITORY.parent / "shared" / "data"
TILE_SIZES = (64, 128, 512)
NOTES = ("Networks have seeded random weights: speed, memory and exactness do not depend on training. Tiled output "
         "should equal whole-image output (0 DN); engine / bare compares the engine with the bare network on the "
         "same windows. Timings follow the machine's load.")


def build_network(model: str, channels: int, scale: int) -> SRGenerator:
    """A generator with seeded random weights."""
    torch.manual_seed(0)
    return create_generator(model, in_channels=channels, scale=scale).eval()


def peak_rss_mb() -> float:
    """This process's peak resident memory, MB: Linux's ``VmHWM``, else ``ru_maxrss``.

    ``ru_maxrss`` of a child started by a large process reports the parent's peak until the
    child exceeds it (Linux keeps it across fork and exec), so every child measured after the
    srgan sections read the same 1151 MB; ``VmHWM`` belongs to the child's own address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class NullWriter:
    """Discards the output, keeping a checksum so nothing is optimised away."""

    def __init__(self) -> None:
        self.checksum = 0

    def write(self, region: Region, array: np.ndarray) -> None:
        self.checksum += int(array[:, ::97, ::89].sum())

    def close(self) -> None:
        pass


class PatternReader:
    """A generated ``(channels, size, size)`` uint8 image (1 or 3 channels), produced window by window."""

    def __init__(self, size: int, channels: int = 3) -> None:
        self.spec = ImageSpec(channels, (size, size), "uint8", None)

    def read(self, region: Region) -> np.ndarray:
        rows, cols = np.ogrid[region.start[0] : region.stop[0], region.start[1] : region.stop[1]]
        base = 127 + 60 * np.sin(rows / 7.0) * np.cos(cols / 11.0) + ((rows * 31 + cols * 17) % 41)
        bands = [base, base[::-1], 255 - base][: self.spec.channels]
        return np.stack(bands).clip(0, 255).astype(np.uint8)

    def read_valid(self, region: Region) -> np.ndarray:
        return np.ones(region.size, dtype=bool)


# -- real inputs -----------------------------------------------------------------------------


def real_images(data: Path, crop: int) -> list[tuple[str, np.ndarray, float | None]]:
    """``(name, (C, H, W) array, nodata)``, at most ``crop`` px a side; scikit-image's astronaut without ``data``."""
    images: list[tuple[str, np.ndarray, float | None]] = []
    baboon = data / "sr" / "val" / "Set14" / "baboon.png"
    if baboon.is_file():
        from skimage.io import imread

        array = np.ascontiguousarray(imread(baboon)[:crop, :crop, :3].transpose(2, 0, 1))
        images.append((f"Set14 baboon {array.shape[1]}x{array.shape[2]} (RGB uint8)", array, None))
    try:
        import rasterio
    except ImportError:
        rasterio = None
    landsat = data / "satellite" / "rasterio" / "RGB.byte.tif"
    if rasterio is not None and landsat.is_file():
        with rasterio.open(landsat) as source:
            array = source.read(window=((0, min(crop, source.height)), (0, min(crop, source.width))))
            images.append((f"Landsat RGB.byte.tif {array.shape[1]}x{array.shape[2]} (uint8, nodata 0)", array,
                           source.nodata))
    cog = data / "satellite" / "riotiler_landsat_like_uint16" / "cog.tif"
    if rasterio is not None and cog.is_file():
        with rasterio.open(cog) as source:
            top, left = source.height // 2 - crop // 2, source.width // 2 - crop // 2
            array = source.read(window=((top, top + crop), (left, left + crop)))
            images.append((f"rio-tiler cog.tif {crop}x{crop} crop (uint16)", array, source.nodata))
    if not images:
        from skimage import data as skdata

        images.append(("scikit-image astronaut (no --data found)", skdata.astronaut().transpose(2, 0, 1).copy(), None))
    return images


def normalization_for(array: np.ndarray) -> Normalization:
    return Normalization.for_dtype(array.dtype, array.shape[0])


# -- 1. exactness ------------------------------------------------------------------------------


def exactness(args: argparse.Namespace) -> str:
    lines = [f"## 1. Exactness: tiled vs whole-image, model {args.model} x{args.scale}", "",
             "| image | tile | max abs diff (DN) | pixels differing |", "|---|---|---|---|"]
    for name, image, nodata in real_images(args.data, args.crop):
        network = build_network(args.model, image.shape[0], args.scale)
        normalization = normalization_for(image)
        whole = upscale_whole(image, network, network.spec, normalization, nodata=nodata)
        for tile in TILE_SIZES:
            tiled = upscale_array(image, network, network.spec, normalization, UpscaleOptions(tile_size=tile),
                                  nodata=nodata)
            difference = np.abs(tiled.astype(np.int64) - whole.astype(np.int64))
            share = np.count_nonzero(difference) / difference.size
            lines.append(f"| {name} | {tile} | {difference.max()} | {share:.2e} |")
    return "\n".join(lines)


# -- 2 and 4. overhead and throughput -------------------------------------------------------------


def overhead(args: argparse.Namespace) -> str:
    image = PatternReader(args.overhead_size).read(Region.from_shape((args.overhead_size,) * 2))
    network = build_network(args.model, 3, args.scale)
    normalization = normalization_for(image)
    reader = ArrayReader(image)
    upscaler = TiledUpscaler(network, network.spec, normalization, reader.spec, UpscaleOptions(device=args.device))
    layout = upscaler.plan.layout
    normalised = normalization.forward(image)
    everything = Region.from_shape(layout.shape)
    windows = []
    for tile in split(everything, layout.shape, layout.core_size(upscaler.tile_size), True):
        box = layout.window(tile.core)
        inside = box.clipped(layout.shape)
        padded = edge_pad(normalised[(slice(None), *inside.slices())], inside, box)
        windows.append(torch.from_numpy(np.ascontiguousarray(padded))[None])
    whole_input = torch.from_numpy(edge_pad(normalised, everything, layout.window(everything)))[None]
    with torch.no_grad():
        network(windows[0])  # warm-up: the first call of a shape prepares kernels
        network(whole_input)
        start = time.perf_counter()
        for window in windows:
            network(window)
        bare = time.perf_counter() - start
        start = time.perf_counter()
        network(whole_input)
        whole = time.perf_counter() - start
    report = upscaler.run(reader, NullWriter())
    return "\n".join([
        f"## 2. Overhead, {args.overhead_size}x{args.overhead_size} RGB uint8, model {args.model} x{args.scale}, "
        f"default tile {report.tile_size} (halo {report.halo}, {report.tiles} tiles, batch {report.batch_size})", "",
        "| engine s | bare forward, same windows s | engine / bare | one whole-image forward s | engine / whole "
        "| output MP/s |",
        "|---|---|---|---|---|---|",
        f"| {report.seconds:.2f} | {bare:.2f} | {report.seconds / bare:.3f} | {whole:.2f} | "
        f"{report.seconds / whole:.3f} | {report.output_megapixels / report.seconds:.3f} |",
    ])


# -- 3. memory (children) ---------------------------------------------------------------------------


def child_memory(args: argparse.Namespace) -> dict[str, float | str | None]:
    keep_freed_memory()  # as the srrestore command runs (SRRESTORE_MALLOC=system: the C library's defaults)
    network = build_network(args.memory_model, args.channels, args.scale)
    baseline = peak_rss_mb()
    reader = PatternReader(args.size, args.channels)
    on_cuda = args.device.startswith("cuda")
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    upscaler = TiledUpscaler(network, network.spec, Normalization.for_dtype("uint8", args.channels), reader.spec,
                             UpscaleOptions(device=args.device, precision=args.precision))
    report = upscaler.run(reader, NullWriter())
    return {"size": args.size, "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline, "seconds": report.seconds,
            "mp_per_s": report.output_megapixels / report.seconds, "tile": report.tile_size, "batch": report.batch_size,
            "precision": report.precision, "device": report.device,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if on_cuda else None}


def memory(args: argparse.Namespace) -> str:
    sizes = list(args.sizes) + ([16384] if args.with_16k else [])
    kind = "RGB" if args.channels == 3 else "grey"
    gpu = args.device.startswith("cuda")
    lines = [f"## 3-4. Peak memory and throughput, generated {kind} uint8 inputs, model {args.memory_model} "
             f"x{args.scale}, precision {args.precision}, automatic tile (each size in a fresh process)", "",
             "| input side | output side | peak RSS MB | RSS before the run MB |" + (" peak GPU MB |" if gpu else "")
             + " seconds | output MP/s | tile | batch | device, precision run |",
             "|---|---|---|---|" + ("---|" if gpu else "") + "---|---|---|---|---|"]
    for size in sizes:
        result = run_child(args, "memory", "--size", str(size))
        lines.append(f"| {size} | {size * args.scale} | {result['peak_rss_mb']:.0f} | {result['baseline_rss_mb']:.0f} |"
                     + (f" {result['peak_gpu_mb']:.0f} |" if gpu else "")
                     + f" {result['seconds']:.1f} | {result['mp_per_s']:.3f} | {result['tile']:.0f} "
                     f"| {result['batch']:.0f} | {result['device']}, {result['precision']} |")
    return "\n".join(lines)


# -- 5. MONAI side by side (children) --------------------------------------------------------------


def monai_input(args: argparse.Namespace) -> np.ndarray:
    return real_images(args.data, args.crop)[0][1]


def child_side(args: argparse.Namespace) -> dict[str, float]:
    image = monai_input(args)
    network = build_network(args.model, image.shape[0], args.scale)
    normalization = normalization_for(image)
    start = time.perf_counter()
    if args.child == "engine":
        options = UpscaleOptions(device=args.device, tile_size=args.side_tile)
        output = upscale_array(image, network, network.spec, normalization, options)
    else:
        from monai.inferers import sliding_window_inference

        inputs = torch.from_numpy(normalization.forward(image))[None]
        with torch.no_grad():
            result = sliding_window_inference(inputs, (args.window, args.window), 1, network, overlap=0.25,
                                              mode="gaussian")
        output = normalization.inverse(result[0].numpy(), image.dtype)
    seconds = time.perf_counter() - start
    reference = np.load(args.reference)
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(),
            "max_diff": float(np.abs(output.astype(np.int64) - reference).max()),
            "share_diff": float(np.count_nonzero(output != reference) / output.size)}


def monai(args: argparse.Namespace) -> str:
    image = monai_input(args)
    network = build_network(args.model, image.shape[0], args.scale)
    normalization = normalization_for(image)
    halo = network.spec.receptive_field
    window = args.side_tile + 2 * halo
    whole = upscale_whole(image, network, network.spec, normalization)
    with tempfile.TemporaryDirectory() as folder:
        reference = Path(folder) / "whole.npy"
        np.save(reference, whole)
        rows = {side: run_child(args, side, "--reference", str(reference), "--window", str(window))
                for side in ("engine", "monai")}
    engine_row, monai_row = rows["engine"], rows["monai"]
    return "\n".join([
        f"## 5. Side by side with MONAI sliding_window_inference, {image.shape[1]}x{image.shape[2]} "
        f"{image.dtype}, model {args.model} x{args.scale}, window {window} px", "",
        "| method | seconds | peak RSS MB | max abs diff to whole-image (DN) | pixels differing |",
        "|---|---|---|---|---|",
        f"| srrestore engine (tile {args.side_tile}, halo {halo}) | {engine_row['seconds']:.2f} | "
        f"{engine_row['peak_rss_mb']:.0f} | {engine_row['max_diff']:.0f} | {engine_row['share_diff']:.2e} |",
        f"| MONAI (roi {window}, overlap 0.25, gaussian) | {monai_row['seconds']:.2f} | "
        f"{monai_row['peak_rss_mb']:.0f} | {monai_row['max_diff']:.0f} | {monai_row['share_diff']:.2e} |",
    ])


# -- driver ------------------------------------------------------------------------------------------


def run_child(args: argparse.Namespace, child: str, *extra: str) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", child, "--data", str(args.data), "--model", args.model,
               "--memory-model", args.memory_model, "--scale", str(args.scale), "--crop", str(args.crop),
               "--device", args.device, "--side-tile", str(args.side_tile), "--channels", str(args.channels),
               "--precision", args.precision, *extra]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder (default ../shared/data)")
    parser.add_argument("--model", default="srgan", help="generator for exactness, overhead and MONAI")
    parser.add_argument("--memory-model", default="test-tiny", help="generator for the memory runs (fast on CPUs)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--crop", type=int, default=640, help="side of the crops of the real rasters")
    parser.add_argument("--side-tile", type=int, default=128, help="engine tile in the MONAI comparison")
    parser.add_argument("--overhead-size", type=int, default=512, help="side of the overhead input")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=(1024, 4096), help="memory run input sides")
    parser.add_argument("--with-16k", action="store_true", help="add a 16384 px input to the memory runs (slow)")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=3, help="channels of the memory runs' input")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                        help="the engine's precision in the memory runs")
    parser.add_argument("--only", nargs="+", choices=("exactness", "overhead", "memory", "monai"),
                        default=("exactness", "overhead", "memory", "monai"))
    add_write_docs_option(parser, "engine")
    parser.add_argument("--page", default="engine",
                        help="with --write-docs: write docs/results/PAGE.md (engine-gpu for a GPU run)")
    parser.add_argument("--child", choices=("memory", "engine", "monai"), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument("--window", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.child:
        result = child_memory(args) if args.child == "memory" else child_side(args)
        print(json.dumps(result))
        return
    print("# srrestore inference engine benchmark")
    device = args.device
    if device.startswith("cuda") and torch.cuda.is_available():
        device = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    machine = (f"{cpu_model()}, {os.cpu_count()} CPUs ({load_average()} at the start), torch {torch.__version__} "
               f"({torch.get_num_threads()} threads), device {device}")
    print(f"machine: {machine}; networks have seeded random weights")
    sections = []
    for part in args.only:
        sections.append({"exactness": exactness, "overhead": overhead, "memory": memory, "monai": monai}[part](args))
        print(f"\n{sections[-1]}")
    command = command_line(__file__, argv)
    print(f"\nreproduce: cd {REPOSITORY} && {command}")
    if args.write_docs:
        body = "\n\n".join([NOTES, *sections])
        title = "Inference engine" if args.page == "engine" else f"Inference engine: {args.page}"
        print(f"Page: {write_results(args.page, title, body, command, machine)}")


if __name__ == "__main__":
    main()
