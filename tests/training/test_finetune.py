"""The fine-tuning core on real photographs: channel adaptation, valid patches, the loop, its budget and outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from srrestore.errors import CheckpointError, ConfigError, UnsupportedInputError, WeightsUnavailableError
from srrestore.models.checkpoint import load_generator, read_checkpoint_info, save_generator
from srrestore.models.generator import create_generator
from srrestore.models.surgery import adapt_channels
from srrestore.training.degradation import Degradation
from srrestore.training.finetune import FinetuneOptions, finetune, load_pretrained
from srrestore.training.patches import FinetuneImage, HoldoutBand, ValidPatches, holdout_band, valid_positions

SCALE = (4, 4)
FAST = {"steps": 40, "batch_size": 4, "patch_size": 32, "learning_rate": 2e-3, "perceptual_weight": 0.0,
        "adversarial": False, "progress": False, "device": "cpu", "holdout_fraction": 0.25}


def unit(image: np.ndarray) -> np.ndarray:
    """A uint8 photo as ``(C, H, W)`` float32 in [0, 1] (the dtype-range normalisation)."""
    image = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)
    return (image / 255.0).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_rgb(tmp_path_factory):
    torch.manual_seed(0)
    return save_generator(tmp_path_factory.mktemp("models") / "tiny-rgb.safetensors",
                          create_generator("test-tiny", in_channels=3, scale=SCALE))


@pytest.fixture(scope="module")
def coffee() -> np.ndarray:
    return unit(data.coffee()[100:228, 200:328])


def test_adapted_generator_gives_the_pretrained_grey_output_on_equal_bands():
    torch.manual_seed(0)
    rgb = create_generator("test-tiny", in_channels=3, scale=SCALE).eval()
    grey_image = torch.from_numpy(unit(data.camera()[200:224, 200:232]))[None]  # (1, 1, 24, 32)
    expected = rgb(grey_image.expand(-1, 3, -1, -1)).mean(dim=1, keepdim=True)
    for channels in (1, 4):
        adapted = adapt_channels(rgb, channels).eval()
        assert adapted.config.in_channels == adapted.config.out_channels == channels
        output = adapted(grey_image.expand(-1, channels, -1, -1))
        torch.testing.assert_close(output, expected.expand(-1, channels, -1, -1), atol=1e-5, rtol=1e-5)
    grey = adapt_channels(rgb, 1).eval()
    from_grey = adapt_channels(grey, 4).eval()  # a 1-channel model gives its own output to every band
    torch.testing.assert_close(from_grey(grey_image.expand(-1, 4, -1, -1)), grey(grey_image).expand(-1, 4, -1, -1),
                               atol=1e-5, rtol=1e-5)
    distinct = torch.from_numpy(unit(data.astronaut()[:24, :32]))[None]
    assert not torch.allclose(adapt_channels(rgb, 3)(distinct), adapt_channels(grey, 3)(distinct))


def test_valid_positions_match_a_brute_force_count_on_a_real_mask():
    valid = data.camera()[100:180, 60:150] > 60
    for fraction in (1.0, 0.75):
        found = {tuple(p) for p in valid_positions(valid, 16, (4, 2), fraction)}
        expected = {(top, left) for top in range(0, 80 - 16 + 1, 4) for left in range(0, 90 - 16 + 1, 2)
                    if valid[top : top + 16, left : left + 16].mean() >= fraction}
        assert found == expected and expected
    assert valid_positions(valid[:8], 16, (4, 4)).shape == (0, 2)


@pytest.mark.parametrize("paired", [False, True])
def test_patches_never_contain_nodata_even_through_the_degradation_margin(coffee, paired):
    hr = coffee.copy()
    valid = np.ones(hr.shape[1:], bool)
    valid[40:90, 30:100] = False
    hr[:, ~valid] = 1e6
    hr[:, 60, 60] = np.nan
    degradation = Degradation(scale=SCALE, kernel="area", blur_sigma=(0.0, 2.0), noise="gaussian",
                              noise_sigma=0.01, clip=False)
    if paired:
        lr = degradation.apply(coffee, np.random.default_rng(0), None)
        lr_valid = np.ones(lr.shape[1:], bool)
        lr_valid[:5] = False
        lr[:, :5] = -1e6
        image = FinetuneImage("coffee", hr, valid, lr=lr, lr_valid=lr_valid)
    else:
        image = FinetuneImage("coffee", hr, valid)
    patches = ValidPatches([image], 32, SCALE, None if paired else degradation, seed=3)
    lr, hr_patches = patches.batch(range(300))
    assert lr.shape == (300, 3, 8, 8) and hr_patches.shape == (300, 3, 32, 32)
    assert torch.isfinite(lr).all() and torch.isfinite(hr_patches).all()
    assert lr.abs().max() < 2 and hr_patches.abs().max() <= 1
    # Positions cover the valid area only: no patch overlaps the invalid block or (paired) the invalid LR rows.
    for top, left in patches._sources[0].positions:
        assert valid[top : top + 32, left : left + 32].all()
        assert not paired or top >= 20


def test_patches_refuse_images_without_a_valid_patch_and_mismatched_pairs(coffee):
    valid = np.zeros(coffee.shape[1:], bool)
    valid[:20] = True
    with pytest.raises(ConfigError, match="no 32-pixel patch with at least 100% valid pixels in coffee"):
        ValidPatches([FinetuneImage("coffee", coffee, valid)], 32, SCALE, Degradation(scale=SCALE))
    with pytest.raises(UnsupportedInputError, match="paired LR of shape"):
        ValidPatches([FinetuneImage("coffee", coffee, lr=coffee[:, ::2, ::2])], 32, SCALE, None)
    with pytest.raises(ConfigError, match="patch size 30"):
        ValidPatches([FinetuneImage("coffee", coffee)], 30, SCALE, Degradation(scale=SCALE))


def test_held_out_band_keeps_training_inputs_away_from_it(coffee):
    image = coffee[:, :, :100]  # 128 x 100: the band runs along the rows (the longer axis)
    degradation = Degradation(scale=SCALE, kernel="area", blur_sigma=2.0, clip=False)
    patches = ValidPatches([FinetuneImage("coffee", image)], 32, SCALE, degradation, holdout_fraction=0.25)
    band = holdout_band(image.shape[1:], 32, SCALE, patches.margin_hr, 0.25)
    assert band == HoldoutBand(axis=0, start=96, patch_size=32) and patches.margin_hr[0] > 0
    source = patches._sources[0]
    # No training input (patch plus the degradation's margin) reads a held-out row; every held-out patch lies in the band.
    assert (source.positions[:, 0] + 32 + patches.margin_hr[0] <= 96).all() and len(source.positions)
    assert (source.holdout[:, 0] >= 96).all() and patches.num_holdout == len(source.holdout) > 0
    lr, hr = patches.holdout_batch(8)
    assert lr.shape == (8, 3, 8, 8) and hr.shape == (8, 3, 32, 32)
    hr_band = torch.from_numpy(image[:, 96:])
    for patch in hr:  # each held-out target is a window of the band, not augmented
        windows = hr_band.unfold(1, 32, 1).unfold(2, 32, 1)  # (C, rows, columns, 32, 32)
        assert ((windows - patch[:, None, None]).abs().amax(dim=(0, 3, 4)) == 0).any()
    torch.testing.assert_close(patches.holdout_batch(8), (lr, hr))


def test_small_images_are_validated_on_smaller_patches_than_they_train_on(coffee):
    patches = ValidPatches([FinetuneImage("coffee", coffee[:, :100])], 64, SCALE, Degradation(scale=SCALE),
                           holdout_fraction=0.1)
    assert patches.holdout_size == 32
    assert (patches._sources[0].positions[:, 1] + 64 <= 96).all() and (patches._sources[0].holdout[:, 1] >= 96).all()
    lr, hr = patches.holdout_batch(4)
    assert lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 32, 32)
    assert patches.batch([0, 1])[1].shape == (2, 3, 64, 64)


def test_images_too_small_for_a_band_train_in_full_and_say_so(coffee):
    small = FinetuneImage("small", coffee[:, :48, :48])
    assert holdout_band((48, 48), 32, SCALE, (0, 0), 0.4) is None  # no 32-pixel training patch before the band
    assert holdout_band((100, 100), 32, SCALE, (0, 0), 0.1) is None  # the smallest patch: a third, not a tenth
    # A small image holds out a quarter with validation patches of 8 LR pixels; a large one its share, training-sized.
    assert holdout_band((100, 128), 64, SCALE, (0, 0), 0.1) == HoldoutBand(axis=1, start=96, patch_size=32)
    assert holdout_band((2048, 512), 64, SCALE, (0, 4), 0.1) == HoldoutBand(axis=0, start=1840, patch_size=64)
    patches = ValidPatches([small], 32, SCALE, Degradation(scale=SCALE), holdout_fraction=0.1)
    assert patches.num_holdout == 0 and patches.num_positions == len(valid_positions(np.ones((48, 48), bool), 32, SCALE))
    with pytest.raises(ConfigError, match="no held-out patches"):
        patches.holdout_batch(4)
    with pytest.raises(ConfigError, match="holdout_fraction"):
        ValidPatches([small], 32, SCALE, Degradation(scale=SCALE), holdout_fraction=1.0)


def test_finetuning_never_saves_weights_worse_than_the_pretrained_ones_on_held_out_patches(tmp_path, tiny_rgb, coffee):
    options = FinetuneOptions(model=str(tiny_rgb), **{**FAST, "steps": 20, "learning_rate": 1.0,
                                                      "validation_interval": 5})
    pretrained = load_pretrained(options, 3)
    start = {name: value.clone() for name, value in pretrained.generator.state_dict().items()}
    output = tmp_path / "diverged.safetensors"
    report = finetune(pretrained, [FinetuneImage("coffee", coffee)], output, options,
                      Degradation(scale=SCALE, kernel="area", clip=False))
    assert report.evaluated_on == "held-out" and report.steps == 20
    assert report.evaluation["last"]["psnr"] < report.evaluation["pretrained"]["psnr"]  # a learning rate of 1 diverges
    assert report.best_step == 0 and report.evaluation["finetuned"] == report.evaluation["pretrained"]
    assert any("the saved model is the pretrained one" in note for note in report.notes)
    saved, info = load_generator(output)
    for name, value in saved.state_dict().items():
        torch.testing.assert_close(value, start[name])
    assert info.training["selection"]["best_step"] == 0 and info.phase == "psnr"


def test_patience_stops_a_run_whose_held_out_score_stops_improving(tmp_path, tiny_rgb, coffee):
    options = FinetuneOptions(model=str(tiny_rgb), **{**FAST, "steps": 1000, "learning_rate": 1.0,
                                                      "validation_interval": 5, "patience": 2})
    report = finetune(load_pretrained(options, 3), [FinetuneImage("coffee", coffee)], tmp_path / "m.safetensors",
                      options, Degradation(scale=SCALE, kernel="area", clip=False))
    assert report.stopped_early and not report.stopped_by_time
    assert report.steps == 10 and report.best_step == 0  # scores at steps 5 and 10 did not beat the start
    assert read_checkpoint_info(tmp_path / "m.safetensors").training["stopped_by"] == "patience"


def test_finetuning_lowers_the_pixel_loss_and_records_the_run(tmp_path, tiny_rgb, coffee):
    options = FinetuneOptions(model=str(tiny_rgb), **FAST)
    pretrained = load_pretrained(options, 3)
    output = tmp_path / "tuned.safetensors"
    report = finetune(pretrained, [FinetuneImage("coffee.png", coffee)], output, options,
                      Degradation(scale=SCALE, kernel="area", clip=False), card={"normalization": {"method": "x"}})
    assert report.steps == 40 and not report.stopped_by_time and report.phase == "psnr"
    assert report.evaluated_on == "held-out" and 0 < report.best_step <= 40
    assert report.evaluation["finetuned"]["l1"] < 0.8 * report.evaluation["pretrained"]["l1"]
    assert report.last_losses["pixel"] < report.first_losses["pixel"]
    info = read_checkpoint_info(output)
    assert info.training["kind"] == "finetune" and info.training["steps"] == info.training["planned_steps"] == {"pretrain": 40, "gan": 0}
    assert info.training["data"] == ["coffee.png"] and info.training["pretrained"]["name"] == "tiny-rgb.safetensors"
    assert info.card["normalization"] == {"method": "x"} and info.card["channels"] == 3
    generator, _ = load_generator(output)
    assert generator.config.in_channels == 3


def test_the_time_budget_stops_the_run_cleanly_and_still_saves(tmp_path, tiny_rgb, coffee):
    # 6 s: room for setup and a first step on a busy machine, far below 100 000 steps.
    options = FinetuneOptions(model=str(tiny_rgb), **{**FAST, "steps": 100_000, "max_minutes": 0.1})
    output = tmp_path / "budget.safetensors"
    report = finetune(load_pretrained(options, 3), [FinetuneImage("coffee", coffee)], output, options,
                      Degradation(scale=SCALE, kernel="area"))
    assert report.stopped_by_time and 0 < report.steps < 100_000
    assert report.seconds < 6 + 10  # the 6 s budget plus saving (a step never starts past it)
    assert read_checkpoint_info(output).training["stopped_by"] == "time budget"


def test_adversarial_and_perceptual_losses_train_a_gan_phase_model(tmp_path, tiny_rgb, coffee):
    options = FinetuneOptions(model=str(tiny_rgb), **{**FAST, "steps": 3, "adversarial": True,
                                                      "perceptual_weight": 0.01, "discriminator_features": 8})
    report = finetune(load_pretrained(options, 3), [FinetuneImage("coffee", coffee)], tmp_path / "gan.safetensors",
                      options, Degradation(scale=SCALE, kernel="area"))
    assert report.phase == "gan" and {"pixel", "content", "adversarial", "discriminator"} <= set(report.last_losses)
    assert any("random VGG19 features" in note for note in report.notes)
    assert "random weights" in read_checkpoint_info(tmp_path / "gan.safetensors").card["losses"]["perceptual"]


def test_a_one_channel_start_is_adapted_to_the_data_and_noted(tmp_path, tiny_rgb):
    pretrained = load_pretrained(FinetuneOptions(model=str(tiny_rgb)), 4)
    assert pretrained.channels == 4 and pretrained.adapted_from == 3 and pretrained.scale == SCALE


def test_options_and_models_are_checked_with_one_line_errors(tmp_path, tiny_rgb, monkeypatch, coffee):
    with pytest.raises(ConfigError, match="invalid fine-tuning option max_minutes: 0"):
        FinetuneOptions(max_minutes=0)
    with pytest.raises(ConfigError, match="did you mean 'imagenet'"):
        FinetuneOptions(vgg_weights="imagenett")
    with pytest.raises(ConfigError, match="weights are all 0"):
        FinetuneOptions(pixel_weight=0, perceptual_weight=0, adversarial=False)
    with pytest.raises(ConfigError, match="did you mean 'steps'"):
        FinetuneOptions.from_kwargs(stpes=3)
    with pytest.raises(ConfigError, match="upscales by 4x4, not 2"):
        load_pretrained(FinetuneOptions(model=str(tiny_rgb), scale=2), 3)
    with pytest.raises(CheckpointError, match="neither a built-in model nor a file"):
        load_pretrained(FinetuneOptions(model=str(tmp_path / "missing.safetensors")), 3)
    options = FinetuneOptions(model=str(tiny_rgb), **FAST)
    with pytest.raises(ConfigError, match="ending in .safetensors"):
        finetune(load_pretrained(options, 3), [FinetuneImage("coffee", coffee)], tmp_path / "m.pth", options, None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    imagenet = FinetuneOptions(model=str(tiny_rgb), **{**FAST, "perceptual_weight": 0.01, "vgg_weights": "imagenet"})
    with pytest.raises(WeightsUnavailableError, match="allow_download"):
        finetune(load_pretrained(imagenet, 3), [FinetuneImage("coffee", coffee)], tmp_path / "m.safetensors",
                 imagenet, Degradation(scale=SCALE))
    assert not (tmp_path / "m.safetensors").exists()


def test_radimagenet_features_from_the_hub_cache_train_and_are_recorded(tmp_path, tiny_rgb, fake_monai_hub):
    grey = unit(data.camera()[100:228, 100:228])  # one channel, like a medical slice
    options = FinetuneOptions(model=str(tiny_rgb), **{**FAST, "steps": 3, "perceptual_weight": 0.01,
                                                      "perceptual_network": "RadImageNet_ResNet50"})
    assert options.perceptual_network == "radimagenet_resnet50"
    assert options.loss_config().content == "radimagenet_resnet50" and FinetuneOptions().loss_config().content == "none"
    assert FinetuneOptions(perceptual_weight=0.01).loss_config().content == "vgg"
    output = tmp_path / "radimagenet.safetensors"
    report = finetune(load_pretrained(options, 1), [FinetuneImage("camera", grey)], output, options,
                      Degradation(scale=SCALE, kernel="area"))
    assert report.steps == 3 and report.last_losses["content"] > 0
    assert any("RadImageNet ResNet50" in note and str(fake_monai_hub) in note for note in report.notes)
    assert not any("VGG19" in note for note in report.notes)
    info = read_checkpoint_info(output)
    assert info.card["losses"]["perceptual"] == ("RadImageNet ResNet50 (MONAI PerceptualLoss, torch hub "
                                                 "Project-MONAI/perceptual-models) x 0.01")
    assert info.training["options"]["perceptual_network"] == "radimagenet_resnet50"


def test_radimagenet_without_the_hub_cache_or_in_3d_is_refused(tmp_path, tiny_rgb, monkeypatch):
    with pytest.raises(ConfigError, match="'medicalnet_resnet10_23datasets' is a 3-D MedicalNet and fine-tuning "
                                          "trains on 2-D patches"):
        FinetuneOptions(perceptual_network="medicalnet_resnet10_23datasets")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    options = FinetuneOptions(model=str(tiny_rgb), **{**FAST, "perceptual_weight": 0.01,
                                                      "perceptual_network": "radimagenet_resnet50"})
    output = tmp_path / "m.safetensors"
    with pytest.raises(WeightsUnavailableError, match="--allow-download"):
        finetune(load_pretrained(options, 1), [FinetuneImage("camera", unit(data.camera()[:128, :128]))], output,
                 options, Degradation(scale=SCALE))
    assert not output.exists() and not (tmp_path / "empty-cache").exists()


def test_without_room_for_a_held_out_band_the_report_says_the_scores_are_on_training_patches(tmp_path, tiny_rgb,
                                                                                              coffee):
    options = FinetuneOptions(model=str(tiny_rgb), **{**FAST, "steps": 10, "holdout_fraction": 0.1})
    report = finetune(load_pretrained(options, 3), [FinetuneImage("coffee", coffee[:, :96, :96])],
                      tmp_path / "m.safetensors", options, Degradation(scale=SCALE, kernel="area", clip=False))
    assert report.evaluated_on == "training"
    assert any("too small to hold out a band" in note for note in report.notes)
    assert read_checkpoint_info(tmp_path / "m.safetensors").card["validation_protocol"].startswith("32 fixed training")
