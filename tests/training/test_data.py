"""Training data: finding and preparing images, deterministic patches, samplers, validation sets."""

from __future__ import annotations

import warnings

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from torch.utils.data import DataLoader, DistributedSampler

from srrestore.errors import ConfigError, InputReadError, SRRestoreWarning, UnsupportedInputError
from srrestore.training.data import (
    PatchDataset,
    StepSampler,
    ValidationSet,
    find_images,
    images_fingerprint,
    prepare_image,
    split_images,
)
from srrestore.training.degradation import Degradation, downscale, upscale_bicubic


def test_find_images_is_recursive_sorted_and_skips_hidden(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / ".cache").mkdir()
    for path in ("a/deep/z.png", "a/b.JPG", "c.tif", ".cache/x.png", "notes.txt"):
        (tmp_path / path).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in find_images([tmp_path])] == ["a/b.JPG", "a/deep/z.png", "c.tif"]
    with pytest.raises(InputReadError, match="not found: .*missing"):
        find_images([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        find_images([tmp_path / "empty"])


def test_prepare_image_converts_channels_and_dtypes():
    rgb = np.moveaxis(data.astronaut()[:40, :50], -1, 0)
    grey = prepare_image(rgb, 1, "astronaut")
    pillow = np.asarray(Image.fromarray(np.moveaxis(rgb, 0, -1)).convert("L"))
    assert grey.pixels.shape == (1, 40, 50) and grey.pixels.dtype == np.uint8 and grey.levels == 255
    assert np.abs(grey.pixels[0].astype(int) - pillow).max() <= 1  # Pillow's "L" is the same BT.601 luma
    assert prepare_image(grey.pixels, 3, "grey").pixels.shape == (3, 40, 50)
    rgba = np.concatenate([rgb, np.full((1, 40, 50), 255, np.uint8)])
    np.testing.assert_array_equal(prepare_image(rgba, 3, "rgba").pixels, rgb)
    deep = prepare_image((rgb.astype(np.uint16) * 257), 3, "16-bit")
    assert deep.levels == 65535
    np.testing.assert_allclose(deep.unit(), rgb / 255.0)
    with pytest.raises(UnsupportedInputError, match="has 3 channels, training asks for 4"):
        prepare_image(rgb, 4, "astronaut")
    with pytest.raises(UnsupportedInputError, match="int32"):
        prepare_image(rgb.astype(np.int32), 3, "astronaut")


def test_patches_are_deterministic_in_range_and_of_the_right_shape(photos):
    images = photos(3)
    dataset = PatchDataset(images, 48, Degradation(scale=4), seed=1)
    lr, hr = dataset[7]
    assert lr.shape == (3, 12, 12) and hr.shape == (3, 48, 48) and lr.dtype == hr.dtype == torch.float32
    assert 0 <= float(hr.min()) and float(hr.max()) <= 1 and float(hr.std()) > 0.01
    again = PatchDataset(images, 48, Degradation(scale=4), seed=1)[7]
    assert torch.equal(again[0], lr) and torch.equal(again[1], hr)
    assert not torch.equal(PatchDataset(images, 48, Degradation(scale=4), seed=2)[7][1], hr)
    assert not torch.equal(dataset[8][1], hr)
    anisotropic = PatchDataset(photos(1), 32, Degradation(scale=(1, 4)))[3]
    assert anisotropic[0].shape == (1, 32, 8) and anisotropic[1].shape == (1, 32, 32)


@pytest.mark.parametrize("degradation", [Degradation(scale=4), Degradation(scale=(1, 2), blur_sigma=1.2),
                                         Degradation(scale=3, kernel="area")])
def test_patch_input_equals_the_whole_image_degradation_there(photos, degradation):
    image = photos(3)[0]
    dataset = PatchDataset([image], 48, degradation, seed=0, augment=False)
    whole_hr = image.unit()[:, : 160 // degradation.scale[0] * degradation.scale[0],
                            : 160 // degradation.scale[1] * degradation.scale[1]]
    whole_lr = degradation.apply(whole_hr)
    sy, sx = degradation.scale
    for index in range(6):
        lr, hr = (tensor.numpy() for tensor in dataset[index])
        matches = [(top, left) for top in range(0, whole_hr.shape[1] - 47, sy) for left in range(0, whole_hr.shape[2] - 47, sx)
                   if np.array_equal(whole_hr[:, top : top + 48, left : left + 48].astype(np.float32), hr)]
        top, left = matches[0]
        np.testing.assert_allclose(lr, whole_lr[:, top // sy : top // sy + 48 // sy, left // sx : left // sx + 48 // sx],
                                   atol=1e-6)


def test_small_images_are_skipped_with_a_warning(photos):
    images = photos(1)
    small = prepare_image(data.camera()[:20, :20][None], 1, "small")
    with pytest.warns(SRRestoreWarning, match="1 image"):
        dataset = PatchDataset(images + [small], 32, Degradation(scale=2))
    assert len(dataset.images) == 3
    with pytest.raises(ConfigError, match="at least 64 pixels"):
        PatchDataset([small], 64, Degradation(scale=2))
    with pytest.raises(ConfigError, match="multiple of the scale"):
        PatchDataset(images, 30, Degradation(scale=4))


def test_step_sampler_gives_disjoint_keys_per_rank_and_resumes():
    ranks = [list(StepSampler(4, start_step=0, total_steps=3, rank=rank, world_size=2)) for rank in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1]) and len(ranks[0]) == 12
    resumed = list(StepSampler(4, start_step=1, total_steps=3, rank=0, world_size=2))
    assert resumed == ranks[0][4:]
    assert len(StepSampler(4, 1, 3)) == 8


def test_dataset_works_with_distributed_sampler_and_workers(photos):
    dataset = PatchDataset(photos(3), 32, Degradation(scale=2), seed=3, length=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = DistributedSampler(dataset, num_replicas=2, rank=1, shuffle=True, seed=0)
    indices = list(sampler)
    batches = list(DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=2))
    assert len(batches) == 2
    assert torch.equal(batches[0][1][0], dataset[indices[0]][1])


def test_validation_set_measures_with_the_protocol(photos):
    images = photos(3)
    validation = ValidationSet("photos", images, Degradation(scale=4))
    bicubic = validation.bicubic()
    assert 20 < bicubic["psnr"] < 40 and 0.4 < bicubic["ssim"] < 1
    perfect = validation.measure([pair.hr for pair in validation.pairs])
    assert perfect["psnr"] == np.inf and perfect["ssim"] == pytest.approx(1.0)
    lr = validation.pairs[0].lr
    np.testing.assert_array_equal(lr, Degradation(scale=4).apply(images[0].unit()))
    assert validation.evaluate(lambda low: upscale_bicubic(low, 4)) == bicubic


def test_split_and_fingerprint(photos):
    images = photos(3)
    train, held = split_images(images, 0.3, seed=0)
    assert len(held) == 1 and len(train) == 2 and held[0] not in train
    assert split_images(images, 0.3, seed=0) == (train, held)
    assert images_fingerprint(images) == images_fingerprint(photos(3)) != images_fingerprint(train)
    with pytest.raises(ConfigError, match="give --val-dir"):
        split_images(images[:1], 0.5, seed=0)


def test_images_written_and_read_back_keep_their_values(tmp_path):
    path = tmp_path / "astronaut.png"
    iio.imwrite(path, data.astronaut()[:64, :64])
    from srrestore.domains.image import read_image

    image = prepare_image(read_image(path), 3, str(path))
    np.testing.assert_array_equal(image.pixels, np.moveaxis(data.astronaut()[:64, :64], -1, 0))
    assert downscale(image.unit(), 4).shape == (3, 16, 16)
