"""Where a process computes: the profile's device (`resolve_device`), the data-parallel process group
(`distributed`: rank and world size under `torchrun` or `accelerate launch`) and a training process's
place in it (`Placement`: device, rank, world; its slice of each batch, autocast and barrier).

train.py trains on a `Placement`; datasets.py and generate.py put the codec, the text encoder and
the sampled model on `resolve_device(cfg)`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .config import Profile


def resolve_device(cfg: Profile) -> torch.device:
    """cfg.device: auto (CUDA when available) | cpu | cuda (checked by config)."""
    want = cfg.device
    if want == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: {want!r} asked for, but torch sees no CUDA device")
    return torch.device(want)


def distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size). Under `torchrun --nproc_per_node N` or `accelerate launch` (WORLD_SIZE > 1)
    the process group is started here (NCCL on CUDA, else gloo) and each process takes the GPU
    LOCAL_RANK; a plain `python` run is (0, 1). Data parallelism is the same loop: every process
    draws the whole batch from the same generators, runs its slice, and the barrier sees the whole
    batch (`train._gather`), so a run on N processes trains the same model as on one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_end_process_group)
    return dist.get_rank(), dist.get_world_size()


def _end_process_group() -> None:
    """Close the process group before the interpreter exits: a gloo group left open lets a rank abort
    at exit ("terminate called without an active exception", SIGABRT) after the run itself succeeded."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@dataclass(frozen=True)
class Placement:
    """Where this process trains: its device, and its rank among `world` data-parallel processes."""

    device: torch.device = torch.device("cpu")
    rank: int = 0
    world: int = 1

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def lead(self) -> bool:
        """Rank 0 writes logs, checkpoints and the final weights."""
        return self.rank == 0

    def mine(self, batch_size: int) -> slice:
        """This process's part of each batch."""
        return slice(self.rank * batch_size // self.world, (self.rank + 1) * batch_size // self.world)

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda else contextlib.nullcontext()

    def sync(self) -> None:
        """Wait for every process (nothing to wait for in one process)."""
        if self.world > 1:
            torch.distributed.barrier()
