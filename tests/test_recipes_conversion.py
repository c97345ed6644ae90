"""Every stage of configs/builtin merges to the recipe its old flat files' combination gave (the old
files' header comments name each stage's ``--config`` files and command-line overrides)."""

from __future__ import annotations

from pathlib import Path

import pytest

from srrestore.recipes import RecipeTree
from srrestore.training.config import load_recipe, merge_recipes

OLD = Path(__file__).resolve().parents[1] / "configs"
X4_LONGER = {"pretrain_steps": 15000, "gan_steps": 0}  # rgb-x4-continue: "--pretrain-steps 15000 --gan-steps 0"
GRAY_X4_GAN = {"card": {"description": (  # the grey x4 GAN card's recipe: the GAN-stage text before it served x2
    "srrestore SR-GAN generator (srgan configuration, about 0.1 M parameters), x4, GAN phase: trained on one CPU "
    "thread in several stages (see history), the last adversarial (weight 5e-3, discriminator feature matching); "
    "sharper, less faithful than the PSNR model.")}}
OLD_STAGES = {
    ("srgan-rgb-x4-psnr", 1): ["rgb-x4"],
    ("srgan-rgb-x4-psnr", 2): ["rgb-x4-continue"],
    ("srgan-rgb-x4-psnr", 3): ["rgb-x4-continue", X4_LONGER],
    ("srgan-rgb-x4-psnr", 4): ["rgb-x4-continue", "x4-l2-polish"],
    ("srgan-rgb-x4-psnr", 5): ["rgb-x4-continue", X4_LONGER],
    ("srgan-rgb-x4-psnr", 6): ["rgb-x4-continue", "x4-l2-polish"],
    ("srgan-rgb-x4-psnr", 7): ["rgb-x4-continue", "x4-low-lr"],
    ("srgan-rgb-x4-psnr", 8): ["rgb-x4-continue", "x4-l2-polish"],
    ("srgan-rgb-x4-psnr", 9): ["rgb-x4-continue", "x4-low-lr", "x4-averaged-stage"],
    ("srgan-rgb-x4-psnr", 10): ["rgb-x4-continue", "x4-low-lr", "x4-deeper"],
    ("srgan-rgb-x4-gan", 8): ["rgb-x4-continue", "gan-stage"],
    ("srgan-rgb-x2-psnr", 1): ["rgb-x2"],
    ("srgan-rgb-x2-psnr", 2): ["rgb-x2", "x2-low-lr"],
    ("srgan-rgb-x2-psnr", 3): ["rgb-x2", "x2-low-lr", {"pretrain_steps": 3500, "seed": 1}],
    ("srgan-rgb-x2-psnr", 4): ["rgb-x2", "x2-low-lr", {"pretrain_steps": 3500, "seed": 2}],
    ("srgan-rgb-x2-gan", 5): ["rgb-x2", "gan-stage", "x2-gan-stage"],
    ("srgan-gray-x2-psnr", 1): ["gray-x2"],
    ("srgan-gray-x2-psnr", 2): ["gray-x2", "x2-continue"],
    ("srgan-gray-x2-psnr", 3): ["gray-x2", "x2-continue"],
    ("srgan-gray-x2-gan", 3): ["gray-x2", "gan-stage"],
    ("srgan-gray-x4-psnr", 1): ["gray-x4"],
    ("srgan-gray-x4-psnr", 2): ["gray-x4-continue"],
    ("srgan-gray-x4-psnr", 3): ["gray-x4-continue", "gray-x4-domains"],
    ("srgan-gray-x4-gan", 4): ["gray-x4-continue", "gray-x4-domains", "gan-stage", GRAY_X4_GAN],
}


def old_recipe(layers: list) -> dict:
    merged: dict = {}
    for layer in layers:
        merged = merge_recipes(merged, layer if isinstance(layer, dict) else load_recipe(OLD / f"builtin-{layer}.toml"))
    return merged


def test_every_stage_of_the_tree_is_listed_once():
    tree = RecipeTree()
    own = {(stage.model, stage.number) for name in tree.names() for stage in tree.stages(name)}
    assert own == set(OLD_STAGES)


@pytest.mark.parametrize(("model", "number"), sorted(OLD_STAGES))
def test_stage_merges_to_the_old_combination(model, number):
    stage = next(stage for stage in RecipeTree().stages(model) if stage.model == model and stage.number == number)
    assert stage.merged_recipe() == old_recipe(OLD_STAGES[model, number])
    assert stage.config().to_dict() == stage.config().from_dict(old_recipe(OLD_STAGES[model, number])).to_dict()
