"""Click options shared by several commands."""

from __future__ import annotations

from typing import Callable, TypeVar

import click

__all__ = ["device_option", "engine_options", "quiet_option"]

F = TypeVar("F", bound=Callable[..., object])

device_option = click.option(
    "--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps."
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")


def engine_options(function: F) -> F:
    """Tiling, device and precision options of the inference engine."""
    for option in reversed(
        [
            click.option("--tile", "tile_size", type=click.IntRange(8), default=None,
                         help="Tile side in input pixels (default: sized from free memory)."),
            click.option("--batch-size", type=click.IntRange(1), default=None,
                         help="Tiles per forward pass (default: automatic)."),
            device_option,
            click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto",
                         show_default=True,
                         help="Network precision: auto = bf16 on GPUs with native bf16 (compute capability 8.0+), "
                              "fp16 on older GPUs, fp32 elsewhere; fp32 = IEEE fp32 (TF32 off). On a CPU bf16 and "
                              "fp16 are fast only with AMX or AVX512 (the run says when they are emulated). "
                              "Normalisation always runs in float32."),
            click.option("--consistency", type=click.Choice(["area", "bicubic"]), default=None,
                         help="Project the output so that downscaling it gives back the input."),
            click.option("--compile", "compile", is_flag=True,
                         help="Compile the network with torch.compile (needs a C++ compiler): after a one-off "
                              "compilation of 1-2 minutes, about 1.1x the eager network's speed on a CPU; "
                              "for large images."),
        ]
    ):
        function = option(function)
    return function
