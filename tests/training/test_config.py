"""Training recipes: parsing, validation with hints, TOML/JSON files, learning-rate schedules."""

from __future__ import annotations

import json
import math

import pytest

from srrestore.errors import ConfigError, InputReadError
from srrestore.training.config import OptimizerConfig, TrainingConfig, load_recipe, merge_recipes, parse_scale


@pytest.mark.parametrize("value, expected", [(4, (4, 4)), ("2", (2, 2)), ("1x4", (1, 4)), ([8, 2], (8, 2)), ("3X3", (3, 3))])
def test_parse_scale(value, expected):
    assert parse_scale(value) == expected


@pytest.mark.parametrize("value", ["7", "1x1", "4x", "x", [1, 2, 3], 0])
def test_parse_scale_refuses_bad_factors(value):
    with pytest.raises(ConfigError, match="scale"):
        parse_scale(value)


def test_recipe_round_trips_and_keeps_the_scale_in_the_degradation():
    config = TrainingConfig.from_dict({"scale": "1x4", "channels": 1, "degradation": {"blur_sigma": [0, 1]},
                                       "loss": {"content": "none", "gamma": 0}})
    assert config.degradation.scale == (1, 4)
    again = TrainingConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


def test_unknown_and_invalid_entries_are_refused_with_hints():
    with pytest.raises(ConfigError, match="did you mean 'patch_size'"):
        TrainingConfig.from_dict({"patch_sise": 64})
    with pytest.raises(ConfigError, match="did you mean 'schedule'"):
        TrainingConfig.from_dict({"pretrain_optimizer": {"schedul": "cosine"}})
    with pytest.raises(ConfigError, match="patch_size .*multiple of the scale"):
        TrainingConfig.from_dict({"patch_size": 30, "scale": 4})
    with pytest.raises(ConfigError, match="degradation scale"):
        TrainingConfig.from_dict({"scale": 2, "degradation": {"scale": 4}})
    with pytest.raises(ConfigError, match="did you mean 'bf16'"):
        TrainingConfig.from_dict({"precision": "bf61"})
    with pytest.raises(ConfigError, match="at least 1"):
        TrainingConfig.from_dict({"pretrain_steps": 0, "gan_steps": 0})


def test_toml_and_json_recipes(tmp_path):
    toml = tmp_path / "r.toml"
    toml.write_text('scale = 2\npretrain_steps = 10\n[loss]\ncontent = "none"\ngamma = 0\n')
    assert TrainingConfig.from_dict(load_recipe(toml)).scale == (2, 2)
    as_json = tmp_path / "r.json"
    as_json.write_text(json.dumps({"channels": 1}))
    assert load_recipe(as_json) == {"channels": 1}
    broken = tmp_path / "broken.toml"
    broken.write_text("scale = [")
    with pytest.raises(ConfigError, match="does not parse"):
        load_recipe(broken)
    with pytest.raises(InputReadError, match="cannot read recipe"):
        load_recipe(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match=".toml or .json"):
        load_recipe(tmp_path / "r.yaml")


def test_merge_recipes_merges_nested_tables():
    merged = merge_recipes({"loss": {"alpha": 1, "beta": 2}, "seed": 1}, {"loss": {"beta": 3}, "seed": 2})
    assert merged == {"loss": {"alpha": 1, "beta": 3}, "seed": 2}


def test_learning_rate_schedules():
    cosine = OptimizerConfig(lr=1e-3, schedule="cosine", min_lr_ratio=0.1)
    assert cosine.lr_at(0, 100) == pytest.approx(1e-3)
    assert cosine.lr_at(50, 100) == pytest.approx(1e-4 + 0.5 * 9e-4 * (1 + math.cos(math.pi * 0.5)))
    assert cosine.lr_at(100, 100) == pytest.approx(1e-4)
    steps = OptimizerConfig(lr=1.0, schedule="multistep", milestones=[0.5, 0.75], gamma=0.1)
    assert [steps.lr_at(step, 100) for step in (49, 50, 74, 75)] == pytest.approx([1.0, 0.1, 0.1, 0.01])
    warm = OptimizerConfig(lr=1.0, schedule="constant", warmup_steps=4)
    assert [warm.lr_at(step, 10) for step in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    with pytest.raises(ConfigError, match="did you mean 'cosine'"):
        OptimizerConfig(schedule="cosin")


def test_resume_differences_allow_only_step_counts_and_intervals():
    stored = TrainingConfig()
    longer = TrainingConfig(gan_steps=5000, log_interval=7)
    assert longer.resume_differences(stored) == []
    assert TrainingConfig(batch_size=3, seed=9).resume_differences(stored) == ["batch_size", "seed"]
