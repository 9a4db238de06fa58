"""Processes of a pre-training launch: the torchrun process group, the device, collectives.

Run under torchrun; `init_distributed` reads RANK / WORLD_SIZE / LOCAL_RANK and uses NCCL on
GPUs, gloo on the CPU. A single process (WORLD_SIZE unset or 1) needs no process group: every
collective here is then the identity.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist
from torch import Tensor

from harness.errors import HarnessError


@dataclass(frozen=True)
class Dist:
    """This process's place in the launch: rank, world size, local rank (its GPU)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> Dist:
    """The process group of a torchrun launch (initialised once: NCCL on GPUs, gloo on the CPU),
    or a single process when WORLD_SIZE is unset or 1."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    use_cuda = resolve_device(device) == "cuda"
    local = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local)
    # long timeout: ranks wait at barriers while rank 0 clusters (minutes on a large corpus)
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(hours=3))
    return Dist(dist.get_rank(), dist.get_world_size(), local)


def gpu_present() -> Optional[str]:
    """Why this machine looks like it has an NVIDIA GPU (a /dev/nvidia* device node, or GPUs
    assigned through CUDA_VISIBLE_DEVICES as SLURM does), None when nothing says so."""
    nodes = sorted(str(p) for p in Path("/dev").glob("nvidia[0-9]*"))
    if nodes:
        return f"{nodes[0]} exists"
    vis = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if vis and vis not in ("-1", "none", "NoDevFiles"):
        return f"CUDA_VISIBLE_DEVICES={vis}"
    return None


def _cuda_failure() -> str:
    """torch's own reason why CUDA is unusable (e.g. a driver older than the wheel's CUDA)."""
    try:
        torch.cuda.init()
    except Exception as e:  # noqa: BLE001 - any reason is reported as it is
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return "torch.cuda.is_available() is False"


def resolve_device(device: str) -> str:
    """"cuda" or "cpu" for train.device. "auto" takes the GPU when torch can use one and the
    CPU when the machine has none; a machine that has a GPU torch cannot use (a driver too old
    for the installed CUDA build, a broken install) is an error, not a silent CPU run."""
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        seen = gpu_present()
        if seen:
            raise HarnessError(f"train.device auto: this machine has a GPU ({seen}) but torch {torch.__version__} "
                               f"(CUDA {torch.version.cuda}) cannot use it ({_cuda_failure()}); fix the driver or "
                               "the torch build, or set train.device=cpu to train on the CPU")
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise HarnessError(f"train.device is cuda but no GPU is usable here ({_cuda_failure()})")
    return device


def barrier(d: Dist) -> None:
    """Wait for every rank (no-op in a single process)."""
    if d.world > 1:
        dist.barrier()


def all_reduce_sum(t: Tensor, d: Dist) -> Tensor:
    """`t` summed over the ranks, in place (unchanged in a single process)."""
    if d.world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def gather_objects(obj, d: Dist) -> list:
    """`obj` of every rank, in rank order (one process: [obj])."""
    if d.world == 1:
        return [obj]
    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out

