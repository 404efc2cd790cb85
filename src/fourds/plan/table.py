"""The plan as text: `fourds plan` prints this."""

from __future__ import annotations

from fourds.config import FidelityConfig, LadderSpec, LauncherConfig, ReadoutConfig
from fourds.plan.cluster import Cluster
from fourds.plan.evaluation import EvaluationMemory
from fourds.plan.feed import LoaderRate
from fourds.plan.ladder import ScalePlan
from fourds.plan.measured import MeasuredSteps

GIB = 2**30


def count(value: float) -> str:
    """A parameter count as 22.5M or 1.86B."""
    if value >= 1e9:
        return f"{value / 1e9:.2f}B"
    return f"{value / 1e6:.1f}M"


def gib(value: float) -> str:
    return f"{value / GIB:.2f}"


def row(cells: list[str], widths: list[int]) -> str:
    """The first cell left-aligned, the rest right-aligned."""
    first, *rest = cells
    return first.ljust(widths[0]) + "".join(
        cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)
    )


def _checkpointing(plans: list[ScalePlan], choice: bool | None) -> str:
    """on, off, or the scales that use it."""
    if choice is not None:
        return "on" if choice else "off"
    used = [plan.scale for plan in plans if plan.checkpointing]
    return "on for " + ", ".join(used) if used else "off"


def format_plan(
    plans: list[ScalePlan],
    ladder: LadderSpec,
    cluster: Cluster,
    mfu: float,
    checkpointing: bool | None,
    headroom: float,
    loader: LoaderRate | None = None,
    measured: MeasuredSteps | None = None,
) -> str:
    """Header lines, a memory table, a time table and a data table, one row per scale of
    `ladder`.

    loader: the measured loader rate (fourds.plan.feed); None, or a rate measured at another
    clip size, leaves the loader cores unmeasured. measured: the GPU step times the plans
    used where they apply (fourds.plan.measured), named in the time table's header.
    """
    pretrain, curate = ladder.scales[0].pretrain, ladder.scales[0].curate  # every scale's
    clip = f"{curate.clip_frames}x{curate.resolution}x{curate.resolution}"
    usable = cluster.gpu.memory_bytes * (1.0 - headroom)
    lines = [
        f"ladder {ladder.name} on {cluster.describe()}",
        f"schedule: {pretrain.steps:,} steps x {pretrain.batch_size:,} clips of {clip}, "
        f"{pretrain.precision}, activation checkpointing {_checkpointing(plans, checkpointing)}, "
        f"MFU {mfu:g} assumed where no measurement applies",
        "",
        f"memory per GPU at {cluster.count} GPUs ({plans[0].clips_per_gpu} clips each), GiB; "
        f"usable {usable / GIB:.1f} GiB ({headroom:.0%} headroom); act = activations saved "
        "for backward without / with checkpointing",
    ]
    memory_columns = [
        "scale", "encoder", "trained", "weights", "grads", "AdamW", "gathered", "batch",
        "act off", "act on", "peak", "fits", "min GPUs",
    ]  # fmt: skip
    widths = [8, 9, 9, 9, 8, 8, 10, 8, 9, 8, 8, 6, 10]
    lines.append(row(memory_columns, widths))
    for plan in plans:
        memory = plan.memory
        cells = [
            plan.scale,
            count(plan.encoder_params),
            count(plan.trained_params),
            gib(memory.weights),
            gib(memory.gradients),
            gib(memory.optimizer),
            gib(memory.gathered),
            gib(memory.batch),
            gib(plan.activations_off),
            gib(plan.activations_on),
            gib(memory.peak),
            "yes" if plan.fits else "no",
            "-" if plan.min_gpus is None else str(plan.min_gpus),
        ]
        lines.append(row(cells, widths))
    lines += _time_table(plans, cluster, pretrain.steps, measured)
    lines += _slurm_limit(plans, ladder.launcher, cluster)
    return "\n".join(lines + [""] + _data_table(plans, cluster, clip, loader))


def _time_table(
    plans: list[ScalePlan], cluster: Cluster, steps: int, measured: MeasuredSteps | None
) -> list[str]:
    """Per scale: its layout, FLOPs per clip, compute, communication and step times, and the
    schedule's wall time and GPU-hours."""
    lines = [
        "",
        f"time at {cluster.count} GPUs: compute, data-parallel communication of the layout "
        "(pinned by pretrain.data_parallel, or chosen: the fastest that fits), step (the "
        f"longer), for {steps:,} steps",
        _measured_source(measured, cluster),
    ]
    time_columns = [
        "scale", "layout", "TFLOP/clip", "compute ms", "comm ms", "step ms", "wall hours",
        "GPU-hours", "  compute",
    ]  # fmt: skip
    widths = [8, 15, 12, 12, 10, 10, 12, 12, 2]
    lines.append(row(time_columns, widths).rstrip())
    for plan in plans:
        cells = [
            plan.scale,
            f"{plan.layout} ({plan.layout_source})",
            f"{plan.flops_per_clip / 1e12:.3f}",
            f"{plan.compute_s * 1e3:,.1f}",
            f"{plan.comm_s * 1e3:,.1f}",
            f"{plan.step_s * 1e3:,.1f}",
            f"{plan.wall_hours:,.1f}",
            f"{plan.gpu_hours:,.0f}",
            "  " + plan.compute_source,
        ]
        lines.append(row(cells, widths).rstrip())
    return lines


def _slurm_limit(plans: list[ScalePlan], launcher: LauncherConfig, cluster: Cluster) -> list[str]:
    """Under `launcher.kind: slurm`, a line saying whether each scale's planned wall time fits
    the job's time limit times its runs (the first and `launcher.requeues` requeues, each
    resuming from the last checkpoint), naming those that do not; nothing otherwise."""
    if launcher.kind != "slurm":
        return []
    runs = launcher.requeues + 1
    limit_hours = launcher.time_minutes / 60.0
    setting = (
        f"launcher.time_minutes={launcher.time_minutes} ({limit_hours:.1f} h) x {runs} runs "
        f"(launcher.requeues={launcher.requeues})"
    )
    over = [plan for plan in plans if plan.wall_hours > limit_hours * runs]
    if not over:
        return [
            f"slurm: every scale's planned wall time at {cluster.count} GPUs is within {setting}"
        ]
    longest = max(plan.wall_hours for plan in over)
    needed = int(longest * 60.0 / runs) + 1
    scales = ", ".join(f"{plan.scale} ({plan.wall_hours:,.1f} h)" for plan in over)
    return [
        f"slurm: {setting} is shorter than the planned wall time at {cluster.count} GPUs of "
        f"{scales}: Slurm would stop the job before its last step; set launcher.time_minutes "
        f"to at least {needed} (plus a margin), raise launcher.requeues, or resume the stage "
        "from its last checkpoint in a new job (`dvc repro` again)"
    ]


def _measured_source(measured: MeasuredSteps | None, cluster: Cluster) -> str:
    """The header line saying where compute times come from."""
    if measured is None:
        return (
            "compute: no GPU measurement (benchmarks/gpu_step.py on a GPU writes one); "
            "every compute time is assumed"
        )
    if not measured.applies_to(cluster.gpu.name):
        return (
            f"compute: the GPU measurement ({measured.origin}) is of another GPU; every "
            "compute time is assumed"
        )
    return f"compute: measured ({measured.origin}) where a scale ran at these clips per GPU"


def _data_table(
    plans: list[ScalePlan], cluster: Cluster, clip: str, loader: LoaderRate | None
) -> list[str]:
    """Per scale, the clips/s each GPU consumes and the loader cores that takes."""
    measured = f"{loader.clip[0]}x{loader.clip[1]}x{loader.clip[2]}" if loader else None
    if measured == clip:
        rate = (
            f"loader cores per GPU at {loader.clips_per_s_per_core:g} clips/s per core "
            f"(measured: {loader.source})"
        )
    elif loader is None:
        rate = (
            "loader cores per GPU: rate unmeasured (no loader benchmark result: "
            "python benchmarks/loader_throughput.py)"
        )
    else:
        rate = f"loader cores per GPU: rate unmeasured for {clip} (measured at {measured})"
    lines = [
        f"data at {cluster.count} GPUs: clips/s each GPU consumes (global batch / step time / "
        f"GPUs); {rate}",
        row(["scale", "clips/s/GPU", "cores/GPU"], [8, 13, 11]),
    ]
    for plan in plans:
        cores = loader.cores(plan.clips_per_gpu_s) if measured == clip else None
        cells = [
            plan.scale,
            f"{plan.clips_per_gpu_s:,.1f}",
            "-" if cores is None else f"{cores:,.1f}",
        ]
        lines.append(row(cells, [8, 13, 11]))
    return lines


def format_evaluation(
    stages: list[EvaluationMemory],
    readout: ReadoutConfig,
    fidelity: FidelityConfig,
    cluster: Cluster,
    headroom: float,
) -> str:
    """The readout and fidelity stages' peak memory on one GPU, one row per scale each."""
    usable = cluster.gpu.memory_bytes * (1.0 - headroom)

    def fits(peak: int) -> str:
        return "yes" if peak <= usable else "no"

    lines = [
        f"readout and fidelity stages on one {cluster.gpu.name} each, GiB (usable "
        f"{usable / GIB:.1f}), measured on fake tensors (fourds.plan.evaluation)",
        f"readout@<scale>-<regime>, frozen encoder in {readout.precision}: its weights, the peak "
        "of its feature pass and of the readout's training step, for the task that peaks highest",
    ]
    widths = [8, 9, 16, 10, 11, 8, 6]
    lines.append(row(["scale", "encoder", "task", "features", "head step", "peak", "fits"], widths))
    for stage in stages:
        memory = stage.readout
        cells = [
            stage.scale,
            gib(memory.weights),
            memory.task,
            gib(memory.features),
            gib(memory.head_step),
            gib(memory.peak),
            fits(memory.peak),
        ]
        lines.append(row(cells, widths))
    extractor = (
        f"the extractor ({fidelity.extractor_scale})"
        if fidelity.feature_extractor == "fourds" and not fidelity.encoder_weights
        else "the extractor (not measured: a weights file or InceptionV3)"
    )
    lines += [
        "",
        f"fidelity@<scale>, in {fidelity.precision}: the MAE reconstructing "
        f"{fidelity.batch_size} clips, then {extractor} on {fidelity.batch_size} frames",
    ]
    widths = [8, 9, 13, 11, 9, 8, 6]
    columns = ["scale", "MAE", "reconstruct", "extractor", "extract", "peak", "fits"]
    lines.append(row(columns, widths))
    for stage in stages:
        memory = stage.fidelity
        measured = memory.extract is not None
        cells = [
            stage.scale,
            gib(memory.mae),
            gib(memory.reconstruct),
            gib(memory.extractor) if measured else "-",
            gib(memory.extract) if measured else "-",
            gib(memory.peak),
            fits(memory.peak),
        ]
        lines.append(row(cells, widths))
    return "\n".join(lines)
