"""Edge padding: what the network sees past the image's edges when windows reach past them.

By default windows stop at the image's edges and nothing is padded (see
:mod:`srrestore.engine.grid`). With ``pad_edges`` whole-image inference pads
the image by the halo, replicating edge pixels (numpy's ``"edge"`` mode); a
tile's window is padded the same way, so it equals the matching box of the
padded whole image.
"""

from __future__ import annotations

import numpy as np

from srrestore.engine.region import Region

__all__ = ["edge_pad"]


def edge_pad(values: np.ndarray, inside: Region, window: Region) -> np.ndarray:
    """Extend ``values`` from ``inside`` to ``window`` by replicating edge pixels.

    Args:
        values: ``(C, *inside.size)`` array.
        inside: the box ``values`` covers (the window clipped to the image).
        window: the box to fill; contains ``inside``.

    Returns:
        ``(C, *window.size)`` array (``values`` itself when nothing is missing).
    """
    widths = [(0, 0)] + [(a - w, v - b) for a, b, w, v in zip(inside.start, inside.stop, window.start, window.stop)]
    if not any(low or high for low, high in widths):
        return values
    return np.pad(values, widths, mode="edge")
