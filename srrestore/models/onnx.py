"""ONNX: export a generator checkpoint, and run an exported one with ONNX Runtime.

:func:`export_onnx` writes the generator as an ONNX graph (opset 17 by default;
batch, height and width dynamic) whose metadata holds everything its checkpoint
records (architecture, config, phase, training summary, model card) and the
normalisation rule, so the file describes itself.

:class:`OnnxGenerator` is an ``nn.Module`` whose forward runs an ONNX Runtime
session: the engine tiles, pads, normalises, masks and writes exactly as for
the torch network, only the network's arithmetic differs (within 1e-6 in
normalised units on the built-ins; tests allow 1e-4). Both need the optional
extra ``pip install "srrestore[onnx]"`` (``onnx`` to export, ``onnxruntime`` to run).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from srrestore.errors import CheckpointError, MissingDependencyError
from srrestore.models.checkpoint import CheckpointInfo, load_generator
from srrestore.models.generator import SRGenerator
from srrestore.models.spec import ModelSpec
from srrestore.storage.atomic import atomic_output

__all__ = ["NORMALISATION_RULE", "OnnxGenerator", "export_onnx", "is_onnx", "load_onnx"]

NORMALISATION_RULE = (
    "srrestore normalises each image before the network: uint8 by the dtype's range, other dtypes by the "
    "0.5 and 99.5 percentiles of each band's valid values (recorded in every output)"
)
INPUT, OUTPUT = "lr", "sr"
EXPORT_SHAPE = (1, 64, 64)  # (batch, height, width) of the example input the graph is traced with


def is_onnx(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an ONNX file (by its suffix)."""
    return Path(path).suffix.lower() == ".onnx"


def export_onnx(checkpoint: str | os.PathLike[str], output: str | os.PathLike[str], opset: int = 17,
                overwrite: bool = False) -> Path:
    """Export a generator checkpoint (``.safetensors`` or ``.pth``) to an ONNX file.

    Args:
        checkpoint: the checkpoint file.
        output: the ``.onnx`` file to write (atomically).
        opset: ONNX opset version (17 or newer).
        overwrite: replace an existing output.

    Returns:
        ``output``.

    Raises:
        MissingDependencyError: the ``onnx`` package is missing.
        CheckpointError, OutputExistsError, OutputWriteError: as for loading and writing.
    """
    try:
        import onnx
    except ImportError as error:
        raise MissingDependencyError('exporting to ONNX needs the onnx package: pip install "srrestore[onnx]"') from error
    generator, info = load_generator(checkpoint)
    batch, height, width = EXPORT_SHAPE
    example = torch.rand(batch, generator.spec.in_channels, height, width)
    with atomic_output(output, overwrite, [checkpoint]) as temporary:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shapes turned into constants (channels)
            torch.onnx.export(
                generator, (example,), str(temporary), input_names=[INPUT], output_names=[OUTPUT],
                dynamic_axes={INPUT: {0: "batch", 2: "height", 3: "width"},
                              OUTPUT: {0: "batch", 2: "out_height", 3: "out_width"}},
                opset_version=opset, dynamo=False,
            )
        graph = onnx.load(str(temporary))
        for key, value in {**info.to_metadata(), "normalisation": NORMALISATION_RULE}.items():
            graph.metadata_props.add(key=f"srrestore.{key}", value=value)
        onnx.save(graph, str(temporary))
    return Path(output)


class OnnxGenerator(nn.Module):
    """An exported generator run by ONNX Runtime on the CPU: ``(B, C_in, H, W) -> (B, C_out, H*sy, W*sx)``.

    Args:
        path: the ``.onnx`` file written by :func:`export_onnx`.

    Attributes:
        info: what the checkpoint recorded (from the file's metadata).
        config, spec: the generator's configuration and what the engine needs of it.

    Raises:
        MissingDependencyError: ``onnxruntime`` is missing.
        CheckpointError: not a readable srrestore ONNX export.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        try:
            import onnxruntime
        except ImportError as error:
            raise MissingDependencyError(
                'running an ONNX model needs onnxruntime: pip install "srrestore[onnx]"'
            ) from error
        path = Path(path)
        try:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own types for unreadable files
            raise CheckpointError(f"cannot load ONNX model {path}: {error}") from error
        metadata = self._session.get_modelmeta().custom_metadata_map
        recorded = {key.removeprefix("srrestore."): value for key, value in metadata.items()
                    if key.startswith("srrestore.")}
        self.info = CheckpointInfo.from_metadata(recorded, path)
        self.config = self.info.config
        self.spec: ModelSpec = SRGenerator(self.config).spec

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        values = lr.detach().to("cpu", torch.float32).contiguous().numpy()
        sr = self._session.run([OUTPUT], {INPUT: values})[0]
        return torch.from_numpy(sr).to(lr.device, lr.dtype)

    def extra_repr(self) -> str:
        return json.dumps({"architecture": self.info.architecture, "scale": list(self.spec.scale)})


def load_onnx(path: str | os.PathLike[str]) -> tuple[OnnxGenerator, CheckpointInfo]:
    """The ONNX Runtime generator of an exported file and its recorded checkpoint info."""
    network = OnnxGenerator(path)
    return network.eval(), network.info

