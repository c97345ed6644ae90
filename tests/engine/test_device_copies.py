"""Host-to-device copies and the allocator cache after out-of-memory errors, per device type (no GPU needed)."""

from __future__ import annotations

import pytest
import torch

from srrestore.engine.devices import release_cached_memory, to_device


class RecordedTensor:
    """Stands in for a host tensor: records how it is copied."""

    def __init__(self, pinned: bool) -> None:
        self.pinned = pinned
        self.copies: list[tuple[torch.device, bool]] = []

    def is_pinned(self) -> bool:
        return self.pinned

    def to(self, device: torch.device, non_blocking: bool = False) -> "RecordedTensor":
        self.copies.append((device, non_blocking))
        return self


@pytest.mark.parametrize(("device", "pinned", "asynchronous"), [
    ("cuda", True, True),
    ("cuda", False, False),  # pageable memory: a non-blocking copy could read it after it changed
    ("mps", True, False),
    ("mps", False, False),
    ("cpu", False, False),
])
def test_only_pinned_copies_to_cuda_are_asynchronous(device, pinned, asynchronous):
    tensor = RecordedTensor(pinned)
    to_device(tensor, torch.device(device))  # type: ignore[arg-type]
    assert tensor.copies == [(torch.device(device), asynchronous)]


def test_a_real_cpu_tensor_is_returned_as_is():
    values = torch.arange(6.0).reshape(2, 3)[:, 1:]
    assert to_device(values, torch.device("cpu")) is values


@pytest.mark.parametrize("device", ["cuda", "mps", "cpu"])
def test_out_of_memory_recovery_empties_the_device_cache(monkeypatch, device):
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append("cuda"))
    monkeypatch.setattr(torch.mps, "empty_cache", lambda: emptied.append("mps"))
    release_cached_memory(torch.device(device))
    assert emptied == ([] if device == "cpu" else [device])
