"""Export the shared medical and satellite data that the grey built-in model trains on, as 16-bit PNGs.

The grey (1-channel) built-in model restores CT, MR and single raster bands,
so its recipe adds slices of such data to the photographs of
``../shared/data/sr/train``. Each image is written in the units restore feeds
the network (normalised exactly as ``srrestore restore`` normalises it), clipped
to ``[0, 1]`` and stored as ``round(x * 65535)`` in a 16-bit PNG, which
``srrestore train`` reads back as ``x``:

- CT: every axial slice of the head CT series (fixed Hounsfield map
  ``(HU + 1024) / 4095``);
- rasters: the BT.601 luma of 8-bit RGB scenes (dtype range) and the bands of
  other rasters (0.5 / 99.5 percentiles of the valid pixels), nodata filled
  with the nearest valid value.

``rasterio/shade.tif`` is left out (88 % nodata, its valid pixels almost all
0). Only data that no benchmark scores are used: the volumes of
``benchmarks/medical.py`` and the scenes of ``benchmarks/satellite.py`` (and
other crops or bands of them) are left out. Run from the project root::

    python scripts/gray_training_slices.py /tmp/gray-slices
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pydicom

from srrestore.domains.image import write_image
from srrestore.domains.medical.intensity import ct_normalization
from srrestore.domains.satellite import GeoTiffReader
from srrestore.engine.nodata import fill_nodata, nearest_valid
from srrestore.engine.region import Region
from srrestore.sr_model import SRModel
from srrestore.training.data import LUMA_WEIGHTS

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CT_SERIES = "medical/dicom/ct_head_gantry_tilt/series"
RASTERS = (
    "satellite/rasterio/goes.tif",
    "satellite/riotiler_mars_hirise/cog_hirise_mars.tif",
    "satellite/riotiler_aerial_hro_colorado_15cm/201404_13SED190110_201404_0x1500m_CL_1.tif",
    "satellite/riotiler_sentinel1_sar/cog_gcps.tif",
)


def to_png16(normalised: np.ndarray) -> np.ndarray:
    """``(H, W)`` normalised values as uint16 ``round(clip(x, 0, 1) * 65535)``."""
    return np.rint(np.clip(normalised, 0.0, 1.0) * 65535.0).astype(np.uint16)


def ct_slices(series: Path) -> list[tuple[str, np.ndarray]]:
    """Every slice of a CT series, normalised by the fixed Hounsfield map."""
    slices = []
    for path in sorted(series.glob("*.dcm")):
        dataset = pydicom.dcmread(path)
        slope, intercept = float(getattr(dataset, "RescaleSlope", 1)), float(getattr(dataset, "RescaleIntercept", 0))
        mapping = ct_normalization(slope, intercept)
        stored = dataset.pixel_array.astype(np.float64)[None]
        slices.append((f"ct_head_{path.stem}", mapping.forward(stored)[0]))
    return slices


def raster_images(path: Path) -> list[tuple[str, np.ndarray]]:
    """A raster's luma (3 bands) or its bands (others), normalised as restore would."""
    with GeoTiffReader(path) as reader:
        region = Region.from_shape((reader.meta.height, reader.meta.width))
        values = reader.read(region).astype(np.float64)
        valid = reader.read_valid(region).all(axis=0)  # valid in every band, as the built-ins' slices were made
        sample = reader.sample()  # restore's normalisation (pipelines.satellite.restore.raster_normalization)
        normalization = SRModel.normalization_for(sample.values[:, sample.valid])
    normalised = normalization.forward(values)
    if not valid.all():
        indices, _, _ = nearest_valid(valid, region, (True, True), (True, True))
        normalised = fill_nodata(normalised, indices)
    if normalised.shape[0] == 3:
        return [(path.stem, np.tensordot(np.asarray(LUMA_WEIGHTS), normalised, axes=1))]
    return [(f"{path.stem}_band{band + 1}", normalised[band]) for band in range(normalised.shape[0])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write the PNGs to")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    images = ct_slices(args.data / CT_SERIES)
    for relative in RASTERS:
        images += raster_images(args.data / relative)
    for name, normalised in images:
        write_image(args.out / f"{name}.png", to_png16(normalised)[None])
    print(f"wrote {len(images)} images to {args.out}")


if __name__ == "__main__":
    main()
