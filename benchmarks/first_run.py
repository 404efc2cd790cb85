"""A newcomer's first result: docs/getting-started.md's first block ("A first run, in
minutes"), run as written in a fresh `git clone` of this repository, each command and stage
timed (clone_run.py), up to and including `fourds answer` (the lines after it put the workspace
back and are not part of the result).

Run alone: python benchmarks/first_run.py (writes benchmarks/results/first_run.json)
"""

from __future__ import annotations

import sys
import time

import torch
from clone_run import run_in_clone
from harness import REPO, parse_args, write_result

sys.path.insert(0, str(REPO))
from tests.conftest import doc_commands  # noqa: E402

SECTION = "A first run, in minutes"
TARGET_SECONDS = 300  # docs/getting-started.md: a first result within five minutes


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    started = time.perf_counter()
    commands = doc_commands(SECTION)
    answer = next(i for i, command in enumerate(commands) if command.startswith("fourds answer"))
    commands = commands[: answer + 1]
    run, _ = run_in_clone(commands)
    results = run.results()
    results |= {"within_target": run.seconds <= TARGET_SECONDS, "target_seconds": TARGET_SECONDS}
    print(
        f"first result in {run.seconds:.1f} s (target {TARGET_SECONDS} s): "
        f"{results['stages']} stages, {results['sum_stage_record_seconds']} s of it inside their "
        f"records; other processes used {100 * run.others_cpu_share:.0f}% of the CPUs"
    )
    config = {"section": SECTION, "commands": commands}
    write_result("first_run", args.out, torch.device("cpu"), config, results, started, git=run.git)


if __name__ == "__main__":
    main()
