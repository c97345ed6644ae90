"""MkDocs hook: the models page shows the cards of the built-in models, read from their files at build time.

``docs/models.md`` holds the line :data:`MARKER`; each build replaces it with :func:`cards_markdown`
of :func:`srrestore.models.registry.list_builtin_models`: an overview table, then one section per
model with its description, intended use, licence, measured figures and training history, all from
the card in the ``.safetensors`` file. Nothing of a card is typed into the page by hand, so the page
cannot disagree with ``srrestore models``.
"""

from __future__ import annotations

from typing import Any

from safetensors import safe_open

from srrestore.models.registry import BuiltinModel, list_builtin_models

MARKER = "<!-- model-cards: generated at build time by docs/hooks/model_cards.py -->"
PAGE = "models.md"


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Any) -> str:
    """Replace :data:`MARKER` in the models page by the built-in models' cards."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        from mkdocs.exceptions import PluginError  # only a build needs mkdocs; the tests import this module

        raise PluginError(f"docs/{PAGE} lost the line {MARKER!r} where the model cards go")
    return markdown.replace(MARKER, cards_markdown(list_builtin_models()))


def parameter_count(model: BuiltinModel) -> int:
    """Number of weights in the checkpoint (from the tensor shapes; nothing is loaded)."""
    total = 0
    with safe_open(str(model.path), framework="numpy") as weights:
        for key in weights.keys():
            count = 1
            for extent in weights.get_slice(key).get_shape():
                count *= extent
            total += count
    return total


def _figures(card: dict[str, Any], set_name: str, scale: tuple[int, int]) -> str:
    """The benchmark's PSNR / SSIM / detail; a through-plane model's validation (thick rows) where it has no benchmark."""
    scores = card.get("benchmark", {}).get("sets", {}).get(set_name)
    if scores is not None:
        return f"{scores['psnr']:.2f} / {scores['ssim']:.4f} / {scores['detail']:.2f}"
    validation = card.get("validation", {}).get(set_name) if 1 in scale else None
    return "-" if validation is None else f"{validation['psnr']:.2f} / {validation['ssim']:.4f} / - (thick rows)"


def _speed(card: dict[str, Any]) -> str:
    benchmark = card.get("benchmark", {})
    if "output_mp_per_s" not in benchmark:
        return "-"
    compiled = benchmark.get("output_mp_per_s_compiled")
    return f"{benchmark['output_mp_per_s']:.2f}" + (f" / {compiled:.2f}" if compiled is not None else "")


def overview(models: list[BuiltinModel]) -> str:
    """One row per model: factor, channels, phase, size, training and the card's benchmark figures."""
    lines = ["| model | scale | channels | phase | parameters | steps (pixel + GAN) | training | "
             "Set5 PSNR / SSIM / detail | Set14 PSNR / SSIM / detail | output MP/s (eager / compiled) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model in models:
        card, config = model.info.card, model.info.config
        steps = card.get("steps", {})
        minutes = card.get("training_seconds", 0) / 60
        lines.append(
            f"| `{model.name}` | {'x'.join(map(str, config.scale))} | {config.in_channels} | {model.info.phase} | "
            f"{parameter_count(model) / 1e6:.2f} M | {steps.get('pretrain', 0)} + {steps.get('gan', 0)} | "
            f"{minutes:.0f} min | {_figures(card, 'Set5', config.scale)} | {_figures(card, 'Set14', config.scale)} |"
            f" {_speed(card)} |")
    return "\n".join(lines)


def history(card: dict[str, Any]) -> str:
    """The card's training stages, one row each (steps, time, hardware, and any averaging or growth)."""
    lines = ["| stage | pixel steps | GAN steps | minutes | hardware | note |", "|---|---|---|---|---|---|"]
    for index, stage in enumerate(card.get("history", []), 1):
        notes = []
        if "averaged" in stage:
            notes.append("weights averaged: " + ", ".join(f"{entry['file']} x {entry['weight']}"
                                                          for entry in stage["averaged"]))
        if "made_through_plane" in stage:
            notes.append("made through-plane " + "x".join(map(str, stage["made_through_plane"]["scale"])) + ": "
                         + stage["made_through_plane"]["how"])
        if "grown" in stage:
            notes.append("network grown, blocks per group "
                         + " -> ".join(map(str, stage["grown"].get("blocks_per_group", []))))
        steps = stage.get("steps", {})
        lines.append(f"| {index} | {steps.get('pretrain', 0)} | {steps.get('gan', 0)} | "
                     f"{stage.get('seconds', 0) / 60:.1f} | {stage.get('hardware', '-')} | {'; '.join(notes)} |")
    return "\n".join(lines)


def section(model: BuiltinModel) -> str:
    """Everything the card of ``model`` says, as Markdown."""
    card = model.info.card
    parts = [f"### {model.name}", "", card.get("description", "(no description in the card)"), "",
             f"- **Intended use:** {card.get('intended_use', '-')}",
             f"- **Licence:** {card.get('license', '-')}",
             f"- **Training data:** {', '.join(card.get('data', [])) or '-'}"]
    benchmark = card.get("benchmark")
    if benchmark:
        parts += [f"- **Benchmark:** {benchmark.get('date', '-')}, `{benchmark.get('command', '-')}`",
                  f"- **Machine:** {benchmark.get('machine', '-')}",
                  f"- **Protocol:** {benchmark.get('protocol', '-')}"]
    if card.get("validation_protocol"):
        parts.append(f"- **Validation during training:** {card['validation_protocol']}")
    if card.get("history"):
        parts += ["", "Training history:", "", history(card)]
    return "\n".join(parts)


def cards_markdown(models: list[BuiltinModel]) -> str:
    """The overview table and one section per model, from the cards of ``models``."""
    if not models:
        return "No built-in models are installed."
    return "\n\n".join([overview(models), *(section(model) for model in models)])
