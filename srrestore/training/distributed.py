"""This process's place in a ``torchrun`` launch: joining the group, and rank 0 deciding for every rank."""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from srrestore.errors import ConfigError

__all__ = ["DistributedContext"]


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a ``torchrun`` launch (world size 1 otherwise)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_environment(cls) -> "DistributedContext":
        """Read ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` as torchrun sets them."""
        try:
            return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
                       int(os.environ.get("WORLD_SIZE", 1)))
        except ValueError as error:
            raise ConfigError(f"bad torchrun environment (RANK/LOCAL_RANK/WORLD_SIZE): {error}") from error

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def setup(self, device: torch.device) -> torch.device:
        """Join the process group (NCCL on CUDA, Gloo on the CPU); return this rank's device."""
        if not self.enabled:
            return device
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            atexit.register(_leave_process_group)
        return device

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def agree(self, value: float) -> float:
        """Rank 0's ``value`` on every rank (its clock and validations decide for all)."""
        if not self.enabled:
            return value
        shared = torch.tensor([value], dtype=torch.float64)
        torch.distributed.broadcast(shared, src=0)
        return float(shared.item())

    def share(self, module: nn.Module) -> None:
        """Copy rank 0's weights and buffers of ``module`` to every rank."""
        if self.enabled:
            for value in module.state_dict().values():
                torch.distributed.broadcast(value, src=0)

    def check_on_main(self, check: Callable[[], None]) -> None:
        """Run ``check`` on rank 0; when it raises, every rank raises the same error at once.

        Rank 0 alone checks what only it writes (the output files); the other ranks
        would otherwise wait for it in the first collective (DistributedDataParallel's
        constructor) until the process group's timeout. On failure the process group
        is destroyed: the run stops on every rank.
        """
        failure: Exception | None = None
        if self.is_main:
            try:
                check()
            except Exception as error:
                failure = error
        if self.enabled:
            shared: list[Exception | None] = [failure]
            torch.distributed.broadcast_object_list(shared, src=0)
            failure = shared[0]
            if failure is not None:
                _leave_process_group()
        if failure is not None:
            raise failure


def _leave_process_group() -> None:
    """Destroy the process group, if one is alive: on a failed check, and before the interpreter exits
    (registered by :meth:`DistributedContext.setup`).

    A Gloo group left alive at exit can abort a rank after its work is done
    ("terminate called without an active exception"), failing a finished launch.
    """
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
