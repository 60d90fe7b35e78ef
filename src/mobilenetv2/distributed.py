"""torchrun support: process-group set-up, rank checks, metric reduction and gathering predictions in dataset order."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler


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


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def shard_loader(loader: DataLoader) -> DataLoader:
    """Under torchrun, the same loader over this process's DistributedSampler share (dataset order, padded)."""
    if not is_distributed():
        return loader
    sampler = DistributedSampler(loader.dataset, shuffle=False)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers,
                      pin_memory=loader.pin_memory, collate_fn=loader.collate_fn)


def interleave(shares: list[tuple[torch.Tensor, torch.Tensor]], total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Undo DistributedSampler (shuffle=False): rank r holds items r, r + W, r + 2W, ... of the dataset padded to a
    multiple of W, so interleaving the equal-sized shares restores dataset order and the first ``total`` are real."""
    if len({len(t) for t, _ in shares}) != 1:  # a share lost broken images: order is lost, but no padding to drop
        return torch.cat([t for t, _ in shares]), torch.cat([lg for _, lg in shares])
    targets = torch.stack([t for t, _ in shares], dim=1).reshape(-1)[:total]
    logits = torch.stack([lg for _, lg in shares], dim=1).flatten(0, 1)[:total]
    return targets, logits


def gather_across_processes(targets: torch.Tensor, logits: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every process's predictions, in dataset order and without DistributedSampler's padding (a no-op when alone)."""
    if not is_distributed():
        return targets, logits
    shares: list = [None] * dist.get_world_size()
    dist.all_gather_object(shares, (targets, logits))
    return interleave(shares, total)
