"""Data-parallel sharding with FSDP2 (`fully_shard`), set up from torchrun's environment.

A run started by torchrun (WORLD_SIZE > 1) joins a process group (gloo on CPU, NCCL on CUDA),
builds its model on the meta device, shards every transformer block and then the root, and
materialises only its own shards. The initial weights are made once on rank 0 from the seed
and broadcast, so a sharded run starts from exactly the weights a single-process run has.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    set_model_state_dict,
)
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from fourds.models.mae import MaskedAutoencoder
from fourds.models.vit import Block


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


def mixed_precision(precision: str) -> MixedPrecisionPolicy:
    """FSDP2 policy: bf16 compute with fp32 gradient reduction, or plain fp32."""
    if precision == "bf16":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def shard_mae(model: MaskedAutoencoder, policy: MixedPrecisionPolicy) -> MaskedAutoencoder:
    """fully_shard each transformer block (encoder and decoder), then the root (FSDP2)."""
    for block in [module for module in model.modules() if isinstance(module, Block)]:
        fully_shard(block, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    return model


def build_sharded(
    build: Callable[[], MaskedAutoencoder],
    env: DistEnv,
    device: torch.device,
    seed: int,
    policy: MixedPrecisionPolicy,
) -> MaskedAutoencoder:
    """Build on the meta device, shard, materialise, and load rank 0's seeded initial weights.

    Args:
        build: makes the model (called under the meta device, and on rank 0 also on the CPU
            with `torch.manual_seed(seed)` for the initial weights).
    """
    with torch.device("meta"):
        model = build()
    shard_mae(model, policy)
    model.to_empty(device=device)
    initial = {}
    if env.is_main:
        torch.manual_seed(seed)
        initial = build().state_dict()
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, initial, options=options)
    return model


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
