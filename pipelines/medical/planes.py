"""Through-plane SR on the two orthogonal planes that hold the slice axis, averaged (SMORE, ECLARE).

A model that upscales one axis, ``(s, 1)``, restores a volume ``(D, H, W)``
with thick slices along ``D`` from the ``(D, H)`` planes (walking ``W``) and,
separately, from the ``(D, W)`` planes (walking ``H``). The two estimates are
averaged in normalised intensities and converted back into the stored dtype
once (round and clip, invariant I5): one rounding, not two.

Both engine runs read the volume through :class:`NormalisedReader`, which
presents it as float32 normalised values with NaN on nodata pixels, and run
with the identity normalisation, so the engine hands back normalised values.
The sum of the two runs is kept in a float32 memory-mapped scratch volume.
Nodata follows the engine's own rule: invalid outputs hold the source's
nodata, valid outputs are moved off it (G5/G6).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from srrestore.pipelines.common import run_engine
from srrestore.pipelines.options import RestoreOptions

from srrestore.engine.io import ImageSpec, Reader, Writer, as_band_mask
from srrestore.engine.nodata import invalid_value, keep_off_nodata
from srrestore.engine.normalize import Normalization
from srrestore.engine.region import Region
from srrestore.storage.scratch import allocate_array, scratch_folder
from srrestore.sr_model import SRModel

__all__ = ["NormalisedReader", "PlaneSum", "average_planes"]

CHUNK_VALUES = 1 << 22  # output values converted at once (bounds float64 temporaries to ~32 MB)


class NormalisedReader:
    """A reader presenting another reader's stored values as float32 normalised values.

    Args:
        source: reader of ``(C, *spatial)`` stored values.
        normalization: the stored -> normalised map.

    Nodata pixels of ``source`` read as NaN (the spec's nodata); validity is the source's.
    """

    def __init__(self, source: Reader, normalization: Normalization) -> None:
        self.source = source
        self.normalization = normalization
        self.spec = ImageSpec(source.spec.channels, source.spec.shape, "float32", float("nan"))

    def read(self, region: Region) -> np.ndarray:
        """``(C, *region.size)`` float32 normalised values, NaN where the source is invalid."""
        values = self.normalization.forward(self.source.read(region))
        values[~as_band_mask(self.source.read_valid(region), values.shape[0], region.size)] = np.nan
        return values

    def read_valid(self, region: Region) -> np.ndarray:
        return self.source.read_valid(region)


class PlaneSum:
    """Writer (engine protocol) summing the normalised outputs of several runs into a float32 volume.

    Args:
        folder: where the memory-mapped ``(C, *shape)`` array lives.
        channels, shape: the output's channels and spatial shape.

    The first run's writes store, later runs' writes add (each run writes every
    output pixel once). NaN (nodata) stays NaN.
    """

    def __init__(self, folder: Path, channels: int, shape: tuple[int, ...]) -> None:
        self.array = allocate_array(folder / "planes.dat", np.float32, (channels, *shape))
        self.runs = 0

    def write(self, region: Region, array: np.ndarray) -> None:
        """Store or add ``(C, *region.size)`` normalised float32 values."""
        target = (slice(None), *region.slices())
        if self.runs == 0:
            self.array[target] = array
        else:
            self.array[target] += array

    def close(self) -> None:
        """End one run."""
        self.runs += 1


def _write_stored(
    total: PlaneSum, writer: Writer, normalization: Normalization, dtype: np.dtype, nodata: float | None
) -> None:
    """Average ``total`` over its runs, convert to ``dtype`` once and write it in slabs along axis 0."""
    channels, *shape = total.array.shape
    fill = invalid_value(dtype, nodata)
    rows = max(1, CHUNK_VALUES // max(1, channels * int(np.prod(shape[1:]))))
    for start in range(0, shape[0], rows):
        stop = min(start + rows, shape[0])
        mean = np.asarray(total.array[:, start:stop]) / np.float32(total.runs)
        stored = normalization.inverse(mean, dtype)
        keep_off_nodata(stored, mean, normalization, nodata)
        stored[np.isnan(mean)] = fill
        writer.write(Region((start, *(0 for _ in shape[1:])), (stop, *shape[1:])), stored)


def average_planes(
    reader: Reader,
    writer: Writer,
    model: SRModel,
    planes: Sequence[tuple[int, int]],
    factors: Sequence[int],
    normalization: Normalization,
    options: RestoreOptions,
    scratch: Path,
) -> list[Any]:
    """Run ``model`` on each of ``planes`` and write the average of the runs into ``writer``.

    Args:
        reader: the ``(C, *spatial)`` stored volume.
        writer: takes ``(C, *region)`` stored values in output space (not closed here).
        model: a 2-D model; each plane's first axis gets its first factor.
        planes: pairs of spatial axes the network sees, e.g. ``[(0, 1), (0, 2)]``;
            every pair must give the same output shape.
        factors: upscale factor per spatial axis of the volume.
        normalization: the volume's stored <-> normalised map.
        options: engine options (tile and batch size, device, progress...).
        scratch: folder for the float32 scratch volume (removed afterwards).

    Returns:
        The engine's report of each plane's run.
    """
    shape = tuple(n * f for n, f in zip(reader.spec.shape, factors))
    source = NormalisedReader(reader, normalization)
    identity = Normalization((0.0,) * reader.spec.channels, (1.0,) * reader.spec.channels, method="identity")
    reports = []
    with scratch_folder(scratch, "planes") as folder:
        total = PlaneSum(Path(folder), reader.spec.channels, shape)
        for plane in planes:
            reports.append(run_engine(source, total, model, identity, options, plane))
            total.close()
        _write_stored(total, writer, normalization, np.dtype(reader.spec.dtype), reader.spec.nodata)
        del total  # close the memory map before its folder goes
    return reports
