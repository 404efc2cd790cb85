"""Measurement harness shared by the benchmark scripts.

- `describe_device`: what the numbers were measured on (CPU model, cores, threads, GPU).
- `time_interleaved`: wall time of several variants, run in turns (A, B, A, B, ...), so that
  load from other processes on a shared machine hits every variant alike; each timing records
  how much CPU other processes used meanwhile, and rounds disturbed by them are repeated.
- `measure_peak_memory`: peak memory growth of one piece of work (CUDA allocator peak on a GPU,
  peak resident-set growth on the CPU).
- `run_in_fresh_process`: call a function in a newly spawned interpreter (clean memory peaks).
- `write_result`: the result JSON, written atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import multiprocessing
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from fourds.startup import collector_paused

with collector_paused():  # every benchmark script imports this module first (fourds.startup)
    import torch

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "results"
QUICK_RESULTS = RESULTS / "quick"
MIB = 2**20
QUIET_THRESHOLD = 0.2  # a timing counts as quiet when other processes used < 20% of all CPUs


def parse_args(
    description: str, add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """The command line every benchmark shares: --quick and --out, plus what `add_arguments`
    adds to the parser for one benchmark."""
    parser = argparse.ArgumentParser(description=description)
    if add_arguments is not None:
        add_arguments(parser)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke mode: tiny shapes and few steps (seconds); results go to results/quick/",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results folder (default: benchmarks/results, or benchmarks/results/quick)",
    )
    args = parser.parse_args()
    if args.out is None:
        args.out = QUICK_RESULTS if args.quick else RESULTS
    return args


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock time covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe_device(device: torch.device) -> dict[str, Any]:
    """CPU model, core counts, torch threads, load average and, on a GPU, its name."""
    info: dict[str, Any] = {
        "device": str(device),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "torch_num_threads": torch.get_num_threads(),
        "load_average_1_5_15min": [round(load, 2) for load in os.getloadavg()],
        "memory_total_gib": round(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1
        ),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _busy_ticks() -> tuple[int, int]:
    """(CPU ticks the whole machine spent busy, CPU ticks this process and the children it
    waited for spent), so far."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    with open("/proc/self/stat") as handle:
        own = handle.read().rsplit(")", 1)[1].split()
    return sum(fields[:8]) - idle, sum(int(value) for value in own[11:15])  # [c]utime, [c]stime


def others_cpu_share(before: tuple[int, int], after: tuple[int, int], seconds: float) -> float:
    """Fraction of all CPUs used by other processes between two `_busy_ticks()` readings."""
    ticks = os.sysconf("SC_CLK_TCK") * seconds * (os.cpu_count() or 1)
    others = (after[0] - before[0]) - (after[1] - before[1])
    return min(1.0, max(0.0, others / ticks))


@dataclasses.dataclass
class Timings:
    """Wall times of interleaved variants, round by round, with the load of other processes.

    seconds[name][i] and others[name][i] belong to timed round i; quiet[i] says whether other
    processes used less than QUIET_THRESHOLD of the CPUs during every step of round i.
    """

    seconds: dict[str, list[float]]
    others: dict[str, list[float]]
    quiet: list[bool]

    def used(self, name: str) -> list[float]:
        """The timings that count: the quiet rounds' if there are at least two, else all."""
        quiet = [value for value, ok in zip(self.seconds[name], self.quiet, strict=True) if ok]
        return quiet if len(quiet) >= 2 else self.seconds[name]

    def median(self, name: str) -> float:
        """Median of `used(name)`, in seconds."""
        return statistics.median(self.used(name))

    def paired_ratio(self, numerator: str, denominator: str) -> float:
        """Median over the counted rounds of numerator / denominator (timed in the same round)."""
        pairs = zip(self.used(numerator), self.used(denominator), strict=True)
        return statistics.median(a / b for a, b in pairs)

    def summary(self, name: str) -> dict[str, Any]:
        """JSON-ready: median/min/max of the counted timings, and every round with its load."""
        used = self.used(name)
        return {
            "median_s": round(statistics.median(used), 4),
            "min_s": round(min(used), 4),
            "max_s": round(max(used), 4),
            "rounds_counted": "quiet" if used is not self.seconds[name] else "all",
            "all_s": [round(value, 4) for value in self.seconds[name]],
            "others_cpu_share": [round(value, 2) for value in self.others[name]],
        }


def time_interleaved(
    variants: dict[str, Callable[[], object]],
    device: torch.device,
    warmup: int,
    repeats: int,
) -> Timings:
    """Wall time in seconds of each variant, run in turns.

    Every round runs each variant once, in the order given: `warmup` untimed rounds, then timed
    rounds until `repeats` of them were quiet (other processes used less than QUIET_THRESHOLD
    of the CPUs, read from /proc/stat), but at most 2 * `repeats` timed rounds.
    """
    timings = Timings({name: [] for name in variants}, {name: [] for name in variants}, [])
    for _ in range(warmup):
        for work in variants.values():
            work()
    while sum(timings.quiet) < repeats and len(timings.quiet) < 2 * repeats:
        quiet = True
        for name, work in variants.items():
            synchronize(device)
            ticks, start = _busy_ticks(), time.perf_counter()
            work()
            synchronize(device)
            elapsed = time.perf_counter() - start
            share = others_cpu_share(ticks, _busy_ticks(), elapsed)
            timings.seconds[name].append(elapsed)
            timings.others[name].append(share)
            quiet = quiet and share < QUIET_THRESHOLD
        timings.quiet.append(quiet)
    return timings


def _resident_bytes() -> int:
    """The process's resident set size now, from /proc/self/statm."""
    with open("/proc/self/statm") as handle:
        resident_pages = int(handle.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def measure_peak_memory(
    work: Callable[[], object], device: torch.device
) -> tuple[object, dict[str, Any]]:
    """Run `work()` once and report the peak memory it added on `device`.

    CUDA: torch.cuda.max_memory_allocated() during the work minus memory_allocated() before.
    CPU: there is no allocator peak, so the resident set is used: ru_maxrss (getrusage) after
    the work minus the RSS read from /proc/self/statm just before it. The kernel's peak mark is
    reset first where /proc/self/clear_refs allows it (`peak_reset`); without the reset an
    earlier, higher peak of the process would show, so the figure is only exact with it.

    Returns (what `work` returned, {"metric", "peak_growth_mib", "before_mib", "peak_mib"}):
    the growth, the memory in use just before the work and the peak during it (CPU: RSS; GPU:
    allocated), plus on the CPU `peak_reset`.
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = work()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        return result, {
            "metric": "peak CUDA memory allocated growth (torch.cuda.max_memory_allocated), MiB",
            "peak_growth_mib": round((peak - before) / MIB, 1),
            "before_mib": round(before / MIB, 1),
            "peak_mib": round(peak / MIB, 1),
        }
    peak_reset = _reset_peak_rss()
    before = _resident_bytes()
    result = work()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return result, {
        "metric": "peak RSS growth, MiB",
        "peak_growth_mib": round((peak - before) / MIB, 1),
        "before_mib": round(before / MIB, 1),
        "peak_mib": round(peak / MIB, 1),
        "peak_reset": peak_reset,
    }


def run_in_fresh_process(function: Callable[..., Any], *args: Any) -> Any:
    """`function(*args)` in a newly spawned Python process; returns its (picklable) result.

    `function` must be defined at module level. A fresh process has no memory peak of
    earlier measurements and no tensors of other variants.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def git_state() -> dict[str, Any]:
    """The commit, and whether a tracked file differs from it (untracked files, such as the
    pipeline outputs some benchmarks read from runs/, do not make a run dirty).

    A copy of the tree on another machine (a GPU machine's) names the commit it was copied
    from in the BENCHMARK_GIT_COMMIT variable, and BENCHMARK_GIT_DIRTY ("0" or "1") says
    whether the tree that was copied differed from it (`git status` where it was copied from);
    without BENCHMARK_GIT_DIRTY that is unknown. Its own git state, if any, is not that commit's.
    """
    if "BENCHMARK_GIT_COMMIT" in os.environ:
        dirty = {"0": False, "1": True}.get(os.environ.get("BENCHMARK_GIT_DIRTY", ""))
        return {"commit": os.environ["BENCHMARK_GIT_COMMIT"], "dirty": dirty}

    def git(*command: str) -> str:
        result = subprocess.run(
            ["git", *command], cwd=REPO, capture_output=True, text=True, check=True, timeout=10
        )
        return result.stdout.strip()

    try:
        changed = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(changed)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def command_line() -> str:
    """The command that ran this benchmark, as typed from the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(REPO)
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def write_result(
    name: str,
    out_dir: Path,
    device: torch.device,
    config: dict[str, Any],
    results: dict[str, Any],
    started: float,
    top_level: dict[str, Any] | None = None,
    git: dict[str, Any] | None = None,
) -> Path:
    """Write `<out_dir>/<name>.json` atomically (temporary name, then os.replace).

    Besides `config` and `results` (and `top_level`'s keys, for a file whose readers expect
    them there) it records the command, date, torch and Python versions, the git commit (`git`,
    a `git_state()` taken when what was measured was fixed, e.g. the commit a benchmark cloned;
    else the state now), the device description and the benchmark's own wall time.
    """
    record = {
        **(top_level or {}),
        "benchmark": name,
        "command": command_line(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "git": git or git_state(),
        "device": describe_device(device),
        "config": config,
        "results": results,
        "benchmark_wall_s": round(time.perf_counter() - started, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    partial = out_dir / f".{name}.json.partial-{os.getpid()}"
    try:
        partial.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    print(f"wrote {path}")
    return path
