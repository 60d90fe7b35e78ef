"""torchrun support: process-group set-up from environment variables, rank checks and metric reduction."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_distributed(device_type: str) -> bool:
    """Join the process group when launched by torchrun (WORLD_SIZE set); gloo on CPU, NCCL on CUDA."""
    if "WORLD_SIZE" not in os.environ or dist.is_initialized():
        return dist.is_initialized()
    dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return True


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum each number over all processes."""
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def local_device(name: str) -> torch.device:
    """The device for this process: 'auto' -> cuda (this process's LOCAL_RANK GPU) when available, else cpu."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return torch.device(name)
