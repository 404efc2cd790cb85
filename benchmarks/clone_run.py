"""Command lines from a page, run as written in a fresh `git clone` of this repository and timed:
each command's wall seconds, each DVC stage's wall seconds (between DVC's "Running stage"
lines, the last one up to its command's end), each stage's own seconds from the execution record
its run left in runs/, and how much of the CPUs other processes used meanwhile.

The difference between a stage's wall seconds and its record's is its process start (Python,
torch, fourds) and DVC's work around it. Shared by first_run.py and main_job.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import yaml
from harness import REPO, _busy_ticks, git_state, others_cpu_share

STAGE_LINE = re.compile(r"^Running stage '([^']+)'")


@dataclasses.dataclass
class CloneRun:
    """What `run_in_clone` measured."""

    git: dict[str, object]  # harness.git_state() of the repository when it was cloned
    commands: dict[str, float]
    stage_walls: dict[str, float]
    stage_records: dict[str, float]
    others_cpu_share: float

    @property
    def seconds(self) -> float:
        return sum(self.commands.values())

    def results(self) -> dict[str, object]:
        """The timings as a result file records them."""
        in_stages = sum(self.stage_records.get(stage, 0.0) for stage in self.stage_walls)
        return {
            "commands": self.commands,
            "total_seconds": round(self.seconds, 1),
            "stages": len(self.stage_walls),
            "stage_wall_seconds": self.stage_walls,
            "stage_record_seconds": {
                stage: self.stage_records.get(stage) for stage in self.stage_walls
            },
            "sum_stage_wall_seconds": round(sum(self.stage_walls.values()), 1),
            "sum_stage_record_seconds": round(in_stages, 1),
            "others_cpu_share": round(self.others_cpu_share, 3),
        }


def run_timed(
    command: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True
) -> tuple[float, list[tuple[float, str]], int]:
    """Run `command` with bash in `cwd`: its wall seconds, its output lines (each with the
    seconds since the start at which it was printed) and its exit status. With `check` a
    failure stops the benchmark."""
    start = time.perf_counter()
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = [(time.perf_counter() - start, line.rstrip()) for line in process.stdout]
    status = process.wait()
    if check and status != 0:
        tail = "\n".join(line for _, line in lines[-20:])
        raise SystemExit(f"{command!r} failed:\n{tail}")
    return time.perf_counter() - start, lines, status


def stage_walls(lines: list[tuple[float, str]], end: float) -> dict[str, float]:
    """Each stage's wall seconds: from its "Running stage" line to the next one's (the last
    stage's up to `end`)."""
    starts = [(at, match[1]) for at, line in lines if (match := STAGE_LINE.match(line))]
    ends = [at for at, _ in starts[1:]] + [end] if starts else []
    return {stage: round(stop - at, 2) for (at, stage), stop in zip(starts, ends, strict=True)}


def stage_records(clone: Path) -> dict[str, float]:
    """Each stage's own seconds, from the execution records its run left in runs/."""
    found = {}
    for path in sorted(clone.glob("runs/**/execution.yaml")):
        record = yaml.safe_load(path.read_text())
        if "seconds" in record:  # the report's record times no part of its work
            found[record["stage"]] = record["seconds"]
    return found


@contextlib.contextmanager
def fresh_clone(env: dict[str, str] | None = None) -> Iterator[tuple[Path, dict[str, str], dict]]:
    """A fresh clone of this repository in a temporary folder: (its path, the environment its
    commands run in, harness.git_state() of what was cloned). The clone's own src/ comes first
    on the path: its stages run the fourds of the commit cloned, whichever is installed."""
    with tempfile.TemporaryDirectory(prefix="fourds-clone-run-") as folder:
        clone = Path(folder) / "fourds"
        environment = {**os.environ, **(env or {}), "PYTHONPATH": str(clone / "src")}
        cloned = git_state()  # what the clone holds: the commit, and whether a change is left out
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        yield clone, environment, cloned


def run_in_clone(
    commands: list[str],
    env: dict[str, str] | None = None,
    after: tuple[str, ...] = (),
    keep: Path | None = None,
) -> tuple[CloneRun, dict[str, tuple[int, str]]]:
    """Run `commands` one after another in a `fresh_clone`, timed (each printed as it ends),
    then `after` untimed; returns the timings and each `after` command's (exit status,
    output). With `keep` (a folder that does not exist) the clone is copied there at the end,
    its outputs and DVC cache with it."""
    with fresh_clone(env) as (clone, environment, cloned):
        ticks, timed, walls = _busy_ticks(), {}, {}
        for command in commands:
            seconds, lines, _ = run_timed(command, clone, environment)
            timed[command] = round(seconds, 2)
            walls |= stage_walls(lines, seconds)
            print(f"{seconds:8.1f} s  {command}", flush=True)
        quiet = others_cpu_share(ticks, _busy_ticks(), sum(timed.values()))
        print("\n".join(f"{wall:8.1f} s  {stage}" for stage, wall in walls.items()))
        records = stage_records(clone)
        checked = {}
        for command in after:
            _, lines, status = run_timed(command, clone, environment, check=False)
            checked[command] = status, "\n".join(line for _, line in lines)
        if keep is not None:
            shutil.copytree(clone, keep, symlinks=True)
    return CloneRun(cloned, timed, walls, records, quiet), checked
