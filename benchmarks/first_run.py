"""A newcomer's first result: docs/getting-started.md's first block ("A first run, in
minutes"), run as written in a fresh `git clone` of this repository, each command timed, up to
and including `fourds answer` (the lines after it put the workspace back and are not part of
the result).

Where the time goes: each stage's wall time in the experiment (between DVC's "Running stage"
lines, the last one up to the experiment's end) and its own record's seconds (its
execution.yaml: the work inside the stage's process after its start); the difference is the
process start (Python, torch, fourds) and DVC's work around the stage.

Run alone: python benchmarks/first_run.py (writes benchmarks/results/first_run.json)
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from harness import REPO, _busy_ticks, others_cpu_share, parse_args, write_result

sys.path.insert(0, str(REPO))
from tests.conftest import doc_commands  # noqa: E402

SECTION = "A first run, in minutes"
TARGET_SECONDS = 300  # docs/getting-started.md: a first result within five minutes
STAGE_LINE = re.compile(r"^Running stage '([^']+)'")


def run_timed(command: str, cwd: Path) -> tuple[float, list[tuple[float, str]]]:
    """Run `command` with bash in `cwd`; its wall seconds and its output lines, each with the
    seconds since the start at which it was printed. A failure stops the benchmark."""
    start = time.perf_counter()
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = [(time.perf_counter() - start, line.rstrip()) for line in process.stdout]
    if process.wait() != 0:
        tail = "\n".join(line for _, line in lines[-20:])
        raise SystemExit(f"{command!r} failed:\n{tail}")
    return time.perf_counter() - start, lines


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


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    started = time.perf_counter()
    commands = doc_commands(SECTION)
    answer = next(i for i, command in enumerate(commands) if command.startswith("fourds answer"))
    commands = commands[: answer + 1]
    with tempfile.TemporaryDirectory(prefix="fourds-first-run-") as folder:
        clone = Path(folder) / "fourds"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        ticks, timed = _busy_ticks(), {}
        walls: dict[str, float] = {}
        for command in commands:
            seconds, lines = run_timed(command, clone)
            timed[command] = round(seconds, 2)
            walls |= stage_walls(lines, seconds)
            print(f"{seconds:8.1f} s  {command}")
        print("\n".join(f"{wall:8.1f} s  {stage}" for stage, wall in walls.items()))
        total = sum(timed.values())
        quiet = others_cpu_share(ticks, _busy_ticks(), total)
        records = stage_records(clone)
    in_stages = sum(records.get(stage, 0.0) for stage in walls)
    results = {
        "commands": timed,
        "total_seconds": round(total, 1),
        "within_target": total <= TARGET_SECONDS,
        "target_seconds": TARGET_SECONDS,
        "stages": len(walls),
        "stage_wall_seconds": walls,
        "stage_record_seconds": {stage: records.get(stage) for stage in walls},
        "sum_stage_wall_seconds": round(sum(walls.values()), 1),
        "sum_stage_record_seconds": round(in_stages, 1),
        "others_cpu_share": round(quiet, 3),
    }
    print(
        f"first result in {total:.1f} s (target {TARGET_SECONDS} s): {len(walls)} stages, "
        f"{in_stages:.1f} s of it inside their records; other processes used "
        f"{100 * quiet:.0f}% of the CPUs"
    )
    config = {"section": SECTION, "commands": commands}
    write_result("first_run", args.out, torch.device("cpu"), config, results, started)


if __name__ == "__main__":
    main()
