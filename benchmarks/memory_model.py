"""Memory model check: the peak memory `fourds.plan.memory` predicts against measured peaks.

Each case runs real training steps with the pretrain loop's own step
(`fourds.train.step.train_step`: gradients cleared, the uint8 batch into the model, forward,
backward, gradient clipping, `fourds.train.optim.adamw`), three steps so that the peak includes
last step's prediction and the AdamW moments, and compares the peak with `memory_per_device`
for the same scale, batch, precision and activation checkpointing.

Cases (configs composed from experiments/ as `fourds params` does):

- one process: the smoke ladder (batch 8) and the embedded ladder (batch 16), MAE-ST decoder;
  4ds_s and 4ds_b at batch 2 (16x224x224, 95% masking, query decoding), sdpa and fp32 on the
  CPU instead of the ladder's xformers and bf16, and 4ds_s in bf16 under autocast (as the stage
  runs bf16 in one process); each with activation checkpointing off and on;
- two processes, FSDP2 over gloo (`fourds.train.parallelize`, as torchrun runs
  the stage): the embedded ladder (8 clips per process) and 4ds_s (2 per process) in fp32, and
  cpu_l and 4ds_s with the bf16 mixed-precision policy (CPU bf16 kernels).

The measured figure is the peak of bytes allocated, as on a GPU (torch.cuda.max_memory_allocated
there). The CPU has no allocator statistics, so the steps run under torch.profiler with
profile_memory=True, which reports every allocation and free of PyTorch's CPU allocator with its
pointer and size; replaying them in time order gives the bytes allocated at every moment, and
the parameters' storage, the only memory held when the steps begin, is added (measured from the
tensors themselves: FSDP2's padded local shards). Two corrections keep the replay exact where
the profiler cannot see a free: gloo releases buffers on its own worker threads, which the
profiler does not trace, so a pointer allocated again counts as freed before, and a
collective's own buffers (the reduce-scatter's copy of its input) count as freed when the
step's backward pass ends (FSDP has waited for every reduce-scatter by then). The figure is the
largest over the processes (rank 0, which holds whole any parameter of one row, such as the
positional embeddings, is the busiest).

Not counted, on either side: Python objects, memory outside PyTorch's allocator (gloo's own
buffers), the loader's prefetched batches. Measured but not modelled, CPU only: kernel
workspaces (the backward pass of the tubelet convolution allocates oneDNN scratch of about one
fp32 clip) and the per-parameter AdamW's temporaries (sqrt and division of each parameter, the
previous parameter's denominator kept: about three of the largest parameter; fused AdamW on a
GPU allocates none). Each process runs one torch thread (per-thread scratch grows with the
thread count).

`--quick` measures smoke_s twice: in one process with activation checkpointing, and sharded
over two processes without.

Run: python benchmarks/memory_model.py [--quick]
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import harness
import setups
import torch
import torch.distributed as dist
import torch.multiprocessing
from torch import nn
from torch._C._profiler import _EventType
from torch.distributed.tensor import DTensor
from torch.profiler import ProfilerActivity, profile, record_function

from fourds.config import Params
from fourds.models.factory import scale_mae
from fourds.models.mae import MaskedAutoencoder
from fourds.plan.memory import StepSetup, memory_per_device
from fourds.train.distributed import DistEnv
from fourds.train.optim import adamw
from fourds.train.parallelize import ParallelPlan, parallelize
from fourds.train.step import StepRecipe, train_step

NAME = "memory_model"
TARGET = 0.15  # the largest relative error the model may have
STEPS = 3
MIB = 2**20
STEP_REGION, BACKWARD_REGION = "memory_model::step", "memory_model::backward"


@dataclasses.dataclass(frozen=True)
class Case:
    """One measurement: a ladder scale trained on `clips` clips per step in `processes` processes.

    overrides: `fourds params` overrides that compose the ladder (and pin CPU runtime settings).
    """

    scale: str
    overrides: tuple[str, ...]
    clips: int
    processes: int
    precision: str
    checkpointing: bool

    @property
    def label(self) -> str:
        ckpt = "act. ckpt" if self.checkpointing else "no act. ckpt"
        setting = "1 process" if self.processes == 1 else f"FSDP2 x{self.processes} (gloo)"
        return f"{self.scale}, {setting}, {self.precision}, {ckpt}"

    @property
    def clips_per_process(self) -> int:
        return self.clips // self.processes

    def params(self) -> Params:
        return compose(*self.overrides, f"pretrain.precision={self.precision}")

    def setup(self, on_gpu: bool) -> StepSetup:
        setup = StepSetup.from_spec(self.params().pretraining(self.scale), on_gpu)
        return dataclasses.replace(setup, activation_checkpointing=self.checkpointing)


@functools.cache
def compose(*overrides: str) -> Params:
    """`setups.compose_ladder`, composed once per set of overrides."""
    return setups.compose_ladder(*overrides)


def build_model(case: Case, device: torch.device, env: DistEnv) -> MaskedAutoencoder:
    """The MAE as the pretrain stage builds it (fourds.train.parallelize): seeded, sharded
    with FSDP2 when env is."""
    params = case.params()
    plan = ParallelPlan(case.checkpointing, False, case.precision, env.sharded)
    return parallelize(lambda: scale_mae(params.pretraining(case.scale)), plan, device, 0)


def prepare(case: Case, device: torch.device, env: DistEnv) -> tuple[nn.Module, Callable]:
    """The model and AdamW as the pretrain stage makes them, and a function that runs one step
    of the pretrain loop on fresh random clips."""
    params = case.params()
    model = build_model(case, device, env)
    optimizer = adamw(model, params.pretrain.weight_decay, params.pretrain.lr, device)
    clips = case.clips_per_process
    shape = (clips, params.curate.clip_frames) + (params.curate.resolution,) * 2
    generator = torch.Generator().manual_seed(env.rank)
    autocast = torch.autocast(
        device.type, torch.bfloat16, enabled=case.precision == "bf16" and not env.sharded
    )

    def step() -> None:
        with record_function(STEP_REGION):
            video = torch.randint(0, 256, (*shape, 3), dtype=torch.uint8, generator=generator)
            keep_index, mask = model.sample_masks(clips, generator)
            # the whole step counts as backward for the inferred frees of collective buffers
            with record_function(BACKWARD_REGION):
                train_step(
                    model, optimizer, video.to(device), keep_index.to(device), mask.to(device),
                    StepRecipe.whole_batch(clips, params.pretrain.grad_clip, autocast),
                )  # fmt: skip

    return model, step


def parameter_bytes(model: nn.Module) -> int:
    """Bytes of this process's parameter storage (FSDP2: its padded local shards)."""
    storages = {}
    for parameter in model.parameters():
        local = parameter.to_local() if isinstance(parameter, DTensor) else parameter
        storage = local.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def _tree(events: list) -> Iterator[tuple[object, tuple[str, ...]]]:
    """Every node of the profiler's event tree with the names of the ops around it."""
    stack = [(event, ()) for event in events]
    while stack:
        node, path = stack.pop()
        yield node, path
        stack.extend((child, (*path, node.name)) for child in node.children)


def peak_allocated(prof: profile) -> dict:
    """Replay the profiler's allocation events: the peak of bytes allocated while profiling.

    Returns {"peak_bytes", "at": the ops running at the peak, "unseen_frees": allocations
    whose free was inferred (see the module docstring)}.
    """
    allocations, backward_ends = [], []
    for node, path in _tree(prof.profiler.kineto_results.experimental_event_tree()):
        if node.tag == _EventType.Allocation:
            fields = node.extra_fields
            in_collective = any(name.startswith("c10d::") for name in path)
            allocations.append(
                (node.start_time_ns, fields.alloc_size, fields.ptr, in_collective, path)
            )
        elif node.name == BACKWARD_REGION:
            backward_ends.append(node.end_time_ns)
    allocations.sort(key=lambda allocation: allocation[0])
    backward_ends.sort()
    live: dict[int, tuple[int, bool]] = {}
    total = peak = unseen = 0
    at: tuple[str, ...] = ()
    for when, size, pointer, in_collective, path in allocations:
        while backward_ends and backward_ends[0] <= when:
            backward_ends.pop(0)
            for stale in [p for p, (_, collective) in live.items() if collective]:
                total -= live.pop(stale)[0]
                unseen += 1
        if size > 0:
            if pointer in live:  # reused: its free happened where the profiler could not see
                total -= live.pop(pointer)[0]
                unseen += 1
            live[pointer] = (size, in_collective)
            total += size
        elif pointer in live:
            total -= live.pop(pointer)[0]
        if total > peak:
            peak, at = total, path
    return {"peak_bytes": peak, "at": list(at[-4:]), "unseen_frees": unseen}


def measure(case: Case, env: DistEnv) -> dict:
    """The peak bytes allocated in this process while it runs `STEPS` steps of `case`.

    On the CPU: the parameters' storage (all that is allocated when the steps begin, apart from
    what building left for the garbage collector) plus the replayed peak of the steps.
    """
    device = harness.default_device()
    model, step = prepare(case, device, env)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(STEPS):
            step()
        return {"peak_bytes": torch.cuda.max_memory_allocated(device), "at": [], "unseen_frees": 0}
    held = parameter_bytes(model)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for _ in range(STEPS):
            step()
    replay = peak_allocated(prof)
    return {**replay, "peak_bytes": held + replay["peak_bytes"]}


def measure_single(case: Case) -> dict:
    """`measure` in this (freshly spawned) process, on one thread like each sharded rank."""
    torch.set_num_threads(1)
    return measure(case, DistEnv())


def _rank(rank: int, case: Case, rendezvous: str, out: str) -> None:
    torch.set_num_threads(1)  # one core per process on this machine
    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=case.processes)
    try:
        result = measure(case, DistEnv(rank, case.processes))
    finally:
        dist.destroy_process_group()
    Path(out, f"rank{rank}.json").write_text(json.dumps(result))


def measure_sharded(case: Case) -> list[dict]:
    """`measure` on every rank of a `case.processes`-process gloo job (spawned here)."""
    with tempfile.TemporaryDirectory() as folder:
        rendezvous = f"file://{folder}/rendezvous"
        torch.multiprocessing.spawn(
            _rank, args=(case, rendezvous, folder), nprocs=case.processes, join=True
        )
        return [
            json.loads(Path(folder, f"rank{rank}.json").read_text())
            for rank in range(case.processes)
        ]


def compare(case: Case, on_gpu: bool) -> dict:
    """Measure `case` and put the prediction beside it."""
    if case.processes == 1:
        ranks = [harness.run_in_fresh_process(measure_single, case)]
    else:
        ranks = measure_sharded(case)
    measured = max(rank["peak_bytes"] for rank in ranks)
    predicted = memory_per_device(case.setup(on_gpu), case.processes, case.clips_per_process)
    error = predicted.peak / measured - 1.0
    return {
        "case": case.label,
        "scale": case.scale,
        "processes": case.processes,
        "clips_per_process": case.clips_per_process,
        "precision": case.precision,
        "activation_checkpointing": case.checkpointing,
        "predicted_peak_mib": round(predicted.peak / MIB, 2),
        "measured_peak_mib": round(measured / MIB, 2),
        "relative_error": round(error, 4),
        "within_target": abs(error) <= TARGET,
        "predicted_phase": predicted.peak_phase,
        "predicted_mib": {
            "state": round(predicted.state / MIB, 2),
            "gathered": round(predicted.gathered / MIB, 2),
            "batch": round(predicted.batch / MIB, 2),
            "activations": round(predicted.activations / MIB, 2),
            "phases": {name: round(value / MIB, 2) for name, value in predicted.phases.items()},
        },
        "measured_per_rank_mib": [round(rank["peak_bytes"] / MIB, 2) for rank in ranks],
        "measured_at": ranks[0]["at"],
        "unseen_frees_per_rank": [rank["unseen_frees"] for rank in ranks],
    }


def cases(quick: bool) -> list[Case]:
    """The cases to measure (see the module docstring); --quick: smoke_s only, once in one
    process with activation checkpointing and once sharded over two without (each setting
    measured once: every case starts processes that import torch)."""
    smoke, embedded = ("ladder=smoke",), ()
    paper = ("ladder=4ds", "runtime=cpu")
    both = (False, True)
    if quick:
        return [
            Case("smoke_s", smoke, 8, 1, "fp32", True),
            Case("smoke_s", smoke, 8, 2, "fp32", False),
        ]
    single = [
        Case(s, smoke, 8, 1, "fp32", c) for s in ("smoke_s", "smoke_m", "smoke_l") for c in both
    ]
    embedded_scales = compose(*embedded).ladder.scales  # as benchmarks/pretrain_step.py
    single += [Case(s, embedded, 16, 1, "fp32", c) for s in embedded_scales for c in both]
    single += [Case(s, paper, 2, 1, "fp32", c) for s in ("4ds_s", "4ds_b") for c in both]
    single += [Case("4ds_s", paper, 2, 1, "bf16", c) for c in both]  # autocast
    sharded = [Case(s, embedded, 16, 2, "fp32", c) for s in embedded_scales for c in both]
    sharded += [Case("4ds_s", paper, 4, 2, "fp32", c) for c in both]
    sharded += [Case("cpu_l", embedded, 16, 2, "bf16", c) for c in both]
    sharded += [Case("4ds_s", paper, 4, 2, "bf16", c) for c in both]
    return single + sharded


def main() -> None:
    started = time.perf_counter()
    args = harness.parse_args(__doc__.splitlines()[0])
    device = harness.default_device()
    on_gpu = device.type == "cuda"
    rows = []
    for case in cases(args.quick):
        if on_gpu and case.processes > 1:
            continue  # NCCL needs a GPU per process
        row = compare(case, on_gpu)
        rows.append(row)
        print(
            f"{row['case']}: predicted {row['predicted_peak_mib']} MiB, measured "
            f"{row['measured_peak_mib']} MiB ({row['relative_error']:+.1%})",
            flush=True,
        )
    errors = [abs(row["relative_error"]) for row in rows]
    results = {
        "metric": "peak bytes allocated during the steps, MiB: replayed from torch.profiler "
        "allocation events on the CPU, torch.cuda.max_memory_allocated on a GPU",
        "target_relative_error": TARGET,
        "all_within_target": all(row["within_target"] for row in rows),
        "largest_relative_error": round(max(errors), 4),
        "mean_relative_error": round(sum(errors) / len(errors), 4),
        "cases": rows,
    }
    config = {
        "quick": args.quick,
        "steps_per_case": STEPS,
        "step": "fourds.train.step.train_step: zero_grad, uint8 batch into the model, forward, "
        "backward, clip_grad_norm_, fourds.train.optim.adamw",
        "params_source": "experiments/ composed as `fourds params` (smoke, embedded, and "
        "ladder=4ds with runtime=cpu: sdpa attention); precision per case",
        "data": "random uint8 clips and masks drawn per step",
        "sharded": "FSDP2 over gloo, one thread per process; prediction for rank 0 of N, "
        "measurement the largest over ranks",
        "torch_threads_per_process": 1,
        "model_environment": {"on_gpu": on_gpu, "cpu_count": os.cpu_count()},
    }
    harness.write_result(NAME, args.out, device, config, results, started)


if __name__ == "__main__":
    main()
