"""Device and precision options, out-of-memory detection, automatic sizing, progress."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srrestore.engine import (
    ArrayReader,
    ArrayWriter,
    Normalization,
    UpscaleOptions,
    resolve_device,
    resolve_precision,
    upscale,
    upscale_array,
)
from srrestore.engine.devices import auto_tile_and_batch, forward_bytes_per_pixel, free_memory, is_out_of_memory
from srrestore.errors import ConfigError


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(ConfigError, match="'cuda:1' asked for but CUDA is not available"):
            resolve_device("cuda:1")
    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(ConfigError, match="only cuda takes an index"):
        resolve_device("cpu:0")


def test_precision_names():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) is None
    assert resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16
    assert resolve_precision("FP16", cpu) is torch.float16
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", cpu)


def test_out_of_memory_errors_are_recognised():
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate"
                                         " memory: you tried to allocate 9 GB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_automatic_sizes_follow_the_budget():
    cpu = torch.device("cpu")
    small = auto_tile_and_batch(1000.0, 64 << 20, 14, (5000, 5000), 1, cpu, None, None)
    large = auto_tile_and_batch(1000.0, 1 << 30, 14, (5000, 5000), 1, cpu, None, None)
    assert small[0] % 16 == 0 and large[0] % 16 == 0 and small[0] < large[0] <= 1024
    assert (small[0] + 28) ** 2 * 1000 <= 64 << 20 and small[1] == large[1] == 1
    assert auto_tile_and_batch(1000.0, 1 << 30, 14, (100, 90), 1, cpu, None, None)[0] == 112


def test_an_image_that_fits_the_budget_is_one_tile_without_halo():
    """4000 B per pixel in 1 GiB: 268k pixels. A 500 x 480 image (240k) runs as one window, the image
    itself; with padded edges its window (596 x 576) no longer fits, and neither does a 600 x 600 image:
    both split into tiles whose padded windows fit."""
    cpu, budget = torch.device("cpu"), 1 << 30
    assert auto_tile_and_batch(4000.0, budget, 48, (500, 480), 1, cpu, None, None) == (512, 1)
    for extent, pad_edges in (((500, 480), True), ((600, 600), False)):
        tile, _ = auto_tile_and_batch(4000.0, budget, 48, extent, 1, cpu, None, None, pad_edges)
        assert tile < max(extent) and (tile + 96) ** 2 * 4000 <= budget
    gpu = torch.device("cuda", 0)
    tile, batch = auto_tile_and_batch(1000.0, 8 << 30, 14, (5000, 5000), 1, gpu, 256, None)
    assert tile == 256 and batch == 16
    assert auto_tile_and_batch(1000.0, 8 << 30, 14, (5000, 5000), 3, gpu, None, 2) == (1008, 2)
    assert free_memory(cpu) > 0


def test_bytes_per_pixel_estimate_scales_with_the_network(tiny_rgb, nets):
    cpu = torch.device("cpu")
    wide = nets.seeded_generator("srgan", in_channels=3, scale=2)
    tiny = forward_bytes_per_pixel(tiny_rgb, 3, 2, cpu, None, 48)
    assert 0 < tiny < forward_bytes_per_pixel(wide, 3, 2, cpu, None, 48)


def test_the_memory_probe_runs_once_per_network(astronaut, nets):
    network = nets.seeded_generator("test-tiny", in_channels=3, scale=2)
    forwards = []
    network.register_forward_hook(lambda _module, inputs, _output: forwards.append(inputs[0].shape))
    normalization = Normalization.for_dtype("uint8", 3)
    for _ in range(3):
        upscale_array(astronaut, network, network.spec, normalization, UpscaleOptions(device="cpu"))
    # One probe forward, then one forward per run (the image fits in one tile).
    assert len(forwards) == 4 and forwards.count(forwards[1]) == 3


def test_automatic_options_and_reduced_precision_run(astronaut, tiny_rgb, capsys):
    normalization = Normalization.for_dtype("uint8", 3)
    fp32 = ArrayWriter(3, (160, 192), np.uint8)
    report = upscale(ArrayReader(astronaut), fp32, tiny_rgb, tiny_rgb.spec, normalization,
                     UpscaleOptions(device="cpu", progress=True))
    assert report.tile_size % 16 == 0 and report.batch_size == 1 and report.precision == "fp32"
    assert report.device == "cpu" and report.tiles == 1
    bar = capsys.readouterr().err
    assert "tile" in bar and "MP/s" in bar
    bf16 = ArrayWriter(3, (160, 192), np.uint8)
    report = upscale(ArrayReader(astronaut), bf16, tiny_rgb, tiny_rgb.spec, normalization,
                     UpscaleOptions(tile_size=32, precision="bf16"))
    assert report.precision == "bf16"
    difference = np.abs(bf16.array.astype(int) - fp32.array)
    assert 0 < difference.mean() < 3  # autocast changes the network's arithmetic, not the stored range


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_matches_cpu(astronaut, tiny_rgb):
    normalization = Normalization.for_dtype("uint8", 3)
    outputs = []
    for device in ("cpu", "cuda"):
        writer = ArrayWriter(3, (160, 192), np.uint8)
        upscale(ArrayReader(astronaut), writer, tiny_rgb, tiny_rgb.spec, normalization,
                UpscaleOptions(device=device, precision="fp32", tile_size=32, batch_size=4))
        outputs.append(writer.array)
    tiny_rgb.to("cpu")
    assert np.abs(outputs[0].astype(int) - outputs[1]).max() <= 1
