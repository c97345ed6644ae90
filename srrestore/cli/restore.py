"""``srrestore restore``: upscale images, GeoTIFFs, NIfTI volumes and DICOM series."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from srrestore.errors import SRRestoreWarning

from srrestore.cli.options import engine_options, quiet_option

__all__ = ["restore"]


class SliceScale(click.ParamType):
    """A through-plane factor: a positive integer or ``auto``."""

    name = "N|auto"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif str(value).strip().lower() == "auto":
            return "auto"
        else:
            try:
                number = int(str(value))
            except ValueError:
                self.fail(f"{value!r} is neither a positive integer nor auto", param, ctx)
        if number < 1:
            self.fail(f"{number} is not a positive integer", param, ctx)
        return number


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.argument("output_path", metavar="OUTPUT", type=click.Path(path_type=Path))
@click.option("--model", "-m", default="default", show_default=True,
              help="Built-in model name (see `srrestore models`) or a .safetensors checkpoint.")
@click.option("--scale", "-s", type=click.IntRange(1), default=None,
              help="In-plane upscale factor [default: 4, or the model's own].")
@click.option("--slice-scale", type=SliceScale(), default=None, metavar="N|auto",
              help="Volumes: through-plane factor, or auto (from the header's spacings) [default: auto when the "
                   "slices are 1.5x or more the in-plane spacing and --scale is not given].")
@click.option("--target-spacing", type=click.FloatRange(min=0, min_open=True), default=None, metavar="MM",
              help="Volumes: slice spacing of the output in mm [default: the in-plane spacing, isotropic]; the "
                   "model's output is resampled onto it when its factor does not reach it exactly.")
@click.option("--slice-model", default=None,
              help="Volumes with both --scale and --slice-scale: model for the through-plane pass (e.g. (4, 1)).")
@click.option("--phase", type=click.Choice(["psnr", "gan"]), default="psnr", show_default=True,
              help="Built-in variant: faithful (psnr) or sharper (gan).")
@click.option("--cog", is_flag=True, help="GeoTIFF: write a Cloud-Optimised GeoTIFF.")
@click.option("--nodata", type=float, default=None, metavar="VALUE",
              help="GeoTIFF: declare the nodata value of a raster that has none (e.g. a fill of 0); "
                   "it is masked and written into the output.")
@click.option("--series", "series_uid", default=None, help="DICOM: SeriesInstanceUID to restore from a folder.")
@click.option("--resample-irregular", is_flag=True,
              help="DICOM: resample a series with gantry tilt or uneven slice spacing onto a regular grid"
              " instead of refusing it.")
@click.option("--dask", default=None, metavar="ADDRESS",
              help="Compute the blocks on a Dask cluster (scheduler address, e.g. tcp://host:8786).")
@click.option("--backend", type=click.Choice(["auto", "torch", "onnxruntime"]), default="auto", show_default=True,
              help="Run the network with torch, or with ONNX Runtime (a model from `srrestore export`); "
                   "auto: by the model file.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@engine_options
@quiet_option
def restore(input_path: Path, output_path: Path, quiet: bool, **options: object) -> None:
    """Upscale INPUT into OUTPUT in the same format, keeping values and geometry.

    INPUT is an image (PNG, JPEG, TIFF), a GeoTIFF/COG, a NIfTI volume, a DICOM
    series (folder or file) or a folder of images. A volume whose slices are
    1.5x or more its in-plane spacing is made isotropic through-plane by
    default (built-in slice models x2 to x6; `srrestore finetune SCAN` makes
    one for the scan itself); in-plane SR happens when --scale is given.

    \b
    Examples:
      srrestore restore examples/data/landsat_rgb.png out.png --scale 4
      srrestore restore scene.tif scene_x2.tif --scale 2 --cog
      srrestore restore mosaic.tif mosaic_x4.tif --nodata 0
      srrestore restore thick_ct/ ct_iso/
      srrestore restore ct_series/ ct_sr/ --slice-scale 4
      srrestore restore mr.nii.gz mr_1mm.nii.gz --target-spacing 1
    """
    from srrestore.pipelines.restore import restore_path

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SRRestoreWarning)
        reports = restore_path(input_path, output_path, {"progress": not quiet, **options})
    warned = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, SRRestoreWarning)))
    for message in warned:  # shown even with --quiet: each may mean the output is not what was wanted
        click.echo(f"srrestore: warning: {message}", err=True)
    if not quiet:
        for report in reports:
            factor = "x".join(map(str, report.scale))
            click.echo(f"{report.input} -> {report.output} ({report.format}, {factor}, model {report.model})", err=True)
            for precision in _precision_notes(report.engine):
                click.echo(f"  precision: {precision}", err=True)
            for note in report.notes:
                if note not in warned:
                    click.echo(f"  note: {note}", err=True)


def _precision_notes(engine: object) -> list[str]:
    """The engine's precision choices (one per pass of a volume; a two-plane pass is a tuple), each once."""
    if isinstance(engine, (list, tuple)):
        return list(dict.fromkeys(note for part in engine for note in _precision_notes(part)))
    note = getattr(engine, "precision_note", "")
    return [note] if note else []
