"""Make the README's report figure from a CC0 Landsat crop (rasterio's RGB.byte.tif).

    python benchmarks/readme_report.py [--data ../shared/data] [--out docs/report_landsat_x4.png] [--write-docs]

The 384x384 crop at column 200, row 200 is the reference; it is degraded x4
with MATLAB-compatible bicubic, then restored by bicubic and the built-in
RGB x4 models (PSNR and GAN phases), and drawn by ``srrestore report``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

import srrestore
from srrestore.domains.image import write_image
from srrestore.engine.normalize import to_dtype
from srrestore.pipelines.report import write_report
from srrestore.training.degradation import downscale, upscale_bicubic

from results_page import RESULTS, add_write_docs_option, command_line, cpu_model, load_average, write_results

REPOSITORY = Path(__file__).resolve().parents[1]
CAPTION = ("`srrestore report` on a 384 x 384 crop (column 200, row 200) of rasterio's CC0 Landsat 7 `RGB.byte.tif`, "
           "degraded x4 with MATLAB-compatible bicubic, restored by bicubic and the built-in RGB x4 models (PSNR and "
           "GAN phases): crops with zoom insets and difference maps to the reference.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPOSITORY.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPOSITORY / "docs" / "report_landsat_x4.png")
    add_write_docs_option(parser, "report")
    args = parser.parse_args(argv)
    with rasterio.open(args.data / "satellite" / "rasterio" / "RGB.byte.tif") as source:
        reference = source.read(window=Window(200, 200, 384, 384))
    low = to_dtype(downscale(reference.astype(np.float32) / 255, 4, "bicubic") * 255, "uint8")
    bicubic = to_dtype(upscale_bicubic(low.astype(np.float32) / 255, 4) * 255, "uint8")
    with tempfile.TemporaryDirectory() as folder:
        paths = {name: Path(folder) / f"{name}.png" for name in ("reference", "low", "bicubic")}
        for name, array in (("reference", reference), ("low", low), ("bicubic", bicubic)):
            write_image(paths[name], array)
        restored = [paths["bicubic"]]
        for phase in ("psnr", "gan"):
            restored.append(Path(folder) / f"srgan-{phase}.png")
            srrestore.restore(paths["low"], restored[-1], scale=4, phase=phase)
        write_report(paths["reference"], restored, args.out, labels=["bicubic", "srgan-psnr", "srgan-gan"],
                     overwrite=True)
    command = command_line(__file__, argv)
    print(f"wrote {args.out}\ncommand: {command}")
    if args.write_docs:
        figure = Path(os.path.relpath(args.out.resolve(), RESULTS)).as_posix()
        body = f"![Landsat crop x4: reference, bicubic, srgan-psnr, srgan-gan]({figure})\n\n{CAPTION}"
        machine = f"{cpu_model()}, {load_average()}"
        print(f"Page: {write_results('report', 'Report figure: a Landsat crop x4', body, command, machine)}")


if __name__ == "__main__":
    main()
