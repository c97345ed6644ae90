"""Through-plane super-resolution of CT and MR volumes: cubic spline, the built-in model, self-supervised fine-tuning.

Protocol, per volume of ``DATA/medical`` (NIfTI files; DICOM series are read
and stored as NIfTI, LPS turned into RAS) or given from the project root. The
shared data's only volume as sharp across its slices as within them is a 2 mm
T1 of 33 x 41 x 25 voxels; ``scripts/fetch_thin_t1.py`` fetches a 1 mm one (the
ICBM 152 T1 template, held out of every built-in's training) for
``--volumes runs/data/mni152_t1_1mm.nii.gz``:

1. the real thin-slice volume, cut along the slice axis ``k`` to a multiple
   of the factor, is the reference (``--slice-axis i``: the volume turned so
   that its first in-plane axis is ``k``, for volumes resampled from thicker
   slices, whose own ``k`` is blurred; each spline row notes the reference's
   sharpness across its slices, :func:`sharpness_ratio`);
2. thick slices are simulated with a box profile: each group of ``factor``
   slices is averaged (``--thick-profile gaussian``: the slices weighed by a
   Gaussian of FWHM ``factor`` slices), stored values rounded back to the
   stored dtype, and written as a NIfTI whose affine covers the same box
   (slice spacing and thickness ``factor`` times the reference's);
3. methods restore ``factor`` slices per thick slice. Fine-tuning sees the
   whole thick scan, as a user's run would; to bound the CPU time, the
   methods restore a centre block of the thick scan, ``--crop`` pixels
   in-plane plus a margin of ``MARGIN`` pixels on each side (the model's
   reach, so that the measured centre is restored as in the whole scan),
   and are measured on the ``--crop`` centre:

   - cubic spline: ``scipy.ndimage.zoom(order=3, grid_mode=True)`` along ``k``
     (cell-centred, symmetric borders), rounded to the stored dtype;
   - the built-in model: ``srrestore restore --slice-scale factor`` with the
     default model, the built-in slice model ``srgan-slice-x{factor}-psnr``
     (trained over a family of slice profiles, never on these volumes);
   - the grey in-plane built-in of the factor made ``(factor, 1)`` by weight
     surgery, as the slice models start, not trained for slices (where it exists);
   - fine-tuned: ``finetune_medical`` on the thick volume itself (the
     ``srrestore finetune`` defaults but the time budget: the slice profile
     estimated from the scan, pixel L1 loss, PSNR-oriented, starting from the
     built-in slice model), timed, then ``restore_nifti`` with the new model
     (two planes averaged);
   - for reference only, a linear oracle: per output sub-slice, the least-squares
     filter of 9 thick slices fitted on the reference itself (the best any
     linear interpolator can do; it sees the answer);

4. PSNR and SSIM inside the body mask (Otsu threshold of the reference,
   closed, holes filled slice by slice), on intensities scaled so that the
   reference's p0.5 and p99.5 inside the mask become 0 and 1, data range 1
   (differences in dB between methods do not depend on this scaling). SSIM is
   MONAI's 3-D SSIM map (Gaussian window 11, sigma 1.5), averaged inside the mask.
   PSNR is computed here: MONAI's ``PSNRMetric`` has no mask.

A non-integer ratio (``--ratios``, :func:`run_ratio`) is scored on the isotropic grid the default
restore makes. Fine-tuning (``--finetune`` factors) runs on the CPU (``--threads``, 2 by default),
``--max-minutes`` per volume. The
data are read, never copied into the repository. Example::

    python benchmarks/medical.py --factors 2 3 4 --finetune 4 --ratios 2.5 --max-minutes 3 --crop 64
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from srrestore.domains.medical.dicom_series import open_series
from srrestore.domains.medical.nifti import read_nifti
from srrestore.pipelines.medical.finetune import finetune_medical
from srrestore.pipelines.medical.restore import restore_nifti
from srrestore.domains.medical.resample import axis_weights
from srrestore.pipelines.medical.initial_model import through_plane_start
from srrestore.pipelines.medical.options import VolumeOptions

from srrestore.engine.normalize import to_dtype
from srrestore.errors import SRRestoreError
from srrestore.models.checkpoint import save_generator
from srrestore.models.registry import WEIGHTS_DIR, default_model_name
from srrestore.training.finetune import FinetuneOptions
from srrestore.training.slice_profile import SliceProfile

from results_page import add_write_docs_option, command_line, cpu_model, load_average, write_results

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPOSITORY.parent / "shared" / "data"
DEFAULT_VOLUMES = (
    "nifti/nibabel_anatomical/anatomical.nii",
    "nifti/totalsegmentator/example_ct.nii.gz",
    "nifti/totalsegmentator/example_mr_sm.nii.gz",
    "dicom/ct_abdomen_j2k/series",
)
THREADS = 2  # the 2 CPU cores
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
MASK_PERCENTILES = (0.5, 99.5)
ORACLE_REACH = 4  # thick slices on each side the linear oracle's filter sees
MARGIN = 32  # in-plane pixels restored around the measured centre (the srgan generator's receptive field)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
THICK_SLICES = {  # --thick-profile: how the protocol's thick slices are made from the thin ones
    "box": "average each group of `factor` slices",
    "gaussian": "weigh the thin slices by a Gaussian of FWHM `factor` slices centred on each group",
}
PROTOCOL = ("Per volume: the thin-slice volume is the reference; thick slices {thick}; "
            "every method restores the thick scan's centre block and is measured on its centre. PSNR (data range 1) "
            "and mean 3-D SSIM inside the body mask, on intensities scaled so that the reference's p0.5 and p99.5 "
            "inside the mask are 0 and 1. Fine-tuning sees the whole thick scan only. The linear oracle is the "
            "least-squares filter fitted on the reference itself: a bound for linear interpolation, not a method. "
            "The reference's sharpness across its slices is its RMS slice-to-slice difference over the in-plane one: "
            "well below 1, the volume was resampled from thicker slices and lacks the detail a model trained on "
            "in-plane slices restores (a thin-slice target it is not).")


@dataclass
class Reference:
    """A thin-slice volume: stored values ``(i, j, k)``, slices along ``k``."""

    name: str
    stored: np.ndarray
    affine: np.ndarray
    slope: float
    intercept: float


@dataclass
class Row:
    """One method on one volume."""

    volume: str
    method: str
    psnr: float | None = None
    ssim: float | None = None
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def load_reference(path: Path) -> Reference:
    """A NIfTI file, or a DICOM series as ``(column, row, slice)`` with a RAS affine."""
    if path.is_dir():
        series = open_series(path)
        stored = np.ascontiguousarray(series.read_volume().transpose(2, 1, 0))
        return Reference(path.parent.name, stored, LPS_TO_RAS @ series.affine, series.slope, series.intercept)
    volume = read_nifti(path)
    if volume.stored.shape[0] != 1:
        raise SRRestoreError(f"{path}: a 4-D series; the benchmark takes 3-D volumes")
    name = path.name.removesuffix(".gz").removesuffix(".nii")
    return Reference(name, volume.stored[0], volume.header.get_best_affine(), volume.slope, volume.intercept)


def turned(reference: Reference) -> Reference:
    """The same volume with its first in-plane axis ``i`` as the slice axis (voxel axes ``k, j, i``; same world box).

    Thick slices are then made across a reference that is as sharp along them as in-plane, which a
    volume resampled from thicker slices is not along its own ``k``. Needs cubic voxels (the
    in-plane pixels of the turned volume would be unequal otherwise).
    """
    spacings = np.linalg.norm(reference.affine[:3, :3], axis=0)
    if not np.allclose(spacings, spacings[0], rtol=0.01):
        raise SRRestoreError(f"voxels {' x '.join(f'{s:.3g}' for s in spacings)} mm are not cubic: no in-plane slice axis")
    affine = reference.affine.copy()
    affine[:3, [0, 2]] = reference.affine[:3, [2, 0]]
    stored = np.ascontiguousarray(reference.stored.transpose(2, 1, 0))
    return Reference(f"{reference.name} turned", stored, affine, reference.slope, reference.intercept)


def sharpness_ratio(stored: np.ndarray) -> float:
    """RMS difference of neighbouring voxels along the slices ``k`` over its mean along ``i`` and ``j``.

    About 1 where the reference is as sharp across its slices as in-plane; well below 1 where the
    volume was resampled from thicker slices (the target then lacks the detail a model restores).
    """
    values = stored.astype(np.float64)
    rms = [float(np.sqrt(np.mean(np.diff(values, axis=axis) ** 2))) for axis in range(3)]
    return rms[2] / ((rms[0] + rms[1]) / 2)


def crop(reference: Reference, starts: tuple[int, int], stops: tuple[int, int], factor: int) -> Reference:
    """In-plane box ``[starts, stops)`` and the first multiple of ``factor`` slices; affine moved along."""
    depth = reference.stored.shape[2] - reference.stored.shape[2] % factor
    stored = reference.stored[starts[0] : stops[0], starts[1] : stops[1], :depth]
    affine = reference.affine.copy()
    affine[:3, 3] = reference.affine[:3, :3] @ np.array([starts[0], starts[1], 0.0]) + reference.affine[:3, 3]
    return Reference(reference.name, np.ascontiguousarray(stored), affine, reference.slope, reference.intercept)


def centre_box(shape: tuple[int, ...], size: int, margin: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """In-plane ``(starts, stops)`` of the centre ``size`` pixels grown by ``margin``, inside ``shape``."""
    starts = [max(0, (n - size) // 2 - margin) for n in shape[:2]]
    stops = [min(n, (n - size) // 2 + size + margin) if n > size else n for n in shape[:2]]
    return (starts[0], starts[1]), (stops[0], stops[1])


def thick_slices(reference: Reference, factor: int, profile: str = "box") -> tuple[np.ndarray, np.ndarray]:
    """Thick slices: ``(stored (i, j, k / factor), affine)`` covering the same box.

    ``profile`` ``box`` averages each group of ``factor`` slices; ``gaussian`` weighs the slices by a
    Gaussian of FWHM ``factor`` slices centred on each group (symmetric at the ends).
    """
    if profile == "box":
        i, j, k = reference.stored.shape
        mean = reference.stored.astype(np.float64).reshape(i, j, k // factor, factor).mean(axis=3)
    else:
        mean = SliceProfile(factor, float(factor), profile).degrade(reference.stored, axis=2)
    affine = reference.affine.copy()
    affine[:3, 2] = reference.affine[:3, 2] * factor
    affine[:3, 3] = reference.affine[:3, 3] + reference.affine[:3, 2] * (factor - 1) / 2
    return to_dtype(mean, reference.stored.dtype), affine


def write_nifti(path: Path, stored: np.ndarray, affine: np.ndarray, slope: float, intercept: float) -> None:
    """Stored values with their scaling kept (invariant N5), millimetre units."""
    import nibabel as nib

    image = nib.Nifti1Image(stored, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.header.set_slope_inter(slope, intercept)
    nib.save(image, path)


def cubic_spline(thick: np.ndarray, factor: int, dtype: np.dtype) -> np.ndarray:
    """Cell-centred cubic-spline interpolation along ``k``, rounded into ``dtype``."""
    from scipy import ndimage

    values = ndimage.zoom(thick.astype(np.float64), (1, 1, factor), order=3, mode="reflect", grid_mode=True)
    return to_dtype(values, dtype)


def linear_oracle(thick: np.ndarray, reference: np.ndarray, factor: int) -> np.ndarray:
    """Least-squares linear filter (with offset) of ``2 * ORACLE_REACH + 1`` thick slices per sub-slice, fit on
    ``reference`` itself: an upper bound for linear interpolation, not a method."""
    taps = 2 * ORACLE_REACH + 1
    padded = np.pad(thick.astype(np.float64), ((0, 0), (0, 0), (ORACLE_REACH, ORACLE_REACH)), mode="symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(padded, taps, axis=2).reshape(-1, taps)
    design = np.c_[windows, np.ones(len(windows))]
    result = np.empty(reference.shape, dtype=np.float64)
    for offset in range(factor):
        target = reference[:, :, offset::factor].astype(np.float64)
        coefficients, *_ = np.linalg.lstsq(design, target.reshape(-1), rcond=None)
        result[:, :, offset::factor] = (design @ coefficients).reshape(target.shape)
    return to_dtype(result, reference.dtype)


def body_mask(values: np.ndarray) -> np.ndarray:
    """Otsu foreground of the reference, closed, holes filled slice by slice along ``k``."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    mask = ndimage.binary_closing(values > threshold_otsu(values), iterations=2, border_value=0)
    return np.stack([ndimage.binary_fill_holes(mask[..., z]) for z in range(mask.shape[2])], axis=2)


def unit_scaling(values: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """``(offset, width)`` mapping the p0.5/p99.5 of ``values`` inside ``mask`` to 0 and 1."""
    low, high = np.percentile(values[mask], MASK_PERCENTILES)
    return float(low), float(high - low)


def scores(restored: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """PSNR (data range 1) and mean SSIM inside ``mask`` of normalised volumes."""
    import torch
    from monai.metrics.regression import compute_ssim_and_cs

    error = float(np.mean((restored[mask] - reference[mask]) ** 2))
    psnr = float("inf") if error == 0 else 10 * np.log10(1.0 / error)
    window = min(SSIM_WINDOW, *(n - 1 + n % 2 for n in reference.shape))
    tensors = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None] for a in (restored, reference)]
    ssim_map, _ = compute_ssim_and_cs(*tensors, spatial_dims=3, kernel_size=[window] * 3,
                                      kernel_sigma=[SSIM_SIGMA] * 3, data_range=1.0)
    half = window // 2
    inner = mask[half:-half, half:-half, half:-half] if half else mask
    return psnr, float(ssim_map[0, 0].numpy()[inner].mean())


def restored_stored(path: Path) -> np.ndarray:
    return read_nifti(path).stored[0]


def run_volume(path: Path, args: argparse.Namespace, folder: Path, factor: int) -> list[Row]:
    """Every method on one volume at one through-plane factor (fine-tuning when ``factor`` is in ``--finetune``)."""
    whole = load_reference(path)
    if args.slice_axis == "i":
        whole = turned(whole)
    scan = crop(whole, (0, 0), whole.stored.shape[:2], factor)
    scan_thick, scan_affine = thick_slices(scan, factor, args.thick_profile)
    scan_source = folder / f"{scan.name}_thick_whole.nii.gz"
    write_nifti(scan_source, scan_thick, scan_affine, scan.slope, scan.intercept)
    starts, stops = centre_box(whole.stored.shape, args.crop, MARGIN)
    block = crop(whole, starts, stops, factor)
    thick, affine = thick_slices(block, factor, args.thick_profile)
    source = folder / f"{block.name}_thick.nii.gz"
    write_nifti(source, thick, affine, block.slope, block.intercept)
    inner_starts, inner_stops = centre_box(block.stored.shape, args.crop, 0)
    centre = (slice(inner_starts[0], inner_stops[0]), slice(inner_starts[1], inner_stops[1]))
    reference = block.stored[centre]
    name = (f"{block.name} {'x'.join(map(str, scan.stored.shape))} (centre {'x'.join(map(str, reference.shape))}),"
            f" x{factor}")
    mask = body_mask(reference.astype(np.float64))
    offset, width = unit_scaling(reference.astype(np.float64), mask)
    truth = (reference - offset) / width

    def measured(method: str, stored: np.ndarray, note: str = "", **extra: float) -> Row:
        psnr, ssim = scores((stored[centre] - offset) / width, truth, mask)
        return Row(name, method, psnr, ssim, note, extra)

    rows = [measured("cubic spline", cubic_spline(thick, factor, block.stored.dtype),
                     f"reference sharpness across slices {sharpness_ratio(whole.stored):.2f}")]
    options = VolumeOptions(device="cpu", progress=False, slice_scale=factor)
    try:
        restore_nifti(source, folder / "builtin.nii.gz", options)
        rows.append(measured("built-in (default)", restored_stored(folder / "builtin.nii.gz")))
    except SRRestoreError as error:
        rows.append(Row(name, "built-in (default)", note=f"not usable: {str(error).split(';')[0]}"))

    tuning = FinetuneOptions(
        scale=factor, steps=args.steps, max_minutes=args.max_minutes, adversarial=False, device="cpu",
        progress=False, perceptual_weight=args.perceptual_weight, batch_size=args.batch_size,
        patch_size=args.patch_size, learning_rate=args.learning_rate, min_valid_fraction=0.95,
    )
    grey = default_model_name(factor, 1)
    if (WEIGHTS_DIR / f"{grey}.safetensors").is_file():
        start, how = through_plane_start(replace(tuning, model=grey), factor)
        save_generator(folder / "start.safetensors", start.generator.eval(), phase=start.info.phase)
        restore_nifti(source, folder / "start.nii.gz", replace(options, model=str(folder / "start.safetensors")))
        rows.append(measured(f"{grey} as ({factor}, 1), not trained for slices",
                             restored_stored(folder / "start.nii.gz"), how.split(":", 1)[-1].strip()))

    rows.append(measured("linear oracle (fit on the reference)", linear_oracle(thick, block.stored, factor)))
    if factor not in args.finetune:
        return rows
    model = folder / f"{block.name}.safetensors"
    report = finetune_medical([scan_source], model, tuning, slice_profile=args.slice_profile)
    start = time.perf_counter()
    restore_nifti(source, folder / "finetuned.nii.gz", replace(options, model=str(model)))
    restore_seconds = time.perf_counter() - start
    profile = next((n.split("slice profile ", 1)[1].split(" of ", 1)[0] for n in report.notes if "slice profile" in n), "")
    note = f"{report.steps} steps, start {report.pretrained}, profile {profile}"
    rows.append(measured("fine-tuned", restored_stored(folder / "finetuned.nii.gz"), note,
                         finetune_s=report.seconds, restore_s=restore_seconds,
                         patch_gain_db=report.evaluation["finetuned"]["psnr"] - report.evaluation["bicubic"]["psnr"]))
    return rows


def run_ratio(path: Path, args: argparse.Namespace, folder: Path, ratio: float) -> list[Row]:
    """A non-integer slice ratio: thick slices ``ceil(ratio)`` reference slices thick, pixels ``ratio`` times finer.

    The thick scan (box of ``s = ceil(ratio)`` slices) gets in-plane pixels ``s / ratio`` times the
    reference's slice spacing, so that ``restore`` with no option makes it isotropic: the x``s``
    built-in, resampled from ``n * s`` onto ``m = round(n * ratio)`` slices. The truth on that grid is
    the reference resampled the same way (what a perfect x``s`` model followed by the resampling
    gives); cubic spline interpolates the thick slices straight onto it.
    """
    factor = math.ceil(ratio)
    whole = load_reference(path)
    starts, stops = centre_box(whole.stored.shape, args.crop, MARGIN)
    block = crop(whole, starts, stops, factor)
    thick, affine = thick_slices(block, factor, args.thick_profile)
    slice_spacing = np.linalg.norm(affine[:3, 2])
    affine[:3, :2] *= (slice_spacing / ratio) / np.linalg.norm(affine[:3, :2], axis=0)  # pixels ratio times finer
    source = folder / f"{block.name}_ratio.nii.gz"
    write_nifti(source, thick, affine, block.slope, block.intercept)
    report = restore_nifti(source, folder / "ratio.nii.gz", VolumeOptions(device="cpu", progress=False))
    restored = restored_stored(folder / "ratio.nii.gz")
    count = restored.shape[2]  # round(n * ratio), as restore rounded it
    weights = axis_weights(block.stored.shape[2], count).toarray()
    inner_starts, inner_stops = centre_box(block.stored.shape, args.crop, 0)
    centre = (slice(inner_starts[0], inner_stops[0]), slice(inner_starts[1], inner_stops[1]))
    truth_stored = np.tensordot(block.stored[centre].astype(np.float64), weights, axes=(2, 1))
    mask = body_mask(truth_stored)
    offset, width = unit_scaling(truth_stored, mask)
    name = f"{block.name} (centre {'x'.join(map(str, truth_stored.shape))}), ratio {ratio:g}"

    def measured(method: str, stored: np.ndarray, note: str = "") -> Row:
        psnr, ssim = scores((stored[centre] - offset) / width, (truth_stored - offset) / width, mask)
        return Row(name, method, psnr, ssim, note)

    from scipy import ndimage

    spline = ndimage.zoom(thick.astype(np.float64), (1, 1, count / thick.shape[2]), order=3, mode="reflect",
                          grid_mode=True)
    rows = [measured("cubic spline", to_dtype(spline, block.stored.dtype))]
    grid = next(note for note in report.notes if note.startswith("slices along"))
    rows.append(measured("built-in (default, no option)", restored, grid.split(" (", 1)[1].split(";")[0].rstrip(")")))
    return rows


SPEED_SHAPE = (256, 256, 60)  # the volume: x4 through-plane within 2 minutes on 2 CPU cores


def restore_speed(path: Path, folder: Path) -> Row:
    """Seconds of a default restore (x4 through-plane, the built-in) of a 256 x 256 x 60 int16 volume.

    The volume is real CT: the centre 256 x 256 of ``path``'s slices, mirrored along the slices
    until 60 (timing does not depend on content), with 1 mm pixels and 4 mm slices.
    """
    whole = load_reference(path)
    starts, stops = centre_box(whole.stored.shape, SPEED_SHAPE[0], 0)
    block = whole.stored[starts[0] : stops[0], starts[1] : stops[1]]
    repeats = -(-SPEED_SHAPE[2] // block.shape[2])
    stack = np.concatenate([block if r % 2 == 0 else block[:, :, ::-1] for r in range(repeats)], axis=2)
    volume = np.ascontiguousarray(stack[:, :, : SPEED_SHAPE[2]])
    source = folder / "speed.nii.gz"
    write_nifti(source, volume, np.diag([1.0, 1.0, 4.0, 1.0]), whole.slope, whole.intercept)
    start = time.perf_counter()
    report = restore_nifti(source, folder / "speed_out.nii.gz", VolumeOptions(device="cpu", progress=False))
    seconds = time.perf_counter() - start
    shape = "x".join(map(str, volume.shape))
    return Row(f"{whole.name} {shape} (mirrored slices)", "restore speed: default (no option)", note=(
        f"{seconds:.0f} s for {report.notes[0].split(' (')[0]}; target <= 120 s on 2 cores"), extra={"seconds": seconds})


def table(rows: list[Row]) -> str:
    """Markdown table of every row, with the fine-tuned gain over cubic spline."""
    header = ["volume", "method", "PSNR (dB)", "SSIM", "vs spline (dB)", "fine-tune / restore (s)", "note"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    spline = {row.volume: row.psnr for row in rows if row.method == "cubic spline"}
    for row in rows:
        measured = row.psnr is not None
        gain = f"{row.psnr - spline[row.volume]:+.2f}" if measured and row.method != "cubic spline" else ""
        seconds = (f"{row.extra['finetune_s']:.0f} / {row.extra['restore_s']:.0f}" if "finetune_s" in row.extra else "")
        lines.append("| " + " | ".join([
            row.volume, row.method, f"{row.psnr:.2f}" if measured else "-", f"{row.ssim:.4f}" if measured else "-",
            gain, seconds, row.note,
        ]) + " |")
    return "\n".join(lines)


def machine(threads: int) -> str:
    """CPU model, cores, threads and library versions."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu_model()}, {cores} cores, {threads} torch thread(s), {load_average()}; torch {torch.__version__}"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder (holds medical/)")
    parser.add_argument("--volumes", nargs="+", default=list(DEFAULT_VOLUMES),
                        help="NIfTI files or DICOM series folders: paths under DATA/medical, or from the project root"
                             " (scripts/fetch_thin_t1.py writes a 1 mm T1 to runs/data/mni152_t1_1mm.nii.gz)")
    parser.add_argument("--factors", type=int, nargs="*", default=[2, 3, 4], choices=[2, 3, 4, 5, 6],
                        help="through-plane factors")
    parser.add_argument("--finetune", type=int, nargs="*", default=[4],
                        help="factors at which the volumes are also fine-tuned (none: no fine-tuning)")
    parser.add_argument("--ratios", type=float, nargs="*", default=[2.5],
                        help="non-integer slice ratios restored by default (no option) onto the isotropic grid")
    parser.add_argument("--slice-axis", choices=["k", "i"], default="k",
                        help="k: thick slices across the file's own slices; i: across its first in-plane axis"
                             " (the volume turned; cubic voxels only), where the reference is as sharp as in-plane"
                             " (--write-docs then writes docs/results/medical-in-plane-axis.md)")
    parser.add_argument("--thick-profile", choices=list(THICK_SLICES), default="box",
                        help="how thick slices are simulated: box (each group of slices averaged) or a Gaussian of"
                             " FWHM = the thick spacing")
    parser.add_argument("--slice-profile", choices=["auto", "box", "gaussian", "family"], default="auto",
                        help="fine-tuning's slice profile (auto: estimated from the scan, the CLI's default)")
    parser.add_argument("--crop", type=int, default=64, help="in-plane side of the centre crop, pixels")
    parser.add_argument("--max-minutes", type=float, default=1.5, help="fine-tuning budget per volume")
    parser.add_argument("--steps", type=int, default=1000, help="fine-tuning steps at most")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--perceptual-weight", type=float, default=0.0, help="VGG19 loss weight (0: off, the CLI's)")
    parser.add_argument("--learning-rate", type=float, default=2e-4, help="peak learning rate of fine-tuning")
    parser.add_argument("--speed-volume", default="dicom/ct_abdomen_j2k/series",
                        help="path under DATA/medical whose centre makes the 256 x 256 x 60 speed volume ('' : none)")
    add_write_docs_option(parser, "medical")
    parser.add_argument("--page", help="with --write-docs: write docs/results/PAGE.md instead (another set of volumes)")
    parser.add_argument("--page-title", help="with --page: what the page's title adds (default: PAGE)")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="torch CPU threads (1 is faster on a CPU shared with other jobs)")
    args = parser.parse_args(argv)
    missing = [v for v in args.volumes if not volume_path(args.data, v).exists()]
    if missing:
        parser.error(f"not found under {args.data / 'medical'} nor the project root: {', '.join(missing)}")
    return args


def volume_path(data: Path, volume: str) -> Path:
    """``volume`` under ``data/medical``, else as given (relative to the project root: ``runs/data/...``)."""
    shared = data / "medical" / volume
    return shared if shared.exists() else Path(volume)


def main(argv: list[str] | None = None) -> None:
    import torch

    args = parse(argv)
    torch.set_num_threads(args.threads)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="srrestore-medical-") as folder:
        for volume in args.volumes:
            path = volume_path(args.data, volume)
            work = Path(folder) / str(len(rows))
            work.mkdir()
            jobs = [(f"x{f}", run_volume, f) for f in args.factors] + [(f"ratio {r:g}", run_ratio, r) for r in args.ratios]
            for label, run, value in jobs:
                (work / label).mkdir()
                try:
                    rows += run(path, args, work / label, value)  # type: ignore[operator]
                except SRRestoreError as error:
                    rows.append(Row(f"{volume}, {label}", "-", note=f"skipped: {error}"))
            print(table(rows), file=sys.stderr)
        if args.speed_volume:
            work = Path(folder) / "speed"
            work.mkdir()
            rows.append(restore_speed(args.data / "medical" / args.speed_volume, work))
    command = command_line(__file__, argv)
    print(table(rows))
    print(f"\nCommand: `{command}`  \nMachine: {machine(args.threads)}")
    if args.write_docs:
        body = f"{table(rows)}\n\n{PROTOCOL.format(thick=THICK_SLICES[args.thick_profile])}"
        factors = ", ".join(f"x{f}" for f in args.factors)
        title = f"Medical through-plane {factors} and ratios {', '.join(map(str, args.ratios))}: spline, built-in, fine-tuned"
        page = "medical"
        if args.slice_axis == "i":
            title, page = f"{title}, thick slices across an in-plane axis", "medical-in-plane-axis"
        if args.page:
            title, page = f"{title}: {args.page_title or args.page}", args.page
        print(f"Page: {write_results(page, title, body, command, machine(args.threads))}")


if __name__ == "__main__":
    main()
