"""Exponential moving average (EMA) of a network's weights.

The averaged copy is smoother than the raw weights and usually scores higher
(Polyak averaging); training validates and saves it. With ``warmup`` the decay
grows as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the average
is not dominated by the random initial weights in short runs.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """A frozen copy of ``model`` whose floating-point weights track it.

    Args:
        model: the network being trained (unwrapped, not DDP).
        decay: the average's decay per update, in ``[0, 1)``.
        warmup: ramp the decay up over the first updates (see the module docstring).

    Attributes:
        module: the averaged copy, in eval mode, without gradients.
        num_updates: updates so far.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0

    def current_decay(self) -> float:
        """The decay the next update uses."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """``average = decay * average + (1 - decay) * weights``; other buffers are copied."""
        weight = 1.0 - self.current_decay()
        own = self.module.state_dict()
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                own[name].lerp_(value.detach(), weight)
            else:
                own[name].copy_(value)
        self.num_updates += 1

    def restart_warmup(self) -> None:
        """Ramp the decay up again from the next update, as after construction (the average keeps its weights)."""
        self.num_updates = 0

    @torch.no_grad()
    def reset(self, model: nn.Module) -> None:
        """Make the average equal ``model``'s weights (the update count is kept)."""
        self.module.load_state_dict(model.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.num_updates = int(state["num_updates"])
