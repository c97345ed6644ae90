"""Upscale a numpy array with the Python API: same dtype and layout out.

    python examples/upscale_array.py
"""

from __future__ import annotations

import numpy as np
from skimage import data

import srrestore


def main() -> None:
    grey = data.camera()[200:264, 200:264]                  # (H, W) uint8
    model = srrestore.load_model("default", scale=2, channels=1)
    big = model.upscale(grey)
    print(f"{grey.shape} {grey.dtype} -> {big.shape} {big.dtype}")
    ct_like = (grey.astype(np.int16) * 8 - 1024)[None]        # (1, H, W) int16, HU-like values
    print(f"{ct_like.shape} {ct_like.dtype} -> {model.upscale(ct_like).shape} {model.upscale(ct_like).dtype}")


if __name__ == "__main__":
    main()
