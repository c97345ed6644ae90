"""Conformance corpus (issue 15): generated inputs through ``srrestore.restore``, checked
against ``docs/metadata-invariants.md`` and for sane values.

Every case writes a small input in ``tmp_path/in``, restores it with a tiny untrained x2
generator (fixed seed) into ``tmp_path/out`` on the CPU, and checks the output.

GeoTIFF matrix. Factors: dtype (uint8, int8, uint16, int16, uint32, int32, float32,
float64), bands (1, 3, 4), nodata (``none``; ``unused``: a numeric nodata no pixel holds;
``value``: a numeric nodata with holes; ``nan``: NaN nodata with NaN holes; ``nan+value``:
a numeric nodata with NaN holes and nodata holes; ``inf``: +inf and -inf pixels, no nodata
declared; the last three for floats only; holes lie in every band or in band 0 only), size
(1x1, 2x3, 1x9, 8x1, 5x7, 17x33), model (1-channel, run band by band; 3-channel, for 3
bands only) and output (GTiff, COG). The full product holds 1440 valid combinations; the
cases are a *pairwise* (all-pairs) design over it instead: every pair of factor values
that can occur together occurs in at least one case, built greedily and deterministically
by :func:`pairwise` (60 cases). uint64 and int64 are added as two hand-picked cases, a
rotated transform as one, an RGBA raster as one, and the multi-tile check (``tile_size=16``
against ``tile_size=512``) runs on its own cases of 37x50 pixels.

Checked for every GeoTIFF (the invariant IDs of ``docs/metadata-invariants.md``): dtype,
band count, shape x2 (G5); bounds equal and transform = input transform @
``Affine.scale(1/2)`` (G1); CRS, nodata (G5), descriptions, colour interpretation, dataset
and band tags, scales, offsets, units (G3); masked input values (band by band: the nodata
value, NaN, +/-inf) keep their input values, nearest-upsampled (G5, and the engine's rule
in ``srrestore.engine.stages.to_stored``); every other output value finite, never equal to
the nodata value (G6), and within the band's recorded normalisation range and valid input
range widened by one normalisation range on both sides (an untrained network is no
identity, so only a sane range is asserted). The other bands of a pixel masked in band 0
only are held to no rule beyond that, so the checks hold whether the engine restores them
or keeps their input values. Also: the ``SRRESTORE_*`` provenance tags; the COG layout
(G12); the input file's bytes unchanged, nothing new in the input folder and nothing but
the output in the output folder.

Plain images (PNG uint8/uint16 with 1 and 3 channels, RGBA, plain TIFF uint8/uint16):
dtype and channel count kept, shape x2, alpha nearest-upsampled. NIfTI (int16, uint8,
float32; 12x10x4 voxels of 1x1x3 mm, ``scale=2`` so only the in-plane pass runs): the
sform and qform of the output put its voxel corners on the input's physical box (C1, N1),
dtype, scl_slope/scl_inter and the form codes are kept (N1, N5), pixdim follows the affine
(N2), units are kept (N3), NaN voxels stay NaN; the output folder holds the output and its
JSON sidecar only.

Cases the library fails are strict xfails whose reason says what is wrong.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import struct
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import rasterio
import tifffile
import torch
from affine import Affine
from rasterio.enums import ColorInterp

import srrestore
from srrestore.domains.medical.geometry import corner_points
from srrestore.models.checkpoint import save_generator
from srrestore.models.generator import create_generator

SCALE = 2
TRANSFORM = Affine(30, 0, 500000, 0, -30, 4000000)  # 30 m pixels, EPSG:32618
ROTATED = Affine(20, 5, 500000, 4, -20, 4000000)  # rotation/shear terms must scale too (G1)
PROVENANCE = ("SRRESTORE_VERSION", "SRRESTORE_MODEL", "SRRESTORE_MODEL_SHA256", "SRRESTORE_MODEL_PHASE",
              "SRRESTORE_SCALE", "SRRESTORE_NORMALIZATION")

# dtype -> (low, high) of the valid values: a range only that dtype holds where it can (uint32
# above int32's max, float64 steps float32 cannot hold), so a silent narrowing cast would show.
RANGES: dict[str, tuple[float, float]] = {
    "uint8": (10, 240),
    "int8": (-120, 120),
    "uint16": (1000, 60000),
    "int16": (-30000, 30000),
    "uint32": (3_000_000_000, 4_000_000_000),
    "int32": (-2_000_000_000, 2_000_000_000),
    "uint64": (2**40, 2**41),
    "int64": (-(2**45), 2**45),
    "float32": (-3500.0, 3500.0),
    "float64": (1e6, 1e6 + 1.0),
}
# The numeric nodata of each dtype; several lie inside the valid range, where a valid output
# rounding onto the sentinel is likeliest (G6). float32's is -FLT_MAX, GDAL's usual one.
NODATA: dict[str, float] = {
    "uint8": 0,
    "int8": 0,
    "uint16": 65535,
    "int16": 0,
    "uint32": 0,
    "int32": -9999,
    "uint64": 0,
    "int64": -9999,
    "float32": float(np.finfo(np.float32).min),
    "float64": -1e30,
}
FLOATS = ("float32", "float64")
FLOAT_ONLY_MODES = ("nan", "nan+value", "inf")

FACTORS: dict[str, list[Any]] = {
    "dtype": ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"],
    "bands": [1, 3, 4],
    "nodata": ["none", "unused", "value", "nan", "nan+value", "inf"],
    "size": [(1, 1), (2, 3), (1, 9), (8, 1), (5, 7), (17, 33)],
    "model": [1, 3],
    "cog": [False, True],
}


def allowed(case: dict[str, Any]) -> bool:
    """Whether a combination can exist: NaN/inf need floats; the 3-channel model needs 3 bands."""
    if case["nodata"] in FLOAT_ONLY_MODES and case["dtype"] not in FLOATS:
        return False
    return case["model"] == 1 or case["bands"] == 3


def pairwise(factors: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """A deterministic all-pairs design: allowed combinations covering every allowed value pair.

    Greedy: repeatedly take the first combination (in product order) that covers the most
    value pairs not covered yet, until every pair that some allowed combination holds is covered.
    """
    names = list(factors)
    candidates = [dict(zip(names, values)) for values in itertools.product(*factors.values())]
    candidates = [case for case in candidates if allowed(case)]

    def pairs(case: dict[str, Any]) -> set[tuple[str, Any, str, Any]]:
        return {(a, repr(case[a]), b, repr(case[b])) for a, b in itertools.combinations(names, 2)}

    covering = [pairs(case) for case in candidates]
    uncovered = set().union(*covering)
    chosen = []
    while uncovered:
        gains = [len(c & uncovered) for c in covering]
        best = max(range(len(candidates)), key=lambda i: (gains[i], -i))
        chosen.append(candidates[best])
        uncovered -= covering[best]
    return chosen


EXTRA_CASES = [  # 64-bit integers on a couple of cases (values near 2**40..2**45), a COG among them
    dict(dtype="uint64", bands=3, nodata="value", size=(17, 33), model=1, cog=False),
    dict(dtype="int64", bands=1, nodata="none", size=(5, 7), model=1, cog=True),
]
MATRIX = pairwise(FACTORS) + EXTRA_CASES


def case_id(case: dict[str, Any]) -> str:
    height, width = case["size"]
    return (f"{case['dtype']}-{case['bands']}b-{case['nodata']}-{height}x{width}-model{case['model']}"
            + ("-cog" if case["cog"] else ""))


# --- inputs -----------------------------------------------------------------------------------


def valid_values(dtype: str, bands: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """``(bands, H, W)`` smooth texture plus noise inside ``RANGES[dtype]``, never the nodata value."""
    low, high = RANGES[dtype]
    y, x = np.mgrid[: size[0], : size[1]]
    rng = np.random.default_rng(seed)
    pattern = np.stack([0.5 + 0.35 * np.sin(0.45 * y + 0.3 * x + band) * np.cos(0.2 * x - 0.35 * y)
                        for band in range(bands)])
    pattern = np.clip(pattern + 0.08 * rng.standard_normal(pattern.shape), 0.0, 1.0)
    if dtype in FLOATS:
        values = (low + pattern * (high - low)).astype(dtype)
    else:
        values = (int(low) + np.rint(pattern * (int(high) - int(low))).astype(np.int64)).astype(dtype)
    nodata = NODATA[dtype]
    values[values == np.array(nodata).astype(dtype)] += np.array(1).astype(dtype)  # keep valid pixels valid
    return values


def holes(size: tuple[int, int], seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint ``(H, W)`` masks: holes in every band, and holes in band 0 only.

    Pixel (0, 0) is always a hole in every band, so a 1x1 raster is wholly masked.
    """
    rng = np.random.default_rng(seed)
    draw = rng.random(size)
    everywhere = draw < 0.15
    everywhere[0, 0] = True
    first_band = (draw >= 0.15) & (draw < 0.25)
    return everywhere, first_band


def make_array(case: dict[str, Any]) -> tuple[np.ndarray, float | None]:
    """The case's ``(bands, H, W)`` raster and its declared nodata."""
    dtype, mode = case["dtype"], case["nodata"]
    values = valid_values(dtype, case["bands"], case["size"])
    if mode == "none":
        return values, None
    if mode == "unused":
        return values, NODATA[dtype]
    everywhere, first_band = holes(case["size"])
    if mode == "value":
        fill = [NODATA[dtype]] * 2
        nodata = NODATA[dtype]
    elif mode == "nan":
        fill, nodata = [np.nan, np.nan], np.nan
    elif mode == "nan+value":
        fill, nodata = [np.nan, NODATA[dtype]], NODATA[dtype]
    else:  # inf
        fill, nodata = [np.inf, -np.inf], None
    values[:, everywhere] = fill[0]
    values[0, first_band] = fill[1]
    flat = np.flatnonzero(everywhere)  # half of the all-band holes get the second kind
    rows, columns = np.unravel_index(flat[1::2], everywhere.shape)
    values[:, rows, columns] = fill[1]
    return values, nodata


COLORINTERP = {
    1: (ColorInterp.gray,),
    3: (ColorInterp.red, ColorInterp.green, ColorInterp.blue),
    4: (ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.undefined),
}


def write_geotiff(path: Path, array: np.ndarray, nodata: float | None, transform: Affine = TRANSFORM) -> Path:
    """A DEFLATE GeoTIFF with band descriptions, dataset and band tags, scales, offsets and units (G3)."""
    bands = array.shape[0]
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[2], height=array.shape[1], count=bands,
                       dtype=array.dtype, crs="EPSG:32618", transform=transform, nodata=nodata,
                       compress="deflate") as dataset:
        dataset.write(array)
        dataset.update_tags(ORIGIN="srrestore conformance corpus", AREA_OR_POINT="Area")
        for band in range(1, bands + 1):
            dataset.set_band_description(band, f"band {band} of {bands}")
            dataset.update_tags(band, WAVELENGTH=str(400 + 100 * band))
        dataset.colorinterp = COLORINTERP[bands]
        dataset.scales = tuple(0.5 * band for band in range(1, bands + 1))
        dataset.offsets = tuple(-10.0 * band for band in range(1, bands + 1))
        dataset.units = ("m",) * bands
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[int, str]:
    """Tiny untrained x2 generators (seed 0) for 1 and 3 channels."""
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for channels in (1, 3):
        torch.manual_seed(0)
        paths[channels] = str(save_generator(folder / f"tiny{channels}.safetensors",
                                             create_generator("test-tiny", in_channels=channels, scale=SCALE)))
    return paths


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    target.mkdir()
    return source, target


# --- checks -----------------------------------------------------------------------------------


def invalid_values(array: np.ndarray, nodata: float | None) -> np.ndarray:
    """``(C, H, W)``: values that are masks, band by band: nodata, NaN or +/-inf (G5; GDAL masks each band
    where it holds the nodata value)."""
    invalid = np.zeros(array.shape, dtype=bool)
    if array.dtype.kind == "f":
        invalid |= ~np.isfinite(array)
    if nodata is not None and not math.isnan(nodata):
        invalid |= array == np.array(nodata).astype(array.dtype)
    return invalid


def nearest(array: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """Nearest-neighbour upsampling of the last two axes."""
    return array.repeat(scale, axis=-2).repeat(scale, axis=-1)


def check_geotiff(source: Path, target: Path, array: np.ndarray, nodata: float | None, cog: bool) -> np.ndarray:
    """Every GeoTIFF invariant of the module docstring; returns the output's pixels."""
    with rasterio.open(source) as src, rasterio.open(target) as dst:
        assert dst.count == src.count and dst.dtypes == src.dtypes  # G5: dtype and bands kept
        assert (dst.height, dst.width) == (SCALE * src.height, SCALE * src.width)
        assert dst.bounds == src.bounds  # G1
        assert dst.transform == src.transform @ Affine.scale(1 / SCALE)  # G1
        assert dst.crs == src.crs  # G5
        if nodata is None:
            assert dst.nodata is None
        elif math.isnan(nodata):
            assert dst.nodata is not None and math.isnan(dst.nodata)
        else:
            assert dst.nodata == src.nodata  # G5
        assert dst.descriptions == src.descriptions and dst.colorinterp == src.colorinterp  # G3
        assert dst.scales == src.scales and dst.offsets == src.offsets and dst.units == src.units  # G3
        assert all(dst.tags(b) == src.tags(b) for b in range(1, src.count + 1))  # G3
        tags = dst.tags()
        assert {k: v for k, v in tags.items() if not k.startswith("SRRESTORE_")} == src.tags()  # G3
        assert all(key in tags for key in PROVENANCE), sorted(tags)
        assert tags["SRRESTORE_SCALE"] == f"{SCALE}x{SCALE}"
        normalization = json.loads(tags["SRRESTORE_NORMALIZATION"])
        if cog:
            assert dst.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"  # G12
        output = dst.read()

    invalid = nearest(invalid_values(array, nodata))
    # Masked input values (nodata, NaN, +/-inf) keep their own values, nearest-upsampled (G5).
    np.testing.assert_array_equal(output[invalid], nearest(array)[invalid])
    # Valid values: finite (no NaN/inf leaks from a hole) and never the nodata value (G6). Whether
    # the other bands of a pixel masked in one band are restored or held, this holds for them.
    for band in range(array.shape[0]):
        valid = output[band][~invalid[band]]
        assert np.isfinite(valid.astype(np.float64)).all(), band
        if nodata is not None and not math.isnan(nodata):
            assert not (valid == np.array(nodata).astype(output.dtype)).any(), band
        # Value sanity: within the band's normalisation range [offset, offset + scale] and its
        # valid input range, widened by one normalisation range on both sides.
        if valid.size:
            source = array[band][~invalid_values(array, nodata)[band]].astype(np.float64)
            offset, width = normalization["offset"][band], normalization["scale"][band]
            low = min(offset, source.min(initial=np.inf)) - width
            high = max(offset + width, source.max(initial=-np.inf)) + width
            assert low <= valid.min() and valid.max() <= high, (band, low, high, valid.min(), valid.max())
    return output


def restore_geotiff_case(folders, array: np.ndarray, nodata: float | None, model: str, cog: bool = False,
                         transform: Affine = TRANSFORM, name: str = "out.tif", **options: Any) -> np.ndarray:
    source_folder, target_folder = folders
    source = write_geotiff(source_folder / "in.tif", array, nodata, transform)
    before = digest(source)
    target = target_folder / name
    reports = srrestore.restore(source, target, model=model, scale=None, device="cpu", cog=cog, **options)
    assert len(reports) == 1 and reports[0].format == "geotiff"
    assert digest(source) == before and listing(source_folder) == ["in.tif"]  # input untouched, no .aux.xml
    assert listing(target_folder) == [name]  # no temporary, staging or sidecar file left
    return check_geotiff(source, target, array, nodata, cog)


# --- GeoTIFF matrix ---------------------------------------------------------------------------


def test_the_pairwise_design_covers_every_allowed_pair():
    names = list(FACTORS)
    every = [dict(zip(names, v)) for v in itertools.product(*FACTORS.values())]
    wanted = {(a, repr(c[a]), b, repr(c[b])) for c in every if allowed(c) for a, b in itertools.combinations(names, 2)}
    covered = {(a, repr(c[a]), b, repr(c[b])) for c in MATRIX for a, b in itertools.combinations(names, 2)}
    assert wanted <= covered and all(allowed(c) for c in MATRIX)
    assert len(MATRIX) < sum(map(allowed, every)) // 10  # far below the full product


@pytest.mark.parametrize("case", MATRIX, ids=case_id)
def test_geotiff_matrix(folders, models, case):
    array, nodata = make_array(case)
    assert invalid_values(array, nodata).any() == (case["nodata"] not in ("none", "unused"))  # the case holds what it says
    restore_geotiff_case(folders, array, nodata, models[case["model"]], cog=case["cog"])


@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rasterio's own bounds of a rotated transform
def test_rotated_transform_scales_its_rotation_terms_and_keeps_the_bounds(folders, models):
    case = dict(dtype="int16", bands=3, nodata="value", size=(5, 7), model=1, cog=False)
    array, nodata = make_array(case)
    restore_geotiff_case(folders, array, nodata, models[1], transform=ROTATED)


def test_an_alpha_band_is_the_mask_and_is_nearest_upsampled(folders, models):
    source_folder, target_folder = folders
    array = valid_values("uint8", 4, (9, 11))
    array[3] = 255
    array[3, 2:4, 3:6] = 0
    source = source_folder / "rgba.tif"
    with rasterio.open(source, "w", driver="GTiff", width=11, height=9, count=4, dtype="uint8", crs="EPSG:32618",
                       transform=TRANSFORM, photometric="RGB", alpha="YES") as dataset:
        dataset.write(array)
        dataset.colorinterp = (ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha)
    srrestore.restore(source, target_folder / "out.tif", model=models[1], scale=None, device="cpu")
    with rasterio.open(source) as src, rasterio.open(target_folder / "out.tif") as dst:
        assert dst.colorinterp == src.colorinterp
        np.testing.assert_array_equal(dst.read(4), nearest(array[3]))
        np.testing.assert_array_equal(dst.dataset_mask(), nearest(src.dataset_mask()))


TILED_CASES = [
    dict(dtype="uint8", bands=3, nodata="value", size=(37, 50), model=3, cog=False),
    dict(dtype="uint16", bands=1, nodata="none", size=(37, 50), model=1, cog=False),
    dict(dtype="int16", bands=4, nodata="value", size=(37, 50), model=1, cog=True),
    dict(dtype="float32", bands=3, nodata="nan+value", size=(37, 50), model=3, cog=False),
    dict(dtype="float64", bands=1, nodata="inf", size=(37, 50), model=1, cog=False),
    dict(dtype="float32", bands=1, nodata="nan", size=(37, 50), model=1, cog=False),
]


@pytest.mark.parametrize("case", TILED_CASES, ids=case_id)
def test_tiles_do_not_show(folders, models, case):
    """``tile_size=16`` (12 tiles of a 37x50 raster, holes across their seams) against one 512 tile (G13).

    Tolerance: integer outputs may differ by 1 DN, because the network runs in float32 and
    different tile shapes sum convolutions in a different order, moving a value across a
    rounding boundary; float outputs by 1e-5 of the band's normalisation range (float32
    rounding of values around 1, times the range). Masked pixels must be identical.
    """
    array, nodata = make_array(case)
    model = models[case["model"]]
    tiled = restore_geotiff_case(folders, array, nodata, model, case["cog"], name="tiled.tif", tile_size=16)
    (folders[1] / "tiled.tif").rename(folders[0].parent / "tiled.tif")
    whole = restore_geotiff_case(folders, array, nodata, model, case["cog"], name="whole.tif", tile_size=512)
    with rasterio.open(folders[1] / "whole.tif") as dataset:
        widths = json.loads(dataset.tags()["SRRESTORE_NORMALIZATION"])["scale"]
    invalid = nearest(invalid_values(array, nodata))
    assert invalid.any() == (case["nodata"] != "none")
    np.testing.assert_array_equal(tiled[invalid], whole[invalid])
    for band, width in enumerate(widths):
        valid = ~invalid[band]
        difference = np.abs(tiled[band][valid].astype(np.float64) - whole[band][valid].astype(np.float64))
        tolerance = 1.0 if array.dtype.kind in "iu" else 1e-5 * width
        assert difference.max(initial=0.0) <= tolerance, (band, difference.max(), tolerance)


# --- plain images -----------------------------------------------------------------------------

def image_case(suffix, dtype, channels, size, model, *marks):
    return pytest.param(suffix, dtype, channels, size, model, marks=marks,
                        id=f"{suffix[1:]}-{dtype}-{channels}ch-{size[0]}x{size[1]}-model{model}")


IMAGE_CASES = [  # (suffix, dtype, channels, (H, W), model channels)
    image_case(".png", "uint8", 1, (17, 33), 1),
    image_case(".png", "uint8", 3, (5, 7), 3),
    image_case(".png", "uint8", 3, (16, 12), 1),
    image_case(".png", "uint16", 1, (2, 3), 1),
    image_case(".png", "uint16", 3, (17, 33), 3),
    image_case(".png", "uint8", 4, (9, 11), 3),
    image_case(".png", "uint16", 4, (6, 5), 1),
    image_case(".png", "uint8", 1, (1, 1), 1),
    image_case(".tif", "uint8", 1, (17, 33), 1),
    image_case(".tif", "uint8", 3, (8, 9), 3),
    image_case(".tif", "uint8", 4, (7, 6), 1),
    image_case(".tif", "uint16", 1, (5, 7), 1),
    image_case(".tif", "uint16", 3, (17, 33), 1),
    image_case(".tif", "uint16", 4, (3, 2), 3),
]


def read_png(path: Path) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` samples of a PNG at its own bit depth (pypng: Pillow reads 16-bit colour as 8)."""
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    dtype = np.uint16 if info["bitdepth"] == 16 else np.uint8
    pixels = np.vstack([np.asarray(row, dtype=dtype) for row in rows]).reshape(height, width, info["planes"])
    return pixels[..., 0] if info["planes"] == 1 else pixels


def write_png(path: Path, pixels: np.ndarray) -> None:
    """A PNG of ``(H, W)`` or ``(H, W, C)`` uint8/uint16 pixels, written by hand.

    Pillow (imageio's PNG writer) cannot write 16-bit colour PNGs, so the chunks are
    written here: IHDR (bit depth, colour type 0/4/2/6 for 1-4 channels), one zlib IDAT of
    unfiltered big-endian rows, IEND.
    """
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    depth = pixels.dtype.itemsize * 8
    rows = pixels.astype(pixels.dtype.newbyteorder(">")).reshape(height, width * channels)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, depth, {1: 0, 2: 4, 3: 2, 4: 6}[channels], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def png_compression(path: Path) -> int:
    """FLEVEL of a PNG's zlib stream (first IDAT's header): 0 fastest (zlib level 0-1), 1 fast, 2 default (6), 3 best."""
    data = path.read_bytes()
    idat = data.index(b"IDAT") + 4
    return data[idat + 1] >> 6


@pytest.mark.parametrize(("suffix", "dtype", "channels", "size", "model"), IMAGE_CASES)
def test_plain_image_keeps_dtype_channels_and_alpha(folders, models, suffix, dtype, channels, size, model):
    source_folder, target_folder = folders
    values = np.moveaxis(valid_values(dtype, channels, size), 0, -1)
    if channels == 4:  # a real alpha channel: transparent, half and opaque pixels
        values[..., 3] = np.array([0, np.iinfo(dtype).max // 2, np.iinfo(dtype).max], dtype=dtype)[
            np.random.default_rng(2).integers(0, 3, size)]
    pixels = values[..., 0] if channels == 1 else values
    source = source_folder / f"in{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(source, pixels, photometric="rgb" if channels >= 3 else "minisblack",
                         extrasamples=["unassalpha"] if channels == 4 else None)
    else:
        write_png(source, pixels)
    if suffix == ".tif":
        assert tifffile.imread(source).dtype == np.dtype(dtype)
    else:
        assert source.read_bytes()[24] == 8 * np.dtype(dtype).itemsize  # IHDR bit depth: the input is what it says
    before = digest(source)
    target = target_folder / f"out{suffix}"
    reports = srrestore.restore(source, target, model=models[model], scale=None, device="cpu")
    assert reports[0].format == "image"
    assert digest(source) == before and listing(source_folder) == [source.name]
    assert listing(target_folder) == [target.name]
    output = tifffile.imread(target) if suffix == ".tif" else read_png(target)
    assert output.dtype == np.dtype(dtype)
    expected_shape = (SCALE * size[0], SCALE * size[1]) + (() if channels == 1 else (channels,))
    assert output.shape == expected_shape
    if channels == 4:  # alpha is nearest-upsampled, never through the network
        np.testing.assert_array_equal(output[..., 3], nearest(values[..., 3]))
    if suffix == ".png":  # written for speed (8- and 16-bit writers alike)
        assert png_compression(target) == 0


# --- NIfTI ------------------------------------------------------------------------------------

NIFTI_SHAPE = (12, 10, 4)
NIFTI_AFFINE = np.array([[-1.0, 0.0, 0.0, 40.5], [0.0, 0.96, 0.84, -20.0], [0.0, -0.28, 2.88, 10.25],
                         [0.0, 0.0, 0.0, 1.0]])  # 1 x 1 x 3 mm, tilted about x, flipped x


def nifti_volume(dtype: str, nan_voxels: bool) -> tuple[np.ndarray, float | None, float | None]:
    """Stored ``NIFTI_SHAPE`` values and the scl_slope/scl_inter to store them with."""
    rng = np.random.default_rng(3)
    z, y, x = np.meshgrid(*(np.arange(n) for n in NIFTI_SHAPE[::-1]), indexing="ij")
    texture = (0.5 + 0.4 * np.sin(0.5 * x.T + 0.3 * y.T + z.T)) + 0.05 * rng.standard_normal(NIFTI_SHAPE)
    if dtype == "int16":
        return np.rint(texture * 2000 - 500).astype(np.int16), 0.5, -100.0
    if dtype == "uint8":
        return np.rint(np.clip(texture, 0, 1) * 250).astype(np.uint8), 2.0, 10.0
    volume = (texture * 800.0 - 100.0).astype(np.float32)
    if nan_voxels:
        volume[3:5, 2:4, 1] = np.nan
    return volume, None, None


def write_nifti(path: Path, stored: np.ndarray, slope: float | None, inter: float | None) -> Path:
    image = nib.Nifti1Image(stored, NIFTI_AFFINE)
    image.set_qform(NIFTI_AFFINE, code=1)
    image.set_sform(NIFTI_AFFINE, code=2)
    image.header.set_data_dtype(stored.dtype)
    image.header.set_xyzt_units("mm", "sec")
    if slope is not None:  # nibabel writes the array as the stored values with this slope/inter (checked below)
        image.header.set_slope_inter(slope, inter)
    nib.save(image, path)
    return path


@pytest.mark.parametrize(("dtype", "nan_voxels", "suffix"), [
    ("int16", False, ".nii"), ("uint8", False, ".nii.gz"), ("float32", False, ".nii"), ("float32", True, ".nii.gz"),
])
def test_nifti_keeps_its_physical_box_dtype_and_scaling(folders, models, dtype, nan_voxels, suffix):
    source_folder, target_folder = folders
    stored, slope, inter = nifti_volume(dtype, nan_voxels)
    source = write_nifti(source_folder / f"in{suffix}", stored, slope, inter)
    before = digest(source)
    loaded = nib.load(source)
    assert loaded.header.get_data_dtype() == np.dtype(dtype)  # the input is what the case says
    if slope is not None:
        assert (loaded.dataobj.slope, loaded.dataobj.inter) == (slope, inter)
    target = target_folder / f"out{suffix}"
    reports = srrestore.restore(source, target, model=models[1], scale=SCALE, device="cpu")
    assert reports[0].format == "nifti" and tuple(reports[0].scale) == (SCALE, SCALE, 1)  # in-plane pass only
    assert digest(source) == before and listing(source_folder) == [source.name]
    assert listing(target_folder) == sorted([target.name, "out.json"])  # the output and its provenance sidecar
    result = nib.load(target)
    header, source_header = result.header, loaded.header
    assert result.shape == (SCALE * NIFTI_SHAPE[0], SCALE * NIFTI_SHAPE[1], NIFTI_SHAPE[2])
    assert header.get_data_dtype() == np.dtype(dtype)  # N5
    for form in ("get_sform", "get_qform"):  # C1, N1: both forms, the same physical box
        error = corner_points(getattr(header, form)(), result.shape) - corner_points(
            getattr(source_header, form)(), loaded.shape)
        assert np.abs(error).max() < 1e-4, form
    assert (int(header["sform_code"]), int(header["qform_code"])) == (2, 1)  # N1
    np.testing.assert_allclose(header.get_zooms(), (0.5, 0.5, 3.0), atol=1e-5)  # N2
    assert header["pixdim"][0] == source_header["pixdim"][0]  # N2: qfac kept
    assert header.get_xyzt_units() == ("mm", "sec")  # N3
    if slope is not None:
        assert (result.dataobj.slope, result.dataobj.inter) == (slope, inter)  # N5
    output = np.asanyarray(result.dataobj.get_unscaled())
    assert output.dtype == np.dtype(dtype)
    if nan_voxels:
        invalid = np.isnan(stored).repeat(SCALE, axis=0).repeat(SCALE, axis=1)
        assert np.isnan(output[invalid]).all() and np.isfinite(output[~invalid]).all()
    else:
        assert np.isfinite(output.astype(np.float64)).all()
