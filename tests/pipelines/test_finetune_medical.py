"""Self-supervised through-plane fine-tuning (SMORE-style) and the two-plane restore, on real volumes."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from nibabel.testing import data_path
from srrestore.domains.medical.geometry import corner_points
from srrestore.domains.medical.intensity import foreground_normalization
from srrestore.domains.medical.nifti import read_nifti
from srrestore.pipelines.medical.finetune import finetune_medical
from srrestore.pipelines.medical.restore import restore_nifti
from srrestore.models.surgery import through_plane_generator
from srrestore.pipelines.medical.pairs import in_plane_images, read_scan
from srrestore.pipelines.medical.planes import average_planes
from srrestore.pipelines.medical.options import VolumeOptions
from srrestore.pipelines.options import RestoreOptions

from srrestore.engine import (
    ArrayReader,
    ArrayWriter,
    Normalization,
    UpscaleOptions,
    upscale_array,
)
from srrestore.errors import (
    ConfigError,
    InputReadError,
    OutputExistsError,
    UnsupportedInputError,
)
from srrestore.models.checkpoint import read_checkpoint_info, save_generator
from srrestore.models.generator import create_generator
from srrestore.sr_model import SRModel, load_model
from srrestore.training.finetune import DEFAULT_LEARNING_RATE, FinetuneOptions


@pytest.fixture(scope="module")
def start_model(tmp_path_factory) -> str:
    """A tiny isotropic (2, 2) 1-channel generator, the pretrained start."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("start") / "tiny_x2.safetensors"
    save_generator(path, create_generator("test-tiny", in_channels=1, scale=(2, 2)))
    return str(path)


def make_thick_t1(folder: Path, factor: int) -> Path:
    """nibabel's real T1 (33x41x25, 2 mm) with groups of ``factor`` slices averaged (int16, same box)."""
    source = nib.load(Path(data_path) / "anatomical.nii")
    thin = np.asarray(source.dataobj, dtype=np.float64)[:, :, :24]
    thick = np.rint(thin.reshape(33, 41, 24 // factor, factor).mean(axis=3)).astype(np.int16)
    affine = source.affine.copy()
    affine[:3, 3] += affine[:3, 2] * (factor - 1) / 2
    affine[:3, 2] *= factor
    image = nib.Nifti1Image(thick, affine)
    image.header.set_xyzt_units("mm", "sec")
    path = folder / f"thick_t1_x{factor}.nii.gz"
    nib.save(image, path)
    return path


@pytest.fixture(scope="module")
def thick_t1(tmp_path_factory) -> Path:
    """The T1 with pairs of slices averaged: 33x41x12 at 2x2x4 mm."""
    return make_thick_t1(tmp_path_factory.mktemp("t1"), 2)


def tuning(start_model: str, **changes) -> FinetuneOptions:
    """Fast options: the tiny start, pixel loss only, a few small steps, PSNR-oriented."""
    values = {"model": start_model, "steps": 3, "batch_size": 2, "patch_size": 16, "perceptual_weight": 0.0,
              "adversarial": False, "device": "cpu", "progress": False}
    return FinetuneOptions(**{**values, **changes})


def restoring(model: Path, **changes) -> VolumeOptions:
    return VolumeOptions(model=str(model), device="cpu", progress=False, tile_size=32, batch_size=4, **changes)


def test_pairs_come_only_from_in_plane_slices_in_both_orientations(thick_t1):
    scan = read_scan(thick_t1)
    assert scan.axis == 2 and scan.factor == 2 and scan.format == "nifti"
    images = in_plane_images(scan)
    normalised = scan.normalization.forward(scan.stored)[0]
    assert len(images) == 2 * 12
    for index in range(12):
        plane = normalised[:, :, index]
        assert np.array_equal(images[2 * index].hr[0], plane) and np.array_equal(images[2 * index + 1].hr[0], plane.T)
        assert images[2 * index].valid.all()
    assert scan.profile("box").width == pytest.approx(2.0)


def test_dicom_scan_takes_its_profile_from_thickness_and_spacing(fixtures_dir):
    """3 mm slices every 2 mm over 0.977 mm pixels: x2 restores 1 mm slices, so training rows go to 1 mm."""
    scan = read_scan(fixtures_dir / "medical" / "ct_abdomen_j2k")
    assert scan.format == "dicom" and scan.axis == 0 and scan.factor == 2 and scan.thickness == pytest.approx(3.0)
    assert scan.target_spacing() == pytest.approx(1.0) and scan.profile("gaussian").width == pytest.approx(3.0)
    assert scan.normalization.method == "ct-hu--1024-3071"
    images = in_plane_images(scan)
    assert len(images) == 8 and all(image.hr.shape == (1, 500, 512) for image in images)


def test_a_factor_below_the_spacing_ratio_resamples_the_degraded_axis(tmp_path):
    """8 mm slices over 2 mm pixels restored x2 (to 4 mm): training rows are resampled to 4 mm."""
    scan = read_scan(make_thick_t1(tmp_path, 4))
    assert scan.factor == 4 and scan.target_spacing(2) == pytest.approx(4.0)
    assert scan.profile("box", 2).width == pytest.approx(2.0) and scan.profile("box").width == pytest.approx(4.0)
    images = in_plane_images(scan, 2)
    assert [image.hr.shape for image in images[:2]] == [(1, 16, 41), (1, 20, 33)]
    plane = scan.normalization.forward(scan.stored)[0, :, :, 3]
    # 16 rows of 4 mm centred on the 33 rows of 2 mm: row i covers old rows 2i + 0.5 .. 2i + 2.5
    covered = 0.25 * plane[0:32:2] + 0.5 * plane[1:33:2] + 0.25 * plane[2:34:2]
    assert np.abs(images[6].hr[0] - covered).mean() < 0.1 * np.abs(np.diff(plane, axis=0)).mean()
    assert all(image.valid.all() for image in images)


def test_isotropic_generator_becomes_a_through_plane_one_with_the_column_averaged_residual(start_model):
    """Every layer but the upsampler is shared; the (2, 1) residual is the (2, 2) residual averaged over columns."""
    isotropic = load_model(start_model).network
    through, how = through_plane_generator(isotropic, 2)
    assert through.config.scale == (2, 1) and "averaged over the 2 column sub-pixels" in how
    x = torch.from_numpy(read_scan(Path(data_path) / "anatomical.nii").normalization.forward(
        np.asarray(nib.load(Path(data_path) / "anatomical.nii").dataobj)[None])[:, :20, :24, 10])[None]
    with torch.no_grad():
        old = isotropic(x) - isotropic._skip(x)
        new = through(x) - through._skip(x)
    assert new.shape == (1, 1, 40, 24)
    assert torch.allclose(new, old.reshape(1, 1, 40, 24, 2).mean(dim=4), atol=1e-5)
    body = {k: v for k, v in isotropic.state_dict().items() if not k.startswith("upsample")}
    assert all(torch.equal(through.state_dict()[k], v) for k, v in body.items())
    other, how = through_plane_generator(isotropic, 4)
    assert other.config.scale == (4, 1) and "randomly initialised" in how


@pytest.mark.parametrize("factor", [2, 3, 4, 5, 6])
def test_default_fine_tuning_starts_from_the_built_in_slice_model_of_the_factor(factor):
    from srrestore.pipelines.medical.initial_model import through_plane_start

    start, how = through_plane_start(FinetuneOptions(), factor)
    assert start.name == f"srgan-slice-x{factor}-psnr" and start.generator.config.scale == (factor, 1)
    assert how == f"from srgan-slice-x{factor}-psnr: taken as it is (scale ({factor}, 1))"


def test_finetuned_model_is_through_plane_and_restores_the_scan_with_its_geometry(thick_t1, start_model, tmp_path):
    model = tmp_path / "t1_x2.safetensors"
    report = finetune_medical([thick_t1], model, tuning(start_model))
    assert report.scale == (2, 1) and report.phase == "psnr" and report.steps == 3
    assert report.sources == [str(thick_t1)]
    info = read_checkpoint_info(model)
    assert info.config.scale == (2, 1) and info.config.in_channels == 1 and info.phase == "psnr"
    assert info.card["phase"] == "psnr" and info.card["domain"] == "medical"
    assert info.card["degradation_model"]["slice_profile"]["factor"] == 2
    assert "averaged over the 2 column sub-pixels" in info.card["initialisation"]
    output = tmp_path / "t1_sr.nii.gz"
    restored = restore_nifti(thick_t1, output, restoring(model))
    assert restored.scale == (1, 1, 2)
    before, after = nib.load(thick_t1), nib.load(output)
    assert after.shape == (33, 41, 24) and np.allclose(after.header.get_zooms(), (2.0, 2.0, 2.0))
    assert after.header.get_data_dtype() == np.int16
    for form in ("get_sform", "get_qform"):
        error = corner_points(getattr(after.header, form)(), after.shape) - corner_points(
            getattr(before.header, form)(), before.shape)
        assert np.abs(error).max() < 1e-4
    sidecar = json.loads((tmp_path / "t1_sr.json").read_text())
    assert sidecar["passes"][0]["phase"] == "psnr"
    assert sidecar["passes"][0]["planes_averaged"] == [[2, 0], [2, 1]]


def test_two_plane_restore_is_the_average_of_the_two_single_plane_runs(thick_t1, start_model, tmp_path):
    """Averaged in normalised units, then one inverse into int16 (not the mean of two rounded outputs)."""
    model = tmp_path / "t1_x2.safetensors"
    finetune_medical([thick_t1], model, tuning(start_model, steps=1))
    restore_nifti(thick_t1, tmp_path / "two.nii", restoring(model))
    combined = read_nifti(tmp_path / "two.nii").stored[0]
    volume = read_nifti(thick_t1)
    normalization = foreground_normalization(volume.stored)
    network = load_model(str(model))
    identity = Normalization((0.0,), (1.0,))
    single = [
        upscale_array(normalization.forward(volume.stored), network.network, network.spec, identity,
                      UpscaleOptions(device="cpu", plane_axes=planes, tile_size=32, batch_size=4))[0]
        for planes in ((2, 0), (2, 1))
    ]
    assert not np.allclose(single[0], single[1], atol=1e-3)  # the planes disagree: the average matters
    expected = normalization.inverse(((single[0] + single[1]) / np.float32(2))[None], np.int16)[0]
    assert np.abs(combined.astype(int) - expected).max() <= 1 and np.mean(combined == expected) > 0.999


def test_two_plane_pass_keeps_dicom_padding_as_padding(fixtures_dir, start_model, tmp_path):
    """A real head CT slice (PixelPaddingValue -1500 outside the scan circle) stacked into 4 slices."""
    dataset = pydicom.dcmread(fixtures_dir / "medical" / "ct_head_gantry_tilt" / "01.dcm")
    padding = float(dataset.PixelPaddingValue)
    plane = dataset.pixel_array[::8, ::8]
    volume = np.stack([plane] * 4)[None]
    isotropic = load_model(start_model)
    model = SRModel(through_plane_generator(isotropic.network, 2)[0], isotropic.info, device="cpu")
    writer = ArrayWriter(1, (8, *plane.shape), volume.dtype)
    reports = average_planes(ArrayReader(volume, padding), writer, model, [(0, 1), (0, 2)], (2, 1, 1),
                             Normalization((-1024.0,), (4095.0,)), RestoreOptions(device="cpu", progress=False),
                             tmp_path)
    assert len(reports) == 2 and list(tmp_path.iterdir()) == []  # scratch removed
    mask = np.repeat(volume[0] == padding, 2, axis=0)
    assert mask.any() and np.array_equal(writer.array[0] == padding, mask)


def test_adversarial_run_is_recorded_in_the_checkpoint_and_the_restored_output(thick_t1, start_model, tmp_path):
    model = tmp_path / "gan.safetensors"
    report = finetune_medical([thick_t1], model, tuning(start_model, adversarial=True, patch_size=32, steps=2))
    assert report.phase == "gan" and any("adversarial (GAN)" in note for note in report.notes)
    info = read_checkpoint_info(model)
    assert info.phase == "gan" and info.card["phase"] == "gan" and "adversarial" in info.card["losses"]
    restore_nifti(thick_t1, tmp_path / "gan_sr.nii.gz", restoring(model))
    assert json.loads((tmp_path / "gan_sr.json").read_text())["passes"][0]["phase"] == "gan"
    assert b"gan" in nib.load(tmp_path / "gan_sr.nii.gz").header["descrip"].tobytes()


def test_max_minutes_bounds_the_run_and_a_model_is_still_saved(thick_t1, start_model, tmp_path):
    model = tmp_path / "quick.safetensors"
    report = finetune_medical([thick_t1], model, tuning(start_model, steps=10_000, max_minutes=1e-4))
    assert report.stopped_by_time and report.steps == 0 and report.seconds < 60
    assert read_checkpoint_info(model).config.scale == (2, 1)


def test_small_slices_lower_the_patch_size_and_say_so(thick_t1, start_model, tmp_path):
    report = finetune_medical([thick_t1], tmp_path / "m.safetensors",
                              tuning(start_model, patch_size=64, steps=1, learning_rate=None))
    assert any("patch size lowered from 64 to 32" in note for note in report.notes)
    # Scans take the core's default learning rate (the start is adapted to an anisotropic scale).
    assert read_checkpoint_info(tmp_path / "m.safetensors").training["options"]["learning_rate"] == DEFAULT_LEARNING_RATE


def test_bad_inputs_and_options_are_refused_and_nothing_is_written(fixtures_dir, thick_t1, start_model, tmp_path):
    output = tmp_path / "m.safetensors"
    options = tuning(start_model)
    with pytest.raises(ConfigError, match="no input scan"):
        finetune_medical([], output, options)
    with pytest.raises(InputReadError, match="input not found"):
        finetune_medical([tmp_path / "missing.nii.gz"], output, options)
    text = tmp_path / "notes.txt"
    text.write_text("not a scan")
    with pytest.raises(UnsupportedInputError, match="not a NIfTI file"):
        finetune_medical([text], output, options)
    with pytest.raises(UnsupportedInputError, match="gantry tilt"):
        finetune_medical([fixtures_dir / "medical" / "ct_head_gantry_tilt"], output, options)
    with pytest.raises(ConfigError, match="option --blur-sigma does not apply to NIfTI and DICOM scans"):
        finetune_medical([thick_t1], output, {**vars(options), "blur_sigma": 1.0})
    with pytest.raises(ConfigError, match=r"1\.00 times the in-plane spacing"):  # isotropic: no thick axis
        finetune_medical([Path(data_path) / "anatomical.nii"], output, options)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ConfigError, match="different through-plane factors"):
        finetune_medical([thick_t1, make_thick_t1(other, 4)], output, options)
    with pytest.raises(ConfigError, match="did you mean 'box'"):
        finetune_medical([thick_t1], output, options, slice_profile="boxes")
    with pytest.raises(ConfigError, match="through-plane factor 7 is not supported"):
        finetune_medical([thick_t1], output, replace(options, scale=7))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "other"]
    output.write_bytes(b"an earlier model")
    with pytest.raises(OutputExistsError):
        finetune_medical([thick_t1], output, options)
    assert output.read_bytes() == b"an earlier model"


def test_a_dicom_series_fine_tunes(fixtures_dir, start_model, tmp_path):
    folder = tmp_path / "series"
    shutil.copytree(fixtures_dir / "medical" / "ct_abdomen_j2k", folder)
    report = finetune_medical([folder], tmp_path / "ct.safetensors", tuning(start_model, steps=1))
    # 4 slices: too few to estimate the profile, so no guess: the whole family of the header's width.
    assert report.scale == (2, 1) and any("slice profile family (box, Gaussian or a mix per image) of 3 px of 1 mm"
                                          " (not estimable: fewer than 8 slices" in n for n in report.notes)
    # No silent choice: where the factor came from, in the notes and the card.
    assert report.notes[0].startswith("through-plane x2 along axis 0 (factor from the header: slice spacing 2 mm")
    from srrestore.models.checkpoint import read_checkpoint_info

    recorded = read_checkpoint_info(tmp_path / "ct.safetensors").card["degradation_model"]
    assert recorded["factor_from"].startswith("the header") and recorded["profile_from"].startswith("not estimable")
    assert recorded["slice_profile"] == {"kind": "family", "width_pixels": pytest.approx(3.0), "factor": 2,
                                         "scale": [2, 1]}
    from srrestore.pipelines.medical.plan import model_slice_profile
    from srrestore.sr_model import load_model

    assert model_slice_profile(load_model(str(tmp_path / "ct.safetensors"))) == (
        "any of box, Gaussian and their mixes of 3 px (fine-tuned over the family)")
    assert report.notes[-1].endswith("srrestore restore SCAN OUT --model " + str(tmp_path / "ct.safetensors"))


def test_a_short_series_with_gaps_between_thin_slices_fine_tunes_over_the_family(fixtures_dir, start_model, tmp_path):
    import pydicom

    folder = tmp_path / "series"
    shutil.copytree(fixtures_dir / "medical" / "ct_abdomen_j2k", folder)
    for path in folder.glob("CT.*"):
        dataset = pydicom.dcmread(path)
        dataset.SliceThickness = 0.4  # 0.4 mm slices 2 mm apart: thickness 0.2 spacings
        dataset.save_as(path)
    report = finetune_medical([folder], tmp_path / "gaps.safetensors", tuning(start_model, steps=1))
    assert "slice profile family (box, Gaussian or a mix per image) of 0.4 px of 1 mm (not estimable" in report.notes[0]


def test_the_profile_family_is_an_explicit_choice_too(thick_t1, start_model, tmp_path):
    output = tmp_path / "family.safetensors"
    report = finetune_medical([thick_t1], output, tuning(start_model, steps=1), slice_profile="family")
    assert "slice profile family (box, Gaussian or a mix per image) of 2 px of 2 mm (--slice-profile)" in report.notes[0]
    assert read_checkpoint_info(output).card["degradation_model"]["slice_profile"]["kind"] == "family"


def test_a_scan_fine_tunes_in_bf16_on_the_cpu(tmp_path, thick_t1, start_model):
    output = tmp_path / "bf16.safetensors"
    report = finetune_medical([thick_t1], output, tuning(start_model, precision="bf16"))
    assert report.finished and report.steps == 3
    info = read_checkpoint_info(output)
    assert info.training["precision"] == "bf16" and info.config.scale == (2, 1)


@pytest.mark.slow
def test_a_scan_fine_tunes_under_torchrun_with_two_cpu_processes(tmp_path, thick_t1, start_model):
    import os
    import subprocess
    import sys

    output, log = tmp_path / "ddp.safetensors", tmp_path / "ddp.jsonl"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "srrestore", "finetune", str(thick_t1), "--out", str(output), "--model", start_model,
               "--steps", "2", "--batch-size", "2", "--patch-size", "16", "--device", "cpu", "--quiet",
               "--log-file", str(log)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    info = read_checkpoint_info(output)
    assert info.training["world_size"] == 2 and info.card["domain"] == "medical" and info.config.scale == (2, 1)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [0, 2, 2]  # start, train, end
