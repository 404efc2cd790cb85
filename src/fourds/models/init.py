"""The MAE-ST initialisation, drawn so that every sharding of the model gets the same weights.

Every parameter has its own random stream: numpy's counter-based Philox generator keyed by the
seed and the parameter's name. Element i of the flattened full parameter is a function of draw
i of its stream only, so a process that holds a dim-0 shard of the parameter (FSDP2: a
contiguous run of the flattened tensor) skips ahead to its first element and draws just its
own elements. A 1-process run and every rank of an N-process run therefore start from the
same weights, bitwise, and no process ever holds more than its own shard. Values are drawn in
float64 on the CPU and cast to the parameter's dtype, so they do not depend on the device.

The rules (MAE / MAE-ST):
    Linear weight [out, in]          uniform(-a, a), a = sqrt(6 / (in + out)) (xavier-uniform)
    Conv weight [out, in, *kernel]   like the equivalent Linear [out, in * prod(kernel)]
    self-attention q and kv weights  q, k and v as three separate [dim, dim] maps:
                                     a = sqrt(6 / (dim + dim)) for all of them
    biases, LayerNorm shifts         0
    LayerNorm scales                 1
    free parameters                  declared by their module in `parameter_inits` (positional
                                     embeddings and query tokens: truncated normal, std 0.02
                                     within +-2; mask tokens: normal, std 0.02)
    residual-output projections      the Linear bound times the scale of `residual_init`
                                     (mae.residual_init): 1 for xavier; GPT-2's
                                     1/sqrt(2 depth) for depth_scaled, depth the block's
                                     stack's; 0 for zero (every block starts as the identity)
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import sys
from typing import Literal

import numpy as np
import torch
from torch import nn

from fourds.models.attention import Attention

CONV_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
PHILOX_BLOCK = 4  # Philox draws its uint64s four at a time; `advance` counts blocks


@dataclasses.dataclass(frozen=True)
class Init:
    """How one parameter starts: a constant, uniform(-scale, scale), or a normal of std
    `scale` (truncated to [-2, 2] for `trunc_normal`, as torch.nn.init.trunc_normal_)."""

    kind: Literal["zeros", "ones", "uniform", "normal", "trunc_normal"]
    scale: float = 0.0


def xavier_bound(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6.0 / (fan_in + fan_out))


def _module_inits(module: nn.Module) -> dict[str, Init]:
    """The rules for `module`'s own (not its children's) parameters, by local name."""
    inits = dict(getattr(module, "parameter_inits", {}))
    if isinstance(module, nn.Linear):
        inits["weight"] = Init("uniform", xavier_bound(module.in_features, module.out_features))
    elif isinstance(module, CONV_LAYERS):
        weight = module.weight
        inits["weight"] = Init("uniform", xavier_bound(weight[0].numel(), weight.shape[0]))
    elif isinstance(module, nn.LayerNorm):
        inits["weight"] = Init("ones")
    if isinstance(module, (nn.Linear, nn.LayerNorm, *CONV_LAYERS)):
        inits["bias"] = Init("zeros")
    return inits


def residual_scale(residual_init: str, depth: int) -> float:
    """How the residual-output projections of a stack of `depth` blocks start, relative to
    their xavier bound: "xavier" 1; "depth_scaled" (GPT-2) 1/sqrt(2 * depth), so the residual
    stream's initial growth over the stack does not grow with its depth; "zero" 0."""
    return {"xavier": 1.0, "depth_scaled": (2 * depth) ** -0.5, "zero": 0.0}[residual_init]


def _residual_scales(model: nn.Module, residual_init: str) -> dict[str, float]:
    """The scale of every residual-output projection's weight, by name: each stack (a
    ModuleList of blocks that declare `residual_outputs`) scaled by its own depth."""
    scales = {}
    for prefix, stack in model.named_modules():
        if not isinstance(stack, nn.ModuleList):
            continue
        scale = residual_scale(residual_init, len(stack))
        for index, block in enumerate(stack):
            for output in getattr(block, "residual_outputs", ()):
                name = f"{prefix}.{index}.{output}.weight" if prefix else f"{index}.{output}.weight"
                scales[name] = scale
    return scales


def parameter_inits(model: nn.Module, residual_init: str = "xavier") -> dict[str, Init]:
    """The rule of every parameter of `model`, by its name in `model.named_parameters()`, its
    residual-output projections started as `residual_init` says (`residual_scale`).

    Raises:
        ValueError: a parameter has no rule (a new free parameter must be declared in its
            module's `parameter_inits`).
    """
    inits, attention = {}, {}
    for prefix, module in model.named_modules():
        dot = f"{prefix}." if prefix else ""
        for local, rule in _module_inits(module).items():
            if getattr(module, local, None) is not None:
                inits[dot + local] = rule
        if isinstance(module, Attention) and module.is_self_attention:
            bound = xavier_bound(module.q.in_features, module.q.in_features)
            attention |= {f"{dot}q.weight": Init("uniform", bound)}
            attention |= {f"{dot}kv.weight": Init("uniform", bound)}
    inits |= attention  # over the rules of q and kv as plain Linear layers
    for name, factor in _residual_scales(model, residual_init).items():
        scale = inits[name].scale * factor
        inits[name] = dataclasses.replace(inits[name], scale=scale) if scale else Init("zeros")
    missing = [name for name, _ in model.named_parameters() if name not in inits]
    if missing:
        raise ValueError(f"no initialisation rule for {missing}: declare it in parameter_inits")
    return inits


def _stream_key(seed: int, name: str) -> int:
    """The Philox key of parameter `name` under `seed` (128 bits of sha256)."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:16], "little")


def draw(rule: Init, seed: int, name: str, start: int, count: int) -> torch.Tensor:
    """Elements [start, start + count) of the flattened parameter `name`, float64 [count]."""
    if rule.kind == "zeros":
        return torch.zeros(count, dtype=torch.float64, device="cpu")
    if rule.kind == "ones":
        return torch.ones(count, dtype=torch.float64, device="cpu")
    bits = np.random.Philox(key=_stream_key(seed, name))
    bits.advance(start // PHILOX_BLOCK)
    generator = np.random.Generator(bits)
    generator.random(start % PHILOX_BLOCK)
    uniform = torch.from_numpy(generator.random(count))  # [0, 1)
    if rule.kind == "uniform":
        return (2.0 * uniform - 1.0) * rule.scale
    # Normals by inverting the CDF: x = sqrt(2) erfinv(2u - 1), u restricted to the truncation.
    low, high = (-2.0 / rule.scale, 2.0 / rule.scale) if rule.kind == "trunc_normal" else (-9, 9)
    cdf_low, cdf_high = (0.5 * (1.0 + math.erf(x / math.sqrt(2.0))) for x in (low, high))
    u = cdf_low + uniform * (cdf_high - cdf_low)
    normal = torch.erfinv(2.0 * u - 1.0) * math.sqrt(2.0)
    return normal.clamp_(low, high) * rule.scale


def _local_runs(param: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """This process's part of `param` and where it lies in the flattened parameter: the local
    tensor and its (first element, element count) runs, in order. The whole tensor is one run;
    a shard FSDP2 gave this rank along dim d (possibly empty) is prod(shape[:d]) runs. A
    parameter replicated over a mesh dim (HSDP, or DDP as a shard group of one) is sharded
    along its other mesh dim only."""
    # A process that never imported torch.distributed.tensor holds no DTensor; importing it
    # here would cost every stage that does not shard (readouts, fidelity) about a second.
    dtensor = sys.modules.get("torch.distributed.tensor")
    if dtensor is None or not isinstance(param, dtensor.DTensor):
        return param.data, [(0, param.numel())]
    sharded = [
        (mesh_dim, placement)
        for mesh_dim, placement in enumerate(param.placements)
        if not isinstance(placement, dtensor.Replicate)
    ]
    if len(sharded) != 1 or not isinstance(sharded[0][1], dtensor.Shard):
        raise ValueError(f"cannot initialise a DTensor placed as {param.placements}")
    (mesh_dim, placement), mesh = sharded[0], param.device_mesh
    local, dim, shape = param.to_local(), placement.dim, param.shape
    per_rank = math.ceil(shape[dim] / mesh.size(mesh_dim))
    first = min(shape[dim], per_rank * mesh.get_local_rank(mesh_dim))
    count = local.shape[dim] * math.prod(shape[dim + 1 :])  # elements of one run
    stride = math.prod(shape[dim:])  # elements between runs
    start = first * math.prod(shape[dim + 1 :])
    return local, [(start + run * stride, count) for run in range(math.prod(shape[:dim]))]


@torch.no_grad()
def initialise(model: nn.Module, seed: int, residual_init: str = "xavier") -> nn.Module:
    """Draw every parameter of `model` (plain or FSDP2-sharded, on any device) by the rules
    above from `seed`, its residual outputs started as `residual_init` says; each process
    fills only what it holds. Returns `model`."""
    for name, rule in parameter_inits(model, residual_init).items():
        param = model.get_parameter(name)
        local, runs = _local_runs(param)
        if local.numel():
            values = torch.cat([draw(rule, seed, name, start, count) for start, count in runs])
            local.copy_(values.view(local.shape).to(local.dtype))
    return model
