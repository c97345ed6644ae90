"""Progress on stderr: tiles done, output megapixels per second, ETA (tqdm)."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType

from tqdm import tqdm

__all__ = ["Progress"]


class Progress:
    """A tqdm bar counting tiles, with the output rate in megapixels per second.

    Args:
        total: tiles to process.
        enabled: False makes every call a no-op (``--quiet``).
        description: label before the bar.
    """

    def __init__(self, total: int, enabled: bool, description: str = "upscaling") -> None:
        self.bar = tqdm(total=total, desc=description, unit="tile", file=sys.stderr, disable=not enabled,
                        dynamic_ncols=True)
        self.start = time.perf_counter()
        self.output_pixels = 0
        self._lock = threading.Lock()

    def advance(self, output_pixels: int) -> None:
        """Count one finished tile that wrote ``output_pixels`` pixels."""
        with self._lock:
            self.output_pixels += output_pixels
            rate = self.output_pixels / 1e6 / max(time.perf_counter() - self.start, 1e-9)
            self.bar.set_postfix_str(f"{rate:.2f} MP/s", refresh=False)
            self.bar.update(1)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.bar.close()
