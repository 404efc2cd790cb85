"""The process group of a run, set up from torchrun's environment.

A run started by torchrun (WORLD_SIZE > 1) joins a process group (gloo on CPU, NCCL on CUDA);
fourds.train.parallelize shards the model over it. Also: gathering the full state dict, and
averaging a logged scalar over the ranks.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict


@dataclasses.dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistEnv:
    """Join torchrun's process group when there is one; a plain run is rank 0 of 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistEnv()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return DistEnv(rank=dist.get_rank(), world_size=dist.get_world_size())


def close_distributed(env: DistEnv) -> None:
    if env.sharded and dist.is_initialized():
        dist.destroy_process_group()


def full_state_dict(model: nn.Module, env: DistEnv) -> dict[str, torch.Tensor]:
    """The unsharded state dict (on rank 0's CPU when sharded; empty on other ranks)."""
    if not env.sharded:
        return model.state_dict()
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def mean_over_ranks(value: torch.Tensor, env: DistEnv) -> float:
    """The mean of a scalar across ranks (for logging)."""
    if not env.sharded:
        return value.item()
    total = value.detach().clone()
    dist.all_reduce(total)  # SUM: gloo has no AVG
    return total.item() / env.world_size
