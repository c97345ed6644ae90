"""Resumable states (safetensors + JSON) and the weight EMA."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from srrestore.errors import CheckpointError
from srrestore.models.generator import create_generator
from srrestore.training.ema import ModelEMA
from srrestore.training.state import TrainingState, capture_rng, load_state, restore_rng, save_state


def _trained(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Adam]:
    torch.manual_seed(seed)
    network = create_generator("test-tiny", in_channels=1, scale=2)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3, betas=(0.9, 0.99))
    for _ in range(2):
        optimizer.zero_grad()
        network(torch.rand(2, 1, 8, 8)).square().mean().backward()
        optimizer.step()
    return network, optimizer


def test_state_round_trip_is_bit_exact(tmp_path):
    network, optimizer = _trained()
    state = TrainingState(info={"step": 2, "lr": 0.1 + 0.2, "nested": {"a": [1, None]}},
                          modules={"generator": network.state_dict()}, optimizers={"generator": optimizer.state_dict()},
                          rng=capture_rng())
    loaded = load_state(save_state(tmp_path / "s.safetensors", state))
    assert loaded.info == state.info
    for key, value in network.state_dict().items():
        assert torch.equal(loaded.modules["generator"][key], value)
    original, reloaded = optimizer.state_dict(), loaded.optimizers["generator"]
    assert reloaded["param_groups"][0]["betas"] == [0.9, 0.99]
    assert reloaded["state"].keys() == original["state"].keys()
    for index, values in original["state"].items():
        for key, value in values.items():
            assert torch.equal(reloaded["state"][index][key], value), (index, key)
    # The reloaded optimizer continues exactly like the original.
    twin, twin_optimizer = _trained(seed=1)
    twin.load_state_dict(loaded.modules["generator"])
    twin_optimizer.load_state_dict(reloaded)
    batch = torch.rand(2, 1, 8, 8)
    for model, opt in ((network, optimizer), (twin, twin_optimizer)):
        opt.zero_grad()
        model(batch).square().mean().backward()
        opt.step()
    for (name, a), (_, b) in zip(network.state_dict().items(), twin.state_dict().items()):
        assert torch.equal(a, b), name


def test_rng_state_restores_the_stream():
    saved = capture_rng()
    first = torch.rand(4)
    restore_rng(saved)
    assert torch.equal(torch.rand(4), first)


def test_foreign_or_missing_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_state(tmp_path / "absent.safetensors")
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(other), metadata={"format": "something-else"})
    with pytest.raises(CheckpointError, match="not an srrestore training state"):
        load_state(other)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 32)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_state(garbage)


def test_ema_follows_the_warmed_up_formula():
    network = torch.nn.Linear(2, 1)
    torch.nn.init.constant_(network.weight, 0.0)
    ema = ModelEMA(network, decay=0.9)
    torch.nn.init.constant_(network.weight, 1.0)
    ema.update(network)  # decay min(0.9, 1/10) = 0.1
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 0.9))
    ema.update(network)  # decay min(0.9, 2/11)
    expected = 0.9 + (1 - 0.9) * (1 - 2 / 11)
    assert torch.allclose(ema.module.weight, torch.full((1, 2), expected))
    assert not ema.module.weight.requires_grad and not ema.module.training
    plain = ModelEMA(network, decay=0.5, warmup=False)
    assert plain.current_decay() == 0.5
    restored = ModelEMA(torch.nn.Linear(2, 1), decay=0.9)
    restored.load_state_dict(ema.state_dict())
    assert restored.num_updates == 2 and torch.equal(restored.module.weight, ema.module.weight)
