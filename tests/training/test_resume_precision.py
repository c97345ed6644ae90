"""Resuming a run on another device or at another precision: fp16 loss scaling continues or starts afresh.

A GradScaler is enabled only for fp16 on CUDA; a disabled one saves ``{}``, and
torch refuses to load ``{}`` into an enabled one ("source state dict is
empty"). No GPU here: an enabled scaler is torch's CPU GradScaler, which scales
fp32 losses the same way.
"""

from __future__ import annotations

import pytest
import torch

from srrestore.training.data import PatchDataset, images_fingerprint
from srrestore.training.state import load_state
from srrestore.training.trainer import Trainer, TrainingOutputs, load_scaler_state

INITIAL_SCALE = 2.0**16  # GradScaler's default


def _trainer(config, images, folder, resume_from=None):
    dataset = PatchDataset(images, config.patch_size, config.degradation, seed=config.seed)
    outputs = TrainingOutputs.beside(folder / "model.safetensors", config.gan_steps)
    return Trainer(config, dataset, [], outputs, device="cpu", data_fingerprint=images_fingerprint(images),
                   resume_from=resume_from, progress=False)


def test_an_empty_state_leaves_an_enabled_scaler_fresh():
    scaler = torch.amp.GradScaler("cpu")
    with pytest.raises(RuntimeError, match="source state dict is empty"):
        scaler.load_state_dict({})  # what resuming did
    assert not load_scaler_state(scaler, torch.amp.GradScaler("cpu", enabled=False).state_dict())
    assert scaler.is_enabled() and scaler.get_scale() == INITIAL_SCALE


def test_a_saved_scale_continues_only_where_loss_scaling_is_on():
    saved = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7).state_dict()
    enabled = torch.amp.GradScaler("cpu")
    assert load_scaler_state(enabled, saved)
    assert enabled.get_scale() == 1024.0 and enabled.get_growth_interval() == 7
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    assert not load_scaler_state(disabled, saved)
    assert not disabled.is_enabled() and disabled.state_dict() == {}


def test_an_fp32_cpu_run_resumes_with_fp16_loss_scaling_and_back(tmp_path, photos, tiny_config, monkeypatch):
    images = photos(3)
    first = _trainer(tiny_config(precision="fp32"), images, tmp_path)
    assert first.run(stop_after=2).step == 2
    state = load_state(tmp_path / "model.state.safetensors")
    assert state.info["scalers"] == {"generator": {}, "discriminator": {}}

    with monkeypatch.context() as patch:  # the same run resumed on a GPU in fp16
        real = torch.amp.GradScaler
        patch.setattr(torch.amp, "GradScaler", lambda device, enabled: real("cpu", enabled=True))
        scaled = _trainer(tiny_config(precision="fp16"), images, tmp_path, resume_from=state)
        assert scaled.step == 2 and scaled.scaler_g.get_scale() == INITIAL_SCALE
        assert scaled.run(stop_after=3).step == 5  # crosses into phase 2: both scalers step
    state = load_state(tmp_path / "model.state.safetensors")
    assert state.info["recipe"]["precision"] == "fp16"
    assert state.info["scalers"]["generator"]["scale"] > 0 and state.info["scalers"]["discriminator"]

    plain = _trainer(tiny_config(precision="fp32"), images, tmp_path, resume_from=state)  # and back on the CPU
    assert plain.step == 5 and not plain.scaler_g.is_enabled()
    assert plain.run().finished
