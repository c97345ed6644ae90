"""NIfTI-1/NIfTI-2 volumes (``.nii``, ``.nii.gz``) through nibabel (invariants N1-N5).

:func:`read_nifti` opens a file and gives the *stored* (unscaled) values in the file's dtype
with their ``scl_slope``/``scl_inter``, as channels-first ``(C, X, Y, Z)``, read
into memory or slab by slab into a disk-backed array:
a 4-D image's fourth axis (time, echoes...) becomes the channels, so a
1-channel network restores each volume in turn. Spatial axes stay in the
file's index order ``(i, j, k)``.

:func:`derive_header` is the pure header derivation: both sform and qform go
through the cell-centred upscale of :mod:`geometry` separately with their codes
kept, ``dim``/``pixdim`` follow, units, intent and ``aux_file`` are kept, slice
timing is cleared when the slice axis was upscaled, and the stored dtype and
scaling are kept. :class:`NiftiWriter` collects the output in a memory-mapped
scratch array and saves it on :meth:`~NiftiWriter.close`.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from srrestore.domains.medical.geometry import upscale_affine

from srrestore.engine.region import Region
from srrestore.storage.scratch import allocate_array, remove_path, temporary_name
from srrestore.errors import InputReadError, OutputWriteError, UnsupportedInputError, error_reason

__all__ = ["sniff_nifti", "NIFTI_SUFFIXES", "NiftiVolume", "read_nifti", "derive_header", "NiftiWriter", "has_nifti_suffix"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
DESCRIP_BYTES = 80


def sniff_nifti(path: Path) -> bool:
    """A ``.nii`` or ``.nii.gz`` file."""
    return path.is_file() and has_nifti_suffix(path)


def has_nifti_suffix(path: Path) -> bool:
    """Whether ``path`` ends in ``.nii`` or ``.nii.gz`` (any case)."""
    return path.name.lower().endswith(NIFTI_SUFFIXES)


SLAB_BYTES = 64 * 2**20  # stored bytes read at once when a volume is streamed


@dataclass
class NiftiVolume:
    """A NIfTI image opened for restoring: its header now, its voxels when read.

    Attributes:
        path: the file.
        header: the nibabel header (Nifti1Header or Nifti2Header).
        slope, intercept: ``physical = stored * slope + intercept`` (1, 0 when unscaled).
        image_class: the nibabel image class, to write the same NIfTI version.
        proxy: nibabel's array proxy of the voxels (nothing read yet).
    """

    path: Path
    header: Any
    slope: float
    intercept: float
    image_class: type
    proxy: Any

    @property
    def shape(self) -> tuple[int, ...]:
        """``(C, X, Y, Z)``: a 4-D image's fourth axis first, else one channel."""
        shape = tuple(int(n) for n in self.proxy.shape)
        return (shape[3], *shape[:3]) if len(shape) == 4 else (1, *shape)

    @property
    def dtype(self) -> np.dtype:
        """The stored dtype, in the machine's byte order."""
        return self.header.get_data_dtype().newbyteorder("=")

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        return self.shape[1:]  # type: ignore[return-value]

    @property
    def zooms(self) -> tuple[float, float, float]:
        """Voxel size along ``(i, j, k)`` in the file's units (pixdim[1..3])."""
        return tuple(float(z) for z in self.header.get_zooms()[:3])  # type: ignore[return-value]

    @property
    def slice_dim(self) -> int | None:
        """The axis ``dim_info`` names as the acquisition slice axis (0-based), or None."""
        return self.header.get_dim_info()[2]

    @cached_property
    def stored(self) -> np.ndarray:
        """``(C, X, Y, Z)`` unscaled values in the stored dtype, read into memory once (see :meth:`read_into`)."""
        return self.read_into(np.empty(self.shape, dtype=self.dtype))

    def read_into(self, out: np.ndarray) -> np.ndarray:
        """Read the stored values into ``out`` (``(C, X, Y, Z)``, e.g. a disk-backed array) slab by slab along ``Z``.

        Each slab holds about :data:`SLAB_BYTES` bytes, so reading into a
        memory-mapped array keeps memory bounded whatever the volume's size.

        Raises:
            InputReadError: truncated or corrupt voxel data.
        """
        channels, *spatial = self.shape
        plane = channels * spatial[0] * spatial[1] * self.dtype.itemsize
        depth = max(1, SLAB_BYTES // max(plane, 1))
        four_d = len(self.proxy.shape) == 4
        for start in range(0, spatial[2], depth):
            stop = min(start + depth, spatial[2])
            slicer = (slice(None), slice(None), slice(start, stop)) + ((slice(None),) if four_d else ())
            try:
                slab = np.asarray(self.proxy._get_unscaled(slicer))  # nibabel's unscaled read of a slice
            except Exception as error:  # truncated gzip streams raise EOFError, zlib.error, OSError
                raise InputReadError(
                    f"cannot read the voxels of {self.path} (truncated or corrupt?): {error_reason(error)}"
                ) from error
            out[..., start:stop] = np.moveaxis(slab, 3, 0) if four_d else slab[None]
        return out


def read_nifti(path: Path) -> NiftiVolume:
    """Open a 3-D or 4-D NIfTI file: its header, and its voxels to read (see :meth:`NiftiVolume.read_into`).

    Raises:
        InputReadError: missing, unreadable or corrupt file; an uncompressed
            file shorter than its voxels.
        UnsupportedInputError: not NIfTI, fewer than 3 or more than 4 axes, or a
            dtype other than integers and floats.
    """
    import nibabel as nib

    if not path.is_file():
        raise InputReadError(f"input not found: {path}")
    try:
        image = nib.load(path)
    except Exception as error:  # nibabel raises ImageFileError, OSError, EOFError, zlib.error...
        raise InputReadError(f"cannot read NIfTI file {path}: {error}") from error
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise UnsupportedInputError(f"{path}: a {type(image).__name__}, not a single-file NIfTI image")
    shape = image.shape
    if len(shape) not in (3, 4):
        raise UnsupportedInputError(f"{path}: NIfTI of shape {shape}; only 3-D volumes and 4-D series are supported")
    dtype = image.header.get_data_dtype()
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise UnsupportedInputError(f"{path}: data type {dtype} is not supported (integers or floats only)")
    needed = int(image.dataobj.offset) + int(np.prod(shape)) * dtype.itemsize
    if not path.name.lower().endswith(".gz") and path.stat().st_size < needed:
        raise InputReadError(f"cannot read the voxels of {path} (truncated: {path.stat().st_size} bytes of {needed})")
    slope, intercept = image.dataobj.slope, image.dataobj.inter
    return NiftiVolume(path, image.header.copy(), float(slope), float(intercept), type(image), image.dataobj)


def derive_header(header: Any, factors: Sequence[float], descrip: str, slope: float = 1.0, intercept: float = 0.0) -> Any:
    """The output header for a volume upscaled by ``factors`` along ``(i, j, k)`` (N1-N5).

    Args:
        header: the source NIfTI header (not modified).
        factors: factor per spatial axis ``(i, j, k)``: output over input
            samples, an integer, or a ratio ``m / n`` where an axis is
            resampled onto ``m`` samples (``n * factor`` must be an integer).
        descrip: provenance text for ``descrip`` (cut to 80 bytes).
        slope, intercept: the source's scaling (:class:`NiftiVolume` keeps it:
            nibabel moves ``scl_*`` out of a loaded header).

    Returns:
        A new header: ``sform = S @ T`` and ``qform = Q @ T`` with the same codes
        (0 included), ``dim[1..3] * s``, ``pixdim[1..3] / s`` (``pixdim[0]`` and
        ``pixdim[4..]`` kept), slice timing zeroed when the ``dim_info`` slice
        axis (or any axis, if none is named) was upscaled, units, intent,
        ``aux_file``, data type and ``scl_slope``/``scl_inter`` kept.
    """
    shape = list(header.get_data_shape())
    counts = [round(n * f) for n, f in zip(shape[:3], factors)]
    factors = tuple(m / n for m, n in zip(counts, shape[:3]))  # exact ratios of the sample counts
    result = header.copy()
    sform_code, qform_code = int(header["sform_code"]), int(header["qform_code"])
    result.set_sform(upscale_affine(header.get_sform(), factors), code=sform_code)
    result.set_qform(upscale_affine(header.get_qform(), factors), code=qform_code)
    shape[:3] = counts
    result.set_data_shape(shape)
    pixdim = np.array(header["pixdim"], dtype=np.float64)
    pixdim[1:4] = pixdim[1:4] / np.asarray(factors, dtype=np.float64)
    result["pixdim"] = pixdim
    slice_axis = header.get_dim_info()[2]
    touched = factors[slice_axis] != 1 if slice_axis is not None else any(f != 1 for f in factors)
    if touched:
        for field in ("slice_code", "slice_start", "slice_end", "slice_duration"):
            result[field] = 0
    result.set_slope_inter(slope, intercept)
    result["descrip"] = descrip.encode("ascii", "replace")[:DESCRIP_BYTES]
    return result


class NiftiWriter:
    """Writer (engine protocol) of a NIfTI output.

    Regions arrive as ``(C, x, y, z)`` stored values in output space. They go
    into a memory-mapped scratch array (one file in ``scratch``), saved on
    :meth:`close` in the stored dtype with the header's scaling (N5). The
    output format follows the suffix (``.nii`` or ``.nii.gz``).

    Args:
        path: output file (any name, e.g. the temporary path of ``atomic_output``).
        header: the derived header (:func:`derive_header`).
        channels: ``C`` (the fourth axis of a 4-D image, else 1).
        image_class: nibabel image class to write (Nifti1Image or Nifti2Image).
        compressed: write gzip-compressed NIfTI (``.nii.gz``).
        scratch: folder for the scratch array (default: the system temporary folder).
    """

    def __init__(
        self, path: Path, header: Any, channels: int, image_class: type, compressed: bool, scratch: Path | None = None
    ) -> None:
        self.path = path
        self.header = header
        self.image_class = image_class
        self.compressed = compressed
        self.shape = tuple(int(n) for n in header.get_data_shape()[:3])
        self._folder = (scratch or Path(tempfile.gettempdir())) / temporary_name("nifti")
        self._folder.mkdir()
        try:
            self.array = allocate_array(self._folder / "volume.dat", header.get_data_dtype().newbyteorder("="),
                                        (channels, *self.shape))
        except BaseException:
            remove_path(self._folder)
            raise

    def write(self, region: Region, array: np.ndarray) -> None:
        """Store ``(C, *region.size)`` values (already in the stored dtype)."""
        self.array[(slice(None), *region.slices())] = array

    def close(self) -> None:
        """Save the volume (stored values, header scaling kept) and drop the scratch array."""
        try:
            data = self.array[0] if len(self.header.get_data_shape()) == 3 else np.moveaxis(self.array, 0, -1)
            image = self.image_class(data, None, header=self.header)
            image.header.set_slope_inter(*self.header.get_slope_inter())
            # nibabel picks the format from the suffix, which a temporary name may lack
            saved = self._folder / ("volume.nii.gz" if self.compressed else "volume.nii")
            image.to_filename(saved)
            shutil.move(saved, self.path)
        except OSError as error:
            raise OutputWriteError(f"cannot write {self.path}: {error_reason(error)}") from error
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove the scratch array without saving (after a failure)."""
        self.array = None  # type: ignore[assignment]
        remove_path(self._folder)
