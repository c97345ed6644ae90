"""``srrestore train``: two-phase SR-GAN training from folders of HR images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from srrestore.cli.options import device_option, quiet_option

__all__ = ["train"]


def _overrides(options: dict[str, Any]) -> dict[str, Any]:
    """Recipe entries for the options given on the command line (None = not given)."""
    from srrestore.training.config import parse_scale

    recipe = {key: value for key, value in options.items() if value is not None}
    if "scale" in recipe:
        factors = list(parse_scale(recipe["scale"]))
        recipe["scale"], recipe["degradation"] = factors, {"scale": factors}
    return recipe


@click.command()
@click.argument("hr_dirs", metavar="HR_DIR...", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Final model (.safetensors): phase 2's GAN generator, or phase 1's without phase 2.")
@click.option("--config", "recipe_paths", type=click.Path(path_type=Path), multiple=True,
              help="Training recipe (.toml or .json, see configs/); repeatable, later files override earlier "
                   "ones key by key; options given here override them all.")
@click.option("--scale", "-s", default=None, help="Upscale factor: 2, 4, or rows x columns such as 1x4. [default: 4]")
@click.option("--channels", type=click.IntRange(1, 16), default=None,
              help="1 (grey; RGB images are converted) or 3 (RGB). [default: 3]")
@click.option("--generator", default=None, help="Generator configuration (srgan, srgan-large). [default: srgan]")
@click.option("--pretrain-steps", type=click.IntRange(0), default=None, help="Phase 1 steps (pixel loss).")
@click.option("--gan-steps", type=click.IntRange(0), default=None, help="Phase 2 steps (adversarial).")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Patches per step. [default: 16]")
@click.option("--patch-size", type=click.IntRange(1), default=None,
              help="HR patch side in pixels, a multiple of the scale. [default: 128]")
@click.option("--seed", type=int, default=None, help="Seed of the weights and the data. [default: 0]")
@click.option("--val-dir", "val_dirs", multiple=True, type=click.Path(path_type=Path),
              help="Folder of held-out HR images to validate on (repeatable; e.g. Set5, Set14).")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Without --val-dir: share of the training images held out for validation.")
@click.option("--psnr-out", type=click.Path(path_type=Path), default=None,
              help="Phase 1 model. [default: OUT with .psnr.safetensors]")
@click.option("--state", "state_path", type=click.Path(path_type=Path), default=None,
              help="Resumable state. [default: OUT with .state.safetensors]")
@click.option("--log", "--log-file", "log_path", type=click.Path(path_type=Path), default=None,
              help="JSONL log, one line per log interval and per validation (under torchrun, write --log-file).")
@click.option("--resume", "resume_path", type=click.Path(path_type=Path), default=None,
              help="Continue the run whose state this is (same recipe; step counts may grow).")
@click.option("--init", "init_model", default=None,
              help="Start from this model's weights (built-in name or .safetensors of the same architecture, "
                   "or a shallower one: a recipe with more num_groups or blocks_per_group grows it, the added "
                   "layers starting as identities); its card's steps and training time carry over.")
@click.option("--stop-after", type=click.IntRange(1), default=None,
              help="Stop after this many steps in this session, saving the state (resume later).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@device_option
@quiet_option
def train(
    hr_dirs: tuple[Path, ...],
    out: Path | None,
    recipe_paths: tuple[Path, ...],
    val_dirs: tuple[Path, ...],
    psnr_out: Path | None,
    state_path: Path | None,
    log_path: Path | None,
    resume_path: Path | None,
    init_model: str | None,
    stop_after: int | None,
    overwrite: bool,
    device: str,
    quiet: bool,
    **options: Any,
) -> None:
    """Train an SR-GAN generator on the images under HR_DIR (searched recursively).

    Phase 1 pre-trains with the pixel loss and writes the PSNR-oriented model;
    phase 2 alternates discriminator and generator steps and writes the GAN
    model. LR inputs are made on the fly by MATLAB-compatible bicubic
    downscaling (plus blur, noise or JPEG if the recipe asks). Under torchrun
    it trains on every GPU with DDP.

    \b
    Examples:
      srrestore train ../shared/data/sr/train --out model.safetensors --scale 4 \\
          --pretrain-steps 2000 --gan-steps 500 --val-dir ../shared/data/sr/val/Set5
      srrestore train ../shared/data/sr/train --config configs/builtin/_shared/srgan-base.toml \\
          --config configs/builtin/srgan-rgb-x4-psnr/01-start-96px.toml --out m.safetensors
      srrestore train --resume model.state.safetensors --gan-steps 1000
      srrestore train ../shared/data/sr/train --config configs/builtin/_shared/srgan-base.toml \\
          --config configs/builtin/srgan-rgb-x4-psnr/01-start-96px.toml \\
          --config configs/builtin/srgan-rgb-x4-psnr/10-deeper.toml --init srgan-rgb-x4-psnr --out m.safetensors
      torchrun --nproc-per-node 4 -m srrestore train data/ --out m.safetensors --log-file m.jsonl
    """
    from srrestore.pipelines.image.train import TrainingFiles, train_images

    if not hr_dirs and resume_path is None:
        raise click.UsageError("give at least one HR_DIR (or --resume a run)")
    if out is None and resume_path is None:
        raise click.UsageError("give --out MODEL.safetensors (or --resume a run)")
    if init_model is not None and resume_path is not None:
        raise click.UsageError("--init starts a new run; a resumed run already has its weights")
    run = train_images(
        list(hr_dirs), TrainingFiles(out, psnr_out, state_path, log_path), list(recipe_paths), _overrides(options),
        list(val_dirs), resume=resume_path, init=init_model, stop_after=stop_after, overwrite=overwrite,
        device=device, progress=not quiet,
    )
    result, config, outputs = run.result, run.config, run.result.outputs
    if quiet or not run.is_main:
        return
    if not result.finished:
        click.echo(f"stopped at step {result.step}/{config.total_steps}; "
                   f"continue with: srrestore train --resume {outputs.state}", err=True)
        return
    if result.stopped_by is not None:
        click.echo(f"ended at step {result.step}/{config.total_steps} by the {result.stopped_by}", err=True)
    for path in dict.fromkeys(result.saved):
        click.echo(f"wrote {path}", err=True)
    for phase, sets in result.metrics.items():
        for name, values in sets.items():
            click.echo(f"{phase} model on {name}: PSNR {values['psnr']:.2f} dB (bicubic {values['bicubic_psnr']:.2f}), "
                       f"SSIM {values['ssim']:.4f} (bicubic {values['bicubic_ssim']:.4f})", err=True)
