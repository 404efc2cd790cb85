"""A stage's records: run.yaml repeats with its inputs, execution.yaml holds what differs, and DVC
hashes the one and not the other."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from fourds.records import EXECUTION_RECORD, write_run_record
from tests.conftest import sh

REPO_ROOT = Path(__file__).resolve().parents[1]


def write_records(out: Path, seconds: float) -> tuple[bytes, dict]:
    (out / "params.yaml").write_text("seed: 1\n")
    (out / "clips.csv").write_text("clip,loss\n0,0.5\n")
    execution = {"seconds": seconds}
    write_run_record(
        out, "readout@s-depth-frozen", out / "params.yaml", [out / "clips.csv"], "cpu", None, execution
    )
    return (out / "run.yaml").read_bytes(), yaml.safe_load((out / EXECUTION_RECORD).read_text())


def test_a_second_run_with_the_same_inputs_writes_the_same_run_record(tmp_path):
    first_record, first_run = write_records(tmp_path, 1.5)
    time.sleep(1.1)  # another second on the clock, as a regeneration has
    second_record, second_run = write_records(tmp_path, 2.5)
    assert second_record == first_record  # DVC hashes run.yaml: its lock line does not move
    clips = hashlib.sha256((tmp_path / "clips.csv").read_bytes()).hexdigest()
    assert yaml.safe_load(first_record)["inputs"] == {str(tmp_path / "clips.csv"): clips}
    # when, at which commit and how long: in the execution record, which DVC does not hash
    assert {"finished_at", "git_commit"} <= set(first_run) and first_run["seconds"] == 1.5
    assert second_run["seconds"] == 2.5 and second_run["finished_at"] != first_run["finished_at"]
    assert not {"finished_at", "git_commit", "seconds"} & set(yaml.safe_load(first_record))


def test_dvc_ignores_the_execution_records_and_timing_curves_of_the_pipeline(tmp_path):
    """What .dvcignore hides is neither a stage output nor part of the report stage's folder
    dependencies (runs/pretrain, runs/readout, runs/fidelity)."""
    shutil.copy(REPO_ROOT / ".dvcignore", tmp_path / ".dvcignore")
    sh("dvc", "init", "--no-scm", "-q", cwd=tmp_path)
    ignored = [
        "runs/curate/execution.yaml",
        "runs/readout/cpu_l-depth-frozen/execution.yaml",
        "reports/out/execution.yaml",
        "runs/pretrain/cpu_l/live/plots/metrics/perf/clips_per_second.tsv",
        "runs/pretrain/cpu_l/live/metrics.json",
        "runs/pretrain/cpu_l/resume/step-000200/state.pt",
    ]
    hashed = [
        "runs/readout/cpu_l-depth-frozen/run.yaml",
        "runs/pretrain/cpu_l/live/plots/metrics/train/loss.tsv",
        "runs/pretrain/cpu_l/loss.csv",
    ]
    for path in ignored + hashed:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x\n")
    check = ["dvc", "check-ignore", *ignored, *hashed]
    result = subprocess.run(check, cwd=tmp_path, capture_output=True, text=True)
    assert result.stdout.split() == ignored
