"""``precision="auto"`` on the CPU runs 2-d networks in channels-last memory (issue 18): same outputs, measured faster."""

from __future__ import annotations

import numpy as np
import torch
from skimage import data

from srrestore.engine import Normalization, UpscaleOptions, upscale_array
from srrestore.engine.io import ArrayReader
from srrestore.engine.plan import make_plan
from srrestore.sr_model import load_model


def test_auto_runs_the_built_in_in_channels_last_memory_with_the_fp32_outputs():
    """The built-in RGB x2 model on a real photograph: auto (channels-last) against fp32 (contiguous).

    Tolerance: 1 DN on a handful of pixels. Channels-last convolutions sum in another order, so
    float32 outputs differ by rounding (about 1e-6) and a value next to a .5 can round either way.
    """
    model = load_model("srgan-rgb-x2-psnr", device="cpu")
    image = np.ascontiguousarray(data.astronaut()[100:196, 180:276].transpose(2, 0, 1))
    normalization = Normalization.for_dtype("uint8", 3)
    auto = upscale_array(image, model.network, model.spec, normalization, UpscaleOptions(device="cpu"))
    assert model.network.shallow.weight.is_contiguous(memory_format=torch.channels_last)
    fp32 = upscale_array(image, model.network, model.spec, normalization, UpscaleOptions(device="cpu", precision="fp32"))
    difference = np.abs(auto.astype(int) - fp32.astype(int))
    assert difference.max() <= 1 and np.mean(difference > 0) < 1e-3


def test_only_auto_on_the_cpu_chooses_channels_last():
    model = load_model("srgan-gray-x2-psnr", device="cpu")
    reader = ArrayReader(np.zeros((1, 32, 32), dtype=np.uint8))
    normalization = Normalization.for_dtype("uint8", 1)
    auto = make_plan(reader.spec, model.spec, normalization, UpscaleOptions(device="cpu"))
    fp32 = make_plan(reader.spec, model.spec, normalization, UpscaleOptions(device="cpu", precision="fp32"))
    assert auto.channels_last and auto.precision_note.endswith("channels-last memory (auto: cpu)")
    assert not fp32.channels_last and fp32.precision_note == "fp32 (asked for)"
