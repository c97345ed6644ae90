"""finetune_satellite on the committed GeoTIFF fixtures: training, normalisation, nodata, reference grids, restore."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from srrestore.domains.satellite import GeoTiffReader
from srrestore.errors import ConfigError, OutputWriteError, UnsupportedInputError
from srrestore.models.checkpoint import read_checkpoint_info, save_generator
from srrestore.models.generator import create_generator
from srrestore.sr_model import SRModel
from srrestore.pipelines.satellite import finetune as pipeline
from srrestore.pipelines.satellite.finetune import SceneFinetuneOptions, finetune_satellite, sensor_degradation
from srrestore.pipelines.options import RestoreOptions
from srrestore.pipelines.satellite.restore import raster_normalization, restore_geotiff
from srrestore.training.degradation import downscale
from srrestore.training.finetune import DEFAULT_LEARNING_RATE
from srrestore.training.patches import ValidPatches

FAST = {"steps": 30, "batch_size": 4, "patch_size": 16, "learning_rate": 2e-3, "perceptual_weight": 0.0,
        "adversarial": False, "progress": False, "device": "cpu"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[int, Path]:
    """Untrained test-tiny x4 generators (1 and 3 channels) as "pretrained" checkpoints."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    return {c: save_generator(folder / f"tiny{c}.safetensors", create_generator("test-tiny", in_channels=c, scale=4))
            for c in (1, 3)}


@pytest.fixture
def satellite(fixtures_dir) -> Path:
    return fixtures_dir / "satellite"


class Captured(Exception):
    """Raised by a stand-in for the core to stop a pipeline once its inputs are known."""


def options(model: Path, **overrides) -> SceneFinetuneOptions:
    return SceneFinetuneOptions(model=str(model), **{**FAST, **overrides})


def test_scenes_fine_tune_at_the_lower_scene_learning_rate_unless_told(tmp_path, satellite, tiny):
    scene = satellite / "landsat_rgb_nodata0.tif"
    for given, expected in ((None, pipeline.SCENE_LEARNING_RATE), (3e-4, 3e-4)):
        model = tmp_path / f"{given}.safetensors"
        finetune_satellite([scene], model, options(tiny[3], steps=1, learning_rate=given))
        assert read_checkpoint_info(model).training["options"]["learning_rate"] == expected
    assert pipeline.SCENE_LEARNING_RATE < DEFAULT_LEARNING_RATE


def test_finetuning_a_scene_lowers_the_loss_and_restores_with_the_same_normalisation(tmp_path, satellite, tiny):
    scene = satellite / "landsat_rgb_nodata0.tif"
    model = tmp_path / "scene.safetensors"
    report = finetune_satellite([scene], model, options(tiny[3]))
    assert report.steps == 30 and report.channels == 3 and report.scale == (4, 4)
    assert report.evaluation["finetuned"]["l1"] < report.evaluation["pretrained"]["l1"]
    card = read_checkpoint_info(model).card
    assert card["domain"] == "satellite" and card["scale"] == "x4"
    restored = tmp_path / "restored.tif"
    restore_geotiff(scene, restored, RestoreOptions(model=str(model), progress=False))
    with rasterio.open(scene) as source, rasterio.open(restored) as output:
        assert output.bounds == source.bounds and output.crs == source.crs and output.nodata == source.nodata
        assert output.width == 4 * source.width and output.count == 3
        assert json.loads(output.tags()["SRRESTORE_NORMALIZATION"]) == card["normalization"][str(scene)]
    with GeoTiffReader(scene) as reader:
        expected = raster_normalization(reader, SRModel(create_generator("test-tiny"), read_checkpoint_info(model)))
    assert card["normalization"][str(scene)] == expected.to_dict()


def test_a_one_band_float_scene_adapts_an_rgb_model_and_uses_percentiles(tmp_path, satellite, tiny):
    scene = satellite / "s1_gamma0_nan.tif"
    report = finetune_satellite([scene], tmp_path / "s1.safetensors", options(tiny[3], steps=2))
    assert report.channels == 1 and any("adapted to 1" in note for note in report.notes)
    assert read_checkpoint_info(tmp_path / "s1.safetensors").card["normalization"][str(scene)]["method"].startswith(
        "percentile")


def test_nodata_with_extreme_values_is_never_sampled(tmp_path, satellite, tiny, monkeypatch):
    # The Sentinel-1 crop with its NaN nodata rewritten as -9999, far below its valid values.
    scene = tmp_path / "s1_extreme.tif"
    with rasterio.open(satellite / "s1_gamma0_nan.tif") as source:
        values, profile = source.read(), source.profile
    invalid = np.isnan(values[0])
    assert invalid.mean() > 0.1
    values[:, invalid] = -9999.0
    with rasterio.open(scene, "w", **{**profile, "nodata": -9999.0}) as target:
        target.write(values)
    captured = {}

    def capture(pretrained, images, output, options, degradation, **_):
        captured.update(images=images, degradation=degradation)
        raise Captured  # stop before training: only what the pipeline hands to the core matters here

    monkeypatch.setattr(pipeline, "finetune", capture)
    with pytest.raises(Captured):
        finetune_satellite([scene], tmp_path / "m.safetensors", options(tiny[1]))
    patches = ValidPatches(captured["images"], 16, (4, 4), captured["degradation"], seed=1)
    lr, hr = patches.batch(range(400))
    assert torch.isfinite(lr).all() and torch.isfinite(hr).all()
    assert hr.min() > -5 and lr.min() > -5  # percentile units: valid data lie near [0, 1]
    assert captured["degradation"].kernel == "area" and captured["degradation"].blur_sigma == (0.0, 2.0)


def test_sensor_degradation_follows_the_options():
    default = sensor_degradation((4, 4), SceneFinetuneOptions())
    assert (default.kernel, default.blur_sigma, default.noise, default.clip) == ("area", (0.0, 2.0), "gaussian", False)
    quiet = sensor_degradation((2, 2), SceneFinetuneOptions(blur_sigma=0.0, noise_sigma=0.0))
    assert quiet.blur_sigma == (0.0, 0.0) and quiet.noise == "none"


def write_pair(tmp_path: Path, satellite: Path, factor: int = 4, shift: float = 0.0, crs: str | None = None,
               bands: int | None = None) -> tuple[Path, Path]:
    """The 4-band fixture as HR reference and its area-downscaled copy as the LR scene."""
    with rasterio.open(satellite / "rgbn_nodata0.tif") as source:
        hr, profile = source.read(), source.profile
    hr = hr[:, :96, :120]
    lr = np.rint(downscale(hr.astype(np.float64), factor, "area")).astype(np.uint8)
    transform = profile["transform"]
    reference = tmp_path / "reference.tif"
    count = bands or hr.shape[0]
    with rasterio.open(reference, "w", **{**profile, "height": 96, "width": 120, "count": count}) as target:
        target.write(hr[:count])
    scene = tmp_path / "scene.tif"
    lr_transform = transform @ Affine.scale(factor) @ Affine.translation(shift, 0)
    with rasterio.open(scene, "w", **{**profile, "height": 96 // factor, "width": 120 // factor,
                                      "transform": lr_transform, "crs": crs or profile["crs"]}) as target:
        target.write(lr)
    return scene, reference


def test_reference_mode_trains_on_real_pairs(tmp_path, satellite, tiny):
    scene, reference = write_pair(tmp_path, satellite)
    report = finetune_satellite([scene], tmp_path / "paired.safetensors", options(tiny[1], reference=(reference,)))
    assert report.channels == 4 and report.sources == [f"{scene} -> {reference}"]
    info = read_checkpoint_info(tmp_path / "paired.safetensors")
    assert info.training["degradation"] == "paired" and info.card["degradation_model"] == "paired references"
    assert report.evaluation["finetuned"]["l1"] < report.evaluation["pretrained"]["l1"]


@pytest.mark.parametrize(("pair", "message"), [
    ({"factor": 2}, r"2 x 2 times finer than the scene's, the model's scale is 4 x 4"),
    ({"shift": 0.5}, r"bounds \(.*\) differ from the scene's"),
    ({"crs": "EPSG:4326"}, "CRS EPSG:32618 differs from the scene's EPSG:4326"),
    ({"bands": 3}, "3 band\\(s\\), the scene has 4"),
])
def test_reference_grids_that_do_not_match_are_refused(tmp_path, satellite, tiny, pair, message):
    scene, reference = write_pair(tmp_path, satellite, **pair)
    with pytest.raises(UnsupportedInputError, match=message):
        finetune_satellite([scene], tmp_path / "m.safetensors", options(tiny[1], reference=(reference,)))
    assert not (tmp_path / "m.safetensors").exists()


def test_bad_inputs_are_refused_before_training(tmp_path, satellite, tiny):
    rgb, four = satellite / "landsat_rgb_nodata0.tif", satellite / "rgbn_nodata0.tif"
    with pytest.raises(UnsupportedInputError, match="same band count"):
        finetune_satellite([rgb, four], tmp_path / "m.safetensors", options(tiny[1]))
    with pytest.raises(ConfigError, match="one --reference per scene"):
        finetune_satellite([rgb, rgb], tmp_path / "m.safetensors", options(tiny[1], reference=(rgb,)))
    with pytest.raises(OutputWriteError, match="is the input itself"):
        finetune_satellite([rgb], rgb, options(tiny[1]))


def test_an_alpha_band_is_a_mask_not_a_channel_to_fine_tune(tmp_path, satellite, tiny):
    """A 4-band uint8 GeoTIFF whose fourth band GDAL takes as alpha fine-tunes a 3-channel model.

    GDAL writes a 4-band uint8 raster as RGB plus alpha unless told otherwise; restore treats that
    band as the mask, so fine-tuning must count the three data bands (it counted four and failed).
    """
    with rasterio.open(satellite / "landsat_rgb_nodata0.tif") as source:
        rgb, profile = source.read(), source.profile
    scene = tmp_path / "rgba.tif"
    alpha = np.where((rgb > 0).all(axis=0), 255, 0).astype(np.uint8)[None]
    with rasterio.open(scene, "w", **{**profile, "count": 4, "nodata": None}) as target:
        target.write(np.concatenate([rgb, alpha]))
    with rasterio.open(scene) as written:
        assert written.colorinterp[3] == rasterio.enums.ColorInterp.alpha
    report = finetune_satellite([scene], tmp_path / "m.safetensors", options(tiny[3], steps=2))
    assert report.channels == 3 and report.steps == 2
