"""Weight averaging (`srrestore average`): exact means, cards that stay true, refusals, scores."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from skimage import data

from srrestore.cli.main import cli
from srrestore.errors import CheckpointError, ConfigError
from srrestore.models.checkpoint import file_sha256, load_generator, save_generator
from srrestore.models.generator import create_generator
from srrestore.training.averaging import average_generators, measured
from srrestore.training.data import ValidationSet
from srrestore.training.degradation import Degradation

CARD = {"description": "tiny", "steps": {"pretrain": 10, "gan": 0}, "history": [{"steps": {"pretrain": 10}}],
        "validation": {"Set5": {"psnr": 30.0}}, "benchmark": {"sets": {}}}


def _saved(path, seed: int, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    generator = create_generator("test-tiny", scale=2, in_channels=1, **overrides)
    save_generator(path, generator, "psnr", training={"metrics": {"Set5": {}}, "seed": seed}, card=CARD)
    return generator


@pytest.fixture
def two_models(tmp_path):
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    return (first, _saved(first, 0)), (second, _saved(second, 1))


def test_weights_are_the_weighted_mean(two_models):
    (first, a), (second, b) = two_models
    averaged, _ = average_generators([first, second], weights=[3.0, 1.0])
    state, a_state, b_state = averaged.state_dict(), a.state_dict(), b.state_dict()
    for name, tensor in state.items():
        torch.testing.assert_close(tensor, 0.75 * a_state[name] + 0.25 * b_state[name], rtol=0, atol=1e-7)
    assert not torch.equal(state["shallow.weight"], a_state["shallow.weight"])


def test_a_model_averaged_with_itself_is_unchanged(two_models):
    (first, a), _ = two_models
    averaged, _ = average_generators([first, first])
    x = torch.from_numpy(data.camera()[:32, :32].astype(np.float32) / 255)[None, None]
    with torch.no_grad():
        torch.testing.assert_close(averaged(x), a.eval()(x), rtol=0, atol=1e-6)


def test_card_continues_the_first_and_names_every_model(two_models):
    (first, _), (second, _) = two_models
    _, info = average_generators([first, second])
    entry = info.card["history"][-1]
    assert info.card["history"][:-1] == CARD["history"] and info.card["steps"] == CARD["steps"]
    assert [item["sha256"] for item in entry["averaged"]] == [file_sha256(first), file_sha256(second)]
    assert [item["weight"] for item in entry["averaged"]] == [0.5, 0.5]
    assert "validation" not in info.card and "benchmark" not in info.card  # measured on other weights
    assert "metrics" not in info.training and info.training["seed"] == 0


def test_refuses_what_cannot_be_averaged(tmp_path, two_models):
    (first, _), (second, _) = two_models
    wider = tmp_path / "wider.safetensors"
    _saved(wider, 2, num_features=12)
    with pytest.raises(CheckpointError, match="only models trained from one start"):
        average_generators([first, wider])
    with pytest.raises(ConfigError, match="two or more"):
        average_generators([first])
    with pytest.raises(ConfigError, match="positive"):
        average_generators([first, second], weights=[1.0, -1.0])
    with pytest.raises(ConfigError, match="3 weights given for 2 models"):
        average_generators([first, second], weights=[1.0, 1.0, 1.0])


def test_measured_scores_the_average_as_training_does(photos, two_models):
    (first, _), (second, _) = two_models
    generator, info = average_generators([first, second])
    validation = ValidationSet("photos", photos(1), Degradation(scale=(2, 2)))
    scored = measured(generator, info, validation=[validation])
    expected = validation.scores(lambda lr: generator(torch.from_numpy(lr)[None])[0].detach().numpy())
    assert scored.card["validation"]["photos"] == pytest.approx(expected)
    assert scored.training["metrics"] == scored.card["validation"]
    assert expected["bicubic_psnr"] > 20 and np.isfinite(expected["psnr"])


def test_command_writes_a_scored_average_and_refuses_to_overwrite(tmp_path, two_models):
    (first, _), (second, _) = two_models
    val_dir = tmp_path / "val"
    val_dir.mkdir()
    iio.imwrite(val_dir / "camera.png", data.camera()[:64, :64])
    out = tmp_path / "soup.safetensors"
    args = ["average", str(first), str(second), "--out", str(out), "--val-dir", str(val_dir)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "average on val: PSNR" in result.output
    _, info = load_generator(out)
    assert set(info.card["validation"]) == {"val"} and len(info.card["history"][-1]["averaged"]) == 2
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1 and "exists" in again.output
    mixed = CliRunner().invoke(cli, ["average", str(first), "srgan-rgb-x4-psnr", "--out", str(tmp_path / "x.safetensors")])
    assert mixed.exit_code == 1 and "only models trained from one start" in mixed.output
