"""``srrestore finetune``: fine-tune a pretrained model on the user's own scenes or scans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from srrestore.cli.options import device_option, quiet_option

__all__ = ["finetune"]

SATELLITE_FORMATS = ("geotiff",)
MEDICAL_FORMATS = ("nifti", "dicom")


def _sigma(value: str | None) -> float | tuple[float, float] | None:
    """``"0.5"`` -> 0.5, ``"0,2"`` -> (0.0, 2.0); None stays None (the domain's default)."""
    from srrestore.errors import ConfigError

    if value is None:
        return None
    try:
        parts = [float(part) for part in value.split(",")]
    except ValueError as error:
        raise ConfigError(f"a sigma must be a number or MIN,MAX, got {value!r}") from error
    if len(parts) not in (1, 2):
        raise ConfigError(f"a sigma must be a number or MIN,MAX, got {value!r}")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def _run(inputs: list[Path], output: Path, options: dict[str, Any]) -> Any:
    """Detect the inputs' format and run its fine-tuning pipeline (which takes the options it reads)."""
    from srrestore.errors import UnsupportedInputError
    from srrestore.pipelines.restore import detect_format

    kinds = {path: detect_format(path) for path in inputs}
    if all(kind in SATELLITE_FORMATS for kind in kinds.values()):
        from srrestore.pipelines.satellite.finetune import finetune_satellite

        return finetune_satellite(inputs, output, options)
    if all(kind in MEDICAL_FORMATS for kind in kinds.values()):
        from srrestore.pipelines.medical.finetune import finetune_medical

        return finetune_medical(inputs, output, options)
    described = ", ".join(f"{path} ({kind})" for path, kind in kinds.items())
    raise UnsupportedInputError(
        f"fine-tuning takes GeoTIFF scenes or NIfTI/DICOM scans of one kind, got {described}; "
        f"for folders of plain images use `srrestore train`"
    )


@click.command()
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "-o", "output", type=click.Path(path_type=Path), required=True,
              help="Fine-tuned model to write (.safetensors).")
@click.option("--model", "-m", default="default", show_default=True,
              help="Pretrained model: a built-in name (see `srrestore models`) or a .safetensors checkpoint.")
@click.option("--scale", "-s", type=click.IntRange(1), default=None,
              help="Upscale factor [default: 4, or the model's own].")
@click.option("--phase", type=click.Choice(["psnr", "gan"]), default="psnr", show_default=True,
              help="Built-in variant to start from with --model default.")
@click.option("--reference", multiple=True, type=click.Path(path_type=Path),
              help="Co-registered HR reference of each INPUT, in order (repeatable): train on real pairs.")
@click.option("--steps", type=click.IntRange(1), default=1000, show_default=True, help="Training steps at most.")
@click.option("--max-minutes", type=click.FloatRange(0, min_open=True), default=10.0, show_default=True,
              help="Wall-clock budget of the whole run; stops cleanly and saves.")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True, help="Patches per step.")
@click.option("--patch-size", type=click.IntRange(1), default=64, show_default=True,
              help="HR patch side in pixels (a multiple of the scale).")
@click.option("--lr", "learning_rate", type=click.FloatRange(0, min_open=True), default=None,
              help="Peak learning rate (cosine-annealed). [default: 5e-5 for scenes, 2e-4 for scans]")
@click.option("--holdout-fraction", type=click.FloatRange(0, 0.5), default=0.1, show_default=True,
              help="Share of each image held out (a band along its longer axis) to score the weights; the best "
                   "are saved, never worse than the pretrained ones there. 0: off.")
@click.option("--validation-interval", type=click.IntRange(1), default=50, show_default=True,
              help="Steps between held-out scores.")
@click.option("--patience", type=click.IntRange(0), default=6, show_default=True,
              help="Stop after this many held-out scores in a row without a new best (0: never).")
@click.option("--pixel-loss", type=click.Choice(["l1", "l2", "charbonnier"]), default="l1", show_default=True)
@click.option("--pixel-weight", type=click.FloatRange(0), default=1.0, show_default=True)
@click.option("--perceptual-weight", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Weight of the perceptual loss (0: off; e.g. 0.01 for sharper results).")
@click.option("--perceptual-network", default="vgg19", show_default=True,
              help="Perceptual features: vgg19 (see --vgg-weights) or radimagenet_resnet50 (MONAI's loss on "
                   "RadImageNet's medical ResNet50, read from the torch hub cache $TORCH_HOME/hub).")
@click.option("--adversarial/--no-adversarial", default=False, show_default=True,
              help="Train a discriminator and add the adversarial loss (sharper, slower, lower PSNR).")
@click.option("--adversarial-weight", type=click.FloatRange(0), default=1e-3, show_default=True)
@click.option("--vgg-weights", default="random", show_default=True,
              help="VGG19 features: random (generic, no download), imagenet, or a .pth/.safetensors file.")
@click.option("--vgg-layer", default="relu2_2", show_default=True, help="VGG19 layer of the perceptual loss.")
@click.option("--allow-download", is_flag=True,
              help="Let --vgg-weights imagenet download torchvision's file, and --perceptual-network "
                   "radimagenet_resnet50 its torch hub repository (code it runs) and weights.")
@click.option("--blur-sigma", default=None,
              help="PSF sigma in HR pixels, a value or MIN,MAX [default: the domain's sensor model].")
@click.option("--noise-sigma", default=None,
              help="Noise sigma in normalised units, a value or MIN,MAX [default: the domain's].")
@click.option("--min-valid-fraction", type=click.FloatRange(0, 1, min_open=True), default=0.95,
              show_default=True, help="Least share of valid pixels in a training patch (the rest is filled).")
@click.option("--slice-profile", type=click.Choice(["auto", "gaussian", "box", "family"]), default=None,
              help="Scans: profile that degrades in-plane slices into thick ones (auto: estimated from the scan, "
                   "the family on scans under 8 slices; gaussian: FWHM = slice thickness, as SMORE; box: an ideal "
                   "slab; family: any of them, drawn per training image). [default: auto]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace the output model if it exists.")
@device_option
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="Training precision: auto = bf16 on GPUs with native bf16, fp16 on older GPUs, fp32 elsewhere; "
                   "bf16 or fp16 autocast on the CPU when named (fast only on CPUs with AMX or AVX512-BF16).")
@click.option("--log", "--log-file", "log", type=click.Path(path_type=Path), default=None,
              help="JSONL log: one line per 10 steps and per held-out score (under torchrun, write --log-file).")
@click.option("--state", type=click.Path(path_type=Path), default=None,
              help="Resumable state, written at every held-out score, at the end and when interrupted "
                   "[default: none, or the --resume file].")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue the interrupted run whose state this is (same inputs and options; --steps and "
                   "--max-minutes may change).")
@click.option("--stop-after", type=click.IntRange(1), default=None,
              help="End this session after this many steps, saving --state (continue with --resume).")
@quiet_option
def finetune(inputs: tuple[Path, ...], output: Path, reference: tuple[Path, ...], blur_sigma: str | None,
             noise_sigma: str | None, slice_profile: str | None, quiet: bool, **options: Any) -> None:
    """Fine-tune a pretrained model on INPUT (GeoTIFF scenes, NIfTI or DICOM scans).

    The data play the high-resolution role: they are degraded by the scale
    with a sensor-like model (nodata excluded) and the model learns to undo
    it. With --reference, real co-registered LR (INPUT) / HR pairs are used.
    Restore with the result: srrestore restore INPUT OUT --model MODEL.

    The defaults train a faithful model with the pixel loss; --adversarial and
    --perceptual-weight 0.01 add the GAN and perceptual losses (sharper, about
    three times slower per step on the CPU).

    \b
    Examples:
      srrestore finetune scene.tif --out scene_x4.safetensors --max-minutes 5
      srrestore finetune scene.tif --out sharp.safetensors --adversarial --perceptual-weight 0.01
      srrestore finetune b60m.tif --reference b30m.tif --scale 2 --out m.safetensors
      srrestore finetune thick_mr.nii.gz --out mr.safetensors --slice-profile box
      srrestore finetune ct.nii.gz -o ct.safetensors --perceptual-network radimagenet_resnet50 --perceptual-weight 0.01
      srrestore restore scene.tif scene_x4.tif --model scene_x4.safetensors
      srrestore finetune ct.nii.gz -o ct.safetensors --precision bf16 --state ct.state.safetensors --log ct.jsonl
      srrestore finetune ct.nii.gz -o ct.safetensors --resume ct.state.safetensors
      torchrun --nproc-per-node 2 -m srrestore finetune scene.tif --out m.safetensors --log-file m.jsonl
    """
    from srrestore.training.distributed import DistributedContext

    values = {**options, "reference": reference, "blur_sigma": _sigma(blur_sigma), "noise_sigma": _sigma(noise_sigma),
              "slice_profile": slice_profile, "progress": not quiet}
    report = _run(list(inputs), output, values)
    if quiet or not DistributedContext.from_environment().is_main:
        return
    if not report.finished:
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
        return
    stop = (" (stopped by the time budget)" if report.stopped_by_time
            else " (stopped early: no better held-out score)" if report.stopped_early else "")
    click.echo(f"wrote {report.output}: {report.steps}/{report.planned_steps} steps in "
               f"{report.seconds / 60:.1f} min{stop}, from {report.pretrained}", err=True)
    scores = ", ".join(f"{name} {values['psnr']:.2f} dB" for name, values in report.evaluation.items())
    click.echo(f"PSNR on {report.evaluated_on} patches (normalised units): {scores}; "
               f"saved the weights of step {report.best_step}", err=True)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
