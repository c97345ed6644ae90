"""Two-phase training on real photographs: loss goes down, checkpoints reload bit-exactly, resume is exact."""

from __future__ import annotations

import json

import pytest
import torch

from srrestore.errors import ConfigError, OutputExistsError
from srrestore.models.checkpoint import load_generator
from srrestore.training.data import PatchDataset, ValidationSet, images_fingerprint
from srrestore.training.state import load_state
from srrestore.training.trainer import Trainer, TrainingOutputs


def _trainer(config, images, folder, resume_from=None, validation=(), overwrite=False, initial=None):
    dataset = PatchDataset(images, config.patch_size, config.degradation, seed=config.seed)
    outputs = TrainingOutputs.beside(folder / "model.safetensors", config.gan_steps, log=folder / "log.jsonl")
    return Trainer(config, dataset, list(validation), outputs, device="cpu", sources=["skimage photos"],
                   data_fingerprint=images_fingerprint(images), resume_from=resume_from, initial=initial,
                   overwrite=overwrite,
                   progress=False)


def _same_weights(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    return all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_two_phase_run_lowers_the_pixel_loss_and_writes_exact_checkpoints(tmp_path, photos, tiny_config):
    images = photos(3)
    config = tiny_config(pretrain_steps=16, gan_steps=3, log_interval=4)
    validation = ValidationSet("held", photos(3)[2:], config.degradation)
    trainer = _trainer(config, images[:2], tmp_path, validation=[validation])
    lr, hr = (torch.stack(items) for items in zip(*(trainer.dataset[1000 + i] for i in range(4))))
    with torch.no_grad():
        before = torch.nn.functional.mse_loss(trainer.generator(lr), hr).item()

    first = trainer.run(stop_after=config.pretrain_steps)
    assert not first.finished and first.step == 16
    psnr_model, psnr_info = load_generator(tmp_path / "model.psnr.safetensors")
    assert _same_weights(psnr_model, trainer.ema.module)
    with torch.no_grad():
        after = torch.nn.functional.mse_loss(psnr_model(lr), hr).item()
        assert torch.equal(psnr_model(lr), trainer.ema.module(lr))
    assert after < 0.7 * before

    result = trainer.run()
    assert result.finished and result.step == 19
    assert trainer.ema.num_updates == 3  # the GAN model averages phase-2 weights only (warm-up restarted)
    gan_model, gan_info = load_generator(tmp_path / "model.safetensors")
    with torch.no_grad():
        assert torch.equal(gan_model(lr), trainer.ema.module(lr))
    assert (psnr_info.phase, gan_info.phase) == ("psnr", "gan")
    summary = gan_info.training
    assert summary["steps"] == {"pretrain": 16, "gan": 3} and summary["data"] == ["skimage photos"]
    assert summary["torch"] == torch.__version__ and summary["device"].startswith("cpu") and summary["seconds"] > 0
    assert summary["recipe"]["generator"] == "test-tiny" and summary["images"] == 2
    assert set(summary["metrics"]["held"]) == {"psnr", "ssim", "bicubic_psnr", "bicubic_ssim"}
    assert gan_info.card["validation"] == summary["metrics"] and gan_info.card["scale"] == "x4"
    assert psnr_info.training["steps"] == {"pretrain": 16, "gan": 0}

    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    train_lines = [r for r in records if r["event"] == "train"]
    assert [r["step"] for r in train_lines] == [4, 8, 12, 16, 19]
    assert train_lines[-2]["pixel"] < train_lines[0]["pixel"]
    assert {"d", "g", "adversarial", "content", "patches_per_s"} <= set(train_lines[-1])
    assert [r["phase"] for r in records if r["event"] == "validation"] == ["psnr", "gan"]


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path, photos, tiny_config):
    images = photos(3)
    config = tiny_config(pretrain_steps=4, gan_steps=3, checkpoint_interval=100)
    reference = _trainer(config, images, tmp_path / "whole")
    reference.run()

    folder = tmp_path / "pieces"
    _trainer(config, images, folder).run(stop_after=2)  # stops inside phase 1
    state = folder / "model.state.safetensors"
    _trainer(config, images, folder, resume_from=load_state(state)).run(stop_after=3)  # crosses into phase 2
    resumed = _trainer(config, images, folder, resume_from=load_state(state))
    assert resumed.step == 5 and resumed.gan_started
    assert resumed.run().finished

    assert _same_weights(resumed.generator, reference.generator)
    assert _same_weights(resumed.ema.module, reference.ema.module)
    assert _same_weights(resumed.adversary.network, reference.adversary.network)
    for name in ("model.safetensors", "model.psnr.safetensors"):
        assert _same_weights(load_generator(folder / name)[0], load_generator(tmp_path / "whole" / name)[0]), name


def test_resume_refuses_another_recipe_or_other_images(tmp_path, photos, tiny_config):
    images = photos(3)
    config = tiny_config()
    _trainer(config, images, tmp_path).run(stop_after=1)
    state = load_state(tmp_path / "model.state.safetensors")
    with pytest.raises(ConfigError, match="different batch_size"):
        _trainer(tiny_config(batch_size=3), images, tmp_path, resume_from=state)
    with pytest.raises(ConfigError, match="images differ"):
        _trainer(config, images[:2], tmp_path, resume_from=state)
    longer = _trainer(tiny_config(gan_steps=4), images, tmp_path, resume_from=state)
    assert longer.run().step == 8


def test_existing_outputs_are_refused_before_training(tmp_path, photos, tiny_config):
    (tmp_path / "model.safetensors").write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="model.safetensors exists"):
        _trainer(tiny_config(), photos(3), tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == b"old"
    assert _trainer(tiny_config(), photos(3), tmp_path, overwrite=True).run().finished


def test_pixel_only_run_writes_one_psnr_model(tmp_path, photos, tiny_config):
    config = tiny_config(gan_steps=0, channels=1, scale="1x4", pretrain_steps=2)
    trainer = _trainer(config, photos(1), tmp_path)
    assert trainer.adversary is None and trainer.outputs.psnr_model == trainer.outputs.model
    trainer.run()
    model, info = load_generator(tmp_path / "model.safetensors")
    assert info.phase == "psnr" and model.config.scale == (1, 4) and model.config.in_channels == 1
    assert not (tmp_path / "model.psnr.safetensors").exists()


def test_initial_model_seeds_the_generator_and_its_ema_and_survives_resume(tmp_path, photos, tiny_config):
    images = photos(3)
    first = _trainer(tiny_config(pretrain_steps=3, gan_steps=0), images, tmp_path / "first")
    first.run()
    initial = load_generator(tmp_path / "first" / "model.safetensors")
    config = tiny_config(pretrain_steps=4, gan_steps=0, checkpoint_interval=2)
    second = _trainer(config, images, tmp_path / "second", initial=initial)
    assert _same_weights(second.generator, initial[0]) and _same_weights(second.ema.module, initial[0])
    second.run(stop_after=2)
    resumed = _trainer(config, images, tmp_path / "second", resume_from=load_state(second.outputs.state))
    resumed.run()
    card = load_generator(tmp_path / "second" / "model.safetensors")[1].card
    assert [entry["steps"]["pretrain"] for entry in card["history"]] == [3, 4]
    assert card["steps"] == {"pretrain": 7, "gan": 0}
