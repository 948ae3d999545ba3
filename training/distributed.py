"""torchrun / DistributedDataParallel helpers: process group set-up, rank-0 gating, reductions."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from liteseg_ros.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank, world size and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` (this process's local rank) or ``cuda:N`` without a GPU
    raises ConfigError."""
    from liteseg_ros.errors import ConfigError

    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device={preference} but no CUDA device is available: use runtime.device=cpu")
    if preference.startswith("cuda:"):
        return torch.device(preference)
    if preference in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(device_preference: str = "auto") -> DistContext:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): NCCL on CUDA, gloo on CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        log.info("rank %d/%d joined the process group (%s)", rank, world_size, dist.get_backend())
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def shutdown(context: DistContext) -> None:
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, context: DistContext) -> bool:
    """True on every rank when ``flag`` is True on at least one (e.g. a Ctrl-C seen by one process)."""
    if not context.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=context.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def sum_array(array: np.ndarray, context: DistContext) -> np.ndarray:
    """Element-wise sum of an integer array over all ranks (e.g. confusion matrices)."""
    if not context.distributed:
        return array
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64)).to(context.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy()


def mean_scalar(value: float, context: DistContext) -> float:
    if not context.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item()) / context.world_size
