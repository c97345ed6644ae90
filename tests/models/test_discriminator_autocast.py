"""The discriminator's spectral norm runs with autocast off, in float32, inside a reduced-precision forward."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from srrestore.models.discriminator import create_discriminator


def test_power_iteration_and_sigma_run_in_float32_outside_autocast(monkeypatch):
    """CPU autocast leaves ``mv`` alone, CUDA autocast casts it to fp16/bf16: record what the
    spectral norm's matrix-vector products see and assert autocast is off around them."""
    seen = []
    real_mv = torch.mv

    def recording_mv(matrix: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        seen.append((torch.is_autocast_enabled("cpu"), matrix.dtype, vector.dtype))
        return real_mv(matrix, vector)

    torch.manual_seed(0)
    discriminator = create_discriminator("test-tiny", in_channels=3).train()
    monkeypatch.setattr(torch, "mv", recording_mv)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = discriminator(torch.rand(2, 3, 32, 32))
    assert logits.dtype == torch.bfloat16  # the convolutions themselves do run in bf16
    assert seen and set(seen) == {(False, torch.float32, torch.float32)}


def test_state_dict_keys_are_those_of_torch_spectral_norm():
    """Training states and discriminator weights saved before keep loading."""
    torch.manual_seed(0)
    reference = spectral_norm(nn.Conv2d(3, 8, 3, padding=1))
    torch.manual_seed(0)
    stem = create_discriminator("test-tiny", in_channels=3).stem[0]
    assert list(stem.state_dict()) == list(reference.state_dict())
    for key, value in reference.state_dict().items():
        assert torch.equal(stem.state_dict()[key], value), key  # same initialisation, same random draws
