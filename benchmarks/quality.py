"""Super-resolution quality and speed on Set5 and Set14, with the standard protocol.

Protocol (the one behind every published table): crop the HR image to a
multiple of the scale, degrade it with MATLAB-compatible antialiased bicubic
downscaling rounded to 8 bit, restore, then measure PSNR (data range 255) and
SSIM (Gaussian window 11, sigma 1.5) on the BT.601 ``Y`` channel with ``scale``
pixels shaved off each border, exactly as ``srrestore evaluate`` measures
8-bit RGB images. Greyscale HR images (Set14 ``bridge``) are replicated to RGB.

Methods: MATLAB-compatible bicubic; the built-in RGB models
(``srgan-rgb-x{s}-{psnr,gan}``, those installed) or any checkpoint file; and
the measured peers FSRCNN, FSRCNN-small and ESPCN run by OpenCV's
``cv2.dnn_superres`` (``pip install opencv-contrib-python-headless``; frozen
graphs from ``DATA/models/opencv_dnn_superres``). Speed is output megapixels
per second of the upscaling call alone, on the CPU with 2 threads (with
``--compile`` the models run a second time compiled by ``torch.compile``). Every
method first runs once over all the images untimed, so kernel preparation and
the one-off compilations are not timed. "detail"
is :func:`srrestore.metrics.detail_ratio` on ``Y`` (gradient energy
relative to the HR image: 1 = as sharp as the reference, below = blurrier),
the figure that shows a GAN model restoring more texture than a PSNR one.

The images are read from ``DATA/sr/val/{Set5,Set14}`` (research-only: read,
never copied). Example::

    python benchmarks/quality.py --scale 2 4 --sets Set5 Set14 --report figures/
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from srrestore.domains.image import read_image
from srrestore.errors import MissingDependencyError
from srrestore.metrics import detail_ratio, rgb_to_y
from srrestore.models.checkpoint import load_generator, save_generator
from srrestore.models.registry import list_builtin_models
from srrestore.sr_model import SRModel, load_model
from srrestore.pipelines.evaluate import evaluate_arrays
from srrestore.pipelines.report import report_figure, save_figure
from srrestore.training.degradation import downscale, upscale_bicubic

from results_page import add_write_docs_option, command_line, cpu_model, load_average, write_results

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPOSITORY.parent / "shared" / "data"
THREADS = 2
BUILTIN_PHASES = ("psnr", "gan")
PROTOCOL = ("Set5/Set14 HR cropped to the scale, MATLAB bicubic degradation rounded to 8 bit, PSNR/SSIM on BT.601 Y "
            "with shave = scale; 1-channel models run band by band on the RGB images; speed = output MP/s of "
            "SRModel.upscale on the CPU, 2 threads")
NOTES = ("Every method first runs once over all the images untimed (kernel preparation, compilation). \"detail\" is "
         "the gradient energy of the output relative to the HR image (1 = as sharp). Speeds follow the machine's "
         "load (the load average is on the machine line).")
OPENCV_PEERS = {"fsrcnn": ("FSRCNN", "fsrcnn"), "fsrcnn-small": ("FSRCNN-small", "fsrcnn"), "espcn": ("ESPCN", "espcn")}
DEFAULT_METHODS = ("bicubic", *(f"srgan-rgb-{phase}" for phase in BUILTIN_PHASES), *OPENCV_PEERS)

Upscaler = Callable[[np.ndarray], np.ndarray]  # (3, h, w) uint8 -> (3, h*s, w*s) uint8


@dataclass
class Score:
    """Figures of one method on one set at one scale."""

    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    detail: list[float] = field(default_factory=list)
    output_pixels: int = 0
    seconds: float = 0.0


def bicubic(scale: int) -> Upscaler:
    """MATLAB-compatible bicubic upscaling, rounded to 8 bit (the protocol's baseline)."""
    return lambda image: _to_uint8(upscale_bicubic(image.astype(np.float64), scale))


def builtin_or_file(name: str, scale: int) -> tuple[str, SRModel] | None:
    """A built-in ``srgan-rgb-{phase}`` at ``scale`` or a checkpoint file, with its label.

    None when it is not installed or upscales by another factor.
    """
    if Path(name).is_file():
        model = load_model(name, device="cpu", precision="fp32")
        if max(model.spec.scale) != scale:
            return None
        return Path(name).name.removesuffix(".safetensors"), model
    builtin = name.replace("srgan-rgb-", f"srgan-rgb-x{scale}-")
    if builtin not in {model.name for model in list_builtin_models()}:
        return None
    return builtin, load_model(builtin, device="cpu", precision="fp32")


def opencv_peer(name: str, scale: int, data: Path) -> tuple[str, Upscaler] | None:
    """An OpenCV ``dnn_superres`` model; None when its graph for ``scale`` is missing."""
    cv2 = _opencv()

    stem, algorithm = OPENCV_PEERS[name]
    graph = data / "models" / "opencv_dnn_superres" / f"{stem}_x{scale}.pb"
    if not graph.is_file():
        return None
    cv2.setNumThreads(THREADS)
    network = cv2.dnn_superres.DnnSuperResImpl_create()
    network.readModel(str(graph))
    network.setModel(algorithm, scale)

    def run(image: np.ndarray) -> np.ndarray:
        bgr = np.ascontiguousarray(np.moveaxis(image[::-1], 0, -1))
        return np.ascontiguousarray(np.moveaxis(network.upsample(bgr), -1, 0)[::-1])

    return f"OpenCV {stem}", run


def _opencv() -> Any:
    """The ``cv2`` module (imported here only: the package itself never needs OpenCV)."""
    try:
        import cv2
    except ImportError as error:
        raise MissingDependencyError(
            "the OpenCV peers need cv2.dnn_superres: pip install opencv-contrib-python-headless"
        ) from error
    return cv2


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def load_hr(path: Path, scale: int) -> np.ndarray:
    """``(3, H, W)`` uint8 HR image cropped to a multiple of ``scale`` (grey replicated to RGB)."""
    image = read_image(path)[:3]
    if image.shape[0] == 1:
        image = np.repeat(image, 3, axis=0)
    height, width = image.shape[1:]
    return image[:, : height - height % scale, : width - width % scale]


def degrade(hr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(hr, 1/scale)`` of a uint8 image: antialiased bicubic, rounded to uint8."""
    return _to_uint8(downscale(hr.astype(np.float64), scale, "bicubic"))


def benchmark_pairs(folder: Path, scale: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(hr, lr)`` uint8 ``(3, H, W)`` pairs of every PNG in ``folder``, by name: HR cropped, LR degraded."""
    hrs = [load_hr(path, scale) for path in sorted(folder.glob("*.png"))]
    return [(hr, degrade(hr, scale)) for hr in hrs]


def methods_for(names: list[str], scale: int, data: Path, compile: bool = False) -> list[tuple[str, Upscaler]]:
    """The runnable methods among ``names`` at ``scale``, in the order given (models also compiled if asked)."""
    found = []
    for name in names:
        if name == "bicubic":
            found.append(("bicubic (MATLAB)", bicubic(scale)))
            continue
        if name in OPENCV_PEERS:
            method = opencv_peer(name, scale, data)
            methods = [] if method is None else [method]
        else:
            loaded = builtin_or_file(name, scale)
            methods = [] if loaded is None else _model_methods(*loaded, compile)
        if not methods:
            print(f"skipped {name} at x{scale}: not installed", file=sys.stderr)
        found.extend(methods)
    return found


def _model_methods(label: str, model: SRModel, compile: bool) -> list[tuple[str, Upscaler]]:
    """``model`` as a method, then (with ``compile``) the same network compiled (label suffixed "compiled")."""
    methods: list[tuple[str, Upscaler]] = [(label, lambda image: model.upscale(image))]
    if compile:
        methods.append((f"{label}, compiled", lambda image: model.upscale(image, compile=True)))
    return methods


def run(args: argparse.Namespace) -> list[tuple[int, str, dict[str, Score]]]:
    """Measure every method on every set; returns rows ``(scale, method, {set: Score})``."""
    import torch

    torch.set_num_threads(THREADS)
    rows = []
    for scale in args.scale:
        pairs = {name: benchmark_pairs(args.data / "sr" / "val" / name, scale) for name in args.sets}
        for label, upscaler in methods_for(args.models, scale, args.data, args.compile):
            # An untimed first pass over the same inputs prepares kernels and compiles: a
            # compiled model compiles once per window-size class (torch picks the convolution
            # backend by input size), so only the images themselves cover every class.
            for set_pairs in pairs.values():
                for _, lr in set_pairs:
                    upscaler(lr)
            scores = {}
            for set_name, set_pairs in pairs.items():
                score = scores.setdefault(set_name, Score())
                for hr, lr in set_pairs:
                    start = time.perf_counter()
                    restored = upscaler(lr)
                    score.seconds += time.perf_counter() - start
                    score.output_pixels += restored.shape[1] * restored.shape[2]
                    evaluation = evaluate_arrays(hr, restored, shave=scale)
                    score.psnr.append(evaluation.psnr)
                    score.ssim.append(evaluation.ssim)
                    score.detail.append(detail_ratio(rgb_to_y(hr / 255.0), rgb_to_y(restored / 255.0), shave=scale))
            rows.append((scale, label, scores))
            print(f"measured {label} x{scale}", file=sys.stderr)
    return rows


def write_report(args: argparse.Namespace) -> Path:
    """One ``srrestore report`` figure: every method on one image at the largest scale."""
    scale = max(args.scale)
    paths = sorted((args.data / "sr" / "val" / args.sets[0]).glob("*.png"))
    path = next((p for p in paths if p.stem == args.report_image), paths[0])
    hr = load_hr(path, scale)
    lr = degrade(hr, scale)
    methods = methods_for(args.models, scale, args.data)
    report = report_figure(hr, [upscaler(lr) for _, upscaler in methods], [label for label, _ in methods], shave=scale)
    output = args.report / f"quality_{args.sets[0]}_{path.stem}_x{scale}.png"
    save_figure(report.figure, output, overwrite=True)
    return output


def machine() -> str:
    """CPU model, cores, thread setting and library versions."""
    import torch

    try:
        opencv = f"OpenCV {_opencv().__version__}"
    except MissingDependencyError:
        opencv = "OpenCV not installed"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu_model()}, {cores} cores available, {THREADS} threads, {load_average()} at the end; "
            f"Python {platform.python_version()}, torch {torch.__version__}, {opencv}, {platform.system()} "
            f"{platform.machine()}")


def output_rate(scores: dict[str, Score]) -> float:
    """Output megapixels per second of one method over every set."""
    pixels = sum(score.output_pixels for score in scores.values())
    return pixels / sum(score.seconds for score in scores.values()) / 1e6


def table(rows: list[tuple[int, str, dict[str, Score]]], sets: list[str]) -> str:
    """Markdown table: per scale and method, mean PSNR / SSIM per set and speed."""
    header = ["scale", "method", *(f"{name} PSNR / SSIM / detail" for name in sets), "speed (output MP/s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for scale, label, scores in rows:
        cells = [f"x{scale}", label]
        cells += [f"{np.mean(scores[name].psnr):.2f} / {np.mean(scores[name].ssim):.4f} / "
                  f"{np.mean(scores[name].detail):.2f}" for name in sets]
        cells.append(f"{output_rate(scores):.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def record_cards(rows: list[tuple[int, str, dict[str, Score]]], command: str, machine_line: str) -> list[str]:
    """Write each measured built-in model's figures into its card (``card["benchmark"]``).

    ``srrestore models`` then shows them. Compiled rows add ``output_mp_per_s_compiled``.
    The weights are re-saved unchanged. Returns the names updated.
    """
    builtins = {model.name: model.path for model in list_builtin_models()}
    measured: dict[str, dict[str, Any]] = {}
    for _scale, label, scores in rows:
        name = label.removesuffix(", compiled")
        if name not in builtins:
            continue
        entry = measured.setdefault(name, {"protocol": PROTOCOL, "command": command, "machine": machine_line,
                                           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
        speed = output_rate(scores)
        if label != name:
            entry["output_mp_per_s_compiled"] = round(speed, 2)
            continue
        entry["output_mp_per_s"] = round(speed, 2)
        # The table's figures at the table's precision: rounding them again would differ.
        entry["sets"] = {set_name: {"psnr": round(float(np.mean(score.psnr)), 2),
                                    "ssim": round(float(np.mean(score.ssim)), 4),
                                    "detail": round(float(np.mean(score.detail)), 2)}
                         for set_name, score in scores.items()}
    for name, entry in measured.items():
        network, info = load_generator(builtins[name])
        save_generator(builtins[name], network, info.phase, training=info.training,
                       card={**info.card, "benchmark": entry})
    return sorted(measured)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder (holds sr/val/Set5)")
    parser.add_argument("--scale", type=int, nargs="+", default=[2, 4], choices=[2, 3, 4])
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_METHODS),
                        help=f"methods: {', '.join(DEFAULT_METHODS)}, or checkpoint files")
    parser.add_argument("--compile", action="store_true",
                        help="also run the srgan models compiled by torch.compile (compilation not timed)")
    parser.add_argument("--record-cards", action="store_true",
                        help="write the built-in models' figures into their cards (shown by `srrestore models`)")
    parser.add_argument("--report", type=Path, default=None, help="folder for one report figure")
    parser.add_argument("--report-image", default="butterfly", help="image of the first set shown in the report")
    add_write_docs_option(parser, "quality")
    args = parser.parse_args(argv)
    for name in args.sets:
        if not (args.data / "sr" / "val" / name).is_dir():
            parser.error(f"no set {name!r} under {args.data / 'sr' / 'val'}")
    unknown = [m for m in args.models if m not in DEFAULT_METHODS and not Path(m).is_file()]
    if unknown:
        parser.error(f"unknown methods {unknown}; use {', '.join(DEFAULT_METHODS)} or checkpoint files")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    rows = run(args)
    command, machine_line = command_line(__file__, argv), machine()
    print(table(rows, args.sets))
    print(f"\nCommand: `{command}`  \nMachine: {machine_line}")
    if args.record_cards:
        print(f"Cards updated: {', '.join(record_cards(rows, command, machine_line)) or 'none'}")
    if args.report is not None:
        print(f"Report: {write_report(args)}")
    if args.write_docs:
        body = f"{table(rows, args.sets)}\n\nProtocol: {PROTOCOL}. {NOTES}"
        print(f"Page: {write_results('quality', 'Quality and speed: Set5, Set14', body, command, machine_line)}")


if __name__ == "__main__":
    main()
