"""The compute plan of a ladder on a cluster: per scale, size, FLOPs, memory, GPUs and time.

Every scale trains the pinned schedule of params.yaml (`pretrain.steps` steps of
`pretrain.batch_size` clips) data-parallel over the GPUs, the global batch split evenly (the
pretrain stage needs the batch divisible by the GPU count), in the layout
`pretrain.data_parallel` pins for it or, where it pins none, the fastest that fits
(`choose_layout`: FSDP, HSDP or DDP). Memory comes from
`fourds.plan.memory`, FLOPs per clip from counting the model's own forward and backward pass
(`fourds.models.flops.training_flops_per_clip`), compute times from GPU measurements where they
exist (`fourds.plan.measured`) and an assumed MFU elsewhere, communication from
`fourds.plan.cluster`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from fourds.config import ConfigError, LadderSpec, PretrainSpec
from fourds.config.schema import LAYOUTS
from fourds.models.flops import training_flops_per_clip
from fourds.plan.cluster import Cluster, compute_seconds, gpu_hours, layout_seconds, shard_count
from fourds.plan.measured import MeasuredSteps, StepTime
from fourds.plan.memory import DeviceMemory, StepSetup, memory_per_device, parameter_layout


@dataclasses.dataclass(frozen=True)
class ScalePlan:
    """The plan of one scale on the cluster's GPU count.

    encoder_params, trained_params: parameters of the encoder, and of everything trained (the
    encoder with the decoder or query tokens and pixel head). flops_per_clip: model FLOPs of
    one training step per clip. memory: per GPU with the chosen activation checkpointing;
    activations_off / activations_on: what the forward pass saves per GPU without and with it.
    fits: the peak is within the usable memory. min_gpus: the smallest GPU count dividing the
    batch at which the peak fits (None: not even one clip per GPU fits). compute_s, comm_s:
    one step's compute and data-parallel communication; compute_source: whether compute_s was
    measured or assumed (`fourds.plan.measured`); step_s: the longer of the two (seconds);
    layout, layout_source: the data-parallel layout planned, "pinned" by the params or
    "chosen" (`choose_layout`); memory and comm_s are that layout's;
    gpu_hours, wall_hours: of the whole schedule on the cluster; clips_per_gpu_s: the clips/s
    each GPU consumes (the global batch / step time / GPUs), what its loader must deliver.
    """

    scale: str
    layout: str
    layout_source: str
    checkpointing: bool
    encoder_params: int
    trained_params: int
    flops_per_clip: float
    clips_per_gpu: int
    memory: DeviceMemory
    activations_off: int
    activations_on: int
    fits: bool
    min_gpus: int | None
    compute_s: float
    compute_source: str
    comm_s: float
    step_s: float
    gpu_hours: float
    wall_hours: float
    clips_per_gpu_s: float


def divisors(number: int) -> list[int]:
    """Every divisor of `number`, ascending."""
    return [value for value in range(1, number + 1) if number % value == 0]


def smallest_fitting_count(
    setup: StepSetup, batch: int, usable_bytes: float, checkpointing: bool
) -> int | None:
    """The fewest GPUs (a divisor of `batch`) whose per-GPU peak is at most `usable_bytes`."""
    for devices in divisors(batch):
        peak = memory_per_device(setup, devices, batch // devices, checkpointing).peak
        if peak <= usable_bytes:
            return devices
    return None


@dataclasses.dataclass(frozen=True)
class LayoutOption:
    """One data-parallel layout of a scale: its per-GPU memory, communication and step time."""

    layout: str
    memory: DeviceMemory
    fits: bool
    comm_s: float
    step_s: float


def layout_options(
    setup: StepSetup, cluster: Cluster, clips: int, checkpointing: bool, compute_s: float,
    usable: float,
) -> list[LayoutOption]:  # fmt: skip
    """Every layout the cluster can run (hsdp only over whole nodes of more than one)."""
    options, trained = [], parameter_layout(setup).total
    for layout in LAYOUTS:
        shards = shard_count(layout, cluster)
        if layout == "hsdp" and (cluster.count % shards or shards == cluster.count):
            continue
        memory = memory_per_device(setup, shards, clips, checkpointing)
        comm_s = layout_seconds(layout, trained, cluster, setup.compute_bytes)
        fits = memory.peak <= usable
        options.append(LayoutOption(layout, memory, fits, comm_s, max(compute_s, comm_s)))
    return options


def choose_layout(options: list[LayoutOption]) -> LayoutOption:
    """The layout that fits with the shortest step, the least memory among equals (fsdp, the
    first option, where none fits)."""
    fitting = [option for option in options if option.fits]
    if not fitting:
        return options[0]
    return min(fitting, key=lambda option: (option.step_s, option.memory.peak))


def plan_scale(
    spec: PretrainSpec,
    cluster: Cluster,
    mfu: float,
    checkpointing: bool | None,
    headroom: float,
    measured: MeasuredSteps | None = None,
) -> ScalePlan:
    """Plan `spec`'s scale (see `ScalePlan`); `headroom` is the fraction of GPU memory kept free
    for what the memory model does not count (CUDA context, NCCL buffers, fragmentation).
    `measured`: step times measured on a GPU, used where they apply (else `mfu`, assumed)."""
    scale, pretrain = spec.scale, spec.pretrain
    if checkpointing is None:
        checkpointing = pretrain.checkpoints(scale)
    batch, devices = pretrain.batch_size, cluster.count
    if batch % devices:
        raise ConfigError(
            f"pretrain.batch_size={batch} is not divisible by {devices} GPUs: each GPU trains "
            "an equal share of the batch"
        )
    setup = StepSetup.from_spec(spec, on_gpu=True)
    parameters = parameter_layout(setup)
    clips = batch // devices
    usable = cluster.gpu.memory_bytes * (1.0 - headroom)
    flops = float(training_flops_per_clip(setup.model, setup.mae, setup.frames, setup.size))
    peak = cluster.gpu.peak_flops(setup.precision)
    if measured is not None and measured.applies_to(cluster.gpu.name):
        compute = measured.step_time(scale, clips, flops, peak, mfu)
    else:
        compute = StepTime(compute_seconds(flops, clips, peak, mfu), f"assumed (MFU {mfu:g})")
    compute_s = compute.seconds
    options = layout_options(setup, cluster, clips, checkpointing, compute_s, usable)
    if scale in pretrain.data_parallel:
        # hsdp on one node is fsdp (`layout_options` leaves it out)
        by_name = {option.layout: option for option in options}
        option = by_name.get(pretrain.layout(scale), by_name["fsdp"])
        source = "pinned"
    else:
        option, source = choose_layout(options), "chosen"
    step_s, steps = option.step_s, pretrain.steps
    return ScalePlan(
        scale=scale,
        layout=option.layout,
        layout_source=source,
        checkpointing=checkpointing,
        encoder_params=parameters.encoder_size,
        trained_params=parameters.total,
        flops_per_clip=flops,
        clips_per_gpu=clips,
        memory=option.memory,
        activations_off=memory_per_device(setup, devices, clips, False).activations,
        activations_on=memory_per_device(setup, devices, clips, True).activations,
        fits=option.fits,
        min_gpus=smallest_fitting_count(setup, batch, usable, checkpointing),
        compute_s=compute_s,
        compute_source=compute.source,
        comm_s=option.comm_s,
        step_s=step_s,
        gpu_hours=gpu_hours(step_s, steps, devices),
        wall_hours=step_s * steps / 3600.0,
        clips_per_gpu_s=clips / step_s,
    )


def plan_ladder(
    ladder: LadderSpec,
    cluster: Cluster,
    mfu: float,
    checkpointing: bool | None,
    headroom: float = 0.1,
    progress: Callable[[str], None] = lambda message: None,
    measured: MeasuredSteps | None = None,
) -> list[ScalePlan]:
    """`plan_scale` for every scale of `ladder`; `progress` hears of each scale as it starts."""
    if not 0.0 < mfu <= 1.0:
        raise ConfigError(f"MFU {mfu} must be in (0, 1]")
    if not 0.0 <= headroom < 1.0:
        raise ConfigError(f"memory headroom {headroom} must be in [0, 1)")
    plans = []
    for spec in ladder.scales:
        progress(f"planning {spec.scale}")
        plans.append(plan_scale(spec, cluster, mfu, checkpointing, headroom, measured))
    return plans
