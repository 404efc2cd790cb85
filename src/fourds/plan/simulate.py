"""A simulated cluster: the real pretraining step of one scale on N ranks, with no GPU and no
memory.

Rank 0 of a world of N joins torch.distributed's fake process group (collectives return at once
with tensors of the right shapes), and the model is built, sharded and stepped through the same
code as a real run (fourds.train.parallelize, fourds.train.step) under FakeTensorMode: every
tensor has its shape, dtype and device but no storage, so a 22B model at 256 ranks runs on one
CPU core in seconds. FSDP's memory tracker (torch.distributed._tools.fsdp2_mem_tracker) records
what the step allocates on the device, by kind, as torchtitan's memory estimation does.

Two steps run; the peak is taken in the second, when the AdamW state exists (the tracker is
entered once per step, and entering resets its peak). In the first step, where FSDP2 also
initialises itself, the tracker reports a higher peak than in the second for some scales (4ds_e
at 8 ranks: 19.2 against 17.4 GiB, counted as activations while every gradient exists). It is
reached before the optimizer step (so it is not AdamW's state being created), only with
activation checkpointing (without it, the first step peaks at the second's less the AdamW
state), and not through the fake-tensor cache (the same with the cache off); whether a GPU
sees it is not yet known, so that figure is not the one reported. Tensors are placed
on the CPU (fake CUDA tensors need a CUDA build): the step is the GPU's one but for the attention
kernel (sdpa's CPU flash kernel saves what the CUDA one saves: output and log-sum-exp) and
AdamW (per-parameter on the CPU; fused on CUDA, which allocates no temporaries either). Not
measured: the CUDA context, communication buffers, kernel workspaces and allocator
fragmentation (the plan's headroom).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.distributed._tools.fsdp2_mem_tracker import FSDPMemTracker
from torch.distributed._tools.mem_tracker import MemTracker
from torch.testing._internal.distributed.fake_pg import FakeStore

from fourds.config import ConfigError, LadderSpec, PretrainSpec
from fourds.evaluate.forked import own_process
from fourds.models.factory import scale_mae
from fourds.train.optim import adamw
from fourds.train.parallelize import ParallelPlan, data_parallel_mesh, parallelize
from fourds.train.step import StepRecipe, train_step

DEVICE = "cpu"
NODE_SIZE = 8  # ranks to a simulated node (hsdp shards within one), as the plan's clusters
CPU_ATTENTION = "sdpa"  # what the simulation runs in place of a CUDA-only attention backend


@dataclasses.dataclass(frozen=True)
class SimulatedMemory:
    """Peak device memory of rank 0 in one simulated step, in bytes, by what FSDP's tracker
    calls it: sharded parameters, AdamW state, gathered (unsharded parameters and gradients,
    all-gather and reduce-scatter buffers), activations, temporaries, inputs; total: their sum
    at the peak (the largest moment, not the sum of each kind's largest)."""

    total: int
    by_kind: dict[str, int]


@contextlib.contextmanager
def fake_process_group(world_size: int, layout: str = "fsdp", node_size: int = NODE_SIZE):
    """Rank 0 of a fake process group of `world_size` for the duration, and the device mesh of
    `layout` over it (`node_size` ranks to a node)."""
    if dist.is_initialized():
        raise ConfigError("the simulation needs a process without a process group")
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world_size)
    try:
        yield data_parallel_mesh(layout, DEVICE, world_size, node_size)
    finally:
        dist.destroy_process_group()


@own_process
def simulate_step(
    spec: PretrainSpec,
    world_size: int,
    checkpointing: bool | None = None,
    layout: str | None = None,
) -> SimulatedMemory:
    """Rank 0's peak memory in a pretraining step of `spec`'s scale on `world_size` ranks, with
    its pretrain.batch_size split over the ranks and `pretrain.micro_batch` passes.

    The step runs on CPU tensors, so a CUDA-only attention backend (`runtime.attention:
    xformers`, as the 4ds ladder pins it) is replaced by CPU_ATTENTION, which saves the same
    tensors for backward (output and log-sum-exp); `format_simulation` says so.

    Args:
        checkpointing: activation checkpointing; None: as the params pin it for the scale.
        layout: the data-parallel layout (nodes of NODE_SIZE ranks); None: the params'.
    """
    spec = on_cpu_attention(spec)
    cfg, curate = spec.pretrain, spec.curate
    if cfg.batch_size % world_size:
        raise ConfigError(
            f"pretrain.batch_size={cfg.batch_size} is not divisible by {world_size} ranks"
        )
    clips = cfg.batch_size // world_size
    plan = ParallelPlan.from_spec(spec, sharded=world_size > 1)
    if checkpointing is not None:
        plan = dataclasses.replace(plan, checkpointing=checkpointing)
    plan = dataclasses.replace(plan, compile=False)  # compiling changes no tensor it keeps
    if layout is not None:
        plan = dataclasses.replace(plan, layout=layout)
    shape = (clips, curate.clip_frames, curate.resolution, curate.resolution, 3)
    autocast = torch.autocast(DEVICE, torch.bfloat16, enabled=plan.precision == "bf16")
    if plan.sharded:
        autocast = contextlib.nullcontext()  # FSDP's policy computes in bf16
    recipe = StepRecipe.in_micro_batches(clips, cfg.micro_batch, cfg.grad_clip, autocast)
    with fake_process_group(world_size, plan.layout) as mesh, FakeTensorMode():
        model = parallelize(
            lambda: scale_mae(spec),
            plan,
            DEVICE,
            None,
            mesh if plan.sharded else None,
        )
        optimizer = adamw(model, cfg.weight_decay, cfg.lr, torch.device(DEVICE))
        if plan.sharded:
            tracker = FSDPMemTracker(model, optimizer)
        else:
            tracker = plain_tracker(model, optimizer)
        for _ in range(2):
            tracker.reset_mod_stats()
            with tracker:  # entering resets the peak: the second step's is the one kept
                video = torch.empty(shape, dtype=torch.uint8, device=DEVICE)
                keep_index, mask = model.sample_masks(clips)
                train_step(model, optimizer, video, keep_index, mask, recipe)
        return tracked_peak(tracker)


def on_cpu_attention(spec: PretrainSpec) -> PretrainSpec:
    """`spec` with CPU_ATTENTION in place of any other attention backend."""
    return dataclasses.replace(spec, attention=CPU_ATTENTION)


def plain_tracker(*tracked: torch.nn.Module | torch.optim.Optimizer) -> MemTracker:
    """The memory tracker for unsharded modules and their optimizers: their parameters,
    gradients and optimizer state count from the start, whenever they were allocated."""
    tracker = MemTracker()
    tracker.track_external(*tracked)
    return tracker


def tracked_peak(tracker: MemTracker) -> SimulatedMemory:
    """The peak a tracker recorded since it was last entered (entering resets it)."""
    peak = tracker.get_tracker_snapshot("peak")[torch.device(DEVICE)]
    by_kind = {str(kind): int(value) for kind, value in peak.items() if kind != "Total"}
    return SimulatedMemory(total=int(peak["Total"]), by_kind=by_kind)


def format_simulation(
    plans: list,
    ladder: LadderSpec,
    world_size: int,
    progress: Callable[[str], None] = lambda message: None,
) -> str:
    """The plan's peak memory per GPU beside the simulated step's, one row per scale of
    `ladder`; `progress` hears of each scale as its simulation starts."""
    specs = {spec.scale: spec for spec in ladder.scales}
    attention = ladder.scales[0].attention  # every scale's
    lines = [
        f"peak memory per GPU at {world_size} GPUs, GiB: the plan's model and the real step on "
        "a simulated cluster (fourds.plan.simulate)",
    ]
    if attention != CPU_ATTENTION:
        lines.append(
            f"(attention: the simulated step runs {CPU_ATTENTION} on the CPU in place of "
            f"runtime.attention={attention}, which needs CUDA; both save the "
            "output and log-sum-exp for backward)"
        )
    lines.append(f"{'scale':8}{'plan':>10}{'simulated':>12}{'plan/sim':>10}")
    for plan in plans:
        progress(f"simulating {plan.scale} on {world_size} ranks")
        simulated = simulate_step(
            specs[plan.scale], world_size, plan.checkpointing, plan.layout
        ).total
        lines.append(
            f"{plan.scale:8}{plan.memory.peak / 2**30:10.2f}{simulated / 2**30:12.2f}"
            f"{plan.memory.peak / simulated:10.2f}"
        )
    return "\n".join(lines)
