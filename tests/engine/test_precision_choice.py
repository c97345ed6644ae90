"""``--precision``: what ``auto`` picks on each device, and ``fp32`` meaning IEEE fp32 (TF32 off) on CUDA.

No GPU is needed: ``torch.cuda.get_device_capability`` is replaced by a fake
machine with a Turing GPU (7.5) as ``cuda:0`` and an Ampere GPU (8.0) as
``cuda:1``; the TF32 flags are plain process settings, readable and writable
on any build of torch.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from srrestore.engine import ArrayReader, ArrayWriter, Normalization, UpscaleOptions, devices, upscale
from srrestore.engine.devices import autocast, native_bf16, precision_choice, resolve_precision, strict_fp32

TURING, AMPERE = torch.device("cuda", 0), torch.device("cuda", 1)


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """``cuda:0`` has compute capability 7.5 (bf16 only emulated), ``cuda:1`` has 8.0 (native bf16);
    the *current* device is ``cuda:0``, so a check of the current device would answer wrongly for cuda:1."""
    capabilities = {0: (7, 5), 1: (8, 0)}

    def capability(device: torch.device | int | None = None) -> tuple[int, int]:
        index = torch.device(device).index if isinstance(device, torch.device) else device
        return capabilities[0 if index is None else index]

    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)


def tf32_flags() -> tuple[object, object]:
    """(matmul, cuDNN convolution) TF32 settings, in the API this torch has."""
    if hasattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision"):
        return torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


OFF = ("ieee", "ieee") if hasattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision") else (False, False)


def test_auto_chooses_per_device_in_use(two_gpus):
    assert not native_bf16(TURING) and native_bf16(AMPERE)
    assert precision_choice("auto", TURING) == (torch.float16, "fp16 (auto: cuda:0, compute capability 7.5, "
                                                               "no native bf16)")
    assert precision_choice("auto", AMPERE) == (torch.bfloat16, "bf16 (auto: cuda:1, compute capability 8.0, "
                                                                "native bf16)")
    assert resolve_precision("auto", AMPERE) is torch.bfloat16


def test_rocm_devices_count_as_native_bf16(two_gpus, monkeypatch):
    monkeypatch.setattr(torch.version, "hip", "6.2")
    assert precision_choice("auto", TURING) == (torch.bfloat16, "bf16 (auto: cuda:0, ROCm, native bf16)")


def test_explicit_choices_are_kept_and_stated(two_gpus):
    assert precision_choice("fp32", AMPERE) == (None, "fp32 (asked for; TF32 off)")
    assert precision_choice("fp16", AMPERE) == (torch.float16, "fp16 (asked for)")
    assert precision_choice("bf16", AMPERE) == (torch.bfloat16, "bf16 (asked for)")
    assert precision_choice("bf16", TURING) == (
        torch.bfloat16, "bf16 (asked for; cuda:0 has no native bf16: emulated, slower than fp16)")
    assert precision_choice("auto", torch.device("cpu")) == (None, "fp32 (auto: cpu)")
    assert precision_choice("fp32", torch.device("cpu")) == (None, "fp32 (asked for)")


@pytest.mark.parametrize(("flags", "emulated"), [
    ({"avx2", "fma"}, {"bf16", "fp16"}),  # an AVX2 CPU (AMD EPYC here): both emulated, about 50x slower than fp32
    ({"avx512f", "avx512_bf16"}, {"fp16"}),
    ({"amx_bf16", "amx_tile", "amx_fp16"}, set()),
    ({"fp", "asimd", "asimdhp", "bf16"}, set()),  # Arm's spellings
    (None, set()),  # flags unknown (no /proc/cpuinfo): nothing claimed
])
def test_reduced_precision_on_a_cpu_without_its_instructions_says_it_is_emulated(monkeypatch, flags, emulated):
    monkeypatch.setattr(devices, "cpu_flags", lambda: None if flags is None else frozenset(flags))
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        chosen, note = precision_choice(name, torch.device("cpu"))
        assert chosen == dtype
        assert ("emulated, many times slower than fp32" in note) == (name in emulated), (name, note)
    assert precision_choice("auto", torch.device("cpu")) == (None, "fp32 (auto: cpu)")


def test_cpu_flags_reads_this_linux_machine():
    flags = devices.cpu_flags()
    if not Path("/proc/cpuinfo").is_file():
        assert flags is None
    else:  # every x86-64 CPU has sse2; every 64-bit Arm one asimd
        assert flags is not None and flags & {"sse2", "asimd"}


def test_the_engine_report_states_the_choice(astronaut, tiny_rgb):
    writer = ArrayWriter(3, (160, 192), np.uint8)
    report = upscale(ArrayReader(astronaut), writer, tiny_rgb, tiny_rgb.spec, Normalization.for_dtype(np.uint8, 3),
                     UpscaleOptions(tile_size=48, batch_size=1, device="cpu", precision="auto"))
    assert (report.precision, report.precision_note) == ("fp32", "fp32 (auto: cpu); channels-last memory (auto: cpu)")


def test_fp32_on_cuda_turns_tf32_off_and_restores_it():
    before = tf32_flags()
    with autocast(torch.device("cuda", 0), None):
        assert tf32_flags() == OFF
        with strict_fp32():  # nested (the trainer's step around the engine's forward)
            assert tf32_flags() == OFF
        assert tf32_flags() == OFF
    assert tf32_flags() == before


def test_fp32_on_cpu_leaves_tf32_settings_alone(monkeypatch):
    def refuse(*_args: object) -> None:
        raise AssertionError("TF32 settings written on a CPU run")

    monkeypatch.setattr(devices._TF32, "_write", refuse)
    with autocast(torch.device("cpu"), None):
        pass


def test_tf32_stays_off_until_the_last_fp32_thread_leaves():
    """Two threads in fp32 at once: the first one out must not switch TF32 back on under the other."""
    before = tf32_flags()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[tuple[object, object]] = []

    def first() -> None:
        with strict_fp32():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with strict_fp32():
            second_in.set()
            first_out.wait(5)
            seen.append(tf32_flags())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == [OFF]
    assert tf32_flags() == before
