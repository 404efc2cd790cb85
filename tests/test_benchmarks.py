"""The benchmark scripts run end to end in their --quick mode (tiny shapes; no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

SCRIPTS = [
    "masking_speedup",
    "step_vs_baseline",
    "attention_memory",
    "pretrain_step",
    "curation_throughput",
    "render_corpus",
    "readout_caching",
    "memory_model",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_runs_and_writes_its_result_file(name, tmp_path):
    script = REPO_ROOT / "benchmarks" / f"{name}.py"
    command = [sys.executable, str(script), "--quick", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((tmp_path / f"{name}.json").read_text())
    assert record["benchmark"] == name and record["results"]
    assert "device" in record and record["torch"]
