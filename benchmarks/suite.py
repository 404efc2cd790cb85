"""The whole test suite: docs/development.md's `pytest` (what CI runs, .ci/run) in a fresh
`git clone` of this repository, timed (clone_run.py), with pytest's counts, the slowest
tests it lists, the CPU seconds of every test and test file (cpu_per_test.py: on a machine
the workers keep busy, what each costs the cores) and when each worker ran out of tests. A
failing suite is no result: the script stops with its last lines.

Run alone: python benchmarks/suite.py (writes benchmarks/results/suite.json; 9 to 11 minutes
on 2 cores with AVX-512: docs/performance.md)
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

import cpu_per_test
import torch
from clone_run import fresh_clone, run_timed
from harness import REPO, _busy_ticks, others_cpu_share, parse_args, write_result

sys.path.insert(0, str(REPO))
from tests.conftest import doc_commands  # noqa: E402

SECTION, PAGE = "Tests", "docs/development.md"
TARGET_SECONDS = 600  # the suite within ten minutes, alone on 2 cores
SUMMARY = re.compile(r"^=+ (.*) in [0-9.]+s")
COUNT = re.compile(r"(\d+) (\w+)")
DURATION = re.compile(r"^([0-9.]+)s (call|setup|teardown) +(\S+)")


def counts(lines: list[str]) -> dict[str, int]:
    """pytest's closing counts ("1316 passed, 15 skipped, 32 warnings in 712.14s") by kind."""
    found = next(match[1] for line in reversed(lines) if (match := SUMMARY.match(line)))
    return {kind: int(number) for number, kind in COUNT.findall(found)}


def slowest(lines: list[str]) -> list[dict[str, object]]:
    """The slowest durations pytest lists (`--durations`), slowest first: seconds, phase, test."""
    return [
        {"seconds": float(match[1]), "phase": match[2], "test": match[3]}
        for line in lines
        if (match := DURATION.match(line))
    ]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    started = time.perf_counter()
    command = doc_commands(SECTION, page=PAGE)[0]
    with fresh_clone() as (clone, environment, cloned), tempfile.TemporaryDirectory() as cpu:
        environment |= {
            "PYTHONPATH": f"{environment['PYTHONPATH']}:{clone / 'benchmarks'}",
            "PYTEST_PLUGINS": cpu_per_test.__name__,
            cpu_per_test.FOLDER: cpu,
        }
        ticks = _busy_ticks()
        seconds, timed_lines, _ = run_timed(command, clone, environment)
        quiet = others_cpu_share(ticks, _busy_ticks(), seconds)
        cpu_seconds = cpu_per_test.summary(cpu_per_test.read_records(Path(cpu)))
    lines = [line for _, line in timed_lines]
    results = {
        "total_seconds": round(seconds, 1),
        "counts": counts(lines),
        "slowest": slowest(lines),
        "cpu_seconds": cpu_seconds,
        "others_cpu_share": round(quiet, 3),
        "within_target": seconds <= TARGET_SECONDS,
        "target_seconds": TARGET_SECONDS,
    }
    print(f"`{command}` in {seconds:.1f} s (target {TARGET_SECONDS} s): {results['counts']}")
    config = {"page": PAGE, "section": SECTION, "command": command}
    write_result("suite", args.out, torch.device("cpu"), config, results, started, git=cloned)


if __name__ == "__main__":
    main()
