"""``srrestore average``: average the weights of models trained from one start."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["average"]


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True, help="Averaged model (.safetensors).")
@click.option("--weight", "weights", type=float, multiple=True,
              help="Weight of each model, in order (repeat once per model). [default: equal]")
@click.option("--val-dir", "val_dirs", multiple=True, type=click.Path(path_type=Path),
              help="Folder of held-out HR images to score the average on (repeatable), as train does.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def average(models: tuple[str, ...], out: Path, weights: tuple[float, ...], val_dirs: tuple[Path, ...],
            overwrite: bool) -> None:
    """Average the weights of MODELS (files or built-in names) trained from one start.

    Models fine-tuned from the same checkpoint (e.g. a `train --init` stage and
    its start, or runs with other seeds) often score higher averaged. The card
    continues the first model's: give the one with the longest training first.

    \b
    Example:
      srrestore average stage.safetensors srgan-rgb-x4-psnr --out soup.safetensors \\
          --val-dir ../shared/data/sr/val/Set5
    """
    from srrestore.domains.image import read_image
    from srrestore.models.checkpoint import save_generator
    from srrestore.models.registry import resolve_checkpoint
    from srrestore.training.averaging import average_generators, measured
    from srrestore.training.config import TrainingConfig
    from srrestore.training.data import ValidationSet
    from srrestore.training.degradation import Degradation

    paths = [resolve_checkpoint(model) for model in models]
    generator, info = average_generators(paths, weights or None)
    if val_dirs:
        recipe = info.training.get("recipe")
        config = TrainingConfig.from_dict(recipe) if recipe else None
        degradation = config.degradation if config else Degradation(info.config.scale)
        validation = [ValidationSet.from_folder(folder, info.config.in_channels, degradation, read_image,
                                                config.seed if config else 0) for folder in val_dirs]
        info = measured(generator, info, validation)
    save_generator(out, generator, info.phase, training=info.training, card=info.card, overwrite=overwrite)
    click.echo(f"wrote {out}", err=True)
    for name, values in info.card.get("validation", {}).items():
        click.echo(f"average on {name}: PSNR {values['psnr']:.2f} dB (bicubic {values['bicubic_psnr']:.2f})", err=True)
