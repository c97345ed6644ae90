"""The recipe tree of the built-in models (configs/builtin, read by srrestore.recipes)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from srrestore.errors import ConfigError
from srrestore.models.registry import list_builtin_models
from srrestore.recipes import PROJECT_ROOT, RecipeTree
from srrestore.training.config import TrainingConfig, load_recipe, merge_recipes

TREE = RecipeTree()
BUILTINS = {model.name: model for model in list_builtin_models()}
STAGES = [(name, stage.number) for name in TREE.names() for stage in TREE.stages(name) if stage.model == name]


def stage_of(model: str, number: int):
    return next(stage for stage in TREE.stages(model) if stage.number == number)


def flat(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"loss.pixel": "l1", ...}``: nested tables as dotted keys (inline option tables kept whole)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and not key.endswith("_options"):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_every_builtin_model_has_a_recipe_folder_and_no_other():
    assert TREE.names() == sorted(BUILTINS)


@pytest.mark.parametrize(("model", "number"), STAGES)
def test_every_stage_merges_into_a_valid_recipe_of_its_model(model, number):
    stage = stage_of(model, number)
    config = stage.config()
    assert isinstance(config, TrainingConfig)
    assert stage.recipe.parent.name == model and stage.recipe.name.startswith(f"{number:02d}-")
    assert stage.layers[0] == PROJECT_ROOT / "configs/builtin/_shared/srgan-base.toml"
    assert config.channels == BUILTINS[model].info.config.in_channels
    assert list(config.scale) == list(BUILTINS[model].info.config.scale)
    assert all((PROJECT_ROOT / script).is_file() for script in stage.exported_data)


@pytest.mark.parametrize(("model", "number"), STAGES)
def test_every_stage_file_states_only_what_differs_from_the_recipes_below_it(model, number):
    stage = stage_of(model, number)
    below: dict[str, Any] = {}
    for layer in stage.layers[:-1]:
        below = merge_recipes(below, load_recipe(layer))
    below = flat(below)
    repeated = {key: value for key, value in flat(load_recipe(stage.recipe)).items() if below.get(key) == value}
    assert not repeated, f"{stage.recipe.name} repeats {repeated}"


@pytest.mark.parametrize("model", sorted(BUILTINS))
def test_the_last_stage_is_the_recipe_recorded_in_the_models_checkpoint(model):
    info = BUILTINS[model].info
    merged = TREE.stages(model)[-1].config().to_dict()
    recorded = TrainingConfig.from_dict(info.training["recipe"]).to_dict()  # fields added since: their defaults
    card = merged.pop("card")
    recorded.pop("card")
    assert merged == recorded
    assert card == {key: info.card[key] for key in card}  # description, license, intended use as the card says


@pytest.mark.parametrize("model", sorted(BUILTINS))
def test_the_cards_history_has_one_training_session_per_stage_with_its_steps(model):
    sessions = [entry for entry in BUILTINS[model].info.card["history"] if entry["seconds"] > 0]
    stages = TREE.stages(model)
    assert len(sessions) == len(stages)
    for stage, session in zip(stages, sessions):
        config = stage.config()
        expected = ({"pretrain": config.pretrain_steps, "gan": 0} if config.pretrain_steps
                    else {"pretrain": 0, "gan": config.gan_steps})
        assert session["steps"] == expected, stage.name
        assert session["hardware"].endswith(f"({stage.threads} threads)"), stage.name


@pytest.mark.parametrize("model", sorted(BUILTINS))
def test_every_entry_of_the_cards_history_names_the_recipe_files_of_its_stage(model):
    history = BUILTINS[model].info.card["history"]
    stages = iter(TREE.stages(model))
    recipes: list[list[str] | None] = []  # None: an untrained entry before a session (growth), its stage's
    for entry in history:
        if entry["seconds"] > 0:
            files = next(stages).config_files()
            recipes = [files if recipe is None else recipe for recipe in recipes] + [files]
        else:
            recipes.append(recipes[-1] if "averaged" in entry else None)  # an average follows its stage's run
    assert next(stages, None) is None
    assert [entry["recipe"] for entry in history] == recipes
    assert all((PROJECT_ROOT / path).is_file() for recipe in recipes for path in recipe)


def test_a_gan_model_shares_its_psnr_models_stages_up_to_its_start():
    gan, psnr = TREE.stages("srgan-rgb-x4-gan"), TREE.stages("srgan-rgb-x4-psnr")
    assert gan[:7] == psnr[:7] and [stage.name for stage in gan[7:]] == ["08-gan"]
    assert [path.relative_to(PROJECT_ROOT / "configs/builtin").as_posix() for path in gan[7].layers] == [
        "_shared/srgan-base.toml", "srgan-rgb-x4-psnr/01-start-96px.toml", "srgan-rgb-x4-psnr/02-l1-160px.toml",
        "_shared/gan-stage.toml", "srgan-rgb-x4-gan/08-gan.toml"]


# --- a tree of our own: what the reader refuses ----------------------------------------------------


def write_tree(root: Path, manifest: str, files: dict[str, str]) -> RecipeTree:
    (root / "_shared").mkdir(parents=True)
    (root / "_shared" / "base.toml").write_text("channels = 1\nscale = 2\npatch_size = 32\n")
    (root / "m").mkdir()
    (root / "m" / "stages.toml").write_text(manifest)
    for name, text in files.items():
        (root / "m" / name).write_text(text)
    return RecipeTree(root)


GOOD = 'data = ["hr"]\n[stage.01]\nover = ["_shared/base.toml"]\n[stage.02]\nover = ["01"]\n'


def test_a_tree_of_two_stages_reads_in_order(tmp_path):
    tree = write_tree(tmp_path, GOOD, {"01-a.toml": "pretrain_steps = 5\n", "02-b.toml": "seed = 3\n"})
    first, second = tree.stages("m")
    assert [path.name for path in second.layers] == ["base.toml", "01-a.toml", "02-b.toml"]
    assert second.merged_recipe() == {"channels": 1, "scale": 2, "patch_size": 32, "pretrain_steps": 5, "seed": 3}
    assert first.data == ("hr",) and first.validation == ()


@pytest.mark.parametrize(("manifest", "files", "message"), [
    (GOOD.replace("over =", "ovr ="), {"01-a.toml": "", "02-b.toml": ""}, "did you mean 'over'"),
    (GOOD.replace("data", "dat"), {"01-a.toml": "", "02-b.toml": ""}, "did you mean 'data'"),
    (GOOD, {"01-a.toml": ""}, "stage files [1] and stages.toml entries [1, 2] differ"),
    (GOOD, {"01-a.toml": "", "02-b.toml": "", "02-c.toml": ""}, "two recipes for stage 02"),
    (GOOD.replace('over = ["01"]', 'over = ["02"]'), {"01-a.toml": "", "02-b.toml": ""}, "over a later stage"),
    (GOOD.replace('over = ["01"]', 'over = ["other/01"]'), {"01-a.toml": "", "02-b.toml": ""},
     "neither this model nor the one it starts from"),
    (GOOD.replace("base.toml", "gone.toml"), {"01-a.toml": "", "02-b.toml": ""}, "no recipe"),
])
def test_a_broken_tree_is_refused_with_the_reason(tmp_path, manifest, files, message):
    tree = write_tree(tmp_path, manifest, files)
    with pytest.raises(ConfigError, match=re.escape(message)):
        tree.stages("m")


def test_an_unknown_model_is_refused_with_a_hint(tmp_path):
    tree = write_tree(tmp_path, GOOD, {"01-a.toml": "", "02-b.toml": ""})
    with pytest.raises(ConfigError, match="did you mean 'm'"):
        tree.stages("mm")
