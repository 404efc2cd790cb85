"""ATen calls per readout training step per seed: the seeds of a readout trained one after
another (each its own forward, loss, backward and AdamW step) against trained as one batched
model (fourds.evaluate.batched_seeds, the GPU's way). On a GPU each call that reaches a kernel
is a launch, and a readout step is bound by launches, not arithmetic; so the count, taken on
the CPU on the same code path, says how much of the step's launch cost batching removes.

Counted with a TorchDispatchMode: every ATen operator that reaches a backend kernel (autograd's
backward ops and the optimizer's included, composite ops counted by what they decompose into;
views, aliases and reads of host scalars left out: they launch nothing),
over a few training steps of each of the default study's tasks, read out on the features of
its largest scale (cpu_l: random features of its shape; the ground truth of a small rendered
corpus), its seeds and batch sizes. AdamW runs its `foreach` path, as it does on CUDA.
Counted again with torch's profiler, which records the calls as made (a composite call once, not
its parts): the ATen calls with no ATen call above them, less the same views, aliases and host
reads. The two counts put different ratios on the same code (docs/research/timings.md).

`--quick` counts two steps of depth and tracking at a batch of QUICK_BATCH clips (the same
calls per step as at the study's batch of 16, a quarter of the arithmetic), on a corpus curated
in this process.

Run: python benchmarks/readout_aten_calls.py [--quick]
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import harness
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fourds.config import load_params
from fourds.data.corpus import WorldSpec, write_corpus
from fourds.data.curate import curate
from fourds.data.shards import load_split
from fourds.evaluate.batched_seeds import train_batched
from fourds.evaluate.readout import build_readout, train_readout, training_optimizer
from fourds.evaluate.tasks import ClipGeometry, TaskContext, make_task

NAME = "readout_aten_calls"
SCALE = "cpu_l"
TARGET = 3.0  # issue 75: ATen calls per step per seed cut at least 3x
QUICK_BATCH = 4


# Calls that launch no kernel on a GPU: a view or alias of a tensor's memory, and the read of a
# host scalar (AdamW's step counts live on the host)
NO_KERNEL = {"aten.detach", "aten.alias", "aten._unsafe_view", "aten._local_scalar_dense"}


class CountCalls(TorchDispatchMode):
    """Counts, by name, the ATen operators dispatched while it is active that would launch a
    kernel on a GPU (no views, aliases or host scalar reads)."""

    def __init__(self):
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        if not (func.is_view or name in NO_KERNEL):
            self.calls[name] += 1
        return func(*args, **(kwargs or {}))


def profiled(step) -> int:
    """The ATen calls `step()` makes as torch's profiler records them: those with no ATen call
    above them, less views, aliases and host reads (NO_KERNEL, `item`)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        step()
    return sum(1 for event in profiler.events() if _launches_at_top(event))


def _launches_at_top(event) -> bool:
    """Whether a profiler event is an ATen call with no ATen caller that would launch a kernel."""
    if not event.name.startswith("aten::"):
        return False
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return False
        parent = parent.cpu_parent
    return _launches_kernel(event.name.removeprefix("aten::"))


@functools.cache
def _launches_kernel(name: str) -> bool:
    """Whether ATen operator `name` would launch a kernel: not a view of any overload, not in
    NO_KERNEL, not `item` (the host read the profiler records above _local_scalar_dense)."""
    packet = getattr(torch.ops.aten, name)
    views = any(getattr(packet, overload).is_view for overload in packet.overloads())
    return not (views or f"aten.{name}" in NO_KERNEL | {"aten.item"})


def rendered_split(root: Path, params) -> dict:
    """The readout-train clips of a small rendered corpus, curated as the study curates."""
    videos = {"pretrain": 1, "readout-train": 2, "readout-test": 1}
    frames = params.curate.pretrain_frames
    spec = WorldSpec(seed=3, frames=frames, size=params.curate.resolution, fps=12, videos=videos)
    write_corpus(root / "corpus", spec)
    curate(root / "corpus", root / "curated", params.curate)
    return load_split(root / "curated" / "shards", "readout-train")


def counted(step) -> tuple[int, collections.Counter[str]]:
    """The ATen calls `step()` makes: their number and the calls by name."""
    with CountCalls() as counter:
        step()
    return sum(counter.calls.values()), counter.calls


def foreach_optimizer(readout, encoder, spec) -> torch.optim.AdamW:
    """The stage's optimizer (training_optimizer) on its CUDA path: `foreach`."""
    optimizer = training_optimizer(readout, encoder, spec)
    for group in optimizer.param_groups:
        group["foreach"] = True
    return optimizer


def task_counts(task_name: str, params, split: dict, steps: int) -> dict:
    """ATen calls per step per seed of one task's readout, seeds alone and batched."""
    spec = params.readout_spec(SCALE, task_name, "frozen")
    spec = dataclasses.replace(spec, own=dataclasses.replace(spec.own, steps=steps))
    model = spec.pretraining.model
    grid = (params.curate.clip_frames // model.tubelet[0],) + tuple(
        params.curate.resolution // size for size in model.tubelet[1:]
    )
    frames = params.curate.clip_frames
    encoder = SimpleNamespace(cfg=SimpleNamespace(width=model.width), grid=grid, frames=frames)
    geometry = ClipGeometry(model.tubelet, grid, frames, params.curate.resolution)
    task = make_task(task_name, geometry, TaskContext(spec.own.options, (split,)))
    targets = task.targets(split)
    clips = len(split["video"])
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(clips, grid[0] * grid[1] * grid[2], model.width, generator=generator)

    def features(index: torch.Tensor) -> torch.Tensor:
        return table[index]

    seeds = list(range(spec.shared.seed, spec.shared.seed + spec.own.seeds))
    cpu = torch.device("cpu")

    def readouts() -> list:
        built = []
        for seed in seeds:
            torch.manual_seed(seed)
            built.append(build_readout(encoder, task, spec, targets))
        return built

    def alone():
        runs = [(readout, foreach_optimizer(readout, encoder, spec)) for readout in readouts()]

        def train() -> None:
            for seed, (readout, optimizer) in zip(seeds, runs, strict=True):
                train_readout(readout, optimizer, task, features, targets, spec, cpu, seed)

        return train

    def batched():
        built = readouts()
        optimizer = foreach_optimizer(built[0], encoder, spec)
        return lambda: train_batched(built, optimizer, seeds, task, features, targets, spec, cpu)

    per_step = len(seeds) * steps
    results = {}
    for way, prepare in (("alone", alone), ("batched", batched)):
        run = prepare()  # readouts and optimizers built outside the count
        started = time.perf_counter()
        total, calls = counted(run)
        seconds = time.perf_counter() - started
        results[way] = {
            "calls_per_step_per_seed": round(total / per_step, 1),
            "profiler_calls_per_step_per_seed": round(profiled(prepare()) / per_step, 1),
            "seconds": round(seconds, 2),
            "top_calls": dict(calls.most_common(8)),
        }
    alone, batched = results["alone"], results["batched"]
    cut = alone["calls_per_step_per_seed"] / batched["calls_per_step_per_seed"]
    key = "profiler_calls_per_step_per_seed"
    return {
        "seeds": len(seeds),
        "batch_size": spec.own.batch_size,
        "head": task.head,
        **results,
        "cut": round(cut, 2),
        "profiler_cut": round(alone[key] / batched[key], 2),
    }


def quick_params(params):
    """`params` for --quick: every readout at a batch of QUICK_BATCH clips, and the corpus
    curated in this process (curate.workers 0: the same shards, without worker processes that
    each import torch again)."""
    readouts = {
        task: dataclasses.replace(each, batch_size=QUICK_BATCH)
        for task, each in params.readouts.items()
    }
    curate = dataclasses.replace(params.curate, workers=0)
    return dataclasses.replace(params, readouts=readouts, curate=curate)


def main() -> None:
    args = harness.parse_args(__doc__.splitlines()[0])
    started = time.perf_counter()
    params = load_params(harness.REPO / "params.yaml")
    if args.quick:
        params = quick_params(params)
    steps = 2 if args.quick else 10
    tasks = ("depth", "tracking") if args.quick else params.readout.tasks
    with tempfile.TemporaryDirectory() as folder:
        split = rendered_split(Path(folder), params)
        results = {task: task_counts(task, params, split, steps) for task in tasks}
    worst = min(each["cut"] for each in results.values())
    for task, each in results.items():
        print(
            f"{task:15s} alone {each['alone']['calls_per_step_per_seed']:7.1f}  batched "
            f"{each['batched']['calls_per_step_per_seed']:7.1f}  cut {each['cut']:.2f}x  "
            f"(profiler: {each['profiler_cut']:.2f}x)"
        )
    summary = {
        "tasks": results,
        "smallest_cut": worst,
        "meets_target": worst >= TARGET,
        "smallest_profiler_cut": min(each["profiler_cut"] for each in results.values()),
    }
    config = {"scale": SCALE, "steps": steps, "quick": args.quick, "target_cut": TARGET}
    harness.write_result(NAME, args.out, torch.device("cpu"), config, summary, started)


if __name__ == "__main__":
    main()
