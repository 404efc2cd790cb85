"""The one owner of parallelism: how the pretraining model is built, wrapped, sharded and given
its initial weights, in every launch mode (one process, torchrun, Slurm, the simulated cluster).

The order is torchtitan's:

1. build on the meta device (no memory, also for 22B parameters);
2. activation checkpointing on every transformer block, where the params ask for it for this
   scale (`pretrain.activation_checkpointing`: true, false, or the list of scales): the block
   keeps only its input for the backward pass and recomputes the rest (same result, less
   memory), its forward wrapped in place so that parameter names do not change;
3. `torch.compile` of every transformer block and of the pixel loss, when `pretrain.compile`
   asks (in place, so parameter names, and with them checkpoints and the initial weights, do
   not change);
4. with more than one process, `fully_shard` on every transformer block and then on the root,
   with the mixed-precision policy (bf16 compute, fp32 gradient reduction; or plain fp32), each
   parameter sharded along the dim `shard_dim` chooses, over the mesh of the scale's
   data-parallel layout (`data_parallel_mesh`: fsdp shards over every process, hsdp within a
   node and replicates across nodes, ddp replicates everywhere);
5. allocate on the device and draw the initial weights on what each process holds
   (fourds.models.init, residual outputs as mae.residual_init says): a 1-process run and every
   N-process run start from the same weights, bitwise, and no process ever holds the full
   model.
"""

from __future__ import annotations

import dataclasses
import os
import types
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import Shard
from torch.utils.checkpoint import checkpoint

from fourds.config import ConfigError, PretrainSpec
from fourds.models.init import initialise
from fourds.models.mae import PixelLoss
from fourds.models.vit import Block


@dataclasses.dataclass(frozen=True)
class ParallelPlan:
    """How one scale's model runs: activation checkpointing, per-block compile, precision
    ("fp32" or "bf16"), whether it is sharded over the processes of the job; and how its
    residual outputs start (mae.residual_init, see fourds.models.init.residual_scale)."""

    checkpointing: bool
    compile: bool
    precision: str
    sharded: bool
    residual_init: str = "xavier"
    layout: str = "fsdp"

    @classmethod
    def from_spec(cls, spec: PretrainSpec, sharded: bool) -> ParallelPlan:
        """The plan the pretrain params give `spec`'s scale."""
        cfg, scale = spec.pretrain, spec.scale
        return cls(
            cfg.checkpoints(scale), cfg.compile, cfg.precision, sharded, spec.mae.residual_init,
            cfg.layout(scale),
        )  # fmt: skip


def mixed_precision(precision: str) -> MixedPrecisionPolicy:
    """FSDP2 policy: bf16 compute with fp32 gradient reduction, or plain fp32.

    Inputs that are floating point are cast to the compute dtype; uint8 video is not, and the
    MAE computes its targets and loss from it in fp32 (fourds.models.mae).
    """
    if precision == "bf16":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def transformer_blocks(model: nn.Module) -> list[Block]:
    """Every transformer block of `model` (encoder and decoder), in module order."""
    return [module for module in model.modules() if isinstance(module, Block)]


def checkpointed_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The block's class forward under `torch.utils.checkpoint` whenever gradients are on."""
    forward = type(block).forward
    if torch.is_grad_enabled():
        return checkpoint(forward, block, x, use_reentrant=False)
    return forward(block, x)


def apply_activation_checkpointing(model: nn.Module) -> None:
    """Each block keeps only its input for backward and recomputes the rest: its forward is
    replaced in place by `checkpointed_forward` bound to it (its parameters and their names
    stay; a deep copy binds to the copy)."""
    for block in transformer_blocks(model):
        block.forward = types.MethodType(checkpointed_forward, block)


def apply_compile(model: nn.Module) -> None:
    """torch.compile, in place, each block (one compiled graph, reused by same-shaped blocks)
    and the pixel loss (its fp32 passes over every target patch fused into a few kernels)."""
    losses = [module for module in model.modules() if isinstance(module, PixelLoss)]
    for region in transformer_blocks(model) + losses:
        region.compile()


def shard_dim(shape: torch.Size, ranks: int) -> int:
    """The dim FSDP2 shards a parameter of `shape` along over `ranks` processes.

    Dim 0, unless the parameter has fewer rows than there are ranks: then the first later dim
    that the ranks divide evenly (FSDP2 shards dims other than 0 only evenly), and dim 0 if none
    does. FSDP2 pads every rank's shard to ceil(rows / ranks) rows, so sharding a [1, N, d]
    positional embedding along dim 0 would give every rank a padded copy and make its
    all-gather buffer `ranks` times its size.
    """
    if not shape or shape[0] >= ranks:
        return 0
    return next((dim for dim in range(1, len(shape)) if shape[dim] % ranks == 0), 0)


def data_parallel_mesh(
    layout: str, device_type: str, world_size: int, node_size: int
) -> DeviceMesh:
    """The device mesh of a layout over `world_size` processes, `node_size` to a node: fsdp a
    1-D mesh of them all; hsdp (replicate, shard) = (nodes, node_size); ddp (world_size, 1),
    FSDP2 over shard groups of one process, which replicates every parameter and all-reduces
    the gradients.

    Raises:
        ConfigError: hsdp over processes that do not fill whole nodes.
    """
    if layout == "fsdp":
        return init_device_mesh(device_type, (world_size,))
    shard = node_size if layout == "hsdp" else 1
    if world_size % shard:
        raise ConfigError(
            f"pretrain.data_parallel hsdp shards over each node's {node_size} processes, which "
            f"do not divide the job's {world_size}"
        )
    names = ("replicate", "shard")
    return init_device_mesh(device_type, (world_size // shard, shard), mesh_dim_names=names)


def processes_per_node() -> int:
    """torchrun's LOCAL_WORLD_SIZE (the whole job where it is not set)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size()))


def apply_fsdp(model: nn.Module, policy: MixedPrecisionPolicy, mesh: DeviceMesh) -> None:
    """fully_shard each transformer block, then the root (FSDP2), every parameter along
    `shard_dim` of its shard group (the mesh's last dim)."""
    ranks = mesh.size(mesh.ndim - 1)

    def placement(param: nn.Parameter) -> Shard:
        return Shard(shard_dim(param.shape, ranks))

    for block in transformer_blocks(model):
        fully_shard(block, mesh=mesh, mp_policy=policy, shard_placement_fn=placement)
    fully_shard(model, mesh=mesh, mp_policy=policy, shard_placement_fn=placement)


def parallelize(
    build: Callable[[], nn.Module],
    plan: ParallelPlan,
    device: torch.device | str,
    seed: int | None,
    mesh: DeviceMesh | None = None,
) -> nn.Module:
    """Build, wrap, shard and initialise a model as `plan` says (steps 1-5 above).

    Args:
        build: makes the model with placeholder weights (called under the meta device).
        seed: the initial weights' seed; None leaves the memory uninitialised (for the memory
            simulation on fake tensors, whose values do not exist).
        mesh: the device mesh to shard over when `plan.sharded` (None: the layout's mesh of
            all the job's processes, on `device`'s type, `data_parallel_mesh`; FSDP's own
            default would be the accelerator's, CUDA on a GPU machine even for a CPU run over
            gloo).

    Returns:
        the model on `device`, in train mode.
    """
    with torch.device("meta"):
        model = build()
    if plan.checkpointing:
        apply_activation_checkpointing(model)
    if plan.compile:
        apply_compile(model)
    if plan.sharded:
        if mesh is None:
            mesh = data_parallel_mesh(
                plan.layout, torch.device(device).type, dist.get_world_size(), processes_per_node()
            )
        apply_fsdp(model, mixed_precision(plan.precision), mesh)
    model.to_empty(device=device)
    if seed is not None:
        initialise(model, seed, plan.residual_init)
    return model.train()
