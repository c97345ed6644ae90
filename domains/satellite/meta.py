"""GeoTIFF metadata and how integer-factor super-resolution changes it (invariants G1-G8).

:class:`RasterMeta` holds what a GeoTIFF carries beyond its pixels;
:func:`derive_output_meta` is the one pure function that maps it to the
output's metadata. Nothing here opens a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from collections.abc import Mapping, Sequence

from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.rpc import RPC

from srrestore.errors import ConfigError

__all__ = [
    "RasterMeta",
    "derive_output_meta",
    "scale_factors",
    "scale_transform",
    "STALE_BAND_TAG_PREFIXES",
    "STALE_TAGS",
]

STALE_BAND_TAG_PREFIXES = ("STATISTICS_",)
"""Band tags GDAL computed from the source pixels (min, max, mean...): dropped, they no longer hold."""

STALE_TAGS = ("OVR_RESAMPLING_ALG", "OVERVIEW_RESAMPLING")
"""Dataset tags describing the source's overviews, which are rebuilt (G11): dropped."""


@dataclass(frozen=True)
class RasterMeta:
    """Everything of a GeoTIFF but its pixels.

    Attributes:
        width, height: size in pixels.
        count: number of bands.
        dtype: numpy dtype name shared by all bands.
        crs: coordinate reference system of ``transform``, or None.
        transform: pixel-corner to world affine (identity when absent).
        gcps: ground control points (GDAL corner convention: pixel centres at +0.5).
        gcps_crs: CRS of the GCPs' x/y/z.
        rpcs: rational polynomial coefficients (pixel centres at integers), or None.
        nodata: the single nodata value of all bands (NaN allowed), or None.
        tags: dataset tags of the default domain, ``AREA_OR_POINT`` included.
        band_tags: default-domain tags of each band.
        descriptions: band descriptions (None where unset).
        colorinterp: colour interpretation of each band.
        scales, offsets: per-band value scale and offset (physical = stored * scale + offset).
        units: per-band unit names (None where unset).
        compression: GDAL compression name (``"DEFLATE"``, ``"JPEG"``...), or None.
        interleave: ``"pixel"`` or ``"band"``.
        has_overviews: the raster has overviews.
        has_mask: the raster has a per-dataset mask band of its own (internal or sidecar;
            not one derived from nodata or an alpha band).
        alpha_mask: GDAL takes the raster's alpha band as its mask (no nodata overrides it).
    """

    width: int
    height: int
    count: int
    dtype: str
    crs: CRS | None = None
    transform: Affine = field(default_factory=Affine.identity)
    gcps: tuple[GroundControlPoint, ...] = ()
    gcps_crs: CRS | None = None
    rpcs: RPC | None = None
    nodata: float | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    band_tags: tuple[Mapping[str, str], ...] = ()
    descriptions: tuple[str | None, ...] = ()
    colorinterp: tuple[ColorInterp, ...] = ()
    scales: tuple[float, ...] = ()
    offsets: tuple[float, ...] = ()
    units: tuple[str | None, ...] = ()
    compression: str | None = None
    interleave: str = "pixel"
    has_overviews: bool = False
    has_mask: bool = False
    alpha_mask: bool = False

    @property
    def has_transform(self) -> bool:
        """The pixel grid is georeferenced by an affine (not by GCPs, not pixel space only)."""
        return not self.gcps and (self.transform != Affine.identity() or self.crs is not None)

    @property
    def georeferenced(self) -> bool:
        """A CRS, a transform other than identity, GCPs or RPCs locate the pixels."""
        return self.has_transform or bool(self.gcps) or self.rpcs is not None

    @property
    def area_or_point(self) -> str:
        """``"Area"`` (pixel values cover cells, the default) or ``"Point"`` (values at posts)."""
        return self.tags.get("AREA_OR_POINT", "Area")


def scale_factors(scale: int | Sequence[int]) -> tuple[int, int]:
    """``(sy, sx)`` from an int or a 2-sequence of positive integers.

    Raises:
        ConfigError: not one or two positive integers.
    """
    try:
        factors = (scale, scale) if isinstance(scale, int) else tuple(scale)
    except TypeError as error:
        raise ConfigError(f"scale must be a positive integer or a (rows, columns) pair, got {scale!r}") from error
    if len(factors) != 2 or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in factors):
        raise ConfigError(f"scale must be a positive integer or a (rows, columns) pair, got {scale!r}")
    return int(factors[0]), int(factors[1])


def scale_transform(transform: Affine, sy: int, sx: int) -> Affine:
    """``T @ Affine.scale(1/sx, 1/sy)``: corner fixed, rotation terms scaled (G1).

    Divides the terms (rather than multiplying by rounded reciprocals), so the
    output's bounds equal the input's exactly whenever ``s`` is a power of two.
    """
    a, b, c, d, e, f = transform[:6]
    return Affine(a / sx, b / sy, c, d / sx, e / sy, f)


def _scaled_gcps(gcps: Sequence[GroundControlPoint], sy: int, sx: int) -> tuple[GroundControlPoint, ...]:
    """GCP pixel positions are corner-based: ``row' = sy * row``, ``col' = sx * col`` (G7)."""
    return tuple(
        GroundControlPoint(row=g.row * sy, col=g.col * sx, x=g.x, y=g.y, z=g.z, id=g.id, info=g.info) for g in gcps
    )


def _scaled_rpcs(rpcs: RPC, sy: int, sx: int) -> RPC:
    """RPC pixel positions are centre-based: ``OFF' = s(OFF + 1/2) - 1/2``, ``SCALE' = s * SCALE`` (G8)."""
    return RPC(**{
        **rpcs.to_dict(),
        "line_off": sy * (rpcs.line_off + 0.5) - 0.5,
        "samp_off": sx * (rpcs.samp_off + 0.5) - 0.5,
        "line_scale": sy * rpcs.line_scale,
        "samp_scale": sx * rpcs.samp_scale,
    })


def derive_output_meta(meta: RasterMeta, scale: int | Sequence[int]) -> RasterMeta:
    """The metadata of ``meta``'s raster upscaled by ``scale`` (cell-centred, ``N' = sN``).

    Changes the size, the transform (G1, G2: PixelIsPoint rasters take the same
    transform, GDAL writes their tiepoint), the GCPs (G7) and the RPCs (G8),
    and drops tags computed from the source pixels or its overviews
    (:data:`STALE_BAND_TAG_PREFIXES`, :data:`STALE_TAGS`). CRS, nodata,
    dtype, descriptions, other tags, colour interpretation, scales, offsets,
    units, compression, mask and overview flags are kept (G3, G5).

    Args:
        meta: the source's metadata.
        scale: upscale factor, one int or ``(rows, columns)``.

    Returns:
        A new :class:`RasterMeta`; ``meta`` is unchanged.

    Raises:
        ConfigError: invalid ``scale``.
    """
    sy, sx = scale_factors(scale)
    return replace(
        meta,
        width=meta.width * sx,
        height=meta.height * sy,
        transform=scale_transform(meta.transform, sy, sx) if meta.has_transform else meta.transform,
        gcps=_scaled_gcps(meta.gcps, sy, sx),
        rpcs=None if meta.rpcs is None else _scaled_rpcs(meta.rpcs, sy, sx),
        tags={key: value for key, value in meta.tags.items() if key not in STALE_TAGS},
        band_tags=tuple(
            {key: value for key, value in tags.items() if not key.startswith(STALE_BAND_TAG_PREFIXES)}
            for tags in meta.band_tags
        ),
    )
