"""``srrestore evaluate``: PSNR, SSIM and consistency error of a restoration."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["evaluate"]


@click.command()
@click.argument("reference", type=click.Path(path_type=Path))
@click.argument("restored", type=click.Path(path_type=Path))
@click.option("--lr", "low_res", type=click.Path(path_type=Path), default=None,
              help="The low-resolution input: also report the consistency error (area downscaling).")
@click.option("--scale", "-s", type=click.IntRange(1), default=None,
              help="In-plane factor: the default --shave, and checked against --lr.")
@click.option("--shave", type=click.IntRange(0), default=None,
              help="Border pixels left out on every side [default: --scale, else 0].")
@click.option("--y-channel/--all-channels", "y_channel", default=None,
              help="Measure BT.601 luma, or every channel [default: luma for 8-bit RGB images].")
@click.option("--body-mask/--no-body-mask", "use_body_mask", default=None,
              help="Measure inside the body mask only [default: on for NIfTI and DICOM].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(reference: Path, restored: Path, low_res: Path | None, scale: int | None, shave: int | None,
             y_channel: bool | None, use_body_mask: bool | None, as_json: bool) -> None:
    """Compare RESTORED with its ground truth REFERENCE (any supported format).

    PSNR and SSIM (Gaussian window 11, sigma 1.5) on the BT.601 luma of 8-bit
    RGB images, otherwise per channel and averaged, over valid pixels (nodata
    left out; for NIfTI and DICOM, inside the body mask). Data range: 255 for
    8-bit data, otherwise the reference's range over the measured pixels.
    With --lr, RESTORED is area-downscaled and compared with the input
    (maximum and RMS error in stored units).

    \b
    Examples:
      srrestore evaluate hr.png restored.png --scale 4
      srrestore evaluate scene_hr.tif scene_x2.tif --lr scene.tif --json
    """
    from srrestore.pipelines.evaluate import evaluate_files

    result = evaluate_files(reference, restored, low_res, shave, scale, y_channel, use_body_mask)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    channels = "Y channel" if result.y_channel else f"mean of {len(result.data_range)} channel(s)"
    ranges = ", ".join(f"{value:g}" for value in result.data_range)
    mask = ", body mask" if result.body_mask else ""
    click.echo(f"PSNR {result.psnr:.4f} dB  SSIM {result.ssim:.4f}  ({channels}, data range {ranges}, "
               f"shave {result.shave}{mask}, {100 * result.measured_fraction:.1f}% of pixels measured)")
    if result.consistency is not None:
        factors = "x".join(map(str, result.consistency.scale))
        click.echo(f"consistency (area, {factors}): max |error| {result.consistency.max_abs:.4g}, "
                   f"RMSE {result.consistency.rmse:.4g} (stored units)")
