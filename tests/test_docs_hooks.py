"""The documentation site's build hooks (``docs/hooks/``): the models page and the package layout.

The strict site build in CI runs them too; these tests check what they produce without MkDocs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType, SimpleNamespace

from srrestore.models.checkpoint import load_generator
from srrestore.models.registry import list_builtin_models

HOOKS = Path(__file__).resolve().parents[1] / "docs" / "hooks"


def hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_hook_{name}", HOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def page(src_uri: str) -> SimpleNamespace:
    return SimpleNamespace(file=SimpleNamespace(src_uri=src_uri))


def test_models_page_shows_every_built_in_card_from_its_file():
    cards = hook("model_cards")
    models = list_builtin_models()
    assert models
    markdown = cards.on_page_markdown(f"# Models\n\n{cards.MARKER}\n\nhistory", page=page("models.md"), config=None,
                                      files=None)
    assert cards.MARKER not in markdown and markdown.endswith("history")
    for model in models:
        card = model.info.card
        assert f"\n### {model.name}\n" in markdown
        assert card["description"] in markdown and card["intended_use"] in markdown
        row = next(line for line in markdown.splitlines() if line.startswith(f"| `{model.name}` |"))
        if 1 in model.info.config.scale:  # through-plane: the validation on thick rows, said so
            set5 = card["validation"]["Set5"]
            assert f"{set5['psnr']:.2f} / {set5['ssim']:.4f} / - (thick rows)" in row
        else:
            set5 = card["benchmark"]["sets"]["Set5"]
            assert f"{set5['psnr']:.2f} / {set5['ssim']:.4f} / {set5['detail']:.2f}" in row
        assert len(card["history"]) == sum(1 for line in cards.section(model).splitlines()
                                           if line[:3].strip("| ").isdigit())


def test_parameter_count_is_the_networks():
    cards = hook("model_cards")
    model = list_builtin_models()[0]
    network, _ = load_generator(model.path)
    assert cards.parameter_count(model) == sum(tensor.numel() for tensor in network.state_dict().values())


def test_other_pages_are_left_alone():
    cards = hook("model_cards")
    text = f"no cards here {cards.MARKER}"
    assert cards.on_page_markdown(text, page=page("index.md"), config=None, files=None) == text


def test_package_layout_puts_the_mapped_folders_under_the_package(tmp_path):
    layout = hook("package_layout")
    assert layout.package_dirs() == {"srrestore.domains": "domains", "srrestore.pipelines": "pipelines"}
    package = layout.lay_out(tmp_path / "layout") / "srrestore"
    assert (package / "engine" / "tiler.py").is_file() and (package / "__init__.py").is_file()
    assert (package / "domains" / "satellite" / "geotiff.py").is_file()
    assert (package / "pipelines" / "medical" / "restore.py").is_file()
    assert (package / "domains").resolve() == layout.ROOT / "domains"
