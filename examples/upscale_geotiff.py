"""Upscale the shipped Landsat crop x4 with the built-in model, from Python.

Run from the project root::

    python examples/upscale_geotiff.py [OUTPUT.tif]

Then check the result keeps the georeferencing: the bounds are identical and
the pixels are four times smaller.
"""

from __future__ import annotations

import sys
from pathlib import Path

import rasterio

import srrestore

EXAMPLE = Path(__file__).resolve().parent / "data" / "landsat_rgb.tif"


def main(output: Path) -> None:
    srrestore.restore(EXAMPLE, output, scale=4, overwrite=True)
    with rasterio.open(EXAMPLE) as source, rasterio.open(output) as restored:
        print(f"{EXAMPLE.name}: {source.width}x{source.height} px of {source.res[0]:.1f} m")
        print(f"{output.name}: {restored.width}x{restored.height} px of {restored.res[0]:.1f} m")
        print(f"same bounds: {source.bounds == restored.bounds}, same CRS: {source.crs == restored.crs}")
        print(f"model: {restored.tags()['SRRESTORE_MODEL']}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("landsat_rgb_x4.tif"))
