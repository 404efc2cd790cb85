"""The seeds of one readout trained as one batched model, where kernel launches, not arithmetic,
bound a readout step (a GPU: a step of one seed is a few hundred small kernels).

The seeds' readouts (built as for training alone, seed after seed) are stacked parameter by
parameter (torch.func.stack_module_state: [S, ...]); a step runs every seed's forward, loss and
backward in one vmapped call over its own batch, and one AdamW steps every seed's parameters
at once. AdamW and its weight decay are elementwise and the seeds' losses are summed, so each
seed's parameters take its own gradient and update: a seed's numbers are the function of its
seed that training it alone gives, up to rounding (tests/evaluate/test_batched_seeds.py). Each
seed draws its batches from its own generator, seeded with its seed, as alone. The readouts
attend with a backend vmap runs (`batchable`: SDPA where the stage's is xformers).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch.func import functional_call, stack_module_state, vmap
from tqdm import tqdm

from fourds.config import ReadoutSpec
from fourds.evaluate.readout import Features
from fourds.evaluate.tasks import Task
from fourds.evaluate.tasks.base import select

Targets = dict[str, torch.Tensor]


def train_batched(
    readouts: Sequence[torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    seeds: Sequence[int],
    task: Task,
    features: Features,
    targets: Targets,
    spec: ReadoutSpec,
    device: torch.device,
) -> list[list[float]]:
    """Train `readouts` (one per seed of `seeds`, on `device`) together for readouts.<task>.steps
    with cosine decay, each on batches drawn with replacement from its own generator; AdamW
    with the settings of `optimizer` (the first seed's, as `training_optimizer` built it). The
    trained parameters and buffers are written back into each readout. Returns each seed's
    loss per step."""
    params, buffers = stack_module_state(list(readouts))
    stacked = stacked_optimizer(optimizer, list(params.values()))
    steps, batch_size = spec.own.steps, spec.own.batch_size
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(stacked, steps)
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    count = len(next(iter(targets.values())))
    step = batched_loss(readouts[0], task)
    losses: list[list[float]] = [[] for _ in seeds]
    label = f"readout {spec.name} seeds {seeds[0]}-{seeds[-1]} batched"
    for _ in tqdm(range(steps), desc=label, unit="step"):
        indexes = [
            torch.randint(count, (batch_size,), generator=generator, device="cpu")
            for generator in generators
        ]
        batches = [
            task.with_queries(select(targets, index), generator)
            for index, generator in zip(indexes, generators, strict=True)
        ]
        batch = {key: torch.stack([each[key] for each in batches]).to(device) for key in batches[0]}
        inputs = features(torch.cat(indexes)).unflatten(0, (len(seeds), batch_size))
        values = step(params, buffers, inputs, batch)  # [S]
        stacked.zero_grad(set_to_none=True)
        values.sum().backward()
        stacked.step()
        schedule.step()
        for seed_losses, value in zip(losses, values.tolist(), strict=True):
            seed_losses.append(value)
    unstack(readouts, params, buffers)
    return losses


def batchable(spec: ReadoutSpec) -> ReadoutSpec:
    """`spec` with an attention backend that vmap runs: xformers' kernel has no batching rule,
    so batched readouts attend with SDPA instead (the same function, another kernel)."""
    return spec.with_attention("sdpa") if spec.attention == "xformers" else spec


def batched_loss(
    readout: torch.nn.Module, task: Task
) -> Callable[[dict, dict, torch.Tensor, Targets], torch.Tensor]:
    """(stacked params, stacked buffers, features [S, B, L, D], batch of [S, B, ...]) -> each
    seed's loss [S]: `readout`'s forward (its structure, on the meta device) and the task's loss,
    vmapped over the seeds."""
    structure = copy.deepcopy(readout).to("meta")

    def seed_loss(params: dict, buffers: dict, features: torch.Tensor, batch: Targets):
        outputs = functional_call(structure, (params, buffers), (features, batch.get("queries")))
        return task.loss(outputs, batch)

    return vmap(seed_loss)


def stacked_optimizer(
    optimizer: torch.optim.Optimizer, params: list[torch.Tensor]
) -> torch.optim.Optimizer:
    """An optimizer of `optimizer`'s type and settings (its one parameter group's) over the
    stacked parameters `params`, its fused implementation (one kernel a step for every
    parameter: the same update, up to rounding)."""
    (group,) = optimizer.param_groups
    settings = {key: value for key, value in group.items() if key != "params"}
    return type(optimizer)([{"params": params, **settings, "foreach": False, "fused": True}])


@torch.no_grad()
def unstack(readouts: Sequence[torch.nn.Module], params: dict, buffers: dict) -> None:
    """Copy seed s's slice of the stacked `params` and `buffers` into readouts[s]."""
    stacked = params | buffers
    for index, readout in enumerate(readouts):
        for name, tensor in [*readout.named_parameters(), *readout.named_buffers()]:
            tensor.copy_(stacked[name][index])
