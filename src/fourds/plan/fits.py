"""The params check that each scale's pretraining step fits the memory it runs in: a clip, batch
or model too large for the machine is refused in one line before any work, instead of a pretrain
stage that swaps or is killed (the pretrain stage's first check, for its scale: fourds.cli).

The step is the pretrain stage's: each process trains pretrain.batch_size / processes clips,
pretrain.micro_batch of them at a time where set, its parameters sharded over the processes its
layout shards over (fsdp: all of them; hsdp: a node's; ddp: none), with the scale's activation
checkpointing. Its peak is the planner's memory model's (`fourds.plan.memory`), the bound
`fourds.plan.machine`'s. The model counts the step's own tensors, not the CUDA context, the
loader's prefetched batches or fragmentation: a step it puts over the bound cannot run there,
one under it may still not. The model's fake steps run in a process of their own
(`fourds.plan.clip_memory`), so that this process's later forks can run autograd (a readout's
seeds).
"""

from __future__ import annotations

from fourds.config import ConfigError, Params
from fourds.plan.machine import process_memory
from fourds.plan.memory import StepSetup, memory_per_device

GIB = 2**30


def check_pretraining_fits(params: Params, scales: list[str] | None = None) -> None:
    """Raise ConfigError, naming the clip, the batch, the scale and the bound, for the first
    of `scales` (default: ladder.scales) whose pretraining step takes more than a process's
    memory."""
    bound = process_memory(params.runtime, params.launcher)
    curate, pretrain = params.curate, params.pretrain
    scales = list(params.ladder.scales if scales is None else scales)
    for scale in scales:
        peak, clips = step_peak(params, scale, bound.on_gpu)
        if peak > bound.bytes:
            size = curate.resolution
            raise ConfigError(
                f"curate.clip_frames={curate.clip_frames} x curate.resolution={size} at "
                f"pretrain.batch_size={pretrain.batch_size}: a pretraining step of models.{scale} "
                f"({clips} clips of {curate.clip_frames}x{size}x{size} a pass in a process) "
                f"takes {peak / GIB:.1f} GiB by the planner's memory model (fourds.plan.memory), "
                f"over the {bound.bytes / GIB:.1f} GiB {bound.where}; lower one of them, or set "
                "pretrain.micro_batch or pretrain.activation_checkpointing"
            )


def step_peak(params: Params, scale: str, on_gpu: bool) -> tuple[int, int]:
    """(peak bytes of one process in `scale`'s pretraining step, the clips of its pass)."""
    launcher, pretrain = params.launcher, params.pretrain
    local = launcher.kind == "local"
    processes = 1 if local else launcher.nnodes * launcher.nproc_per_node
    node = 1 if local else launcher.nproc_per_node
    shards = {"fsdp": processes, "hsdp": node, "ddp": 1}[pretrain.layout(scale)]
    clips = pretrain.micro_batch or -(-pretrain.batch_size // processes)
    setup = StepSetup.from_spec(params.pretraining(scale), on_gpu)
    return memory_per_device(setup, shards, clips).peak, clips
