"""Read and write GeoTIFF and Cloud-Optimised GeoTIFF window by window (invariants G3-G14).

:class:`GeoTiffReader` is the engine's :class:`~srrestore.engine.io.Reader`
over one rasterio dataset; :class:`GeoTiffWriter` its
:class:`~srrestore.engine.io.Writer`, writing a tiled GTiff in block-aligned
windows, then (``cog=True``) copying it into a COG with GDAL's COG driver.
Neither holds the raster in memory. A dataset handle is never shared between
threads (G14): the engine reads from one thread and writes from another, and
each object has its own handle.
"""

from __future__ import annotations

import math
import resource
import shutil
import warnings
from dataclasses import dataclass, replace
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio._err import CPLE_BaseError
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from srrestore.domains.satellite.blocks import BlockAligner
from srrestore.domains.satellite.meta import RasterMeta
from srrestore.engine.io import ImageSpec, band_valid_mask, valid_mask
from srrestore.engine.region import Region
from srrestore.errors import (ConfigError, InputReadError, OutputWriteError, UnsupportedInputError,
                              error_reason)
from srrestore.sr_model import SUPPORTED_DTYPES

__all__ = [
    "BIGTIFF_THRESHOLD",
    "BLOCK_SIZE",
    "GDAL_ERRORS",
    "SAMPLE_SIDE",
    "GeoTiffReader",
    "GeoTiffWriter",
    "alpha_band",
    "RasterSample",
    "creation_options",
    "overview_factors",
    "read_meta",
]

BLOCK_SIZE = 512  # output block side, pixels (a multiple of 16, G9)
BIGTIFF_THRESHOLD = 4 * 2**30  # bytes of uncompressed output above which BIGTIFF=YES (G10)
SAMPLE_SIDE = 1024  # largest side of the decimated read that normalisation statistics use
COG_BLOCK_SIZE = 512  # block side of COG outputs (G12)
GDAL_ERRORS = (RasterioError, CPLE_BaseError)  # what rasterio raises for GDAL failures
LOSSLESS = ("DEFLATE", "LZW", "ZSTD", "LZMA", "PACKBITS")
PREDICTED = ("DEFLATE", "LZW", "ZSTD")  # the codecs GDAL applies PREDICTOR to
FULL_DISK_BYTES = 4 * 2**20  # free space below which a failed write is put down to a full disk
FALLBACK_COMPRESSION = "DEFLATE"  # replaces lossy source codecs (JPEG, WEBP, LERC...)


def _window(region: Region) -> Window:
    (row, col), (height, width) = region.start, region.size
    return Window(col, row, width, height)


def read_meta(dataset: Any) -> RasterMeta:
    """The :class:`RasterMeta` of an open rasterio dataset (reads no pixels)."""
    gcps, gcps_crs = dataset.gcps
    flags = dataset.mask_flag_enums[0]
    compression = dataset.profile.get("compress")
    return RasterMeta(
        width=dataset.width,
        height=dataset.height,
        count=dataset.count,
        dtype=dataset.dtypes[0],
        crs=dataset.crs,
        transform=dataset.transform,
        gcps=tuple(gcps),
        gcps_crs=gcps_crs if gcps else None,
        rpcs=dataset.rpcs,
        nodata=dataset.nodata,
        tags=dataset.tags(),
        band_tags=tuple(dataset.tags(band) for band in range(1, dataset.count + 1)),
        descriptions=tuple(dataset.descriptions),
        colorinterp=tuple(dataset.colorinterp),
        scales=tuple(dataset.scales),
        offsets=tuple(dataset.offsets),
        units=tuple(unit or None for unit in dataset.units),
        compression=compression.upper() if compression else None,
        interleave=dataset.interleaving.value.lower() if dataset.interleaving else "pixel",
        has_overviews=bool(dataset.overviews(1)),
        has_mask=MaskFlags.per_dataset in flags and not {MaskFlags.nodata, MaskFlags.alpha} & set(flags),
        alpha_mask=MaskFlags.alpha in flags,
    )


def alpha_band(meta: RasterMeta) -> int | None:
    """The 0-based index of the raster's alpha band (GDAL's dataset mask, not data), or None.

    An alpha band is never restored: it masks the other bands (alpha 0: invalid)
    and is nearest-upsampled into the output (invariants G5, G6).
    """
    alphas = [band for band, interp in enumerate(meta.colorinterp) if interp == ColorInterp.alpha]
    return alphas[0] if meta.alpha_mask and len(alphas) == 1 and meta.count > 1 else None


@dataclass(frozen=True)
class RasterSample:
    """A decimated view of a raster, for normalisation statistics.

    Attributes:
        values: ``(C, h, w)`` stored values, nearest-neighbour decimated.
        valid: ``(h, w)`` bool mask of valid pixels (nodata, NaN and the mask band excluded).
    """

    values: np.ndarray
    valid: np.ndarray


class GeoTiffReader:
    """Reads windows of a GeoTIFF or COG: the engine's reader.

    Every numeric GDAL dtype but complex is read as stored (uint8 ... int64,
    float32, float64; see :data:`~srrestore.sr_model.SUPPORTED_DTYPES`).
    A damaged file fails with one line naming it: at opening when its header
    or metadata are unreadable, else at the first read reaching a damaged block.

    Args:
        path: the raster.

    Attributes:
        meta: its :class:`RasterMeta`.
        spec: its :class:`ImageSpec` (``(H, W)``, all bands, nodata).

    Raises:
        InputReadError: missing, unreadable, truncated or corrupt file.
        UnsupportedInputError: bands of different dtypes, a complex dtype, a
            paletted raster, or a 64-bit integer nodata beyond ``±2**53``.
    """

    # What rasterio raises on a damaged file: GDAL's errors, and Python errors from decoding
    # corrupt metadata (IndexError, KeyError for unknown type codes, UnicodeDecodeError and
    # other ValueErrors), which would otherwise surface as e.g. "list index out of range".
    DAMAGED_FILE_ERRORS = (*GDAL_ERRORS, IndexError, KeyError, ValueError)

    def __init__(self, path: str | PathLike[str], nodata: float | None = None) -> None:
        self.path = Path(path)
        self.reopen_options: dict[str, Any] = {} if nodata is None else {"nodata": nodata}
        if not self.path.exists():
            raise InputReadError(f"input not found: {self.path}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._dataset = rasterio.open(self.path)
        except self.DAMAGED_FILE_ERRORS as error:
            raise InputReadError(
                f"cannot open raster {self.path}: the file looks truncated or corrupt, or is not a raster"
                f" ({error_reason(error)})"
            ) from error
        try:
            self._check()
            self.meta = read_meta(self._dataset)
        except UnsupportedInputError:  # from _check (a ValueError too): readable, but not restorable
            self._dataset.close()
            raise
        except self.DAMAGED_FILE_ERRORS as error:
            self._dataset.close()
            raise self._damaged("the metadata", error) from error
        except BaseException:
            self._dataset.close()
            raise
        if nodata is not None:
            self.meta = replace(self.meta, nodata=self._declared(nodata))
        self.alpha = alpha_band(self.meta)
        self.colour = [band for band in range(self.meta.count) if band != self.alpha]
        self.spec = ImageSpec(len(self.colour), (self.meta.height, self.meta.width), self.meta.dtype, self.meta.nodata)
        self._cached: tuple[Region, np.ndarray] | None = None

    def _declared(self, nodata: float) -> float:
        """Check a nodata value the user declares (``--nodata``) against the raster.

        Raises:
            ConfigError: the raster declares another nodata value, or its dtype cannot hold this one.
        """
        declared = self.meta.nodata
        if declared is not None:
            if declared == nodata or (np.isnan(declared) and np.isnan(nodata)):
                return declared
            self.close()
            raise ConfigError(f"{self.path} declares nodata {declared:g}; --nodata {nodata:g} differs from it")
        dtype = np.dtype(self.meta.dtype)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            if np.isnan(nodata) or not float(nodata).is_integer() or not info.min <= nodata <= info.max:
                self.close()
                raise ConfigError(f"--nodata {nodata:g} is not a {dtype} value")
        return float(nodata)

    def _damaged(self, what: str, error: BaseException) -> InputReadError:
        """The error for a failed read of ``what`` (``"the metadata"``, ``"rows 0:512, columns 0:512"``...)."""
        return InputReadError(
            f"cannot read {what} of {self.path}: the file looks truncated or corrupt ({error_reason(error)})"
        )

    def _check(self) -> None:
        """Refuse what cannot be restored faithfully (UnsupportedInputError).

        Mixed dtypes, complex dtypes, colour-table indices, and a 64-bit integer
        nodata beyond ``±2**53``: rasterio hands nodata over as a float64 (exact
        only up to 2**53) and writes it back as a float string that GDAL misreads
        for 64-bit integer bands (-2**63 comes back as -9), so the nodata pixels
        or the output's nodata would be silently wrong.
        """
        dtypes = set(self._dataset.dtypes)
        if len(dtypes) != 1:
            raise UnsupportedInputError(f"{self.path}: bands have different dtypes {sorted(dtypes)}")
        dtype = dtypes.pop()
        if dtype not in SUPPORTED_DTYPES:
            raise UnsupportedInputError(
                f"{self.path}: dtype {dtype} is not supported; use one of {', '.join(SUPPORTED_DTYPES)}"
            )
        nodata = self._dataset.nodata
        if dtype in ("int64", "uint64") and nodata is not None and abs(nodata) > 2**53:
            raise UnsupportedInputError(
                f"{self.path}: {dtype} nodata {nodata:.0f} is beyond ±2**53, which rasterio cannot write back"
                " exactly; set a nodata value nearer zero"
            )
        if ColorInterp.palette in self._dataset.colorinterp:
            raise UnsupportedInputError(f"{self.path}: paletted raster (colour table indices); expand it to RGB first")

    def read(self, region: Region) -> np.ndarray:
        """``(C, *region.size)`` stored values of the data bands (the alpha band left out) of ``region``."""
        values = self._read_all(region)
        return values if self.alpha is None else values[self.colour]

    def read_alpha(self, region: Region) -> np.ndarray:
        """``(*region.size)`` values of the alpha band (the raster must have one)."""
        if self.alpha is None:
            raise ValueError(f"{self.path} has no alpha band")
        return self._read_all(region)[self.alpha]

    def _read_all(self, region: Region) -> np.ndarray:
        """``(count, *region.size)`` stored values of every band, the last window cached."""
        if self._cached is not None and self._cached[0] == region:
            return self._cached[1]
        try:
            values = self._dataset.read(window=_window(region))
        except self.DAMAGED_FILE_ERRORS as error:
            (top, left), (bottom, right) = region.start, region.stop
            raise self._damaged(f"rows {top}:{bottom}, columns {left}:{right}", error) from error
        self._cached = (region, values)
        return values

    def read_valid(self, region: Region) -> np.ndarray:
        """``(C, *region.size)`` mask: the band's value is not nodata (nor NaN, nor infinite), and
        the mask band (or the alpha band) is set."""
        valid = band_valid_mask(self.read(region), self.meta.nodata)
        if self.meta.has_mask:
            valid &= self.read_mask(region)
        if self.alpha is not None:
            valid &= self.read_alpha(region) > 0
        return valid

    def read_mask(self, region: Region) -> np.ndarray:
        """``(*region.size)`` bool mask band of ``region`` (all True without a mask band)."""
        return self._read_mask(window=_window(region)) > 0

    def _read_mask(self, **kwargs: Any) -> np.ndarray:
        """Mask band of band 1 (0 invalid, 255 valid), read with rasterio's ``read_masks`` ``kwargs``."""
        try:
            return self._dataset.read_masks(1, **kwargs)
        except self.DAMAGED_FILE_ERRORS as error:
            raise self._damaged("the mask", error) from error

    def sample(self, max_side: int = SAMPLE_SIDE) -> RasterSample:
        """Decimated read (overviews used when present) of at most ``max_side`` pixels a side."""
        step = max(1, math.ceil(max(self.meta.height, self.meta.width) / max_side))
        shape = (math.ceil(self.meta.height / step), math.ceil(self.meta.width / step))
        try:
            values = self._dataset.read(out_shape=(self.meta.count, *shape), resampling=Resampling.nearest)
        except self.DAMAGED_FILE_ERRORS as error:
            raise self._damaged(f"a {shape[0]}x{shape[1]} sample", error) from error
        if self.alpha is not None:
            values, alpha = values[self.colour], values[self.alpha]
        valid = valid_mask(values, self.meta.nodata)
        if self.meta.has_mask:
            valid &= self._read_mask(out_shape=shape, resampling=Resampling.nearest) > 0
        if self.alpha is not None:
            valid &= alpha > 0
        return RasterSample(values, valid)

    def close(self) -> None:
        self._cached = None
        self._dataset.close()

    def __enter__(self) -> GeoTiffReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_reason(error: BaseException, path: Path) -> str:
    """Why GDAL failed to write ``path``, in one line; says so when the disk is (nearly) full.

    GDAL reports a full disk as a generic write error (the system's reason only
    goes to stderr), so the free space of the folder and the process's file
    size limit are checked.
    """
    reason = error_reason(error)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        reason += f" (this process may not write files over its file size limit of {limit} bytes: ulimit -f)"
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return reason
    return f"{reason} (no space left on the device: {free // 1024} KiB free)" if free < FULL_DISK_BYTES else reason


def _output_compression(meta: RasterMeta) -> str | None:
    """The source's codec when lossless; DEFLATE instead of a lossy one; None for none."""
    if meta.compression is None or meta.compression in LOSSLESS:
        return meta.compression
    return FALLBACK_COMPRESSION


def _predictor(meta: RasterMeta) -> int | None:
    """2 (horizontal differencing) for integers, 3 (floating point) for floats (G9)."""
    if _output_compression(meta) not in PREDICTED:
        return None
    return 3 if np.issubdtype(np.dtype(meta.dtype), np.floating) else 2


def _needs_bigtiff(meta: RasterMeta, threshold: int, with_overviews: bool) -> bool:
    """Uncompressed bytes of the output (bands, mask, overviews) above ``threshold`` (G10)."""
    pixels = meta.width * meta.height
    size = pixels * meta.count * np.dtype(meta.dtype).itemsize + (pixels if meta.has_mask else 0)
    return size * (4 / 3 if with_overviews else 1) > threshold


def creation_options(meta: RasterMeta, block_size: int = BLOCK_SIZE, bigtiff_threshold: int = BIGTIFF_THRESHOLD,
                     cog: bool = False) -> dict[str, Any]:
    """GTiff creation options for an output described by ``meta`` (G9, G10).

    Args:
        meta: the output's metadata.
        block_size: tile side, a multiple of 16.
        bigtiff_threshold: uncompressed size in bytes above which ``BIGTIFF=YES``.
        cog: the output becomes a COG (its overviews count towards the size).

    Raises:
        ConfigError: ``block_size`` is not a positive multiple of 16.
    """
    if block_size < 16 or block_size % 16:
        raise ConfigError(f"block_size must be a positive multiple of 16, got {block_size}")
    options: dict[str, Any] = {
        "tiled": True,
        "blockxsize": block_size,
        "blockysize": block_size,
        "interleave": meta.interleave,
        "BIGTIFF": "YES" if _needs_bigtiff(meta, bigtiff_threshold, meta.has_overviews or cog) else "IF_SAFER",
    }
    compression = _output_compression(meta)
    if compression is not None:
        options["compress"] = compression
    predictor = _predictor(meta)
    if predictor is not None:
        options["predictor"] = predictor
    return options


def _cog_options(options: dict[str, Any]) -> dict[str, Any]:
    """COG driver options matching the staging GTiff's (G12)."""
    cog = {
        "BLOCKSIZE": COG_BLOCK_SIZE,
        "COMPRESS": options.get("compress", "NONE"),
        "BIGTIFF": options["BIGTIFF"],
        "OVERVIEW_RESAMPLING": "AVERAGE",
    }
    if "predictor" in options:
        cog["PREDICTOR"] = "YES"
    return cog


def overview_factors(width: int, height: int, block_size: int) -> list[int]:
    """``[2, 4, ...]`` until the smallest level fits in one block (G11)."""
    factors = [2]
    while math.ceil(max(width, height) / factors[-1]) > block_size:
        factors.append(factors[-1] * 2)
    return factors


class GeoTiffWriter:
    """Writes an upscaled raster window by window: the engine's writer.

    Writes a tiled GTiff at ``path`` (with ``cog=True``, a staging GTiff beside
    it, copied into a COG at ``path`` on :meth:`close`). Windows go through a
    :class:`BlockAligner`, so GDAL only sees whole blocks. Metadata are written
    explicitly (``profile`` carries none of them, G3). Overviews are rebuilt
    with average resampling when the source had some (G11); a COG gets them
    from the COG driver. Use it as a context manager: on an exception the
    partial files are removed. For an atomic output, give it the temporary
    path of :func:`srrestore.storage.atomic.atomic_output`.

    Args:
        path: the output file.
        meta: the output's metadata (see :func:`~srrestore.domains.satellite.meta.derive_output_meta`).
        cog: write a Cloud-Optimised GeoTIFF.
        block_size: tile side of the output, a multiple of 16.
        bigtiff_threshold: uncompressed bytes above which the output is a BigTIFF.
        alpha_source: for a raster with an alpha band, a reader of the input whose
            alpha band is nearest-upsampled into the output.

    Raises:
        ConfigError: invalid ``block_size``.
        OutputWriteError: the file cannot be created or written.
    """

    def __init__(self, path: str | PathLike[str], meta: RasterMeta, cog: bool = False,
                 block_size: int = BLOCK_SIZE, bigtiff_threshold: int = BIGTIFF_THRESHOLD,
                 alpha_source: GeoTiffReader | None = None) -> None:
        self.path = Path(path)
        self.meta = meta
        self.alpha_source = alpha_source
        self.cog = cog
        self.block_size = block_size
        self.options = creation_options(meta, block_size, bigtiff_threshold, cog)
        self._target = self.path.with_name(f"{self.path.name}.staging.tif") if cog else self.path
        self._dataset = self._create()
        self._aligner = BlockAligner((meta.height, meta.width), meta.count, meta.dtype,
                                     (block_size, block_size), self._write_window)

    def _create(self) -> Any:
        meta = self.meta
        profile: dict[str, Any] = dict(driver="GTiff", width=meta.width, height=meta.height, count=meta.count,
                                       dtype=meta.dtype, nodata=meta.nodata, **self.options)
        if meta.gcps:
            profile.update(gcps=list(meta.gcps), crs=meta.gcps_crs)
        else:
            profile.update(crs=meta.crs, transform=meta.transform)
        if meta.rpcs is not None:
            profile["rpcs"] = meta.rpcs
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                dataset = rasterio.open(self._target, "w", **profile)
        except (*GDAL_ERRORS, OSError) as error:
            raise OutputWriteError(f"cannot create {self._target}: {write_reason(error, self._target)}") from error
        try:
            self._write_metadata(dataset)
        except BaseException:
            dataset.close()
            self._target.unlink(missing_ok=True)
            raise
        return dataset

    def _write_metadata(self, dataset: Any) -> None:
        """Tags, descriptions, colour interpretation, scales, offsets, units (G2, G3)."""
        meta = self.meta
        dataset.update_tags(**meta.tags)
        for band in range(1, meta.count + 1):
            dataset.update_tags(band, **meta.band_tags[band - 1])
            description = meta.descriptions[band - 1]
            if description:
                dataset.set_band_description(band, description)
        dataset.colorinterp = meta.colorinterp
        dataset.scales = meta.scales
        dataset.offsets = meta.offsets
        dataset.units = tuple(unit or "" for unit in meta.units)

    def _write_window(self, region: Region, array: np.ndarray) -> None:
        try:
            self._dataset.write(array, window=_window(region))
        except GDAL_ERRORS as error:
            raise OutputWriteError(f"cannot write {self._target}: {write_reason(error, self._target)}") from error

    def write(self, region: Region, array: np.ndarray) -> None:
        """Store ``(C, *region.size)`` output values (any window; written as whole blocks).

        With an ``alpha_source`` (a reader of its own, G14), ``array`` holds the data
        bands only; the source's alpha band, nearest-upsampled, is put back in its place.
        """
        if self.alpha_source is not None:
            array = np.insert(array, self.alpha_source.alpha, self._alpha(region), axis=0)
        self._aligner.write(region, array)

    def _alpha(self, region: Region) -> np.ndarray:
        """``(*region.size)`` nearest-upsampled alpha of an output region (aligned to the scale)."""
        source = self.alpha_source
        scale = (self.meta.height // source.meta.height, self.meta.width // source.meta.width)
        low = Region(tuple(a // f for a, f in zip(region.start, scale)),
                     tuple(-(-b // f) for b, f in zip(region.stop, scale)))
        alpha = source.read_alpha(low).repeat(scale[0], axis=0).repeat(scale[1], axis=1)
        offset = tuple(a - b * f for a, b, f in zip(region.start, low.start, scale))
        return alpha[offset[0] : offset[0] + region.size[0], offset[1] : offset[1] + region.size[1]]

    def write_mask_from(self, source: GeoTiffReader) -> None:
        """Write the source's mask band, nearest-upsampled, as the output's internal mask (G5, G6).

        Reads and writes one row of output blocks at a time.
        """
        sy, sx = self.meta.height // source.meta.height, self.meta.width // source.meta.width
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            for top in range(0, self.meta.height, self.block_size):
                bottom = min(top + self.block_size, self.meta.height)
                rows = Region((top // sy, 0), (math.ceil(bottom / sy), source.meta.width))
                mask = source.read_mask(rows).repeat(sy, axis=0).repeat(sx, axis=1)
                strip = mask[top - rows.start[0] * sy : bottom - rows.start[0] * sy]
                try:
                    self._dataset.write_mask(np.where(strip, 255, 0).astype(np.uint8),
                                             window=Window(0, top, self.meta.width, bottom - top))
                except GDAL_ERRORS as error:
                    raise OutputWriteError(
                        f"cannot write the mask of {self._target}: {write_reason(error, self._target)}"
                    ) from error

    def close(self) -> None:
        """Check every block was written, build overviews or the COG, close the file.

        Raises:
            OutputWriteError: some pixels were never written, or GDAL failed.
        """
        if self._aligner.pending:
            self._abort()
            raise OutputWriteError(f"{self.path}: {self._aligner.pending} output blocks were only partly written")
        try:
            if self.meta.has_overviews and not self.cog:
                self._dataset.build_overviews(overview_factors(self.meta.width, self.meta.height, self.block_size),
                                              Resampling.average)
                self._dataset.update_tags(OVR_RESAMPLING_ALG="AVERAGE")
            self._dataset.close()
            if self.cog:
                rasterio.shutil.copy(self._target, self.path, driver="COG", **_cog_options(self.options))
        except GDAL_ERRORS as error:
            self._abort()
            raise OutputWriteError(f"cannot finish {self.path}: {write_reason(error, self.path)}") from error
        finally:
            if self.cog:
                self._target.unlink(missing_ok=True)

    def _abort(self) -> None:
        """Close the dataset and remove what was written."""
        self._dataset.close()
        self._target.unlink(missing_ok=True)
        if self.cog:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> GeoTiffWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self._abort()
