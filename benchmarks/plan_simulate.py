"""`fourds plan --simulate` on the 4ds ladder: docs/planning.md's first block ("Planning a run")
run as written in a fresh `git clone`, the plan command with `--simulate` added (every scale's
real step on a simulated cluster beside the plan): its wall seconds, when it printed its first
line, and the longest it went without printing one.

Run alone: python benchmarks/plan_simulate.py (writes benchmarks/results/plan_simulate.json)
"""

from __future__ import annotations

import sys
import time

import torch
from clone_run import fresh_clone, run_timed
from harness import REPO, parse_args, write_result

sys.path.insert(0, str(REPO))
from tests.conftest import doc_commands  # noqa: E402

SECTION = "Planning a run"


def silences(times: list[float], end: float) -> tuple[float, float]:
    """(seconds to the first line, the longest gap between lines or before the end) of lines
    printed at `times` seconds, a command that ran `end` seconds."""
    marks = [0.0, *times, end]
    return (times[0] if times else end), max(b - a for a, b in zip(marks, marks[1:], strict=False))


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    started = time.perf_counter()
    compose, plan = doc_commands(SECTION, page="docs/planning.md")
    commands = [compose, f"{plan} --simulate"]
    with fresh_clone() as (clone, env, cloned):
        run_timed(compose, clone, env)
        seconds, lines, _ = run_timed(commands[1], clone, env)
    first, longest = silences([at for at, _ in lines], seconds)
    progress = [(round(at, 1), line) for at, line in lines if line.startswith("...")]
    results = {
        "seconds": round(seconds, 1),
        "first_line_seconds": round(first, 1),
        "longest_silence_seconds": round(longest, 1),
        "progress": progress,
    }
    print(
        f"`{commands[1]}`: {seconds:.1f} s, first line at {first:.1f} s, longest silence "
        f"{longest:.1f} s"
    )
    config = {"section": SECTION, "commands": commands}
    write_result(
        "plan_simulate", args.out, torch.device("cpu"), config, results, started, git=cloned
    )


if __name__ == "__main__":
    main()
