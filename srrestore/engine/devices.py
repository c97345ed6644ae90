"""Where the network runs, at which precision, and how much of the device it may use.

Device names: ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``,
``cuda:i``, ``mps``. Precisions: ``auto`` (on CUDA: bf16 where the device in
use computes it natively, compute capability 8.0 or above; fp16 on older GPUs,
where bf16 would only be emulated; fp32 elsewhere), ``fp32``, ``bf16``,
``fp16``. Reduced precision is autocast around the network only;
normalisation and its inverse stay in float32 or higher (invariant I6).
``fp32`` means IEEE float32: on CUDA, TF32 is off for matmuls and cuDNN
convolutions while the network runs (:func:`strict_fp32`).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import weakref
from pathlib import Path
from typing import ContextManager, Iterator

import torch
from torch import nn

from srrestore.errors import ConfigError, check_choice

__all__ = [
    "resolve_device",
    "resolve_precision",
    "precision_choice",
    "native_bf16",
    "cpu_flags",
    "precision_name",
    "autocast",
    "strict_fp32",
    "is_out_of_memory",
    "release_cached_memory",
    "to_device",
    "free_memory",
    "forward_bytes_per_pixel",
    "auto_tile_and_batch",
]

DEVICE_KINDS = ("auto", "cpu", "cuda", "mps")
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# CPU feature flags (Linux /proc/cpuinfo; x86 then Arm spellings) under which oneDNN computes the
# reduced precision natively; without them it is emulated. On a 2-core AVX2 AMD EPYC bf16 autocast
# ran the RGB x4 built-in at 0.02 output MP/s against 0.98 in fp32 (128 px, one thread, docs/results/speed.md).
NATIVE_CPU_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16", "bf16"), "fp16": ("avx512_fp16", "amx_fp16", "asimdhp")}

# Share of the free memory one forward may use, and the largest tile / batch chosen automatically.
CPU_MEMORY_SHARE = 0.25
CPU_MEMORY_CAP = 1 << 30  # bytes: keeps peak RSS near 1.5 GB on big hosts
ACCELERATOR_MEMORY_SHARE = 0.6
MAX_AUTO_TILE = 1024  # LR pixels per side
MAX_AUTO_BATCH = {"cpu": 1, "default": 16}
TILE_ALIGNMENT = 16  # auto tiles are multiples of 16 LR px, so output windows stay block-aligned (G9)
# CPU estimate of a forward's peak memory, fitted (rounded up) to the peak RSS of no-grad
# channels-last forwards on 384 and 640 px inputs: 2.0-2.5 kB per input pixel for the 32-feature
# built-ins (rgb x4, grey x2, slice x4), whose largest module output (the attention's projection)
# is 384 B; 3.9-5.2 kB for srgan-large (768 B). The body's feature maps dominate; the upsampler
# keeps a few output-sized tensors (shuffle, skip, sum) once the body's maps are freed.
ACTIVATION_FACTOR = 7.0  # times the largest module output
OUTPUT_FACTOR = 4.0  # times the network's output

# Probe results per network object and probe setting: the probe costs a forward pass, which
# dominates small images, and activation sizes depend on the architecture only, not the weights.
_PROBED: weakref.WeakKeyDictionary[nn.Module, dict[tuple[object, ...], float]] = weakref.WeakKeyDictionary()
# One probe at a time: a CUDA probe reads the device's peak-allocation counter, which concurrent
# forwards (other threads of a Dask worker) would raise, and each network is probed only once.
_PROBE_LOCK = threading.Lock()


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str) -> torch.device:
    """Turn a device option into a ``torch.device``.

    Args:
        name: ``auto``, ``cpu``, ``cuda``, ``cuda:i`` or ``mps``.

    Raises:
        ConfigError: the name is unknown or the device is not available here.
    """
    kind, _, index = str(name).strip().lower().partition(":")
    kind = check_choice("device", kind, DEVICE_KINDS)
    if index and kind != "cuda":
        raise ConfigError(f"device {name!r}: only cuda takes an index (cuda:0, cuda:1...)")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not _mps_available():
            raise ConfigError(f"device {name!r} asked for but MPS is not available on this machine")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but CUDA is not available on this machine")
    if not index:
        return torch.device("cuda", torch.cuda.current_device())
    if not index.isdigit() or int(index) >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", int(index))


def native_bf16(device: torch.device) -> bool:
    """Whether CUDA ``device`` computes bf16 natively: compute capability 8.0 or above (Ampere and later).

    ``torch.cuda.is_bf16_supported()`` would answer for the current device, not
    ``device``, and by default counts emulated bf16 too (T4, V100: slower than
    fp16). This is its ``including_emulation=False`` rule, asked of ``device``.
    ROCm devices all count as native, as torch counts them.
    """
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device) >= (8, 0)


def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags (``flags`` on x86, ``Features`` on Arm) from Linux's /proc/cpuinfo,
    or None where that cannot be read (other systems)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def precision_choice(name: str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """The autocast dtype for a precision option on ``device`` (None: fp32), and one line saying why.

    Args:
        name: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        device: the device the network runs on (``auto`` depends on it).

    Returns:
        ``(dtype, note)``, e.g. ``(torch.float16, "fp16 (auto: cuda:1, compute capability 7.5,
        no native bf16)")``.

    Raises:
        ConfigError: the name is unknown.
    """
    choice = check_choice("precision", name, ("auto", *PRECISIONS))
    strict = "; TF32 off" if device.type == "cuda" else ""
    if choice != "auto":
        note = f"{choice} (asked for{strict if choice == 'fp32' else ''})"
        if choice == "bf16" and device.type == "cuda" and not native_bf16(device):
            note = f"bf16 (asked for; {device} has no native bf16: emulated, slower than fp16)"
        flags = cpu_flags() if device.type == "cpu" and choice in NATIVE_CPU_FLAGS else None
        if flags is not None and not flags & set(NATIVE_CPU_FLAGS[choice]):
            note = (f"{choice} (asked for; this CPU has no {' or '.join(NATIVE_CPU_FLAGS[choice][:2])}: emulated, "
                    "many times slower than fp32)")
        return PRECISIONS[choice], note
    if device.type != "cuda":
        return None, f"fp32 (auto: {device.type}{strict})"
    capability = "ROCm" if torch.version.hip else "compute capability {}.{}".format(
        *torch.cuda.get_device_capability(device))
    if native_bf16(device):
        return torch.bfloat16, f"bf16 (auto: {device}, {capability}, native bf16)"
    return torch.float16, f"fp16 (auto: {device}, {capability}, no native bf16)"


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """Turn a precision option into the autocast dtype (None: plain fp32); see :func:`precision_choice`.

    Raises:
        ConfigError: the name is unknown.
    """
    return precision_choice(name, device)[0]


def precision_name(dtype: torch.dtype | None) -> str:
    """The option spelling of an autocast dtype (``None`` -> ``"fp32"``)."""
    return next(name for name, value in PRECISIONS.items() if value == dtype)


def autocast(device: torch.device, dtype: torch.dtype | None) -> ContextManager[object]:
    """The precision context for the network's forward on ``device``.

    Autocast to ``dtype``; for fp32 (``dtype`` None) no autocast, and on CUDA
    TF32 off (:func:`strict_fp32`); a no-op for fp32 elsewhere.
    """
    if dtype is None:
        return strict_fp32() if device.type == "cuda" else contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class _TF32Switch:
    """Turns TF32 off for CUDA matmuls and cuDNN convolutions while at least one user is inside.

    The flags are process-wide: the first thread in saves them and turns TF32
    off, the last one out puts the saved values back, so fp32 runs in several
    threads (Dask workers) never see TF32 come back under them, and nothing
    changes for the rest of the process once they are done.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved: tuple[object, object] | None = None

    @staticmethod
    def _new_api() -> bool:
        """torch >= 2.9 sets TF32 per backend with ``fp32_precision``; mixing it with ``allow_tf32`` raises."""
        return hasattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision")

    def _read(self) -> tuple[object, object]:
        if self._new_api():
            return torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
        return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32

    def _write(self, matmul: object, convolution: object) -> None:
        if self._new_api():
            torch.backends.cuda.matmul.fp32_precision = matmul
            torch.backends.cudnn.conv.fp32_precision = convolution
        else:
            torch.backends.cuda.matmul.allow_tf32 = matmul
            torch.backends.cudnn.allow_tf32 = convolution

    @contextlib.contextmanager
    def off(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._saved = self._read()
                self._write(*(("ieee", "ieee") if self._new_api() else (False, False)))
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._saved is not None:
                    self._write(*self._saved)
                    self._saved = None


_TF32 = _TF32Switch()


def strict_fp32() -> ContextManager[None]:
    """TF32 off for CUDA matmuls and cuDNN convolutions while inside (Ampere+ would otherwise
    round their inputs to 10-bit mantissas: about 5e-4 relative error). Thread-safe and
    re-entrant; the previous settings come back when the last user leaves."""
    return _TF32.off()


def is_out_of_memory(error: BaseException) -> bool:
    """True for an out-of-memory error raised by torch on a device or the host."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(error, oom_type):
        return True
    message = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``; the copy is asynchronous only from pinned host memory to CUDA.

    From pageable memory, or to MPS, a non-blocking copy may read its source after
    the caller has moved on (MPS copies from non-pinned memory asynchronously).
    """
    return tensor.to(device, non_blocking=device.type == "cuda" and tensor.is_pinned())


def release_cached_memory(device: torch.device) -> None:
    """Give the allocator's cached, unused blocks back after an out-of-memory error (CUDA, MPS)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def _host_available_bytes() -> int:
    """Available host memory, honouring a cgroup (container) limit."""
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    limit, current = Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")
    if limit.is_file() and current.is_file():
        text = limit.read_text().strip()
        if text.isdigit():
            available = min(available, int(text) - int(current.read_text().strip()))
    return max(available, 0)


def free_memory(device: torch.device) -> int:
    """Bytes one forward pass may use on ``device`` (a share of what is free now)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(ACCELERATOR_MEMORY_SHARE * (free + cached))
    if device.type == "mps":
        free = torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
        return int(ACCELERATOR_MEMORY_SHARE * max(free, 0))
    return int(min(CPU_MEMORY_SHARE * _host_available_bytes(), CPU_MEMORY_CAP))


def forward_bytes_per_pixel(
    network: nn.Module, channels: int, ndim: int, device: torch.device, dtype: torch.dtype | None, probe: int
) -> float:
    """Memory one input pixel costs during a no-grad forward.

    On CUDA the peak allocation of a probe forward is measured. Torch keeps no
    allocator statistics for the CPU, so there it is estimated from the probe's
    module outputs: :data:`ACTIVATION_FACTOR` times the largest one plus
    :data:`OUTPUT_FACTOR` times the network's output (upsampling stages keep
    several output-sized tensors alive).

    Args:
        network: the network, already on ``device``.
        channels: input channels ``C`` of the network.
        ndim: spatial dimensions the network takes (2 for ``(B, C, H, W)``).
        device: where it runs.
        dtype: autocast dtype or None.
        probe: side of the ``(1, C, probe, ...)`` probe input, in pixels.

    Returns:
        Bytes per input pixel (per sample of a batch); measured once per network
        object and setting, then remembered. Probes run one at a time.
    """
    key = (channels, ndim, str(device), dtype, probe)
    with _PROBE_LOCK:
        known = _PROBED.setdefault(network, {})
        if key not in known:
            known[key] = _probe_bytes_per_pixel(network, channels, ndim, device, dtype, probe)
        return known[key]


def _probe_bytes_per_pixel(
    network: nn.Module, channels: int, ndim: int, device: torch.device, dtype: torch.dtype | None, probe: int
) -> float:
    """One probe forward for :func:`forward_bytes_per_pixel`."""
    sample = torch.zeros((1, channels) + (probe,) * ndim, device=device)
    pixels = float(probe**ndim)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        with torch.no_grad(), autocast(device, dtype):
            network(sample)
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / pixels
    largest = [sample.element_size() * sample.numel()]

    def record(_module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            largest[0] = max(largest[0], output.element_size() * output.numel())

    hooks = [module.register_forward_hook(record) for module in network.modules()]
    try:
        with torch.no_grad(), autocast(device, dtype):
            output = network(sample)
    finally:
        for hook in hooks:
            hook.remove()
    return (ACTIVATION_FACTOR * largest[0] + OUTPUT_FACTOR * output.element_size() * output.numel()) / pixels


def auto_tile_and_batch(
    bytes_per_pixel: float,
    budget: int,
    halo: int,
    extent: tuple[int, ...],
    multiple: int,
    device: torch.device,
    tile_size: int | None,
    batch_size: int | None,
    pad_edges: bool = False,
) -> tuple[int, int]:
    """Pick the tile side and the batch size that fit ``budget``.

    An image whose window fits the budget whole is one tile: without
    ``pad_edges`` that window is the image itself, with no halo to compute
    (windows stop at the image's edges). Otherwise the tile is the largest
    multiple of ``lcm(16, multiple)`` (at most :data:`MAX_AUTO_TILE`) whose
    padded window fits, then evened out so the image's longest side splits
    into equal tiles (512 px with a 352 px limit gives two 256 px tiles, not
    352 + 160). The batch then fills the budget with windows (at most 1 on
    CPU, where batching does not speed up).

    Args:
        bytes_per_pixel: from :func:`forward_bytes_per_pixel`.
        budget: bytes one forward may use (:func:`free_memory`).
        halo: LR pixels read around each tile, per side.
        extent: LR size of the image along the axes the network sees.
        multiple: the network's ``size_multiple``.
        device: where it runs.
        tile_size, batch_size: values the user fixed (kept), or None.
        pad_edges: windows reach past the image's edges by the halo (:class:`~srrestore.engine.grid.Layout`).

    Returns:
        ``(tile_size, batch_size)``.
    """
    ndim = len(extent)
    pixels = budget / max(bytes_per_pixel, 1.0)
    if tile_size is None:
        step = TILE_ALIGNMENT * multiple // math.gcd(TILE_ALIGNMENT, multiple)
        whole = math.prod(n + 2 * halo if pad_edges else n for n in extent)
        if whole <= pixels and max(extent) <= MAX_AUTO_TILE:
            tile_size = -(-max(extent) // step) * step
        else:
            side = int(pixels ** (1.0 / ndim)) - 2 * halo
            largest = max(step, min(MAX_AUTO_TILE, side) // step * step)
            count = -(-max(extent) // largest)  # tiles per side; then balance them
            tile_size = -(-(-(-max(extent) // count)) // step) * step
    if batch_size is None:
        window = math.prod(min(tile_size, n) + 2 * halo for n in extent)
        limit = MAX_AUTO_BATCH.get(device.type, MAX_AUTO_BATCH["default"])
        batch_size = int(max(1, min(limit, pixels // window)))
    return tile_size, batch_size
