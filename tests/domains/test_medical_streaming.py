"""Scans are read slab by slab onto disk for restoring, never whole into memory (issue 17, item 2)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from nibabel.testing import data_path

from srrestore.domains.medical import nifti
from srrestore.domains.medical.volume import open_volume
from srrestore.models.checkpoint import save_generator
from srrestore.models.generator import create_generator
from srrestore.pipelines.medical.restore import restore_dicom, restore_nifti


@pytest.fixture
def t1(tmp_path) -> Path:
    """nibabel's real T1 (33x41x25 int16), gzipped."""
    path = tmp_path / "t1.nii.gz"
    nib.save(nib.load(Path(data_path) / "anatomical.nii"), path)
    return path


def test_a_staged_volume_is_read_in_slabs_into_a_disk_backed_array(t1, tmp_path, monkeypatch):
    reads = []
    original = nib.arrayproxy.ArrayProxy._get_unscaled

    def recording(proxy, slicer):
        reads.append(slicer)
        return original(proxy, slicer)

    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "_get_unscaled", recording)
    monkeypatch.setattr(nifti, "SLAB_BYTES", 33 * 41 * 2 * 4)  # four k-slices a slab
    volume = open_volume(t1)
    assert reads == [] and volume.shape == (33, 41, 25)  # opening reads the header only
    staged = volume.staged(tmp_path)
    assert isinstance(staged.array, np.memmap) and staged.stored is staged.array
    assert [(s[2].start, s[2].stop) for s in reads] == [(k, min(k + 4, 25)) for k in range(0, 25, 4)]
    assert np.array_equal(staged.stored[0], np.asarray(nib.load(t1).dataobj))


def test_restore_reads_the_input_once_in_slabs_and_leaves_no_copy(t1, tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = save_generator(tmp_path / "t21.safetensors", create_generator("test-tiny", in_channels=1, scale=(2, 1)))
    reads = []
    original = nib.arrayproxy.ArrayProxy._get_unscaled
    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "_get_unscaled",
                        lambda proxy, slicer: reads.append(slicer) or original(proxy, slicer))
    monkeypatch.setattr(nifti, "SLAB_BYTES", 33 * 41 * 2 * 8)
    out = tmp_path / "out" / "t1_sr.nii.gz"
    out.parent.mkdir()
    restore_nifti(t1, out, {"model": str(model), "slice_scale": 2, "device": "cpu", "progress": False})
    assert len(reads) == 4 and all(s[2].stop - s[2].start <= 8 for s in reads)  # 25 slices, 8 a slab, read once
    assert sorted(p.name for p in out.parent.iterdir()) == ["t1_sr.json", "t1_sr.nii.gz"]


def test_a_dicom_series_decodes_slice_by_slice_into_a_given_array(fixtures_dir, tmp_path):
    volume = open_volume(fixtures_dir / "medical" / "ct_abdomen_j2k")
    staged = volume.staged(tmp_path)
    assert isinstance(staged.array, np.memmap) and staged.stored.shape == (1, *volume.shape)
    assert np.array_equal(staged.stored, volume.stored)  # the in-memory read gives the same values
    model = save_generator(tmp_path / "in2.safetensors", create_generator("test-tiny", in_channels=1, scale=2))
    restore_dicom(fixtures_dir / "medical" / "ct_abdomen_j2k", tmp_path / "sr",
                  {"model": str(model), "scale": 2, "device": "cpu", "progress": False, "tile_size": 256})
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staged copy left
