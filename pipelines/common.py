"""Steps every restore pipeline shares: pick the model, run the engine, record provenance."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

from srrestore import __version__
from srrestore.domains.image import IMAGE_SUFFIXES
from srrestore.domains.satellite.sniff import TIFF_SUFFIXES
from srrestore.engine.io import ArrayReader, Reader, Writer
from srrestore.engine.normalize import Normalization
from srrestore.errors import ConfigError, MissingDependencyError, one_line
from srrestore.sr_model import SRModel, load_model
from srrestore.pipelines.options import RestoreOptions

__all__ = ["OUTPUT_SUFFIXES", "RestoreReport", "check_output_name", "model_for", "run_engine", "provenance"]

OUTPUT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "geotiff": TIFF_SUFFIXES,
    "image": IMAGE_SUFFIXES,
    "nifti": (".nii", ".nii.gz"),
}
"""The output names each file format may be written to: the name decides the format."""

FOLDER_OUTPUTS = {"dicom": "a DICOM series", "folder": "a folder of images"}
"""Formats whose output is a folder (its name may not look like a file's)."""

_LABELS = {"geotiff": "GeoTIFF", "image": "image", "nifti": "NIfTI"}
_FILE_LIKE = (*sorted({s for suffixes in OUTPUT_SUFFIXES.values() for s in suffixes}), ".gz", ".dcm", ".json", ".zip")


def check_output_name(output: Path, kind: str) -> None:
    """Refuse an output name that does not match the format that would be written.

    Args:
        output: the output path.
        kind: the input's format: ``"geotiff"``, ``"image"``, ``"nifti"``, ``"dicom"`` or ``"folder"``.

    Raises:
        ConfigError: e.g. a GeoTIFF written to ``o.png``, a DICOM series to ``o.tif``.
    """
    name = output.name.lower()
    if kind in FOLDER_OUTPUTS:
        suffix = next((s for s in _FILE_LIKE if name.endswith(s)), None)
        if suffix is not None:
            raise ConfigError(f"output {output} ends in {suffix}, but {FOLDER_OUTPUTS[kind]} is written as a folder: "
                              "give a folder name")
        return
    allowed = OUTPUT_SUFFIXES[kind]
    if not any(name.endswith(s) for s in allowed):
        label = _LABELS[kind]
        raise ConfigError(f"output {output.name} is not a {label} name: a {label} input is written as {label}; "
                          f"name it {' or '.join(allowed)}")




@dataclass
class RestoreReport:
    """What a restore did (printed by the CLI, returned by ``srrestore.restore``)."""

    input: Path
    output: Path
    format: str
    model: str
    scale: tuple[int, ...]
    normalization: dict[str, Any]
    engine: Any = None
    notes: list[str] = field(default_factory=list)


def model_for(options: RestoreOptions, channels: int) -> SRModel:
    """Load the model the options name, fitted to data with ``channels`` channels."""
    model = load_model(options.model, options.scale, channels, options.phase, options.device, options.precision,
                       options.backend)
    model.check_channels(channels)
    return model


def run_engine(reader: Reader, writer: Writer, model: SRModel, normalization: Normalization,
               options: RestoreOptions, plane_axes: tuple[int, int] = (-2, -1)) -> Any:
    """Stream ``reader`` through ``model`` into ``writer`` with the engine; returns its report.

    With ``options.dask`` (a scheduler address) the blocks are computed on that
    Dask cluster and written here; the result is the same.
    """
    from srrestore.engine import UpscaleOptions, upscale

    if model.backend == "onnxruntime" and (options.compile or options.dask is not None):
        raise ConfigError(f"{'--compile' if options.compile else '--dask'} runs torch networks only, "
                          f"not the ONNX model {model.name}")

    engine_options = UpscaleOptions(
        tile_size=options.tile_size,
        batch_size=options.batch_size,
        device=options.device,
        precision=options.precision,
        progress=options.progress,
        consistency=options.consistency,
        plane_axes=plane_axes,
        compile=options.compile,
    )
    if options.dask is None:
        return upscale(reader, writer, model.network, model.spec, normalization, engine_options)
    from srrestore.engine.distributed import upscale_dask

    if model.source is None:
        raise ConfigError("--dask needs a model saved in a checkpoint file")
    return upscale_dask(dask_client(options.dask), _reopener(reader), writer, str(model.source), model.spec,
                        normalization, engine_options)


_dask_clients: dict[str, Any] = {}
"""The clients :func:`dask_client` connected, by scheduler address (reused by later restores)."""


def dask_client(address: str) -> Any:
    """A ``distributed.Client`` connected to ``address``: one per address and process, reconnected if closed.

    The client is not made dask's default scheduler (``set_as_default=False``):
    :func:`run_engine` passes it explicitly, so after a restore ``dask.compute``
    elsewhere in the process still uses the scheduler it used before.

    Raises:
        MissingDependencyError: ``distributed`` is not installed.
        ConfigError: the address is malformed or no scheduler answers there, in one line.
    """
    client = _dask_clients.get(address)
    if client is not None and client.status != "closed":
        return client
    try:
        from distributed import Client
    except ImportError as error:
        raise MissingDependencyError("--dask needs the 'distributed' package: pip install distributed") from error
    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except Exception as error:  # ValueError, TypeError, OSError or TimeoutError, by address and version
        raise ConfigError(f"cannot reach the Dask scheduler at {address!r}: {one_line(error)}") from error
    _dask_clients[address] = client
    return client


def _reopener(reader: Reader) -> Callable[[], Reader]:
    """A picklable callable that opens the same input again (one reader per Dask task)."""
    if isinstance(reader, ArrayReader):
        return partial(ArrayReader, reader.array, reader.spec.nodata)
    path = getattr(reader, "path", None)
    if path is None:
        raise ConfigError(f"--dask cannot reopen a {type(reader).__name__}; it supports images and GeoTIFFs")
    return partial(type(reader), path, **getattr(reader, "reopen_options", {}))


def provenance(model: SRModel, normalization: Normalization) -> dict[str, str]:
    """Tags recorded in every output: model, its hash, phase, scale, normalisation, version."""
    return {
        "SRRESTORE_VERSION": __version__,
        "SRRESTORE_MODEL": model.name,
        "SRRESTORE_MODEL_SHA256": model.sha256,
        "SRRESTORE_MODEL_PHASE": model.info.phase,
        "SRRESTORE_SCALE": "x".join(str(s) for s in model.spec.scale),
        "SRRESTORE_NORMALIZATION": json.dumps(normalization.to_dict()),
    }
