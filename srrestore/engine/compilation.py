"""Optional ``torch.compile`` of a network for inference (``UpscaleOptions.compile``).

Inductor fuses the generator's many small element-wise operations (the
neighbourhood attention above all) into a few loops, after a one-off
compilation of one to two minutes on two cores (cached on disk by torch for
later runs). Since the eager network got faster, the gain on a CPU is small:
1.11 against 0.98 output MP/s for the RGB x4 built-in at 128 px, one thread, on
a 2-core AMD EPYC (``docs/results/speed.md``). It can pay off on large images,
never on one small photo.

Shapes are dynamic (tiles at the image's edges have other window sizes than
interior ones), so later runs and other window sizes reuse the compiled code.
Torch picks a convolution backend by input size, so it compiles once per
window-size class: for the RGB ``srgan`` network three, with borders near
6800 and 2560 window pixels (about 82 x 82 and 50 x 50). A benchmark warms up
on the images it times, not on one size.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from srrestore.errors import ConfigError

__all__ = ["compiled"]


def compiled(network: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``network``'s forward compiled by inductor with dynamic shapes; compiles on the first call.

    Raises (on the first call):
        ConfigError: compilation failed (e.g. no C++ compiler on the machine).
    """
    optimized = torch.compile(network, dynamic=True)

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        # Without duck shaping, a square first window does not tie height to width,
        # so non-square edge windows reuse the same compiled code.
        with torch.fx.experimental._config.patch(use_duck_shape=False):
            try:
                return optimized(inputs)
            except torch._dynamo.exc.BackendCompilerFailed as error:
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise ConfigError(f"torch.compile failed ({reason}); run without --compile") from error

    return forward
