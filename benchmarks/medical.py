"""Through-plane super-resolution of CT and MR volumes: cubic spline, the built-in model, self-supervised fine-tuning.

Protocol, per volume of ``DATA/medical`` (NIfTI files; DICOM series are read
and stored as NIfTI, LPS turned into RAS):

1. the real thin-slice volume, cut along the slice axis ``k`` to a multiple
   of the factor, is the reference;
2. thick slices are simulated with a box profile: each group of ``factor``
   slices is averaged (stored values, rounded back to the stored dtype) and
   written as a NIfTI whose affine covers the same box (slice spacing and
   thickness ``factor`` times the reference's);
3. methods restore ``factor`` slices per thick slice. Fine-tuning sees the
   whole thick scan, as a user's run would; to bound the CPU time, the
   methods restore a centre block of the thick scan, ``--crop`` pixels
   in-plane plus a margin of ``MARGIN`` pixels on each side (the model's
   reach, so that the measured centre is restored as in the whole scan),
   and are measured on the ``--crop`` centre:

   - cubic spline: ``scipy.ndimage.zoom(order=3, grid_mode=True)`` along ``k``
     (cell-centred, symmetric borders), rounded to the stored dtype;
   - the built-in model: ``srrestore restore --slice-scale factor`` with the
     default model when it is usable through-plane (the built-in 1-channel
     models are isotropic ``(s, s)``: restore refuses them, and the table says so);
   - the built-in model made ``(factor, 1)`` as fine-tuning starts from it
     (:func:`~srrestore.pipelines.medical.initial_model.through_plane_start`), not fine-tuned;
   - fine-tuned: ``finetune_medical`` on the thick volume itself (box slice
     profile, the simulation's; the ``srrestore finetune`` defaults but the
     time budget: pixel L1 loss, PSNR-oriented), timed, then ``restore_nifti``
     with the new model (two planes averaged);
   - for reference only, a linear oracle: per output sub-slice, the least-squares
     filter of 9 thick slices fitted on the reference itself (the best any
     linear interpolator can do; it sees the answer);

4. PSNR and SSIM inside the body mask (Otsu threshold of the reference,
   closed, holes filled slice by slice), on intensities scaled so that the
   reference's p0.5 and p99.5 inside the mask become 0 and 1, data range 1
   (differences in dB between methods do not depend on this scaling). SSIM is
   MONAI's 3-D SSIM map (Gaussian window 11, sigma 1.5), averaged inside the mask.
   PSNR is computed here: MONAI's ``PSNRMetric`` has no mask.

Fine-tuning runs on the CPU (``--threads``, 2 by default), ``--max-minutes`` per volume. The
data are read, never copied into the repository. Example::

    python benchmarks/medical.py --max-minutes 1.5 --crop 64
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from srrestore.domains.medical.dicom_series import open_series
from srrestore.domains.medical.nifti import read_nifti
from srrestore.pipelines.medical.finetune import finetune_medical
from srrestore.pipelines.medical.restore import restore_nifti
from srrestore.pipelines.medical.initial_model import through_plane_start
from srrestore.pipelines.medical.options import VolumeOptions

from srrestore.engine.normalize import to_dtype
from srrestore.errors import SRRestoreError
from srrestore.models.checkpoint import save_generator
from srrestore.training.finetune import FinetuneOptions

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
PROTOCOL = ("Per volume: the thin-slice volume is the reference; thick slices average each group of `factor` slices; "
            "every method restores the thick scan's centre block and is measured on its centre. PSNR (data range 1) "
            "and mean 3-D SSIM inside the body mask, on intensities scaled so that the reference's p0.5 and p99.5 "
            "inside the mask are 0 and 1. Fine-tuning sees the whole thick scan only. The linear oracle is the "
            "least-squares filter fitted on the reference itself: a bound for linear interpolation, not a method.")


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


def thick_slices(reference: Reference, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Box-profile thick slices: ``(stored (i, j, k / factor), affine)`` covering the same box."""
    i, j, k = reference.stored.shape
    mean = reference.stored.astype(np.float64).reshape(i, j, k // factor, factor).mean(axis=3)
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


def run_volume(path: Path, args: argparse.Namespace, folder: Path) -> list[Row]:
    """Every method on one volume."""
    whole = load_reference(path)
    scan = crop(whole, (0, 0), whole.stored.shape[:2], args.factor)
    scan_thick, scan_affine = thick_slices(scan, args.factor)
    scan_source = folder / f"{scan.name}_thick_whole.nii.gz"
    write_nifti(scan_source, scan_thick, scan_affine, scan.slope, scan.intercept)
    starts, stops = centre_box(whole.stored.shape, args.crop, MARGIN)
    block = crop(whole, starts, stops, args.factor)
    thick, affine = thick_slices(block, args.factor)
    source = folder / f"{block.name}_thick.nii.gz"
    write_nifti(source, thick, affine, block.slope, block.intercept)
    inner_starts, inner_stops = centre_box(block.stored.shape, args.crop, 0)
    centre = (slice(inner_starts[0], inner_stops[0]), slice(inner_starts[1], inner_stops[1]))
    reference = block.stored[centre]
    name = f"{block.name} {'x'.join(map(str, scan.stored.shape))} (centre {'x'.join(map(str, reference.shape))})"
    mask = body_mask(reference.astype(np.float64))
    offset, width = unit_scaling(reference.astype(np.float64), mask)
    truth = (reference - offset) / width

    def measured(method: str, stored: np.ndarray, note: str = "", **extra: float) -> Row:
        psnr, ssim = scores((stored[centre] - offset) / width, truth, mask)
        return Row(name, method, psnr, ssim, note, extra)

    rows = [measured("cubic spline", cubic_spline(thick, args.factor, block.stored.dtype))]
    options = VolumeOptions(device="cpu", progress=False, slice_scale=args.factor)
    try:
        restore_nifti(source, folder / "builtin.nii.gz", options)
        rows.append(measured("built-in (default)", restored_stored(folder / "builtin.nii.gz")))
    except SRRestoreError as error:
        rows.append(Row(name, "built-in (default)", note=f"not usable: {str(error).split(';')[0]}"))

    tuning = FinetuneOptions(
        scale=args.factor, steps=args.steps, max_minutes=args.max_minutes, adversarial=False, device="cpu",
        progress=False, perceptual_weight=args.perceptual_weight, batch_size=args.batch_size,
        patch_size=args.patch_size, learning_rate=args.learning_rate, min_valid_fraction=0.95,
    )
    start, how = through_plane_start(tuning, args.factor)
    save_generator(folder / "start.safetensors", start.generator.eval(), phase=start.info.phase)
    restore_nifti(source, folder / "start.nii.gz", VolumeOptions(model=str(folder / "start.safetensors"),
                                                                  device="cpu", progress=False))
    rows.append(measured(f"built-in {start.name} as ({args.factor}, 1), not fine-tuned",
                         restored_stored(folder / "start.nii.gz"), how.split(":", 1)[-1].strip()))

    model = folder / f"{block.name}.safetensors"
    report = finetune_medical([scan_source], model, tuning, slice_profile="box")
    start = time.perf_counter()
    restore_nifti(source, folder / "finetuned.nii.gz", VolumeOptions(model=str(model), device="cpu", progress=False))
    restore_seconds = time.perf_counter() - start
    note = f"{report.steps} steps, start {report.pretrained}"
    rows.append(measured("fine-tuned", restored_stored(folder / "finetuned.nii.gz"), note,
                         finetune_s=report.seconds, restore_s=restore_seconds,
                         patch_gain_db=report.evaluation["finetuned"]["psnr"] - report.evaluation["bicubic"]["psnr"]))
    rows.append(measured("linear oracle (fit on the reference)", linear_oracle(thick, block.stored, args.factor)))
    return rows


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
                        help="paths under DATA/medical: NIfTI files or DICOM series folders")
    parser.add_argument("--factor", type=int, default=4, choices=[2, 3, 4], help="through-plane factor")
    parser.add_argument("--crop", type=int, default=64, help="in-plane side of the centre crop, pixels")
    parser.add_argument("--max-minutes", type=float, default=1.5, help="fine-tuning budget per volume")
    parser.add_argument("--steps", type=int, default=1000, help="fine-tuning steps at most")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--perceptual-weight", type=float, default=0.0, help="VGG19 loss weight (0: off, the CLI's)")
    parser.add_argument("--learning-rate", type=float, default=2e-4, help="peak learning rate of fine-tuning")
    add_write_docs_option(parser, "medical")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="torch CPU threads (1 is faster on a CPU shared with other jobs)")
    args = parser.parse_args(argv)
    missing = [v for v in args.volumes if not (args.data / "medical" / v).exists()]
    if missing:
        parser.error(f"not found under {args.data / 'medical'}: {', '.join(missing)}")
    return args


def main(argv: list[str] | None = None) -> None:
    import torch

    args = parse(argv)
    torch.set_num_threads(args.threads)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="srrestore-medical-") as folder:
        for volume in args.volumes:
            path = args.data / "medical" / volume
            work = Path(folder) / str(len(rows))
            work.mkdir()
            try:
                rows += run_volume(path, args, work)
            except SRRestoreError as error:
                rows.append(Row(volume, "-", note=f"skipped: {error}"))
            print(table(rows), file=sys.stderr)
    command = command_line(__file__, argv)
    print(table(rows))
    print(f"\nCommand: `{command}`  \nMachine: {machine(args.threads)}")
    if args.write_docs:
        body = f"{table(rows)}\n\n{PROTOCOL}"
        title = f"Medical through-plane x{args.factor}: cubic spline, built-in, fine-tuned"
        print(f"Page: {write_results('medical', title, body, command, machine(args.threads))}")


if __name__ == "__main__":
    main()
