"""Fuzzing every input format (tests/data/fuzz.py): each mutated file ends accepted or rejected
with a reason; never a crash, a hang (10 s per case) or memory past MEMORY_MIB.

The cases run in a child process that puts itself under an address-space limit, so a runaway
allocation fails that process instead of the machine; the child reports its peak resident memory.
(The child sets the limit itself: a `preexec_fn` runs Python between fork and exec, which can
deadlock once torch has started threads in the pytest process.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SEED, CASES_PER_FORMAT = 1234, 150  # 16 formats: 2400 cases and one curate run, ~15 s
MEMORY_MIB = 512  # the stated bound on peak resident memory of the whole run
ADDRESS_SPACE = 4 << 30  # hard ceiling for the child (virtual memory, so above the bound)
REPO = Path(__file__).resolve().parents[2]


def test_fuzzed_inputs_are_accepted_or_rejected_with_a_reason(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    run = subprocess.run(
        [sys.executable, "-m", "tests.data.fuzz", str(SEED), str(CASES_PER_FORMAT), str(tmp_path),
         str(ADDRESS_SPACE)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["failures"] == [], json.dumps(summary["failures"], indent=1)
    assert summary["peak_rss_mib"] < MEMORY_MIB, summary["peak_rss_mib"]
    for name, counts in summary["counts"].items():
        assert sum(counts.values()) == CASES_PER_FORMAT, name
