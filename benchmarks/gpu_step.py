"""The 4ds ladder's pretraining step on one GPU, against the same chip's measured ceilings.

One process measures, in this order (the most wanted first, so that a time limit cuts the least
wanted):

1. the ceilings: an 8192^3 bf16 matrix product (TFLOP/s) and a 2 GiB device-to-device copy
   (TB/s, bytes read plus bytes written), each the median of timed repeats after warm-up;
2. cases, each a model of the ladder (`fourds params ladder=4ds`: bf16 autocast, fused AdamW,
   gradient clipping 1.0, activation checkpointing as the ladder pins it) at one per-GPU batch:
   - "model": `train_step` on uint8 video already on the GPU, masks drawn ahead;
   - "step": the pretraining loop's step (`step_on_batch`): a pinned host batch (video, views,
     masks) copied on the loader's stream (`CopyToDevice`), crop, resize and flip on the GPU,
     then `train_step`;
   first compiled as the ladder runs (each block, the pixel loss and, in "step", the crop:
   `pretrain.compile`) at 4ds_l and 4ds_b batch 128, then eager: 4ds_b batch 128 (model and
   step), 4ds_l 128 and 64, 4ds_b at the per-GPU batches of the ladder's global batch on 32
   and 256 GPUs, sdpa and (where `probe` passes) xformers;
3. profiles of three compiled steps (4ds_b batch-128 step, 4ds_l batch-128 model): the GPU's
   busy fraction (the union of kernel and copy intervals over the wall time), host
   synchronisations and copies per step, the operators with the most device time;
4. the loader: clips/s from memory-mapped pretrain shards with 1 and with the ladder's
   loader_workers threads (benchmarks/loader_throughput.py's shards and drain), against the
   clips/s the measured 4ds_b batch-128 step consumes.

Each case appends one JSON line to `cases.jsonl` as it finishes, and `summary.json` is
rewritten (atomically) after every part, so a run stopped by its time limit keeps what finished:

    {"device", "torch", "commit", "dirty", "gemm_tflops", "copy_tb_s",
     "cases": [{"scale", "batch", "what", "compile", "attention", "ms", "tflops", "peak_mib",
                "host_ms"}],
     "profile", "loader", "skipped"}

`tflops` is the project's FLOP count (fourds.models.flops.training_flops_per_clip) times the
batch over the step time. `ms` is the mean step time of `steps` consecutive steps (events around
the run, no synchronisation inside it, so a copy may overlap the step before), the median of
`rounds` such runs, after warm-up steps (which include compilation).

`--quick` runs the same code on whatever device there is (the CPU here) with a 2-block width-64
encoder on 4x32x32 clips, fp32, no compile, the first three eager cases and the profiles at
QUICK_BATCH clips, a tiny loader: a smoke test (seconds),
written to results/quick/gpu. `--budget-s` skips the cases that would start after that many
seconds. On a GPU machine without network access (torch there, no DVC, Hydra or PyAV needed),
see benchmarks/README.md for the wheels to carry and the command.

Run: python benchmarks/gpu_step.py [--quick] [--out DIR] [--budget-s 400]
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness
import numpy as np
import setups
import torch

from fourds.config import Params
from fourds.data.augment import ClipSampler
from fourds.data.segments import SegmentStore
from fourds.models.attention import probe
from fourds.models.factory import scale_mae
from fourds.models.flops import training_flops_per_clip
from fourds.train.loader import ClipExample, CopyToDevice, collate
from fourds.train.optim import adamw
from fourds.train.parallelize import ParallelPlan, parallelize
from fourds.train.step import StepRecipe, step_on_batch, train_step, view_crop

MIB = 2**20
QUICK_BATCH = 4  # --quick: the clips of every case and profile


@dataclasses.dataclass(frozen=True)
class Case:
    """One measured configuration."""

    scale: str
    batch: int
    what: str  # "model" or "step"
    compile: bool = False
    attention: str = "sdpa"

    @property
    def name(self) -> str:
        compiled = "compiled" if self.compile else "eager"
        return f"{self.scale} b{self.batch} {self.what} {self.attention} {compiled}"


def ladder_cases(params: Params, attention: list[str]) -> list[Case]:
    """The cases of a full run, most wanted first: the ladder's compiled step, then eager
    (each region's compile measured against it). The per-GPU batches on 32 and 256 GPUs are
    the ladder's global batch divided among them."""
    per_gpu = [params.pretrain.batch_size // gpus for gpus in (32, 256)]
    compiled = [Case(scale, 128, what, compile=True) for scale in ("4ds_l", "4ds_b")
                for what in ("model", "step")]  # fmt: skip
    return [
        *compiled,  # as the ladder runs (pretrain.compile: true)
        Case("4ds_b", 128, "model"),
        Case("4ds_b", 128, "step"),
        Case("4ds_l", 128, "model"),
        Case("4ds_l", 64, "model"),
        *(Case("4ds_b", batch, "model") for batch in per_gpu),
        Case("4ds_l", 128, "step"),
        *(Case("4ds_b", 128, "model", attention=other) for other in attention if other != "sdpa"),
    ]


def quick_params(params: Params) -> Params:
    """`params` with every scale the tiny encoder (benchmarks/setups.TINY) on its 4x32x32
    clips, fp32: the full run's code on shapes a CPU runs in milliseconds."""
    tiny = setups.TINY
    models = {scale: tiny.model for scale in params.models}
    curate = dataclasses.replace(params.curate, clip_frames=tiny.frames, resolution=tiny.size)
    pretrain = dataclasses.replace(params.pretrain, precision="fp32", frame_stride=1)
    return dataclasses.replace(params, models=models, curate=curate, pretrain=pretrain)


# ---------------------------------------------------------------------------------- timing


def time_steps(
    step: Callable[[], Any],
    device: torch.device,
    warmup: int,
    steps: int,
    rounds: int,
    host_ms: list[float] | None = None,
) -> float:
    """Median over `rounds` of the mean milliseconds per step of `steps` consecutive steps
    (CUDA events around the run on a GPU, the host clock elsewhere), after `warmup` steps.

    host_ms: on a GPU, receives per round the host's milliseconds issuing the round's first
    step onto an idle GPU (the host clock around the call, no wait for the GPU): an upper
    bound of the host's own time per step (a step that queues more kernels than the driver
    holds waits inside for the GPU). Well under the step's time, the host does not bound it.
    """
    for _ in range(warmup):
        step()
    harness.synchronize(device)
    means = []
    for _ in range(rounds):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            began = time.perf_counter()
            step()
            issued = time.perf_counter() - began
            for _ in range(steps - 1):
                step()
            end.record()
            end.synchronize()
            means.append(start.elapsed_time(end) / steps)
            if host_ms is not None:
                host_ms.append(issued * 1000)
        else:
            began = time.perf_counter()
            for _ in range(steps):
                step()
            means.append((time.perf_counter() - began) * 1000 / steps)
    return statistics.median(means)


def gemm_tflops(device: torch.device, size: int, repeats: int) -> float:
    """bf16 (fp32 on the CPU) [size, size] @ [size, size] on random data: TFLOP/s, the median
    of `repeats` products after three warm-up ones."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    ms = time_steps(lambda: a @ b, device, warmup=3, steps=1, rounds=repeats)
    return 2 * size**3 / (ms / 1000) / 1e12


def copy_tb_s(device: torch.device, nbytes: int, repeats: int) -> float:
    """A device-to-device copy of `nbytes`: TB/s counting the bytes read and written."""
    source = torch.randint(0, 255, (nbytes,), dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    ms = time_steps(lambda: target.copy_(source), device, warmup=3, steps=1, rounds=repeats)
    return 2 * nbytes / (ms / 1000) / 1e12


# ---------------------------------------------------------------------------------- one case


def build(params: Params, case: Case, device: torch.device) -> tuple[torch.nn.Module, Any]:
    """The scale's MAE and AdamW as the pretrain stage builds them (fourds.train.parallelize,
    fourds.train.optim.adamw), unsharded, with the case's compile and attention."""
    spec = params.pretraining(case.scale)
    pretrain = dataclasses.replace(spec.pretrain, compile=case.compile)
    spec = dataclasses.replace(spec, attention=case.attention, pretrain=pretrain)
    plan = ParallelPlan.from_spec(spec, sharded=False)
    model = parallelize(lambda: scale_mae(spec), plan, device, params.pretrain.seed)
    optimizer = adamw(model, params.pretrain.weight_decay, params.pretrain.lr, device)
    return model, optimizer


def host_batch(params: Params, model: torch.nn.Module, batch: int, pin: bool) -> dict:
    """A loader batch as the loader makes it (fourds.train.loader.collate): random uint8
    windows, views drawn by the ladder's ClipSampler, masks of the model; pinned for a GPU."""
    cfg, curate = params.pretrain, params.curate
    rng = np.random.default_rng(0)
    sampler = ClipSampler(curate.clip_frames, 1, cfg.crop_scale, cfg.crop_aspect)
    size = curate.resolution
    segment = rng.integers(0, 256, (curate.clip_frames, size, size, 3), dtype=np.uint8)
    generator = torch.Generator().manual_seed(0)
    examples = []
    for _ in range(batch):
        window, view = sampler(segment, rng)
        keep_index, mask = model.sample_masks(1, generator)
        examples.append(
            {"video": window, "view": view, "keep_index": keep_index[0], "mask": mask[0]}
        )
    return collate(examples, pin_memory=pin)


def case_step(
    params: Params, case: Case, model: torch.nn.Module, optimizer: Any, device: torch.device
) -> Callable[[], torch.Tensor]:
    """One step of the case: "model" trains on a batch already on the device (two sets of masks
    in turns), "step" copies the pinned host batch and runs the loop's `step_on_batch`."""
    cuda = device.type == "cuda"
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=cuda)
    crop = view_crop(device, case.compile)
    recipe = StepRecipe.whole_batch(case.batch, params.pretrain.grad_clip, autocast, crop)
    batch = host_batch(params, model, case.batch, pin=cuda)
    if case.what == "step":
        copy = CopyToDevice(device) if cuda else dict

        def full_step() -> torch.Tensor:
            return step_on_batch(model, optimizer, copy(batch), recipe)

        return full_step
    video = batch["video"].to(device)
    masks = itertools.cycle(
        [
            tuple(part.to(device) for part in model.sample_masks(case.batch, torch.Generator()))
            for _ in range(2)
        ]
    )

    def model_step() -> torch.Tensor:
        keep_index, mask = next(masks)
        return train_step(model, optimizer, video, keep_index, mask, recipe)

    return model_step


def prepared_step(params: Params, case: Case, device: torch.device) -> Callable[[], torch.Tensor]:
    """The case's model and optimizer built (`build`), and its step (`case_step`)."""
    model, optimizer = build(params, case, device)
    return case_step(params, case, model, optimizer, device)


def measure_case(params: Params, case: Case, device: torch.device, quick: bool) -> dict:
    """Build the case's model, time its step, and report the step time, achieved TFLOP/s (the
    project's FLOP count), the peak of allocated GPU memory and the host's time issuing a step
    (`time_steps`)."""
    step = prepared_step(params, case, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    warmup = 2 if quick else (6 if case.compile else 3)
    host_ms: list[float] = []
    ms = time_steps(step, device, warmup, steps=2 if quick else 5, rounds=3, host_ms=host_ms)
    flops = training_flops_per_clip(
        params.model(case.scale), params.mae, params.curate.clip_frames, params.curate.resolution
    )
    peak = torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else None
    return {
        **dataclasses.asdict(case),
        "ms": round(ms, 3),
        "tflops": round(flops * case.batch / (ms / 1000) / 1e12, 2),
        "peak_mib": None if peak is None else round(peak),
        "host_ms": round(statistics.median(host_ms), 3) if host_ms else None,
        "clips_per_s": round(case.batch / (ms / 1000), 1),
        "flops_per_clip": flops,
    }


# ---------------------------------------------------------------------------------- profile


def profile_case(params: Params, case: Case, device: torch.device, steps: int) -> dict:
    """Profile `steps` steps after warm-up: the busy fraction of the GPU (the union of kernel
    and copy intervals over the profiled wall time), and per step the host synchronisations
    (CUDA runtime calls that wait, and tensor reads on the host) and the copies by kind."""
    step = prepared_step(params, case, device)
    for _ in range(3):
        step()
    harness.synchronize(device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        began = time.perf_counter()
        for _ in range(steps):
            step()
        harness.synchronize(device)
        wall_us = (time.perf_counter() - began) * 1e6
    counts = profile_counts(profiler.events(), wall_us, steps)
    return {"case": case.name, "steps": steps, **counts, "top": top_kernels(profiler, steps)}


def top_kernels(profiler: torch.profiler.profile, steps: int, count: int = 15) -> list[dict]:
    """The `count` operators with the most self time on the device (the CPU when there is no
    GPU): name, milliseconds per step, calls per step."""
    entries = profiler.key_averages()
    on_device = any(getattr(entry, "self_device_time_total", 0) for entry in entries)
    rows = [
        (entry.self_device_time_total if on_device else entry.self_cpu_time_total, entry.key,
         entry.count)
        for entry in entries
    ]  # fmt: skip
    rows.sort(reverse=True)
    return [
        {"name": name[:90], "ms_per_step": round(us / 1000 / steps, 3), "calls": count / steps}
        for us, name, count in rows[:count]
    ]


SYNCHRONISING = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def profile_counts(events: list, wall_us: float, steps: int) -> dict:
    """Busy fraction, synchronisations and copies per step from the profiler's events."""
    intervals, syncs, copies = [], 0, {}
    for event in events:
        name = event.name
        if event.device_type == torch.autograd.DeviceType.CUDA:
            intervals.append((event.time_range.start, event.time_range.end))
            if name.startswith("Memcpy"):
                kind = name.split()[1] if len(name.split()) > 1 else name
                copies[kind] = copies.get(kind, 0) + 1
        elif name in SYNCHRONISING or name in ("aten::_local_scalar_dense", "cudaMemcpy"):
            syncs += 1
    busy, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    return {
        "gpu_busy_fraction": round(busy / wall_us, 3) if intervals else None,
        "host_syncs_per_step": syncs / steps,
        "copies_per_step": {kind: count / steps for kind, count in sorted(copies.items())},
    }


# ---------------------------------------------------------------------------------- loader


def loader_rates(params: Params, quick: bool) -> dict:
    """Clips/s of the pretraining loader from memory-mapped shards with 1 worker thread and
    with pretrain.loader_workers (benchmarks/loader_throughput.py's shards and drain)."""
    import loader_throughput

    cfg, curate = params.pretrain, params.curate
    frames, size, stride = curate.clip_frames, curate.resolution, cfg.frame_stride
    segment_frames, segments, batch, batches = (8, 4, 4, 2) if quick else (64, 16, 16, 8)
    sampler = ClipSampler(frames, stride, cfg.crop_scale, cfg.crop_aspect)
    with torch.device("meta"):
        model = scale_mae(params.pretraining("4ds_b"))
    work_dir = Path(tempfile.mkdtemp(prefix="fourds-gpu-loader-"))
    try:
        loader_throughput.write_shards(work_dir, segments, segment_frames, size, 4)
        example = ClipExample(SegmentStore.open(work_dir), sampler, cfg.seed, model.sample_masks)
        rates = {}
        for workers in dict.fromkeys((1, cfg.loader_workers)):
            cpu: list[float] = []
            loader_throughput.drain(example, workers, 1, batch, cpu)  # warm-up
            began = time.perf_counter()
            loader_throughput.drain(example, workers, batches, batch, cpu)
            rates[f"workers_{workers}"] = {
                "clips_per_s": round(batches * batch / (time.perf_counter() - began), 1),
                "clips_per_cpu_second": round(batches * batch / cpu[-1], 1),
            }
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return {"clip": [frames, size, size, 3], "cores": os.cpu_count(), **rates}


# ---------------------------------------------------------------------------------- output


class Summary:
    """summary.json and cases.jsonl under `out_dir`, written as the run goes."""

    def __init__(self, out_dir: Path, device: torch.device, quick: bool):
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir, self.lines = out_dir, out_dir / "cases.jsonl"
        self.lines.unlink(missing_ok=True)
        git = harness.git_state()
        self.record: dict[str, Any] = {
            "device": harness.describe_device(device).get("gpu", harness.cpu_model()),
            "torch": torch.__version__,
            "commit": git["commit"],
            "dirty": git["dirty"],
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": harness.command_line(),
            "quick": quick,
            "gemm_tflops": None,
            "copy_tb_s": None,
            "cases": [],
            "profile": None,
            "loader": None,
            "skipped": [],
        }

    def set(self, key: str, value: Any) -> None:
        """Set a top-level entry (a ceiling, the profiles, the loader) and write it out."""
        self.record[key] = value
        self._write()

    def add_case(self, result: dict) -> None:
        """Append a measured case to cases.jsonl and the summary."""
        self.record["cases"].append(result)
        with open(self.lines, "a") as handle:
            handle.write(json.dumps(result) + "\n")
        self._write()

    def skip(self, reason: str) -> None:
        """Record something not measured, and why."""
        self.record["skipped"].append(reason)
        self._write()

    def _write(self) -> None:
        """summary.json, atomically (temporary name, then os.replace)."""
        partial = self.out_dir / f".summary.json.partial-{os.getpid()}"
        partial.write_text(json.dumps(self.record, indent=2) + "\n")
        os.replace(partial, self.out_dir / "summary.json")


def free(device: torch.device) -> None:
    """Return cached GPU memory between cases (a case's peak is its own)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main() -> None:
    started = time.perf_counter()

    def add_arguments(parser):
        parser.add_argument(
            "--budget-s",
            type=float,
            default=400.0,
            help="start no case after this many seconds (what started still finishes)",
        )
        parser.add_argument(
            "--only",
            nargs="*",
            default=None,
            help="measure only the cases whose name starts with one of these (e.g. '4ds_b b128')",
        )
        parser.add_argument(
            "--profile",
            nargs="*",
            default=["4ds_b b128 step compiled", "4ds_l b128 model compiled"],
            help="profile these cases (scale, batch, what[, compiled]), e.g. '4ds_l b128 model'",
        )

    args = harness.parse_args(__doc__.splitlines()[0], add_arguments)
    out_dir = args.out / "gpu" if args.out.name in ("results", "quick") else args.out
    device = harness.default_device()
    params = setups.compose_ladder("ladder=4ds")
    if args.quick:
        params = quick_params(params)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    summary = Summary(out_dir, device, args.quick)
    print(f"{summary.record['device']}, torch {torch.__version__}", flush=True)

    ceiling = gemm_tflops(device, 512 if args.quick else 8192, 10)
    summary.set("gemm_tflops", float(f"{ceiling:.4g}"))  # a loaded CPU's is under 0.05
    summary.set("copy_tb_s", round(copy_tb_s(device, 8 * MIB if args.quick else 2**31, 10), 3))
    print(f"ceilings: {summary.record['gemm_tflops']} TFLOP/s, {summary.record['copy_tb_s']} TB/s")

    attention = ["sdpa"]
    xformers_failure = probe("xformers", device)
    if xformers_failure is None:
        attention.append("xformers")
    else:
        summary.skip(f"xformers: {xformers_failure}")
    cases = ladder_cases(params, attention)
    if args.quick:
        cases = [case for case in cases if not case.compile][:3]
    if args.only is not None:
        cases = [case for case in cases if case.name.startswith(tuple(args.only))]
    if args.quick:  # the same cases at QUICK_BATCH clips (--only takes the full run's names)
        cases = [dataclasses.replace(case, batch=QUICK_BATCH) for case in cases]
    for case in cases:
        if time.perf_counter() - started > args.budget_s:
            summary.skip(f"{case.name}: past --budget-s")
            continue
        try:
            result = measure_case(params, case, device, args.quick)
        except Exception as error:  # one failed case (e.g. out of memory) keeps the others
            summary.skip(f"{case.name}: {type(error).__name__}: {error}"[:400])
        else:
            summary.add_case(result)
            print(
                f"{case.name}: {result['ms']} ms, {result['tflops']} TFLOP/s, "
                f"{result['peak_mib']} MiB",
                flush=True,
            )
        free(device)

    profiles = []
    for name in args.profile:
        scale, batch, what, *compiled = name.split()
        profiled = Case(
            scale,
            QUICK_BATCH if args.quick else int(batch.removeprefix("b")),
            what,
            compile=compiled == ["compiled"] and not args.quick,
        )
        try:
            profiles.append(profile_case(params, profiled, device, 3))
        except Exception as error:  # the cases measured stay written
            summary.skip(f"profile {name}: {type(error).__name__}: {error}"[:400])
        else:
            summary.set("profile", profiles)
            print(f"profile: {json.dumps(profiles[-1])}", flush=True)
        free(device)
    loader = loader_rates(params, args.quick)
    step = next(
        (c for c in summary.record["cases"] if c["scale"] == "4ds_b" and c["what"] == "step"),
        None,
    )
    if step is not None:
        loader["step_consumes_clips_per_s"] = step["clips_per_s"]
        per_core = loader["workers_1"]["clips_per_cpu_second"]
        loader["loader_cores_needed"] = round(step["clips_per_s"] / per_core, 1)
    summary.set("loader", loader)
    print(f"loader: {loader}")
    print(f"wrote {out_dir / 'summary.json'} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
