"""Name in each built-in model's card the recipe files of every stage of its history.

Each entry of a built-in card's ``history`` gains ``recipe``: the ``--config`` files of its stage
under ``configs/builtin``, in the order ``srrestore train`` layers them (as ``srrestore models
--recipe NAME`` prints them). Training sessions pair with the model's stages in order; an
``averaged`` entry belongs to the stage whose run it follows (``srrestore average`` after it), any
other entry without training (``grown``) to the stage whose run it precedes (``train --init`` grows
the model as that run starts). Only the card changes: every tensor and every other metadata entry is
written back as it was, which the script checks before replacing a file. Run from the project root::

    python scripts/record_card_recipes.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from srrestore.models.registry import WEIGHTS_DIR
from srrestore.recipes import RecipeTree, Stage
from srrestore.storage.atomic import atomic_output


def stages_of_entries(history: list[dict[str, Any]], stages: list[Stage]) -> list[Stage]:
    """The stage of each history entry (see the module docstring)."""
    owners: list[Stage | None] = []
    session = -1
    for entry in history:
        if not entry["hardware"].startswith("none ("):
            session += 1
            owners = [stages[session] if owner is None else owner for owner in owners] + [stages[session]]
        elif "averaged" in entry:
            if session < 0 or not stages[session].average_with_start:
                raise ValueError(f"an averaged entry after a stage that does not average: {entry}")
            owners.append(stages[session])
        else:
            owners.append(None)  # the next session's
    if session != len(stages) - 1 or None in owners:
        raise ValueError(f"{session + 1} training sessions in the history for {len(stages)} stages")
    return owners  # type: ignore[return-value]


def with_recipes(card: dict[str, Any], stages: list[Stage]) -> dict[str, Any]:
    """``card`` with each history entry's ``recipe``."""
    history = [dict(entry, recipe=stage.config_files())
               for entry, stage in zip(card["history"], stages_of_entries(card["history"], stages))]
    return {**card, "history": history}


def rewrite(path: Path, stages: list[Stage]) -> bool:
    """Write the recipes into the card of checkpoint ``path``; False when it already names them."""
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    card = json.loads(metadata["card"])
    updated = {**metadata, "card": json.dumps(with_recipes(card, stages), sort_keys=True)}
    if updated == metadata:
        return False
    tensors = load_file(str(path))
    mode = path.stat().st_mode & 0o777
    with atomic_output(path, overwrite=True) as temporary:
        save_file(tensors, str(temporary), metadata=updated)
        os.chmod(temporary, mode)
        with safe_open(str(temporary), "pt") as handle:
            written, metadata_written = {name: handle.get_tensor(name) for name in handle.keys()}, handle.metadata()
        same = written.keys() == tensors.keys() and all(torch.equal(written[k], tensors[k]) for k in tensors)
        if not same or metadata_written != updated:
            raise RuntimeError(f"{path}: the rewritten file does not hold the same tensors and the new card")
    return True


def main() -> None:
    tree = RecipeTree()
    for name in tree.names():
        path = WEIGHTS_DIR / f"{name}.safetensors"
        changed = rewrite(path, tree.stages(name))
        print(f"{path}: {'history names its recipes' if changed else 'unchanged'}")


if __name__ == "__main__":
    main()
