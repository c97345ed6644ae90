"""VGG19 layout and weight loading (local file, torch hub URL, cache, refusals),
the perceptual loss on 1/3/6 bands, and discriminator feature matching."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from srrestore.errors import CheckpointError, ConfigError, UnsupportedInputError, WeightsUnavailableError
from srrestore.losses.perceptual import (
    VGG19,
    VGG19_IMAGENET_URL,
    VGG19_LAYERS,
    FeatureMatchingLoss,
    PerceptualLoss,
    load_vgg19,
    resolve_vgg_weights,
)

# torchvision.models.vgg19().features: index of every conv and its (out, in) channels.
TORCHVISION_CONVS = {
    0: (64, 3), 2: (64, 64),
    5: (128, 64), 7: (128, 128),
    10: (256, 128), 12: (256, 256), 14: (256, 256), 16: (256, 256),
    19: (512, 256), 21: (512, 512), 23: (512, 512), 25: (512, 512),
    28: (512, 512), 30: (512, 512), 32: (512, 512), 34: (512, 512),
}  # fmt: skip


@pytest.fixture(scope="module")
def torchvision_state() -> dict[str, torch.Tensor]:
    """A torchvision-format VGG19 state dict of random tensors (classifier keys kept small)."""
    generator = torch.Generator().manual_seed(42)
    state = {}
    for index, (out_channels, in_channels) in TORCHVISION_CONVS.items():
        state[f"features.{index}.weight"] = torch.randn(out_channels, in_channels, 3, 3, generator=generator)
        state[f"features.{index}.bias"] = torch.randn(out_channels, generator=generator)
    for index in (0, 3, 6):  # ignored by the loader; real shapes would be (4096, 25088) ...
        state[f"classifier.{index}.weight"] = torch.randn(4, 4, generator=generator)
        state[f"classifier.{index}.bias"] = torch.randn(4, generator=generator)
    return state


@pytest.fixture(scope="module")
def torchvision_file(torchvision_state, tmp_path_factory) -> Path:
    """``torchvision_state`` saved with ``torch.save``, named ``vgg19-<sha256[:8]>.pth`` like torchvision's."""
    folder = tmp_path_factory.mktemp("published")
    path = folder / "vgg19.pth"
    torch.save(torchvision_state, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return path.rename(folder / f"vgg19-{digest[:8]}.pth")


def assert_features_equal(model: VGG19, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert sorted(loaded) == sorted(key for key in state if key.startswith("features."))
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.training


def evil_pickle(path: Path, marker: Path) -> Path:
    """A ``.pth`` whose unpickling would create ``marker`` (a directory)."""

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    torch.save({"features.0.weight": Payload()}, path)
    return path


def test_layers_follow_torchvisions_indices():
    model = VGG19(device="meta")
    assert len(model.features) == len(VGG19_LAYERS) == 37
    convs = {i: (m.out_channels, m.in_channels) for i, m in enumerate(model.features) if isinstance(m, nn.Conv2d)}
    assert convs == TORCHVISION_CONVS
    named = [VGG19_LAYERS[i] for i in (0, 1, 4, 34, 35, 36)]
    assert named == ["conv1_1", "relu1_1", "pool1", "conv5_4", "relu5_4", "pool5"]
    assert all(isinstance(model.features[VGG19_LAYERS.index(f"pool{b}")], nn.MaxPool2d) for b in range(1, 6))


def test_local_pth_and_safetensors_load_exactly(torchvision_state, torchvision_file, tmp_path):
    assert_features_equal(load_vgg19(torchvision_file), torchvision_state)
    safetensors_path = tmp_path / "vgg19.safetensors"
    save_file(torchvision_state, str(safetensors_path))
    assert_features_equal(load_vgg19(str(safetensors_path)), torchvision_state)


def test_imagenet_route_downloads_through_torch_hub_then_uses_the_cache(torchvision_state, torchvision_file, tmp_path):
    """``load_state_dict_from_url`` with a ``file://`` URL: download, hash check, cache; offline afterwards."""
    source = tmp_path / "server" / torchvision_file.name
    source.parent.mkdir()
    shutil.copy(torchvision_file, source)
    cache = tmp_path / "cache"
    model = load_vgg19("imagenet", allow_download=True, model_dir=cache, url=source.as_uri())
    assert_features_equal(model, torchvision_state)
    assert (cache / source.name).is_file()
    source.unlink()  # nothing left to download: the cache must serve
    assert_features_equal(load_vgg19("imagenet", model_dir=cache, url=source.as_uri()), torchvision_state)


def test_imagenet_route_defaults_to_torch_hubs_checkpoints_folder(
    torchvision_state, torchvision_file, tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    assert checkpoints == tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / Path(VGG19_IMAGENET_URL).name).symlink_to(torchvision_file)
    assert_features_equal(load_vgg19("imagenet"), torchvision_state)


def test_offline_without_cache_names_the_alternatives(tmp_path):
    with pytest.raises(WeightsUnavailableError) as caught:
        load_vgg19("imagenet", model_dir=tmp_path / "empty")
    message = str(caught.value)
    assert "\n" not in message
    for alternative in ("allow_download=True", "weights='random'", "'feature-matching'", ".safetensors"):
        assert alternative in message
    assert not (tmp_path / "empty").exists()
    with pytest.raises(WeightsUnavailableError, match="not in the cache"):
        PerceptualLoss(weights="imagenet", model_dir=tmp_path / "empty")


def test_failed_download_is_weights_unavailable(tmp_path):
    wrong_hash = tmp_path / "vgg19-00000000.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong_hash)
    with pytest.raises(WeightsUnavailableError, match="cannot download"):
        load_vgg19("imagenet", allow_download=True, model_dir=tmp_path / "cache", url=wrong_hash.as_uri())
    assert list((tmp_path / "cache").iterdir()) == []
    with pytest.raises(WeightsUnavailableError, match="cannot download"):
        load_vgg19("imagenet", allow_download=True, model_dir=tmp_path / "cache", url=(tmp_path / "gone.pth").as_uri())


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "payload-ran"
    path = evil_pickle(tmp_path / "evil.pth", marker)
    with pytest.raises(CheckpointError, match="refused unsafe.*posix.mkdir"):
        load_vgg19(path)
    url = path.as_uri()  # the torch hub route: download, then load from the cache
    with pytest.raises(CheckpointError, match="refused unsafe"):
        load_vgg19("imagenet", allow_download=True, model_dir=tmp_path / "cache", url=url)
    assert (tmp_path / "cache" / "evil.pth").is_file()
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the control: an unsafe load does run the payload
    assert marker.is_dir()


def test_files_of_the_wrong_layout_are_refused(torchvision_state, tmp_path):
    partial = {k: v for k, v in torchvision_state.items() if k != "features.34.bias"}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="do not fit torchvision's layout.*features.34.bias"):
        load_vgg19(tmp_path / "partial.pth")
    renamed = {k.replace("features.", "module.features."): v for k, v in torchvision_state.items()}
    save_file(renamed, str(tmp_path / "renamed.safetensors"))
    with pytest.raises(CheckpointError, match="Missing key"):
        load_vgg19(tmp_path / "renamed.safetensors")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_vgg19(tmp_path / "garbage.pth")
    with pytest.raises(WeightsUnavailableError, match="not found"):
        load_vgg19(tmp_path / "missing.pth")


def test_weight_sources_and_paths_are_told_apart(tmp_path):
    assert resolve_vgg_weights("ImageNet") == "imagenet"
    assert resolve_vgg_weights("random") == "random"
    assert resolve_vgg_weights("vgg.safetensors") == Path("vgg.safetensors")
    assert resolve_vgg_weights(tmp_path) == tmp_path
    with pytest.raises(ConfigError, match="did you mean 'imagenet'.*or a path"):
        resolve_vgg_weights("imagnet")


def test_random_weights_are_fixed_and_leave_the_global_rng_alone():
    rng_state = torch.random.get_rng_state()
    first, second = load_vgg19("random"), load_vgg19("random")
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    assert first.features[0].weight.std() > 0
    assert not any(p.requires_grad for p in first.parameters()) and not first.training


@pytest.mark.parametrize("bands", [1, 3, 6])
def test_perceptual_loss_is_zero_for_identical_and_positive_for_degraded(random_vgg_loss, real_images, bands):
    target = real_images(bands, 32)
    degraded = nn.functional.interpolate(nn.functional.avg_pool2d(target, 2), scale_factor=2, mode="bilinear")
    prediction = degraded.clone().requires_grad_(True)
    assert random_vgg_loss(target, target.clone()).item() == 0.0
    loss = random_vgg_loss(prediction, target)
    loss.backward()
    assert loss.item() > 0
    assert torch.any(prediction.grad != 0)
    assert all(p.grad is None for p in random_vgg_loss.parameters())


def test_band_mapping_grey_replication_and_per_band_average(random_vgg_loss, real_images):
    target = real_images(6, 32)
    prediction = target.flip(-1)
    per_band = [random_vgg_loss(prediction[:, [b]], target[:, [b]]) for b in range(6)]
    grey_rgb = random_vgg_loss(prediction[:, [0, 0, 0]], target[:, [0, 0, 0]])
    assert per_band[0].item() == pytest.approx(grey_rgb.item(), rel=1e-6)
    assert random_vgg_loss(prediction, target).item() == pytest.approx(torch.stack(per_band).mean().item(), rel=1e-5)
    rgb = random_vgg_loss(prediction[:, :3], target[:, :3])
    assert rgb.item() != pytest.approx(torch.stack(per_band[:3]).mean().item(), rel=1e-3)  # 3 bands are RGB


def test_layer_selection_truncates_vgg_and_stays_in_eval_mode():
    assert len(PerceptualLoss("relu5_4", weights="random").features) == 36
    conv = PerceptualLoss("CONV5_4", weights="random")
    assert conv.layer == "conv5_4" and isinstance(conv.features[-1], nn.Conv2d) and len(conv.features) == 35
    early = PerceptualLoss("relu2_2", weights="random").train()
    assert len(early.features) == 9 and isinstance(early.features[-1], nn.ReLU)
    assert early.training and not early.features.training
    with pytest.raises(ConfigError, match="did you mean 'relu5_4'"):
        PerceptualLoss("relu5_5", weights="random")


def test_mismatched_inputs_are_refused(random_vgg_loss, real_images):
    with pytest.raises(UnsupportedInputError, match=r"\(1, 3, 32, 32\) and \(1, 1, 32, 32\)"):
        random_vgg_loss(real_images(3, 32), real_images(1, 32))


def test_feature_matching_averages_the_layer_mses():
    fake = [torch.ones(1, 1, 2, 2, requires_grad=True), torch.zeros(1, 2, 1, 1, requires_grad=True)]
    real = [torch.zeros(1, 1, 2, 2, requires_grad=True), torch.full((1, 2, 1, 1), 2.0, requires_grad=True)]
    loss = FeatureMatchingLoss()(fake, real)
    assert loss.item() == pytest.approx((1.0 + 4.0) / 2)
    loss.backward()
    assert all(f.grad is not None for f in fake) and all(r.grad is None for r in real)
    with pytest.raises(UnsupportedInputError, match="got 2 and 1"):
        FeatureMatchingLoss()(fake, real[:1])
