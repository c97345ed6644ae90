"""``srrestore models``: list the built-in models with their cards."""

from __future__ import annotations

import json

import click

__all__ = ["models"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the full cards as JSON.")
@click.option("--recipe", "recipe_of", metavar="NAME", default=None,
              help="Print the commands that remake built-in model NAME, stage by stage, from its recipes "
                   "(configs/builtin/NAME), to run from the project root.")
def models(as_json: bool, recipe_of: str | None) -> None:
    """List the built-in models: scale, channels, phase and model card.

    \b
    Example:
      srrestore models
      srrestore restore scan.png out.png --model srgan-rgb-x2-gan
      srrestore models --recipe srgan-rgb-x4-gan
    """
    from srrestore.models.registry import list_builtin_models

    if recipe_of is not None:
        if as_json:
            raise click.UsageError("--recipe prints commands; leave out --json")
        _print_recipe(recipe_of)
        return
    builtins = list_builtin_models()
    if as_json:
        click.echo(json.dumps(
            [{"name": m.name, "config": m.info.config.to_dict(), "phase": m.info.phase,
              "training": m.info.training, "card": m.info.card} for m in builtins], indent=2))
        return
    if not builtins:
        click.echo("no built-in models installed")
        return
    for model in builtins:
        config = model.info.config
        factor = "x".join(map(str, config.scale))
        click.echo(f"{model.name:22s} scale {factor:4s} channels {config.in_channels:2d} "
                   f"phase {model.info.phase:4s} {_card_summary(model.info.card)}")


def _print_recipe(name: str) -> None:
    """The numbered commands that remake built-in model ``name``, as a shell script."""
    from srrestore.recipes import RecipeTree

    tree = RecipeTree()
    commands = tree.commands(name)
    click.echo(f"# {name}: {len(commands)} commands, from the project root; the model is {tree.model_path(name)}")
    for number, command in enumerate(commands, 1):
        click.echo(f"# {number}. {command.title}")
        click.echo(str(command))


def _card_summary(card: dict) -> str:
    """Steps, training time and the measured figures, from a model card.

    The figures are the benchmark's (``benchmarks/quality.py --record-cards``:
    PSNR, detail and speed) where the card has them, else the training's
    validation PSNR against bicubic. A built-in's history names the recipe
    files of each stage: the last stage's own file is shown.
    """
    parts = []
    steps = card.get("steps", {})
    if steps:
        parts.append(f"steps {sum(steps.values())}")
    if "training_seconds" in card:
        parts.append(f"{card['training_seconds'] / 60:.0f} min on {card.get('hardware', '?')}")
    history = card.get("history", [])
    if history and history[-1].get("recipe"):
        parts.append(f"last stage {history[-1]['recipe'][-1]}")
    benchmark = card.get("benchmark", {})
    if benchmark.get("sets"):
        for name, scores in benchmark["sets"].items():
            parts.append(f"{name} {scores['psnr']:.2f} dB detail {scores['detail']:.2f}")
        speed = f"{benchmark['output_mp_per_s']:.2f} MP/s"
        if "output_mp_per_s_compiled" in benchmark:
            speed += f" ({benchmark['output_mp_per_s_compiled']:.2f} compiled)"
        parts.append(f"{speed} (benchmark {benchmark.get('date', '')})")
        return ", ".join(parts)
    for name, scores in card.get("validation", {}).items():
        if "psnr" in scores and "bicubic_psnr" in scores:
            parts.append(f"{name} {scores['psnr']:.2f} dB (bicubic {scores['bicubic_psnr']:.2f})")
    return ", ".join(parts)
