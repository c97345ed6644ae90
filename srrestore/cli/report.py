"""``srrestore report``: a figure comparing restorations with their reference."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["report"]


@click.command()
@click.argument("reference", type=click.Path(path_type=Path))
@click.argument("restored", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "-o", "output", required=True, type=click.Path(path_type=Path),
              help="Figure to write (.png, .pdf or .svg).")
@click.option("--crop", default=None, metavar="Y,X,SIZE",
              help="Window to show, in reference pixels [default: the most detailed one].")
@click.option("--labels", default=None, metavar="A,B,...", help="Titles of the RESTORED images, comma-separated.")
@click.option("--shave", type=click.IntRange(0), default=0, show_default=True,
              help="Border pixels left out of the PSNR/SSIM in the titles.")
@click.option("--overwrite", is_flag=True, help="Replace the figure if it exists.")
def report(reference: Path, restored: tuple[Path, ...], output: Path, crop: str | None, labels: str | None,
           shave: int, overwrite: bool) -> None:
    """Draw REFERENCE and each RESTORED side by side (e.g. bicubic, model A, model B).

    Top row: the same crop of each with a zoom inset, PSNR/SSIM in the titles.
    Bottom row: where the crop lies, then |restored - reference| maps.
    Volumes show their middle slice.

    \b
    Example:
      srrestore report hr.png bicubic.png srgan.png --labels bicubic,srgan --out report.png
    """
    from srrestore.pipelines.report import Crop, write_report

    names = [name.strip() for name in labels.split(",")] if labels is not None else None
    result = write_report(reference, restored, output, names, Crop.parse(crop) if crop else None, shave, overwrite)
    click.echo(f"wrote {output} (crop {result.crop.y},{result.crop.x},{result.crop.size})", err=True)
