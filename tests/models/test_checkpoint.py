"""Checkpoints: safetensors round trip, .pth only through weights_only, errors."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from srrestore.errors import CheckpointError
from srrestore.models.checkpoint import load_generator, read_checkpoint_info, save_generator
from srrestore.models.generator import create_generator


@pytest.fixture
def generator():
    torch.manual_seed(3)
    return create_generator("test-tiny", in_channels=1, scale=(1, 4))


def test_round_trip_is_bit_exact_and_keeps_the_description(tmp_path, generator):
    path = save_generator(tmp_path / "g.safetensors", generator, phase="gan",
                          training={"steps": 7}, card={"summary": "tiny"})
    loaded, info = load_generator(path)
    assert info.phase == "gan" and info.training == {"steps": 7} and info.card == {"summary": "tiny"}
    assert info.config == generator.config
    for (name, a), (_, b) in zip(generator.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.rand(1, 1, 9, 10)
    with torch.no_grad():
        assert torch.equal(generator.eval()(x), loaded(x))
    assert read_checkpoint_info(path).config.scale == (1, 4)


def test_plain_pth_state_dict_loads_with_weights_only(tmp_path, generator):
    path = tmp_path / "g.pth"
    torch.save({"config": generator.config.to_dict(), "state_dict": generator.state_dict()}, path)
    loaded, info = load_generator(path)
    assert info.config.scale == (1, 4)
    assert torch.equal(loaded.shallow.weight, generator.shallow.weight)


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"config": {}, "state_dict": _Exploit(str(marker))}, handle)
    with pytest.raises(CheckpointError, match="refused"):
        load_generator(path)
    assert not marker.exists()


def test_corrupt_and_foreign_files_give_clear_errors(tmp_path, generator):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00not a header")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_generator(corrupt)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "other"})
    with pytest.raises(CheckpointError, match="not an srrestore generator checkpoint"):
        load_generator(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "missing.safetensors")


def test_mismatched_weights_are_refused(tmp_path, generator):
    path = save_generator(tmp_path / "g.safetensors", generator)
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    config = json.loads(metadata["config"])
    config["num_features"] = 16
    metadata["config"] = json.dumps(config)
    save_file(load_file(str(path)), str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match="do not match"):
        load_generator(path)


def test_saved_checkpoints_follow_the_umask_not_0600(tmp_path, generator):
    previous = os.umask(0o022)
    try:
        path = save_generator(tmp_path / "g.safetensors", generator)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644
