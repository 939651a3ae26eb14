"""DistributedDataParallel under torchrun: process group, ranks, and metric reduction.

Run unchanged on one process (`python -m training.train ...`) or under PyTorch's launcher
(`torchrun --nproc_per_node N -m training.train ...`, multi-node with --nnodes and
--rdzv-backend c10d). torchrun sets RANK, LOCAL_RANK, WORLD_SIZE; NCCL is used on CUDA,
Gloo on CPU. Only rank 0 writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def setup(device: torch.device, timeout_s: int = 600) -> tuple[DistInfo, torch.device]:
    """Join the process group if torchrun started us; returns rank info and this rank's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo(), device
    info = DistInfo(rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]))
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    # A timeout turns a dead peer into an error on every rank instead of a hang.
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s),
                            **({"device_id": device} if backend == "nccl" else {}))
    return info, device


def cleanup() -> None:
    if _active():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if _active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_rank_flags(flags: list[bool], device: torch.device) -> list[bool]:
    """Each flag true on every rank when it is true on at least one, in one collective (so all ranks
    stop at the same step)."""
    if not _active():
        return list(flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor of rank-dependent length from all ranks, in rank order."""
    if not _active():
        return t
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, t.cpu())
    return torch.cat(parts)


def broadcast_object(obj):
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if _active():
        dist.barrier()
