"""A stage's records: run.yaml repeats with its inputs, execution.yaml holds what differs, and DVC
hashes the one and not the other."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import torch
import yaml

import fourds
from fourds import records
from fourds.records import (
    EXECUTION_RECORD,
    NOT_RUN,
    PartTimer,
    belongs_to,
    recorded_path,
    write_run_record,
)
from tests.conftest import REPO_ROOT, sh


def write_records(out: Path, seconds: float) -> tuple[bytes, dict]:
    (out / "params.yaml").write_text("seed: 1\n")
    (out / "clips.csv").write_text("clip,loss\n0,0.5\n")
    execution = {"seconds": seconds}
    inputs = [out / "clips.csv"]
    write_run_record(
        out, "readout@s-depth-frozen", out / "params.yaml", inputs, "cpu", None, execution
    )
    return (out / "run.yaml").read_bytes(), yaml.safe_load((out / EXECUTION_RECORD).read_text())


def test_a_second_run_with_the_same_inputs_writes_the_same_run_record(tmp_path, monkeypatch):
    first_record, first_run = write_records(tmp_path, 1.5)
    later, strftime = time.localtime(time.time() + 3600), time.strftime  # an hour on
    monkeypatch.setattr(records.time, "strftime", lambda form, *_: strftime(form, later))
    second_record, second_run = write_records(tmp_path, 2.5)
    assert second_record == first_record  # DVC hashes run.yaml: its lock line does not move
    clips = hashlib.sha256((tmp_path / "clips.csv").read_bytes()).hexdigest()
    assert yaml.safe_load(first_record)["inputs"] == {str(tmp_path / "clips.csv"): clips}
    # when, at which commit and how long: in the execution record, which DVC does not hash
    assert {"finished_at", "git_commit"} <= set(first_run) and first_run["seconds"] == 1.5
    assert second_run["seconds"] == 2.5 and second_run["finished_at"] != first_run["finished_at"]
    assert not {"finished_at", "git_commit", "seconds"} & set(yaml.safe_load(first_record))


def test_the_execution_record_names_the_machine_and_the_fourds_that_ran(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"NVIDIA H200 #{i}")
    driver = {"driver_version": ["580.65.06"]}
    monkeypatch.setattr(records, "_nvidia_smi", lambda field: driver[field])
    record, run = write_records(tmp_path, 1.0)
    machine = run["machine"]
    assert machine["cpu"] and machine["cpu_cores"] >= 1 and machine["torch"] == torch.__version__
    assert machine["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert machine["gpus"] == ["NVIDIA H200 #0", "NVIDIA H200 #1"]
    assert machine["nvidia_driver"] == "580.65.06" and "torch_cuda" in machine
    # the source tree fourds was imported from, whether or not it is installed
    head = sh("git", "rev-parse", "HEAD", cwd=REPO_ROOT).strip()
    assert machine["fourds"] == {"version": fourds.__version__, "source_commit": head}
    assert "machine" not in yaml.safe_load(record)  # DVC's hash stays the same on any machine


def test_the_execution_record_of_a_machine_without_a_gpu_lists_none(tmp_path, monkeypatch):
    """`gpus` is there on every machine, as an empty list without a GPU, so that a reader of
    execution.yaml finds the key rather than having to know what its absence means."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _, run = write_records(tmp_path, 1.0)
    assert run["machine"]["gpus"] == []
    assert "gpus: []" in (tmp_path / EXECUTION_RECORD).read_text()
    assert "nvidia_driver" not in run["machine"]


def test_a_stage_that_ran_no_torch_records_the_machine_without_importing_it():
    """Curation and the report run no torch: their record names the torch installed and says
    its kernel path and CUDA build were not run, rather than import torch to name them."""
    probe = (
        "import json, sys; from fourds.records import machine_record; "
        "print(json.dumps([machine_record(), 'torch' in sys.modules]))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    machine, imported = json.loads(result.stdout)
    assert not imported
    assert machine["torch"] == metadata.version("torch") and machine["cpu_capability"] == NOT_RUN
    assert machine["torch_cuda"] == NOT_RUN and isinstance(machine["gpus"], list)


def test_inputs_under_the_working_directory_are_recorded_relative_to_it(tmp_path, monkeypatch):
    """A launcher hands a stage absolute paths; the record names them as DVC does, from the
    repository root, so that a clone elsewhere writes the same bytes."""
    monkeypatch.chdir(tmp_path)
    assert recorded_path(tmp_path / "runs/curate/shards/pretrain-000.npz") == (
        "runs/curate/shards/pretrain-000.npz"
    )
    assert recorded_path("runs/curate/shards/pretrain-000.npz") == (
        "runs/curate/shards/pretrain-000.npz"
    )
    assert recorded_path("/elsewhere/x.npz") == "/elsewhere/x.npz"
    assert (
        recorded_path("s3://bucket/pretrain-{000..009}.tar")
        == "s3://bucket/pretrain-{000..009}.tar"
    )


def test_an_execution_record_belongs_to_the_run_record_written_with_it(tmp_path):
    write_records(tmp_path, 1.5)
    assert belongs_to(tmp_path)
    # DVC restored another run's outputs from its cache: the old execution record stays behind
    (tmp_path / "run.yaml").write_text("stage: readout@s-depth-frozen\nparams_sha256: other\n")
    assert not belongs_to(tmp_path)
    (tmp_path / EXECUTION_RECORD).unlink()
    assert not belongs_to(tmp_path)


def test_dvc_ignores_what_a_run_leaves_that_is_no_result(tmp_path):
    """What .dvcignore hides is neither a stage output nor part of the folders stages depend on
    (the report stage's runs/pretrain, runs/readout, runs/fidelity; the source folders)."""
    shutil.copy(REPO_ROOT / ".dvcignore", tmp_path / ".dvcignore")
    sh("dvc", "init", "--no-scm", "-q", cwd=tmp_path)
    ignored = [
        "runs/curate/execution.yaml",
        "runs/readout/cpu_l-depth-frozen/execution.yaml",
        "reports/out/execution.yaml",
        "runs/pretrain/cpu_l/live/plots/metrics/perf/clips_per_second.tsv",
        "runs/pretrain/cpu_l/live/plots/metrics/train/loss.tsv",
        "runs/pretrain/cpu_l/resume/step-000200/state.pt",
        "runs/readout/cpu_l-depth-frozen/.fourds-output",  # absent after a `dvc checkout`
        "runs/readout/cpu_l-depth-frozen/.clips.partial-123.csv",  # left by a killed run
        "runs/readout/.cpu_l-depth-frozen.scratch-123-abc/features.npy",
        "runs/.readout.old-123-abc/metrics.json",
        "src/fourds/config/__pycache__/schema.cpython-311.pyc",  # an import writes it
    ]
    hashed = [
        "runs/readout/cpu_l-depth-frozen/run.yaml",
        "runs/readout/cpu_l-depth-frozen/metrics.json",
        "runs/pretrain/cpu_l/loss.csv",
        "src/fourds/config/schema.py",
    ]
    for path in ignored + hashed:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x\n")
    check = ["dvc", "check-ignore", *ignored, *hashed]
    result = subprocess.run(check, cwd=tmp_path, capture_output=True, text=True)
    assert result.stdout.split() == ignored


def test_a_part_timer_sums_each_part_over_its_runs(monkeypatch):
    clock = iter([0.0, 1.0, 5.0, 5.5, 10.0, 12.25])  # three parts' starts and ends
    monkeypatch.setattr(records.time, "perf_counter", lambda: next(clock))
    timer = PartTimer()
    for name in ("train", "score", "train"):
        with timer.part(name):
            pass
    assert timer.seconds() == {"train_seconds": 3.25, "score_seconds": 0.5}
