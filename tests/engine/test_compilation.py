"""`UpscaleOptions(compile=True)`: the compiled network gives the eager output, tiled or whole."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from srrestore.engine import Normalization, UpscaleOptions, upscale_array, upscale_whole
from srrestore.errors import ConfigError

needs_compiler = pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None,
                                    reason="torch.compile needs a C++ compiler on CPUs")


@needs_compiler
def test_compiled_tiles_equal_the_eager_whole_image(camera, nets):
    network = nets.seeded_generator("test-tiny", in_channels=1, scale=2)
    image = camera.astype(np.float32) / 255  # float data: no rounding hides a difference
    normalization = Normalization.fixed(0.0, 1.0, 1)
    eager = upscale_whole(image, network, network.spec, normalization)
    # Tile 24 on a 72 x 90 image: square, edge and corner windows of five shapes, one compiled graph.
    for tile_size in (24, 200):
        result = upscale_array(image, network, network.spec, normalization,
                               UpscaleOptions(tile_size=tile_size, compile=True))
        np.testing.assert_allclose(result, eager, atol=1e-5)


def test_a_failed_compilation_is_a_config_error(camera, nets, monkeypatch):
    def failing_compile(network, **_options):
        def run(_inputs):
            raise torch._dynamo.exc.BackendCompilerFailed("inductor", RuntimeError("no working C++ compiler"), None)
        return run

    monkeypatch.setattr(torch, "compile", failing_compile)
    network = nets.seeded_generator("test-tiny", in_channels=1, scale=2)
    with pytest.raises(ConfigError, match=r"torch.compile failed .*; run without --compile"):
        upscale_array(camera, network, network.spec, Normalization.for_dtype("uint8", 1),
                      UpscaleOptions(tile_size=32, compile=True))
