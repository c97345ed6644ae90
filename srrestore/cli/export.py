"""``srrestore export``: write a model as an ONNX graph for ONNX Runtime and other runtimes."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["export"]


@click.command()
@click.argument("model")
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True, help="The ONNX file to write (.onnx).")
@click.option("--opset", type=click.IntRange(17), default=17, show_default=True, help="ONNX opset version.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def export(model: str, out: Path, opset: int, overwrite: bool) -> None:
    """Export MODEL (a built-in name or a checkpoint file) to ONNX.

    Batch, height and width are dynamic; the file's metadata holds the model's
    configuration, card and normalisation rule. `srrestore restore --model
    OUT.onnx` runs it with ONNX Runtime through the same tiling engine.
    Needs the optional extra: pip install "srrestore[onnx]".

    \b
    Examples:
      srrestore export srgan-rgb-x4-psnr --out srgan-rgb-x4-psnr.onnx
      srrestore export srgan-gray-x2-psnr --out gray.onnx --opset 18 --overwrite
    """
    from srrestore.errors import ConfigError
    from srrestore.models.onnx import export_onnx
    from srrestore.models.registry import resolve_checkpoint

    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"output {out.name} is not an ONNX name: name it .onnx")
    export_onnx(resolve_checkpoint(model), out, opset, overwrite)
    click.echo(f"wrote {out}", err=True)
