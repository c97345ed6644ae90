"""ONNX export and the ONNX Runtime backend: same outputs as torch, through the same engine."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from skimage import data

from srrestore.cli.main import cli
from srrestore.errors import ConfigError
from srrestore.models.checkpoint import read_checkpoint_info, save_generator
from srrestore.models.generator import create_generator
from srrestore.models.onnx import NORMALISATION_RULE, OnnxGenerator, export_onnx
from srrestore.sr_model import load_model

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A seeded test-tiny RGB x2 checkpoint and its ONNX export."""
    folder = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    checkpoint = save_generator(folder / "tiny.safetensors", create_generator("test-tiny", in_channels=3, scale=2))
    return checkpoint, export_onnx(checkpoint, folder / "tiny.onnx")


def test_export_records_the_checkpoint_and_the_normalisation(exported):
    checkpoint, path = exported
    graph = onnx.load(str(path))
    metadata = {entry.key: entry.value for entry in graph.metadata_props}
    info = read_checkpoint_info(checkpoint)
    assert json.loads(metadata["srrestore.config"]) == info.config.to_dict()
    assert metadata["srrestore.phase"] == info.phase and metadata["srrestore.normalisation"] == NORMALISATION_RULE
    assert graph.opset_import[0].version >= 17
    dims = [d.dim_param or d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]  # channels fixed, the rest dynamic


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 37, 90), (1, 3, 9, 130)])
def test_onnx_runtime_equals_torch_on_any_size(exported, shape):
    """Tolerance 1e-4 in normalised units: the two runtimes sum convolutions in other orders
    (measured: below 1e-6)."""
    checkpoint, path = exported
    torch_model, onnx_model = load_model(str(checkpoint)), OnnxGenerator(path)
    assert onnx_model.spec == torch_model.spec
    lr = torch.rand(*shape)
    with torch.no_grad():
        expected = torch_model.network(lr)
    np.testing.assert_allclose(onnx_model(lr).numpy(), expected.numpy(), atol=1e-4)


def test_the_exported_attention_runs_in_one_strip_at_any_size(tmp_path, monkeypatch):
    """Eager attention runs over strips of rows; the export must not fix their number.
    Exported and run with 1-row strips in torch: ONNX Runtime equals it on a taller input."""
    from srrestore.models import layers

    monkeypatch.setattr(layers, "STRIP_PIXELS", 40)
    torch.manual_seed(1)
    checkpoint = save_generator(tmp_path / "tiny.safetensors", create_generator("test-tiny", in_channels=3, scale=2))
    path = export_onnx(checkpoint, tmp_path / "tiny.onnx")
    lr = torch.rand(1, 3, 90, 50)  # taller than the traced 64 rows
    with torch.no_grad():
        expected = load_model(str(checkpoint)).network(lr)
    np.testing.assert_allclose(OnnxGenerator(path)(lr).numpy(), expected.numpy(), atol=1e-4)


def test_restore_with_the_onnx_model_matches_torch(exported, tmp_path):
    """Through the CLI and the engine (tiles of 24 px): uint8 outputs within 1 DN, from the float
    differences above crossing a rounding boundary."""
    checkpoint, path = exported
    image = tmp_path / "in.png"
    iio.imwrite(image, data.astronaut()[100:170, 150:240])
    runs = {}
    for name, model in (("torch", checkpoint), ("onnx", path)):
        result = CliRunner().invoke(cli, ["restore", str(image), str(tmp_path / f"{name}.png"), "--model",
                                          str(model), "--tile", "24"])
        assert result.exit_code == 0, result.output
        runs[name] = iio.imread(tmp_path / f"{name}.png").astype(int)
    assert runs["onnx"].shape == (140, 180, 3)
    assert np.abs(runs["onnx"] - runs["torch"]).max() <= 1


def test_backend_mismatches_are_one_line_errors(exported, tmp_path):
    checkpoint, path = exported
    with pytest.raises(ConfigError, match="export it first"):
        load_model(str(checkpoint), backend="onnxruntime")
    with pytest.raises(ConfigError, match="backend torch cannot run tiny.onnx"):
        load_model(str(path), backend="torch")
    image = tmp_path / "in.png"
    iio.imwrite(image, data.camera()[:32, :32, None].repeat(3, axis=2))
    result = CliRunner().invoke(cli, ["restore", str(image), str(tmp_path / "o.png"), "--model", str(path),
                                      "--compile"])
    assert result.exit_code == 1 and "--compile runs torch networks only" in result.output
    assert not (tmp_path / "o.png").exists()


def test_export_command_writes_the_file_once(exported, tmp_path):
    checkpoint, _ = exported
    out = tmp_path / "m.onnx"
    assert CliRunner().invoke(cli, ["export", str(checkpoint), "--out", str(out)]).exit_code == 0
    again = CliRunner().invoke(cli, ["export", str(checkpoint), "--out", str(out)])
    assert again.exit_code == 1 and "pass --overwrite" in again.output
    wrong = CliRunner().invoke(cli, ["export", str(checkpoint), "--out", str(tmp_path / "m.onnx.txt")])
    assert wrong.exit_code == 1 and "name it .onnx" in wrong.output
