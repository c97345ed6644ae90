"""Keep-best: the averaged weights that score best on held-out data, the start included.

A run with ``keep_best`` scores the weights a phase starts from before its
first step, then offers every validation's scores; at the end of the phase the
best weights replace the last ones. Fine-tuning thus never saves a model that
does worse on held-out data than the one it started from; small data overfit
fast, so this matters most on small scenes and scans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["KeepBest"]


@dataclass
class KeepBest:
    """The best-scoring weights of one phase so far (highest PSNR on one validation set).

    Attributes:
        set_name: the validation set that decides.
        start_phase: what the start weights were trained as (``"psnr"`` or
            ``"gan"``): the saved checkpoint's phase when the start stays best.
        start_step: the step the phase started at.
        start: the start weights' scores (``psnr``, and ``bicubic_psnr`` etc.).
        best_step, best: the step and scores of the best weights so far.
        last: the scores of the weights at the end of the phase (None before it).
        stale: validations in a row since the last new best.
        state: the best weights (a state dict of CPU tensors).
    """

    set_name: str
    start_phase: str
    start_step: int
    start: dict[str, float]
    best_step: int
    best: dict[str, float]
    state: dict[str, torch.Tensor] = field(repr=False)
    last: dict[str, float] | None = None
    stale: int = 0

    @classmethod
    def begin(cls, module: nn.Module, set_name: str, start_phase: str, step: int,
              scores: dict[str, float]) -> "KeepBest":
        """Start with ``module``'s weights (scored ``scores`` at ``step``) as the best."""
        return cls(set_name, start_phase, step, scores, step, scores, _copy(module))

    def offer(self, module: nn.Module, step: int, scores: dict[str, float]) -> bool:
        """Keep ``module``'s weights if they beat the best PSNR; returns whether they did."""
        if scores["psnr"] > self.best["psnr"]:
            self.best_step, self.best, self.stale = step, scores, 0
            self.state = _copy(module)
            return True
        self.stale += 1
        return False

    @property
    def kept_start(self) -> bool:
        """Whether the best weights are still the ones the phase started from."""
        return self.best_step == self.start_step

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready scores and steps (the weights are stored apart)."""
        return {"set": self.set_name, "start_phase": self.start_phase, "start_step": self.start_step,
                "start": self.start, "best_step": self.best_step, "best": self.best, "last": self.last,
                "stale": self.stale}

    @classmethod
    def from_dict(cls, data: dict[str, Any], state: dict[str, torch.Tensor]) -> "KeepBest":
        """Rebuild from :meth:`to_dict` and the stored best weights (exact resume)."""
        return cls(data["set"], data["start_phase"], int(data["start_step"]), data["start"], int(data["best_step"]),
                   data["best"], state, data.get("last"), int(data["stale"]))


def _copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().cpu().clone() for name, value in module.state_dict().items()}
